//! `agigit-relay`: runs a relay with embedded defaults, a config file and flags.

use std::time::Duration;

use agigit_relay::server::{Relay, serve};
use clap::Parser;

mod cli;
use cli::Cli;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = Cli::parse().into_config()?;
    // Opening PostgreSQL blocks (its client runs a runtime of its own): not on an async thread.
    let relay = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || Relay::from_config(&config)).await??
    };
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    if let Some(description) = relay.self_description() {
        tracing::info!(key = %description.pubkey, "relay key");
        for url in &config.announce_to {
            tokio::spawn(announce(url.clone(), description.clone()));
        }
    }
    tracing::info!(
        listen = %listener.local_addr()?,
        data = %config.data.display(),
        events = if config.postgres.is_some() { "postgres" } else { "sqlite" },
        blossom = config.blossom.enabled,
        auth = ?config.auth,
        "agigit-relay serving"
    );
    serve(listener, relay, async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
    .await?;
    Ok(())
}

/// Publishes the self-description to the relay at `url`, retrying with backoff (the other relay
/// may be starting too) for about ten minutes.
async fn announce(url: String, description: nostr::prelude::Event) {
    let mut wait = Duration::from_millis(250);
    for _ in 0..24 {
        match agigit_relay::identity::announce(&url, &description, Duration::from_secs(10)).await {
            Ok(()) => {
                tracing::info!(relay = %url, "announced this relay's key and URLs");
                return;
            }
            Err(e @ agigit_relay::identity::AnnounceError::Refused { .. }) => {
                tracing::warn!(error = %e, "announcing this relay");
                return;
            }
            Err(e) => tracing::debug!(error = %e, "announcing this relay; will retry"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
    tracing::warn!(relay = %url, "could not announce this relay: gave up");
}

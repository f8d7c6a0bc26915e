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
    #[cfg(feature = "web")]
    let relay = explorer(relay, &config, listener.local_addr()?)?;
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

/// The web explorer at `/` for browsers, when `[web]` is on: mirrors of the public repositories
/// announced here, brought up to date every `refresh`, fetched from this relay (on loopback, or
/// its public URL when it serves TLS) and the `fetch_from` servers only.
#[cfg(feature = "web")]
fn explorer(
    relay: Relay,
    config: &agigit_relay::Config,
    local: std::net::SocketAddr,
) -> Result<Relay, Box<dyn std::error::Error>> {
    use agigit_web::mirror::{Mirror, MirrorOptions};
    let web = &config.web;
    if !web.enabled || !config.blossom.enabled {
        return Ok(relay);
    }
    let own = match (&config.tls, &config.public_url) {
        (Some(_), Some(url)) => url.clone(),
        _ => format!("ws://127.0.0.1:{}", local.port()),
    };
    let mut options = MirrorOptions::new(own);
    options.servers.clone_from(&web.fetch_from);
    options.max_repositories = web.max_repositories;
    options.max_repository_bytes = web.max_repository_bytes;
    let mirror = Mirror::new(config.data.join("explorer"), options)?;
    let explorer = agigit_web::Explorer::new(format!(
        "agigit relay {}",
        config.advertised_urls().join(" ")
    ));
    tracing::info!(refresh = ?web.refresh, "web explorer at / (mirrors in data/explorer)");
    // The availability page audits through the mirror's servers (this relay, `fetch_from`).
    let pages = explorer.clone().with_remotes(mirror.remotes()).router();
    tokio::spawn(mirror.run(explorer, web.refresh));
    Ok(relay.with_pages(pages))
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

//! `agigit-relay`: runs a relay with embedded defaults, a config file and flags.

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
    let relay = Relay::from_config(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
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

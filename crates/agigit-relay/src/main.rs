//! `agigit-relay`: runs a relay with embedded defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use agigit_relay::SqliteEventStore;
use agigit_relay::server::{Info, Limits, Relay, serve};
use clap::Parser;

/// An agigit relay: Nostr events (NIP-01, 09, 11, 40) on one port, stored in SQLite.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7777")]
    listen: SocketAddr,
    /// Directory for the relay's data (created if missing): events.sqlite.
    #[arg(long, default_value = "./relay-data")]
    data: PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    std::fs::create_dir_all(&args.data)?;
    let store = SqliteEventStore::open(args.data.join("events.sqlite"))?;
    let relay = Relay::new(Arc::new(store), Limits::default(), Info::default());
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, data = %args.data.display(), "agigit-relay serving");
    serve(listener, relay, async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
    .await?;
    Ok(())
}

#![doc = include_str!("../README.md")]

#[cfg(feature = "client")]
pub mod blob;
mod error;
#[cfg(feature = "client")]
pub mod info;
#[cfg(feature = "client")]
mod network;
#[cfg(feature = "client")]
pub mod pool;
#[cfg(feature = "client")]
pub mod tls;
mod transport;

#[cfg(feature = "client")]
pub use blob::{
    BlobClient, BlobClientOptions, BlobDescriptor, BlobPayer, Health, listing_json, parse_listing,
};
pub use error::{NetError, PublishReport, RelayOutcome};
#[cfg(feature = "client")]
pub use info::{RelayInfo, fetch_relay_info};
#[cfg(feature = "client")]
pub use network::Network;
#[cfg(feature = "client")]
pub use pool::{PoolOptions, RelayPool, RelayStatus, Roles, Subscription};
#[cfg(feature = "client")]
pub use tls::TlsConfig;
pub use transport::{BoxFuture, ListedBlob, MAX_LIST_BYTES, MemoryTransport, Transport};

/// Who signs the client's NIP-42 answers and BUD-11 tokens: a local key (`nostr::Keys`) or any
/// [`Signer`](agigit_event::Signer) — a NIP-46 bunker, a hardware device — shared between
/// connections. It is called off the async threads, and what it returns is verified.
#[cfg(feature = "client")]
pub type SharedSigner = std::sync::Arc<dyn agigit_event::Signer + Send + Sync>;

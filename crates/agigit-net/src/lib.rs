#![doc = include_str!("../README.md")]

#[cfg(feature = "client")]
pub mod blob;
mod error;
#[cfg(feature = "client")]
mod network;
#[cfg(feature = "client")]
pub mod pool;
mod transport;

#[cfg(feature = "client")]
pub use blob::{BlobClient, BlobClientOptions, BlobDescriptor, Health};
pub use error::{NetError, PublishReport, RelayOutcome};
#[cfg(feature = "client")]
pub use network::Network;
#[cfg(feature = "client")]
pub use pool::{PoolOptions, RelayPool, RelayStatus, Roles, Subscription};
pub use transport::{BoxFuture, MemoryTransport, Transport};

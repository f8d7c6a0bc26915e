#![doc = include_str!("../README.md")]

pub mod blob;
mod error;
mod network;
pub mod pool;
mod transport;

pub use blob::{BlobClient, BlobClientOptions, BlobDescriptor, Health};
pub use error::{NetError, PublishReport, RelayOutcome};
pub use network::Network;
pub use pool::{PoolOptions, RelayPool, RelayStatus, Roles, Subscription};
pub use transport::{BoxFuture, MemoryTransport, Transport};

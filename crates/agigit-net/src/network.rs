//! [`Network`]: the real [`Transport`], a relay pool plus a Blossom client and the blob servers
//! to push to and fetch from.

use std::sync::RwLock;

use agigit_hash::BlobHash;
use bytes::Bytes;
use nostr::prelude::{Event, Filter};

use crate::blob::{BlobClient, check_server_url};
use crate::error::{NetError, PublishReport};
use crate::pool::{RelayPool, Roles};
use crate::transport::{BoxFuture, Transport};

/// Relays and blob servers, as one [`Transport`].
#[derive(Debug)]
pub struct Network {
    /// The relays.
    pub pool: RelayPool,
    /// The blob client.
    pub blobs: BlobClient,
    servers: RwLock<Vec<(String, Roles)>>,
}

impl Network {
    /// A network over `pool` and `blobs`, with no blob servers yet.
    pub fn new(pool: RelayPool, blobs: BlobClient) -> Self {
        Network {
            pool,
            blobs,
            servers: RwLock::new(Vec::new()),
        }
    }

    /// Adds a blob server (or widens its roles).
    ///
    /// # Errors
    /// [`NetError::Url`] for a URL the client cannot use.
    pub fn add_blob_server(&self, url: &str, roles: Roles) -> Result<(), NetError> {
        check_server_url(url)?;
        let url = url.trim_end_matches('/').to_owned();
        let mut servers = self
            .servers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match servers.iter_mut().find(|(u, _)| *u == url) {
            Some((_, r)) => {
                r.fetch |= roles.fetch;
                r.push |= roles.push;
            }
            None => servers.push((url, roles)),
        }
        Ok(())
    }

    fn servers(&self, pick: fn(&Roles) -> bool) -> Vec<String> {
        self.servers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(_, r)| pick(r))
            .map(|(u, _)| u.clone())
            .collect()
    }
}

impl Transport for Network {
    fn publish<'a>(
        &'a self,
        event: &'a Event,
        min_accepted: usize,
    ) -> BoxFuture<'a, Result<PublishReport, NetError>> {
        Box::pin(self.pool.publish(event, min_accepted))
    }

    fn query<'a>(&'a self, filters: &'a [Filter]) -> BoxFuture<'a, Result<Vec<Event>, NetError>> {
        Box::pin(self.pool.query(filters))
    }

    fn query_push<'a>(
        &'a self,
        filters: &'a [Filter],
    ) -> BoxFuture<'a, Result<Vec<Event>, NetError>> {
        Box::pin(self.pool.query_push(filters))
    }

    fn push_servers(&self) -> Vec<String> {
        self.servers(|r| r.push)
    }

    fn fetch_servers(&self) -> Vec<String> {
        self.blobs.rank(&self.servers(|r| r.fetch))
    }

    fn put_blob<'a>(
        &'a self,
        server: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<BlobHash, NetError>> {
        Box::pin(async move { Ok(self.blobs.upload(server, data).await?.hash) })
    }

    fn put_blob_hashed<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
        data: Bytes,
    ) -> BoxFuture<'a, Result<BlobHash, NetError>> {
        Box::pin(async move { Ok(self.blobs.upload_hashed(server, *hash, data).await?.hash) })
    }

    fn has_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
    ) -> BoxFuture<'a, Result<bool, NetError>> {
        Box::pin(self.blobs.exists(server, hash))
    }

    fn list_blobs<'a>(
        &'a self,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Vec<crate::ListedBlob>, NetError>> {
        Box::pin(self.blobs.list(server))
    }

    fn delete_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
    ) -> BoxFuture<'a, Result<(), NetError>> {
        Box::pin(self.blobs.delete(server, hash))
    }

    fn get_blob<'a>(
        &'a self,
        server: &'a str,
        hash: &'a BlobHash,
        max_len: u64,
    ) -> BoxFuture<'a, Result<Bytes, NetError>> {
        Box::pin(self.blobs.download(server, hash, max_len))
    }
}

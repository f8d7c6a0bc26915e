//! The network client's errors.

use agigit_hash::BlobHash;

/// What one relay said about one published event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayOutcome {
    /// The relay's URL.
    pub relay: String,
    /// `Ok(message)` when it accepted the event (the message may say `duplicate:`), `Err(reason)`
    /// otherwise: its `OK false` message, or a timeout or connection failure.
    pub result: Result<String, String>,
}

/// What publishing one event did on every push relay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// One outcome per push relay, in the pool's order.
    pub outcomes: Vec<RelayOutcome>,
}

impl PublishReport {
    /// How many relays accepted the event.
    pub fn accepted(&self) -> usize {
        self.outcomes.iter().filter(|o| o.result.is_ok()).count()
    }

    /// This report if at least `min_accepted` relays accepted, else
    /// [`NetError::NotEnoughAccepted`] carrying it.
    ///
    /// # Errors
    /// [`NetError::NotEnoughAccepted`].
    pub fn require(self, min_accepted: usize) -> Result<Self, NetError> {
        let accepted = self.accepted();
        if accepted < min_accepted {
            return Err(NetError::NotEnoughAccepted {
                accepted,
                total: self.outcomes.len(),
                required: min_accepted,
                report: self,
            });
        }
        Ok(self)
    }

    /// The relays that refused or failed, with their reasons.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &str)> {
        self.outcomes.iter().filter_map(|o| match &o.result {
            Ok(_) => None,
            Err(e) => Some((o.relay.as_str(), e.as_str())),
        })
    }
}

/// A network operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A URL is not usable.
    #[error("bad URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// No relay or server has the role the operation needs.
    #[error(
        "no {role} relays or servers are configured: add one (`agigit relay add --{role} <url>`)"
    )]
    NoServers {
        /// `fetch` or `push`.
        role: &'static str,
    },
    /// Fewer relays accepted an event than required.
    #[error("{accepted} of {total} relays accepted the event, {required} required: {}", summary(.report))]
    NotEnoughAccepted {
        /// Relays that accepted.
        accepted: usize,
        /// Relays asked.
        total: usize,
        /// Acceptances required.
        required: usize,
        /// What each relay said.
        report: PublishReport,
    },
    /// The operation did not finish in time.
    #[error("{what} timed out after {secs} s")]
    Timeout {
        /// What timed out.
        what: String,
        /// The limit.
        secs: u64,
    },
    /// A TLS configuration (a CA file) cannot be used, or a server's certificate does not
    /// check out (the reason names the server and what to do).
    #[error("TLS: {reason}")]
    Tls {
        /// What is wrong.
        reason: String,
    },
    /// A connection or protocol failure.
    #[error("{server}: {reason}")]
    Connection {
        /// The relay or server.
        server: String,
        /// What happened.
        reason: String,
    },
    /// A server answered with an HTTP error.
    #[error("{server}: HTTP {status}: {reason}")]
    Http {
        /// The server.
        server: String,
        /// The status code.
        status: u16,
        /// Its `X-Reason`, or the status text.
        reason: String,
    },
    /// A blob is not on the server.
    #[error("{server} does not have blob {hash}")]
    NotFound {
        /// The server.
        server: String,
        /// The blob.
        hash: BlobHash,
    },
    /// A server sent bytes that do not hash to the blob's name.
    #[error("{server} sent bytes for blob {expected} that hash to {actual}: discarded")]
    Corrupt {
        /// The server.
        server: String,
        /// The blob asked for.
        expected: BlobHash,
        /// What the bytes hash to.
        actual: BlobHash,
    },
    /// No server could provide a blob.
    #[error("no server could provide blob {hash}: {}", .errors.join("; "))]
    Unavailable {
        /// The blob.
        hash: BlobHash,
        /// Why each server failed.
        errors: Vec<String>,
    },
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A server sent more than the caller knew to expect (a blob past its known length, a relay
    /// past a query's caps): the transfer was cut there and its bytes dropped.
    #[error("{server} sent more than the {limit} {unit} expected for {what}: cut off")]
    TooLarge {
        /// The relay or server.
        server: String,
        /// What was being received.
        what: String,
        /// The limit.
        limit: u64,
        /// Of what (`bytes`, `events`).
        unit: &'static str,
    },
    /// Signing an authorization failed.
    #[error("signing an authorization failed: {0}")]
    Sign(String),
    /// The transport has no way to do this (a test double, an embedder's transport).
    #[error("this transport cannot {what}")]
    Unsupported {
        /// What was asked.
        what: &'static str,
    },
    /// A server sent a document this client cannot read.
    #[error("{server} sent a malformed {what}: {reason}")]
    Malformed {
        /// The relay or server.
        server: String,
        /// What it sent.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No relay with this key could be found.
    #[error("cannot find the relay with key {key}: {reason}")]
    UnknownRelay {
        /// The key (hex).
        key: String,
        /// What was tried.
        reason: String,
    },
    /// The relay at a URL no longer holds the key it was added with: it may be another server.
    #[error(
        "{relay} now identifies as {}, not as {pinned}, the key it was added with: it may not be the relay you added, so agigit does not use it. If its operator changed its key, remove it and add it again (`agigit relay remove {relay}`, then `agigit relay add`)",
        .found.as_deref().unwrap_or("no key")
    )]
    KeyChanged {
        /// The relay's URL.
        relay: String,
        /// The key it was added with (hex).
        pinned: String,
        /// The key it has now (hex), if it names one.
        found: Option<String>,
    },
}

fn summary(report: &PublishReport) -> String {
    let failures: Vec<String> = report
        .failures()
        .map(|(relay, why)| format!("{relay}: {why}"))
        .collect();
    if failures.is_empty() {
        "no relay refused".to_owned()
    } else {
        failures.join("; ")
    }
}

impl NetError {
    /// A blob of `server` longer than the `limit` bytes the caller would take.
    pub fn blob_too_large(server: &str, hash: &BlobHash, limit: u64) -> Self {
        NetError::TooLarge {
            server: server.to_owned(),
            what: format!("blob {hash}"),
            limit,
            unit: "bytes",
        }
    }

    /// Whether trying again (later, or elsewhere) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            NetError::Timeout { .. } | NetError::Connection { .. } => true,
            NetError::Http { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

//! The relay's configuration: embedded defaults, a TOML file, and command-line flags, in that
//! order of precedence (a flag wins over the file, the file over the default).
//!
//! ```toml
//! listen = "127.0.0.1:7777"
//! data = "./relay-data"
//! # public_url = "wss://relay.example.com"   # checked in NIP-42 AUTH and used in blob URLs
//! # postgres = "host=127.0.0.1 user=relay dbname=relay"   # SQLite in `data` when absent; the
//! #                                      # blob owner index goes there too
//! # postgres_schema = "relay_a"          # tables in this schema (created if missing)
//! # key_file = "/etc/agigit-relay/relay.key"   # the relay's Nostr key; default: data/relay.key,
//! #                                              # generated on first start
//! # announce_to = ["ws://relay-b:7777"]          # publish the signed self-description there
//!
//! # [payment]                      # BUD-07 paid serving, in Cashu (a build with the `cashu`
//! # mint = "https://mint.example"  # feature): 402 with a NUT-18 request, the token in X-Cashu
//! # download_sats_per_mib = 1      # 0: free; a part of a MiB costs its share, rounded up
//! # upload_sats_per_mib = 0
//!
//! [audits]                        # storage orders this relay's key took: it answers their
//! answer = true                    # audits itself, from its blob store (Blossom on)
//! sweep_secs = 60                  # and looks for challenges it missed this often
//!
//! [web]                            # the binary's web explorer (feature `web`) at / for browsers:
//! enabled = false                  # mirrors of the public repositories announced here, kept in
//! fetch_from = []                  # data/explorer (disk: up to the limits below), fetched from
//! refresh_secs = 60                # this relay and these blob servers only (never from the
//!                                  # servers an announcement names); updated as soon as a new
//!                                  # announcement or state is stored here, and this often too
//! max_repositories = 50
//! max_repository_bytes = 4294967296
//!
//! # [tls]                          # serve wss:// and https:// on `listen` (or leave TLS to a
//! # cert_file = "/etc/agigit-relay/fullchain.pem"   # reverse proxy, and set public_url to
//! # key_file = "/etc/agigit-relay/privkey.pem"      # the wss:// URL clients use)
//!
//! [limits]
//! max_message_bytes = 524288
//! max_subscriptions = 32
//! max_filters = 16
//! max_filter_values = 1000
//! max_limit = 5000
//! max_subid_length = 64
//! messages_per_minute = 6000
//! bytes_per_minute = 16777216      # of messages, per connection
//! max_pending_events = 64          # EVENTs of one connection waiting to be stored
//! live_buffer_bytes = 67108864     # live events buffered for subscribers
//!
//! [connections]
//! max_per_ip = 64
//! max_total = 4096
//! header_timeout_secs = 10         # to send a request's headers
//! write_timeout_secs = 30          # for a client to take what the relay sends
//! ping_interval_secs = 60          # WebSocket pings; silent for two intervals: closed
//! body_timeout_secs = 30           # between two chunks of an upload
//!
//! [auth]
//! required = "off"          # "off", "writes", "reads" or "all" (NIP-42)
//!
//! [blossom]
//! enabled = true
//! max_blob_bytes = 1073741824
//! quota_bytes_per_pubkey = 0    # 0: no quota
//! unclaimed_retention_secs = 3600  # keep a blob this long after its last claim is deleted
//! require_auth_for_get = false
//! max_concurrent_uploads = 64
//! max_upload_bytes_in_flight = 4294967296
//! max_token_lifetime_secs = 3600
//! min_upload_rate = 16384          # bytes per second
//!
//! # Blobs in S3-compatible object storage instead of `data/blobs` (the owner index stays in
//! # `data/blobs`). Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY unless set
//! # here (then keep the file private).
//! # [blossom.s3]
//! # bucket = "agigit-blobs"
//! # endpoint = "https://s3.eu-central-1.amazonaws.com"   # or R2's, MinIO's, a Garage node's
//! # region = "us-east-1"
//! # prefix = "relay-a/"
//! # allow_http = false             # true only for a bucket on the same host or a trusted link
//! # virtual_hosted_style = false   # path-style requests (MinIO, Garage) unless true
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use std::time::Duration;

use crate::store::MAX_FILTER_VALUES;

/// Limits the relay enforces; the NIP-11 document reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message a client may send, in bytes.
    pub max_message_bytes: usize,
    /// Open subscriptions per connection.
    pub max_subscriptions: usize,
    /// Filters per REQ.
    pub max_filters: usize,
    /// Values per filter field (ids, authors, kinds, each tag).
    pub max_filter_values: usize,
    /// The most events one filter returns (a larger or missing `limit` is capped).
    pub max_limit: usize,
    /// Longest subscription id.
    pub max_subid_length: usize,
    /// Messages per minute per connection.
    pub messages_per_minute: u32,
    /// Bytes of messages per minute per connection.
    pub bytes_per_minute: u32,
    /// EVENTs of one connection waiting to be stored at once: past it, the relay stops reading
    /// that connection until some are stored.
    pub max_pending_events: usize,
    /// Bytes of live events buffered for subscribers that have not sent them yet (events up to
    /// 8 KiB in one ring, larger ones in another; a subscriber that falls behind a ring is told
    /// to re-query).
    pub live_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 512 << 10,
            max_subscriptions: 32,
            max_filters: 16,
            max_filter_values: MAX_FILTER_VALUES,
            max_limit: 5000,
            max_subid_length: 64,
            messages_per_minute: 6000,
            bytes_per_minute: 16 << 20,
            max_pending_events: 64,
            live_buffer_bytes: 64 << 20,
        }
    }
}

/// Limits on connections, whatever they carry (WebSocket or HTTP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections from one IP address; more are closed at once.
    pub max_per_ip: usize,
    /// Open connections in all; more are closed at once.
    pub max_total: usize,
    /// Time to send a request's headers.
    pub header_timeout: Duration,
    /// Time for a client to take a message (or a chunk of a download) the relay sends; a client
    /// that does not read is disconnected.
    pub write_timeout: Duration,
    /// WebSocket keep-alive: a ping this often, and a connection that sends nothing (not even
    /// the pong) for two intervals is closed.
    pub ping_interval: Duration,
    /// Time between two chunks of an upload's body.
    pub body_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_per_ip: 64,
            max_total: 4096,
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// When a client must authenticate with NIP-42 first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthPolicy {
    /// Never (AUTH is still answered).
    #[default]
    Off,
    /// Before publishing events.
    Writes,
    /// Before subscribing.
    Reads,
    /// Before publishing and subscribing.
    All,
}

impl AuthPolicy {
    /// Whether publishing needs AUTH.
    pub fn for_writes(self) -> bool {
        matches!(self, AuthPolicy::Writes | AuthPolicy::All)
    }

    /// Whether subscribing needs AUTH.
    pub fn for_reads(self) -> bool {
        matches!(self, AuthPolicy::Reads | AuthPolicy::All)
    }
}

impl std::str::FromStr for AuthPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(AuthPolicy::Off),
            "writes" => Ok(AuthPolicy::Writes),
            "reads" => Ok(AuthPolicy::Reads),
            "all" => Ok(AuthPolicy::All),
            other => Err(format!(
                "unknown auth policy {other:?}: use off, writes, reads or all"
            )),
        }
    }
}

/// Blossom (blob) settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlossomConfig {
    /// Serve Blossom on the relay's port.
    pub enabled: bool,
    /// The largest blob accepted, in bytes.
    pub max_blob_bytes: u64,
    /// The most bytes one pubkey may store (0: no quota).
    pub quota_bytes_per_pubkey: u64,
    /// Whether downloads need a `get` authorization (uploads, listing's deletes always need one).
    pub require_auth_for_get: bool,
    /// Uploads received at once; more are answered 503 with `Retry-After`.
    pub max_concurrent_uploads: usize,
    /// Bytes (by their `Content-Length`) of uploads received at once, which is the most the
    /// temporary directory holds.
    pub max_upload_bytes_in_flight: u64,
    /// The longest a BUD-11 token may be valid, from its creation or from now, in seconds.
    pub max_token_lifetime_secs: u64,
    /// The slowest an upload's body may arrive, in bytes per second (after the body timeout).
    pub min_upload_rate: u64,
    /// Seconds a blob is kept after its last claim is deleted (still served, no longer listed
    /// or answered to `HEAD`), so that a reader in the middle of a clone is not cut off; 0
    /// deletes it at once.
    pub unclaimed_retention_secs: u64,
    /// Blobs in an S3-compatible bucket instead of the data directory.
    pub s3: Option<S3Config>,
}

/// Where an S3-compatible blob store keeps its blobs.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket (it must exist).
    pub bucket: String,
    /// The service's URL (`https://…`); AWS S3 of `region` when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region (`us-east-1` when absent; S3-compatible services mostly accept any).
    #[serde(default = "default_region")]
    pub region: String,
    /// Prepended to every blob's key (`relay-a/`), so relays can share a bucket.
    #[serde(default)]
    pub prefix: String,
    /// Whether a plain `http://` endpoint is allowed.
    #[serde(default)]
    pub allow_http: bool,
    /// Bucket-in-the-host-name requests (AWS's default) instead of path-style ones.
    #[serde(default)]
    pub virtual_hosted_style: bool,
    /// The access key id; from `AWS_ACCESS_KEY_ID` when absent.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The secret access key; from `AWS_SECRET_ACCESS_KEY` when absent.
    #[serde(default)]
    pub secret_access_key: Option<String>,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

impl std::fmt::Debug for S3Config {
    /// Everything but the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("allow_http", &self.allow_http)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "(set)"),
            )
            .finish()
    }
}

/// The default largest blob: 1 GiB.
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 1 << 30;

impl Default for BlossomConfig {
    fn default() -> Self {
        BlossomConfig {
            enabled: true,
            max_blob_bytes: DEFAULT_MAX_BLOB_BYTES,
            quota_bytes_per_pubkey: 0,
            require_auth_for_get: false,
            max_concurrent_uploads: 64,
            max_upload_bytes_in_flight: 4 << 30,
            max_token_lifetime_secs: 3600,
            min_upload_rate: 16 << 10,
            unclaimed_retention_secs: 3600,
            s3: None,
        }
    }
}

/// Everything the relay binary needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for data: `events.sqlite`, `blobs/`.
    pub data: PathBuf,
    /// The relay's public URL (`ws://` or `wss://`), if known: NIP-42 `relay` tags must name its
    /// host, and blob descriptors use it. Unset: any `relay` tag is accepted and blob URLs use the
    /// request's `Host`.
    pub public_url: Option<String>,
    /// A PostgreSQL connection string for events and the blob owner index; SQLite in `data`
    /// when unset.
    pub postgres: Option<String>,
    /// The PostgreSQL schema for the relay's tables (created if missing); the connection's
    /// default when unset.
    pub postgres_schema: Option<String>,
    /// Message and subscription limits.
    pub limits: Limits,
    /// Connection limits and timeouts.
    pub connections: ConnectionLimits,
    /// NIP-42 policy.
    pub auth: AuthPolicy,
    /// Blossom.
    pub blossom: BlossomConfig,
    /// The relay's secret key file (nsec… or hex); unset: `relay.key` in `data`, generated on
    /// first start. Clients name the relay by this key and pin it.
    pub key_file: Option<PathBuf>,
    /// Relays to publish this relay's signed self-description to at start (`ws://…`), so that
    /// their clients can find this relay by its key.
    pub announce_to: Vec<String>,
    /// TLS on the listener: the certificate chain and its key, PEM files.
    pub tls: Option<TlsFiles>,
    /// Paid serving (BUD-07, in Cashu): unset, everything is free.
    pub payment: Option<PaymentConfig>,
    /// Storage audits the relay answers itself.
    pub audits: AuditConfig,
    /// The web explorer the binary serves (feature `web`).
    pub web: WebConfig,
}

/// The web explorer the relay binary serves at `/` to browsers (feature `web`): mirrors of the
/// public repositories announced on the relay, kept in `data/explorer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebConfig {
    /// Serve it. Off by default: mirroring keeps a copy of every public repository announced
    /// here (up to the limits), which is the operator's decision.
    pub enabled: bool,
    /// Blob servers to fetch shards from besides this relay (`http(s)://…`). Only these and the
    /// relay itself are asked: the relays and servers an announcement names are not, so that
    /// no one who can publish makes the relay connect where it should not.
    pub fetch_from: Vec<String>,
    /// How often the mirrors are brought up to date besides the updates a new announcement or
    /// state stored here triggers at once (what a lost subscription would miss).
    pub refresh: Duration,
    /// The most repositories mirrored.
    pub max_repositories: usize,
    /// Repositories announced larger than this are not mirrored.
    pub max_repository_bytes: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: false,
            fetch_from: Vec::new(),
            refresh: Duration::from_secs(60),
            max_repositories: 50,
            max_repository_bytes: 4 << 30,
        }
    }
}

/// Whether the relay answers the audits of the storage orders its key took, from its blob
/// store (see [`crate::audits`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    /// Answer them (default). Off, the operator answers with `agigit order answer`.
    pub answer: bool,
    /// How often challenges missed live (while the relay was down, or published elsewhere)
    /// are looked for.
    pub sweep: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            answer: true,
            sweep: Duration::from_secs(60),
        }
    }
}

/// Prices for serving blobs, paid in Cashu ecash at one mint (BUD-07 / NUT-24): a request that
/// costs something is answered `402 Payment Required` with a NUT-18 payment request in
/// `X-Cashu`, and served when retried with a token worth the price in `X-Cashu`. The relay's
/// wallet (its key's, in `data/wallet`) takes each payment at the mint before serving.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentConfig {
    /// The mint the relay takes tokens of.
    pub mint: String,
    /// Sats per MiB sent (`GET /<sha256>`; a range pays for its bytes); a part of a MiB costs
    /// its share, rounded up to a whole sat.
    #[serde(default)]
    pub download_sats_per_mib: u64,
    /// Sats per MiB stored (`PUT /upload`).
    #[serde(default)]
    pub upload_sats_per_mib: u64,
}

impl PaymentConfig {
    /// What `bytes` cost at `per_mib` sats a MiB: 0 for nothing or a free price, else at
    /// least 1.
    pub fn price(bytes: u64, per_mib: u64) -> u64 {
        let sats = (u128::from(bytes) * u128::from(per_mib)).div_ceil(1 << 20);
        u64::try_from(sats).unwrap_or(u64::MAX)
    }
}

/// A certificate chain and its private key, in PEM files, for the relay to serve TLS with.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain (the server's certificate first).
    pub cert_file: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// The default listening address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7777";
/// The default data directory.
pub const DEFAULT_DATA: &str = "./relay-data";

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7777)),
            data: PathBuf::from(DEFAULT_DATA),
            public_url: None,
            postgres: None,
            postgres_schema: None,
            limits: Limits::default(),
            connections: ConnectionLimits::default(),
            auth: AuthPolicy::Off,
            blossom: BlossomConfig::default(),
            key_file: None,
            announce_to: Vec::new(),
            tls: None,
            payment: None,
            audits: AuditConfig::default(),
            web: WebConfig::default(),
        }
    }
}

impl Config {
    /// The relay's key file: `key_file`, else `relay.key` in `data`.
    pub fn key_path(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.data.join(crate::identity::KEY_FILE))
    }

    /// The URLs the relay says it serves: `public_url`, else `ws://<listen>` when that is an
    /// address a client can dial (not 0.0.0.0 or ::).
    pub fn advertised_urls(&self) -> Vec<String> {
        match &self.public_url {
            Some(u) => vec![u.clone()],
            None if self.listen.ip().is_unspecified() => Vec::new(),
            None if self.tls.is_some() => vec![format!("wss://{}", self.listen)],
            None => vec![format!("ws://{}", self.listen)],
        }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or names an unknown key or a wrong type.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
}

/// The file's shape: every field optional, unknown keys refused (a typo must not be ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    public_url: Option<String>,
    postgres: Option<String>,
    postgres_schema: Option<String>,
    key_file: Option<PathBuf>,
    #[serde(default)]
    announce_to: Vec<String>,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    connections: FileConnections,
    #[serde(default)]
    auth: FileAuth,
    #[serde(default)]
    blossom: FileBlossom,
    tls: Option<TlsFiles>,
    payment: Option<PaymentConfig>,
    #[serde(default)]
    audits: FileAudits,
    #[serde(default)]
    web: FileWeb,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWeb {
    enabled: Option<bool>,
    fetch_from: Option<Vec<String>>,
    refresh_secs: Option<u64>,
    max_repositories: Option<usize>,
    max_repository_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAudits {
    answer: Option<bool>,
    sweep_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_message_bytes: Option<usize>,
    max_subscriptions: Option<usize>,
    max_filters: Option<usize>,
    max_filter_values: Option<usize>,
    max_limit: Option<usize>,
    max_subid_length: Option<usize>,
    messages_per_minute: Option<u32>,
    bytes_per_minute: Option<u32>,
    max_pending_events: Option<usize>,
    live_buffer_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConnections {
    max_per_ip: Option<usize>,
    max_total: Option<usize>,
    header_timeout_secs: Option<u64>,
    write_timeout_secs: Option<u64>,
    ping_interval_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    required: Option<AuthPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBlossom {
    enabled: Option<bool>,
    max_blob_bytes: Option<u64>,
    quota_bytes_per_pubkey: Option<u64>,
    require_auth_for_get: Option<bool>,
    max_concurrent_uploads: Option<usize>,
    max_upload_bytes_in_flight: Option<u64>,
    max_token_lifetime_secs: Option<u64>,
    min_upload_rate: Option<u64>,
    unclaimed_retention_secs: Option<u64>,
    s3: Option<S3Config>,
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

impl Config {
    /// The defaults overlaid with the TOML text `text` (read from `path`, named in errors).
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for invalid TOML, an unknown key or a value of the wrong type.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let mut c = Config::default();
        set(&mut c.listen, file.listen);
        set(&mut c.data, file.data);
        c.public_url = file.public_url;
        c.postgres = file.postgres;
        c.postgres_schema = file.postgres_schema;
        c.key_file = file.key_file;
        c.announce_to = file.announce_to;
        c.tls = file.tls;
        c.payment = file.payment;
        set(&mut c.audits.answer, file.audits.answer);
        set(&mut c.audits.sweep, file.audits.sweep_secs.map(secs));
        let (w, fw) = (&mut c.web, file.web);
        set(&mut w.enabled, fw.enabled);
        set(&mut w.fetch_from, fw.fetch_from);
        set(&mut w.refresh, fw.refresh_secs.map(secs));
        set(&mut w.max_repositories, fw.max_repositories);
        set(&mut w.max_repository_bytes, fw.max_repository_bytes);
        let (l, fl) = (&mut c.limits, file.limits);
        set(&mut l.max_message_bytes, fl.max_message_bytes);
        set(&mut l.max_subscriptions, fl.max_subscriptions);
        set(&mut l.max_filters, fl.max_filters);
        set(&mut l.max_filter_values, fl.max_filter_values);
        set(&mut l.max_limit, fl.max_limit);
        set(&mut l.max_subid_length, fl.max_subid_length);
        set(&mut l.messages_per_minute, fl.messages_per_minute);
        set(&mut l.bytes_per_minute, fl.bytes_per_minute);
        set(&mut l.max_pending_events, fl.max_pending_events);
        set(&mut l.live_buffer_bytes, fl.live_buffer_bytes);
        let (n, fc) = (&mut c.connections, file.connections);
        set(&mut n.max_per_ip, fc.max_per_ip);
        set(&mut n.max_total, fc.max_total);
        set(&mut n.header_timeout, fc.header_timeout_secs.map(secs));
        set(&mut n.write_timeout, fc.write_timeout_secs.map(secs));
        set(&mut n.ping_interval, fc.ping_interval_secs.map(secs));
        set(&mut n.body_timeout, fc.body_timeout_secs.map(secs));
        set(&mut c.auth, file.auth.required);
        let (b, fb) = (&mut c.blossom, file.blossom);
        set(&mut b.enabled, fb.enabled);
        set(&mut b.max_blob_bytes, fb.max_blob_bytes);
        set(&mut b.quota_bytes_per_pubkey, fb.quota_bytes_per_pubkey);
        set(&mut b.require_auth_for_get, fb.require_auth_for_get);
        set(&mut b.max_concurrent_uploads, fb.max_concurrent_uploads);
        set(
            &mut b.max_upload_bytes_in_flight,
            fb.max_upload_bytes_in_flight,
        );
        set(&mut b.max_token_lifetime_secs, fb.max_token_lifetime_secs);
        set(&mut b.min_upload_rate, fb.min_upload_rate);
        set(&mut b.unclaimed_retention_secs, fb.unclaimed_retention_secs);
        b.s3 = fb.s3;
        Ok(c)
    }

    /// The defaults overlaid with the TOML file at `path`.
    ///
    /// # Errors
    /// [`ConfigError`] when the file cannot be read or used.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn the_documented_example_is_the_default() {
        // The module docs' example lists every key with its default value.
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let parsed = Config::from_toml(&example, Path::new("doc")).unwrap();
        assert_eq!(parsed, Config::default());
        assert_eq!(parsed.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn audits_are_answered_by_default_and_can_be_left_to_the_operator() {
        assert!(Config::default().audits.answer);
        let c = Config::from_toml(
            "[audits]\nanswer = false\nsweep_secs = 5\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(
            c.audits,
            AuditConfig {
                answer: false,
                sweep: Duration::from_secs(5)
            }
        );
        assert!(Config::from_toml("[audits]\nanswers = false\n", Path::new("x.toml")).is_err());
    }

    #[test]
    fn payment_prices_per_mib_round_up_and_typos_are_refused() {
        let c = Config::from_toml(
            "[payment]\nmint = \"http://127.0.0.1:3338\"\ndownload_sats_per_mib = 3\n",
            Path::new("x.toml"),
        )
        .unwrap();
        let p = c.payment.unwrap();
        assert_eq!(p.mint, "http://127.0.0.1:3338");
        assert_eq!((p.download_sats_per_mib, p.upload_sats_per_mib), (3, 0));
        assert_eq!(PaymentConfig::price(0, 3), 0);
        assert_eq!(PaymentConfig::price(1 << 20, 0), 0);
        assert_eq!(PaymentConfig::price(1, 3), 1);
        assert_eq!(PaymentConfig::price(1 << 20, 3), 3);
        assert_eq!(PaymentConfig::price((1 << 20) + 1, 3), 4);
        assert_eq!(PaymentConfig::price(u64::MAX, u64::MAX), u64::MAX);
        assert!(
            Config::from_toml("[payment]\nmint = \"x\"\nprice = 1\n", Path::new("x.toml")).is_err()
        );
        assert!(Config::from_toml("[payment]\n", Path::new("x.toml")).is_err());
    }

    #[cfg(not(feature = "cashu"))]
    #[test]
    fn a_build_without_cashu_refuses_to_start_with_prices() {
        let dir = std::env::temp_dir().join(format!("agigit-relay-nocashu-{}", std::process::id()));
        let mut c = Config {
            data: dir.clone(),
            ..Config::default()
        };
        c.payment = Some(PaymentConfig {
            mint: "http://127.0.0.1:1".into(),
            download_sats_per_mib: 1,
            upload_sats_per_mib: 0,
        });
        let e = crate::server::Relay::from_config(&c)
            .err()
            .map(|e| e.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            e.is_some_and(|e| e.contains("cashu")),
            "a paid relay started free"
        );
    }

    #[test]
    fn an_s3_bucket_is_configured_and_its_secret_never_printed() {
        let c = Config::from_toml(
            "[blossom.s3]\nbucket = \"blobs\"\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\nsecret_access_key = \"hunter2\"\n",
            Path::new("x.toml"),
        )
        .unwrap();
        let s3 = c.blossom.s3.as_ref().expect("s3");
        assert_eq!(s3.bucket, "blobs");
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.prefix, "");
        assert!(s3.allow_http && !s3.virtual_hosted_style);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("(set)"),
            "{shown}"
        );
        let err = Config::from_toml("[blossom.s3]\nbuckett = \"b\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("buckett"), "{err}");
    }

    #[test]
    fn a_file_overrides_defaults_and_refuses_typos() {
        let c = Config::from_toml(
            "postgres = \"host=/tmp\"\npostgres_schema = \"relay_a\"\n[auth]\nrequired = \"writes\"\n[limits]\nmax_filters = 2\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(c.auth, AuthPolicy::Writes);
        assert_eq!(c.limits.max_filters, 2);
        assert_eq!(c.postgres.as_deref(), Some("host=/tmp"));
        assert_eq!(c.postgres_schema.as_deref(), Some("relay_a"));
        assert_eq!(c.limits.max_limit, Limits::default().max_limit);
        let err = Config::from_toml("[limits]\nmax_filtres = 2\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max_filtres") && err.contains("x.toml"),
            "{err}"
        );
        let err = Config::from_toml("[auth]\nrequired = \"sometimes\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sometimes"), "{err}");
    }
}

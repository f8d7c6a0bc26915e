//! The `agigit-relay` command line: flags over a config file over the library's defaults. It
//! lives in the binary, so the library an embedder links has no clap in it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use agigit_relay::config::ConfigError;
use agigit_relay::{AuthPolicy, Config};

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// The `agigit-relay` command line. Flags override the config file, which overrides the
/// defaults shown in `--help`.
#[derive(Debug, Default, clap::Parser)]
#[command(
    name = "agigit-relay",
    version,
    about = "An agigit relay: Nostr events (NIP-01, 09, 11, 40, 42) and Blossom blobs on one port"
)]
pub(crate) struct Cli {
    /// TOML configuration file (see the crate docs for every key).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7777].
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    /// Directory for events.sqlite and blobs/ (created if missing) [default: ./relay-data].
    #[arg(long, value_name = "DIR")]
    pub(crate) data: Option<PathBuf>,
    /// The relay's public ws:// or wss:// URL, checked in NIP-42 AUTH [default: none].
    #[arg(long, value_name = "URL")]
    pub(crate) public_url: Option<String>,
    /// The relay's secret key file (nsec… or hex) [default: relay.key in the data directory,
    /// generated on first start].
    #[arg(long, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
    /// Serve TLS (wss://, https://) with this certificate chain, a PEM file; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert, a PEM file.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Publish this relay's signed self-description (its key and URL) to this relay at start;
    /// repeat for several.
    #[arg(long = "announce-to", value_name = "URL")]
    pub(crate) announce_to: Vec<String>,
    /// Serve the web explorer at / for browsers: mirrors of the public repositories announced
    /// here, in DATA/explorer (see `[web]` in the config file for its limits).
    #[cfg(feature = "web")]
    #[arg(long)]
    pub(crate) web: bool,
    /// Store events in PostgreSQL at this connection string instead of SQLite [default: none].
    #[arg(
        long,
        value_name = "URL",
        env = "AGIGIT_RELAY_POSTGRES",
        hide_env_values = true
    )]
    pub(crate) postgres: Option<String>,
    /// The PostgreSQL schema for the relay's tables, created if missing [default: the
    /// connection's].
    #[arg(long, value_name = "NAME")]
    pub(crate) postgres_schema: Option<String>,
    /// NIP-42 authentication: off, writes, reads or all [default: off].
    #[arg(long, value_name = "POLICY")]
    pub(crate) auth: Option<AuthPolicy>,
    /// Largest message a client may send, in bytes [default: 524288].
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_message_bytes: Option<usize>,
    /// Open subscriptions per connection [default: 32].
    #[arg(long, value_name = "N")]
    pub(crate) max_subscriptions: Option<usize>,
    /// Messages per minute per connection [default: 6000].
    #[arg(long, value_name = "N")]
    pub(crate) messages_per_minute: Option<u32>,
    /// Largest blob accepted, in bytes [default: 1073741824].
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_blob_bytes: Option<u64>,
    /// Bytes of blobs one pubkey may store, 0 for no quota [default: 0].
    #[arg(long, value_name = "BYTES")]
    pub(crate) quota_bytes_per_pubkey: Option<u64>,
    /// Serve no blobs (Blossom off) [default: Blossom on].
    #[arg(long)]
    pub(crate) no_blossom: bool,
    /// Open connections from one IP address [default: 64].
    #[arg(long, value_name = "N")]
    pub(crate) max_connections_per_ip: Option<usize>,
    /// Open connections in all [default: 4096].
    #[arg(long, value_name = "N")]
    pub(crate) max_connections: Option<usize>,
    /// Seconds for a client to send a request's headers [default: 10].
    #[arg(long, value_name = "SECS")]
    pub(crate) header_timeout_secs: Option<u64>,
    /// Seconds for a client to take what the relay sends before it is dropped [default: 30].
    #[arg(long, value_name = "SECS")]
    pub(crate) write_timeout_secs: Option<u64>,
    /// Uploads received at once [default: 64].
    #[arg(long, value_name = "N")]
    pub(crate) max_concurrent_uploads: Option<usize>,
    /// The longest a Blossom authorization may be valid, in seconds [default: 3600].
    #[arg(long, value_name = "SECS")]
    pub(crate) max_token_lifetime_secs: Option<u64>,
}

impl Cli {
    /// The configuration: defaults, then the file, then the flags.
    ///
    /// # Errors
    /// [`ConfigError`] when the file cannot be read or used.
    pub(crate) fn into_config(self) -> Result<Config, ConfigError> {
        let mut c = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        set(&mut c.listen, self.listen);
        set(&mut c.data, self.data);
        if self.public_url.is_some() {
            c.public_url = self.public_url;
        }
        if self.postgres.is_some() {
            c.postgres = self.postgres;
        }
        if self.postgres_schema.is_some() {
            c.postgres_schema = self.postgres_schema;
        }
        if self.key_file.is_some() {
            c.key_file = self.key_file;
        }
        if let (Some(cert_file), Some(key_file)) = (self.tls_cert, self.tls_key) {
            c.tls = Some(agigit_relay::config::TlsFiles {
                cert_file,
                key_file,
            });
        }
        c.announce_to.extend(self.announce_to);
        #[cfg(feature = "web")]
        if self.web {
            c.web.enabled = true;
        }
        set(&mut c.auth, self.auth);
        set(&mut c.limits.max_message_bytes, self.max_message_bytes);
        set(&mut c.limits.max_subscriptions, self.max_subscriptions);
        set(&mut c.limits.messages_per_minute, self.messages_per_minute);
        set(&mut c.blossom.max_blob_bytes, self.max_blob_bytes);
        set(
            &mut c.blossom.quota_bytes_per_pubkey,
            self.quota_bytes_per_pubkey,
        );
        if self.no_blossom {
            c.blossom.enabled = false;
        }
        set(&mut c.connections.max_per_ip, self.max_connections_per_ip);
        set(&mut c.connections.max_total, self.max_connections);
        set(
            &mut c.connections.header_timeout,
            self.header_timeout_secs.map(Duration::from_secs),
        );
        set(
            &mut c.connections.write_timeout,
            self.write_timeout_secs.map(Duration::from_secs),
        );
        set(
            &mut c.blossom.max_concurrent_uploads,
            self.max_concurrent_uploads,
        );
        set(
            &mut c.blossom.max_token_lifetime_secs,
            self.max_token_lifetime_secs,
        );
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn help_prints_the_real_defaults() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        let d = Config::default();
        for default in [
            d.listen.to_string(),
            d.data.display().to_string(),
            d.limits.max_message_bytes.to_string(),
            d.limits.max_subscriptions.to_string(),
            d.limits.messages_per_minute.to_string(),
            d.blossom.max_blob_bytes.to_string(),
            d.blossom.quota_bytes_per_pubkey.to_string(),
            d.connections.max_per_ip.to_string(),
            d.connections.max_total.to_string(),
            d.connections.header_timeout.as_secs().to_string(),
            d.connections.write_timeout.as_secs().to_string(),
            d.blossom.max_concurrent_uploads.to_string(),
            d.blossom.max_token_lifetime_secs.to_string(),
            "off".to_owned(),
        ] {
            assert!(
                help.contains(&format!("[default: {default}]")),
                "--help lacks {default}"
            );
        }
    }

    #[test]
    fn flags_override_the_file() {
        use clap::Parser;
        let dir = std::env::temp_dir().join(format!("agigit-relay-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("relay.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[auth]\nrequired = \"all\"\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "agigit-relay",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:9001",
        ])
        .unwrap();
        let c = cli.into_config().unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.auth, AuthPolicy::All);
        let _ = std::fs::remove_dir_all(dir);
    }
}

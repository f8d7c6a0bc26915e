//! TLS for `wss://` relays and `https://` blob servers: rustls (ring), with Mozilla's roots
//! (`webpki-roots`, compiled in) plus the CAs a user adds — from `SSL_CERT_FILE` and
//! `SSL_CERT_DIR`, as OpenSSL-based tools read them, and from files the caller names (a
//! self-hosted relay's CA).
//!
//! Why compiled-in roots rather than the platform's store: the same trust on every machine,
//! a minimal container without `ca-certificates` included, and nothing read from a system path
//! unless the user points at it. An organisation's own CA goes in through the variables or the
//! configuration.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::error::NetError;

/// What a client trusts: Mozilla's roots and the extra CAs it was given.
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<ClientConfig>,
    extra: Vec<PathBuf>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("extra_ca_files", &self.extra)
            .finish_non_exhaustive()
    }
}

/// Two configurations are the same when built from the same extra CA files.
impl PartialEq for TlsConfig {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config) || self.extra == other.extra
    }
}

impl Eq for TlsConfig {}

impl Default for TlsConfig {
    /// Mozilla's roots and the CAs of `SSL_CERT_FILE` / `SSL_CERT_DIR`; when those cannot be
    /// read, Mozilla's roots alone (with a warning).
    fn default() -> Self {
        static SHARED: OnceLock<TlsConfig> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                TlsConfig::new(&[]).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "extra CAs ignored");
                    TlsConfig::build(Vec::new(), Vec::new())
                })
            })
            .clone()
    }
}

impl TlsConfig {
    /// Mozilla's roots, the CAs in `SSL_CERT_FILE` (a PEM file) and `SSL_CERT_DIR` (a directory
    /// of PEM files) when set, and those in each of `extra_ca_files`.
    ///
    /// # Errors
    /// [`NetError::Tls`] for a file that cannot be read or holds no certificate.
    pub fn new(extra_ca_files: &[PathBuf]) -> Result<Self, NetError> {
        let mut files: Vec<PathBuf> = Vec::new();
        if let Some(file) = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
            files.push(PathBuf::from(file));
        }
        if let Some(dir) = std::env::var_os("SSL_CERT_DIR").filter(|v| !v.is_empty()) {
            // OpenSSL's form: a list of directories.
            for dir in std::env::split_paths(&dir) {
                let entries = std::fs::read_dir(&dir).map_err(|e| NetError::Tls {
                    reason: format!("SSL_CERT_DIR {}: {e}", dir.display()),
                })?;
                let mut found: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect();
                found.sort();
                files.extend(found);
            }
        }
        files.extend(extra_ca_files.iter().cloned());
        let mut certs = Vec::new();
        for file in &files {
            // A directory may hold other files than certificates: only a named file must be one.
            let named = !file.parent().is_some_and(|p| {
                std::env::var_os("SSL_CERT_DIR")
                    .is_some_and(|d| std::env::split_paths(&d).any(|d| d == p))
            });
            match read_certificates(file) {
                Ok(found) => certs.extend(found),
                Err(e) if named => return Err(e),
                Err(_) => {}
            }
        }
        Ok(Self::build(certs, files))
    }

    #[allow(
        clippy::expect_used,
        reason = "ring supports every protocol version rustls enables by default"
    )]
    fn build(extra: Vec<CertificateDer<'static>>, files: Vec<PathBuf>) -> Self {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let (added, ignored) = roots.add_parsable_certificates(extra);
        if ignored > 0 {
            tracing::warn!(
                added,
                ignored,
                "some extra CA certificates could not be used"
            );
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConfig {
            config: Arc::new(config),
            extra: files,
        }
    }

    /// The rustls configuration.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }
}

/// The certificates of PEM file `path`.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| NetError::Tls {
            reason: format!("{}: {e}", path.display()),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| NetError::Tls {
            reason: format!("{}: {e}", path.display()),
        })?;
    if certs.is_empty() {
        return Err(NetError::Tls {
            reason: format!("{}: no PEM certificate in it", path.display()),
        });
    }
    Ok(certs)
}

/// What a failed TLS connection means for the user, when `error` (or one of its causes) is a
/// TLS error.
pub(crate) fn explain(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(tls));
        }
        // An I/O error's `source` skips the error it wraps: go into it.
        cause = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn describe(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => "its TLS certificate is signed by an authority this machine does not trust (a self-hosted server? add its CA with SSL_CERT_FILE or the `tls.ca_file` setting)".to_owned(),
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "its TLS certificate is for another name (a wrong address, or a server pretending to be this one)".to_owned()
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "its TLS certificate has expired".to_owned()
        }
        other => format!("TLS: {other}"),
    }
}

/// A connection to a relay: plain TCP for `ws://`, TLS for `wss://`.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Host and port of `ws://` / `wss://` (or `http://` / `https://`) URL `url`, and whether it
/// is TLS.
pub(crate) fn endpoint(url: &str) -> Option<(String, u16, bool)> {
    let (rest, tls) = if let Some(r) = url.strip_prefix("wss://") {
        (r, true)
    } else if let Some(r) = url.strip_prefix("https://") {
        (r, true)
    } else if let Some(r) = url.strip_prefix("ws://") {
        (r, false)
    } else {
        (url.strip_prefix("http://")?, false)
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let default = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default,
            None => return None,
        };
        (host.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().ok()?),
            None => (authority.to_owned(), default),
        }
    };
    (!host.is_empty()).then_some((host, port, tls))
}

/// Whether `url` is a relay or server without TLS (`ws://`, `http://`) on another machine:
/// what goes to it can be read and changed on the way.
pub fn plaintext_off_machine(url: &str) -> bool {
    endpoint(url).is_some_and(|(host, _, tls)| !tls && !is_loopback(&host))
}

/// Whether `host` is this machine (a name or an address of loopback).
pub(crate) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Stream {
    /// Connects to the relay at `url`, with TLS for `wss://`; the message says what failed.
    pub(crate) async fn connect(url: &str, tls: &TlsConfig) -> Result<Self, String> {
        let (host, port, secure) = endpoint(url).ok_or_else(|| "not a relay URL".to_owned())?;
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| e.to_string())?;
        // No Nagle: EVENT and REQ frames are small and must not wait for delayed ACKs.
        let _ = tcp.set_nodelay(true);
        if !secure {
            return Ok(Stream::Plain(tcp));
        }
        let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(tls.client_config());
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| explain(&e).unwrap_or_else(|| format!("TLS: {e}")))?;
        Ok(Stream::Tls(Box::new(stream)))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An HTTP client connector for `http://` and `https://` with this trust, connecting within
/// `timeout`.
pub(crate) fn https_connector(
    tls: &TlsConfig,
    timeout: std::time::Duration,
) -> hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(timeout));
    http.set_nodelay(true);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls.client_config()).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

#[cfg(test)]
mod tests {
    use super::{endpoint, is_loopback};

    #[test]
    fn endpoints_and_loopback() {
        assert_eq!(
            endpoint("wss://relay.example"),
            Some(("relay.example".into(), 443, true))
        );
        assert_eq!(
            endpoint("ws://127.0.0.1:7777/x"),
            Some(("127.0.0.1".into(), 7777, false))
        );
        assert_eq!(
            endpoint("https://[::1]:8443"),
            Some(("::1".into(), 8443, true))
        );
        assert_eq!(endpoint("http://h"), Some(("h".into(), 80, false)));
        assert_eq!(endpoint("ftp://h"), None);
        assert_eq!(endpoint("ws://:80"), None);
        assert_eq!(endpoint("ws://h:notaport"), None);
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && is_loopback("LOCALHOST"));
        assert!(!is_loopback("relay.example") && !is_loopback("10.0.0.1"));
    }
}

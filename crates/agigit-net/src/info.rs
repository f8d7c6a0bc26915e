//! A relay's NIP-11 information document — where a relay says which key it holds, so a client
//! can name a relay by its key and notice when the server at a URL is no longer the one it added
//! — and the NIP-65 relay list through which a key is turned into a URL.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use nostr::prelude::{Event, Kind, PublicKey};

use crate::error::NetError;

/// The largest information document read; a longer one is refused.
pub const MAX_INFO_BYTES: usize = 64 << 10;

/// The most URLs taken from one relay list.
pub const MAX_LISTED_URLS: usize = 32;

/// What a relay's NIP-11 document says about who it is. Every field is optional: other relays
/// publish less than agigit-relay does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayInfo {
    /// `name`.
    pub name: Option<String>,
    /// `pubkey`: the operator's contact key (agigit-relay puts its own key there too).
    pub pubkey: Option<PublicKey>,
    /// `self`: the relay's own key.
    pub self_key: Option<PublicKey>,
    /// `software`.
    pub software: Option<String>,
    /// `supported_nips`: the NIP numbers the relay says it implements (entries that are not
    /// numbers are skipped; at most [`MAX_NIPS`] kept).
    pub supported_nips: Vec<u16>,
}

/// The most `supported_nips` entries a document is read for.
pub const MAX_NIPS: usize = 256;

#[derive(serde::Deserialize)]
struct Document {
    name: Option<serde_json::Value>,
    pubkey: Option<serde_json::Value>,
    #[serde(rename = "self")]
    self_key: Option<serde_json::Value>,
    software: Option<serde_json::Value>,
    supported_nips: Option<serde_json::Value>,
}

impl RelayInfo {
    /// The key that names the relay: `self`, else `pubkey`.
    pub fn key(&self) -> Option<PublicKey> {
        self.self_key.or(self.pubkey)
    }

    /// Reads a NIP-11 document sent by `server`. Unknown fields are ignored; `pubkey` and
    /// `self`, when present and not null, must be 64 hex digits of a valid key.
    ///
    /// # Errors
    /// [`NetError::TooLarge`] past [`MAX_INFO_BYTES`]; [`NetError::Malformed`] for bytes that
    /// are not a JSON object or a key field that is not a key.
    pub fn parse(server: &str, bytes: &[u8]) -> Result<Self, NetError> {
        if bytes.len() > MAX_INFO_BYTES {
            return Err(NetError::TooLarge {
                server: server.to_owned(),
                what: "its information document (NIP-11)".to_owned(),
                limit: MAX_INFO_BYTES as u64,
                unit: "bytes",
            });
        }
        let malformed = |reason: String| NetError::Malformed {
            server: server.to_owned(),
            what: "information document (NIP-11)",
            reason,
        };
        let doc: Document = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        let key = |field: &str, value: Option<serde_json::Value>| match value {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s))
                if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                // A key that is no point on the curve names no one.
                PublicKey::from_hex(&s)
                    .and_then(|k| k.xonly().map(|_| k))
                    .map(Some)
                    .map_err(|e| malformed(format!("{field}: {e}")))
            }
            Some(_) => Err(malformed(format!("{field} is not a key in 64 hex digits"))),
        };
        let text = |value: Option<serde_json::Value>| match value {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        };
        Ok(RelayInfo {
            name: text(doc.name),
            pubkey: key("pubkey", doc.pubkey)?,
            self_key: key("self", doc.self_key)?,
            software: text(doc.software),
            supported_nips: match doc.supported_nips {
                Some(serde_json::Value::Array(nips)) => nips
                    .iter()
                    .filter_map(|n| u16::try_from(n.as_u64()?).ok())
                    .take(MAX_NIPS)
                    .collect(),
                _ => Vec::new(),
            },
        })
    }

    /// Whether the relay says it implements NIP `nip`.
    pub fn supports(&self, nip: u16) -> bool {
        self.supported_nips.contains(&nip)
    }

    /// The document as agigit-relay writes it (the fields this type knows).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "name": self.name,
            "pubkey": self.pubkey.map(|k| k.to_hex()),
            "self": self.self_key.map(|k| k.to_hex()),
            "software": self.software,
            "supported_nips": self.supported_nips,
        })
        .to_string()
    }
}

/// The HTTP URL a NIP-11 document is asked for at: `ws://host[:port][/path]` → `http://…`,
/// `wss://…` → `https://…`.
///
/// # Errors
/// [`NetError::Url`] for a URL that is not `ws://…` or `wss://…`.
pub fn info_url(relay: &str) -> Result<String, NetError> {
    crate::pool::check_relay_url(relay)?;
    Ok(http_url(relay))
}

/// The same host and port over HTTP: `ws://…` → `http://…`, `wss://…` → `https://…` (where an
/// agigit relay serves NIP-11 and Blossom). Unchecked: see [`info_url`].
pub fn http_url(relay: &str) -> String {
    match relay.strip_prefix("wss://") {
        Some(rest) => format!("https://{rest}"),
        None => relay.replacen("ws://", "http://", 1),
    }
}

/// Asks the relay at `relay` (`ws://…`) for its NIP-11 document, within `timeout` in all.
///
/// # Errors
/// [`NetError::Url`], [`NetError::Connection`], [`NetError::Http`], [`NetError::Timeout`], and
/// [`RelayInfo::parse`]'s errors.
pub async fn fetch_relay_info(relay: &str, timeout: Duration) -> Result<RelayInfo, NetError> {
    fetch_relay_info_with(relay, timeout, &crate::tls::TlsConfig::default()).await
}

/// As [`fetch_relay_info`], trusting what `tls` says for a `wss://` relay.
///
/// # Errors
/// As [`fetch_relay_info`].
pub async fn fetch_relay_info_with(
    relay: &str,
    timeout: Duration,
    tls: &crate::tls::TlsConfig,
) -> Result<RelayInfo, NetError> {
    let url = info_url(relay)?;
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| NetError::Url {
            url: relay.to_owned(),
            reason: e.to_string(),
        })?;
    let connector = crate::tls::https_connector(tls, timeout);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header(hyper::header::ACCEPT, "application/nostr+json")
        .body(Empty::new())
        .map_err(|e| NetError::Url {
            url: relay.to_owned(),
            reason: e.to_string(),
        })?;
    let exchange = async {
        let response =
            client
                .request(request)
                .await
                .map_err(|e| match crate::tls::explain(&e) {
                    Some(why) => NetError::Tls {
                        reason: format!("{relay}: {why}"),
                    },
                    None => NetError::Connection {
                        server: relay.to_owned(),
                        reason: format!("asking for its information document: {e}"),
                    },
                })?;
        if response.status() != StatusCode::OK {
            return Err(NetError::Http {
                server: relay.to_owned(),
                status: response.status().as_u16(),
                reason: "no information document (NIP-11)".to_owned(),
            });
        }
        // One byte past the limit tells "too large" from "exactly the limit".
        let limited = http_body_util::Limited::new(response.into_body(), MAX_INFO_BYTES + 1);
        let body = limited.collect().await.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                NetError::TooLarge {
                    server: relay.to_owned(),
                    what: "its information document (NIP-11)".to_owned(),
                    limit: MAX_INFO_BYTES as u64,
                    unit: "bytes",
                }
            } else {
                NetError::Connection {
                    server: relay.to_owned(),
                    reason: format!("reading its information document: {e}"),
                }
            }
        })?;
        RelayInfo::parse(relay, &body.to_bytes())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(NetError::Timeout {
                what: format!("{relay}: its information document"),
                secs: timeout.as_secs(),
            })
        })
}

/// The relay URLs `event` lists — a NIP-65 relay list (kind 10002) by `author` — in its order,
/// without repeats, at most [`MAX_LISTED_URLS`], keeping only `ws://` URLs this client can use.
/// Empty for an event of another kind or author (the caller has verified its signature).
pub fn listed_relays(event: &Event, author: &PublicKey) -> Vec<String> {
    listed(event, author, Kind::RelayList, "r", |url| {
        crate::pool::check_relay_url(url).is_ok()
    })
}

/// The Blossom servers `event` lists — a BUD-03 server list (kind 10063) by `author` — in its
/// order, without repeats, at most [`MAX_LISTED_URLS`], keeping only `http://` and `https://`
/// URLs with a host (and no user name, password, query or fragment). Empty for an event of
/// another kind or author (the caller has verified its signature).
pub fn listed_blob_servers(event: &Event, author: &PublicKey) -> Vec<String> {
    listed(event, author, Kind::from(10063u16), "server", |url| {
        is_blob_server_url(url)
    })
}

/// Whether `url` can name a Blossom server: `http://` or `https://`, a host, nothing that
/// would be sent elsewhere than the server itself (credentials, a query, a fragment).
pub fn is_blob_server_url(url: &str) -> bool {
    nostr::prelude::Url::parse(url).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.has_host()
            && u.username().is_empty()
            && u.password().is_none()
            && u.query().is_none()
            && u.fragment().is_none()
    })
}

/// The first values of `tag` tags in `event` (of `kind`, by `author`) that pass `keep`, as
/// [`listed_relays`] describes.
fn listed(
    event: &Event,
    author: &PublicKey,
    kind: Kind,
    tag: &str,
    keep: impl Fn(&str) -> bool,
) -> Vec<String> {
    if event.kind != kind || event.pubkey != *author {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for t in event.tags.iter() {
        let fields = t.as_slice();
        if fields.first().map(String::as_str) != Some(tag) {
            continue;
        }
        let Some(url) = fields.get(1) else { continue };
        let url = url.trim_end_matches('/');
        if keep(url) && !out.iter().any(|u| u == url) {
            out.push(url.to_owned());
            if out.len() == MAX_LISTED_URLS {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> PublicKey {
        let mut bytes = [1u8; 32];
        bytes[31] = seed;
        let secret = nostr::prelude::SecretKey::from_slice(&bytes).unwrap();
        nostr::prelude::Keys::new(secret).public_key()
    }

    proptest! {
        #[test]
        fn what_agigit_relay_writes_reads_back(
            name in proptest::option::of("[ -~]{0,40}"),
            pubkey in proptest::option::of(1u8..=255),
            self_key in proptest::option::of(1u8..=255),
            supported_nips in proptest::collection::vec(any::<u16>(), 0..8),
        ) {
            let info = RelayInfo {
                name,
                pubkey: pubkey.map(key),
                self_key: self_key.map(key),
                software: Some("agigit".to_owned()),
                supported_nips,
            };
            let back = RelayInfo::parse("ws://r", info.to_json().as_bytes()).unwrap();
            prop_assert_eq!(back, info);
        }

        #[test]
        fn any_bytes_give_a_document_or_a_typed_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            match RelayInfo::parse("ws://r", &bytes) {
                Ok(_) | Err(NetError::Malformed { .. }) => {}
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }
    }

    #[test]
    fn corrupt_documents_are_refused_with_the_reason() {
        let k = key(7).to_hex();
        let good = format!(r#"{{"name":"r","self":"{k}","supported_nips":[1,11]}}"#);
        let info = RelayInfo::parse("ws://r", good.as_bytes()).unwrap();
        assert_eq!(info.key(), Some(key(7)));
        assert!(info.supports(11) && !info.supports(50));
        // Entries that are not NIP numbers are skipped, not trusted.
        let odd = r#"{"supported_nips":[50,"x",-1,70000,1.5,null]}"#;
        assert_eq!(
            RelayInfo::parse("ws://r", odd.as_bytes())
                .unwrap()
                .supported_nips,
            [50]
        );
        // A key one digit short, a key that is no curve point, a number, truncated JSON.
        for bad in [
            format!(r#"{{"self":"{}"}}"#, &k[1..]),
            format!(r#"{{"self":"{}"}}"#, "f".repeat(64)),
            r#"{"pubkey":42}"#.to_owned(),
            good[..good.len() - 3].to_owned(),
            "[]".to_owned(),
        ] {
            assert!(
                matches!(
                    RelayInfo::parse("ws://r", bad.as_bytes()),
                    Err(NetError::Malformed { .. })
                ),
                "{bad}"
            );
        }
        let huge = format!(r#"{{"name":"{}"}}"#, "x".repeat(MAX_INFO_BYTES));
        assert!(matches!(
            RelayInfo::parse("ws://r", huge.as_bytes()),
            Err(NetError::TooLarge { .. })
        ));
        // `self` wins over `pubkey`; null is absent.
        let both = format!(
            r#"{{"pubkey":"{}","self":"{}"}}"#,
            key(1).to_hex(),
            key(2).to_hex()
        );
        assert_eq!(
            RelayInfo::parse("ws://r", both.as_bytes()).unwrap().key(),
            Some(key(2))
        );
        let null = format!(r#"{{"pubkey":"{}","self":null}}"#, key(1).to_hex());
        assert_eq!(
            RelayInfo::parse("ws://r", null.as_bytes()).unwrap().key(),
            Some(key(1))
        );
    }

    #[test]
    fn server_lists_keep_only_usable_blob_server_urls_of_their_author() {
        use nostr::prelude::{EventBuilder, FinalizeEvent as _, Keys, Tag};
        let owner = Keys::generate();
        let tags = [
            "https://blobs.example/",
            "https://blobs.example",
            "http://127.0.0.1:7701",
            "ftp://blobs.example",
            "https://user:pw@blobs.example",
            "https://blobs.example/?track=1",
            "javascript:alert(1)",
            "not a url",
        ]
        .into_iter()
        .map(|u| Tag::parse(["server", u]).unwrap())
        .chain([Tag::parse(["r", "https://other.example"]).unwrap()]);
        let list = EventBuilder::new(Kind::from(10063u16), "")
            .tags(tags)
            .finalize(&owner)
            .unwrap();
        assert_eq!(
            listed_blob_servers(&list, &owner.public_key()),
            ["https://blobs.example", "http://127.0.0.1:7701"]
        );
        // Another author's list, or a list of another kind, names nothing.
        assert!(listed_blob_servers(&list, &Keys::generate().public_key()).is_empty());
        assert!(listed_relays(&list, &owner.public_key()).is_empty());
    }
}

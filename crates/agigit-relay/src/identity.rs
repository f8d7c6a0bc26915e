//! The relay's own Nostr key: who it is, so that clients can name it by its key and notice when
//! the server at a URL is no longer the one they added.
//!
//! The key is configured (`key_file`) or generated on first start and kept in the data directory
//! (`relay.key`, mode 0600). The relay advertises it in its NIP-11 document (`pubkey` and `self`)
//! and signs a self-description — a NIP-65 relay list (kind 10002) of its key whose `r` tags are
//! the URLs it serves — which it stores itself and can publish to other relays
//! ([`announce`]), so a client that knows any of them can turn the key into a URL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agigit_event::Signer as _;
use futures_util::{SinkExt as _, StreamExt as _};
use nostr::prelude::{
    ClientMessage, Event, Keys, Kind, RelayMessage, Tag, Timestamp, UnsignedEvent,
};

/// The file a relay keeps its generated key in, inside its data directory.
pub const KEY_FILE: &str = "relay.key";

/// Why the relay's key cannot be loaded or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The key file cannot be read or written.
    #[error("relay key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file holds no secret key.
    #[error("relay key file {path}: not a secret key (nsec… or 64 hex digits): {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The self-description cannot be signed.
    #[error("cannot sign the relay's self-description: {0}")]
    Sign(String),
}

/// The key in `path`, or — when the file does not exist — a new key written there (mode 0600,
/// through a temporary file, so a crash leaves no half-written key).
///
/// # Errors
/// [`IdentityError`] when the file cannot be read, holds no key, or cannot be written.
pub fn load_or_create(path: &Path) -> Result<Keys, IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => Keys::parse(text.trim()).map_err(|e| IdentityError::Malformed {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keys = Keys::generate();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let temp = path.with_extension("key.tmp");
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            let mut file = options.open(&temp).map_err(io)?;
            std::io::Write::write_all(
                &mut file,
                format!("{}\n", keys.secret_key().to_secret_hex()).as_bytes(),
            )
            .map_err(io)?;
            file.sync_all().map_err(io)?;
            std::fs::rename(&temp, path).map_err(io)?;
            Ok(keys)
        }
        Err(e) => Err(io(e)),
    }
}

/// The relay's self-description: a NIP-65 relay list (kind 10002) signed by its key, one `r`
/// tag per URL it serves.
///
/// # Errors
/// [`IdentityError::Sign`] when signing fails.
pub fn self_description(
    keys: &Keys,
    urls: &[String],
    at: Timestamp,
) -> Result<Event, IdentityError> {
    let tags = urls
        .iter()
        .map(|u| Tag::parse(["r", u.as_str()]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| IdentityError::Sign(e.to_string()))?;
    let unsigned = UnsignedEvent::new(keys.public_key(), at, Kind::RelayList, tags, "");
    keys.sign_event(unsigned)
        .map_err(|e| IdentityError::Sign(e.to_string()))
}

/// Why publishing the self-description to another relay failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnnounceError {
    /// No WebSocket could be opened, or it broke.
    #[error("{url}: {reason}")]
    Connection {
        /// The relay.
        url: String,
        /// Why.
        reason: String,
    },
    /// The relay said no.
    #[error("{url} refused it: {reason}")]
    Refused {
        /// The relay.
        url: String,
        /// Its reason.
        reason: String,
    },
    /// No `OK` in time.
    #[error("{url}: no answer within {secs} s")]
    Timeout {
        /// The relay.
        url: String,
        /// The limit.
        secs: u64,
    },
}

/// The largest message read from the other relay while waiting for its `OK`.
const MAX_ANSWER_BYTES: usize = 64 << 10;

/// Publishes `event` to the relay at `url` (`ws://…`) and waits at most `timeout` for its `OK`.
///
/// # Errors
/// [`AnnounceError`] when it cannot connect, the relay refuses, or no answer comes in time.
pub async fn announce(url: &str, event: &Event, timeout: Duration) -> Result<(), AnnounceError> {
    let connection = |reason: String| AnnounceError::Connection {
        url: url.to_owned(),
        reason,
    };
    let exchange = async {
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_ANSWER_BYTES))
            .max_frame_size(Some(MAX_ANSWER_BYTES));
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(|e| connection(e.to_string()))?;
        let message = ClientMessage::event(event.clone())
            .try_as_json()
            .map_err(|e| connection(e.to_string()))?;
        ws.send(tokio_tungstenite::tungstenite::Message::text(message))
            .await
            .map_err(|e| connection(e.to_string()))?;
        while let Some(frame) = ws.next().await {
            let frame = frame.map_err(|e| connection(e.to_string()))?;
            let Ok(text) = frame.to_text() else { continue };
            if let Ok(RelayMessage::Ok {
                event_id,
                status,
                message,
            }) = RelayMessage::from_json(text)
                && event_id == event.id
            {
                let _ = ws.close(None).await;
                return if status {
                    Ok(())
                } else {
                    Err(AnnounceError::Refused {
                        url: url.to_owned(),
                        reason: message.into_owned(),
                    })
                };
            }
        }
        Err(connection("closed before answering".to_owned()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(AnnounceError::Timeout {
                url: url.to_owned(),
                secs: timeout.as_secs(),
            })
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_key_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("agigit-relay-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join(KEY_FILE);
        let first = load_or_create(&path).unwrap();
        let again = load_or_create(&path).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key\n").unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(IdentityError::Malformed { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_self_description_lists_the_urls_under_the_relays_key() {
        let keys = Keys::generate();
        let urls = vec![
            "ws://127.0.0.1:7777".to_owned(),
            "wss://r.example".to_owned(),
        ];
        let event = self_description(&keys, &urls, Timestamp::from_secs(1_700_000_000)).unwrap();
        event.verify().unwrap();
        assert_eq!(event.kind, Kind::RelayList);
        assert_eq!(event.pubkey, keys.public_key());
        let listed: Vec<&str> = event
            .tags
            .iter()
            .filter(|t| t.as_slice().first().map(String::as_str) == Some("r"))
            .filter_map(|t| t.content())
            .collect();
        assert_eq!(listed, ["ws://127.0.0.1:7777", "wss://r.example"]);
    }
}

//! A session against a relay reached over TLS: create a key, announce a repository (kind
//! 30717) and point its `main` branch at a commit (kind 30718), publish both to a `wss://`
//! relay, read them back, and verify them the way a reader does.
//!
//! ```text
//! cargo run --example announce                          # a TLS relay of its own, on loopback,
//!                                                       # with a CA made for the run
//! cargo run --example announce -- wss://relay.example   # your relay (Mozilla's roots, plus
//!                                                       # SSL_CERT_FILE / SSL_CERT_DIR)
//! AGIGIT_NSEC=<64 hex chars> cargo run --example announce   # a key you already have
//! ```

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agigit::net::tls::TlsConfig;
use agigit::net::{PoolOptions, RelayPool, Roles};
use agigit_event::nostr::prelude::{Filter, Keys, Kind, Timestamp, Url};
use agigit_event::{
    K256Verifier, RefName, RepoAnnouncement, RepoId, RepoState, Signed, Verifier, Visibility, kinds,
};
use agigit_hash::ObjectId;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

#[tokio::main]
async fn main() -> Result<()> {
    // 1. A key: taken from the environment when set, otherwise generated. The secret never
    //    leaves this process; only the public key appears in the events.
    let keys = match std::env::var("AGIGIT_NSEC") {
        Ok(secret) => Keys::parse(secret.trim())?,
        Err(_) => Keys::generate(),
    };
    eprintln!("public key: {}", keys.public_key());

    // 2. The relay: the one named on the command line, or one started here with a certificate
    //    from a CA made for this run (which the client then trusts, as a self-hosted relay's
    //    users do with SSL_CERT_FILE or `[tls] ca_file`).
    let (relay_url, tls, _local) = match std::env::args().nth(1) {
        Some(url) => (url, TlsConfig::new(&[])?, None),
        None => {
            let local = LocalTlsRelay::start().await?;
            let tls = TlsConfig::new(std::slice::from_ref(&local.ca_file))?;
            (local.url.clone(), tls, Some(local))
        }
    };
    eprintln!("relay: {relay_url}");

    // 3. The announcement (kind 30717): what the repository is and where it lives — the relay,
    //    and the Blossom server on its port (https:// beside wss://).
    let repo = RepoId::new("tiny-llm")?;
    let mut announcement = RepoAnnouncement::new(repo.clone(), Visibility::Public);
    announcement.name = Some("Tiny LLM".to_owned());
    announcement.description = Some("A 4-layer transformer for agigit's examples".to_owned());
    announcement.license = Some("MIT OR Apache-2.0".to_owned());
    announcement.topics = vec!["llm".to_owned(), "example".to_owned()];
    announcement.relays.push(relay_url.parse()?);
    announcement
        .blob_servers
        .push(Url::parse(&agigit::net::info::http_url(&relay_url))?);
    let now = Timestamp::now();
    let announcement = Signed::sign(announcement, &keys, now)?;

    // 4. The state (kind 30718): `main` points at a commit and `HEAD` at `main`. The commit id
    //    here stands in for a real commit object's id.
    let main = RefName::branch("main")?;
    let mut state = RepoState::new(repo.clone());
    state
        .refs
        .insert(main.clone(), ObjectId::digest(b"agigit example commit"));
    state.head = Some(main);
    let state = Signed::sign(state, &keys, now)?;
    println!("{}", announcement.to_json());
    println!("{}", state.to_json());

    // 5. Publish both over TLS: the certificate is checked against the trusted roots and the
    //    relay's name before a byte of Nostr is sent.
    let pool = RelayPool::new(
        PoolOptions {
            tls,
            ..PoolOptions::default()
        },
        Some(Arc::new(keys.clone())),
    );
    pool.add_relay(&relay_url, Roles::BOTH)?;
    for event in [announcement.event(), state.event()] {
        let report = pool.publish(event, 1).await?;
        eprintln!("published {} ({} accepted)", event.id, report.accepted());
    }

    // 6. Read them back as a client would: the pool verifies every event it receives; parse
    //    them, cross-check the signatures with the independent k256 verifier, and resolve
    //    which state counts (the owner's, or a maintainer's the announcement lists).
    let owner = keys.public_key();
    let events = pool
        .query(&[Filter::new()
            .author(owner)
            .kinds([
                kinds::kind(kinds::REPO_ANNOUNCEMENT),
                kinds::kind(kinds::REPO_STATE),
            ])
            .identifier(repo.as_str())])
        .await?;
    let coordinate = announcement.body().coordinate(owner);
    let found = agigit_event::newest_announcement(&coordinate, events.clone())
        .ok_or("the relay did not give the announcement back")?;
    for e in &events {
        K256Verifier.verify_event(e)?;
    }
    let states = events
        .into_iter()
        .filter(|e| e.kind == Kind::from(kinds::REPO_STATE));
    let current = found
        .resolve_state(states)
        .current
        .ok_or("the relay did not give the state back")?;
    eprintln!(
        "read back over TLS and verified: {} — announcement {}, state {}; HEAD -> {}",
        coordinate,
        found.id(),
        current.id(),
        current
            .body()
            .head_commit()
            .map(|c| c.to_string())
            .unwrap_or_default()
    );
    Ok(())
}

/// An agigit relay on a loopback port serving `wss://` with a certificate for `localhost` from
/// a CA made here; stops when dropped.
struct LocalTlsRelay {
    url: String,
    ca_file: PathBuf,
    dir: PathBuf,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl LocalTlsRelay {
    async fn start() -> Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = std::env::temp_dir().join(format!("agigit-announce-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(&key, &ca)?;
        let (ca_file, cert_file, key_file) = (
            dir.join("ca.pem"),
            dir.join("cert.pem"),
            dir.join("key.pem"),
        );
        std::fs::write(&ca_file, ca.pem())?;
        std::fs::write(&cert_file, cert.pem())?;
        std::fs::write(&key_file, key.serialize_pem())?;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let relay = agigit_relay::Relay::new(
            Arc::new(agigit_relay::SqliteEventStore::in_memory()?),
            agigit_relay::server::Limits::default(),
            agigit_relay::server::Info::default(),
        )
        .with_tls(&cert_file, &key_file)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(agigit_relay::server::serve(listener, relay, async {
            let _ = stopped.await;
        }));
        // Give the listener a moment; the pool retries a refused connection anyway.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(LocalTlsRelay {
            url: format!("wss://localhost:{port}"),
            ca_file,
            dir,
            _stop: stop,
        })
    }
}

impl Drop for LocalTlsRelay {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

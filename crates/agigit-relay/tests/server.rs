//! The relay over a real socket on loopback: NIP-01 messages, live subscriptions, refusals with
//! their machine-readable prefixes, NIP-11. Every wait is bounded.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::sync::Arc;
use std::time::Duration;

use agigit_relay::server::{Info, Limits, Relay, serve};
use agigit_relay::{AuthPolicy, SqliteEventStore};
use futures_util::{SinkExt, StreamExt};
use nostr::prelude::{
    ClientMessage, Event, Filter, Keys, Kind, RelayMessage, SignEvent, SubscriptionId, Timestamp,
    UnsignedEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

type Started = (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>);

async fn start() -> Result<Started, Box<dyn std::error::Error>> {
    start_with(AuthPolicy::Off).await
}

async fn start_with(auth: AuthPolicy) -> Result<Started, Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let limits = Limits {
        max_filters: 3,
        ..Limits::default()
    };
    let relay = Relay::new(
        Arc::new(SqliteEventStore::in_memory()?),
        limits,
        Info::default(),
    )
    .with_auth(auth);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, relay, async {
        let _ = stopped.await;
    }));
    Ok((addr, stop))
}

async fn connect(addr: std::net::SocketAddr) -> Result<Ws, Box<dyn std::error::Error>> {
    let (ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/")),
    )
    .await??;
    Ok(ws)
}

async fn send(ws: &mut Ws, msg: &ClientMessage<'_>) -> TestResult {
    ws.send(Message::Text(msg.try_as_json()?.into())).await?;
    Ok(())
}

async fn recv(ws: &mut Ws) -> Result<RelayMessage<'static>, Box<dyn std::error::Error>> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await?
            .ok_or("closed")??;
        if let Message::Text(t) = msg {
            return Ok(RelayMessage::from_json(t.as_str())?);
        }
    }
}

fn note(keys: &Keys, text: &str) -> Result<Event, Box<dyn std::error::Error>> {
    let unsigned = UnsignedEvent::new(
        keys.public_key(),
        Timestamp::now(),
        Kind::TextNote,
        [],
        text,
    );
    Ok(SignEvent::sign_event(keys, unsigned)?)
}

fn ok_of(msg: RelayMessage<'_>) -> (bool, String) {
    match msg {
        RelayMessage::Ok {
            status, message, ..
        } => (status, message.into_owned()),
        other => panic!("expected OK, got {other:?}"),
    }
}

#[tokio::test]
async fn publish_query_and_live_subscriptions() -> TestResult {
    let (addr, _stop) = start().await?;
    let keys = Keys::generate();
    let mut a = connect(addr).await?;
    let first = note(&keys, "first")?;
    send(&mut a, &ClientMessage::event(first.clone())).await?;
    assert_eq!(ok_of(recv(&mut a).await?), (true, String::new()));
    send(&mut a, &ClientMessage::event(first.clone())).await?;
    let (status, message) = ok_of(recv(&mut a).await?);
    assert!(status && message.starts_with("duplicate:"), "{message}");

    // REQ: stored events, then EOSE; then live events from another connection.
    let sub = SubscriptionId::new("s1");
    send(
        &mut a,
        &ClientMessage::req(sub.clone(), vec![Filter::new().author(keys.public_key())]),
    )
    .await?;
    match recv(&mut a).await? {
        RelayMessage::Event { event, .. } => assert_eq!(event.id, first.id),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        recv(&mut a).await?,
        RelayMessage::EndOfStoredEvents(_)
    ));
    let mut b = connect(addr).await?;
    let second = note(&keys, "second")?;
    send(&mut b, &ClientMessage::event(second.clone())).await?;
    assert!(ok_of(recv(&mut b).await?).0);
    match recv(&mut a).await? {
        RelayMessage::Event {
            subscription_id,
            event,
        } => {
            assert_eq!(subscription_id.as_ref(), &sub);
            assert_eq!(event.id, second.id);
        }
        other => panic!("{other:?}"),
    }
    // After CLOSE, no more live events for it.
    send(&mut a, &ClientMessage::close(sub)).await?;
    send(&mut b, &ClientMessage::event(note(&keys, "third")?)).await?;
    assert!(ok_of(recv(&mut b).await?).0);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), a.next())
            .await
            .is_err(),
        "closed subscription stays quiet"
    );
    Ok(())
}

#[tokio::test]
async fn bad_input_is_refused_and_the_relay_keeps_serving() -> TestResult {
    let (addr, _stop) = start().await?;
    let keys = Keys::generate();
    let mut ws = connect(addr).await?;

    ws.send(Message::Text("{not json".into())).await?;
    assert!(matches!(recv(&mut ws).await?, RelayMessage::Notice(m) if m.starts_with("invalid:")));
    ws.send(Message::Text(r#"["HELLO","x"]"#.into())).await?;
    assert!(matches!(recv(&mut ws).await?, RelayMessage::Notice(m) if m.starts_with("invalid:")));

    // A forged event: content changed after signing.
    let mut forged = note(&keys, "honest")?;
    forged.content = "forged".into();
    send(&mut ws, &ClientMessage::event(forged.clone())).await?;
    let (status, message) = ok_of(recv(&mut ws).await?);
    assert!(!status && message.starts_with("invalid:"), "{message}");
    // A right id with a wrong signature: another event's signature.
    let mut bad_sig = note(&keys, "signed by someone else")?;
    bad_sig.sig = note(&keys, "other")?.sig;
    send(&mut ws, &ClientMessage::event(bad_sig)).await?;
    let (status, message) = ok_of(recv(&mut ws).await?);
    assert!(!status && message.starts_with("invalid:"), "{message}");

    // Too many filters, and a filter with too many values.
    let many = vec![Filter::new(); 4];
    send(&mut ws, &ClientMessage::req(SubscriptionId::new("m"), many)).await?;
    assert!(
        matches!(recv(&mut ws).await?, RelayMessage::Closed { message, .. } if message.starts_with("invalid:"))
    );
    let ids = (0..2000u32).map(|i| {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_le_bytes());
        nostr::prelude::EventId::from_byte_array(b)
    });
    send(
        &mut ws,
        &ClientMessage::req(SubscriptionId::new("big"), vec![Filter::new().ids(ids)]),
    )
    .await?;
    assert!(
        matches!(recv(&mut ws).await?, RelayMessage::Closed { message, .. } if message.starts_with("invalid:"))
    );

    // An oversize message closes only that connection; others are served.
    let huge = note(&keys, &"x".repeat(600 << 10))?;
    let _ = send(&mut ws, &ClientMessage::event(huge)).await;
    let mut other = connect(addr).await?;
    send(
        &mut other,
        &ClientMessage::event(note(&keys, "still here")?),
    )
    .await?;
    assert!(ok_of(recv(&mut other).await?).0);
    // Nothing partial was stored: the forged event is not there.
    send(
        &mut other,
        &ClientMessage::req(SubscriptionId::new("q"), vec![Filter::new().id(forged.id)]),
    )
    .await?;
    assert!(matches!(
        recv(&mut other).await?,
        RelayMessage::EndOfStoredEvents(_)
    ));
    Ok(())
}

#[tokio::test]
async fn nip11_information_document() -> TestResult {
    let (addr, _stop) = start().await?;
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: relay\r\nAccept: application/nostr+json\r\nConnection: close\r\n\r\n").await?;
    let mut response = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut response)).await??;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: application/nostr+json")
    );
    let body = response.split("\r\n\r\n").nth(1).ok_or("no body")?;
    let doc: serde_json::Value = serde_json::from_str(body)?;
    assert_eq!(doc["limitation"]["max_filters"], 3);
    assert!(
        doc["supported_nips"]
            .as_array()
            .is_some_and(|n| n.contains(&serde_json::json!(1)))
    );
    Ok(())
}

/// One HTTP/1.1 GET on a fresh connection: the whole answer as text.
async fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
    accept: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: relay\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let mut response = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut response)).await??;
    Ok(response)
}

/// Pages beside the protocols: a browser's `/` and the paths no route takes go to them;
/// NIP-11, WebSocket and the relay's own answers do not.
#[tokio::test]
async fn pages_take_a_browsers_root_and_the_unrouted_paths() -> TestResult {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let pages = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Html("<h1>the pages</h1>") }),
        )
        .route(
            "/r/{name}",
            axum::routing::get(
                |axum::extract::Path(name): axum::extract::Path<String>| async move {
                    format!("repository {name}")
                },
            ),
        );
    let relay = Relay::new(
        Arc::new(SqliteEventStore::in_memory()?),
        Limits::default(),
        Info::default(),
    )
    .with_pages(pages);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, relay, async {
        let _ = stopped.await;
    }));

    let html = http_get(addr, "/", "text/html,application/xhtml+xml,*/*;q=0.8").await?;
    assert!(
        html.starts_with("HTTP/1.1 200") && html.ends_with("<h1>the pages</h1>"),
        "{html}"
    );
    assert!(
        http_get(addr, "/r/tiny", "text/html")
            .await?
            .ends_with("repository tiny")
    );
    let info = http_get(addr, "/", "application/nostr+json").await?;
    assert!(
        info.to_ascii_lowercase()
            .contains("content-type: application/nostr+json"),
        "{info}"
    );
    let plain = http_get(addr, "/", "*/*").await?;
    assert!(plain.contains("connect with a Nostr client"), "{plain}");
    // The WebSocket still reaches the relay.
    let mut ws = connect(addr).await?;
    let keys = Keys::generate();
    send(&mut ws, &ClientMessage::event(note(&keys, "hello")?)).await?;
    assert!(ok_of(recv(&mut ws).await?).0);
    let _ = stop.send(());
    Ok(())
}

/// Interop: `nostr-sdk` 0.44.1's client (software no one here wrote, with its own `nostr` 0.44)
/// publishes to our relay and reads back, and our parser accepts what it sent.
#[tokio::test]
async fn nostr_sdk_client_publishes_and_queries() -> TestResult {
    use nostr_sdk::prelude as sdk;
    let (addr, _stop) = start().await?;
    let keys = sdk::Keys::generate();
    let client = sdk::Client::new(keys.clone());
    client.add_relay(format!("ws://{addr}")).await?;
    tokio::time::timeout(WAIT, client.connect()).await?;
    let sent = tokio::time::timeout(
        WAIT,
        client.send_event_builder(sdk::EventBuilder::text_note("hello from nostr-sdk")),
    )
    .await??;
    assert_eq!(sent.success.len(), 1, "accepted: {:?}", sent.failed);
    let filter = sdk::Filter::new()
        .author(keys.public_key())
        .kind(sdk::Kind::TextNote);
    let events = client.fetch_events(filter, WAIT).await?;
    let got = events.first().ok_or("the event came back")?;
    assert_eq!(got.id, sent.val);
    assert_eq!(got.content, "hello from nostr-sdk");
    // And the same bytes parse and verify with our nostr version.
    let ours = Event::from_json(sdk::JsonUtil::as_json(got))?;
    ours.verify()?;
    client.disconnect().await;
    Ok(())
}

fn auth_event(
    keys: &Keys,
    challenge: &str,
    relay: &str,
) -> Result<Event, Box<dyn std::error::Error>> {
    let tags = [
        nostr::prelude::Tag::parse(["challenge", challenge])?,
        nostr::prelude::Tag::parse(["relay", relay])?,
    ];
    let unsigned = UnsignedEvent::new(
        keys.public_key(),
        Timestamp::now(),
        Kind::Authentication,
        tags,
        "",
    );
    Ok(SignEvent::sign_event(keys, unsigned)?)
}

#[tokio::test]
async fn nip42_auth_gates_writes_and_reads() -> TestResult {
    let (addr, _stop) = start_with(AuthPolicy::All).await?;
    let keys = Keys::generate();
    let mut ws = connect(addr).await?;
    let RelayMessage::Auth { challenge } = recv(&mut ws).await? else {
        panic!("a relay that requires AUTH sends its challenge first");
    };
    let url = format!("ws://{addr}");

    let first = note(&keys, "before auth")?;
    send(&mut ws, &ClientMessage::event(first.clone())).await?;
    let (status, message) = ok_of(recv(&mut ws).await?);
    assert!(
        !status && message.starts_with("auth-required:"),
        "{message}"
    );
    assert!(matches!(recv(&mut ws).await?, RelayMessage::Auth { .. }));
    let sub = SubscriptionId::new("r");
    send(
        &mut ws,
        &ClientMessage::req(sub.clone(), vec![Filter::new()]),
    )
    .await?;
    assert!(
        matches!(recv(&mut ws).await?, RelayMessage::Closed { message, .. } if message.starts_with("auth-required:"))
    );
    assert!(matches!(recv(&mut ws).await?, RelayMessage::Auth { .. }));

    // Wrong challenge, wrong kind: refused.
    send(
        &mut ws,
        &ClientMessage::auth(auth_event(&keys, "guess", &url)?),
    )
    .await?;
    let (status, message) = ok_of(recv(&mut ws).await?);
    assert!(!status && message.starts_with("invalid:"), "{message}");
    send(
        &mut ws,
        &ClientMessage::auth(note(&keys, "not an auth event")?),
    )
    .await?;
    let (status, message) = ok_of(recv(&mut ws).await?);
    assert!(!status && message.starts_with("invalid:"), "{message}");

    // The right challenge for another relay — the same host on another port, or another
    // scheme — is refused: with no public URL configured, the relay tag must name the address
    // the client reached this relay on.
    let port = addr.port();
    for elsewhere in [
        format!("ws://127.0.0.1:{}", port.wrapping_add(1)),
        format!("wss://127.0.0.1:{port}"),
        format!("ws://localhost.attacker:{port}"),
    ] {
        send(
            &mut ws,
            &ClientMessage::auth(auth_event(&keys, &challenge, &elsewhere)?),
        )
        .await?;
        let (status, message) = ok_of(recv(&mut ws).await?);
        assert!(
            !status && message.contains("not this relay"),
            "{elsewhere}: {message}"
        );
    }

    // The right answer opens both.
    send(
        &mut ws,
        &ClientMessage::auth(auth_event(&keys, &challenge, &url)?),
    )
    .await?;
    assert_eq!(ok_of(recv(&mut ws).await?), (true, String::new()));
    send(&mut ws, &ClientMessage::event(first.clone())).await?;
    assert_eq!(ok_of(recv(&mut ws).await?), (true, String::new()));
    send(
        &mut ws,
        &ClientMessage::req(sub, vec![Filter::new().id(first.id)]),
    )
    .await?;
    assert!(
        matches!(recv(&mut ws).await?, RelayMessage::Event { event, .. } if event.id == first.id)
    );
    assert!(matches!(
        recv(&mut ws).await?,
        RelayMessage::EndOfStoredEvents(_)
    ));

    // A challenge is per connection: replaying it elsewhere fails.
    let mut other = connect(addr).await?;
    assert!(matches!(recv(&mut other).await?, RelayMessage::Auth { .. }));
    send(
        &mut other,
        &ClientMessage::auth(auth_event(&keys, &challenge, &url)?),
    )
    .await?;
    assert!(!ok_of(recv(&mut other).await?).0);
    Ok(())
}

/// Interop: `nostr-sdk`'s client answers our NIP-42 challenge by itself and publishes.
#[tokio::test]
async fn nostr_sdk_client_authenticates() -> TestResult {
    use nostr_sdk::prelude as sdk;
    let (addr, _stop) = start_with(AuthPolicy::Writes).await?;
    let keys = sdk::Keys::generate();
    let client = sdk::Client::builder()
        .signer(keys.clone())
        .opts(sdk::ClientOptions::new().automatic_authentication(true))
        .build();
    client.add_relay(format!("ws://{addr}")).await?;
    tokio::time::timeout(WAIT, client.connect()).await?;
    let sent = tokio::time::timeout(
        WAIT,
        client.send_event_builder(sdk::EventBuilder::text_note("authenticated by nostr-sdk")),
    )
    .await??;
    assert_eq!(sent.success.len(), 1, "accepted: {:?}", sent.failed);
    client.disconnect().await;
    Ok(())
}

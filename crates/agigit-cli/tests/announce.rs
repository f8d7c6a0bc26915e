//! The repository announcement through the binary, read by software no one here wrote:
//! `agigit announce` sets and publishes it, `push` publishes it again; nostr-sdk 0.44.1 (its own
//! `nostr`) reads the announcement, the state and the commit events from agigit-relay and finds
//! every field in their tags; a clone without `--relay` finds the relays through the
//! announcement on a bootstrap relay; and agigit reads an announcement nostr-sdk publishes.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::time::Duration;

use nostr_sdk::prelude as sdk;

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::{Relays, agigit, json, model_on, ok};

const WAIT: Duration = Duration::from_secs(20);

/// The values of the first tag called `name`.
fn tag<'a>(event: &'a sdk::Event, name: &str) -> Option<&'a [String]> {
    event
        .tags
        .iter()
        .map(sdk::Tag::as_slice)
        .find(|t| t.first().map(String::as_str) == Some(name))
        .map(|t| &t[1..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nostr_sdk_reads_what_agigit_announces_and_agigit_reads_what_it_publishes() -> TestResult {
    let root = std::env::temp_dir().join(format!("agigit-cli-announce-{}", std::process::id()));
    let relays = Relays::start(&root, 2, |_| None)?;
    let urls = relays.urls();
    let (home, model) = model_on(&root, &urls);
    let maintainer = sdk::Keys::generate();
    let set = json(&agigit(
        &home,
        &model,
        &[
            "announce",
            "--json",
            "--name",
            "Tiny LM",
            "--description",
            "a model for the test",
            "--license",
            "MIT OR Apache-2.0",
            "--topic",
            "llm",
            "--topic",
            "Tiny",
            "--maintainer",
            &maintainer.public_key().to_hex(),
        ],
    ));
    assert_eq!(set["topics"], serde_json::json!(["llm", "tiny"]));
    assert!(
        std::fs::read_to_string(model.join(".agigit/config.toml"))?.contains("[announce]"),
        "the settings are kept"
    );
    // A topic that is not one is refused, and nothing is changed.
    let out = agigit(&home, &model, &["announce", "--topic", "two words"]);
    assert!(!out.status.success());

    std::fs::write(model.join("train.py"), "print('hi')\n")?;
    ok(&agigit(&home, &model, &["commit", "-m", "first"]));
    let pushed = json(&agigit(&home, &model, &["push", "--json"]));
    assert_eq!(pushed["announced"], true, "{pushed}");
    let coordinate = pushed["repository"].as_str().ok_or("coordinate")?;
    let owner_hex = coordinate.split(':').nth(1).ok_or("owner")?;
    let owner = sdk::PublicKey::from_hex(owner_hex)?;

    // nostr-sdk reads the three kinds back from agigit-relay.
    let client = sdk::Client::default();
    client.add_relay(urls[0].as_str()).await?;
    tokio::time::timeout(WAIT, client.connect()).await?;
    let fetch = |kind: u16| {
        let client = client.clone();
        async move {
            let filter = sdk::Filter::new().author(owner).kind(sdk::Kind::from(kind));
            client.fetch_events(filter, WAIT).await
        }
    };
    let announcements = fetch(30717).await?;
    let a = announcements.first().ok_or("an announcement")?;
    assert_eq!(tag(a, "d"), Some(&["model".to_owned()][..]));
    assert_eq!(tag(a, "name"), Some(&["Tiny LM".to_owned()][..]));
    assert_eq!(
        tag(a, "license"),
        Some(&["MIT OR Apache-2.0".to_owned()][..])
    );
    assert_eq!(tag(a, "visibility"), Some(&["public".to_owned()][..]));
    assert_eq!(
        tag(a, "maintainers"),
        Some(&[maintainer.public_key().to_hex()][..])
    );
    let topics: Vec<String> = a.tags.hashtags().map(str::to_owned).collect();
    assert_eq!(topics, ["llm", "tiny"]);
    assert_eq!(tag(a, "relays").map(<[String]>::len), Some(2));
    let blossom = tag(a, "blossom").ok_or("blossom servers")?;
    assert!(blossom.iter().all(|u| u.starts_with("http://127.0.0.1:")));
    assert_eq!(a.tags.identifier(), Some("model"));

    let states = fetch(30718).await?;
    let state = states.first().ok_or("a state")?;
    assert_eq!(state.tags.identifier(), Some("model"));
    let master = tag(state, "refs/heads/master").ok_or("the branch")?;
    let commits = fetch(1717).await?;
    assert_eq!(commits.len(), 1);
    let commit = commits.first().ok_or("a commit event")?;
    assert!(
        commit
            .tags
            .iter()
            .any(|t| t.as_slice().iter().any(|v| v == &master[0])),
        "the commit event names the commit the state points at"
    );

    // The owner's relay list (NIP-65) and Blossom server list (BUD-03), from its user-level
    // relays: relay 0 for both roles, relay 1 to fetch from.
    std::fs::write(
        home.join("config.toml"),
        format!(
            "[[relay]]\nurl = {:?}\n\n[[relay]]\nurl = {:?}\nfetch = true\npush = false\n",
            urls[0], urls[1]
        ),
    )?;
    let lists = json(&agigit(&home, &root, &["key", "publish-lists", "--json"]));
    assert_eq!(lists["accepted"], serde_json::json!([2, 2]), "{lists}");
    let relay_lists = fetch(10002).await?;
    let list = relay_lists.first().ok_or("a relay list")?;
    let r: Vec<&[String]> = list
        .tags
        .iter()
        .map(sdk::Tag::as_slice)
        .filter(|t| t[0] == "r")
        .map(|t| &t[1..])
        .collect();
    assert_eq!(
        r,
        [
            &[urls[0].clone()][..],
            &[urls[1].clone(), "read".to_owned()][..]
        ]
    );
    let server_lists = fetch(10063).await?;
    let servers = server_lists.first().ok_or("a server list")?;
    assert_eq!(
        servers
            .tags
            .iter()
            .filter(|t| t.as_slice()[0] == "server")
            .count(),
        2
    );

    // A clone without --relay: the reader's one bootstrap relay (relay 1) has the
    // announcement, which lists both relays; the owner written as an npub.
    let reader = root.join("reader");
    std::fs::create_dir_all(&reader)?;
    std::fs::write(
        reader.join("config.toml"),
        format!("[[relay]]\nurl = {:?}\n", urls[1]),
    )?;
    let npub = sdk::ToBech32::to_bech32(&owner)?;
    let by_npub = format!("30717:{npub}:model");
    ok(&agigit(&reader, &root, &["clone", &by_npub, "found"]));
    assert_eq!(
        std::fs::read(root.join("found/train.py"))?,
        b"print('hi')\n"
    );
    let config = std::fs::read_to_string(root.join("found/.agigit/config.toml"))?;
    assert!(
        config.contains(&urls[0]) && config.contains(&urls[1]),
        "the clone keeps the relays the announcement lists: {config}"
    );
    // With neither --relay nor bootstrap relays, the message says what to do.
    let out = agigit(&root.join("nobody"), &root, &["clone", &by_npub, "lost"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bootstrap relays"));

    // Search: by a topic and a word of the description, across both relays; nothing for a
    // word no repository has.
    let mut args = vec!["search", "--json", "tiny", "MODEL"];
    for u in &urls {
        args.extend(["--relay", u.as_str()]);
    }
    let found = json(&agigit(&reader, &root, &args));
    let found = found.as_array().ok_or("a list")?;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["repository"], coordinate);
    assert_eq!(found[0]["name"], "Tiny LM");
    assert_eq!(found[0]["size"], 12, "the size of train.py at the push");
    assert!(found[0]["updated"].as_u64().is_some_and(|t| t > 0));
    let none = json(&agigit(
        &reader,
        &root,
        &["search", "--json", "nothing-has-this", "--relay", &urls[0]],
    ));
    assert_eq!(none, serde_json::json!([]));
    // No words: every repository the relays announce (no NIP-50 search asked).
    let all = json(&agigit(
        &reader,
        &root,
        &["search", "--json", "--relay", &urls[1]],
    ));
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    // Without --relay: the user-level relays.
    let text = ok(&agigit(&reader, &root, &["search", "llm"]));
    assert!(
        text.contains("Tiny LM") && text.contains("[llm, tiny]") && text.contains(", 12 B,"),
        "{text}"
    );

    // agigit reads an announcement nostr-sdk publishes (for a repository of its own).
    let theirs = sdk::Keys::generate();
    let publisher = sdk::Client::new(theirs.clone());
    publisher.add_relay(urls[0].as_str()).await?;
    tokio::time::timeout(WAIT, publisher.connect()).await?;
    let builder = sdk::EventBuilder::new(sdk::Kind::from(30717), "").tags([
        sdk::Tag::identifier("their-model"),
        sdk::Tag::custom(sdk::TagKind::custom("visibility"), ["public"]),
        sdk::Tag::custom(sdk::TagKind::custom("name"), ["Theirs"]),
        sdk::Tag::hashtag("vision"),
    ]);
    let sent = tokio::time::timeout(WAIT, publisher.send_event_builder(builder)).await??;
    assert_eq!(sent.success.len(), 1, "{:?}", sent.failed);
    let event = publisher
        .fetch_events(sdk::Filter::new().id(sent.val), WAIT)
        .await?
        .first()
        .cloned()
        .ok_or("it came back")?;
    let parsed = agigit::event::Signed::<agigit::event::RepoAnnouncement>::from_json(
        sdk::JsonUtil::as_json(&event),
    )?;
    assert_eq!(parsed.body().repo.as_str(), "their-model");
    assert_eq!(parsed.body().name.as_deref(), Some("Theirs"));
    assert_eq!(parsed.body().topics, ["vision"]);
    client.disconnect().await;
    publisher.disconnect().await;
    Ok(())
}

/// The announcement's blob servers are used: the owner pushes to relays 0 and 1 (which it
/// announces) and to relay 2 for storage only, naming relay 2's port as a blob server readers
/// may use. With relay 1 down, a clone told only the coordinate finds relay 2's port through
/// the announcement and rebuilds from it and relay 0 (4 of 6 shards over three servers: no
/// one server rebuilds alone); a clone told only relay 0 cannot.
#[test]
fn a_clone_found_by_discovery_also_reads_the_blob_servers_the_owner_names() -> TestResult {
    let root = std::env::temp_dir().join(format!("agigit-cli-blob-servers-{}", std::process::id()));
    let mut relays = Relays::start(&root, 3, |_| None)?;
    let urls = relays.urls();
    let (home, model) = model_on(&root, &urls[..2]);
    ok(&agigit(
        &home,
        &model,
        &["relay", "add", "--push", &urls[2]],
    ));
    let storage = format!("http://127.0.0.1:{}", relays.ports()[2]);
    let config = model.join(".agigit/config.toml");
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(&format!(
        "\n[push]\nk = 4\nn = 6\n\n[[blob_server]]\nurl = {storage:?}\n"
    ));
    std::fs::write(&config, text)?;
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(model.join("data.bin"), &data)?;
    ok(&agigit(&home, &model, &["commit", "-m", "data"]));
    let pushed = json(&agigit(&home, &model, &["push", "--json"]));
    assert_eq!(pushed["announced"], true, "{pushed}");
    let coordinate = pushed["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();

    let reader = root.join("reader");
    std::fs::create_dir_all(&reader)?;
    std::fs::write(
        reader.join("config.toml"),
        format!("[[relay]]\nurl = {:?}\n", urls[0]),
    )?;
    relays.stop(1);
    // Told only relay 0, the clone has too few shards.
    let out = agigit(
        &reader,
        &root,
        &["clone", &coordinate, "short", "--relay", &urls[0]],
    );
    assert!(!out.status.success(), "two of six shards cannot rebuild");
    // Found through the announcement, it reads relay 2's port too.
    ok(&agigit(&reader, &root, &["clone", &coordinate, "found"]));
    assert_eq!(std::fs::read(root.join("found/data.bin"))?, data);
    let kept = std::fs::read_to_string(root.join("found/.agigit/config.toml"))?;
    assert!(
        kept.contains("[[blob_server]]") && kept.contains(&storage),
        "the clone keeps the blob server: {kept}"
    );
    Ok(())
}

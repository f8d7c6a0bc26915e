//! Maintainers through the binary: the owner lists a key in the announcement, that key's push
//! moves the owner's repository for everyone; a stranger's push never reaches it (it lands in
//! the stranger's own copy, and says so), and a state a stranger signs for the same `d` tag
//! (published with nostr-sdk, as an attacker would) moves nothing and is reported by
//! `fetch -v`; once the owner removes the maintainer, its pushes no longer reach the owner's
//! repository and its last state no longer counts.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::path::Path;
use std::time::Duration;

use nostr_sdk::prelude as sdk;

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::{Relays, agigit, json, model_on, ok};

const WAIT: Duration = Duration::from_secs(20);

fn clone(home: &Path, root: &Path, coordinate: &str, dir: &str, urls: &[String]) {
    let mut args = vec!["clone", coordinate, dir];
    for u in urls {
        args.extend(["--relay", u.as_str()]);
    }
    ok(&agigit(home, root, &args));
}

fn commit(home: &Path, dir: &Path, text: &str, message: &str) -> TestResult {
    std::fs::write(dir.join("train.py"), text)?;
    ok(&agigit(home, dir, &["commit", "-m", message]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintainer_moves_the_owners_branches_and_a_stranger_moves_nothing() -> TestResult {
    let root = std::env::temp_dir().join(format!("agigit-cli-maintainers-{}", std::process::id()));
    let relays = Relays::start(&root, 2, |_| None)?;
    let urls = relays.urls();
    let (owner, model) = model_on(&root, &urls);
    let key = |name: &str| -> Result<(std::path::PathBuf, String), Box<dyn std::error::Error>> {
        let home = root.join(name);
        let made = json(&agigit(&home, &root, &["key", "generate", "--json"]));
        Ok((home, made["npub"].as_str().ok_or("npub")?.to_owned()))
    };
    let (maintainer, maintainer_npub) = key("maintainer")?;
    let (stranger, _) = key("stranger")?;
    let (reader, _) = key("reader")?;

    ok(&agigit(
        &owner,
        &model,
        &["announce", "--maintainer", &maintainer_npub],
    ));
    commit(&owner, &model, "print('owner')\n", "by the owner")?;
    let pushed = json(&agigit(&owner, &model, &["push", "--json"]));
    let coordinate = pushed["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();

    // The maintainer clones, commits and pushes: to the owner's coordinate, as a maintainer,
    // without signing an announcement of its own.
    clone(&maintainer, &root, &coordinate, "m", &urls);
    let m = root.join("m");
    commit(
        &maintainer,
        &m,
        "print('maintainer')\n",
        "by the maintainer",
    )?;
    let pushed = json(&agigit(&maintainer, &m, &["push", "--json"]));
    assert_eq!(pushed["repository"], coordinate.as_str(), "{pushed}");
    assert_eq!(pushed["maintainer"], true);
    assert_eq!(pushed["announced"], serde_json::Value::Null);

    // Everyone follows it: a new clone, and the owner's pull.
    clone(&reader, &root, &coordinate, "r", &urls);
    let r = root.join("r");
    assert_eq!(
        std::fs::read_to_string(r.join("train.py"))?,
        "print('maintainer')\n"
    );
    ok(&agigit(&owner, &model, &["pull"]));
    assert_eq!(
        std::fs::read_to_string(model.join("train.py"))?,
        "print('maintainer')\n"
    );

    // A stranger's push does not touch the owner's repository: it is refused there before
    // anything is published, and lands in the stranger's own copy (same id, its own key), as
    // the output says. A reader of the owner's repository sees that state only with -v.
    clone(&stranger, &root, &coordinate, "s", &urls);
    let s = root.join("s");
    commit(&stranger, &s, "print('stranger')\n", "by a stranger")?;
    let pushed = json(&agigit(&stranger, &s, &["push", "--json"]));
    assert_ne!(pushed["repository"], coordinate.as_str(), "{pushed}");
    assert_eq!(pushed["not_a_maintainer_of"], coordinate.as_str());
    let text = ok(&agigit(&stranger, &s, &["push"]));
    assert!(text.contains("not a maintainer of"), "{text}");
    let fetched = json(&agigit(&reader, &r, &["fetch", "--json"]));
    let ignored = fetched["ignored_states"].as_array().ok_or("a list")?;
    assert_eq!(ignored.len(), 1, "{fetched}");
    let stranger_state = ignored[0]["event"].as_str().ok_or("an id")?.to_owned();
    assert_eq!(
        std::fs::read_to_string(r.join("train.py"))?,
        "print('maintainer')\n"
    );

    // The attacker signs a newer state for the same `d` tag, pointing master elsewhere, and
    // publishes it to both relays (which take any valid event).
    let attacker = sdk::Keys::generate();
    let client = sdk::Client::new(attacker.clone());
    for u in &urls {
        client.add_relay(u.as_str()).await?;
    }
    tokio::time::timeout(WAIT, client.connect()).await?;
    let forged = sdk::EventBuilder::new(sdk::Kind::from(30718), "")
        .tags([
            sdk::Tag::identifier("model"),
            sdk::Tag::custom(sdk::TagKind::custom("refs/heads/master"), ["11".repeat(32)]),
            sdk::Tag::custom(sdk::TagKind::custom("HEAD"), ["ref: refs/heads/master"]),
        ])
        .custom_created_at(sdk::Timestamp::from(sdk::Timestamp::now().as_secs() + 5));
    let sent = tokio::time::timeout(WAIT, client.send_event_builder(forged)).await??;
    assert_eq!(sent.success.len(), 2, "{:?}", sent.failed);
    client.disconnect().await;

    let tip = |dir: &Path, home: &Path| -> Result<String, Box<dyn std::error::Error>> {
        let log = json(&agigit(home, dir, &["log", "--json"]));
        Ok(log[0]["commit"].as_str().ok_or("a commit")?.to_owned())
    };
    let before = tip(&r, &reader)?;
    let fetched = json(&agigit(&reader, &r, &["fetch", "--json"]));
    let ignored = fetched["ignored_states"].as_array().ok_or("a list")?;
    assert_eq!(ignored.len(), 2, "{fetched}");
    let forged = ignored
        .iter()
        .find(|i| i["event"] != stranger_state.as_str())
        .ok_or("the forged state")?;
    assert_eq!(forged["event"], sent.val.to_hex());
    assert_eq!(forged["author"], attacker.public_key().to_hex());
    let text = ok(&agigit(&reader, &r, &["fetch", "-v"]));
    let attacker_npub = sdk::ToBech32::to_bech32(&attacker.public_key())?;
    assert!(
        text.contains(&format!("ignored state {}", sent.val.to_hex()))
            && text.contains(&attacker_npub)
            && text.contains("neither the owner nor a maintainer"),
        "{text}"
    );
    let quiet = ok(&agigit(&reader, &r, &["fetch"]));
    assert!(!quiet.contains("ignored state"), "{quiet}");
    ok(&agigit(&reader, &r, &["pull"]));
    assert_eq!(tip(&r, &reader)?, before, "the forged state moved nothing");

    // The owner removes the maintainer: its next push no longer reaches the owner's
    // repository, and the owner's own push builds on the owner's newest state (the
    // maintainer's commit is in the owner's history).
    ok(&agigit(&owner, &model, &["announce", "--maintainer", ""]));
    commit(&maintainer, &m, "print('maintainer, later')\n", "too late")?;
    let pushed = json(&agigit(&maintainer, &m, &["push", "--json"]));
    assert_eq!(
        pushed["not_a_maintainer_of"],
        coordinate.as_str(),
        "{pushed}"
    );
    // Until the owner pushes, a reader that followed the maintainer is told why it waits.
    let out = agigit(&reader, &r, &["fetch"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no longer lists as a maintainer"),
        "{stderr}"
    );
    commit(
        &owner,
        &model,
        "print('owner again')\n",
        "by the owner again",
    )?;
    let pushed = json(&agigit(&owner, &model, &["push", "--json"]));
    assert_eq!(pushed["maintainer"], false, "{pushed}");
    ok(&agigit(&reader, &r, &["pull"]));
    assert_eq!(
        std::fs::read_to_string(r.join("train.py"))?,
        "print('owner again')\n"
    );
    let log = json(&agigit(&reader, &r, &["log", "--json"]));
    let messages: Vec<&str> = log
        .as_array()
        .ok_or("a log")?
        .iter()
        .filter_map(|c| c["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        ["by the owner again", "by the maintainer", "by the owner"]
    );
    Ok(())
}

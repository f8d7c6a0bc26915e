//! The seed documents' command list ("agigit commands"), run verbatim through the binary, in
//! its order, against three agigit-relay processes on loopback — with real relay keys and commit
//! ids in place of its `$` placeholders — checking what each line did, not only its exit code.
//!
//! The relay binary is the one `cargo test --workspace` builds beside `agigit`.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use agigit::event::nostr::prelude::{Keys, ToBech32};

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::{agigit, free_port, json, ok, relay_binary, start_relay, url};

struct Env {
    root: PathBuf,
    relays: Vec<Child>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for r in &mut self.relays {
            let _ = r.kill();
            let _ = r.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The key a relay made in its data directory on first start.
fn relay_key(dir: &Path) -> Result<Keys, Box<dyn std::error::Error>> {
    key_file(&dir.join("relay.key"))
}

/// The key a relay made in `path` on first start, once it is there (the relay writes it
/// shortly after it starts: whether `path` is a file yet says nothing about what it names).
fn key_file(path: &Path) -> Result<Keys, Box<dyn std::error::Error>> {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(keys) = Keys::parse(text.trim())
        {
            return Ok(keys);
        }
        if started.elapsed() > Duration::from_secs(20) {
            return Err(format!("{} was not made", path.display()).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn commit_id(out: &Output) -> String {
    json(out)["commit"]
        .as_str()
        .expect("a commit id")
        .to_owned()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Every relay in the repository's list: (url, key, fetch, push).
fn relays(home: &Path, repo: &Path) -> Vec<(String, Option<String>, bool, bool)> {
    let list = json(&agigit(home, repo, &["relay", "list", "--json"]));
    list.as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            (
                r["url"].as_str().expect("url").to_owned(),
                r["key"].as_str().map(str::to_owned),
                r["fetch"].as_bool().expect("fetch"),
                r["push"].as_bool().expect("push"),
            )
        })
        .collect()
}

#[test]
#[allow(clippy::too_many_lines, reason = "one scenario, line by line")]
fn the_seeds_command_list_runs_verbatim() -> TestResult {
    let root = std::env::temp_dir().join(format!("agigit-seed-list-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let mut env = Env {
        root: root.clone(),
        relays: Vec::new(),
    };

    // Three relays, each announcing itself (its key and URL, signed) to the other two.
    let binary = relay_binary();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    for (i, port) in ports.iter().enumerate() {
        let mut cmd = Command::new(&binary);
        cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(root.join(format!("relay-{i}")));
        for (j, other) in ports.iter().enumerate() {
            if j != i {
                cmd.args(["--announce-to", &url(*other)]);
            }
        }
        env.relays.push(
            cmd.env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
    }
    let keys: Vec<Keys> = (0..3)
        .map(|i| relay_key(&root.join(format!("relay-{i}"))))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    for port in &ports {
        while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "relay start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let [r1, r2, r3] = [url(ports[0]), url(ports[1]), url(ports[2])];
    // $relayPK, written both ways a user would: npub… for the second relay, hex for the third.
    let r2_pk = keys[1].public_key().to_bech32()?;
    let r3_pk = keys[2].public_key().to_hex();
    let (r2_hex, r3_hex) = (keys[1].public_key().to_hex(), r3_pk.clone());

    // Ana owns the model: master, and three more branches, on all three relays.
    let ana = root.join("ana-home");
    let model = root.join("model");
    ok(&agigit(&ana, &root, &["key", "generate"]));
    ok(&agigit(&ana, &root, &["init", "model"]));
    for r in [&r1, &r2, &r3] {
        ok(&agigit(&ana, &model, &["relay", "add", r]));
    }
    std::fs::write(model.join("train.py"), "print('v1')\n")?;
    std::fs::create_dir_all(model.join("data/train"))?;
    std::fs::write(model.join("data/train/rows.csv"), "x,y\n1,2\n")?;
    let c1 = commit_id(&agigit(&ana, &model, &["commit", "-m", "c1", "--json"]));
    let pushed = json(&agigit(&ana, &model, &["push", "--json"]));
    let coordinate = pushed["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();

    // Bo clones it from the first relay, and starts a side branch of his own.
    let bo = root.join("bo-home");
    let work = root.join("bo-model");
    ok(&agigit(&bo, &root, &["key", "generate"]));
    let cloned = json(&agigit(
        &bo,
        &root,
        &["clone", &coordinate, "bo-model", "--relay", &r1, "--json"],
    ));
    assert_eq!(cloned["branch"], "master");
    ok(&agigit(&bo, &work, &["branch", "side"]));
    ok(&agigit(&bo, &work, &["checkout", "side"]));
    std::fs::write(work.join("side.txt"), "bo's side\n")?;
    let s1 = commit_id(&agigit(&bo, &work, &["commit", "-m", "s1", "--json"]));
    ok(&agigit(&bo, &work, &["checkout", "master"]));

    // Meanwhile Ana moves master on and pushes three more branches.
    std::fs::write(model.join("train.py"), "print('v2')\n")?;
    let c2 = commit_id(&agigit(&ana, &model, &["commit", "-m", "c2", "--json"]));
    ok(&agigit(&ana, &model, &["push"]));
    let branch_commit = |name: &str, file: &str, text: &str| -> String {
        ok(&agigit(&ana, &model, &["checkout", "master"]));
        ok(&agigit(&ana, &model, &["branch", name]));
        ok(&agigit(&ana, &model, &["checkout", name]));
        std::fs::write(model.join(file), text).expect("write");
        let id = commit_id(&agigit(&ana, &model, &["commit", "-m", name, "--json"]));
        ok(&agigit(&ana, &model, &["push"]));
        id
    };
    let c3 = branch_commit("exp", "data/train/rows.csv", "x,y\n1,2\n3,4\n");
    let c6 = branch_commit("feature", "feature.txt", "a feature\n");
    let c7 = branch_commit("next", "next.txt", "next\n");
    ok(&agigit(&ana, &model, &["checkout", "master"]));

    // Before the list: the relays have announced themselves to each other (their
    // announcements retry while the others start). A scratch repository that knows only the
    // first relay waits until it can find the other two by key.
    let probe = root.join("probe");
    ok(&agigit(&bo, &root, &["init", "probe"]));
    ok(&agigit(&bo, &probe, &["relay", "add", &r1]));
    let started = Instant::now();
    for pk in [&r2_pk, &r3_pk] {
        while !agigit(&bo, &probe, &["relay", "add", pk]).status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the relays did not announce themselves"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // The clone pinned the relay it came from to its key.
    let r1_hex = keys[0].public_key().to_hex();
    assert_eq!(
        relays(&bo, &work),
        [(r1.clone(), Some(r1_hex.clone()), true, true)]
    );

    // agigit relay add --fetch $relayPK
    ok(&agigit(&bo, &work, &["relay", "add", "--fetch", &r2_pk]));
    assert_eq!(
        relays(&bo, &work),
        [
            (r1.clone(), Some(r1_hex.clone()), true, true),
            (r2.clone(), Some(r2_hex.clone()), true, false),
        ],
        "the key was resolved, through the first relay, to the second relay's URL"
    );
    // agigit relay add --push $relayPK
    ok(&agigit(&bo, &work, &["relay", "add", "--push", &r3_pk]));
    assert_eq!(
        relays(&bo, &work)[2],
        (r3.clone(), Some(r3_hex.clone()), false, true)
    );
    // agigit relay add $relayPK
    ok(&agigit(&bo, &work, &["relay", "add", &r3_pk]));
    assert_eq!(
        relays(&bo, &work)[2],
        (r3.clone(), Some(r3_hex.clone()), true, true)
    );
    // agigit relay remove --fetch $relayPK
    ok(&agigit(&bo, &work, &["relay", "remove", "--fetch", &r2_pk]));
    assert_eq!(
        relays(&bo, &work),
        [
            (r1.clone(), Some(r1_hex.clone()), true, true),
            (r3.clone(), Some(r3_hex.clone()), true, true),
        ],
        "the second relay had only the fetch role: it is gone"
    );
    // agigit relay remove --push $relayPK
    ok(&agigit(&bo, &work, &["relay", "remove", "--push", &r3_pk]));
    assert_eq!(
        relays(&bo, &work)[1],
        (r3.clone(), Some(r3_hex.clone()), true, false)
    );
    // agigit relay remove $relayPK
    ok(&agigit(&bo, &work, &["relay", "remove", &r3_pk]));
    assert_eq!(
        relays(&bo, &work),
        [(r1.clone(), Some(r1_hex.clone()), true, true)]
    );

    // agigit fetch: every branch, no local branch or file moved.
    let fetched = json(&agigit(&bo, &work, &["fetch", "--json"]));
    for (branch, tip) in [
        ("master", &c2),
        ("exp", &c3),
        ("feature", &c6),
        ("next", &c7),
    ] {
        assert_eq!(
            fetched["branches"][branch]["tip"],
            tip.as_str(),
            "{fetched}"
        );
    }
    assert_eq!(read(&work, "train.py"), "print('v1')\n");

    // agigit log: the local history, still at c1.
    let log = ok(&agigit(&bo, &work, &["log"]));
    assert!(log.contains(&format!("commit {c1}")), "{log}");
    assert!(!log.contains(&c2), "{log}");

    // agigit pull: master fast-forwards to the remote's.
    ok(&agigit(&bo, &work, &["pull"]));
    assert_eq!(read(&work, "train.py"), "print('v2')\n");
    let head = json(&agigit(&bo, &work, &["log", "-n", "1", "--json"]));
    assert_eq!(head[0]["commit"], c2.as_str());

    // agigit pull $commitHash: a commit of another branch that descends from master.
    let pulled = json(&agigit(&bo, &work, &["pull", &c3[..12], "--json"]));
    assert_eq!(pulled["fast_forward"], true, "{pulled}");
    assert_eq!(pulled["commit"], c3.as_str());
    assert_eq!(read(&work, "data/train/rows.csv"), "x,y\n1,2\n3,4\n");
    let status = json(&agigit(&bo, &work, &["status", "--json"]));
    assert_eq!(status["branch"], "master");

    // agigit checkout $commitHash: detached there, its files.
    ok(&agigit(&bo, &work, &["checkout", &c2[..12]]));
    let status = json(&agigit(&bo, &work, &["status", "--json"]));
    assert_eq!(status["branch"], "(detached)");
    assert_eq!(read(&work, "data/train/rows.csv"), "x,y\n1,2\n");

    // agigit checkout master
    ok(&agigit(&bo, &work, &["checkout", "master"]));
    let status = json(&agigit(&bo, &work, &["status", "--json"]));
    assert_eq!(status["branch"], "master");
    assert_eq!(read(&work, "data/train/rows.csv"), "x,y\n1,2\n3,4\n");

    // agigit commit -m "commit message"
    std::fs::write(work.join("bo.txt"), "bo's change\n")?;
    let out = ok(&agigit(&bo, &work, &["commit", "-m", "commit message"]));
    assert!(out.contains("commit message"), "{out}");
    let head = json(&agigit(&bo, &work, &["log", "-n", "1", "--json"]));
    let c5 = head[0]["commit"].as_str().ok_or("id")?.to_owned();
    assert_eq!(head[0]["message"], "commit message");
    assert_eq!(head[0]["parents"][0], c3.as_str());

    // agigit push: Bo's own copy, under his key, on the relay he kept.
    let pushed = json(&agigit(&bo, &work, &["push", "--json"]));
    assert_eq!(pushed["pushed"], "master");
    let bo_coordinate = pushed["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();
    assert_ne!(bo_coordinate, coordinate);

    // agigit merge $commitHashA $commitHashB: both into master, one merge commit.
    let merged = json(&agigit(&bo, &work, &["merge", &c6, &s1, "--json"]));
    assert_eq!(merged["commits"], 1, "{merged}");
    let head = json(&agigit(&bo, &work, &["log", "-n", "1", "--json"]));
    assert_eq!(
        head[0]["parents"],
        serde_json::json!([c5, c6, s1]),
        "an octopus merge of HEAD and both"
    );
    let merge_commit = head[0]["commit"].as_str().ok_or("id")?.to_owned();
    assert_eq!(read(&work, "feature.txt"), "a feature\n");
    assert_eq!(read(&work, "side.txt"), "bo's side\n");
    assert_eq!(read(&work, "bo.txt"), "bo's change\n");

    // agigit rebase: onto origin/master, which master already contains — nothing rewritten.
    let rebased = json(&agigit(&bo, &work, &["rebase", "--json"]));
    assert_eq!(rebased["up_to_date"], true, "{rebased}");
    let head = json(&agigit(&bo, &work, &["log", "-n", "1", "--json"]));
    assert_eq!(head[0]["commit"], merge_commit.as_str());

    // agigit rebase $nonHeadCommitHash: master's own commits replayed on next's commit, the
    // merge flattened away, every change kept.
    let rebased = json(&agigit(&bo, &work, &["rebase", &c7[..8], "--json"]));
    assert_eq!(
        rebased["commits"], 4,
        "c3, c5, c6 and s1 replayed: {rebased}"
    );
    let history = json(&agigit(&bo, &work, &["log", "-n", "10", "--json"]));
    let history = history.as_array().ok_or("log")?;
    assert!(
        history[..4]
            .iter()
            .all(|c| c["parents"].as_array().map(Vec::len) == Some(1)),
        "no merge commit left: {history:?}"
    );
    assert_eq!(history[4]["commit"], c7.as_str(), "{history:?}");
    for (file, text) in [
        ("next.txt", "next\n"),
        ("feature.txt", "a feature\n"),
        ("side.txt", "bo's side\n"),
        ("bo.txt", "bo's change\n"),
        ("train.py", "print('v2')\n"),
        ("data/train/rows.csv", "x,y\n1,2\n3,4\n"),
    ] {
        assert_eq!(read(&work, file), text, "{file}");
    }
    let status = json(&agigit(&bo, &work, &["status", "--json"]));
    assert_eq!(status["branch"], "master");
    assert_eq!(status["changes"].as_array().map(Vec::len), Some(0));

    // What Bo pushed is there for anyone: Ana clones it, bit for bit.
    let copy = root.join("copy");
    ok(&agigit(
        &ana,
        &root,
        &["clone", &bo_coordinate, "copy", "--relay", &r1],
    ));
    let head = json(&agigit(&ana, &copy, &["log", "-n", "1", "--json"]));
    assert_eq!(head[0]["commit"], c5.as_str());
    assert_eq!(read(&copy, "bo.txt"), "bo's change\n");
    Ok(())
}

/// A relay started as a process on `port`, keeping its data in `dir` and its key in `key`.
/// The attacker's move: another server takes over a relay's address (a hijacked DNS name, a
/// reused port). The clone added the relay by URL and pinned the key it found, so it refuses
/// the impostor — with a message that says what happened — and keeps it out of every operation.
#[test]
fn a_relay_whose_key_changed_is_refused() -> TestResult {
    let root = std::env::temp_dir().join(format!("agigit-seed-pin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let mut env = Env {
        root: root.clone(),
        relays: Vec::new(),
    };
    let port = free_port();
    let relay_url = url(port);
    let data = root.join("relay");
    env.relays
        .push(start_relay(port, &data, &root.join("honest.key"))?);
    let honest = key_file(&root.join("honest.key"))?;

    let home = root.join("home");
    ok(&agigit(&home, &root, &["key", "generate"]));
    ok(&agigit(&home, &root, &["init", "model"]));
    let model = root.join("model");
    let added = json(&agigit(
        &home,
        &model,
        &["relay", "add", &relay_url, "--json"],
    ));
    assert_eq!(
        added["key"],
        honest.public_key().to_hex(),
        "relay add <url> records the key the relay names"
    );
    std::fs::write(model.join("train.py"), "print(1)\n")?;
    ok(&agigit(&home, &model, &["commit", "-m", "one"]));
    ok(&agigit(&home, &model, &["push"]));

    // The impostor: same address, same stored data, another key.
    for mut r in env.relays.drain(..) {
        let _ = r.kill();
        let _ = r.wait();
    }
    env.relays
        .push(start_relay(port, &data, &root.join("impostor.key"))?);
    std::fs::write(model.join("train.py"), "print(2)\n")?;
    ok(&agigit(&home, &model, &["commit", "-m", "two"]));
    let out = agigit(&home, &model, &["push"]);
    assert!(!out.status.success(), "pushed to an impostor: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("now identifies as") && stderr.contains(&honest.public_key().to_hex()),
        "{stderr}"
    );
    let out = agigit(&home, &model, &["fetch"]);
    assert!(!out.status.success(), "fetched from an impostor: {out:?}");

    // The honest relay back at its address: everything works again.
    for mut r in env.relays.drain(..) {
        let _ = r.kill();
        let _ = r.wait();
    }
    env.relays
        .push(start_relay(port, &data, &root.join("honest.key"))?);
    ok(&agigit(&home, &model, &["push"]));
    Ok(())
}

//! A competition round from announcement to result through the binary: an organizer announces a
//! round on its foundation with a sealed test set kept on an unpushed branch; a contributor forks
//! the foundation, trains the fork's head in candle on the training text and submits it; the
//! organizer reveals the test set after submissions close; an evaluator in a clone of the fork
//! evaluates the foundation and the submission on it and publishes receipts with their loss
//! lists; once the challenge window is over, every party's `round show` names the trained fork
//! champion, and the organizer's signed result agrees.

#![cfg(feature = "eval")]
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test fixtures"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agigit::eval::toy::{self, Toy};
use agigit::eval::train::{TrainOptions, train_head};
use agigit::eval::{Document, ModelFiles};

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::{agigit, json, ok};

/// Text from a Markov chain over eight letters (each followed by one of two, 3:1).
fn text(len: usize, mut seed: u64) -> String {
    const LETTERS: &[u8] = b"etaoinsh";
    let mut at = 0usize;
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            at = if seed.is_multiple_of(4) {
                (at * 5 + 3) % 8
            } else {
                (at + 1) % 8
            };
            char::from(LETTERS[at])
        })
        .collect()
}

fn write_model(dir: &Path, files: &ModelFiles) -> TestResult {
    std::fs::write(dir.join("config.json"), &files.config)?;
    std::fs::write(dir.join("tokenizer.json"), &files.tokenizer)?;
    agigit::delta::save_safetensors(
        dir.join("model.safetensors"),
        files.tensors.iter().map(|(n, t)| (n.as_str(), t.view())),
        &BTreeMap::new(),
    )?;
    Ok(())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn sleep_until(t: u64) {
    while now() <= t {
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn hex_key(home: &Path, cwd: &Path) -> String {
    json(&agigit(home, cwd, &["key", "show", "--json"]))["hex"]
        .as_str()
        .expect("hex")
        .to_owned()
}

#[test]
fn a_round_runs_from_announcement_to_result_through_the_binary() -> TestResult {
    let root = std::env::temp_dir().join(format!("agigit-cli-round-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let relays = support::Relays::start(&root.join("relays"), 1, |_| None)?;
    let url = relays.urls()[0].clone();
    let (organizer, contributor, evaluator) = (root.join("o"), root.join("c"), root.join("e"));
    for home in [&organizer, &contributor, &evaluator] {
        ok(&agigit(home, &root, &["key", "generate"]));
    }
    let evaluator_key = hex_key(&evaluator, &root);

    // The foundation: a small model with random weights, and public training text.
    ok(&agigit(&organizer, &root, &["init", "fm", "--id", "fm"]));
    let fm = root.join("fm");
    ok(&agigit(&organizer, &fm, &["relay", "add", &url]));
    let base = toy::model(Toy::Random(7), "qwen2", Some(u32::from(b' ')));
    write_model(&fm, &base)?;
    std::fs::create_dir_all(fm.join("data/train"))?;
    let train: Vec<Document> = (0..6)
        .map(|i| Document {
            name: format!("t{i}.txt"),
            text: text(160, 11 + i),
        })
        .collect();
    for d in &train {
        std::fs::write(fm.join("data/train").join(&d.name), &d.text)?;
    }
    ok(&agigit(&organizer, &fm, &["commit", "-m", "foundation"]));
    let coord = json(&agigit(&organizer, &fm, &["push", "--json"]))["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();
    // The test set, on a branch that stays local until the reveal.
    ok(&agigit(&organizer, &fm, &["branch", "heldout"]));
    ok(&agigit(&organizer, &fm, &["checkout", "heldout"]));
    std::fs::create_dir_all(fm.join("data/validation"))?;
    for i in 0..16 {
        std::fs::write(
            fm.join(format!("data/validation/v{i}.txt")),
            text(96, 101 + i),
        )?;
    }
    ok(&agigit(&organizer, &fm, &["commit", "-m", "the test set"]));
    ok(&agigit(&organizer, &fm, &["checkout", "master"]));

    // The contributor forks the foundation and trains the fork's head on the training text.
    ok(&agigit(
        &contributor,
        &root,
        &["fork", &coord, "tuned", "--id", "tuned", "--relay", &url],
    ));
    let tuned = root.join("tuned");
    let trained = train_head(
        &base,
        &train,
        TrainOptions::default()
            .with_context(64)
            .with_steps(60, 0.05),
    )?;
    let mut fork = ModelFiles {
        config: base.config.clone(),
        tokenizer: base.tokenizer.clone(),
        tensors: base.tensors.clone(),
    };
    for (name, t) in &mut fork.tensors {
        if name == "lm_head.weight" {
            *t = trained.lm_head.clone();
        }
    }
    write_model(&tuned, &fork)?;
    let submitted = json(&agigit(
        &contributor,
        &tuned,
        &["commit", "-m", "trained head", "--json"],
    ))["commit"]
        .as_str()
        .ok_or("commit")?
        .to_owned();
    let fork_coord = json(&agigit(&contributor, &tuned, &["push", "--json"]))["repository"]
        .as_str()
        .ok_or("coordinate")?
        .to_owned();

    // The round: submissions for a few seconds, receipts for half a minute more.
    let submit_by = now() + 6;
    let evaluate_by = submit_by + 30;
    let announced = json(&agigit(
        &organizer,
        &fm,
        &[
            "--json",
            "round",
            "announce",
            "--test",
            "heldout",
            "--submit-by",
            &submit_by.to_string(),
            "--reveal-by",
            &(submit_by + 20).to_string(),
            "--evaluate-by",
            &evaluate_by.to_string(),
            "--challenge-within",
            "2",
            "--context",
            "64",
            "--evaluator",
            &evaluator_key,
        ],
    ));
    let round = announced["round"].as_str().ok_or("round id")?.to_owned();
    // Nothing of the test set is on the relay yet; revealing before submissions close is
    // refused.
    let early = agigit(&organizer, &fm, &["round", "reveal", &round]);
    assert_eq!(early.status.code(), Some(3), "{early:?}");
    ok(&agigit(&contributor, &tuned, &["round", "submit", &round]));

    sleep_until(submit_by);
    let late = agigit(&contributor, &tuned, &["round", "submit", &round, "HEAD~1"]);
    assert_eq!(late.status.code(), Some(3), "a late submission: {late:?}");
    ok(&agigit(&organizer, &fm, &["checkout", "heldout"]));
    ok(&agigit(&organizer, &fm, &["push"]));
    ok(&agigit(&organizer, &fm, &["checkout", "master"]));
    ok(&agigit(&organizer, &fm, &["round", "reveal", &round]));

    // The evaluator clones the fork, fetches the foundation's branches (the test set among
    // them) and evaluates what the round holds.
    ok(&agigit(
        &evaluator,
        &root,
        &["clone", &fork_coord, "judge", "--relay", &url],
    ));
    let judge = root.join("judge");
    ok(&agigit(&evaluator, &judge, &["fetch", "--foundation"]));
    let evals = json(&agigit(
        &evaluator,
        &judge,
        &["--json", "round", "eval", &round, "--publish"],
    ));
    let rows = evals["evaluations"].as_array().ok_or("rows")?;
    assert_eq!(rows.len(), 2, "{evals}");
    let bpb = |commit: &str| {
        rows.iter()
            .find(|r| r["commit"] == commit)
            .and_then(|r| r["bits_per_byte"].as_f64())
    };
    let (foundation_bpb, tuned_bpb) = (
        rows[0]["bits_per_byte"].as_f64().ok_or("foundation")?,
        bpb(&submitted).ok_or("the submission")?,
    );
    assert!(foundation_bpb > 7.0 && tuned_bpb < 3.0, "{evals}");
    assert!(rows.iter().all(|r| r["receipt"].is_string()), "{evals}");

    let during = json(&agigit(
        &organizer,
        &fm,
        &["--json", "round", "show", &round],
    ));
    assert_eq!(during["phase"], "evaluation", "{during}");
    assert_eq!(
        during["receipts"].as_array().map(Vec::len),
        Some(2),
        "{during}"
    );
    // The result waits for the round to settle.
    let out = agigit(&organizer, &fm, &["round", "result", &round]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");

    sleep_until(evaluate_by + 2 * 2);
    for (home, dir) in [
        (&organizer, &fm),
        (&contributor, &tuned),
        (&evaluator, &judge),
    ] {
        let s = json(&agigit(home, dir, &["--json", "round", "show", &round]));
        assert_eq!(s["phase"], "settled", "{s}");
        assert_eq!(s["champion"], submitted.as_str(), "{s}");
        assert_eq!(s["ladder"].as_array().map(Vec::len), Some(1), "{s}");
        assert!(
            s["ladder"][0]["lower"].as_f64().is_some_and(|l| l > 1.0),
            "{s}"
        );
    }
    let result = json(&agigit(
        &organizer,
        &fm,
        &["--json", "round", "result", &round],
    ));
    assert_eq!(result["champion"], submitted.as_str());
    let after = json(&agigit(
        &evaluator,
        &judge,
        &["--json", "round", "show", &round],
    ));
    assert_eq!(after["result"]["agrees"], true, "{after}");
    drop(relays);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

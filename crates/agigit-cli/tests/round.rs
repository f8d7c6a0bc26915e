//! A competition round from announcement to result through the binary: an organizer announces a
//! round on its foundation with a sealed test set kept on an unpushed branch; a contributor forks
//! the foundation, trains the fork's head in candle on the training text and submits it; the
//! organizer reveals the test set after submissions close; an evaluator in a clone of the fork
//! evaluates the foundation and the submission on it and publishes receipts with their loss
//! lists; once the challenge window is over, every party's `round show` names the trained fork
//! champion, and the organizer's signed result agrees and merges it. The pool, locked on a real
//! Cashu mint (cdk-mintd) at the announcement, and the evaluator's bond are paid out by the
//! arbiter with the organizer's release: the contributor's reward for the bits its fork saved,
//! the rest back to the organizer, the bond back to the evaluator, each claimed through the
//! binary.

#![cfg(feature = "eval")]
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
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

#[path = "../../agigit-market-cashu/tests/support/mint.rs"]
mod mint;

/// The pool, what each lead is paid per 1000 bits saved, and each evaluator's bond.
const POOL: u64 = 1000;
const RATE: u64 = 50;
const BOND: u64 = 100;

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
fn a_round_runs_from_announcement_to_payout_through_the_binary() -> TestResult {
    let Some(mint) = mint::start_mint("cli-round") else {
        return Ok(());
    };
    let root = mint.dir.join("round");
    std::fs::create_dir_all(&root)?;
    let relays = support::Relays::start(&root.join("relays"), 1, |_| None)?;
    let url = relays.urls()[0].clone();
    let (organizer, contributor, evaluator, arbiter, forger) = (
        root.join("o"),
        root.join("c"),
        root.join("e"),
        root.join("a"),
        root.join("f"),
    );
    for home in [&organizer, &contributor, &evaluator, &arbiter, &forger] {
        std::fs::create_dir_all(home)?;
        ok(&agigit(home, &root, &["key", "generate"]));
        std::fs::write(
            home.join("config.toml"),
            format!("[wallet]\nmint = \"{}\"\n", mint.url),
        )?;
    }
    let evaluator_key = hex_key(&evaluator, &root);
    let arbiter_key = hex_key(&arbiter, &root);
    let forger_key = hex_key(&forger, &root);
    let balance = |home: &Path| {
        json(&agigit(home, home, &["wallet", "balance", "--json"]))["balance"]
            .as_u64()
            .expect("a balance")
    };
    ok(&agigit(
        &organizer,
        &root,
        &["wallet", "top-up", &POOL.to_string()],
    ));
    ok(&agigit(
        &evaluator,
        &root,
        &["wallet", "top-up", &BOND.to_string()],
    ));
    ok(&agigit(&forger, &root, &["wallet", "top-up", "10"]));

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

    // The round: submissions for a few seconds, receipts for half a minute more; the pool and
    // the bonds held by the organizer and the arbiter, who settles challenges.
    let submit_by = now() + 10;
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
            "--evaluator",
            &forger_key,
            "--arbiter",
            &arbiter_key,
            "--pool",
            &POOL.to_string(),
            "--rate",
            &RATE.to_string(),
            "--bond",
            &BOND.to_string(),
        ],
    ));
    let round = announced["round"].as_str().ok_or("round id")?.to_owned();
    assert_eq!(announced["funded"], POOL, "{announced}");
    assert_eq!(balance(&organizer), 0);
    // The pool is not the organizer's to take back before its refund time.
    let early = agigit(&organizer, &fm, &["round", "refund", &round]);
    assert_eq!(early.status.code(), Some(3), "{early:?}");
    assert!(String::from_utf8_lossy(&early.stderr).contains("comes back from"));
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
    // The arbiter works in a clone of the foundation.
    ok(&agigit(
        &arbiter,
        &root,
        &["clone", &coord, "bench", "--relay", &url],
    ));
    let bench = root.join("bench");
    ok(&agigit(&evaluator, &judge, &["fetch", "--foundation"]));
    // Receipts count only once the evaluator's bond is locked.
    let unbonded = agigit(&evaluator, &judge, &["round", "eval", &round, "--publish"]);
    assert_eq!(unbonded.status.code(), Some(3), "{unbonded:?}");
    assert!(String::from_utf8_lossy(&unbonded.stderr).contains("round bond"));
    ok(&agigit(&evaluator, &judge, &["round", "bond", &round]));
    assert_eq!(balance(&evaluator), 0);
    // A hostile evaluator "bonds" with a bearer token of 10 sats (planted where `round bond`
    // keeps a token it locked): the fold cannot tell, the arbiter's check at the mint can.
    let bearer = json(&agigit(&forger, &root, &["wallet", "send", "10", "--json"]))["token"]
        .as_str()
        .ok_or("a token")?
        .to_owned();
    let planted = forger
        .join("wallet/rounds")
        .join(format!("{round}.bond.token"));
    std::fs::create_dir_all(planted.parent().ok_or("a parent")?)?;
    std::fs::write(&planted, &bearer)?;
    ok(&agigit(&forger, &judge, &["round", "bond", &round]));
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
    assert_eq!(during["pool_checked"], true, "{during}");
    assert_eq!(
        during["receipts"].as_array().map(Vec::len),
        Some(2),
        "{during}"
    );
    // The result and the payouts wait for the round to settle.
    let out = agigit(&organizer, &fm, &["round", "result", &round]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = agigit(&arbiter, &bench, &["round", "pay", &round]);
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
    let settled = json(&agigit(
        &organizer,
        &fm,
        &["--json", "round", "show", &round],
    ));
    let reward = settled["ladder"][0]["reward"].as_u64().ok_or("a reward")?;
    // Rate × bits saved / 1000, floored, within the pool.
    let saved = settled["ladder"][0]["bits_saved"].as_f64().ok_or("bits")?;
    assert_eq!(reward, ((saved * RATE as f64 / 1000.0) as u64).min(POOL));
    assert!(reward > 0 && reward < POOL, "{settled}");
    // The arbiter pays only once the organizer has released the pool with its result.
    let out = agigit(&arbiter, &bench, &["round", "pay", &round]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("has not published the round's result"));
    let result = json(&agigit(
        &organizer,
        &fm,
        &["--json", "round", "result", &round],
    ));
    assert_eq!(result["champion"], submitted.as_str());
    // The organizer releases the real bond, not the forged one.
    assert_eq!(
        result["bonds_left_out"].as_array().map(Vec::len),
        Some(1),
        "{result}"
    );
    // The foundation's branch moves to the champion with a merge commit recording the round;
    // its files are the champion's, and it pushes.
    let merge = result["merged"]["commit"].as_str().ok_or("a merge")?;
    let log = json(&agigit(&organizer, &fm, &["--json", "log", "-n", "1"]));
    assert_eq!(log[0]["commit"], merge);
    let parents = log[0]["parents"].as_array().ok_or("parents")?;
    assert_eq!(parents.len(), 2, "{log}");
    assert_eq!(parents[1], submitted.as_str());
    let message = log[0]["message"].as_str().ok_or("a message")?;
    assert!(message.contains(&format!("Round: {round}")), "{message}");
    assert!(
        message.contains("bits per byte of the test set"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(fm.join("model.safetensors"))?,
        std::fs::read(tuned.join("model.safetensors"))?
    );
    ok(&agigit(&organizer, &fm, &["push"]));
    // The explorer's market page folds the same events: the round settled, its leaderboard
    // with each value on the test set, the champion (linked: the merge brought it here) and
    // its reward.
    {
        let (_serve, port) = support::serve(&organizer, &[&fm])?;
        let (code, page) = support::http_get(port, "/r/fm/market", "text/html")?;
        assert_eq!(code, 200, "{page}");
        assert!(page.contains(&format!(r#"data-round="{round}""#)), "{page}");
        assert!(page.contains("settled"), "{page}");
        assert!(
            page.contains(&format!(r#"href="/r/fm/commit/{submitted}""#)),
            "{page}"
        );
        assert!(
            page.contains(&format!(r#"<tr data-commit="{submitted}" class="lead">"#)),
            "{page}"
        );
        assert!(page.contains(&format!("{reward} sats")), "{page}");
        assert!(page.contains(&format!("{tuned_bpb:.4}")), "{page}");
        assert!(page.contains(&format!("{foundation_bpb:.4}")), "{page}");
        assert!(page.contains("No open order."), "{page}");
    }
    let again = json(&agigit(
        &organizer,
        &fm,
        &["--json", "round", "merge", &round],
    ));
    assert_eq!(again["up_to_date"], true, "{again}");
    // The forged bond stops nobody else's payment: it is reported (and the forger's bond,
    // never there, is not paid back), and the command says the round is not fully paid.
    let out = agigit(&arbiter, &bench, &["--json", "round", "pay", &round]);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    // The report, then the error (`--json` prints both on stdout).
    let first = |out: &std::process::Output| {
        serde_json::Deserializer::from_slice(&out.stdout)
            .into_iter::<serde_json::Value>()
            .next()
            .expect("a report")
            .expect("JSON")
    };
    let paid = first(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("could not be made"),
        "{out:?}"
    );
    assert_eq!(paid["claimed"], POOL + BOND, "{paid}");
    assert_eq!(paid["paid"].as_array().map(Vec::len), Some(3), "{paid}");
    assert_eq!(paid["problems"].as_array().map(Vec::len), Some(1), "{paid}");
    assert_eq!(paid["balance"], 0, "the arbiter keeps nothing: {paid}");
    // Paying again pays nobody twice.
    let again = agigit(&arbiter, &bench, &["--json", "round", "pay", &round]);
    let again = first(&again);
    assert_eq!(again["paid"], serde_json::json!([]), "{again}");
    let got = json(&agigit(
        &contributor,
        &tuned,
        &["--json", "round", "claim", &round],
    ));
    assert_eq!(got["claimed"], reward, "{got}");
    assert_eq!(balance(&contributor), reward);
    let back = json(&agigit(
        &organizer,
        &fm,
        &["--json", "round", "claim", &round],
    ));
    assert_eq!(back["claimed"], POOL - reward, "{back}");
    assert_eq!(balance(&organizer), POOL - reward);
    // Nothing twice, and nothing for whom the round owes nothing.
    let twice = json(&agigit(
        &contributor,
        &tuned,
        &["--json", "round", "claim", &round],
    ));
    assert_eq!(twice["claimed"], 0);
    // The evaluator's bond comes back: no challenge ruled against it.
    let bond = json(&agigit(
        &evaluator,
        &judge,
        &["--json", "round", "claim", &round],
    ));
    assert_eq!(bond["claimed"], BOND, "{bond}");
    let none = agigit(&arbiter, &bench, &["round", "claim", &round]);
    assert_eq!(none.status.code(), Some(3), "{none:?}");
    assert_eq!(
        balance(&contributor) + balance(&organizer) + balance(&evaluator) + balance(&arbiter),
        POOL + BOND
    );
    assert_eq!(
        balance(&forger),
        0,
        "the forger's bearer token was claimable by anyone"
    );
    let after = json(&agigit(
        &evaluator,
        &judge,
        &["--json", "round", "show", &round],
    ));
    assert_eq!(after["result"]["agrees"], true, "{after}");
    assert_eq!(
        after["payments"].as_array().map(Vec::len),
        Some(3),
        "{after}"
    );

    // A hostile organizer: a second round whose `fund` carries a token that is not the pool
    // it announced (a bearer token of 10 sats, spendable by anyone). Its announcement could
    // not lock the pool (the wallet holds too little) and says so; the planted token is then
    // published by `round fund`, and a contributor's `round show` says the pool is not as
    // announced.
    let bearer = json(&agigit(
        &organizer,
        &fm,
        &["wallet", "send", "10", "--json"],
    ))["token"]
        .as_str()
        .ok_or("a token")?
        .to_owned();
    let later = now();
    let out = agigit(
        &organizer,
        &fm,
        &[
            "round",
            "announce",
            "--test",
            "heldout",
            "--submit-by",
            &(later + 600).to_string(),
            "--reveal-by",
            &(later + 700).to_string(),
            "--evaluate-by",
            &(later + 800).to_string(),
            "--challenge-within",
            "60",
            "--evaluator",
            &evaluator_key,
            "--arbiter",
            &evaluator_key,
            "--pool",
            &POOL.to_string(),
            "--prize",
        ],
    );
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let second = stderr
        .split_whitespace()
        .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or("the announced round's id")?
        .to_owned();
    assert!(stderr.contains("round fund"), "{stderr}");
    let planted = organizer
        .join("wallet/rounds")
        .join(format!("{second}.pool.token"));
    std::fs::create_dir_all(planted.parent().ok_or("a parent")?)?;
    std::fs::write(&planted, &bearer)?;
    ok(&agigit(&organizer, &fm, &["round", "fund", &second]));
    let seen = json(&agigit(
        &contributor,
        &tuned,
        &["--json", "round", "show", &second],
    ));
    assert_eq!(seen["funded"], true, "{seen}");
    assert_eq!(seen["rate"], 0, "one prize: {seen}");
    assert!(seen["pool_checked"].is_string(), "{seen}");
    drop(relays);
    Ok(())
}

//! `agigit eval` through the binary: a committed model (a hand-built one whose losses are known
//! in closed form, `agigit::eval::toy`) measured on its validation part, another part and a
//! path, from the store and never the working directory; unsupported models and bad arguments
//! refused with the exit code for invalid input.

#![cfg(feature = "eval")]
#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agigit::eval::toy::{self, Toy};

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::{agigit, json, ok};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the toy model's config, tokenizer and parameters into `model`.
fn write_model(model: &Path, model_type: &str) -> TestResult {
    write_toy(model, Toy::Cycle(b"abcdefgh"), model_type)
}

fn write_toy(model: &Path, toy: Toy<'_>, model_type: &str) -> TestResult {
    write_files(model, &toy::model(toy, model_type, Some(u32::from(b'h'))))
}

fn write_files(model: &Path, files: &agigit::eval::ModelFiles) -> TestResult {
    std::fs::write(model.join("config.json"), &files.config)?;
    std::fs::write(model.join("tokenizer.json"), &files.tokenizer)?;
    agigit::delta::save_safetensors(
        model.join("model.safetensors"),
        files.tensors.iter().map(|(n, t)| (n.as_str(), t.view())),
        &BTreeMap::new(),
    )?;
    Ok(())
}

/// A user (key generated) with an empty repository `model` (`init` with `init_args`) in a fresh
/// directory named after `test`: the directory, the user's home, the repository.
fn user_with_repository(
    test: &str,
    init_args: &[&str],
) -> Result<(Dir, PathBuf, PathBuf), Box<dyn std::error::Error>> {
    let root = Dir(std::env::temp_dir().join(format!("agigit-cli-{test}-{}", std::process::id())));
    let home = root.0.join("home");
    std::fs::create_dir_all(&home)?;
    ok(&agigit(&home, &root.0, &["key", "generate"]));
    let mut init = vec!["init", "model"];
    init.extend_from_slice(init_args);
    ok(&agigit(&home, &root.0, &init));
    let model = root.0.join("model");
    Ok((root, home, model))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1.0)
}

#[test]
fn eval_measures_a_commit_on_held_out_data_in_bits_per_byte() -> TestResult {
    let (root, home, model) = user_with_repository("eval", &[])?;
    write_model(&model, "qwen2")?;
    std::fs::create_dir_all(model.join("data/validation"))?;
    std::fs::create_dir_all(model.join("data/train"))?;
    let cycle = "abcdefgh".repeat(16);
    std::fs::write(model.join("data/validation/cycle.txt"), &cycle)?;
    std::fs::write(model.join("data/validation/tokens.bin"), [0u8, 1, 2])?;
    std::fs::write(
        model.join("data/train/rows.jsonl"),
        "{\"text\": \"hgfedcba\"}\n",
    )?;
    ok(&agigit(&home, &model, &["commit", "-m", "a toy"]));

    // The validation part: the model predicts every byte with probability one half.
    let v = json(&agigit(&home, &model, &["--json", "eval"]));
    assert!(close(v["bits_per_byte"].as_f64().ok_or("bpb")?, 1.0), "{v}");
    assert_eq!(v["bytes"], 128);
    assert_eq!(v["tokens"], 128);
    assert_eq!(v["model_type"], "qwen2");
    assert_eq!(v["data"], "data/validation");
    assert!(
        v["data_tree"].as_str().is_some_and(|t| t.len() == 64),
        "{v}"
    );
    assert_eq!(
        v["skipped"],
        serde_json::json!(["data/validation/tokens.bin"])
    );
    assert_eq!(v["documents"][0]["name"], "data/validation/cycle.txt");
    assert!(
        v["loss_root"].as_str().is_some_and(|r| r.len() == 64),
        "{v}"
    );
    // The training part: every byte is the one it does not predict.
    let t = json(&agigit(
        &home,
        &model,
        &["--json", "eval", "HEAD", "--data", "train"],
    ));
    assert!(
        close(t["bits_per_byte"].as_f64().ok_or("bpb")?, toy::WRONG_BITS),
        "{t}"
    );
    assert!(t["data_tree"].is_string());
    // A file outside the repository, and a window of a few tokens (the value is the same: the
    // model looks at the current byte only).
    let outside = root.0.join("held-out.md");
    std::fs::write(&outside, "abcd")?;
    let p = json(&agigit(
        &home,
        &model,
        &[
            "--json",
            "eval",
            "--data",
            outside.to_str().ok_or("path")?,
            "--context",
            "3",
        ],
    ));
    assert!(close(p["bits_per_byte"].as_f64().ok_or("bpb")?, 1.0), "{p}");
    assert_eq!(p["documents"][0]["name"], "held-out.md");
    assert!(p["data_tree"].is_null());
    let text = ok(&agigit(&home, &model, &["eval", "--documents"]));
    assert!(
        text.contains("1.0000 bits per byte") && text.contains("cycle.txt"),
        "{text}"
    );

    // The commit is evaluated, not the working directory: an uncommitted change is neither
    // read nor touched.
    std::fs::write(model.join("config.json"), b"{\"model_type\": \"gpt2\"}")?;
    let again = json(&agigit(&home, &model, &["--json", "eval"]));
    assert_eq!(again["bits_per_byte"], v["bits_per_byte"]);
    assert_eq!(
        std::fs::read(model.join("config.json"))?,
        b"{\"model_type\": \"gpt2\"}"
    );

    // An architecture this build does not evaluate: invalid input (3), saying what is.
    ok(&agigit(&home, &model, &["commit", "-m", "gpt2 config"]));
    let out = agigit(&home, &model, &["--json", "eval"]);
    assert_eq!(out.status.code(), Some(3));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(e["kind"], "invalid");
    let message = e["error"].as_str().ok_or("message")?;
    assert!(
        message.contains("gpt2") && message.contains("qwen2, llama, mistral"),
        "{message}"
    );
    // The previous commit still evaluates.
    let before = json(&agigit(&home, &model, &["--json", "eval", "HEAD~1"]));
    assert_eq!(before["bits_per_byte"], v["bits_per_byte"]);

    // Held-out data is not code, and windows have bounds.
    for args in [
        &["eval", "HEAD~1", "--data", "code"][..],
        &["eval", "HEAD~1", "--context", "1"][..],
        &["eval", "HEAD~1", "--data", "/no/such/dir"][..],
    ] {
        let out = agigit(&home, &model, args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
    }
    let none = agigit(&home, &model, &["eval", "HEAD~1", "--data", "code"]);
    assert_eq!(none.status.code(), Some(3));
    Ok(())
}

/// The value does not depend on how many threads candle uses: commits of models whose
/// attention and MLP do real work (a Llama-style causal model, and a BERT scored by masked-LM
/// loss), evaluated by processes with 1, 2, 3 and 8 threads, give the same bits per byte to a
/// relative 1e-9 (the stated tolerance; the spread measured here is printed).
#[test]
fn eval_is_the_same_with_any_number_of_threads() -> TestResult {
    let (_root, home, model) = user_with_repository("eval-threads", &[])?;
    std::fs::create_dir_all(model.join("data/validation"))?;
    for (i, text) in [
        "the quick brown fox jumps over the lazy dog. ",
        "pack my box with five dozen liquor jugs! ",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(
            model.join(format!("data/validation/{i}.txt")),
            text.repeat(20),
        )?;
    }
    for (family, files) in [
        (
            "llama",
            toy::model(Toy::Random(11), "llama", Some(u32::from(b'h'))),
        ),
        ("bert", toy::bert(11)),
    ] {
        write_files(&model, &files)?;
        ok(&agigit(&home, &model, &["commit", "-m", family]));
        let mut values = Vec::new();
        for threads in ["1", "2", "3", "8"] {
            let out = support::agigit_env(
                &home,
                &model,
                &["--json", "eval", "--context", "128"],
                &[("RAYON_NUM_THREADS", Path::new(threads))],
            );
            let report = json(&out);
            assert_eq!(report["model_type"], family, "{report}");
            values.push(report["bits_per_byte"].as_f64().ok_or("bpb")?);
        }
        let (lo, hi) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        println!(
            "{family}: bits per byte with 1, 2, 3, 8 threads: {values:?}; spread {:.3e}",
            (hi - lo) / lo
        );
        assert!((hi - lo) / lo <= 1e-9, "{family}: {values:?}");
    }
    Ok(())
}

/// `eval --publish` signs a receipt and puts it on the repository's relay; `receipts` lists it
/// (signature checked) with the value `eval` printed, and `--commit` narrows the list.
#[test]
fn eval_publishes_a_receipt_that_receipts_lists() -> TestResult {
    let (root, home, model) = user_with_repository("eval-receipts", &["--id", "toy-model"])?;
    let relays = support::Relays::start(&root.0.join("relays"), 1, |_| None)?;
    ok(&agigit(&home, &model, &["relay", "add", &relays.urls()[0]]));
    write_model(&model, "qwen2")?;
    std::fs::create_dir_all(model.join("data/validation"))?;
    std::fs::write(
        model.join("data/validation/cycle.txt"),
        "abcdefgh".repeat(4),
    )?;
    ok(&agigit(&home, &model, &["commit", "-m", "first"]));
    std::fs::write(model.join("data/validation/more.txt"), "hgfe")?;
    ok(&agigit(&home, &model, &["commit", "-m", "more data"]));

    let none = json(&agigit(&home, &model, &["--json", "receipts"]));
    assert_eq!(none["receipts"], serde_json::json!([]));
    let first = json(&agigit(
        &home,
        &model,
        &[
            "--json",
            "eval",
            "HEAD~1",
            "--publish",
            "--note",
            "baseline",
        ],
    ));
    assert_eq!(first["receipt"]["accepted"], 1, "{first}");
    let second = json(&agigit(&home, &model, &["--json", "eval", "--publish"]));
    let listed = json(&agigit(&home, &model, &["--json", "receipts"]));
    let list = listed["receipts"].as_array().ok_or("a list")?;
    assert_eq!(list.len(), 2, "{listed}");
    let head = list
        .iter()
        .find(|r| r["commit"] == second["commit"])
        .ok_or("the HEAD receipt")?;
    assert_eq!(head["value"], second["bits_per_byte"]);
    assert_eq!(head["data"], second["data_tree"]);
    assert_eq!(head["losses"], second["loss_root"]);
    assert_eq!(head["documents"], 2);
    assert_eq!(head["metric"], "bits-per-byte");
    let only = json(&agigit(
        &home,
        &model,
        &["--json", "receipts", "--commit", "HEAD~1"],
    ));
    let only = only["receipts"].as_array().ok_or("a list")?;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["note"], "baseline");
    assert_eq!(only[0]["commit"], first["commit"]);
    // `log --receipts` puts each commit's receipts beside it.
    let log = json(&agigit(&home, &model, &["--json", "log", "--receipts"]));
    let log = log.as_array().ok_or("a list")?;
    assert_eq!(log.len(), 2);
    for (entry, eval) in log.iter().zip([&second, &first]) {
        assert_eq!(entry["commit"], eval["commit"]);
        let got = entry["receipts"].as_array().ok_or("receipts")?;
        assert_eq!(got.len(), 1, "{entry}");
        assert_eq!(got[0]["value"], eval["bits_per_byte"]);
    }
    let text = String::from_utf8(agigit(&home, &model, &["log", "--receipts"]).stdout)?;
    let value = first["bits_per_byte"].as_f64().ok_or("bpb")?;
    assert!(
        text.contains(&format!("Eval:   {value:.4} bits-per-byte on data")),
        "{text}"
    );
    let oneline =
        String::from_utf8(agigit(&home, &model, &["log", "--oneline", "--receipts"]).stdout)?;
    assert!(oneline.contains("bits-per-byte, 1 receipt]"), "{oneline}");
    // Without the flag, log asks no relay.
    let plain = json(&agigit(&home, &model, &["--json", "log"]));
    assert!(plain[0]["receipts"].is_null(), "{plain}");
    // Data outside the commit makes no receipt: refused before anything is published.
    let outside = root.0.join("outside.txt");
    std::fs::write(&outside, "abcd")?;
    let out = agigit(
        &home,
        &model,
        &[
            "eval",
            "--data",
            outside.to_str().ok_or("path")?,
            "--publish",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let after = json(&agigit(&home, &model, &["--json", "receipts"]));
    assert_eq!(after["receipts"].as_array().map(Vec::len), Some(2));
    drop(relays);
    Ok(())
}

//! `Repository::evaluate` and its receipt: a committed toy model (losses known in closed form)
//! evaluated from the store, the receipt signed, parsed back and its loss root matching every
//! document's loss.

#![cfg(feature = "eval")]
#![allow(clippy::expect_used, reason = "test fixtures")]

use std::collections::BTreeMap;

use agigit::eval::toy::{self, Toy};
use agigit::eval::{EvalOptions, verify_loss};
use agigit::event::nostr::prelude::{Keys, Timestamp};
use agigit::event::{EvalReceipt, RepoCoordinate, RepoId, Signed};
use agigit::{EvalData, Part, Repository};

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::Dir;

#[test]
fn a_commit_is_evaluated_from_the_store_and_its_receipt_signed() -> TestResult {
    let d = Dir::new("repo-eval");
    let files = toy::model(Toy::Cycle(b"abcd"), "qwen2", Some(u32::from(b'd')));
    std::fs::write(d.0.join("config.json"), &files.config)?;
    std::fs::write(d.0.join("tokenizer.json"), &files.tokenizer)?;
    agigit::delta::save_safetensors(
        d.0.join("model.safetensors"),
        files.tensors.iter().map(|(n, t)| (n.as_str(), t.view())),
        &BTreeMap::new(),
    )?;
    std::fs::create_dir_all(d.0.join("data/validation"))?;
    std::fs::write(d.0.join("data/validation/a.txt"), "abcd".repeat(8))?;
    std::fs::write(
        d.0.join("data/validation/b.jsonl"),
        "{\"text\": \"abcdabcd\"}\n",
    )?;
    let repo = Repository::init(&d.0)?;
    let commit = repo.commit("toy", [7; 32])?;
    // The working directory's model is gone: the store is what is read.
    std::fs::remove_file(d.0.join("model.safetensors"))?;

    let report = repo.evaluate(
        "HEAD",
        &EvalData::Part(Part::Validation),
        EvalOptions::default(),
    )?;
    assert_eq!(report.commit, commit);
    let e = &report.evaluation;
    assert!((e.bits_per_byte - 1.0).abs() < 1e-5, "{}", e.bits_per_byte);
    assert_eq!(e.documents.len(), 2);
    assert_eq!(e.bytes, 40);

    let repo_id = RepoCoordinate::new(Keys::generate().public_key(), RepoId::new("toy")?);
    let evaluator = Keys::generate();
    let body = report.receipt(repo_id.clone(), "first look")?;
    let signed = Signed::sign(body, &evaluator, Timestamp::from_secs(1_700_000_000))?;
    let back = Signed::<EvalReceipt>::from_json(signed.to_json())?;
    let r = back.body();
    assert_eq!((r.commit, r.repo.clone()), (commit, repo_id.clone()));
    assert_eq!(Some(r.data), report.data_tree);
    assert_eq!(r.value, e.bits_per_byte);
    assert_eq!((r.bytes, r.documents, r.context), (40, 2, 512));
    assert_eq!(back.author(), evaluator.public_key());
    // Each document's loss proves against the published root.
    for (i, loss) in e.documents.iter().enumerate() {
        let path = e.loss_path(i).ok_or("a path")?;
        assert!(verify_loss(&r.losses, r.documents, i as u64, loss, &path));
    }

    // Data outside the commit evaluates, but makes no receipt: nobody else could check it.
    let outside = d.0.join("../repo-eval-outside.txt");
    std::fs::write(&outside, "abcd")?;
    let local = repo.evaluate(
        "HEAD",
        &EvalData::Path(outside.clone()),
        EvalOptions::default(),
    )?;
    assert!(local.data_tree.is_none());
    assert!(local.receipt(repo_id, "").is_err());
    std::fs::remove_file(outside)?;
    Ok(())
}

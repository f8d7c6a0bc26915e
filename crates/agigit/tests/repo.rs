//! The facade's local repository: commit a model directory into its four parts, log, status,
//! branches, checkout bit for bit, and refusals that leave nothing half-done.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::collections::BTreeMap;
use std::path::Path;

use agigit::dag::model::ModelParts;
use agigit::dag::{EntryMode, FindExt};
use agigit::delta::{DType, save_safetensors, synth};
use agigit::{Change, Error, Repository};

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::Dir;

/// A small transformer-shaped checkpoint; `changed` perturbs one layer.
fn write_model(dir: &Path, changed: bool) -> TestResult {
    let shapes: [(&str, [usize; 2]); 4] = [
        ("embed.weight", [64, 16]),
        ("layers.0.attn.weight", [16, 16]),
        ("layers.0.mlp.weight", [32, 16]),
        ("lm_head.weight", [64, 16]),
    ];
    let tensors: Vec<(String, agigit::delta::Tensor)> = shapes
        .iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let mut values = synth::gaussian(i as u64, shape[0] * shape[1], 0.02);
            if changed && *name == "layers.0.mlp.weight" {
                values = synth::perturb(&values, 99, 0.01);
            }
            (name.to_string(), synth::tensor(DType::BF16, shape, &values))
        })
        .collect();
    let mut meta = BTreeMap::new();
    meta.insert("format".to_owned(), "pt".to_owned());
    save_safetensors(
        dir.join("model.safetensors"),
        tensors.iter().map(|(n, t)| (n.as_str(), t.view())),
        &meta,
    )?;
    std::fs::write(
        dir.join("config.json"),
        br#"{"hidden_size": 16, "layers": 1}"#,
    )?;
    std::fs::write(dir.join("tokenizer.json"), br#"{"vocab": ["a", "b"]}"#)?;
    std::fs::create_dir_all(dir.join("data/train"))?;
    std::fs::create_dir_all(dir.join("data/validation"))?;
    std::fs::write(
        dir.join("data/train/part-0.jsonl"),
        b"{\"text\": \"hello\"}\n",
    )?;
    std::fs::write(
        dir.join("data/validation/part-0.jsonl"),
        b"{\"text\": \"bye\"}\n",
    )?;
    Ok(())
}

const AUTHOR: [u8; 32] = [7; 32];

#[test]
fn commit_splits_into_parts_and_checkout_is_bit_exact() -> TestResult {
    let d = Dir::new("repo-parts");
    write_model(&d.0, false)?;
    let original = std::fs::read(d.0.join("model.safetensors"))?;
    let repo = Repository::init(&d.0)?;
    assert!(matches!(
        Repository::init(&d.0),
        Err(Error::AlreadyExists(_))
    ));
    let first = repo.commit("foundation", AUTHOR)?;
    assert!(repo.status()?.is_empty(), "{:?}", repo.status()?);
    assert!(matches!(
        repo.commit("again", AUTHOR),
        Err(agigit::commit::Error::NothingToCommit)
    ));

    // Four parts, each its own tree; the safetensors file a tree of header + tensors.
    let store = repo.store();
    let tree1 = store.find_commit(&first)?.tree;
    let parts1 = ModelParts::read(store, &tree1)?;
    let (code1, params1) = (parts1.code.ok_or("code")?, parts1.params.ok_or("params")?);
    assert!(parts1.train.is_some() && parts1.validation.is_some());
    let params_tree = store.find_tree(&params1)?;
    let model = params_tree.get("model.safetensors").ok_or("model entry")?;
    assert_eq!(model.mode, EntryMode::Tree);
    let tensors1 = store.find_tree(&model.id)?;
    assert_eq!(
        tensors1
            .entries()
            .iter()
            .filter(|e| e.mode == EntryMode::Tensor)
            .count(),
        4
    );

    // Change one layer: only that tensor, the params part and the trees above change.
    write_model(&d.0, true)?;
    let status = repo.status()?;
    assert_eq!(status.len(), 1);
    assert_eq!(status.get("model.safetensors"), Some(&Change::Modified));
    let second = repo.commit("fine-tune one layer", AUTHOR)?;
    let parts2 = ModelParts::read(store, &store.find_commit(&second)?.tree)?;
    assert_eq!(parts2.code, Some(code1), "the code part is shared by id");
    assert_eq!(parts2.train, parts1.train);
    assert_ne!(parts2.params, parts1.params);
    let tensors2 = store.find_tree(
        &store
            .find_tree(&parts2.params.ok_or("params")?)?
            .get("model.safetensors")
            .ok_or("model")?
            .id,
    )?;
    let same: Vec<&str> = tensors1
        .entries()
        .iter()
        .filter(|e| tensors2.get(&e.name).is_some_and(|f| f.id == e.id))
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        same.len(),
        4,
        "three tensors and the header are shared: {same:?}"
    );

    let log = repo.log("HEAD", 10)?;
    assert_eq!(
        log.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![second, first]
    );
    assert_eq!(log[0].1.message, "fine-tune one layer");

    // Back to the foundation: bit for bit.
    let report = repo.checkout(&first.to_string(), false)?;
    assert_eq!(report.written, 1);
    assert_eq!(std::fs::read(d.0.join("model.safetensors"))?, original);
    assert!(repo.status()?.is_empty());
    assert_eq!(repo.current_branch()?, None, "a commit id detaches HEAD");
    repo.checkout("master", false)?;
    assert_eq!(
        repo.current_branch()?.map(|b| b.to_string()),
        Some("refs/heads/master".into())
    );
    assert_eq!(repo.head()?, Some(second));
    Ok(())
}

#[test]
fn branches_deleted_files_and_dirty_checkouts() -> TestResult {
    let d = Dir::new("repo-branches");
    write_model(&d.0, false)?;
    let repo = Repository::init(&d.0)?;
    let first = repo.commit("first", AUTHOR)?;
    repo.create_branch("experiment", "HEAD")?;
    assert!(repo.create_branch("experiment", "HEAD").is_err(), "exists");
    assert!(repo.create_branch("bad..name", "HEAD").is_err());
    repo.checkout("experiment", false)?;
    std::fs::remove_file(d.0.join("data/validation/part-0.jsonl"))?;
    std::fs::write(d.0.join("notes.md"), b"new file")?;
    let status = repo.status()?;
    assert_eq!(
        status.get("data/validation/part-0.jsonl"),
        Some(&Change::Deleted)
    );
    assert_eq!(status.get("notes.md"), Some(&Change::Added));
    let exp = repo.commit("drop validation, add notes", AUTHOR)?;
    let parts = ModelParts::read(repo.store(), &repo.store().find_commit(&exp)?.tree)?;
    assert!(parts.validation.is_none(), "an empty part is absent");
    assert_eq!(repo.branches()?.get("experiment"), Some(&exp));
    assert_eq!(repo.branches()?.get("master"), Some(&first));

    // Switching back restores the deleted file and removes the added one.
    let report = repo.checkout("master", false)?;
    assert_eq!((report.written, report.removed), (1, 1));
    assert!(d.0.join("data/validation/part-0.jsonl").exists());
    assert!(!d.0.join("notes.md").exists());

    // A modified tracked file the checkout would delete, and an untracked file where it puts
    // one, block it (git's message, nothing changed), unless forced.
    std::fs::write(d.0.join("data/validation/part-0.jsonl"), b"my edit")?;
    std::fs::write(d.0.join("notes.md"), b"my notes")?;
    match repo.checkout("experiment", false) {
        Err(agigit::checkout::Error::LocalChanges(agigit::LocalChanges {
            modified,
            untracked,
            ..
        })) => {
            assert_eq!(modified, ["data/validation/part-0.jsonl"]);
            assert_eq!(untracked, ["notes.md"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        repo.current_branch()?.map(|b| b.to_string()),
        Some("refs/heads/master".into())
    );
    assert_eq!(std::fs::read(d.0.join("notes.md"))?, b"my notes");
    // Out of the way, a change to a file both branches share is carried over, as git does.
    std::fs::remove_file(d.0.join("notes.md"))?;
    std::fs::write(
        d.0.join("data/validation/part-0.jsonl"),
        b"{\"text\": \"bye\"}\n",
    )?;
    std::fs::write(d.0.join("config.json"), b"{}")?;
    repo.checkout("experiment", false)?;
    assert_eq!(std::fs::read(d.0.join("notes.md"))?, b"new file");
    assert!(!d.0.join("data/validation/part-0.jsonl").exists());
    assert_eq!(std::fs::read(d.0.join("config.json"))?, b"{}");
    assert_eq!(repo.status()?.keys().collect::<Vec<_>>(), ["config.json"]);
    // --force discards local changes, those to shared files too (git checkout -f).
    repo.checkout("experiment", true)?;
    assert!(repo.status()?.is_empty());
    assert!(matches!(
        repo.resolve("nope"),
        Err(Error::UnknownRevision(_))
    ));
    Ok(())
}

#[test]
fn a_malformed_safetensors_file_is_refused_by_name() -> TestResult {
    let d = Dir::new("repo-malformed");
    write_model(&d.0, false)?;
    let repo = Repository::init(&d.0)?;
    let first = repo.commit("first", AUTHOR)?;
    // A header that claims more bytes than the file has.
    let mut bad = 1000u64.to_le_bytes().to_vec();
    bad.extend_from_slice(b"{\"a\":");
    std::fs::write(d.0.join("broken.safetensors"), &bad)?;
    match repo.commit("with a broken file", AUTHOR) {
        Err(e @ agigit::commit::Error::Safetensors { .. }) => {
            let m = e.to_string();
            assert!(m.contains("broken.safetensors"), "{m}");
            // The parser's own error is kept as the cause, for a caller to match on.
            let cause = std::error::Error::source(&e).ok_or("no cause")?;
            assert!(
                matches!(
                    cause.downcast_ref::<agigit::delta::SafetensorsError>(),
                    Some(agigit::delta::SafetensorsError::Format(_))
                ),
                "{cause:?}"
            );
            assert_eq!(e.kind(), agigit::ErrorKind::Invalid);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(repo.head()?, Some(first), "nothing was committed");
    Ok(())
}

#[test]
fn corrupt_stored_data_fails_checkout_and_leaves_the_file() -> TestResult {
    let d = Dir::new("repo-corrupt");
    write_model(&d.0, false)?;
    let repo = Repository::init(&d.0)?;
    let first = repo.commit("first", AUTHOR)?;
    write_model(&d.0, true)?;
    repo.commit("second", AUTHOR)?;
    let current = std::fs::read(d.0.join("model.safetensors"))?;
    // Rot one stored object of the first commit's changed tensor, a payload blob: its bytes are
    // checked against the digest the tensor object records (every other object against its id).
    let tree = repo.store().find_commit(&first)?.tree;
    let params = ModelParts::read(repo.store(), &tree)?
        .params
        .ok_or("params")?;
    let model = repo
        .store()
        .find_tree(&params)?
        .get("model.safetensors")
        .ok_or("m")?
        .id;
    let tensor = repo
        .store()
        .find_tree(&model)?
        .get("layers.0.mlp.weight")
        .ok_or("t")?
        .id;
    let blob = repo.store().find_tensor(&tensor)?.blobs[0];
    let path =
        agigit::dag::FsStore::open(repo.root().join(".agigit").join("objects"))?.path_of(&blob);
    let mut bytes = std::fs::read(&path)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes)?;
    let err = repo
        .checkout(&first.to_string(), false)
        .expect_err("rotten data");
    assert!(
        err.to_string()
            .contains("tensor layers.0.mlp.weight: the bytes do not match the digest"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(d.0.join("model.safetensors"))?,
        current,
        "untouched"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&d.0)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("agigit-tmp"))
        .collect();
    assert!(leftovers.is_empty());
    // A reader that takes the bytes as they come (the web page) gets none of the rotten
    // tensor's: there the check comes before the hand-over, not beside it.
    let rotten_tail = bytes[bytes.len() - 64..].to_vec();
    let mut handed: Vec<Vec<u8>> = Vec::new();
    let err = repo
        .read_file_with(
            &first.to_string(),
            "model.safetensors",
            |_| Ok(()),
            |chunk| {
                handed.push(chunk.to_vec());
                Ok(())
            },
        )
        .expect_err("rotten data");
    assert!(err.to_string().contains("do not match the digest"), "{err}");
    assert!(!handed.is_empty(), "the header comes first");
    assert!(
        handed
            .iter()
            .all(|c| !c.windows(64).any(|w| w == rotten_tail.as_slice())),
        "a rotten byte was handed over"
    );
    Ok(())
}

#[test]
fn not_a_repository_says_what_to_do() {
    let d = Dir::new("repo-none");
    let err = Repository::open(&d.0).expect_err("no repository");
    assert!(err.to_string().contains("agigit init"), "{err}");
    assert!(Repository::discover(&d.0).is_err());
}

#[cfg(target_os = "linux")]
#[test]
fn what_a_crash_leaves_is_told_apart_and_cleared_on_open() -> TestResult {
    let d = Dir::new("repo-crash");
    write_model(&d.0, false)?;
    let repo = Repository::init(&d.0)?;
    repo.commit("first", AUTHOR)?;
    // A process that has exited: what it left is a crash's leftover.
    let mut child = std::process::Command::new("true").spawn()?;
    let dead = child.id();
    child.wait()?;
    let dot = d.0.join(".agigit");
    let lock = dot.join("refs/refs/heads/master.lock");
    std::fs::write(&lock, format!("pid {dead} start -\n"))?;
    std::fs::write(
        dot.join("objects/objects/tmp")
            .join(format!("obj-{dead}-0")),
        b"agigit blob 100\0partial",
    )?;
    std::fs::create_dir_all(dot.join("tmp"))?;
    std::fs::write(dot.join("tmp").join(format!("push-{dead}-3.pack")), b"AGPK")?;
    // A live process's lock elsewhere stays.
    let live = dot.join("refs/refs/heads/other.lock");
    std::fs::write(&live, format!("pid {} start -\n", std::process::id()))?;
    // A power loss took an old lock's unsynced owner line: cleared. An empty lock made just
    // now may be a writer about to fill it: kept.
    let emptied = dot.join("refs/refs/heads/lost.lock");
    std::fs::write(&emptied, b"")?;
    std::fs::File::options()
        .write(true)
        .open(&emptied)?
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(120))?;
    let fresh = dot.join("refs/refs/heads/fresh.lock");
    std::fs::write(&fresh, b"")?;

    std::fs::write(d.0.join("notes.md"), b"more")?;
    let err = repo
        .commit("blocked", AUTHOR)
        .expect_err("the lock is there");
    let m = err.to_string();
    assert!(
        m.contains("crashed") && m.contains(&dead.to_string()),
        "{m}"
    );

    let reopened = Repository::open(&d.0)?;
    assert_eq!(
        reopened.recovered(),
        agigit::Recovered { locks: 2, temps: 2 }
    );
    assert!(!lock.exists());
    assert!(!emptied.exists(), "an old empty lock is a power loss's");
    assert!(fresh.exists(), "a new empty lock may be a live writer's");
    assert!(live.exists(), "a running process's lock is left alone");
    assert_eq!(std::fs::read_dir(dot.join("tmp"))?.count(), 0);
    reopened.commit("after the crash", AUTHOR)?;
    Ok(())
}

#[test]
fn revisions_as_git_users_type_them() -> TestResult {
    use agigit::dag::refs::{Expected, RefKey, RefName, Target, Transaction};
    use agigit::dag::{Commit, WriteExt as _};
    let dir = Dir::new("repo-revisions");
    let repo = Repository::init(&dir.0)?;
    let note = |text: &str| std::fs::write(dir.0.join("notes.txt"), text);
    note("one")?;
    let c1 = repo.commit("one", [1; 32])?;
    note("two")?;
    let c2 = repo.commit("two", [1; 32])?;
    repo.create_branch("side", "HEAD~1")?;
    repo.checkout("side", false)?;
    std::fs::write(dir.0.join("side.txt"), "side")?;
    let s1 = repo.commit("side work", [1; 32])?;
    repo.checkout("master", false)?;
    let merged = repo.merge("side", None, [1; 32], false)?;
    let m = merged.commit.expect("a merge commit");
    let set = |name: &str, id| {
        repo.refs().commit(Transaction::new().edit(
            RefKey::Name(RefName::new(name).expect("name")),
            Expected::Any,
            Some(Target::Id(id)),
        ))
    };
    set("refs/tags/v1", c1)?;
    set("refs/remotes/origin/master", c2)?;

    let r = |rev: &str| repo.resolve(rev);
    assert_eq!(r("HEAD")?, m);
    assert_eq!(r("@")?, m);
    assert_eq!(r("HEAD^")?, c2);
    assert_eq!(r("HEAD^2")?, s1);
    assert_eq!(r("HEAD~2")?, c1);
    assert_eq!(r("master^2~1")?, c1);
    assert_eq!(r("v1")?, c1, "a tag");
    assert_eq!(r("origin/master")?, c2, "a remote branch");
    assert_eq!(r("refs/remotes/origin/master~1")?, c1);
    // The ids the command line prints (12 digits), and shorter unique prefixes, in any case.
    assert_eq!(r(&c2.short().to_string())?, c2);
    assert_eq!(r(&s1.to_hex()[..7].to_ascii_uppercase())?, s1);
    assert_eq!(r(&format!("{}~1", &m.to_hex()[..10]))?, c2);
    // A branch is switched to; a commit, a tag or `HEAD~n` detaches.
    assert!(repo.resolve_revision("side")?.branch.is_some());
    assert!(repo.resolve_revision("side~0")?.branch.is_none());
    repo.checkout(&c2.to_hex()[..8], false)?;
    assert_eq!((repo.head()?, repo.current_branch()?), (Some(c2), None));
    repo.checkout("master", false)?;
    assert_eq!(
        repo.current_branch()?.map(|b| b.to_string()),
        Some("refs/heads/master".into())
    );

    // Past the root, no such parent, not a revision, unknown: typed errors that say so.
    assert!(matches!(
        r("HEAD~3"),
        Err(Error::Revision(e @ agigit::dag::RevError::NoParent { .. })) if e.to_string().contains("0 parent")
    ));
    assert!(matches!(
        r("HEAD^3"),
        Err(Error::Revision(e @ agigit::dag::RevError::NoParent { .. })) if e.to_string().contains("parent number 3")
    ));
    assert!(matches!(
        r("~1"),
        Err(Error::Revision(agigit::dag::RevError::Syntax { .. }))
    ));
    assert!(matches!(r("nothing-here"), Err(Error::UnknownRevision(_))));
    assert!(
        matches!(r("abc"), Err(Error::UnknownRevision(_))),
        "three digits are no prefix"
    );
    // A prefix of a tree is not a commit.
    let tree = repo.store().find_commit(&c1)?.tree;
    assert!(
        matches!(r(&tree.to_hex()[..12]), Err(Error::Invalid(m)) if m.contains("not a commit"))
    );

    // Commits until two share their first four digits: the prefix is ambiguous, and the error
    // lists both with their first lines.
    let mut by_prefix = std::collections::HashMap::new();
    let (a, b) = (0u32..)
        .find_map(|i| {
            let id = repo
                .store()
                .write_commit(&Commit {
                    message: format!("filler {i}"),
                    ..repo.store().find_commit(&c1).expect("c1")
                })
                .expect("write");
            by_prefix
                .insert(id.to_hex()[..4].to_owned(), id)
                .map(|other| (other, id))
        })
        .expect("a shared prefix");
    match r(&a.to_hex()[..4]) {
        Err(Error::AmbiguousRevision { candidates, .. }) => {
            for id in [a, b] {
                assert!(
                    candidates
                        .iter()
                        .any(|c| c.starts_with(&id.short().to_string()) && c.contains("filler")),
                    "{candidates:?}"
                );
            }
        }
        other => panic!("an ambiguous prefix: {other:?}"),
    }
    assert_eq!(r(&a.to_hex()[..20])?, a, "more digits settle it");
    Ok(())
}

#[test]
fn a_model_diff_names_the_tensors_that_changed_and_how_they_are_stored() -> TestResult {
    let dir = Dir::new("model-diff");
    let repo = Repository::init(&dir.0)?;
    write_model(&dir.0, false)?;
    let base = repo.commit("base", AUTHOR)?;
    // A fork of its own first commit: the tuned layer is stored as a lossless delta.
    repo.set_fork_base("30717:aa:foundation", base)?;
    write_model(&dir.0, true)?;
    std::fs::write(dir.0.join("data/train/part-1.jsonl"), b"{}\n")?;

    let all = agigit::PathFilter::all();
    let pending = repo.diff("HEAD", None, &all)?;
    let paths: Vec<&str> = pending.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["data/train/part-1.jsonl", "model.safetensors"]);
    let tensors = &pending.files[1].tensors;
    assert_eq!(tensors.len(), 1);
    assert_eq!(tensors[0].name, "layers.0.mlp.weight");
    assert_eq!(tensors[0].change, Change::Modified);
    let c = tensors[0].comparison.ok_or("compared")?;
    assert!(c.changed_share() > 0.5, "{c:?}");
    // perturb(…, 0.01): a change of about 1% of the weights' norm.
    let rel = c.relative_change().ok_or("a norm")?;
    assert!((0.005..0.02).contains(&rel), "{rel}");
    assert!(tensors[0].new.as_ref().ok_or("new")?.storage.is_none());

    let tuned = repo.commit("tune", AUTHOR)?;
    let (id, commit, shown) = repo.show("HEAD", &all)?;
    assert_eq!((id, commit.message.as_str()), (tuned, "tune"));
    let t = &shown.files[1].tensors[0];
    let stored = t
        .new
        .as_ref()
        .and_then(|i| i.storage.as_ref())
        .ok_or("stored")?;
    assert_eq!((stored.encoding.as_str(), stored.delta), ("lossless", true));
    assert_eq!(stored.describe(), "lossless delta");
    assert!(stored.stored_bytes < stored.dense_bytes);
    assert_eq!(t.comparison, Some(c), "the same change, committed");

    // Filters: a part, a path, a directory.
    let only = |specs: &[&str]| -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let f = agigit::PathFilter::parse(specs)?;
        Ok(repo
            .diff(&base.to_string(), Some("HEAD"), &f)?
            .files
            .into_iter()
            .map(|f| f.path)
            .collect())
    };
    assert_eq!(only(&["params"])?, ["model.safetensors"]);
    assert_eq!(only(&["train"])?, ["data/train/part-1.jsonl"]);
    assert_eq!(only(&["data/train/"])?, ["data/train/part-1.jsonl"]);
    assert!(
        only(&["data/train/part"])?.is_empty(),
        "a prefix is not a path"
    );
    assert!(only(&["code"])?.is_empty());
    assert!(matches!(
        agigit::PathFilter::parse(&["a/../b"]),
        Err(Error::Invalid(_))
    ));
    Ok(())
}

#[test]
fn a_part_has_its_own_history_and_comes_from_any_version() -> TestResult {
    let dir = Dir::new("part-history");
    let repo = Repository::init(&dir.0)?;
    write_model(&dir.0, false)?;
    let v1 = repo.commit("v1", AUTHOR)?;
    std::fs::write(
        dir.0.join("data/train/part-0.jsonl"),
        b"{\"text\": \"v2\"}\n",
    )?;
    let v2 = repo.commit("data v2", AUTHOR)?;
    write_model(&dir.0, true)?;
    std::fs::write(
        dir.0.join("data/train/part-0.jsonl"),
        b"{\"text\": \"v2\"}\n",
    )?;
    let v3 = repo.commit("params v3", AUTHOR)?;
    let ids = |filter: &[&str]| -> Result<Vec<agigit::dag::ObjectId>, Box<dyn std::error::Error>> {
        let f = agigit::PathFilter::parse(filter)?;
        Ok(repo
            .log_filtered("HEAD", 10, &f)?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    };
    assert_eq!(ids(&["params"])?, [v3, v1]);
    assert_eq!(ids(&["data/train"])?, [v2, v1]);
    assert_eq!(ids(&["data/validation"])?, [v1]);
    assert_eq!(ids(&[])?, [v3, v2, v1]);

    // v1's training data into today's tree; HEAD does not move.
    let report = repo.checkout_paths(
        &v1.to_string(),
        &agigit::PathFilter::parse(&["train"])?,
        false,
    )?;
    assert_eq!(report.written, 1);
    assert_eq!(repo.head()?, Some(v3));
    assert_eq!(
        std::fs::read(dir.0.join("data/train/part-0.jsonl"))?,
        b"{\"text\": \"hello\"}\n"
    );
    let status = repo.status()?;
    assert_eq!(
        status.into_iter().collect::<Vec<_>>(),
        [("data/train/part-0.jsonl".to_owned(), Change::Modified)]
    );
    assert!(matches!(
        repo.checkout_paths("HEAD", &agigit::PathFilter::all(), false),
        Err(agigit::checkout::Error::Other(_))
    ));
    Ok(())
}

#[test]
fn refusals_of_diverged_history_are_typed() -> TestResult {
    let dir = Dir::new("diverged");
    let repo = Repository::init(&dir.0)?;
    write_model(&dir.0, false)?;
    let one = repo.commit("one", AUTHOR)?;
    repo.create_branch("side", "HEAD")?;
    repo.checkout("side", false)?;
    std::fs::write(dir.0.join("notes.md"), b"on the side")?;
    let side = repo.commit("side work", AUTHOR)?;
    repo.checkout("master", false)?;
    write_model(&dir.0, true)?;
    let two = repo.commit("two", AUTHOR)?;
    // `pull <commit>` of a commit that does not descend from HEAD: merge it instead.
    match repo.fast_forward_to("side", false) {
        Err(e @ agigit::merge::Error::NotFastForward { .. }) => {
            assert_eq!(e.kind(), agigit::ErrorKind::Diverged);
            let agigit::merge::Error::NotFastForward { rev, target, head } = &e else {
                unreachable!()
            };
            assert_eq!((rev.as_str(), *target, *head), ("side", side, two));
            assert!(e.to_string().contains("agigit merge side"), "{e}");
        }
        other => panic!("not a fast-forward: {other:?}"),
    }
    assert_eq!(repo.head()?, Some(two), "nothing moved");
    // A fast-forward to an ancestor is nothing to do.
    assert!(repo.fast_forward_to(&one.to_hex(), false)?.up_to_date);
    // Deleting a branch whose commits HEAD lacks would lose them.
    let unmerged = repo.delete_branch("side", false);
    assert!(
        matches!(&unmerged, Err(Error::BranchNotMerged { name, at }) if name == "side" && *at == side),
        "{unmerged:?}"
    );
    assert_eq!(
        unmerged.unwrap_err().kind(),
        agigit::ErrorKind::WouldLoseWork
    );
    assert_eq!(repo.delete_branch("side", true)?, side);
    Ok(())
}

#[test]
fn tags_name_commits_and_keep_their_messages() -> TestResult {
    let dir = Dir::new("tags");
    let repo = Repository::init(&dir.0)?;
    write_model(&dir.0, false)?;
    let one = repo.commit("one", AUTHOR)?;
    write_model(&dir.0, true)?;
    let two = repo.commit("two", AUTHOR)?;
    assert_eq!(repo.create_tag("v1", "HEAD~1", Some("first"), false)?, one);
    assert_eq!(repo.create_tag("v2", "HEAD", None, false)?, two);
    assert_eq!(repo.resolve("v1")?, one);
    let tags = repo.tags()?;
    assert_eq!(tags["v1"].message.as_deref(), Some("first"));
    assert_eq!(tags["v2"].message, None);
    // Not moved without force; moved with it, and a lightweight tag drops the old message.
    let exists = repo.create_tag("v1", "HEAD", None, false);
    assert!(
        matches!(&exists, Err(Error::TagExists { name, at }) if name == "v1" && *at == one),
        "{exists:?}"
    );
    assert_eq!(exists.unwrap_err().kind(), agigit::ErrorKind::Invalid);
    repo.create_tag("v1", "HEAD", None, true)?;
    let moved = &repo.tags()?["v1"];
    assert_eq!((moved.commit, moved.message.as_deref()), (two, None));
    // Names and messages a state could not carry are refused.
    assert!(repo.create_tag("a..b", "HEAD", None, false).is_err());
    assert!(
        repo.create_tag("v3", "HEAD", Some("\u{1b}[31m"), false)
            .is_err()
    );
    assert!(
        repo.create_tag("v3", "HEAD", Some(&"x".repeat(5000)), false)
            .is_err()
    );
    assert_eq!(repo.delete_tag("v2")?, two);
    assert!(!repo.tags()?.contains_key("v2"));
    assert!(matches!(
        repo.delete_tag("v2"),
        Err(Error::UnknownRevision(_))
    ));
    Ok(())
}

#[test]
fn an_announcement_with_a_bad_maintainer_keeps_the_key_parsers_error() -> TestResult {
    let d = Dir::new("repo-bad-maintainer");
    write_model(&d.0, false)?;
    let repo = Repository::init(&d.0)?;
    repo.commit("first", AUTHOR)?;
    let settings = agigit::config::AnnounceConfig {
        maintainers: vec!["npub1notakey".to_owned()],
        ..agigit::config::AnnounceConfig::default()
    };
    let id = agigit::event::RepoId::new("model")?;
    match repo.announcement(&id, &settings, &[], &[]) {
        Err(e @ Error::InvalidInput { .. }) => {
            assert!(e.to_string().contains("npub1notakey"), "{e}");
            assert_eq!(e.kind(), agigit::ErrorKind::Invalid);
            let cause = std::error::Error::source(&e).ok_or("no cause")?;
            assert!(
                cause
                    .downcast_ref::<agigit::event::nostr::error::Error>()
                    .is_some(),
                "{cause:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A good key is taken.
    let keys = agigit::event::nostr::prelude::Keys::generate();
    let settings = agigit::config::AnnounceConfig {
        maintainers: vec![keys.public_key().to_hex()],
        ..agigit::config::AnnounceConfig::default()
    };
    let a = repo.announcement(&id, &settings, &[], &[])?;
    assert_eq!(a.maintainers, vec![keys.public_key()]);
    Ok(())
}

//! Merge, rebase and fork rebase: tensors both sides changed merged by the strategy asked for,
//! conflicts listed like git with nothing changed, commits replayed, a fork's change replayed on
//! a new foundation and stored as deltas against it.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::path::Path;

use agigit::dag::FindExt as _;
use agigit::{MergeStrategy, Repository};

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::{Dir, read_model, write_model};

const AUTHOR: [u8; 32] = [7; 32];

fn write(dir: &Path, name: &str, text: &str) -> TestResult {
    std::fs::write(dir.join(name), text)?;
    Ok(())
}

/// master: base (1, 1, 1) + config v1; branch `other` forked from it.
fn two_branches(dir: &Path) -> Result<Repository, Box<dyn std::error::Error>> {
    let repo = Repository::init(dir)?;
    write_model(dir, [1.0, 1.0, 1.0])?;
    write(dir, "config.json", "{\"v\": 1}")?;
    write(dir, "train.py", "print('v1')")?;
    repo.commit("base", AUTHOR)?;
    repo.create_branch("other", "HEAD")?;
    Ok(repo)
}

#[test]
fn a_clean_merge_takes_each_sides_changes() -> TestResult {
    let dir = Dir::new("merge-clean");
    let repo = two_branches(&dir.0)?;
    write_model(&dir.0, [2.0, 1.0, 1.0])?;
    repo.commit("master changes a", AUTHOR)?;
    repo.checkout("other", false)?;
    write_model(&dir.0, [1.0, 3.0, 1.0])?;
    write(&dir.0, "train.py", "print('v2')")?;
    let theirs = repo.commit("other changes b and train.py", AUTHOR)?;
    repo.checkout("master", false)?;
    let ours = repo.head()?.ok_or("head")?;

    let report = repo.merge("other", None, AUTHOR, false)?;
    assert!(!report.fast_forward && report.commits == 1, "{report:?}");
    assert!(report.merged_tensors.is_empty());
    assert_eq!(read_model(&dir.0)?, [2.0, 3.0, 1.0]);
    assert_eq!(
        std::fs::read_to_string(dir.0.join("train.py"))?,
        "print('v2')"
    );
    let merge = repo.store().find_commit(&report.commit.ok_or("commit")?)?;
    assert_eq!(merge.parents, vec![ours, theirs]);
    assert!(repo.status()?.is_empty());
    // Merging again: already up to date.
    assert!(repo.merge("other", None, AUTHOR, false)?.up_to_date);
    Ok(())
}

#[test]
fn a_no_ff_merge_records_what_a_fast_forward_would_not() -> TestResult {
    let dir = Dir::new("merge-no-ff");
    let repo = two_branches(&dir.0)?;
    let base = repo.head()?.ok_or("head")?;
    repo.checkout("other", false)?;
    write_model(&dir.0, [1.0, 3.0, 1.0])?;
    let theirs = repo.commit("other changes b", AUTHOR)?;
    repo.checkout("master", false)?;
    let report = repo.merge_no_ff("other", "Round 1: champion other", None, AUTHOR, false)?;
    assert!(!report.fast_forward && report.commits == 1, "{report:?}");
    let merge = repo.store().find_commit(&report.commit.ok_or("commit")?)?;
    assert_eq!(merge.parents, vec![base, theirs]);
    assert_eq!(merge.message, "Round 1: champion other");
    assert_eq!(merge.tree, repo.store().find_commit(&theirs)?.tree);
    assert_eq!(read_model(&dir.0)?, [1.0, 3.0, 1.0]);
    // Contained already: nothing.
    let again = repo.merge_no_ff("other", "again", None, AUTHOR, false)?;
    assert!(again.up_to_date);
    assert_eq!(repo.head()?, report.commit);
    Ok(())
}

#[test]
fn tensors_changed_on_both_sides_conflict_or_merge_by_strategy() -> TestResult {
    let dir = Dir::new("merge-numeric");
    let repo = two_branches(&dir.0)?;
    write_model(&dir.0, [2.0, 1.0, 1.0])?;
    repo.commit("master: a = 2", AUTHOR)?;
    repo.checkout("other", false)?;
    write_model(&dir.0, [4.0, 1.0, 1.0])?;
    write(&dir.0, "config.json", "{\"v\": 3}")?;
    repo.commit("other: a = 4, config v3", AUTHOR)?;
    repo.checkout("master", false)?;
    write(&dir.0, "config.json", "{\"v\": 2}")?;
    let ours = repo.commit("master: config v2", AUTHOR)?;

    // No strategy: both the tensor and the file conflict, and nothing moves.
    match repo.merge("other", None, AUTHOR, false) {
        Err(agigit::merge::Error::Conflict(list)) => {
            let text = list.paths.join("\n");
            assert!(
                text.contains(
                    "CONFLICT (tensor changed on both sides): params/model.safetensors/a.weight"
                ),
                "{text}"
            );
            assert!(
                text.contains("CONFLICT (both modified): code/config.json"),
                "{text}"
            );
        }
        other => panic!("a conflict was expected: {other:?}"),
    }
    assert_eq!(repo.head()?, Some(ours));
    assert_eq!(read_model(&dir.0)?, [2.0, 1.0, 1.0]);

    // Average merges the tensor, but cannot settle config.json.
    assert!(matches!(
        repo.merge("other", Some(MergeStrategy::average()), AUTHOR, false),
        Err(agigit::merge::Error::Conflict(_))
    ));
    // Theirs settles both: their tensor and their file.
    let report = repo.merge("other", Some(MergeStrategy::Theirs), AUTHOR, false)?;
    assert_eq!(
        report.merged_tensors,
        vec!["params/model.safetensors/a.weight"]
    );
    assert_eq!(report.resolved_by_side, vec!["code/config.json"]);
    assert_eq!(read_model(&dir.0)?, [4.0, 1.0, 1.0]);
    assert_eq!(
        std::fs::read_to_string(dir.0.join("config.json"))?,
        "{\"v\": 3}"
    );
    Ok(())
}

#[test]
fn average_and_task_arithmetic_give_the_expected_tensors() -> TestResult {
    for (strategy, expected) in [
        (MergeStrategy::average(), 3.0f32),
        // base 1, ours 2, theirs 4: 1 + (2 - 1) + (4 - 1) = 5.
        (MergeStrategy::task_arithmetic(), 5.0),
        (MergeStrategy::Ours, 2.0),
        // Weighted: 0.75 · 2 + 0.25 · 4; 1 + 0.5 · ((2 − 1) + (4 − 1)).
        ("average:0.75".parse()?, 2.5),
        ("task-arithmetic:0.5".parse()?, 3.0),
    ] {
        let dir = Dir::new(&format!("merge-{}", strategy.to_string().replace(':', "-")));
        let repo = two_branches(&dir.0)?;
        write_model(&dir.0, [2.0, 1.0, 1.0])?;
        repo.commit("master: a = 2", AUTHOR)?;
        repo.checkout("other", false)?;
        write_model(&dir.0, [4.0, 1.0, 5.0])?;
        repo.commit("other: a = 4, c = 5", AUTHOR)?;
        repo.checkout("master", false)?;
        let report = repo.merge("other", Some(strategy), AUTHOR, false)?;
        assert_eq!(report.merged_tensors.len(), 1, "{strategy:?}");
        assert_eq!(read_model(&dir.0)?, [expected, 1.0, 5.0], "{strategy:?}");
        assert!(repo.status()?.is_empty());
        // The merge commit records the strategy and its number.
        let commit = repo.store().find_commit(&repo.head()?.ok_or("head")?)?;
        let recorded = commit
            .extra
            .iter()
            .find(|(k, _)| k == agigit::MERGE_STRATEGY_HEADER)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        assert_eq!(recorded, Some(strategy.to_string()));
        assert_eq!(
            recorded.ok_or("recorded")?.parse::<MergeStrategy>()?,
            strategy
        );
    }
    for bad in [
        "average:1.5",
        "ties:0",
        "task-arithmetic:-1",
        "ours:0.5",
        "average:x",
        "mean",
    ] {
        assert!(bad.parse::<MergeStrategy>().is_err(), "{bad}");
    }
    Ok(())
}

#[test]
fn rebase_replays_commits_on_the_new_base() -> TestResult {
    let dir = Dir::new("rebase");
    let repo = two_branches(&dir.0)?;
    // master moves on: tensor b.
    write_model(&dir.0, [1.0, 6.0, 1.0])?;
    let upstream = repo.commit("master: b = 6", AUTHOR)?;
    // other: two commits, a file then tensor c.
    repo.checkout("other", false)?;
    write(&dir.0, "train.py", "print('tuned')")?;
    repo.commit("other: train.py", AUTHOR)?;
    write_model(&dir.0, [1.0, 1.0, 7.0])?;
    repo.commit("other: c = 7", AUTHOR)?;

    let report = repo.rebase("master", None, false)?;
    assert_eq!(report.commits, 2);
    let log = repo.log("HEAD", 10)?;
    let messages: Vec<&str> = log.iter().map(|(_, c)| c.message.as_str()).collect();
    assert_eq!(
        messages,
        ["other: c = 7", "other: train.py", "master: b = 6", "base"]
    );
    assert!(
        log.iter().all(|(_, c)| c.parents.len() <= 1),
        "linear history"
    );
    assert_eq!(log[2].0, upstream);
    assert_eq!(read_model(&dir.0)?, [1.0, 6.0, 7.0]);
    assert_eq!(
        std::fs::read_to_string(dir.0.join("train.py"))?,
        "print('tuned')"
    );
    assert!(repo.status()?.is_empty());
    assert!(repo.rebase("master", None, false)?.up_to_date);

    // A replayed commit that conflicts stops the rebase with nothing changed.
    repo.checkout("master", false)?;
    write(&dir.0, "train.py", "print('master')")?;
    repo.commit("master: train.py", AUTHOR)?;
    repo.checkout("other", false)?;
    let before = repo.head()?;
    match repo.rebase("master", None, false) {
        Err(agigit::merge::Error::Conflict(list)) => {
            let list = list.paths;
            assert!(list[0].starts_with("replaying"), "{list:?}");
            assert!(list.iter().any(|l| l.contains("code/train.py")), "{list:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(repo.head()?, before);
    Ok(())
}

#[test]
fn a_fork_rebase_replays_the_fine_tune_on_the_new_foundation_as_deltas() -> TestResult {
    let dir = Dir::new("fork-rebase");
    let repo = Repository::init(&dir.0)?;
    // Foundation v1 on master, v2 on branch `fm-v2` (a and b changed upstream).
    write_model(&dir.0, [1.0, 1.0, 1.0])?;
    let v1 = repo.commit("foundation v1", AUTHOR)?;
    repo.create_branch("fm-v2", "HEAD")?;
    repo.checkout("fm-v2", false)?;
    write_model(&dir.0, [10.0, 20.0, 1.0])?;
    let v2 = repo.commit("foundation v2", AUTHOR)?;
    repo.checkout("master", false)?;
    // The fork of v1 fine-tunes a (+2) and c (+3).
    repo.set_fork_base("30717:aa:foundation", v1)?;
    write_model(&dir.0, [3.0, 1.0, 4.0])?;
    write(&dir.0, "notes.md", "fine-tune")?;
    let (_, stats) = repo.commit_with("fine-tune", AUTHOR, &agigit::delta::Lossless::default())?;
    assert_eq!(stats.delta_tensors, 2);

    let report = repo.rebase_fork(&v2.to_string(), AUTHOR, false)?;
    // a: 10 + (3 - 1) = 12; b follows the foundation: 20; c: 1 + (4 - 1) = 4.
    assert_eq!(read_model(&dir.0)?, [12.0, 20.0, 4.0]);
    assert_eq!(
        report.merged_tensors,
        vec!["params/model.safetensors/a.weight"]
    );
    assert_eq!(
        std::fs::read_to_string(dir.0.join("notes.md"))?,
        "fine-tune"
    );
    let head = repo.store().find_commit(&report.commit.ok_or("commit")?)?;
    assert_eq!(head.base.map(|b| b.commit), Some(v2));
    assert_eq!(repo.fork_base()?.map(|b| b.commit), Some(v2));
    assert!(repo.status()?.is_empty());
    // The merged tensor is stored as a delta against v2's tensor, not dense.
    let params = agigit::dag::model::ModelParts::read(repo.store(), &head.tree)?
        .params
        .ok_or("params")?;
    let file = repo.store().find_tree(&params)?;
    let file_tree = repo
        .store()
        .find_tree(&file.get("model.safetensors").ok_or("file")?.id)?;
    let a = repo
        .store()
        .find_tensor(&file_tree.get("a.weight").ok_or("a")?.id)?;
    assert_ne!(a.encoding, "dense");
    let v2_tree = repo.store().find_commit(&v2)?.tree;
    let v2_params = agigit::dag::model::ModelParts::read(repo.store(), &v2_tree)?
        .params
        .ok_or("params")?;
    let v2_file = repo.store().find_tree(
        &repo
            .store()
            .find_tree(&v2_params)?
            .get("model.safetensors")
            .ok_or("file")?
            .id,
    )?;
    assert_eq!(a.base, Some(v2_file.get("a.weight").ok_or("a")?.id));
    // Not a fork: refused.
    let plain = Dir::new("fork-rebase-plain");
    let other = Repository::init(&plain.0)?;
    write(&plain.0, "x.txt", "x")?;
    other.commit("x", AUTHOR)?;
    assert!(matches!(
        other.rebase_fork("HEAD", AUTHOR, false),
        Err(agigit::merge::Error::Invalid(_))
    ));
    Ok(())
}

/// The three ways a user's work can be in a command's way.
#[derive(Clone, Copy, Debug)]
enum LocalWork {
    /// A tracked file the target changes, edited here.
    Modified,
    /// A tracked file the target changes, deleted here.
    Deleted,
    /// A file the target adds, already here untracked.
    Untracked,
}

impl LocalWork {
    const ALL: [LocalWork; 3] = [
        LocalWork::Modified,
        LocalWork::Deleted,
        LocalWork::Untracked,
    ];

    fn apply(self, dir: &Path) -> TestResult {
        match self {
            LocalWork::Modified => write(dir, "shared.txt", "my uncommitted edit"),
            LocalWork::Deleted => Ok(std::fs::remove_file(dir.join("shared.txt"))?),
            LocalWork::Untracked => write(dir, "new.txt", "my own notes"),
        }
    }

    /// The file the user's work is in, and what it holds (`None`: deleted).
    fn expected(self) -> (&'static str, Option<&'static str>) {
        match self {
            LocalWork::Modified => ("shared.txt", Some("my uncommitted edit")),
            LocalWork::Deleted => ("shared.txt", None),
            LocalWork::Untracked => ("new.txt", Some("my own notes")),
        }
    }

    fn check(self, err: &(dyn std::error::Error + 'static)) {
        let (path, _) = self.expected();
        let changes = match (
            err.downcast_ref::<agigit::checkout::Error>(),
            err.downcast_ref::<agigit::merge::Error>(),
        ) {
            (Some(agigit::checkout::Error::LocalChanges(c)), _)
            | (_, Some(agigit::merge::Error::LocalChanges(c))) => c,
            _ => panic!("{self:?}: {err:?}"),
        };
        match self {
            LocalWork::Modified | LocalWork::Deleted => assert!(
                changes.modified == [path] && changes.untracked.is_empty(),
                "{err}"
            ),
            LocalWork::Untracked => assert!(
                changes.modified.is_empty() && changes.untracked == [path],
                "{err}"
            ),
        }
        let m = err.to_string();
        assert!(
            m.contains("would be overwritten by") && m.contains("--force"),
            "{m}"
        );
    }
}

/// master: `shared.txt` and `keep.txt`; `theirs`: `shared.txt` changed and `new.txt` added; `mine`
/// (checked out): `keep.txt` changed.
fn diverged(dir: &Path) -> Result<Repository, Box<dyn std::error::Error>> {
    write(dir, "shared.txt", "v1")?;
    write(dir, "keep.txt", "k1")?;
    let repo = Repository::init(dir)?;
    repo.commit("base", AUTHOR)?;
    repo.create_branch("theirs", "HEAD")?;
    repo.create_branch("mine", "HEAD")?;
    repo.checkout("theirs", false)?;
    write(dir, "shared.txt", "v2")?;
    write(dir, "new.txt", "theirs")?;
    repo.commit("theirs", AUTHOR)?;
    repo.checkout("mine", false)?;
    write(dir, "keep.txt", "k2")?;
    repo.commit("mine", AUTHOR)?;
    Ok(repo)
}

#[test]
fn checkout_merge_and_rebase_never_lose_local_work() -> TestResult {
    type Run = fn(&Repository, bool) -> Result<(), Box<dyn std::error::Error>>;
    let commands: [(&str, Run); 3] = [
        ("checkout", |r, force| {
            r.checkout("theirs", force).map(drop).map_err(Into::into)
        }),
        ("merge", |r, force| {
            r.merge("theirs", None, AUTHOR, force)
                .map(drop)
                .map_err(Into::into)
        }),
        ("rebase", |r, force| {
            r.rebase("theirs", None, force)
                .map(drop)
                .map_err(Into::into)
        }),
    ];
    for (name, run) in commands {
        for work in LocalWork::ALL {
            let d = Dir::new(&format!("local-{name}-{work:?}"));
            let repo = diverged(&d.0)?;
            let head = repo.head()?;
            work.apply(&d.0)?;
            let before = std::fs::read_to_string(d.0.join("keep.txt"))?;
            let err = run(&repo, false).expect_err("refused");
            work.check(err.as_ref());
            // Nothing changed: the user's work, the other files, HEAD.
            let (path, content) = work.expected();
            assert_eq!(
                std::fs::read_to_string(d.0.join(path)).ok().as_deref(),
                content,
                "{name} {work:?}"
            );
            assert_eq!(std::fs::read_to_string(d.0.join("keep.txt"))?, before);
            assert_eq!(repo.head()?, head, "{name} {work:?}: HEAD did not move");
            // --force discards it.
            run(&repo, true)?;
            assert_eq!(std::fs::read_to_string(d.0.join("shared.txt"))?, "v2");
            assert_eq!(std::fs::read_to_string(d.0.join("new.txt"))?, "theirs");
            assert!(repo.status()?.is_empty(), "{name} {work:?}");
        }
    }
    Ok(())
}

#[test]
fn local_changes_to_files_a_command_does_not_touch_are_kept() -> TestResult {
    let d = Dir::new("local-kept");
    let repo = diverged(&d.0)?;
    // keep.txt is changed on `mine` only: merging `theirs` leaves it alone, edits included.
    write(&d.0, "keep.txt", "my edit")?;
    write(&d.0, "untracked-elsewhere.txt", "mine")?;
    repo.merge("theirs", None, AUTHOR, false)?;
    assert_eq!(std::fs::read_to_string(d.0.join("keep.txt"))?, "my edit");
    assert_eq!(std::fs::read_to_string(d.0.join("shared.txt"))?, "v2");
    assert!(d.0.join("untracked-elsewhere.txt").exists());
    Ok(())
}

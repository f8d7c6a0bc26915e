//! Playing the attacker against the facade: a model owner who publishes trees whose names escape
//! the clone, tensors whose numbers lie, bombs, absurd depths; a symlink planted in the work tree.
//! Each test would fail on a client that trusts what it fetches: it would write outside the
//! clone, overflow its stack, or allocate what the owner says.
//!
//! The heap is counted (`peak_alloc`), so the tests of this binary run one at a time.

#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test fixtures: small hand-made objects"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use agigit::dag::object::{NameError, compute_id};
use agigit::dag::refs::{Expected, RefKey, RefName, Target, Transaction};
use agigit::dag::{
    ChunkEntry, ChunkList, Commit, DecodeError, EntryMode, FindError, Kind, ModelParts, ObjectId,
    TensorObject, WriteExt,
};
use agigit::delta::{DType, DeltaCodec as _, Lossless, synth};
use agigit::event::nostr::prelude::{Keys, Timestamp};
use agigit::event::{CommitEvent, RepoCoordinate, RepoId, RepoState, Signed};
use agigit::hash::BlobHash;
use agigit::net::{MemoryTransport, Transport};
use agigit::shard::{ErasureCode, Leopard, ShardManifest};
use agigit::{Error, FetchOptions, Repository};
use bytes::Bytes;

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::Dir;

#[global_allocator]
static HEAP: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

/// One test at a time: the heap's peak is the whole process's.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `f`; returns its result and the peak heap above what was live before.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = HEAP.current_usage();
    HEAP.reset_peak_usage();
    let out = f();
    (out, HEAP.peak_usage().saturating_sub(base))
}

const MB: usize = 1 << 20;

/// A tree body as a hostile writer makes it: any names, sorted bytewise, no rule checked.
fn raw_tree(entries: &[(EntryMode, &str, ObjectId)]) -> Vec<u8> {
    let mut sorted = entries.to_vec();
    sorted.sort_by(|a, b| a.1.as_bytes().cmp(b.1.as_bytes()));
    let mut out = vec![1u8];
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for (mode, name, id) in sorted {
        out.push(match mode {
            EntryMode::Tree => 1,
            EntryMode::File => 2,
            EntryMode::Executable => 3,
            EntryMode::Tensor => 4,
            EntryMode::Chunked => 5,
        });
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(id.as_bytes());
    }
    out
}

/// Objects a hostile owner publishes, bodies as written (nothing validated).
#[derive(Default)]
struct Objects(Vec<(Kind, Vec<u8>)>);

impl Objects {
    fn add(&mut self, kind: Kind, body: Vec<u8>) -> ObjectId {
        let id = compute_id(kind, &body);
        self.0.push((kind, body));
        id
    }

    /// A model whose code part is the tree `code`; returns the commit.
    fn commit_code(&mut self, code: ObjectId, author: &Keys) -> ObjectId {
        let store = agigit::dag::MemoryStore::new();
        let top = ModelParts {
            code: Some(code),
            ..ModelParts::default()
        }
        .write(&store)
        .expect("model tree");
        let mut buf = Vec::new();
        let body = agigit::dag::FindExt::find(&store, &top, &mut buf)
            .expect("top")
            .data
            .to_vec();
        self.add(Kind::Tree, body);
        let commit = Commit {
            tree: top,
            parents: Vec::new(),
            base: None,
            author: author.public_key().to_bytes(),
            time: 1_800_000_000,
            message: "innocent model".into(),
            extra: Vec::new(),
        };
        self.add(Kind::Commit, commit.encode())
    }

    /// Writes every object straight into `repo`'s store, as a pack reader that trusted its input
    /// would.
    fn plant(&self, repo: &Repository) -> TestResult {
        for (kind, body) in &self.0 {
            put(repo, *kind, body)?;
        }
        Ok(())
    }
}

/// Writes an object file into `repo`'s store as the store lays it out, without the store's
/// checks or its fsync (tens of thousands of objects in a second).
fn put(repo: &Repository, kind: Kind, body: &[u8]) -> Result<ObjectId, Box<dyn std::error::Error>> {
    let id = compute_id(kind, body);
    let path =
        agigit::dag::FsStore::open(repo.root().join(".agigit").join("objects"))?.path_of(&id);
    std::fs::create_dir_all(path.parent().ok_or("parent")?)?;
    let mut bytes = agigit::dag::object::header(kind, body.len() as u64);
    bytes.extend_from_slice(body);
    std::fs::write(path, bytes)?;
    Ok(id)
}

/// Publishes `objects` as one pack, `tip` as `master`, under `owner`'s repository `id`: what a
/// modified client pushes, nothing checked.
async fn hostile_push(
    net: &MemoryTransport,
    owner: &Keys,
    id: &str,
    objects: &Objects,
    tip: ObjectId,
) -> TestResult {
    hostile_push_annexed(net, owner, id, objects, tip, Vec::new()).await
}

/// [`hostile_push`] with `annex` (a pack index, true or not) in the pack's manifest.
async fn hostile_push_annexed(
    net: &MemoryTransport,
    owner: &Keys,
    id: &str,
    objects: &Objects,
    tip: ObjectId,
    annex: Vec<u8>,
) -> TestResult {
    hostile_push_raw(net, owner, id, objects, tip, annex, |m| m).await
}

/// [`hostile_push_annexed`], its manifest's bytes passed through `mangle` before they are
/// stored and named by the commit event.
async fn hostile_push_raw(
    net: &MemoryTransport,
    owner: &Keys,
    id: &str,
    objects: &Objects,
    tip: ObjectId,
    annex: Vec<u8>,
    mangle: fn(Vec<u8>) -> Vec<u8>,
) -> TestResult {
    let mut pack = b"AGPK\x01".to_vec();
    pack.extend_from_slice(&(objects.0.len() as u32).to_le_bytes());
    for (kind, body) in &objects.0 {
        pack.extend_from_slice(&agigit::dag::object::header(*kind, body.len() as u64));
        pack.extend_from_slice(body);
    }
    let code = Leopard::new(2, 4)?;
    let shards = code.encode(&pack)?;
    let servers = net.push_servers();
    let mut hashes = Vec::new();
    for (i, shard) in shards.into_iter().enumerate() {
        hashes.push(BlobHash::digest(&shard));
        net.put_blob(&servers[i % servers.len()], Bytes::from(shard))
            .await?;
    }
    let manifest = ShardManifest::new(
        code.spec(),
        pack.len() as u64,
        pack.len() as u64,
        vec![hashes],
    )?
    .with_annex(annex)?;
    let manifest = Bytes::from(mangle(manifest.encode()));
    for s in &servers {
        net.put_blob(s, manifest.clone()).await?;
    }
    let coordinate = RepoCoordinate::new(owner.public_key(), RepoId::new(id)?);
    let commit_body = objects
        .0
        .iter()
        .find(|(k, b)| *k == Kind::Commit && compute_id(*k, b) == tip)
        .map(|(_, b)| b.clone())
        .ok_or("tip")?;
    let event = CommitEvent {
        repo: coordinate,
        commit: tip,
        parents: Vec::new(),
        packs: vec![BlobHash::digest(&manifest)],
        pack_parts: BTreeMap::new(),
        encryption: None,
        payload: commit_body,
    };
    let now = Timestamp::now();
    net.publish(Signed::sign(event, owner, now)?.event(), 1)
        .await?;
    let mut state = RepoState::new(RepoId::new(id)?);
    let master = RefName::branch("master")?;
    state.refs.insert(master.clone(), tip);
    state.head = Some(master);
    net.publish(Signed::sign(state, owner, now)?.event(), 1)
        .await?;
    Ok(())
}

/// Every file under `dir` whose name contains `needle` (symlinks not followed).
fn find_named(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if e.file_name().to_string_lossy().contains(needle) {
                out.push(path.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    out
}

/// The names a hostile owner tries, each as the code tree's only entry (a file, or a directory
/// holding `config.toml` and `keys`): the objects of each case and its code tree.
fn hostile_codes(outside: &Path) -> Vec<(String, Objects, ObjectId)> {
    let absolute = format!(
        "{}\\ESCAPED-absolute",
        outside.to_string_lossy().replace('/', "\\")
    );
    let mut out = Vec::new();
    for name in [
        "..\\..\\ESCAPED-dotdot".to_owned(),
        absolute,
        ".agigit\\config.toml".to_owned(),
        "x::$DATA".to_owned(),
        "ESCAPED\u{1b}]0;owned\u{7}".to_owned(),
        "ESCAPED\r".to_owned(),
    ] {
        let mut objects = Objects::default();
        let payload = objects.add(Kind::Blob, PAYLOAD.to_vec());
        let code = objects.add(Kind::Tree, raw_tree(&[(EntryMode::File, &name, payload)]));
        out.push((name, objects, code));
    }
    // Directories a filesystem may take for `.agigit`: a config pointing at the attacker, or a
    // planted key envelope that turns a public clone "private" under the attacker's key.
    for dir in [
        ".agigit",
        ".AGIGIT",
        ".agigit.",
        ".agigit ",
        ".agi\u{200c}git",
        "AGIGIT~1",
    ] {
        let mut objects = Objects::default();
        let payload = objects.add(Kind::Blob, PAYLOAD.to_vec());
        let inner = objects.add(
            Kind::Tree,
            raw_tree(&[
                (EntryMode::File, "config.toml", payload),
                (EntryMode::File, "keys", payload),
            ]),
        );
        let code = objects.add(Kind::Tree, raw_tree(&[(EntryMode::Tree, dir, inner)]));
        out.push((dir.to_owned(), objects, code));
    }
    out
}

/// What the hostile files hold.
const PAYLOAD: &[u8] = b"ESCAPED: relays = [\"ws://attacker\"]\n";

/// The facade error a fetch refused with (data from the network that does not verify).
fn refused_fetch(err: &agigit::fetch::Error) -> &Error {
    match err {
        agigit::fetch::Error::Hostile(e) | agigit::fetch::Error::Other(e) => e,
        other => panic!("expected hostile data to be refused, got {other:?}"),
    }
}

/// The facade error a checkout refused with (a stored object that does not decode, a limit).
fn refused_checkout(err: &agigit::checkout::Error) -> &Error {
    match err {
        agigit::checkout::Error::Other(e) => e,
        other => panic!("expected a refusal of stored data, got {other:?}"),
    }
}

fn assert_names_entry(err: &Error, name: &str) {
    let named = match err {
        Error::Decode {
            source: DecodeError::Name(NameError::Invalid { name: n, .. }),
            ..
        } => n,
        Error::Find(FindError::Decode {
            source: DecodeError::Name(NameError::Invalid { name: n, .. }),
            ..
        }) => n,
        other => panic!("{name:?}: expected a name refusal, got {other:?}"),
    };
    assert_eq!(named, name);
    assert!(
        !err.to_string().chars().any(|c| c.is_control()),
        "the message shows control characters escaped: {err}"
    );
}

#[test]
fn a_hostile_owners_names_are_refused_and_nothing_lands_outside_the_clone() -> TestResult {
    let _serial = serial();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(hostile_names())
}

async fn hostile_names() -> TestResult {
    let root = Dir::new("hostile-names");
    let outside = root.0.join("outside");
    std::fs::create_dir_all(&outside)?;
    let owner = Keys::generate();
    let net = MemoryTransport::new(["s0", "s1", "s2"]);
    for (i, (name, mut published, code)) in hostile_codes(&outside).into_iter().enumerate() {
        let name = &name;
        let tip = published.commit_code(code, &owner);
        let id = format!("evil-{i}");
        hostile_push(&net, &owner, &id, &published, tip).await?;

        // The victim clones it into a fresh directory under `root/clones/`, where the command
        // line has already written its own config.
        let clone = root.0.join("clones").join(format!("c{i}"));
        std::fs::create_dir_all(&clone)?;
        let repo = Repository::init(&clone)?;
        let config = clone.join(".agigit").join("config.toml");
        std::fs::write(&config, b"id = \"mine\"\n")?;
        let coordinate = RepoCoordinate::new(owner.public_key(), RepoId::new(id)?);
        let err = repo
            .pull(&net, &coordinate, "master", FetchOptions::default())
            .await
            .expect_err("a hostile tree is refused");
        assert_eq!(err.kind(), agigit::ErrorKind::Integrity);
        assert_names_entry(refused_fetch(&err), name);
        assert_eq!(std::fs::read(&config)?, b"id = \"mine\"\n", "{name:?}");
        assert!(!clone.join(".agigit").join("keys").exists(), "{name:?}");
        assert!(!repo.is_private()?, "{name:?}");

        // A store that took the objects anyway (an older client's): checkout refuses them too.
        let planted = root.0.join("planted").join(format!("p{i}"));
        std::fs::create_dir_all(&planted)?;
        let repo = Repository::init(&planted)?;
        published.plant(&repo)?;
        repo.refs().commit(Transaction::new().edit(
            RefKey::Name(RefName::branch("evil")?),
            Expected::Absent,
            Some(Target::Id(tip)),
        ))?;
        let err = repo
            .checkout("evil", true)
            .expect_err("a hostile tree is refused at checkout");
        assert_eq!(err.kind(), agigit::ErrorKind::Integrity);
        assert_names_entry(refused_checkout(&err), name);
        assert!(!planted.join(".agigit").join("keys").exists(), "{name:?}");
        assert!(
            std::fs::read_dir(&planted)?.count() == 1,
            "{name:?}: only .agigit is there"
        );
    }
    let escaped = find_named(&root.0, "ESCAPED");
    assert!(escaped.is_empty(), "written outside: {escaped:?}");
    Ok(())
}

/// A repository with two commits on two branches: `a` has `data/train/a.txt` and
/// `config.json`, `b` adds `data/train/b.txt` and changes `config.json`.
fn two_branches(dir: &Path) -> Result<Repository, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir.join("data/train"))?;
    std::fs::write(dir.join("config.json"), b"{\"v\": 1}")?;
    std::fs::write(dir.join("data/train/a.txt"), b"a")?;
    let repo = Repository::init(dir)?;
    repo.commit("a", [1; 32])?;
    repo.create_branch("a", "HEAD")?;
    std::fs::write(dir.join("config.json"), b"{\"v\": 2}")?;
    std::fs::write(dir.join("data/train/b.txt"), b"b")?;
    repo.commit("b", [1; 32])?;
    repo.create_branch("b", "HEAD")?;
    repo.checkout("a", false)?;
    Ok(repo)
}

#[cfg(unix)]
#[test]
fn checkout_never_writes_through_a_planted_symlink() -> TestResult {
    let _serial = serial();
    let root = Dir::new("hostile-symlink");
    let outside = root.0.join("outside");
    std::fs::create_dir_all(&outside)?;
    std::fs::write(outside.join("victim.json"), b"precious")?;
    let work = root.0.join("work");
    let repo = two_branches(&work)?;

    // `data` becomes a symlink to a directory outside the work tree.
    std::fs::remove_dir_all(work.join("data"))?;
    std::os::unix::fs::symlink(&outside, work.join("data"))?;
    for force in [false, true] {
        match repo.checkout("b", force) {
            Err(agigit::checkout::Error::UnsafePath { path, .. }) => assert_eq!(path, "data"),
            other => panic!("force {force}: {other:?}"),
        }
    }
    assert!(
        !outside.join("train").exists(),
        "nothing written through it"
    );

    // A file that is a symlink to a file outside: never written through, never removed.
    std::fs::remove_file(work.join("data"))?;
    repo.checkout("a", true)?;
    std::fs::remove_file(work.join("config.json"))?;
    std::os::unix::fs::symlink(outside.join("victim.json"), work.join("config.json"))?;
    for force in [false, true] {
        assert!(
            matches!(
                repo.checkout("b", force),
                Err(agigit::checkout::Error::UnsafePath { .. })
            ),
            "force {force}"
        );
    }
    assert_eq!(std::fs::read(outside.join("victim.json"))?, b"precious");
    assert_eq!(
        repo.current_branch()?.map(|b| b.to_string()),
        Some("refs/heads/a".into()),
        "HEAD did not move"
    );
    Ok(())
}

/// A dense bf16 tensor object over `blobs`, claiming `shape` and `payload_len`.
fn dense_object(shape: Vec<u64>, byte_len: u64, blobs: Vec<ObjectId>) -> TensorObject {
    TensorObject {
        dtype: "BF16".into(),
        shape,
        encoding: "dense".into(),
        params: Vec::new(),
        base: None,
        byte_len,
        digest: BlobHash::digest(b"whatever"),
        payload_len: byte_len,
        blobs,
    }
}

#[test]
fn lying_tensor_objects_fail_fast_in_small_memory() -> TestResult {
    let _serial = serial();
    let d = Dir::new("hostile-tensors");
    let repo = Repository::init(&d.0)?;
    let store = repo.store();
    let segment = agigit::dag::Write::write_buf(store, Kind::Blob, &vec![0u8; 4 * MB])?;

    // byte_len = u64::MAX for a two-element tensor.
    let mut max = dense_object(vec![2], u64::MAX, vec![segment]);
    max.payload_len = 4;
    let id = store.write_tensor(&max)?;
    let (result, peak) = peak_of(|| repo.tensor("max", &id));
    assert!(matches!(result, Err(Error::Corrupt(_))), "{result:?}");
    assert!(peak < MB, "peak {peak}");

    // 100 GiB claimed from one 4 MiB blob listed 25 600 times.
    let giant = 100u64 << 30;
    let repeated = dense_object(vec![giant / 2], giant, vec![segment; 25_600]);
    let repeated_id = store.write_tensor(&repeated)?;
    let (result, peak) = peak_of(|| repo.tensor("repeated", &repeated_id));
    assert!(matches!(result, Err(Error::Limit { .. })), "{result:?}");
    assert!(peak < 8 * MB, "peak {peak}");
    // Within the size limit, listing a blob twice is refused all the same.
    let twice = dense_object(vec![4 * MB as u64], 8 * MB as u64, vec![segment, segment]);
    let twice_id = store.write_tensor(&twice)?;
    let (result, peak) = peak_of(|| repo.tensor("twice", &twice_id));
    match result {
        Err(Error::Corrupt(m)) => assert!(m.contains("twice"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(peak < MB, "peak {peak}");

    // A decompression bomb: a real ~2 MiB lossless payload whose header claims 60 GiB (under
    // the codec's own 64 GiB default), on a 2 MiB base; and the same bomb on a base that claims
    // 60 GiB itself.
    let n = MB;
    let base_values = synth::gaussian(1, n, 0.02);
    let base = synth::tensor(DType::BF16, &[n], &base_values);
    let target = synth::tensor(DType::BF16, &[n], &synth::perturb(&base_values, 2, 0.5));
    let base_id = agigit::worktree::write_dense_tensor(store, DType::BF16, &[n], base.data())?;
    let mut payload = Lossless::default()
        .encode(target.view(), Some(base.view()))?
        .payload;
    assert!(payload.len() > MB, "a payload of {} bytes", payload.len());
    let claimed = 30u64 << 30; // bf16 elements: 60 GiB
    payload[8..16].copy_from_slice(&claimed.to_le_bytes());
    let blobs = vec![agigit::dag::Write::write_buf(store, Kind::Blob, &payload)?];
    let bomb = TensorObject {
        dtype: "BF16".into(),
        shape: vec![n as u64],
        encoding: "lossless".into(),
        params: Vec::new(),
        base: Some(base_id),
        byte_len: 2 * n as u64,
        digest: agigit::delta::codec::output_digest(DType::BF16, &[n], target.data()),
        payload_len: payload.len() as u64,
        blobs: blobs.clone(),
    };
    let bomb_id = store.write_tensor(&bomb)?;
    let (result, peak) = peak_of(|| repo.tensor("bomb", &bomb_id));
    match result {
        Err(Error::Corrupt(m)) => assert!(m.contains("payload describes"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(peak < 16 * MB, "peak {peak}");
    // A payload altered in its body: refused, the decoder's own error kept as the cause.
    let mut altered = Lossless::default()
        .encode(target.view(), Some(base.view()))?
        .payload;
    let middle = altered.len() / 2;
    altered[middle] ^= 0x55;
    let altered_id = store.write_tensor(&TensorObject {
        blobs: vec![agigit::dag::Write::write_buf(store, Kind::Blob, &altered)?],
        payload_len: altered.len() as u64,
        ..bomb.clone()
    })?;
    match repo.tensor("altered", &altered_id) {
        Err(e @ Error::CorruptData { .. }) => {
            assert_eq!(e.kind(), agigit::ErrorKind::Integrity);
            assert!(
                e.to_string().starts_with("corrupt: tensor altered: "),
                "{e}"
            );
            let cause = std::error::Error::source(&e).ok_or("a cause")?;
            assert!(
                cause
                    .downcast_ref::<agigit::delta::codec::DecodeError>()
                    .is_some(),
                "{cause:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A base whose bytes are not the ones its object's digest names: asked for itself, it is
    // refused; under a valid delta, the delta's decoding refuses it and names the base.
    let good = Lossless::default()
        .encode(target.view(), Some(base.view()))?
        .payload;
    let mut rotten = base.data().to_vec();
    rotten[10] ^= 1;
    let rotten_id = store.write_tensor(&TensorObject {
        blobs: vec![agigit::dag::Write::write_buf(store, Kind::Blob, &rotten)?],
        ..agigit::dag::FindExt::find_tensor(store, &base_id)?
    })?;
    match repo.tensor("rotten", &rotten_id) {
        Err(Error::Corrupt(m)) => assert!(m.contains("do not match the digest"), "{m}"),
        other => panic!("{other:?}"),
    }
    let over_rotten = store.write_tensor(&TensorObject {
        base: Some(rotten_id),
        blobs: vec![agigit::dag::Write::write_buf(store, Kind::Blob, &good)?],
        payload_len: good.len() as u64,
        ..bomb.clone()
    })?;
    match repo.tensor("over-rotten", &over_rotten) {
        Err(e @ Error::CorruptData { .. }) => {
            let cause = std::error::Error::source(&e).ok_or("a cause")?;
            assert!(
                matches!(
                    cause.downcast_ref::<agigit::delta::codec::DecodeError>(),
                    Some(agigit::delta::codec::DecodeError::BaseMismatch { .. })
                ),
                "{cause:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // And on the real base, the same delta is the target.
    let over_good = store.write_tensor(&TensorObject {
        blobs: vec![agigit::dag::Write::write_buf(store, Kind::Blob, &good)?],
        payload_len: good.len() as u64,
        ..bomb.clone()
    })?;
    assert_eq!(repo.tensor("good", &over_good)?.data(), target.data());
    let huge_base = store.write_tensor(&dense_object(vec![claimed], 2 * claimed, vec![segment]))?;
    let huge = TensorObject {
        shape: vec![claimed],
        byte_len: 2 * claimed,
        base: Some(huge_base),
        ..bomb
    };
    let huge_id = store.write_tensor(&huge)?;
    let (result, peak) = peak_of(|| repo.tensor("bomb", &huge_id));
    assert!(matches!(result, Err(Error::Limit { .. })), "{result:?}");
    assert!(peak < MB, "peak {peak}");
    Ok(())
}

#[test]
fn absurd_depths_are_refused_without_recursion() -> TestResult {
    let _serial = serial();
    let d = Dir::new("hostile-depth");
    let repo = Repository::init(&d.0)?;

    // A 20 000-deep chain of deltas, each on the one before.
    let payload = put(&repo, Kind::Blob, b"tiny")?;
    let mut base = put(
        &repo,
        Kind::Tensor,
        &dense_object(vec![2], 4, vec![payload]).encode(),
    )?;
    for _ in 0..20_000 {
        let delta = TensorObject {
            encoding: "lossless".into(),
            base: Some(base),
            ..dense_object(vec![2], 4, vec![payload])
        };
        base = put(&repo, Kind::Tensor, &delta.encode())?;
    }
    let (result, peak) = peak_of(|| repo.tensor("deep", &base));
    assert!(matches!(result, Err(Error::Limit { .. })), "{result:?}");
    assert!(peak < MB, "peak {peak}");

    // A 20 000-deep tree in the code part.
    let mut objects = Objects::default();
    let file = objects.add(Kind::Blob, b"deep".to_vec());
    let mut tree = objects.add(Kind::Tree, raw_tree(&[(EntryMode::File, "f", file)]));
    for _ in 0..20_000 {
        tree = objects.add(Kind::Tree, raw_tree(&[(EntryMode::Tree, "d", tree)]));
    }
    let tip = objects.commit_code(tree, &Keys::generate());
    objects.plant(&repo)?;
    repo.refs().commit(Transaction::new().edit(
        RefKey::Name(RefName::branch("deep")?),
        Expected::Absent,
        Some(Target::Id(tip)),
    ))?;
    let (result, peak) = peak_of(|| repo.checkout("deep", false));
    assert!(
        matches!(&result, Err(e) if matches!(refused_checkout(e), Error::Limit { .. })),
        "{result:?}"
    );
    assert!(peak < 16 * MB, "peak {peak}");
    assert!(!d.0.join("d").exists());
    Ok(())
}

#[test]
fn an_oversized_safetensors_header_is_not_read() -> TestResult {
    let _serial = serial();
    let d = Dir::new("hostile-header");
    let repo = Repository::init(&d.0)?;
    let store = repo.store();
    let header = vec![b' '; 8 + agigit::delta::MAX_HEADER_LEN + 1];
    let header = agigit::dag::Write::write_buf(store, Kind::Blob, &header)?;
    let mut objects = Objects::default();
    let file = objects.add(
        Kind::Tree,
        raw_tree(&[(EntryMode::File, agigit::worktree::HEADER_ENTRY, header)]),
    );
    let params = objects.add(
        Kind::Tree,
        raw_tree(&[(EntryMode::Tree, "model.safetensors", file)]),
    );
    let top = ModelParts {
        params: Some(params),
        ..ModelParts::default()
    }
    .write(store)?;
    let commit = Commit {
        tree: top,
        parents: Vec::new(),
        base: None,
        author: [1; 32],
        time: 1,
        message: "header".into(),
        extra: Vec::new(),
    };
    objects.plant(&repo)?;
    let tip = store.write_commit(&commit)?;
    repo.refs().commit(Transaction::new().edit(
        RefKey::Name(RefName::branch("big")?),
        Expected::Absent,
        Some(Target::Id(tip)),
    ))?;
    let (result, peak) = peak_of(|| repo.checkout("big", false));
    assert!(
        matches!(&result, Err(e) if matches!(refused_checkout(e), Error::Limit { .. })),
        "{result:?}"
    );
    assert!(peak < 16 * MB, "peak {peak}");
    Ok(())
}

/// Pulls `owner`'s repository `id` into a new clone at `clone`, which must fail with an
/// integrity error (`lie` names the case); returns the clone's path, the clone and the error.
async fn refused_pull(
    net: &MemoryTransport,
    clone: &Path,
    owner: &Keys,
    id: &str,
    lie: &str,
) -> Result<(PathBuf, Repository, agigit::fetch::Error), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(clone)?;
    let repo = Repository::init(clone)?;
    let coordinate = RepoCoordinate::new(owner.public_key(), RepoId::new(id)?);
    let err = repo
        .pull(net, &coordinate, "master", FetchOptions::default())
        .await
        .expect_err(lie);
    assert_eq!(err.kind(), agigit::ErrorKind::Integrity, "{lie}: {err}");
    Ok((clone.to_owned(), repo, err))
}

/// A chunked file whose list lies about its chunks: a chunk shorter than its entry says, and a
/// list of lists whose inner list is not the size its parent says. The clone refuses it at
/// checkout with an integrity error and leaves no file (not a half-written one) behind.
#[tokio::test]
async fn a_lying_chunk_list_writes_nothing() -> TestResult {
    let root = Dir::new("hostile-chunks");
    let owner = Keys::generate();
    let net = MemoryTransport::new(["s0", "s1", "s2"]);
    /// Adds a lying chunk list over the 12-byte chunk given; returns the list.
    type Lie = fn(&mut Objects, ObjectId) -> ObjectId;
    let lies: [(&str, Lie); 2] = [
        ("a chunk shorter than its entry", |objects, chunk| {
            let list = ChunkList::new(
                0,
                vec![
                    ChunkEntry { len: 12, id: chunk },
                    ChunkEntry {
                        len: 4096,
                        id: chunk,
                    },
                ],
            )
            .expect("list");
            objects.add(Kind::Chunks, list.encode())
        }),
        (
            "an inner list larger than its parent says",
            |objects, chunk| {
                let inner =
                    ChunkList::new(0, vec![ChunkEntry { len: 12, id: chunk }; 3]).expect("inner");
                let inner = objects.add(Kind::Chunks, inner.encode());
                let outer =
                    ChunkList::new(1, vec![ChunkEntry { len: 12, id: inner }]).expect("outer");
                objects.add(Kind::Chunks, outer.encode())
            },
        ),
    ];
    for (i, (lie, make)) in lies.into_iter().enumerate() {
        let mut objects = Objects::default();
        let chunk = objects.add(Kind::Blob, b"twelve bytes".to_vec());
        let list = make(&mut objects, chunk);
        let code = objects.add(
            Kind::Tree,
            raw_tree(&[(EntryMode::Chunked, "big.txt", list)]),
        );
        let tip = objects.commit_code(code, &owner);
        let id = format!("chunks-{i}");
        hostile_push(&net, &owner, &id, &objects, tip).await?;
        let (clone, _, err) =
            refused_pull(&net, &root.0.join(format!("c{i}")), &owner, &id, lie).await?;
        assert!(
            err.to_string().contains("chunked file"),
            "{lie}: the message names what lied: {err}"
        );
        let left: Vec<_> = std::fs::read_dir(&clone)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        assert_eq!(left, vec![std::ffi::OsString::from(".agigit")], "{lie}");
    }
    Ok(())
}

/// A pack manifest that does not decode (cut short, or scrambled): the pull fails at once with
/// the typed error naming the manifest (kind `integrity`, not a network failure: every server
/// has the same bytes, checked against the hash), and nothing is stored or written.
#[tokio::test]
async fn a_manifest_that_lies_is_a_typed_integrity_error() -> TestResult {
    let root = Dir::new("hostile-manifests");
    let owner = Keys::generate();
    let net = MemoryTransport::new(["s0", "s1", "s2"]);
    type Mangle = fn(Vec<u8>) -> Vec<u8>;
    let lies: [(&str, Mangle); 2] = [
        ("cut short", |mut m| {
            m.truncate(m.len() / 2);
            m
        }),
        ("garbage", |m| m.iter().map(|b| b ^ 0x5a).collect()),
    ];
    for (i, (lie, mangle)) in lies.into_iter().enumerate() {
        let mut objects = Objects::default();
        let file = objects.add(Kind::Blob, b"innocent".to_vec());
        let code = objects.add(Kind::Tree, raw_tree(&[(EntryMode::File, "a.txt", file)]));
        let tip = objects.commit_code(code, &owner);
        let id = format!("manifest-{i}");
        hostile_push_raw(&net, &owner, &id, &objects, tip, Vec::new(), mangle).await?;
        let (clone, repo, err) =
            refused_pull(&net, &root.0.join(format!("c{i}")), &owner, &id, lie).await?;
        match &err {
            agigit::fetch::Error::Hostile(e) => {
                assert!(matches!(**e, Error::BadManifest(_)), "{lie}: {e:?}");
            }
            other => panic!("{lie}: {other:?}"),
        }
        assert!(!clone.join("a.txt").exists(), "{lie}");
        assert!(
            !repo.store().contains(&tip)?,
            "{lie}: the commit was not stored"
        );
    }
    Ok(())
}

/// A pack index that lies: it swaps the places of two objects of the same length, so that each
/// id points at the other's bytes. A partial pull fetches those bytes, finds they are not the
/// object asked for, and fails with an integrity error, writing nothing.
#[tokio::test]
async fn a_lying_pack_index_fails_a_partial_pull_and_writes_nothing() -> TestResult {
    let root = Dir::new("hostile-index");
    let owner = Keys::generate();
    let net = MemoryTransport::new(["s0", "s1", "s2"]);
    let mut objects = Objects::default();
    let wanted = objects.add(Kind::Blob, b"the file asked for".to_vec());
    let other = objects.add(Kind::Blob, b"another of length!".to_vec());
    let code = objects.add(
        Kind::Tree,
        raw_tree(&[
            (EntryMode::File, "a.txt", wanted),
            (EntryMode::File, "b.txt", other),
        ]),
    );
    let tip = objects.commit_code(code, &owner);
    let mut entries: Vec<agigit::dag::pack::PackEntry> = objects
        .0
        .iter()
        .map(|(kind, body)| agigit::dag::pack::PackEntry {
            kind: *kind,
            id: compute_id(*kind, body),
            len: body.len() as u64,
        })
        .collect();
    let (a, b) = (
        entries.iter().position(|e| e.id == wanted).ok_or("a")?,
        entries.iter().position(|e| e.id == other).ok_or("b")?,
    );
    let (ida, idb) = (entries[a].id, entries[b].id);
    entries[a].id = idb;
    entries[b].id = ida;
    let lie = agigit::dag::pack::PackIndex::new(entries).encode();
    hostile_push_annexed(&net, &owner, "lying-index", &objects, tip, lie).await?;
    let clone = Repository::init(&root.0)?;
    let coordinate = RepoCoordinate::new(owner.public_key(), RepoId::new("lying-index")?);
    let err = clone
        .pull_path(
            &net,
            &coordinate,
            "master",
            &agigit::PartialWant::File("a.txt".into()),
            FetchOptions::default(),
        )
        .await
        .expect_err("a lying index");
    assert_eq!(err.kind(), agigit::ErrorKind::Integrity, "{err}");
    assert!(err.to_string().contains("where other bytes are"), "{err}");
    assert!(!root.0.join("a.txt").exists());
    assert!(
        !clone.store().contains(&wanted)?,
        "nothing unverified stored"
    );
    Ok(())
}

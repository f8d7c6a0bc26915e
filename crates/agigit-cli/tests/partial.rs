//! `clone --tensor` and `pull --path` through the binaries, against three agigit-relay processes
//! on loopback: one tensor of a large safetensors file, then one file, each fetched by the pack
//! indexes with only the segments that hold it downloaded.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::{Relays, agigit, json, model_on, ok};

/// A safetensors file of a 16 MiB F32 tensor `big` and a 256 KiB one `small` (header of JSON,
/// little-endian data), built by hand.
fn safetensors(seed: u32) -> Vec<u8> {
    let (big, small): (u32, u32) = (4 << 20, 64 << 10);
    let header = format!(
        "{{\"big\":{{\"dtype\":\"F32\",\"shape\":[{big}],\"data_offsets\":[0,{}]}},\"small\":{{\"dtype\":\"F32\",\"shape\":[{small}],\"data_offsets\":[{},{}]}}}}",
        big * 4,
        big * 4,
        big * 4 + small * 4
    );
    let mut header = header.into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    for i in 0..big + small {
        let x = (i.wrapping_mul(2_654_435_761) ^ seed) >> 9;
        out.extend_from_slice(&(x as f32 / 8e6).to_le_bytes());
    }
    out
}

#[test]
fn clone_one_tensor_then_pull_one_file() -> TestResult {
    let root = std::env::temp_dir().join(format!("agigit-cli-partial-{}", std::process::id()));
    let relays = Relays::start(&root, 3, |_| None)?;
    let urls = relays.urls();
    let (home, model) = model_on(&root, &urls);
    let weights = safetensors(7);
    std::fs::write(model.join("model.safetensors"), &weights)?;
    std::fs::write(model.join("train.py"), "print('train')\n")?;
    ok(&agigit(&home, &model, &["commit", "-m", "one"]));
    let pushed = json(&agigit(&home, &model, &["push", "--json"]));
    let coordinate = pushed["repository"].as_str().ok_or("coordinate")?;

    let reader = root.join("reader");
    ok(&agigit(&reader, &root, &["key", "generate"]));
    let mut args = vec![
        "clone",
        coordinate,
        "only-small",
        "--tensor",
        "model.safetensors:small",
        "--json",
    ];
    for u in &urls {
        args.extend(["--relay", u.as_str()]);
    }
    let got = json(&agigit(&reader, &root, &args));
    let downloaded = got["bytes_downloaded"].as_u64().ok_or("bytes")?;
    let packs = got["packs_bytes"].as_u64().ok_or("packs")?;
    assert!(packs > 16 << 20, "{got}");
    assert!(downloaded < packs / 2, "{got}");
    // The small tensor alone, its bytes those of the original.
    let one = std::fs::read(root.join("only-small/model.safetensors"))?;
    let tail = &weights[weights.len() - (256 << 10)..];
    assert!(one.ends_with(tail) && one.len() < (256 << 10) + 256);

    // One file more, by path; the untracked one in its way is kept without --force.
    let clone = root.join("only-small");
    std::fs::write(clone.join("train.py"), "mine\n")?;
    let refused = agigit(&reader, &clone, &["pull", "--path", "train.py"]);
    assert!(!refused.status.success());
    assert_eq!(std::fs::read(clone.join("train.py"))?, b"mine\n");
    let text = ok(&agigit(
        &reader,
        &clone,
        &["pull", "--path", "train.py", "--force"],
    ));
    assert!(text.starts_with("train.py from origin/master"), "{text}");
    assert_eq!(std::fs::read(clone.join("train.py"))?, b"print('train')\n");
    Ok(())
}

/// A private repository: a reader clones one tensor (the clone keeps the key envelope, so it
/// stays private); a stranger's clone is refused and leaves nothing.
#[test]
fn a_reader_clones_one_tensor_of_a_private_model() -> TestResult {
    let root =
        std::env::temp_dir().join(format!("agigit-cli-partial-private-{}", std::process::id()));
    let relays = Relays::start(&root, 3, |_| None)?;
    let urls = relays.urls();
    let (home, reader, stranger) = (
        root.join("home"),
        root.join("reader"),
        root.join("stranger"),
    );
    ok(&agigit(&home, &root, &["key", "generate"]));
    ok(&agigit(&stranger, &root, &["key", "generate"]));
    let key = json(&agigit(&reader, &root, &["key", "generate", "--json"]));
    let npub = key["npub"].as_str().ok_or("npub")?;
    ok(&agigit(
        &home,
        &root,
        &["init", "secret", "--private", "--reader", npub],
    ));
    let model = root.join("secret");
    for u in &urls {
        ok(&agigit(&home, &model, &["relay", "add", u]));
    }
    let weights = safetensors(9);
    std::fs::write(model.join("model.safetensors"), &weights)?;
    ok(&agigit(&home, &model, &["commit", "-m", "one"]));
    let pushed = json(&agigit(&home, &model, &["push", "--json"]));
    assert_eq!(pushed["private"], true);
    let coordinate = pushed["repository"].as_str().ok_or("coordinate")?;

    let clone_args = |dir: &'static str| {
        let mut args = vec![
            "clone".to_owned(),
            coordinate.to_owned(),
            dir.to_owned(),
            "--tensor".to_owned(),
            "model.safetensors:small".to_owned(),
            "--json".to_owned(),
        ];
        for u in &urls {
            args.extend(["--relay".to_owned(), u.clone()]);
        }
        args
    };
    let args = clone_args("theirs");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = agigit(&stranger, &root, &args);
    assert_eq!(out.status.code(), Some(9), "not a reader: access");
    assert!(!root.join("theirs").exists());

    let args = clone_args("mine");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let got = json(&agigit(&reader, &root, &args));
    let downloaded = got["bytes_downloaded"].as_u64().ok_or("bytes")?;
    let packs = got["packs_bytes"].as_u64().ok_or("packs")?;
    assert!(downloaded < packs / 2, "{got}");
    let one = std::fs::read(root.join("mine/model.safetensors"))?;
    let tail = &weights[weights.len() - (256 << 10)..];
    assert!(one.ends_with(tail) && one.len() < (256 << 10) + 256);
    assert!(
        root.join("mine/.agigit/keys").exists(),
        "the clone keeps the key envelope: it stays private"
    );
    Ok(())
}

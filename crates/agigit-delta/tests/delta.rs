//! Integration tests for agigit-delta: safetensors in and out, every codec's round trip and
//! corruption behaviour, low-rank accuracy against faer's full SVD, merges.

#![allow(clippy::panic, reason = "a test's failure")]
#![allow(clippy::expect_used, reason = "test fixtures")]
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "test arithmetic on small, known values"
)]

use std::collections::BTreeMap;

use agigit_delta::merge::{self, MergeError, Strategy as Merge, Ties};
use agigit_delta::synth;
use agigit_delta::{
    Checkpoint, CodecKind, DType, DecodeError, DecodeLimits, DeltaCodec, Dense, EncodeError,
    Fallback, Lossless, SafetensorsError, SafetensorsFile, SignScale, Tensor, TensorView, decode,
    decode_with_limits, save_safetensors, save_sharded, write_safetensors,
};
use proptest::prelude::*;

type Error = Box<dyn std::error::Error>;
type TestResult = Result<(), Error>;

/// Runs a test body once per device: CPU always, CUDA with the `cuda` feature.
#[cfg_attr(
    not(feature = "lowrank"),
    allow(unused_macros, reason = "only low-rank tests use devices")
)]
macro_rules! per_device {
    ($(fn $name:ident($dev:ident: &Device) -> TestResult $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports, reason = "not every body uses every import")]
            use super::*;
            #[allow(dead_code, reason = "called from each device's test")]
            fn run($dev: &agigit_delta::Device) -> TestResult $body

            #[test]
            fn cpu() -> TestResult {
                run(&agigit_delta::Device::Cpu)
            }

            #[cfg(feature = "cuda")]
            #[test]
            fn cuda() -> TestResult {
                run(&agigit_delta::Device::new_cuda(0)?)
            }
        }
    )*};
}

fn float_dtypes() -> Vec<DType> {
    DType::ALL.into_iter().filter(|d| d.is_float()).collect()
}

// ---------------------------------------------------------------- safetensors

fn sample_tensors() -> Vec<(String, Tensor)> {
    DType::ALL
        .into_iter()
        .enumerate()
        .map(|(i, dtype)| {
            // 8 elements fill whole bytes for every dtype, F4 and F6 included.
            let shape = vec![2, 4];
            let len = dtype.byte_len(8).expect("whole bytes");
            let data = (0..len).map(|b| (b * 31 + i * 7) as u8).collect();
            (
                format!("layer.{i}.{dtype}"),
                Tensor::new(dtype, shape, data).expect("layout"),
            )
        })
        .collect()
}

fn views(t: &[(String, Tensor)]) -> Vec<(&str, TensorView<'_>)> {
    t.iter().map(|(n, t)| (n.as_str(), t.view())).collect()
}

#[test]
fn safetensors_round_trip_every_dtype_with_metadata() -> TestResult {
    let scratch_dir = tempdir()?;
    let dir = scratch_dir.path();
    let tensors = sample_tensors();
    let mut meta = BTreeMap::new();
    meta.insert("format".to_owned(), "pt".to_owned());
    meta.insert("agigit".to_owned(), "test \"quoted\"\nnewline".to_owned());
    let path = dir.join("m.safetensors");
    save_safetensors(&path, views(&tensors), &meta)?;

    let file = SafetensorsFile::open(&path)?;
    assert_eq!(file.metadata(), &meta);
    assert_eq!(file.len(), tensors.len());
    for (name, t) in &tensors {
        assert_eq!(file.tensor(name), Some(t.view()), "{name}");
    }
    // The reference implementation reads our file the same way.
    let bytes = std::fs::read(&path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    for (name, t) in &tensors {
        let v = st.tensor(name)?;
        assert_eq!(v.data(), t.data());
        assert_eq!(v.shape(), t.shape());
        assert_eq!(DType::try_from(v.dtype())?, t.dtype());
    }
    // Every tensor is aligned to its element size within the file.
    for (name, t) in file.tensors() {
        let offset = t.data().as_ptr() as usize - file.as_bytes().as_ptr() as usize;
        let align = t.dtype().size().unwrap_or(1);
        assert_eq!(offset % align, 0, "{name}");
    }
    Ok(())
}

#[test]
fn safetensors_writes_are_byte_identical_whatever_the_input_order() -> TestResult {
    let tensors = sample_tensors();
    let mut meta = BTreeMap::new();
    for i in 0..20 {
        meta.insert(format!("key{i}"), format!("value{i}"));
    }
    let mut a = Vec::new();
    write_safetensors(&mut a, views(&tensors), &meta)?;
    let mut reversed = views(&tensors);
    reversed.reverse();
    let mut b = Vec::new();
    write_safetensors(&mut b, reversed, &meta)?;
    assert_eq!(a, b);
    // Re-writing what was read gives the same bytes again.
    let file = SafetensorsFile::from_bytes(a.clone())?;
    let mut c = Vec::new();
    write_safetensors(&mut c, file.tensors(), file.metadata())?;
    assert_eq!(a, c);
    Ok(())
}

/// A safetensors file with a hand-written header.
fn raw_file(header: &str, data_len: usize) -> Vec<u8> {
    let mut h = header.as_bytes().to_vec();
    h.resize(h.len().next_multiple_of(8), b' ');
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(std::iter::repeat_n(0u8, data_len));
    out
}

#[test]
fn safetensors_rejects_duplicate_and_control_character_names() -> TestResult {
    let dup = raw_file(
        r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
        8,
    );
    // The reference crate keeps the last silently, so the check is ours.
    assert!(matches!(
        SafetensorsFile::from_bytes(dup),
        Err(SafetensorsError::DuplicateName { name }) if name == "w"
    ));
    for bad in ["a\\u0000b", "line\\nbreak", ""] {
        let file = raw_file(
            &format!(r#"{{"{bad}":{{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}}}"#),
            1,
        );
        assert!(
            matches!(
                SafetensorsFile::from_bytes(file),
                Err(SafetensorsError::InvalidName { .. })
            ),
            "{bad:?}"
        );
    }
    // Writing refuses them too, before writing anything.
    let t = Tensor::new(DType::U8, vec![1], vec![1])?;
    let mut out = Vec::new();
    assert!(matches!(
        write_safetensors(&mut out, [("x\0", t.view())], &BTreeMap::new()),
        Err(SafetensorsError::InvalidName { .. })
    ));
    assert!(matches!(
        write_safetensors(
            &mut out,
            [("x", t.view()), ("x", t.view())],
            &BTreeMap::new()
        ),
        Err(SafetensorsError::DuplicateName { .. })
    ));
    assert!(out.is_empty());
    Ok(())
}

#[test]
fn safetensors_rejects_damaged_files() -> TestResult {
    let tensors = sample_tensors();
    let mut good = Vec::new();
    write_safetensors(&mut good, views(&tensors), &BTreeMap::new())?;
    // Truncated anywhere, extended, or with a header length pointing past the end.
    for cut in [0, 7, 8, 20, good.len() - 1] {
        assert!(
            SafetensorsFile::from_bytes(good[..cut].to_vec()).is_err(),
            "cut at {cut}"
        );
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(SafetensorsFile::from_bytes(longer).is_err());
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(SafetensorsFile::from_bytes(huge).is_err());
    // Flipping any byte of the header either is rejected or still reads as a valid file whose
    // tensors are all well-formed; it never panics.
    let header_len = u64::from_le_bytes(good[..8].try_into()?) as usize;
    for i in 8..8 + header_len {
        let mut bad = good.clone();
        bad[i] ^= 0x20;
        if let Ok(f) = SafetensorsFile::from_bytes(bad) {
            for (_, t) in f.tensors() {
                assert!(t.dtype().byte_len(t.numel()) == Some(t.data().len()));
            }
        }
    }
    let unknown = raw_file(
        r#"{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#,
        16,
    );
    assert!(SafetensorsFile::from_bytes(unknown).is_err());
    Ok(())
}

#[test]
fn sharded_checkpoints_round_trip_and_are_checked() -> TestResult {
    let scratch_dir = tempdir()?;
    let dir = scratch_dir.path();
    let tensors = sample_tensors();
    let meta = BTreeMap::from([("format".to_owned(), "pt".to_owned())]);
    let index = save_sharded(dir, views(&tensors), &meta, 40)?;
    let files: std::collections::BTreeSet<_> = index.weight_map.values().collect();
    assert!(files.len() > 2, "{files:?}");
    let n = files.len();
    assert!(
        files
            .iter()
            .all(|f| f.ends_with(&format!("-of-{n:05}.safetensors")))
    );
    let total: u64 = tensors.iter().map(|(_, t)| t.data().len() as u64).sum();
    assert_eq!(index.metadata["total_size"], serde_json::json!(total));

    let ckpt = Checkpoint::open(dir)?;
    assert_eq!(ckpt.len(), tensors.len());
    for (name, t) in &tensors {
        assert_eq!(ckpt.tensor(name), Some(t.view()), "{name}");
    }
    assert_eq!(ckpt.files().count(), n);

    // An index naming a tensor that is not in its file.
    let index_path = dir.join(agigit_delta::INDEX_FILE);
    let mut bad = index.clone();
    bad.weight_map.insert(
        "ghost".into(),
        files
            .iter()
            .next()
            .map(|s| (*s).clone())
            .unwrap_or_default(),
    );
    std::fs::write(&index_path, serde_json::to_vec(&bad)?)?;
    assert!(matches!(
        Checkpoint::open(dir),
        Err(SafetensorsError::Index { .. })
    ));
    // An index that leaves a tensor out.
    let mut bad = index.clone();
    bad.weight_map.remove(&tensors[0].0);
    std::fs::write(&index_path, serde_json::to_vec(&bad)?)?;
    assert!(matches!(
        Checkpoint::open(dir),
        Err(SafetensorsError::Index { .. })
    ));
    // An index pointing outside the directory.
    let mut bad = index.clone();
    bad.weight_map
        .insert(tensors[0].0.clone(), "../elsewhere.safetensors".into());
    std::fs::write(&index_path, serde_json::to_vec(&bad)?)?;
    assert!(matches!(
        Checkpoint::open(dir),
        Err(SafetensorsError::Index { .. })
    ));
    // An index listing a tensor twice.
    std::fs::write(
        &index_path,
        r#"{"weight_map":{"a":"model-00001-of-00002.safetensors","a":"model-00002-of-00002.safetensors"}}"#,
    )?;
    assert!(matches!(
        Checkpoint::open(dir),
        Err(SafetensorsError::DuplicateName { .. })
    ));
    // A directory with neither file.
    let scratch_empty = tempdir()?;
    let empty = scratch_empty.path();
    assert!(matches!(
        Checkpoint::open(empty),
        Err(SafetensorsError::NoCheckpoint { .. })
    ));
    Ok(())
}

#[test]
fn single_file_checkpoint_opens_by_directory() -> TestResult {
    let scratch_dir = tempdir()?;
    let dir = scratch_dir.path();
    let tensors = sample_tensors();
    save_safetensors(
        dir.join(agigit_delta::SINGLE_FILE),
        views(&tensors),
        &BTreeMap::new(),
    )?;
    let ckpt = Checkpoint::open(dir)?;
    assert!(ckpt.index().is_none());
    assert_eq!(ckpt.names().count(), tensors.len());
    Ok(())
}

/// A scratch directory, removed when the test drops it.
fn tempdir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("agigit-delta-test-")
        .tempdir()
}

// ---------------------------------------------------------------- Lossless

fn arb_float_tensor() -> impl Strategy<Value = (Tensor, Tensor)> {
    (prop::sample::select(float_dtypes()), 0usize..5, 0usize..70).prop_flat_map(|(dtype, a, b)| {
        // Shapes with an element count that fills whole bytes (even for F4 and F6).
        let shape = vec![a, b * 4];
        let len = dtype.byte_len(a * b * 4).expect("whole bytes");
        (
            prop::collection::vec(any::<u8>(), len),
            prop::collection::vec(any::<u8>(), len),
        )
            .prop_map(move |(x, y)| {
                (
                    Tensor::new(dtype, shape.clone(), x).expect("layout"),
                    Tensor::new(dtype, shape.clone(), y).expect("layout"),
                )
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random bytes are every bit pattern: NaN payloads, infinities, −0, subnormals.
    #[test]
    fn lossless_is_bit_exact_for_every_float_dtype((target, base) in arb_float_tensor(), level in 1i32..6) {
        let codec = Lossless { level };
        for base in [None, Some(base.view())] {
            let e = codec.encode(target.view(), base)?;
            prop_assert_eq!(e.report.codec, CodecKind::Lossless);
            prop_assert_eq!(e.report.rel_error, 0.0);
            let back = decode(&e.payload, base)?;
            prop_assert_eq!(&back, &target);
        }
    }

    #[test]
    fn dense_round_trips((target, _) in arb_float_tensor()) {
        let e = Dense.encode(target.view(), None)?;
        prop_assert_eq!(decode(&e.payload, None)?, target);
    }

    /// A base that is near the target (as after fine-tuning) round-trips exactly, too.
    #[test]
    fn lossless_is_exact_on_near_bases(seed in any::<u64>(), dtype in prop::sample::select(vec![DType::F16, DType::BF16, DType::F32, DType::F64])) {
        let base = synth::gaussian(seed, 256, 0.02);
        let target = synth::perturb(&base, seed ^ 1, 0.01);
        let (b, t) = (synth::tensor(dtype, &[16, 16], &base), synth::tensor(dtype, &[16, 16], &target));
        let e = Lossless::default().encode(t.view(), Some(b.view()))?;
        prop_assert_eq!(decode(&e.payload, Some(b.view()))?, t);
    }
}

#[test]
fn lossless_keeps_special_values_bit_for_bit() -> TestResult {
    let f32s: Vec<u32> = vec![
        0x0000_0000,
        0x8000_0000, // ±0
        0x7F80_0000,
        0xFF80_0000, // ±inf
        0x7FC0_0000,
        0xFFC0_0001,
        0x7F80_0001,
        0x7FBF_FFFF, // quiet and signalling NaNs with payloads
        0x0000_0001,
        0x807F_FFFF, // subnormals
        0x7F7F_FFFF,
        0x0080_0000, // max, min normal
    ];
    let data: Vec<u8> = f32s.iter().flat_map(|v| v.to_le_bytes()).collect();
    let t = Tensor::new(DType::F32, vec![3, 4], data.clone())?;
    let mut base_data = data.clone();
    base_data.reverse();
    let base = Tensor::new(DType::F32, vec![3, 4], base_data)?;
    for b in [None, Some(base.view())] {
        let e = Lossless::default().encode(t.view(), b)?;
        assert_eq!(decode(&e.payload, b)?.data(), data.as_slice());
    }
    // The same for every 16-bit pattern of F16 and BF16: all 65536 of them.
    for dtype in [DType::F16, DType::BF16] {
        let data: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
        let t = Tensor::new(dtype, vec![256, 256], data)?;
        let e = Lossless::default().encode(t.view(), None)?;
        assert_eq!(decode(&e.payload, None)?, t);
    }
    Ok(())
}

#[test]
fn decode_checks_the_base() -> TestResult {
    let base_v = synth::gaussian(1, 64 * 64, 0.02);
    let base = synth::tensor(DType::BF16, &[64, 64], &base_v);
    let target = synth::tensor(DType::BF16, &[64, 64], &synth::perturb(&base_v, 2, 0.01));
    let other = synth::tensor(DType::BF16, &[64, 64], &synth::gaussian(3, 64 * 64, 0.02));
    let e = Lossless::default().encode(target.view(), Some(base.view()))?;
    assert_eq!(
        agigit_delta::inspect(&e.payload)?.base,
        Some(base.view().hash())
    );
    // Against an unrelated base, XOR does not help: the payload stands alone.
    let alone = Lossless::default().encode(other.view(), Some(base.view()))?;
    assert_eq!(agigit_delta::inspect(&alone.payload)?.base, None);
    assert_eq!(decode(&alone.payload, None)?, other);
    assert!(matches!(
        decode(&e.payload, None),
        Err(DecodeError::BaseRequired { .. })
    ));
    assert!(matches!(
        decode(&e.payload, Some(other.view())),
        Err(DecodeError::BaseMismatch { .. })
    ));
    // A base one bit off in one element: the output digest catches it, the base's hash names it.
    let mut near = base.data().to_vec();
    near[1000] ^= 1;
    let near = Tensor::new(DType::BF16, vec![64, 64], near)?;
    assert!(matches!(
        decode(&e.payload, Some(near.view())),
        Err(DecodeError::BaseMismatch { expected, actual })
            if expected == base.view().hash() && actual == near.view().hash()
    ));
    let wrong_shape = synth::tensor(DType::BF16, &[32, 128], &base_v);
    assert!(matches!(
        decode(&e.payload, Some(wrong_shape.view())),
        Err(DecodeError::BaseLayout(_))
    ));
    // And encoding checks the base's layout.
    let f32_base = synth::tensor(DType::F32, &[64, 64], &base_v);
    assert!(matches!(
        Lossless::default().encode(target.view(), Some(f32_base.view())),
        Err(EncodeError::DTypeMismatch { .. })
    ));
    assert!(matches!(
        Lossless::default().encode(target.view(), Some(wrong_shape.view())),
        Err(EncodeError::ShapeMismatch { .. })
    ));
    Ok(())
}

/// Every payload of every codec: flipping any single byte makes decoding fail or changes nothing
/// decoding gives.
#[test]
fn corrupting_any_byte_of_any_payload_is_detected() -> TestResult {
    let base_v = synth::gaussian(10, 8 * 24, 0.02);
    let target_v = synth::add(&base_v, &synth::low_rank(11, 8, 24, 1, 0.002));
    let base = synth::tensor(DType::F32, &[8, 24], &base_v);
    let target = synth::tensor(DType::F32, &[8, 24], &target_v);
    #[cfg_attr(
        not(feature = "lowrank"),
        allow(unused_mut, reason = "low-rank payloads join with the feature")
    )]
    let mut payloads = vec![
        ("dense", Dense.encode(target.view(), None)?.payload, None),
        (
            "lossless",
            Lossless::default()
                .encode(target.view(), Some(base.view()))?
                .payload,
            Some(base.view()),
        ),
        (
            "signscale",
            SignScale.encode(target.view(), Some(base.view()))?.payload,
            Some(base.view()),
        ),
    ];
    #[cfg(feature = "lowrank")]
    {
        let mut lr = agigit_delta::LowRank::new(
            agigit_delta::Device::Cpu,
            agigit_delta::RankPolicy::Fixed(1),
        );
        let e = lr.encode(target.view(), Some(base.view()))?;
        assert_eq!(e.report.codec, CodecKind::LowRank);
        payloads.push(("lowrank f16", e.payload, Some(base.view())));
        lr.storage = agigit_delta::FactorStorage::delta_come();
        let e = lr.encode(target.view(), Some(base.view()))?;
        assert_eq!(e.report.codec, CodecKind::LowRank);
        payloads.push(("lowrank banded", e.payload, Some(base.view())));
    }
    for (name, payload, b) in &payloads {
        let good = decode(payload, *b)?;
        // The base's recorded hash (after magic, version, codec, dtype, d, the shape and the
        // base flag) is read only when decoding fails: the output digest binds the result, so a
        // flip there decodes to the same tensor or fails, and is not counted below.
        let header = agigit_delta::inspect(payload)?;
        let recorded_base = header.base.map(|_| {
            let at = 9 + 8 * header.shape.len();
            at..at + 32
        });
        let mut harmless = 0;
        for i in 0..payload.len() {
            for flip in [0x01, 0x80] {
                let mut bad = payload.clone();
                bad[i] ^= flip;
                // A flip either fails, or changes nothing that decoding gives (zstd's window
                // descriptor, say): the output digest admits no other tensor.
                match decode(&bad, *b) {
                    Err(_) => {}
                    Ok(t) if t == good => {
                        if !recorded_base.as_ref().is_some_and(|r| r.contains(&i)) {
                            harmless += 1;
                        }
                    }
                    Ok(_) => panic!(
                        "{name}: flipping {flip:#x} at byte {i} changed the tensor unnoticed"
                    ),
                }
            }
        }
        // Harmless flips: unused padding bits, band ends past the rank, a scale's last bit lost
        // in rounding. Few, and none of them changes the tensor.
        assert!(
            harmless * 10 < 2 * payload.len(),
            "{name}: {harmless} harmless flips of {}",
            2 * payload.len()
        );
        for cut in 0..payload.len() {
            assert!(
                decode(&payload[..cut], *b).is_err(),
                "{name}: truncated to {cut}"
            );
        }
        let mut longer = payload.clone();
        longer.push(0);
        assert!(
            matches!(decode(&longer, *b), Err(DecodeError::TrailingBytes(1))),
            "{name}"
        );
    }
    Ok(())
}

#[test]
fn decode_limits_bound_allocation() -> TestResult {
    let t = synth::tensor(DType::F32, &[64, 64], &synth::gaussian(1, 4096, 1.0));
    let e = Lossless::default().encode(t.view(), None)?;
    let limits = DecodeLimits {
        max_tensor_bytes: 1000,
    };
    assert!(matches!(
        decode_with_limits(&e.payload, None, limits),
        Err(DecodeError::TooLarge {
            bytes: 16384,
            limit: 1000
        })
    ));
    // A payload header claiming an enormous tensor is refused before anything is allocated.
    let mut huge = e.payload.clone();
    huge[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        decode(&huge, None),
        Err(DecodeError::TooLarge { .. })
    ));
    Ok(())
}

/// Compression ratios on the three kinds of delta the issue names; the full table (with
/// figures) is printed by `cargo bench --bench delta`.
#[test]
fn lossless_beats_zstd_on_the_raw_bytes() -> TestResult {
    let (rows, cols) = (128, 256);
    let base = synth::gaussian(1, rows * cols, 0.02);
    let cases = [
        (
            "fine-tune (base + 1% noise)",
            synth::perturb(&base, 2, 0.01),
        ),
        (
            "base + rank-8 update",
            synth::add(&base, &synth::low_rank(3, rows, cols, 8, 0.002)),
        ),
        ("unrelated tensor", synth::gaussian(4, rows * cols, 0.02)),
    ];
    for dtype in [DType::BF16, DType::F32] {
        let b = synth::tensor(dtype, &[rows, cols], &base);
        for (name, target) in &cases {
            let t = synth::tensor(dtype, &[rows, cols], target);
            let raw_zstd = zstd::bulk::compress(t.data(), 3)?.len();
            let ours = Lossless::default().encode(t.view(), Some(b.view()))?;
            let alone = Lossless::default().encode(t.view(), None)?;
            let best = ours.payload.len().min(alone.payload.len());
            assert!(
                best < raw_zstd,
                "{dtype} {name}: lossless {best} bytes, zstd on raw bytes {raw_zstd}"
            );
        }
        // Without a base, byte planes alone give at least ZipNN-like gains on Gaussian bf16.
        let t = synth::tensor(DType::BF16, &[rows, cols], &base);
        let alone = Lossless::default().encode(t.view(), None)?;
        assert!(
            alone.report.ratio() > 1.25,
            "bf16 alone: {:.3}",
            alone.report.ratio()
        );
    }
    // A fine-tune delta in bf16 compresses far better than the weights alone.
    let b = synth::tensor(DType::BF16, &[rows, cols], &base);
    let t = synth::tensor(DType::BF16, &[rows, cols], &cases[0].1);
    let delta = Lossless::default().encode(t.view(), Some(b.view()))?;
    let alone = Lossless::default().encode(t.view(), None)?;
    assert!(
        delta.report.ratio() > alone.report.ratio() * 1.3,
        "{} vs {}",
        delta.report.ratio(),
        alone.report.ratio()
    );
    Ok(())
}

// ---------------------------------------------------------------- SignScale

#[test]
fn signscale_is_bitdelta() -> TestResult {
    let (rows, cols) = (64, 64);
    let base = synth::gaussian(1, rows * cols, 0.02);
    let target = synth::perturb(&base, 2, 0.05);
    let (b, t) = (
        synth::tensor(DType::F32, &[rows, cols], &base),
        synth::tensor(DType::F32, &[rows, cols], &target),
    );
    let e = SignScale.encode(t.view(), Some(b.view()))?;
    assert_eq!(e.report.codec, CodecKind::SignScale);
    assert!(e.report.ratio() > 25.0, "{}", e.report.ratio());
    // For Gaussian deltas, sign · mean|Δ| keeps 1 − 2/π of the error: √(1 − 2/π) ≈ 0.603.
    assert!(
        (e.report.rel_error - 0.603).abs() < 0.03,
        "{}",
        e.report.rel_error
    );
    let back = decode(&e.payload, Some(b.view()))?;
    let d: Vec<f64> = back.view().to_f64().ok_or("f64")?;
    let mean_abs: f64 = base
        .iter()
        .zip(&target)
        .map(|(b, t)| f64::from(t - b).abs())
        .sum::<f64>()
        / (rows * cols) as f64;
    for ((x, b), t) in d.iter().zip(&base).zip(&target) {
        let step = x - f64::from(*b);
        // Equal up to the f32 rounding of base + scale (ulp(0.1) ≈ 7e-9).
        assert!((step.abs() - mean_abs).abs() < 1e-7, "{step} vs {mean_abs}");
        assert_eq!(step > 0.0, t >= b);
    }
    Ok(())
}

#[test]
fn lossy_codecs_fall_back_on_vectors_integers_and_non_finite() -> TestResult {
    let bias = synth::tensor(DType::F32, &[64], &synth::gaussian(1, 64, 1.0));
    let e = SignScale.encode(bias.view(), None)?;
    assert_eq!(e.report.codec, CodecKind::Lossless);
    assert_eq!(e.report.fallback, Some(Fallback::NotAMatrix));
    assert_eq!(decode(&e.payload, None)?, bias);

    let ints = Tensor::new(DType::I64, vec![4, 4], (0..128).collect())?;
    let e = SignScale.encode(ints.view(), None)?;
    assert_eq!(e.report.fallback, Some(Fallback::NotArithmetic(DType::I64)));
    assert_eq!(decode(&e.payload, None)?, ints);

    let mut v = synth::gaussian(1, 64, 1.0);
    v[5] = f32::NAN;
    let nan = synth::tensor(DType::F32, &[8, 8], &v);
    let e = SignScale.encode(nan.view(), None)?;
    assert_eq!(e.report.fallback, Some(Fallback::NonFinite));
    assert_eq!(decode(&e.payload, None)?.data(), nan.data());
    Ok(())
}

/// A fine-tune that changed a handful of weights: its exact encoding is a few hundred bytes, far
/// below any lossy one, so a lossy codec stores it exactly and says why.
fn sparse_edit() -> (Tensor, Tensor) {
    let w = synth::gaussian(4, 256 * 256, 0.02);
    let mut t = w.clone();
    for i in [3, 700, 9_000, 40_001, 65_000] {
        t[i] += 0.01;
    }
    (
        synth::tensor(DType::F32, &[256, 256], &w),
        synth::tensor(DType::F32, &[256, 256], &t),
    )
}

#[test]
fn signscale_stores_exactly_what_lossless_stores_smaller() -> TestResult {
    let (b, t) = sparse_edit();
    let e = SignScale.encode(t.view(), Some(b.view()))?;
    assert_eq!(e.report.codec, CodecKind::Lossless);
    match e.report.fallback {
        Some(Fallback::LosslessSmaller {
            lossy_bytes,
            lossless_bytes,
        }) => assert!(
            lossless_bytes <= lossy_bytes,
            "{lossless_bytes} {lossy_bytes}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.report.rel_error, 0.0);
    assert_eq!(decode(&e.payload, Some(b.view()))?, t);
    // A dense delta still goes sign-and-scale: 1 bit a weight is far below its entropy.
    let noisy = synth::tensor(
        DType::F32,
        &[256, 256],
        &synth::add(
            &synth::gaussian(4, 256 * 256, 0.02),
            &synth::gaussian(5, 256 * 256, 0.001),
        ),
    );
    let e = SignScale.encode(noisy.view(), Some(b.view()))?;
    assert_eq!(
        (e.report.codec, e.report.fallback),
        (CodecKind::SignScale, None)
    );
    Ok(())
}

// ---------------------------------------------------------------- LowRank

#[cfg(feature = "lowrank")]
mod lowrank {
    use agigit_delta::rsvd::{RsvdParams, randomized_svd};
    use agigit_delta::{FactorStorage, LowRank, RankPolicy};

    use super::*;

    /// base + rank-r update + noise at a known level.
    fn planted(rows: usize, cols: usize, r: usize, noise: f64) -> (Vec<f32>, Vec<f32>) {
        let base = synth::gaussian(1, rows * cols, 0.02);
        let update = synth::low_rank(2, rows, cols, r, 0.004);
        let noise = synth::gaussian(3, rows * cols, 0.004 * noise);
        let target = synth::add(&synth::add(&base, &update), &noise);
        (base, target)
    }

    #[test]
    fn low_rank_stores_exactly_what_lossless_stores_smaller() -> TestResult {
        let (b, t) = sparse_edit();
        for policy in [RankPolicy::Fixed(4), RankPolicy::RelError(0.5)] {
            let mut codec = LowRank::new(agigit_delta::Device::Cpu, policy);
            codec.storage = FactorStorage::F16;
            let e = codec.encode(t.view(), Some(b.view()))?;
            assert_eq!(e.report.codec, CodecKind::Lossless, "{policy:?}");
            assert!(
                matches!(e.report.fallback, Some(Fallback::LosslessSmaller { .. })),
                "{policy:?}: {:?}",
                e.report.fallback
            );
            assert_eq!(decode(&e.payload, Some(b.view()))?, t);
        }
        Ok(())
    }

    per_device! {
        fn recovers_the_planted_rank_within_the_bound(device: &Device) -> TestResult {
            let (rows, cols, r) = (192, 160, 12);
            // Noise at 1% of the update's RMS: the best rank-12 error is about 1% of ‖Δ‖.
            let (base, target) = planted(rows, cols, r, 0.01);
            let (b, t) = (synth::tensor(DType::F32, &[rows, cols], &base), synth::tensor(DType::F32, &[rows, cols], &target));
            let mut codec = LowRank::new(device.clone(), RankPolicy::RelError(0.05));
            codec.storage = FactorStorage::F32;
            let e = codec.encode(t.view(), Some(b.view()))?;
            assert_eq!(e.report.codec, CodecKind::LowRank, "{:?}", e.report.fallback);
            assert_eq!(e.report.rank, Some(r), "rank");
            assert!(e.report.rel_error <= 0.05, "{}", e.report.rel_error);
            // The noise floor: nothing of rank 12 does better than about 1%.
            assert!(e.report.rel_error > 0.005, "{}", e.report.rel_error);
            assert!(e.report.ratio() > 4.0, "{}", e.report.ratio());
            // The error the report states is the one decoding gives.
            let back = decode(&e.payload, Some(b.view()))?;
            let d = back.view().to_f64().ok_or("f64")?;
            let (mut err, mut norm) = (0.0, 0.0);
            for ((x, t), b) in d.iter().zip(&target).zip(&base) {
                err += (x - f64::from(*t)).powi(2);
                norm += (f64::from(*t) - f64::from(*b)).powi(2);
            }
            assert!(((err / norm).sqrt() - e.report.rel_error).abs() < 1e-9);

            // Energy and fixed policies land on the same rank for a clean spectrum.
            let e = LowRank::new(device.clone(), RankPolicy::Energy(0.999)).encode(t.view(), Some(b.view()))?;
            assert_eq!(e.report.rank, Some(r));
            let e = LowRank::new(device.clone(), RankPolicy::Fixed(r)).encode(t.view(), Some(b.view()))?;
            assert_eq!(e.report.rank, Some(r));
            assert!(e.report.rel_error < 0.05);
            Ok(())
        }

        fn exact_for_a_lora_fork_up_to_storage_precision(device: &Device) -> TestResult {
            let (rows, cols, r) = (96, 128, 4);
            let (base, target) = planted(rows, cols, r, 0.0);
            let (b, t) = (synth::tensor(DType::F32, &[rows, cols], &base), synth::tensor(DType::F32, &[rows, cols], &target));
            for (storage, bound) in [(FactorStorage::F32, 1e-4), (FactorStorage::F16, 2e-3), (FactorStorage::BF16, 1e-2), (FactorStorage::delta_come(), 0.2)] {
                let mut codec = LowRank::new(device.clone(), RankPolicy::Fixed(r));
                codec.storage = storage.clone();
                let e = codec.encode(t.view(), Some(b.view()))?;
                assert_eq!(e.report.rank, Some(r));
                assert!(e.report.rel_error < bound, "{storage:?}: {}", e.report.rel_error);
                let back = decode(&e.payload, Some(b.view()))?;
                assert_eq!(agigit_delta::output_digest(back.dtype(), back.shape(), back.data()), agigit_delta::inspect(&e.payload)?.output);
            }
            Ok(())
        }

        fn same_seed_same_payload(device: &Device) -> TestResult {
            let (rows, cols) = (64, 80);
            let (base, target) = planted(rows, cols, 6, 0.3);
            let (b, t) = (synth::tensor(DType::BF16, &[rows, cols], &base), synth::tensor(DType::BF16, &[rows, cols], &target));
            let mut codec = LowRank::new(device.clone(), RankPolicy::Fixed(8));
            let first = codec.encode(t.view(), Some(b.view()))?;
            assert_eq!(first.payload, codec.encode(t.view(), Some(b.view()))?.payload);
            codec.seed = 99;
            let other = codec.encode(t.view(), Some(b.view()))?;
            // Another sketch finds (nearly) the same subspace.
            assert!((other.report.rel_error - first.report.rel_error).abs() < 0.02);
            Ok(())
        }

        fn falls_back_when_low_rank_would_not_save_bytes(device: &Device) -> TestResult {
            let (rows, cols) = (32, 32);
            let base = synth::gaussian(1, rows * cols, 0.02);
            let target = synth::perturb(&base, 2, 0.1);
            let (b, t) = (synth::tensor(DType::BF16, &[rows, cols], &base), synth::tensor(DType::BF16, &[rows, cols], &target));
            // Full-rank noise: a 1% error needs nearly full rank, which is larger than dense.
            let e = LowRank::new(device.clone(), RankPolicy::RelError(0.01)).encode(t.view(), Some(b.view()))?;
            assert_eq!(e.report.codec, CodecKind::Lossless);
            assert!(matches!(e.report.fallback, Some(Fallback::NotSmaller { .. })), "{:?}", e.report.fallback);
            assert_eq!(decode(&e.payload, Some(b.view()))?, t);
            let e = LowRank::new(device.clone(), RankPolicy::Fixed(30)).encode(t.view(), Some(b.view()))?;
            assert!(matches!(e.report.fallback, Some(Fallback::NotSmaller { .. })));
            // A bias is never low rank.
            let bias = synth::tensor(DType::F32, &[32], &base[..32]);
            let e = LowRank::new(device.clone(), RankPolicy::Fixed(1)).encode(bias.view(), None)?;
            assert_eq!(e.report.fallback, Some(Fallback::NotAMatrix));
            Ok(())
        }

        fn randomized_svd_agrees_with_faer_full_svd(device: &Device) -> TestResult {
            // A matrix with a decaying spectrum: s_i = 0.8^i.
            let (rows, cols) = (70, 50);
            let u = synth::gaussian(5, rows * cols, 1.0);
            let q = faer::Mat::from_fn(rows, cols, |i, j| f64::from(u[i * cols + j])).qr().compute_thin_Q();
            let w = synth::gaussian(6, cols * cols, 1.0);
            let p = faer::Mat::from_fn(cols, cols, |i, j| f64::from(w[i * cols + j])).qr().compute_thin_Q();
            let s = faer::Mat::from_fn(cols, cols, |i, j| if i == j { 0.8f64.powi(i as i32) } else { 0.0 });
            let a = &q * &s * p.transpose();
            let values: Vec<f32> = (0..rows).flat_map(|i| (0..cols).map(move |j| (i, j))).map(|(i, j)| a[(i, j)] as f32).collect();
            let full = faer::Mat::from_fn(rows, cols, |i, j| f64::from(values[i * cols + j])).svd().map_err(|e| format!("{e:?}"))?;
            let k = 10;
            let svd = randomized_svd(&values, rows, cols, RsvdParams { sketch: k + 10, power_iters: 2, seed: 0 }, device)?;
            // The leading singular values agree to 1e-4 relative (f32 products) and the vectors up
            // to sign, to 1e-3.
            for i in 0..k {
                let (ours, exact) = (svd.singular_values()[i], full.S()[i]);
                assert!((ours - exact).abs() <= 1e-4 * exact, "σ{i}: {ours} vs {exact}");
                let dot: f64 = (0..rows).map(|r| f64::from(svd.u(i)[r]) * full.U()[(r, i)]).sum();
                assert!((dot.abs() - 1.0).abs() < 1e-3, "u{i}: |cos| = {}", dot.abs());
                let dot: f64 = (0..cols).map(|c| f64::from(svd.v(i)[c]) * full.V()[(c, i)]).sum();
                assert!((dot.abs() - 1.0).abs() < 1e-3, "v{i}: |cos| = {}", dot.abs());
            }
            // Deterministic for a seed.
            let again = randomized_svd(&values, rows, cols, RsvdParams { sketch: k + 10, power_iters: 2, seed: 0 }, device)?;
            assert_eq!(svd, again);
            Ok(())
        }
    }

    #[test]
    fn parameters_are_checked() {
        let t = synth::tensor(DType::F32, &[4, 4], &synth::gaussian(1, 16, 1.0));
        for policy in [
            RankPolicy::Energy(1.5),
            RankPolicy::RelError(-1.0),
            RankPolicy::RelError(f64::NAN),
        ] {
            assert!(matches!(
                LowRank::new(agigit_delta::Device::Cpu, policy).encode(t.view(), None),
                Err(EncodeError::Parameter(_))
            ));
        }
        let mut c = LowRank::new(agigit_delta::Device::Cpu, RankPolicy::Fixed(1));
        c.storage = FactorStorage::Banded(vec![agigit_delta::Band { end: 4, bits: 9 }]);
        assert!(matches!(
            c.encode(t.view(), None),
            Err(EncodeError::Parameter(_))
        ));
    }
}

// ---------------------------------------------------------------- merges

fn arb_pair() -> impl Strategy<Value = (DType, Vec<f32>, Vec<f32>, Vec<f32>)> {
    (
        prop::sample::select(vec![DType::F16, DType::BF16, DType::F32, DType::F64]),
        1usize..40,
    )
        .prop_flat_map(|(d, n)| {
            let v = || prop::collection::vec(-100f32..100f32, n);
            (Just(d), v(), v(), v())
        })
}

proptest! {
    #[test]
    fn merges_of_identical_inputs_are_the_input((dtype, a, _, _) in arb_pair(), w in 0.0f64..1.0) {
        let t = synth::tensor(dtype, &[a.len()], &a);
        let avg = merge::weighted_average(&[(t.view(), w), (t.view(), 1.0 - w)])?;
        // Exact in f64, then rounded once into the dtype: within one rounding of the input.
        for (x, y) in avg.view().to_f64().unwrap_or_default().iter().zip(t.view().to_f64().unwrap_or_default()) {
            prop_assert!((x - y).abs() <= y.abs() * 1e-2 + 1e-6, "{x} vs {y}");
        }
        prop_assert_eq!(merge::task_arithmetic(t.view(), &[(t.view(), 0.7)])?, t.clone());
        prop_assert_eq!(merge::ties(t.view(), &[t.view(), t.view()], Ties::default())?, t.clone());
    }

    #[test]
    fn task_arithmetic_with_one_task_at_lambda_one_is_the_task((dtype, base, task, _) in arb_pair()) {
        let (b, t) = (synth::tensor(dtype, &[base.len()], &base), synth::tensor(dtype, &[base.len()], &task));
        prop_assert_eq!(merge::task_arithmetic(b.view(), &[(t.view(), 1.0)])?, t.clone());
        prop_assert_eq!(merge::ties(b.view(), &[t.view()], Ties { density: 1.0, lambda: 1.0 })?, t.clone());
        prop_assert_eq!(merge::merge(Some(b.view()), &[t.view(), b.view()], &Merge::Ours)?, t.clone());
        prop_assert_eq!(merge::merge(Some(b.view()), &[b.view(), t.view()], &Merge::Theirs)?, t);
    }

    #[test]
    fn weighted_average_is_between_its_inputs((dtype, a, b, _) in arb_pair(), w in 0.0f64..=1.0) {
        let (ta, tb) = (synth::tensor(dtype, &[a.len()], &a), synth::tensor(dtype, &[a.len()], &b));
        let m = merge::merge(None, &[ta.view(), tb.view()], &Merge::WeightedAverage(vec![w, 1.0 - w]))?;
        let (va, vb, vm) = (ta.view().to_f64().unwrap_or_default(), tb.view().to_f64().unwrap_or_default(), m.view().to_f64().unwrap_or_default());
        for ((x, y), z) in va.iter().zip(&vb).zip(&vm) {
            let (lo, hi) = (x.min(*y), x.max(*y));
            prop_assert!(*z >= lo - lo.abs() * 1e-2 - 1e-6 && *z <= hi + hi.abs() * 1e-2 + 1e-6);
        }
    }
}

#[test]
fn merge_errors_are_typed() -> TestResult {
    let a = synth::tensor(DType::F32, &[4], &[1.0, 2.0, 3.0, 4.0]);
    let b = synth::tensor(DType::F32, &[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let c = synth::tensor(DType::BF16, &[4], &[1.0, 2.0, 3.0, 4.0]);
    let i = Tensor::new(DType::I32, vec![4], vec![0; 16])?;
    assert!(matches!(
        merge::weighted_average(&[(a.view(), 0.5), (b.view(), 0.5)]),
        Err(MergeError::ShapeMismatch { index: 1, .. })
    ));
    assert!(matches!(
        merge::weighted_average(&[(a.view(), 0.5), (c.view(), 0.5)]),
        Err(MergeError::DTypeMismatch { index: 1, .. })
    ));
    assert!(matches!(
        merge::weighted_average(&[(a.view(), 0.5), (a.view(), 0.6)]),
        Err(MergeError::Weights { .. })
    ));
    assert!(matches!(
        merge::weighted_average(&[(a.view(), 1.5), (a.view(), -0.5)]),
        Err(MergeError::Weights { .. })
    ));
    assert!(matches!(
        merge::weighted_average(&[(i.view(), 1.0)]),
        Err(MergeError::NotArithmetic(DType::I32))
    ));
    assert!(matches!(
        merge::weighted_average(&[]),
        Err(MergeError::Empty)
    ));
    assert!(matches!(
        merge::merge(None, &[a.view()], &Merge::TaskArithmetic(vec![1.0])),
        Err(MergeError::Parameter(_))
    ));
    assert!(matches!(
        merge::merge(
            Some(a.view()),
            &[a.view()],
            &Merge::TaskArithmetic(vec![1.0, 2.0])
        ),
        Err(MergeError::CoefficientCount {
            tensors: 1,
            coefficients: 2
        })
    ));
    assert!(matches!(
        merge::ties(
            a.view(),
            &[a.view()],
            Ties {
                density: 0.0,
                lambda: 1.0
            }
        ),
        Err(MergeError::Parameter(_))
    ));
    assert!(matches!(
        merge::merge(Some(b.view()), &[a.view()], &Merge::Ours),
        Err(MergeError::ShapeMismatch { .. })
    ));
    // Ours and theirs work on any dtype.
    assert_eq!(
        merge::merge(None, &[i.view(), i.view()], &Merge::Theirs)?,
        i
    );
    Ok(())
}

// ---------------------------------------------------------------- committed payloads

/// The base the committed payloads in `fuzz/seeds/delta_payload` were encoded against (the fuzz
/// target builds the same one).
fn seed_base() -> Tensor {
    synth::tensor(DType::F32, &[8, 24], &synth::gaussian(10, 8 * 24, 0.02))
}

/// Payloads of every codec and storage, as committed: they are the fuzz seeds, and they pin the
/// format — a change that stops them decoding breaks every stored delta.
fn seed_payloads() -> Result<Vec<(String, Vec<u8>)>, Error> {
    let base = seed_base();
    let base_v = base.view().to_f64().ok_or("f64")?;
    let base_f32: Vec<f32> = base_v.iter().map(|&v| v as f32).collect();
    let target_v = synth::add(&base_f32, &synth::low_rank(11, 8, 24, 2, 0.002));
    let target = synth::tensor(DType::F32, &[8, 24], &target_v);
    let b = Some(base.view());
    let mut out = vec![
        (
            "dense_f32".to_owned(),
            Dense.encode(target.view(), None)?.payload,
        ),
        ("lossless_xor_f32".to_owned(), {
            let near = synth::tensor(DType::F32, &[8, 24], &synth::perturb(&base_f32, 12, 0.001));
            let e = Lossless::default().encode(near.view(), b)?;
            assert!(
                agigit_delta::inspect(&e.payload)?.base.is_some(),
                "XOR against a near base"
            );
            e.payload
        }),
        (
            "lossless_plain_f32".to_owned(),
            Lossless::default().encode(target.view(), None)?.payload,
        ),
        (
            "signscale_f32".to_owned(),
            SignScale.encode(target.view(), b)?.payload,
        ),
    ];
    for dtype in [
        DType::BF16,
        DType::F8_E4M3,
        DType::F4,
        DType::I64,
        DType::C64,
    ] {
        let len = dtype.byte_len(16).ok_or("whole bytes")?;
        let t = Tensor::new(
            dtype,
            vec![4, 4],
            (0..len).map(|i| (i * 37) as u8).collect(),
        )?;
        out.push((
            format!("lossless_{dtype}"),
            Lossless::default().encode(t.view(), None)?.payload,
        ));
    }
    #[cfg(feature = "lowrank")]
    {
        use agigit_delta::{FactorStorage, LowRank, RankPolicy};
        for (name, storage) in [
            ("f32", FactorStorage::F32),
            ("f16", FactorStorage::F16),
            ("bf16", FactorStorage::BF16),
            ("banded", FactorStorage::delta_come()),
        ] {
            let mut c = LowRank::new(agigit_delta::Device::Cpu, RankPolicy::Fixed(2));
            c.storage = storage;
            let e = c.encode(target.view(), b)?;
            assert_eq!(e.report.codec, CodecKind::LowRank);
            out.push((format!("lowrank_{name}"), e.payload));
        }
    }
    Ok(out)
}

fn seeds_dir(target: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target)
}

/// `AGIGIT_BLESS=1 cargo test -p agigit-delta committed` rewrites the seed files.
#[test]
fn committed_payloads_still_decode() -> TestResult {
    let dir = seeds_dir("delta_payload");
    if std::env::var_os("AGIGIT_BLESS").is_some() {
        std::fs::create_dir_all(&dir)?;
        for (name, payload) in seed_payloads()? {
            std::fs::write(dir.join(name), payload)?;
        }
    }
    let base = seed_base();
    let mut codecs = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        // `regression_*` files are fuzzer finds: they must not crash (the fuzz run checks),
        // not decode.
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("regression_"))
        {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        let h = agigit_delta::inspect(&bytes)?;
        let t = decode(&bytes, Some(base.view()))?;
        assert_eq!(
            agigit_delta::output_digest(t.dtype(), t.shape(), t.data()),
            h.output
        );
        codecs.insert(h.codec);
    }
    assert_eq!(
        codecs.len(),
        4,
        "every codec has a committed payload: {codecs:?}"
    );
    Ok(())
}

/// The safetensors seeds: a file of every dtype with metadata, and a checkpoint index.
#[test]
fn committed_safetensors_seeds_read() -> TestResult {
    let dir = seeds_dir("safetensors_header");
    if std::env::var_os("AGIGIT_BLESS").is_some() {
        std::fs::create_dir_all(&dir)?;
        let tensors = sample_tensors();
        let meta = BTreeMap::from([("format".to_owned(), "pt".to_owned())]);
        let mut file = Vec::new();
        write_safetensors(&mut file, views(&tensors), &meta)?;
        std::fs::write(dir.join("every_dtype.safetensors"), file)?;
        let index = agigit_delta::CheckpointIndex {
            metadata: BTreeMap::from([("total_size".to_owned(), serde_json::json!(64))]),
            weight_map: BTreeMap::from([
                (
                    "a.weight".to_owned(),
                    "model-00001-of-00002.safetensors".to_owned(),
                ),
                (
                    "b.weight".to_owned(),
                    "model-00002-of-00002.safetensors".to_owned(),
                ),
            ]),
        };
        std::fs::write(dir.join("index.json"), serde_json::to_vec_pretty(&index)?)?;
    }
    let file = SafetensorsFile::from_bytes(std::fs::read(dir.join("every_dtype.safetensors"))?)?;
    assert_eq!(file.len(), DType::ALL.len());
    let index = agigit_delta::CheckpointIndex::from_json(&std::fs::read_to_string(
        dir.join("index.json"),
    )?)?;
    assert_eq!(index.weight_map.len(), 2);
    Ok(())
}

/// Found by fuzzing: a low-rank payload for a `[0, 2^60]` tensor (no elements, one huge side)
/// overflowed the row-block arithmetic.
#[test]
fn empty_matrix_with_a_huge_side_decodes() -> TestResult {
    let t = Tensor::new(DType::F32, vec![0, 1 << 60], Vec::new())?;
    for codec in [&SignScale as &dyn DeltaCodec, &Lossless::default(), &Dense] {
        let e = codec.encode(t.view(), None)?;
        assert_eq!(decode(&e.payload, None)?, t);
    }
    // A hand-made low-rank payload of rank 0 for it.
    let mut p = agigit_delta::codec::PAYLOAD_MAGIC.to_vec();
    p.extend([1, 2, DType::F32.code(), 2]);
    p.extend(0u64.to_le_bytes());
    p.extend((1u64 << 60).to_le_bytes());
    p.push(0);
    p.extend(agigit_delta::output_digest(DType::F32, &[0, 1 << 60], &[]).as_bytes());
    p.extend(0u32.to_le_bytes());
    p.push(0);
    assert_eq!(decode(&p, None)?, t);
    Ok(())
}

//! Integration tests for agigit-crypt: known answers from an independent implementation, tamper
//! and splice tests, streaming, key wrap and envelopes.

#![allow(
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test fixtures; sealed test objects are small"
)]

use std::collections::BTreeMap;
use std::io::{Read, Write};

use agigit_crypt::{
    AesGcmStream, ContentKey, CryptError, EcdhWrap, Envelope, HEADER_LEN, KeyWrap, Keyring,
    NonceMaterial, OpeningReader, ReaderKey, ReaderSecret, SealingWriter, SegmentAead,
    SegmentCipher, SegmentOpener, TAG_LEN,
};
use proptest::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// `tests/data/kat.txt`, computed by `tests/data/kat.py` with Python's `cryptography` (OpenSSL).
fn kat() -> BTreeMap<String, Vec<u8>> {
    include_str!("data/kat.txt")
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| {
            let value = if k.ends_with("segment_size") {
                v.as_bytes().to_vec()
            } else {
                hex(v)
            };
            (k.to_owned(), value)
        })
        .collect()
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes.try_into().expect("fixture length")
}

const AD: &[u8] = b"agigit/test-object";

#[test]
fn sealing_matches_an_independent_implementation() -> TestResult {
    let kat = kat();
    let key = ContentKey::from_bytes(array(&kat["key"]));
    let material = NonceMaterial {
        salt: array(&kat["salt"]),
        prefix: array(&kat["prefix"]),
    };
    assert_eq!(kat["ad"], AD);
    let mut cases = 0;
    for name in [
        "empty",
        "one_segment",
        "exact_two_segments",
        "three_segments",
    ] {
        let size: usize = std::str::from_utf8(&kat[&format!("{name}.segment_size")])?.parse()?;
        let plaintext = &kat[&format!("{name}.plaintext")];
        let expected = &kat[&format!("{name}.sealed")];
        let cipher = AesGcmStream::new(size)?;
        let sealed = cipher.seal_with(&key, AD, plaintext, &material);
        assert_eq!(&sealed, expected, "{name}");
        assert_eq!(
            sealed.len() as u64,
            cipher.sealed_len(plaintext.len() as u64),
            "{name}"
        );
        assert_eq!(&cipher.open(&key, AD, expected)?, plaintext, "{name}");
        // The streaming reader opens it too.
        let mut out = Vec::new();
        OpeningReader::new(&expected[..], &key, AD)?.read_to_end(&mut out)?;
        assert_eq!(&out, plaintext, "{name}");
        cases += 1;
    }
    assert_eq!(cases, 4);
    Ok(())
}

#[test]
fn unwrap_matches_an_independent_implementation() -> TestResult {
    let kat = kat();
    let secret = ReaderSecret::from_bytes(&array(&kat["wrap.reader_secret"]))?;
    assert_eq!(
        secret.public_key().to_bytes().to_vec(),
        kat["wrap.reader_x"]
    );
    let key = EcdhWrap.unwrap(&kat["wrap.wrapped"], &secret)?;
    assert_eq!(key.as_bytes().to_vec(), kat["wrap.content_key"]);
    // Every single-byte change to the wrapped key fails to open (or is rejected as malformed).
    for i in 0..kat["wrap.wrapped"].len() {
        let mut tampered = kat["wrap.wrapped"].clone();
        tampered[i] ^= 0x01;
        assert!(EcdhWrap.unwrap(&tampered, &secret).is_err(), "byte {i}");
    }
    Ok(())
}

fn small_sealed() -> (ContentKey, AesGcmStream, Vec<u8>, Vec<u8>) {
    let key = ContentKey::from_bytes([9; 32]);
    let cipher = AesGcmStream::new(16).expect("valid size");
    let plaintext: Vec<u8> = (0u8..50).collect(); // 4 segments: 16, 16, 16, 2
    let sealed = cipher.seal(&key, AD, &plaintext).expect("seal");
    (key, cipher, plaintext, sealed)
}

#[test]
fn every_tampered_byte_fails_to_open() {
    let (key, cipher, _, sealed) = small_sealed();
    for i in 0..sealed.len() {
        for bit in [0x01, 0x80] {
            let mut tampered = sealed.clone();
            tampered[i] ^= bit;
            let result = cipher.open(&key, AD, &tampered);
            assert!(result.is_err(), "byte {i} bit {bit:#x} went unnoticed");
            if i >= 9 {
                // Past magic, version and segment size, the failure is the opaque one.
                assert_eq!(result, Err(CryptError::Open), "byte {i}");
            }
        }
    }
}

/// The sealed segments (with tags) of `sealed`, segment size `size`.
fn segments(sealed: &[u8], size: usize) -> Vec<Vec<u8>> {
    sealed[HEADER_LEN..]
        .chunks(size + TAG_LEN)
        .map(<[u8]>::to_vec)
        .collect()
}

fn assemble(header: &[u8], segments: &[Vec<u8>]) -> Vec<u8> {
    let mut out = header.to_vec();
    segments.iter().for_each(|s| out.extend_from_slice(s));
    out
}

#[test]
fn reordered_dropped_duplicated_truncated_or_spliced_segments_fail() -> TestResult {
    let (key, cipher, plaintext, sealed) = small_sealed();
    assert_eq!(cipher.open(&key, AD, &sealed)?, plaintext);
    let header = &sealed[..HEADER_LEN];
    let segs = segments(&sealed, 16);
    assert_eq!(segs.len(), 4);
    let variants: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "swap 0 and 1",
            vec![
                segs[1].clone(),
                segs[0].clone(),
                segs[2].clone(),
                segs[3].clone(),
            ],
        ),
        (
            "drop the middle",
            vec![segs[0].clone(), segs[2].clone(), segs[3].clone()],
        ),
        (
            "drop the last",
            vec![segs[0].clone(), segs[1].clone(), segs[2].clone()],
        ),
        (
            "duplicate one",
            vec![
                segs[0].clone(),
                segs[0].clone(),
                segs[1].clone(),
                segs[2].clone(),
                segs[3].clone(),
            ],
        ),
        (
            "repeat the last",
            vec![
                segs[0].clone(),
                segs[1].clone(),
                segs[2].clone(),
                segs[3].clone(),
                segs[3].clone(),
            ],
        ),
        ("only the last", vec![segs[3].clone()]),
    ];
    for (what, variant) in variants {
        assert!(
            cipher.open(&key, AD, &assemble(header, &variant)).is_err(),
            "{what}"
        );
    }
    // Truncation at every length.
    for cut in 0..sealed.len() {
        assert!(
            cipher.open(&key, AD, &sealed[..cut]).is_err(),
            "truncated to {cut}"
        );
    }
    // A segment from another object (same key, same segment size, other associated data; and
    // same associated data, other randomness) does not fit.
    let other = cipher.seal(&key, b"agigit/another-object", &plaintext)?;
    let again = cipher.seal(&key, AD, &plaintext)?;
    for donor in [&other, &again] {
        let mut spliced = segs.clone();
        spliced[1] = segments(donor, 16)[1].clone();
        assert!(cipher.open(&key, AD, &assemble(header, &spliced)).is_err());
    }
    // Wrong key, wrong associated data.
    assert_eq!(
        cipher.open(&ContentKey::from_bytes([8; 32]), AD, &sealed),
        Err(CryptError::Open)
    );
    assert_eq!(
        cipher.open(&key, b"agigit/test-objecT", &sealed),
        Err(CryptError::Open)
    );
    Ok(())
}

#[test]
fn format_errors_are_typed() {
    let (key, cipher, _, sealed) = small_sealed();
    let mut bad = sealed.clone();
    bad[..4].copy_from_slice(b"NOPE");
    assert!(matches!(
        cipher.open(&key, AD, &bad),
        Err(CryptError::Format { .. })
    ));
    let mut bad = sealed.clone();
    bad[4] = 2;
    assert!(matches!(
        cipher.open(&key, AD, &bad),
        Err(CryptError::Format { .. })
    ));
    let mut bad = sealed.clone();
    bad[5..9].copy_from_slice(&0u32.to_le_bytes());
    assert!(matches!(
        cipher.open(&key, AD, &bad),
        Err(CryptError::Format { .. })
    ));
    bad[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        cipher.open(&key, AD, &bad),
        Err(CryptError::Format { .. })
    ));
    assert!(matches!(
        cipher.open(&key, AD, &sealed[..HEADER_LEN]),
        Err(CryptError::Format { .. })
    ));
    assert!(matches!(
        AesGcmStream::new(0),
        Err(CryptError::Params { .. })
    ));
}

#[test]
fn streaming_reader_rejects_truncation_and_tampering() -> TestResult {
    let (key, _, plaintext, sealed) = small_sealed();
    let mut out = Vec::new();
    OpeningReader::new(&sealed[..], &key, AD)?.read_to_end(&mut out)?;
    assert_eq!(out, plaintext);
    // Cut at a segment boundary: every remaining segment is authentic, but the last flag is
    // missing, so the reader fails instead of reporting a clean end.
    let cut = HEADER_LEN + 2 * (16 + TAG_LEN);
    let mut out = Vec::new();
    let result = OpeningReader::new(&sealed[..cut], &key, AD)?.read_to_end(&mut out);
    assert!(result.is_err());
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(
        OpeningReader::new(&tampered[..], &key, AD)?
            .read_to_end(&mut Vec::new())
            .is_err()
    );
    // A writer dropped without `finish` leaves an object no reader accepts.
    let mut sink = Vec::new();
    {
        let mut writer = SealingWriter::new(&mut sink, &key, AD, &AesGcmStream::new(16)?)?;
        writer.write_all(&plaintext)?;
    }
    assert!(AesGcmStream::new(16)?.open(&key, AD, &sink).is_err());
    Ok(())
}

/// Another scheme, as an embedder would plug one in: AES-256-GCM keyed under other associated
/// data, in segments of 100 bytes. Its objects must stream through the same writer, reader and
/// segment opener, and never open as the default's.
struct Relabelled;

impl SegmentCipher for Relabelled {
    fn seal(&self, key: &ContentKey, ad: &[u8], plain: &[u8]) -> Result<Vec<u8>, CryptError> {
        let mut w = SealingWriter::new(Vec::new(), key, ad, self).map_err(|_| CryptError::Open)?;
        w.write_all(plain).map_err(|_| CryptError::Open)?;
        w.finish().map_err(|_| CryptError::Open)
    }
    fn open(&self, key: &ContentKey, ad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptError> {
        let mut out = Vec::new();
        OpeningReader::with_cipher(sealed, key, ad, self)
            .and_then(|mut r| r.read_to_end(&mut out))
            .map_err(|_| CryptError::Open)?;
        Ok(out)
    }
    fn sealed_len(&self, plaintext_len: u64) -> u64 {
        let count = plaintext_len.div_ceil(100).max(1);
        HEADER_LEN as u64 + plaintext_len + count * TAG_LEN as u64
    }
    fn stream_segment_size(&self) -> usize {
        100
    }
    fn keyed(&self, key: &ContentKey, ad: &[u8], material: &NonceMaterial) -> Box<dyn SegmentAead> {
        let relabelled = [b"relabelled ".as_slice(), ad].concat();
        AesGcmStream::default().keyed(key, &relabelled, material)
    }
}

#[test]
fn another_cipher_streams_through_the_same_framing_and_only_opens_as_itself() -> TestResult {
    let key = ContentKey::generate()?;
    let plaintext: Vec<u8> = (0..1234u32).map(|i| (i * 7) as u8).collect();
    let sealed = Relabelled.seal(&key, AD, &plaintext)?;
    assert_eq!(
        sealed.len() as u64,
        Relabelled.sealed_len(plaintext.len() as u64)
    );
    assert_eq!(Relabelled.open(&key, AD, &sealed)?, plaintext);
    // The default cipher reads the same framing and refuses every segment.
    assert!(matches!(
        AesGcmStream::default().open(&key, AD, &sealed),
        Err(CryptError::Open)
    ));
    let mut out = Vec::new();
    assert!(
        OpeningReader::new(&sealed[..], &key, AD)?
            .read_to_end(&mut out)
            .is_err()
    );
    // One segment at a time, by index, with the cipher it was sealed by.
    let opener = SegmentOpener::with_cipher(
        &key,
        AD,
        &sealed[..HEADER_LEN],
        sealed.len() as u64,
        &Relabelled,
    )?;
    assert_eq!(opener.segments(), 13);
    let range = opener.sealed_range(5);
    let segment = opener.open(5, &sealed[range.start as usize..range.end as usize])?;
    assert_eq!(segment, plaintext[500..600]);
    let default = SegmentOpener::new(&key, AD, &sealed[..HEADER_LEN], sealed.len() as u64)?;
    assert!(
        default
            .open(5, &sealed[range.start as usize..range.end as usize])
            .is_err()
    );
    // Segments keep their place: segment 5's bytes (as long as segment 6's) do not open as 6.
    assert_eq!(
        opener.sealed_range(6).end - opener.sealed_range(6).start,
        range.end - range.start
    );
    assert!(
        opener
            .open(6, &sealed[range.start as usize..range.end as usize])
            .is_err()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn seal_open_round_trip(
        segment_size in prop_oneof![Just(1usize), Just(7), Just(16), Just(64), Just(1000)],
        len_kind in 0usize..6,
        extra in 0usize..3000,
        key in any::<[u8; 32]>(),
        ad in prop::collection::vec(any::<u8>(), 0..40),
        write_chunk in 1usize..200,
    ) {
        // Sizes at the boundaries: 0, 1, a segment ± 1, several segments, arbitrary.
        let len = match len_kind {
            0 => 0,
            1 => 1,
            2 => segment_size.saturating_sub(1),
            3 => segment_size + 1,
            4 => 3 * segment_size,
            _ => extra,
        };
        let plaintext: Vec<u8> = (0..len).map(|i| (i * 31 + 7).to_le_bytes()[0]).collect();
        let key = ContentKey::from_bytes(key);
        let cipher = AesGcmStream::new(segment_size).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let sealed = cipher.seal(&key, &ad, &plaintext).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(sealed.len() as u64, cipher.sealed_len(len as u64));
        prop_assert_eq!(cipher.open(&key, &ad, &sealed), Ok(plaintext.clone()));

        // The streaming writer, fed in arbitrary pieces, makes what one-shot open accepts; the
        // streaming reader opens what one-shot seal made.
        let mut writer = SealingWriter::new(Vec::new(), &key, &ad, &cipher)?;
        for piece in plaintext.chunks(write_chunk) {
            writer.write_all(piece)?;
        }
        let streamed = writer.finish()?;
        prop_assert_eq!(streamed.len(), sealed.len());
        prop_assert_eq!(cipher.open(&key, &ad, &streamed), Ok(plaintext.clone()));
        let mut out = Vec::new();
        OpeningReader::new(&sealed[..], &key, &ad)?.read_to_end(&mut out)?;
        prop_assert_eq!(out, plaintext);
    }

    #[test]
    fn wrap_unwrap_round_trip(key in any::<[u8; 32]>(), reader in 1u8..=254, other in 1u8..=254) {
        let secret = ReaderSecret::from_bytes(&[reader; 32]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let key = ContentKey::from_bytes(key);
        let wrapped = EcdhWrap.wrap(&key, &secret.public_key()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(wrapped.len(), EcdhWrap.wrapped_len());
        prop_assert_eq!(EcdhWrap.unwrap(&wrapped, &secret), Ok(key.clone()));
        if other != reader {
            let stranger = ReaderSecret::from_bytes(&[other; 32]).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(EcdhWrap.unwrap(&wrapped, &stranger), Err(CryptError::Open));
        }
    }
}

fn reader(n: u8) -> ReaderSecret {
    ReaderSecret::from_bytes(&[n; 32]).expect("valid secret")
}

#[test]
fn envelopes_round_trip_and_add_readers_without_rewrapping() -> TestResult {
    let key = ContentKey::generate()?;
    let readers: Vec<ReaderSecret> = (1..=3).map(reader).collect();
    let keys: Vec<ReaderKey> = readers.iter().map(ReaderSecret::public_key).collect();
    let mut envelope = Envelope::for_readers(&EcdhWrap, &key, &keys[..2])?;
    let before = envelope.encode();
    envelope.add_reader(&EcdhWrap, &key, &keys[2])?;
    let after = envelope.encode();
    // The two earlier entries are byte for byte what they were.
    let decoded_before = Envelope::decode(&before, &EcdhWrap)?;
    let decoded_after = Envelope::decode(&after, &EcdhWrap)?;
    assert_eq!(decoded_after, envelope);
    for secret in &readers[..2] {
        assert!(
            after
                .windows(32)
                .any(|w| w == secret.public_key().to_bytes())
        );
        assert_eq!(decoded_before.open(&EcdhWrap, secret)?, key);
    }
    let entry_len = 32 + EcdhWrap.wrapped_len();
    let entries = |bytes: &[u8]| -> Vec<Vec<u8>> {
        bytes[8..].chunks(entry_len).map(<[u8]>::to_vec).collect()
    };
    let old = entries(&before);
    let new = entries(&after);
    assert_eq!(new.len(), 3);
    assert!(
        old.iter().all(|e| new.contains(e)),
        "existing entries were not rewrapped"
    );
    for secret in &readers {
        assert_eq!(decoded_after.open(&EcdhWrap, secret)?, key);
    }
    assert_eq!(
        decoded_after.open(&EcdhWrap, &reader(9)),
        Err(CryptError::NotARecipient)
    );
    assert!(envelope.remove_reader(&keys[0]));
    assert_eq!(
        envelope.open(&EcdhWrap, &readers[0]),
        Err(CryptError::NotARecipient)
    );
    assert_eq!(envelope.readers().count(), 2);
    Ok(())
}

#[test]
fn malformed_envelopes_are_rejected() -> TestResult {
    let key = ContentKey::from_bytes([1; 32]);
    let keys: Vec<ReaderKey> = (1..=2).map(|n| reader(n).public_key()).collect();
    let bytes = Envelope::for_readers(&EcdhWrap, &key, &keys)?.encode();
    let decode = |b: &[u8]| Envelope::decode(b, &EcdhWrap);
    assert!(decode(&bytes).is_ok());
    for cut in 0..bytes.len() {
        assert!(decode(&bytes[..cut]).is_err(), "truncated to {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode(&longer).is_err());
    // A reader key that is not on the curve (BIP-340 test vector 5): an error, not a panic.
    let mut off_curve = bytes.clone();
    off_curve[8..40].copy_from_slice(&hex(
        "eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34",
    ));
    assert!(matches!(
        decode(&off_curve),
        Err(CryptError::InvalidPublicKey) | Err(CryptError::Envelope { .. })
    ));
    assert!(
        ReaderKey::from_bytes(array(&hex(
            "eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34"
        )))
        .is_err()
    );
    // An ephemeral key with a bad prefix byte or off the curve.
    let mut bad_ephemeral = bytes.clone();
    bad_ephemeral[40] = 0x05;
    assert!(matches!(
        decode(&bad_ephemeral),
        Err(CryptError::InvalidPublicKey)
    ));
    // Readers out of order, or twice.
    let entry_len = 32 + EcdhWrap.wrapped_len();
    let mut swapped = bytes[..8].to_vec();
    swapped.extend_from_slice(&bytes[8 + entry_len..]);
    swapped.extend_from_slice(&bytes[8..8 + entry_len]);
    assert!(matches!(decode(&swapped), Err(CryptError::Envelope { .. })));
    let mut twice = bytes[..8].to_vec();
    twice.extend_from_slice(&bytes[8..8 + entry_len]);
    twice.extend_from_slice(&bytes[8..8 + entry_len]);
    assert!(matches!(decode(&twice), Err(CryptError::Envelope { .. })));
    // Tampering with a wrapped key is caught when it is opened.
    let mut tampered = bytes.clone();
    tampered[8 + 32 + 40] ^= 1;
    let secrets: Vec<ReaderSecret> = (1..=2).map(reader).collect();
    let first = secrets
        .iter()
        .find(|s| s.public_key().to_bytes()[..] == bytes[8..40])
        .expect("a reader");
    assert_eq!(
        decode(&tampered)?.open(&EcdhWrap, first),
        Err(CryptError::Open)
    );
    Ok(())
}

#[test]
fn secrets_do_not_print() -> TestResult {
    assert_eq!(
        format!("{:?}", ContentKey::from_bytes([7; 32])),
        "ContentKey(..)"
    );
    assert_eq!(format!("{:?}", reader(3)), "ReaderSecret(..)");
    assert!(matches!(
        ReaderSecret::from_bytes(&[0; 32]),
        Err(CryptError::InvalidSecretKey)
    ));
    assert!(matches!(
        ReaderSecret::from_bytes(&[0xff; 32]),
        Err(CryptError::InvalidSecretKey)
    ));
    assert_ne!(ContentKey::generate()?, ContentKey::generate()?);
    Ok(())
}

#[test]
fn into_variants_reuse_buffers_without_leaking_stale_bytes() -> TestResult {
    let key = ContentKey::from_bytes([4; 32]);
    let cipher = AesGcmStream::new(100)?;
    let material = NonceMaterial {
        salt: [1; 32],
        prefix: [2; 7],
    };
    let mut sealed = vec![0xee; 10_000];
    let mut opened = vec![0xdd; 10_000];
    // Larger, smaller, empty, larger again: every result equals the fresh one-shot result.
    for len in [5000usize, 250, 0, 1, 3000] {
        let plaintext: Vec<u8> = (0..len).map(|i| (i % 251).to_le_bytes()[0]).collect();
        cipher.seal_with_into(&key, AD, &plaintext, &material, &mut sealed);
        assert_eq!(
            sealed,
            cipher.seal_with(&key, AD, &plaintext, &material),
            "seal {len}"
        );
        cipher.open_into(&key, AD, &sealed, &mut opened)?;
        assert_eq!(opened, plaintext, "open {len}");
        cipher.seal_into(&key, AD, &plaintext, &mut sealed)?;
        assert_eq!(cipher.open(&key, AD, &sealed)?, plaintext);
    }
    // A failed open leaves nothing behind.
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    assert_eq!(
        cipher.open_into(&key, AD, &sealed, &mut opened),
        Err(CryptError::Open)
    );
    assert!(opened.is_empty());
    Ok(())
}

#[test]
fn opaque_names_match_hkdf_expand_and_depend_on_key_label_and_data() {
    // HKDF-SHA256-Expand(PRK = key, info = label ‖ 0 ‖ data, L = 32) is one HMAC block:
    // HMAC-SHA256(key, "agigit-crypt v1 name" ‖ "commit" ‖ 0x00 ‖ data ‖ 0x01), computed with
    // Python's hmac module.
    let key = ContentKey::from_bytes([7; 32]);
    let name = key.opaque_name(b"commit", &[1; 32]);
    assert_eq!(
        name.to_vec(),
        hex("3a0188bcc5c83b339d4895dae6bef8ac1ed97050a65c5f1c0d2e075234d54579")
    );
    assert_eq!(name, key.opaque_name(b"commit", &[1; 32]));
    assert_ne!(name, key.opaque_name(b"commit", &[2; 32]));
    assert_ne!(name, key.opaque_name(b"commiu", &[1; 32]));
    assert_ne!(
        name,
        ContentKey::from_bytes([8; 32]).opaque_name(b"commit", &[1; 32])
    );
    // The label and the data are separated: moving a byte across the boundary changes the name.
    assert_ne!(key.opaque_name(b"ab", b"c"), key.opaque_name(b"a", b"bc"));
}

#[test]
fn removing_a_reader_rotates_the_key_and_history_stays_readable() -> TestResult {
    let (owner, alice, bob) = (reader(1), reader(2), reader(3));
    let all = [owner.public_key(), alice.public_key(), bob.public_key()];
    let mut ring = Keyring::generate(&EcdhWrap, &all)?;
    let first = ring.current().clone();
    // Epoch 0 encodes as a plain envelope, as before epochs existed.
    let encoded = ring.encode();
    assert!(Envelope::decode(&encoded, &EcdhWrap).is_ok());
    assert_eq!(ring.encode(), encoded, "deterministic");
    assert_eq!(Keyring::open(&encoded, &EcdhWrap, &bob)?.current(), &first);

    assert!(ring.remove_reader(&EcdhWrap, &bob.public_key())?);
    assert!(!ring.remove_reader(&EcdhWrap, &bob.public_key())?, "once");
    assert_eq!(ring.epoch(), 1);
    assert_ne!(ring.current(), &first, "a fresh key");
    let encoded = ring.encode();
    // Bob is out: the new epoch does not open for him.
    assert_eq!(
        Keyring::open(&encoded, &EcdhWrap, &bob).map(|r| r.epoch()),
        Err(CryptError::NotARecipient)
    );
    // The others open both epochs.
    for secret in [&owner, &alice] {
        let opened = Keyring::open(&encoded, &EcdhWrap, secret)?;
        assert_eq!(opened.epoch(), 1);
        assert_eq!(opened.current(), ring.current());
        assert_eq!(opened.key(0), Some(&first));
    }
    // A reader added later opens the whole history too.
    let carol = reader(4);
    ring.add_reader(&EcdhWrap, &carol.public_key())?;
    ring.remove_reader(&EcdhWrap, &alice.public_key())?;
    let encoded = ring.encode();
    let opened = Keyring::open(&encoded, &EcdhWrap, &carol)?;
    assert_eq!(opened.epoch(), 2);
    assert_eq!(opened.keys().count(), 3);
    assert_eq!(opened.key(0), Some(&first));
    assert_eq!(
        Keyring::decode_public(&encoded, &EcdhWrap)?.0,
        2,
        "the epoch is readable without a key"
    );
    assert!(!format!("{opened:?}").contains("ContentKey"));
    Ok(())
}

#[test]
fn every_altered_byte_of_a_keyring_fails_to_open() -> TestResult {
    let owner = reader(1);
    let mut ring = Keyring::generate(&EcdhWrap, &[owner.public_key(), reader(2).public_key()])?;
    ring.remove_reader(&EcdhWrap, &reader(2).public_key())?;
    let encoded = ring.encode();
    for i in 0..encoded.len() {
        let mut bad = encoded.clone();
        bad[i] ^= 0x40;
        if let Ok(opened) = Keyring::open(&bad, &EcdhWrap, &owner) {
            panic!(
                "byte {i} altered and still opened at epoch {}",
                opened.epoch()
            );
        }
    }
    for cut in [0, 4, 12, encoded.len() - 1] {
        assert!(Keyring::open(&encoded[..cut], &EcdhWrap, &owner).is_err());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// Any sequence of additions and removals: every current reader opens every epoch's key,
    /// every removed one opens nothing newer than its removal.
    #[test]
    fn keyrings_round_trip_through_any_rotations(ops in proptest::collection::vec((any::<bool>(), 2u8..6), 1..8)) {
        let owner = reader(1);
        let mut ring = Keyring::generate(&EcdhWrap, &[owner.public_key()]).expect("ring");
        let mut members = std::collections::BTreeSet::new();
        for (add, who) in ops {
            let key = reader(who).public_key();
            if add {
                ring.add_reader(&EcdhWrap, &key).expect("add");
                members.insert(who);
            } else {
                let was = ring.remove_reader(&EcdhWrap, &key).expect("remove");
                prop_assert_eq!(was, members.remove(&who));
            }
        }
        let encoded = ring.encode();
        for who in 1u8..6 {
            let opened = Keyring::open(&encoded, &EcdhWrap, &reader(who));
            if who == 1 || members.contains(&who) {
                let opened = opened.expect("a member opens");
                prop_assert_eq!(opened.epoch(), ring.epoch());
                for (epoch, key) in ring.keys() {
                    prop_assert_eq!(opened.key(epoch), Some(key));
                }
            } else {
                prop_assert_eq!(opened.map(|r| r.epoch()), Err(CryptError::NotARecipient));
            }
        }
    }
}

/// Every segment of `sealed`, opened alone through a [`SegmentOpener`], in reverse order.
fn open_each(opener: &SegmentOpener, sealed: &[u8]) -> Result<Vec<u8>, CryptError> {
    let mut parts = Vec::new();
    for i in (0..opener.segments()).rev() {
        let r = opener.sealed_range(i);
        let plain = opener.open(i, &sealed[r.start as usize..r.end as usize])?;
        let p = opener.plaintext_range(i);
        assert_eq!(plain.len() as u64, p.end - p.start);
        parts.push(plain);
    }
    parts.reverse();
    Ok(parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random access: each segment opened alone gives the object back; the segments holding
    /// any plaintext range cover it and nothing more than needed.
    #[test]
    fn segments_open_one_at_a_time(
        segment_size in prop_oneof![Just(1usize), Just(7), Just(16), Just(64), Just(1000)],
        len in 0usize..5000,
        from in 0u64..6000,
        span in 0u64..3000,
        key in any::<[u8; 32]>(),
    ) {
        let plaintext: Vec<u8> = (0..len).map(|i| (i * 13 + 1).to_le_bytes()[0]).collect();
        let key = ContentKey::from_bytes(key);
        let cipher = AesGcmStream::new(segment_size).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let sealed = cipher.seal(&key, b"ad", &plaintext).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let opener = SegmentOpener::new(&key, b"ad", &sealed[..HEADER_LEN], sealed.len() as u64)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(opener.plaintext_len(), len as u64);
        prop_assert_eq!(open_each(&opener, &sealed), Ok(plaintext.clone()));
        let want = from..from + span;
        let segments = opener.segments_of(want.clone());
        let end = want.end.min(len as u64);
        if want.start < end {
            let covered = opener.plaintext_range(segments.start).start
                ..opener.plaintext_range(segments.end - 1).end;
            prop_assert!(covered.start <= want.start && covered.end >= end);
            prop_assert!(want.start - covered.start < segment_size as u64);
            prop_assert!(covered.end - end < segment_size as u64);
        } else {
            prop_assert!(segments.is_empty());
        }
    }
}

#[test]
fn a_segment_out_of_place_or_a_lying_length_does_not_open() -> TestResult {
    let key = ContentKey::from_bytes([9; 32]);
    let cipher = AesGcmStream::new(64)?;
    let plaintext: Vec<u8> = (0..300u32).map(|i| i.to_le_bytes()[0]).collect();
    let sealed = cipher.seal(&key, b"ad", &plaintext)?;
    let len = sealed.len() as u64;
    let opener = SegmentOpener::new(&key, b"ad", &sealed[..HEADER_LEN], len)?;
    assert_eq!(opener.segments(), 5);
    let seg = |i: u64| {
        let r = opener.sealed_range(i);
        sealed[r.start as usize..r.end as usize].to_vec()
    };
    // Swapped: segment 1's bytes as segment 2.
    assert_eq!(opener.open(2, &seg(1)), Err(CryptError::Open));
    // One flipped bit anywhere in a segment.
    for at in [0, 40, 79] {
        let mut bad = seg(3);
        bad[at] ^= 0x10;
        assert_eq!(opener.open(3, &bad), Err(CryptError::Open), "bit at {at}");
    }
    // Another object's key or associated data.
    let other = SegmentOpener::new(&key, b"other", &sealed[..HEADER_LEN], len)?;
    assert_eq!(other.open(0, &seg(0)), Err(CryptError::Open));
    // A length that ends the object a segment early (the last one dropped): segment 3, whole,
    // is taken for the last and does not open; one that adds bytes makes segment 4 not fit.
    let early = SegmentOpener::new(&key, b"ad", &sealed[..HEADER_LEN], len - 60)?;
    assert_eq!(early.segments(), 4);
    assert_eq!(early.open(3, &seg(3)), Err(CryptError::Open));
    let late = SegmentOpener::new(&key, b"ad", &sealed[..HEADER_LEN], len + 40)?;
    assert_eq!(
        late.open(4, &seg(4)),
        Err(CryptError::Format {
            reason: "a sealed segment of the wrong length"
        })
    );
    // Lengths no sealer writes, a bad header, an index past the end.
    for bad in [0, 47, 48, 48 + 15, len - 60 + 16] {
        assert!(
            matches!(
                SegmentOpener::new(&key, b"ad", &sealed[..HEADER_LEN], bad),
                Err(CryptError::Format { .. })
            ),
            "length {bad}"
        );
    }
    let mut header = sealed[..HEADER_LEN].to_vec();
    header[0] = b'X';
    assert!(SegmentOpener::new(&key, b"ad", &header, len).is_err());
    assert!(SegmentOpener::new(&key, b"ad", &sealed[..20], len).is_err());
    assert!(matches!(
        opener.open(5, &seg(4)),
        Err(CryptError::Format { .. })
    ));
    Ok(())
}

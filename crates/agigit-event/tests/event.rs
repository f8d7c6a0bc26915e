//! Integration tests for agigit-event: known answers, round trips, rejections, verifier agreement,
//! state resolution and Blossom authorization.

#![allow(clippy::panic, reason = "a failed fixture assumption is a failed test")]

use std::collections::BTreeMap;

use agigit_event::nip01::IdFields;
use agigit_event::nostr::prelude::{
    Event, EventBuilder, EventId, FinalizeEvent as _, Keys, Kind, PublicKey, RelayUrl, SecretKey,
    Signature, Tag, Timestamp, UnsignedEvent, Url,
};
use agigit_event::{
    AuthError, AuthRequest, BlossomAuth, CommitEvent, ForkOf, IgnoreReason, K256Verifier,
    NostrVerifier, ParseError, ProtocolEvent, RefName, RepoAnnouncement, RepoCoordinate, RepoId,
    RepoState, SealedRefs, SignError, Signed, Signer, Verb, Verifier, VerifyError, Visibility,
    bip340_verify, kinds, newest_announcement, resolve_state,
};
use agigit_hash::{BlobHash, ObjectId};
use proptest::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Deterministic keys: secret key = [n; 32] (valid for 1 ≤ n ≤ 254; [255; 32] exceeds the group order).
fn keys(n: u8) -> Keys {
    let secret = SecretKey::from_slice(&[n; 32]);
    Keys::new(secret.unwrap_or_else(|e| panic!("[{n}; 32] is a valid secret key: {e}")))
}

fn t(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

/// Signs an event with arbitrary kind, tags and content: for feeding parsers malformed but
/// correctly signed input.
fn sign_raw(keys: &Keys, kind: u16, tags: &[&[&str]], content: &str) -> Event {
    let tags = tags.iter().map(|tag| {
        Tag::parse(tag.iter().copied()).unwrap_or_else(|e| panic!("test tag {tag:?} is valid: {e}"))
    });
    EventBuilder::new(Kind::Custom(kind), content)
        .tags(tags)
        .custom_created_at(t(1_700_000_000))
        .finalize(keys)
        .unwrap_or_else(|e| panic!("signing with local keys succeeds: {e}"))
}

fn repo_id(s: &str) -> RepoId {
    RepoId::new(s).unwrap_or_else(|e| panic!("{e}"))
}

/// A lowercase hex id with letters in it (so that uppercasing it changes it).
fn hex32(byte: u8) -> String {
    ObjectId::digest([byte]).to_string()
}

// ---------------------------------------------------------------------------------------------
// BIP-340 test vectors
// ---------------------------------------------------------------------------------------------

struct Vector {
    index: usize,
    public_key: Vec<u8>,
    message: Vec<u8>,
    signature: Vec<u8>,
    valid: bool,
}

fn decode_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| {
            u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or_else(|e| panic!("{s}: {e}"))
        })
        .collect()
}

/// The rows of `tests/data/bip340-test-vectors.csv` (from bitcoin/bips, bip-0340/test-vectors.csv).
fn vectors() -> Vec<Vector> {
    let csv = include_str!("data/bip340-test-vectors.csv");
    csv.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split(',').collect();
            Vector {
                index: cols[0].parse().unwrap_or_else(|e| panic!("{line}: {e}")),
                public_key: decode_hex(cols[2]),
                message: decode_hex(cols[4]),
                signature: decode_hex(cols[5]),
                valid: cols[6] == "TRUE",
            }
        })
        .collect()
}

#[test]
fn bip340_vectors_through_k256() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 19, "every row of the file is read");
    assert!(vectors.iter().any(|v| !v.valid) && vectors.iter().any(|v| v.valid));
    for v in &vectors {
        let pk: [u8; 32] = v.public_key[..]
            .try_into()
            .unwrap_or_else(|_| panic!("row {}", v.index));
        let sig: [u8; 64] = v.signature[..]
            .try_into()
            .unwrap_or_else(|_| panic!("row {}", v.index));
        assert_eq!(
            bip340_verify(&pk, &v.message, &sig),
            v.valid,
            "row {}",
            v.index
        );
    }
}

#[test]
fn bip340_vectors_through_nostr_for_32_byte_messages() {
    let mut checked = 0;
    for v in vectors().iter().filter(|v| v.message.len() == 32) {
        // Nostr signs the 32-byte event id: put the message there and ask `nostr` to check the
        // signature alone. A key that is not on the curve cannot even be parsed: a rejection.
        let accepted = PublicKey::from_slice(&v.public_key).is_ok_and(|pk| {
            let sig: [u8; 64] = v.signature[..].try_into().unwrap_or([0; 64]);
            let id: [u8; 32] = v.message[..].try_into().unwrap_or([0; 32]);
            let event = Event::new(
                EventId::from_byte_array(id),
                pk,
                t(0),
                Kind::Custom(1),
                [],
                "",
                Signature::from_byte_array(sig),
            );
            event.verify_signature()
        });
        assert_eq!(accepted, v.valid, "row {}", v.index);
        checked += 1;
    }
    assert_eq!(checked, 15, "rows 0-14 sign 32-byte messages");
}

// ---------------------------------------------------------------------------------------------
// NIP-01 id computation
// ---------------------------------------------------------------------------------------------

/// Content and tags holding every escaped character, other control characters, DEL, non-ASCII,
/// emoji and U+2028.
const TRICKY_CONTENT: &str = "quote\" backslash\\ nl\n cr\r tab\t bs\u{8} ff\u{c} nul\u{0} us\u{1f} del\u{7f} é 日本 😀 </script> \u{2028}";

fn tricky_tags() -> Vec<Tag> {
    [
        vec!["d", "repo\"id"],
        vec!["refs/heads/main", "ctl\u{1}\u{2}"],
        vec!["x", "😀\\"],
    ]
    .into_iter()
    .map(|tag| Tag::parse(tag).unwrap_or_else(|e| panic!("{e}")))
    .collect()
}

#[test]
fn nip01_id_known_answer() -> TestResult {
    // Expected values computed independently with Python 3.11:
    //   s = json.dumps([0, pk, 1700000000, 30718, tags, content], separators=(',', ':'),
    //                  ensure_ascii=False)
    //   hashlib.sha256(s.encode()).hexdigest()
    // which escapes exactly as JSON.stringify and NIP-01 do.
    let pk: [u8; 32] =
        decode_hex("dff1d77f2a671c5f36183726db2341be58feae1da2deced843240f7b502ba659")[..]
            .try_into()?;
    let tags = tricky_tags();
    let fields = IdFields {
        pubkey: &pk,
        created_at: 1_700_000_000,
        kind: 30718,
        tags: &tags,
        content: TRICKY_CONTENT,
    };
    let expected_json = "[0,\"dff1d77f2a671c5f36183726db2341be58feae1da2deced843240f7b502ba659\",1700000000,30718,[[\"d\",\"repo\\\"id\"],[\"refs/heads/main\",\"ctl\\u0001\\u0002\"],[\"x\",\"😀\\\\\"]],\"quote\\\" backslash\\\\ nl\\n cr\\r tab\\t bs\\b ff\\f nul\\u0000 us\\u001f del\u{7f} é 日本 😀 </script> \u{2028}\"]";
    assert_eq!(String::from_utf8(fields.serialize())?, expected_json);
    let expected_id = "913421f16d7e1c91b6ecea98a5b17e8fba46469be4726f90ca7dff0c3178a9fe";
    assert_eq!(ObjectId::from_bytes(fields.id()).to_string(), expected_id);

    // The `nostr` crate computes the same id.
    let nostr_id = EventId::compute(
        &PublicKey::from_slice(&pk)?,
        &t(1_700_000_000),
        &Kind::Custom(30718),
        &tags.clone().into_iter().collect(),
        TRICKY_CONTENT,
    );
    assert_eq!(nostr_id.to_hex(), expected_id);
    Ok(())
}

#[test]
fn tricky_event_signs_parses_and_verifies_both_ways() -> TestResult {
    let event = EventBuilder::new(Kind::Custom(1), TRICKY_CONTENT)
        .tags(tricky_tags())
        .finalize(&keys(3))?;
    let reparsed = Event::from_json(event.as_json())?;
    assert_eq!(reparsed, event);
    NostrVerifier.verify_event(&reparsed)?;
    K256Verifier.verify_event(&reparsed)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Our serializer and `nostr`'s agree on arbitrary strings, including control characters.
    #[test]
    fn nip01_serializers_agree(
        content in any::<String>(),
        tags in prop::collection::vec(prop::collection::vec(any::<String>(), 1..4), 0..4),
        created_at in any::<u64>(),
        kind in any::<u16>(),
    ) {
        let tags: Vec<Tag> = tags.into_iter().filter_map(|t| Tag::parse(t).ok()).collect();
        let pk = keys(5).public_key();
        let ours = IdFields { pubkey: pk.as_bytes(), created_at, kind, tags: &tags, content: &content }.id();
        let theirs = EventId::compute(&pk, &t(created_at), &Kind::Custom(kind), &tags.iter().cloned().collect(), &content);
        prop_assert_eq!(ours, theirs.to_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// The two verifiers agree
// ---------------------------------------------------------------------------------------------

fn with_id(event: &Event, id: [u8; 32]) -> Event {
    Event::new(
        EventId::from_byte_array(id),
        event.pubkey,
        event.created_at,
        event.kind,
        event.tags.clone(),
        event.content.clone(),
        event.sig,
    )
}

fn with_sig(event: &Event, sig: [u8; 64]) -> Event {
    let mut e = event.clone();
    e.sig = Signature::from_byte_array(sig);
    e
}

fn flip<const N: usize>(bytes: [u8; N], bit: usize) -> [u8; N] {
    let mut out = bytes;
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

/// Both verifiers, which must agree exactly (same error, or both Ok).
fn both(event: &Event) -> Result<Result<(), VerifyError>, TestCaseError> {
    let a = NostrVerifier.verify_event(event);
    let b = K256Verifier.verify_event(event);
    prop_assert_eq!(&a, &b, "verifiers disagree on {:?}", event);
    Ok(a)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn verifiers_agree_on_valid_events_and_on_every_single_bit_tamper(
        secret in 1u8..=254,
        content in any::<String>(),
        tags in prop::collection::vec(prop::collection::vec("[a-z]{1,3}|\\PC{0,8}", 1..3), 0..3),
        created_at in 0u64..=u64::from(u32::MAX),
        kind in any::<u16>(),
    ) {
        let tags: Vec<Tag> = tags.into_iter().filter_map(|t| Tag::parse(t).ok()).collect();
        let event = EventBuilder::new(Kind::Custom(kind), content)
            .tags(tags)
            .custom_created_at(t(created_at))
            .finalize(&keys(secret))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(both(&event)?, Ok(()));

        for bit in 0..256 {
            let tampered = with_id(&event, flip(event.id.to_bytes(), bit));
            prop_assert!(matches!(both(&tampered)?, Err(VerifyError::IdMismatch { .. })), "id bit {}", bit);
        }
        for bit in 0..512 {
            let tampered = with_sig(&event, flip(event.sig.to_bytes(), bit));
            prop_assert!(matches!(both(&tampered)?, Err(VerifyError::BadSignature { .. })), "sig bit {}", bit);
        }
        for bit in 0..256 {
            let mut tampered = event.clone();
            // A flipped key may not be on the curve; `from_slice` only checks the length, so the
            // verifiers see it either way.
            tampered.pubkey = PublicKey::from_slice(&flip(event.pubkey.to_bytes(), bit))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(both(&tampered)?.is_err(), "pubkey bit {}", bit);
        }
        for bit in 0..64 {
            let mut tampered = event.clone();
            tampered.created_at = t(event.created_at.as_secs() ^ (1 << bit));
            prop_assert!(matches!(both(&tampered)?, Err(VerifyError::IdMismatch { .. })), "created_at bit {}", bit);
        }
        for bit in 0..16 {
            let mut tampered = event.clone();
            tampered.kind = Kind::Custom(event.kind.as_u16() ^ (1 << bit));
            prop_assert!(matches!(both(&tampered)?, Err(VerifyError::IdMismatch { .. })), "kind bit {}", bit);
        }
        // Every bit of the content's bytes that leaves it valid UTF-8.
        let bytes = event.content.as_bytes();
        for bit in 0..bytes.len() * 8 {
            let mut changed = bytes.to_vec();
            changed[bit / 8] ^= 1 << (bit % 8);
            if let Ok(text) = String::from_utf8(changed) {
                let mut tampered = event.clone();
                tampered.content = text;
                prop_assert!(matches!(both(&tampered)?, Err(VerifyError::IdMismatch { .. })), "content bit {}", bit);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips of the typed events
// ---------------------------------------------------------------------------------------------

fn round_trip<T: ProtocolEvent + PartialEq + std::fmt::Debug + Clone>(
    body: T,
    signer: &Keys,
) -> Result<(), TestCaseError> {
    let signed = Signed::sign(body.clone(), signer, t(1_700_000_000))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(signed.body(), &body);
    prop_assert_eq!(signed.author(), signer.public_key());
    let json = signed.to_json();
    let parsed = Signed::<T>::from_json(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(parsed.body(), &body);
    prop_assert_eq!(parsed.id(), signed.id());
    let independent = Signed::<T>::from_event_with(parsed.into_event(), &K256Verifier)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(independent.body(), &body);
    Ok(())
}

fn arb_repo_id() -> impl Strategy<Value = RepoId> {
    "[A-Za-z0-9_][A-Za-z0-9._-]{0,30}".prop_map(|s| repo_id(&s))
}

fn arb_coordinate() -> impl Strategy<Value = RepoCoordinate> {
    (1u8..=254, arb_repo_id()).prop_map(|(k, id)| RepoCoordinate::new(keys(k).public_key(), id))
}

fn arb_announcement() -> impl Strategy<Value = RepoAnnouncement> {
    (
        arb_repo_id(),
        prop::option::of(any::<String>()),
        prop::option::of(any::<String>()),
        prop::option::of("(MIT|Apache-2.0|MIT OR Apache-2.0|LLAMA-3)"),
        prop::bool::ANY,
        prop::option::of((arb_coordinate(), any::<[u8; 32]>())),
        prop::collection::btree_set(1u8..=254, 0..4),
        prop::collection::btree_set(0u16..1000, 0..3),
        prop::collection::btree_set(0u16..1000, 0..3),
        (
            prop::collection::btree_set("[a-z0-9][a-z0-9._-]{0,20}", 0..5),
            prop::option::of(any::<u64>()),
        ),
    )
        .prop_map(
            |(
                repo,
                name,
                description,
                license,
                private,
                fork,
                maintainers,
                relays,
                servers,
                (topics, size),
            )| {
                RepoAnnouncement {
                    repo,
                    name,
                    description,
                    license,
                    visibility: if private {
                        Visibility::Private
                    } else {
                        Visibility::Public
                    },
                    fork_of: fork.map(|(repo, commit)| ForkOf {
                        repo,
                        commit: commit.into(),
                    }),
                    maintainers: maintainers
                        .into_iter()
                        .map(|k| keys(k).public_key())
                        .collect(),
                    relays: relays
                        .into_iter()
                        .filter_map(|n| {
                            RelayUrl::parse(&format!("wss://relay{n}.example.org")).ok()
                        })
                        .collect(),
                    blob_servers: servers
                        .into_iter()
                        .filter_map(|n| Url::parse(&format!("https://blobs{n}.example.org/")).ok())
                        .collect(),
                    topics: topics.into_iter().collect(),
                    size,
                }
            },
        )
}

fn arb_state() -> impl Strategy<Value = RepoState> {
    (
        (
            arb_repo_id(),
            prop::collection::btree_map(
                "(heads|tags)/[a-z0-9][a-z0-9_-]{0,8}(/[a-z0-9]{1,4})?",
                any::<[u8; 32]>(),
                0..6,
            ),
            any::<prop::sample::Index>(),
            prop::bool::ANY,
        ),
        prop::option::of(prop::collection::vec(any::<u8>(), 1..300)),
        prop::option::of(any::<[u8; 32]>()),
        prop::collection::vec("[ -~\n\t]{1,40}", 0..3),
        prop::option::of((any::<u32>(), prop::collection::vec(any::<u8>(), 1..200))),
    )
        .prop_map(
            |((repo, refs, pick, with_head), keys, prev, messages, sealed)| {
                let refs: BTreeMap<RefName, ObjectId> = refs
                    .into_iter()
                    .filter_map(|(name, id)| {
                        RefName::new(format!("refs/{name}"))
                            .ok()
                            .map(|r| (r, id.into()))
                    })
                    .collect();
                let branches: Vec<&RefName> =
                    refs.keys().filter(|r| r.branch_name().is_some()).collect();
                let head = if with_head && !branches.is_empty() {
                    Some(branches[pick.index(branches.len())].clone())
                } else {
                    None
                };
                // Annotated tags: messages on some of the tag refs.
                let notes: BTreeMap<RefName, String> = refs
                    .keys()
                    .filter(|r| r.as_str().starts_with("refs/tags/"))
                    .cloned()
                    .zip(messages)
                    .collect();
                let mut state = RepoState::new(repo);
                state.refs = refs;
                state.head = head;
                state.keys = keys;
                state.prev = prev.map(EventId::from_byte_array);
                state.notes = notes;
                state.sealed_refs = sealed.map(|(epoch, sealed)| SealedRefs { epoch, sealed });
                state
            },
        )
}

fn arb_commit() -> impl Strategy<Value = CommitEvent> {
    (
        arb_coordinate(),
        any::<[u8; 32]>(),
        prop::collection::btree_set(any::<[u8; 32]>(), 0..4),
        prop::collection::btree_set(any::<[u8; 32]>(), 0..4),
        prop::option::of("[a-z0-9-]{1,20}"),
        prop::collection::vec(any::<u8>(), 0..400),
        prop::collection::vec(prop::option::of("[a-z0-9/_-]{1,64}"), 4),
    )
        .prop_map(
            |(repo, commit, parents, packs, encryption, payload, labels)| {
                let packs: Vec<BlobHash> = packs.into_iter().map(BlobHash::from).collect();
                let pack_parts = packs
                    .iter()
                    .zip(labels)
                    .filter_map(|(p, l)| l.map(|l| (*p, l)))
                    .collect();
                CommitEvent {
                    repo,
                    commit: commit.into(),
                    parents: parents.into_iter().map(ObjectId::from).collect(),
                    packs,
                    pack_parts,
                    encryption,
                    payload,
                }
            },
        )
}

fn arb_verb() -> impl Strategy<Value = Verb> {
    prop_oneof![
        Just(Verb::Get),
        Just(Verb::Upload),
        Just(Verb::List),
        Just(Verb::Delete)
    ]
}

fn arb_auth() -> impl Strategy<Value = BlossomAuth> {
    (
        arb_verb(),
        0u64..=u64::from(u32::MAX),
        prop::collection::btree_set(any::<[u8; 32]>(), 0..3),
        prop::collection::btree_set("[a-z0-9.-]{1,20}", 0..3),
        any::<String>(),
    )
        .prop_map(
            |(verb, expiration, blobs, servers, description)| BlossomAuth {
                verb,
                expiration: t(expiration),
                blobs: blobs.into_iter().map(BlobHash::from).collect(),
                servers: servers.into_iter().collect(),
                description,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn announcement_round_trip(body in arb_announcement(), signer in 1u8..=254) {
        round_trip(body, &keys(signer))?;
    }

    #[test]
    fn state_round_trip(body in arb_state(), signer in 1u8..=254) {
        round_trip(body, &keys(signer))?;
    }

    #[test]
    fn commit_round_trip(body in arb_commit(), signer in 1u8..=254) {
        round_trip(body, &keys(signer))?;
    }

    #[test]
    fn blossom_auth_round_trip(body in arb_auth(), signer in 1u8..=254) {
        round_trip(body.clone(), &keys(signer))?;
        let signed = Signed::sign(body.clone(), &keys(signer), t(1)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let header = signed.to_authorization_header();
        let back = Signed::<BlossomAuth>::from_authorization_header(&header).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.body(), &body);
    }

    /// Any JSON at all: parsing never panics, and what parses re-serializes to an equal body.
    #[test]
    fn arbitrary_json_never_panics(json in "\\PC{0,300}") {
        let _ = Signed::<RepoState>::from_json(&json);
        let _ = Signed::<RepoAnnouncement>::from_json(&json);
        let _ = Signed::<CommitEvent>::from_json(&json);
        let _ = Signed::<BlossomAuth>::from_json(&json);
    }
}

// ---------------------------------------------------------------------------------------------
// Rejections: correctly signed, badly formed
// ---------------------------------------------------------------------------------------------

#[test]
fn state_parser_rejects_malformed_events() {
    let k = keys(1);
    let id = hex32(1);
    type Case = (&'static str, Event, fn(&ParseError) -> bool);
    let cases: Vec<Case> = vec![
        (
            "missing d",
            sign_raw(&k, kinds::REPO_STATE, &[&["refs/heads/main", &id]], ""),
            |e| matches!(e, ParseError::MissingTag { tag: "d" }),
        ),
        (
            "repeated d",
            sign_raw(&k, kinds::REPO_STATE, &[&["d", "a"], &["d", "b"]], ""),
            |e| matches!(e, ParseError::RepeatedTag { tag } if tag == "d"),
        ),
        (
            "d with two values",
            sign_raw(&k, kinds::REPO_STATE, &[&["d", "a", "b"]], ""),
            |e| {
                matches!(
                    e,
                    ParseError::TagArity {
                        expected: 1,
                        found: 2,
                        ..
                    }
                )
            },
        ),
        (
            "a note on a ref the state lacks",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[&["d", "a"], &["note", "refs/tags/v1", "release"]],
                "",
            ),
            |e| matches!(e, ParseError::InvalidValue { .. }),
        ),
        (
            "a note on a branch",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[
                    &["d", "a"],
                    &["refs/heads/main", &id],
                    &["note", "refs/heads/main", "x"],
                ],
                "",
            ),
            |e| matches!(e, ParseError::InvalidValue { .. }),
        ),
        (
            "a note that drives the terminal",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[
                    &["d", "a"],
                    &["refs/tags/v1", &id],
                    &["note", "refs/tags/v1", "\u{1b}[2Jhi"],
                ],
                "",
            ),
            |e| matches!(e, ParseError::InvalidValue { .. }),
        ),
        (
            "a note without its message",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[
                    &["d", "a"],
                    &["refs/tags/v1", &id],
                    &["note", "refs/tags/v1"],
                ],
                "",
            ),
            |e| matches!(e, ParseError::InvalidValue { .. }),
        ),
        (
            "sealed refs without an epoch",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[&["d", "a"], &["sealed-refs", "QUJD"]],
                "",
            ),
            |e| matches!(e, ParseError::InvalidValue { .. }),
        ),
        (
            "sealed refs with a signed epoch",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[&["d", "a"], &["sealed-refs", "+1", "QUJD"]],
                "",
            ),
            |e| matches!(e, ParseError::InvalidValue { .. }),
        ),
        (
            "sealed refs with an epoch past u32",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[&["d", "a"], &["sealed-refs", "4294967296", "QUJD"]],
                "",
            ),
            |e| matches!(e, ParseError::InvalidValue { .. }),
        ),
        (
            "sealed refs not base64",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[&["d", "a"], &["sealed-refs", "0", "not base64!"]],
                "",
            ),
            |e| matches!(e, ParseError::InvalidValue { .. }),
        ),
        (
            "sealed refs empty",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[&["d", "a"], &["sealed-refs", "0", ""]],
                "",
            ),
            |e| matches!(e, ParseError::InvalidValue { .. }),
        ),
        (
            "sealed refs twice",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[
                    &["d", "a"],
                    &["sealed-refs", "0", "QUJD"],
                    &["sealed-refs", "1", "QUJD"],
                ],
                "",
            ),
            |e| matches!(e, ParseError::RepeatedTag { .. }),
        ),
        (
            "key envelope not base64",
            sign_raw(&k, kinds::REPO_STATE, &[&["d", "a"]], "not base64!"),
            |e| matches!(e, ParseError::InvalidContent { .. }),
        ),
        (
            "key envelope with non-canonical padding",
            sign_raw(&k, kinds::REPO_STATE, &[&["d", "a"]], "QQ"),
            |e| matches!(e, ParseError::InvalidContent { .. }),
        ),
        (
            "bad repo id",
            sign_raw(&k, kinds::REPO_STATE, &[&["d", "../etc"]], ""),
            |e| matches!(e, ParseError::InvalidRepoId(_)),
        ),
        (
            "malformed ref",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[&["d", "a"], &["refs/heads/a..b", &id]],
                "",
            ),
            |e| matches!(e, ParseError::InvalidRefName(_)),
        ),
        (
            "ref without value",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[&["d", "a"], &["refs/heads/main"]],
                "",
            ),
            |e| {
                matches!(
                    e,
                    ParseError::TagArity {
                        expected: 1,
                        found: 0,
                        ..
                    }
                )
            },
        ),
        (
            "bad hex",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[&["d", "a"], &["refs/heads/main", "xyz"]],
                "",
            ),
            |e| matches!(e, ParseError::InvalidId { .. }),
        ),
        (
            "uppercase hex",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[&["d", "a"], &["refs/heads/main", &id.to_uppercase()]],
                "",
            ),
            |e| matches!(e, ParseError::InvalidId { .. }),
        ),
        (
            "repeated ref",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[
                    &["d", "a"],
                    &["refs/heads/main", &id],
                    &["refs/heads/main", &id],
                ],
                "",
            ),
            |e| matches!(e, ParseError::RepeatedTag { .. }),
        ),
        (
            "prev not an event id",
            sign_raw(&k, kinds::REPO_STATE, &[&["d", "a"], &["prev", "abc"]], ""),
            |e| matches!(e, ParseError::InvalidId { .. }),
        ),
        (
            "repeated prev",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[&["d", "a"], &["prev", &id], &["prev", &id]],
                "",
            ),
            |e| matches!(e, ParseError::RepeatedTag { .. }),
        ),
        (
            "HEAD not symbolic",
            sign_raw(&k, kinds::REPO_STATE, &[&["d", "a"], &["HEAD", &id]], ""),
            |e| matches!(e, ParseError::InvalidValue { .. }),
        ),
        (
            "HEAD at a tag",
            sign_raw(
                &k,
                kinds::REPO_STATE,
                &[&["d", "a"], &["HEAD", "ref: refs/tags/v1"]],
                "",
            ),
            |e| matches!(e, ParseError::InvalidValue { .. }),
        ),
        (
            "wrong kind",
            sign_raw(&k, kinds::REPO_ANNOUNCEMENT, &[&["d", "a"]], ""),
            |e| {
                matches!(
                    e,
                    ParseError::WrongKind {
                        expected: 30718,
                        found: 30717
                    }
                )
            },
        ),
    ];
    for (what, event, expected) in cases {
        match Signed::<RepoState>::from_event(event) {
            Err(e) => assert!(expected(&e), "{what}: unexpected error {e:?}"),
            Ok(s) => panic!("{what}: accepted {s:?}"),
        }
    }
}

#[test]
fn announcement_parser_rejects_malformed_events() {
    let k = keys(1);
    let pk = keys(2).public_key().to_hex();
    let not_on_curve = "eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34";
    let coord = format!("30717:{pk}:base");
    let cases: Vec<(&str, Vec<Vec<String>>)> = vec![
        ("missing visibility", vec![vec!["d".into(), "a".into()]]),
        (
            "unknown visibility",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "secret".into()],
            ],
        ),
        (
            "repeated name",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["name".into(), "x".into()],
                vec!["name".into(), "y".into()],
            ],
        ),
        (
            "size with a leading zero",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["size".into(), "0123".into()],
            ],
        ),
        (
            "negative size",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["size".into(), "-1".into()],
            ],
        ),
        (
            "size past u64",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["size".into(), "18446744073709551616".into()],
            ],
        ),
        (
            "repeated size",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["size".into(), "1".into()],
                vec!["size".into(), "2".into()],
            ],
        ),
        (
            "maintainer not on curve",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["maintainers".into(), not_on_curve.into()],
            ],
        ),
        (
            "duplicate maintainer",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["maintainers".into(), pk.clone(), pk.clone()],
            ],
        ),
        (
            "relay not ws",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["relays".into(), "https://example.org".into()],
            ],
        ),
        (
            "blossom not http",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["blossom".into(), "ftp://example.org".into()],
            ],
        ),
        (
            "fork without commit",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["fork".into(), coord.clone()],
            ],
        ),
        (
            "fork of a non-repository",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["fork".into(), format!("1:{pk}:base"), hex32(9)],
            ],
        ),
        (
            "fork with bad commit",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["fork".into(), coord, "00".into()],
            ],
        ),
        (
            "an upper-case topic",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["t".into(), "LLM".into()],
            ],
        ),
        (
            "a topic with a space",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["t".into(), "large model".into()],
            ],
        ),
        (
            "a repeated topic",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["t".into(), "llm".into()],
                vec!["t".into(), "llm".into()],
            ],
        ),
        (
            "a topic tag with two values",
            vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
                vec!["t".into(), "llm".into(), "nlp".into()],
            ],
        ),
        ("33 topics", {
            let mut tags = vec![
                vec!["d".into(), "a".into()],
                vec!["visibility".into(), "public".into()],
            ];
            tags.extend((0..33).map(|i| vec!["t".into(), format!("topic{i}")]));
            tags
        }),
    ];
    for (what, tags) in cases {
        let tags: Vec<Vec<&str>> = tags
            .iter()
            .map(|t| t.iter().map(String::as_str).collect())
            .collect();
        let tags: Vec<&[&str]> = tags.iter().map(Vec::as_slice).collect();
        let event = sign_raw(&k, kinds::REPO_ANNOUNCEMENT, &tags, "");
        assert!(
            Signed::<RepoAnnouncement>::from_event(event).is_err(),
            "{what} was accepted"
        );
    }
}

#[test]
fn commit_parser_rejects_malformed_events() {
    let k = keys(1);
    let coord = format!("30717:{}:m", k.public_key().to_hex());
    let id = hex32(1);
    let a: &[&str] = &["a", &coord];
    let c: &[&str] = &["commit", &id];
    let p: &[&str] = &["parent", &id];
    let pack: &[&str] = &["pack", &id];
    let part_code: &[&str] = &["part", &id, "code"];
    let part_params: &[&str] = &["part", &id, "params"];
    let part_bad: &[&str] = &["part", &id, "Code!"];
    let part_bare: &[&str] = &["part", &id];
    let cases: Vec<(&str, Vec<&[&str]>, &str)> = vec![
        ("missing a", vec![c], ""),
        ("missing commit", vec![a], ""),
        ("two commits", vec![a, c, c], ""),
        ("duplicate parent", vec![a, c, p, p], ""),
        ("bad pack hash", vec![a, c, &["pack", "zz"]], ""),
        ("part of no pack", vec![a, c, part_code], ""),
        ("part without label", vec![a, c, pack, part_bare], ""),
        ("part with a bad label", vec![a, c, pack, part_bad], ""),
        (
            "two parts for one pack",
            vec![a, c, pack, part_code, part_params],
            "",
        ),
        ("empty encryption", vec![a, c, &["encryption", ""]], ""),
        ("content not base64", vec![a, c], "not base64!"),
        ("unpadded base64", vec![a, c], "YWJj" /* ok */),
    ];
    for (what, tags, content) in cases {
        let event = sign_raw(&k, kinds::COMMIT, &tags, content);
        let result = Signed::<CommitEvent>::from_event(event);
        if what == "unpadded base64" {
            assert!(result.is_ok(), "canonical base64 is accepted: {result:?}");
            let bad = sign_raw(&k, kinds::COMMIT, &tags, "YWI");
            assert!(
                Signed::<CommitEvent>::from_event(bad).is_err(),
                "unpadded base64 is rejected"
            );
        } else {
            assert!(result.is_err(), "{what} was accepted");
        }
    }
}

#[test]
fn tampered_json_is_rejected_as_invalid_not_misread() -> TestResult {
    let mut state = RepoState::new(repo_id("model"));
    state
        .refs
        .insert(RefName::branch("main")?, ObjectId::digest(b"c1"));
    let signed = Signed::sign(state, &keys(1), t(1_700_000_000))?;
    let json = signed.to_json();
    let tampered = json.replace(
        &ObjectId::digest(b"c1").to_string(),
        &ObjectId::digest(b"c2").to_string(),
    );
    assert_ne!(json, tampered);
    assert!(matches!(
        Signed::<RepoState>::from_json(&tampered),
        Err(ParseError::Verify(VerifyError::IdMismatch { .. }))
    ));
    assert!(matches!(
        Signed::<RepoState>::from_json("{}"),
        Err(ParseError::Json { .. })
    ));
    Ok(())
}

/// A signer that signs something other than what it was asked to.
struct LyingSigner(Keys);

impl Signer for LyingSigner {
    fn public_key(&self) -> PublicKey {
        self.0.public_key()
    }

    fn sign_event(&self, mut unsigned: UnsignedEvent) -> Result<Event, SignError> {
        unsigned.content.push('!');
        self.0.sign_event(unsigned)
    }
}

#[test]
fn signer_answers_are_checked() {
    let body = RepoState::new(repo_id("model"));
    let result = Signed::sign(body, &LyingSigner(keys(1)), t(1));
    assert!(matches!(result, Err(SignError::Mismatch)));
    // Trait objects and smart pointers work as signers.
    let boxed: Box<dyn Signer> = Box::new(keys(2));
    assert!(Signed::sign(RepoState::new(repo_id("m")), &boxed, t(1)).is_ok());
}

// ---------------------------------------------------------------------------------------------
// State resolution
// ---------------------------------------------------------------------------------------------

fn state_event(signer: &Keys, repo: &str, at: u64, commit: &[u8]) -> Result<Event, SignError> {
    let mut state = RepoState::new(repo_id(repo));
    state.refs.insert(
        RefName::branch("main").unwrap_or_else(|e| panic!("{e}")),
        ObjectId::digest(commit),
    );
    Ok(Signed::sign(state, signer, t(at))?.into_event())
}

#[test]
fn newest_state_by_owner_or_maintainer_wins() -> TestResult {
    let owner = keys(1);
    let maintainer = keys(2);
    let stranger = keys(3);
    let mut announcement = RepoAnnouncement::new(repo_id("model"), Visibility::Public);
    announcement.maintainers.push(maintainer.public_key());
    let announcement = Signed::sign(announcement, &owner, t(100))?;

    let old = state_event(&owner, "model", 200, b"old")?;
    let newest = state_event(&maintainer, "model", 300, b"new")?;
    let by_stranger = state_event(&stranger, "model", 400, b"evil")?;
    let other_repo = state_event(&owner, "other", 500, b"x")?;
    let mut forged = state_event(&owner, "model", 600, b"forged")?;
    forged.sig = Signature::from_byte_array([7; 64]);
    let not_a_state = sign_raw(&owner, kinds::COMMIT, &[], "");

    let resolution = announcement.resolve_state([
        old.clone(),
        newest.clone(),
        by_stranger.clone(),
        other_repo.clone(),
        forged.clone(),
        newest.clone(), // the same event from a second relay counts once
        not_a_state.clone(),
    ]);
    let current = resolution.current.ok_or("a state was chosen")?;
    assert_eq!(current.id(), newest.id);
    assert_eq!(current.body().head_commit(), None);
    assert_eq!(
        current.body().refs.values().next(),
        Some(&ObjectId::digest(b"new"))
    );

    let reasons: BTreeMap<EventId, IgnoreReason> = resolution
        .ignored
        .into_iter()
        .map(|i| (i.event, i.reason))
        .collect();
    assert_eq!(reasons.len(), 5);
    assert_eq!(reasons[&old.id], IgnoreReason::Superseded { by: newest.id });
    assert_eq!(
        reasons[&by_stranger.id],
        IgnoreReason::NotAuthorized {
            author: stranger.public_key()
        }
    );
    assert_eq!(
        reasons[&other_repo.id],
        IgnoreReason::OtherRepository {
            found: repo_id("other")
        }
    );
    assert!(matches!(
        reasons[&forged.id],
        IgnoreReason::Invalid(ParseError::Verify(VerifyError::BadSignature { .. }))
    ));
    assert!(matches!(
        reasons[&not_a_state.id],
        IgnoreReason::Invalid(ParseError::WrongKind { .. })
    ));
    Ok(())
}

#[test]
fn equal_times_resolve_to_the_lowest_id_in_any_order() -> TestResult {
    let owner = keys(1);
    let repo = RepoCoordinate::new(owner.public_key(), repo_id("model"));
    let events: Vec<Event> = (0u8..6)
        .map(|i| state_event(&owner, "model", 1000, &[i]))
        .collect::<Result<_, _>>()?;
    let lowest = events.iter().map(|e| e.id).min().ok_or("events")?;
    let mut reversed = events.clone();
    reversed.reverse();
    for order in [events, reversed] {
        let resolution = resolve_state(&repo, &[], order);
        assert_eq!(resolution.current.map(|s| s.id()), Some(lowest));
        assert_eq!(resolution.ignored.len(), 5);
        assert!(
            resolution
                .ignored
                .iter()
                .all(|i| i.reason == IgnoreReason::Superseded { by: lowest })
        );
    }
    // No valid state: nothing chosen, everything reported.
    let resolution = resolve_state(&repo, &[], [sign_raw(&owner, kinds::REPO_STATE, &[], "")]);
    assert!(resolution.current.is_none());
    assert_eq!(resolution.ignored.len(), 1);
    Ok(())
}

#[test]
fn the_owners_newest_announcement_names_the_maintainers() -> TestResult {
    let owner = keys(1);
    let (m1, m2, stranger) = (keys(2), keys(3), keys(4));
    let repo = RepoCoordinate::new(owner.public_key(), repo_id("model"));
    let announce = |signer: &Keys, id: &str, at: u64, maintainer: &Keys| {
        let mut a = RepoAnnouncement::new(repo_id(id), Visibility::Public);
        a.maintainers.push(maintainer.public_key());
        Signed::sign(a, signer, t(at)).map(Signed::into_event)
    };
    let old = announce(&owner, "model", 100, &m1)?;
    let new = announce(&owner, "model", 200, &m2)?;
    // Newer, but not the owner's, or not this repository's, or not valid: none counts.
    let by_stranger = announce(&stranger, "model", 300, &stranger)?;
    let other_repo = announce(&owner, "other", 400, &stranger)?;
    let (by_stranger_id, other_repo_id) = (by_stranger.id, other_repo.id);
    let mut forged = announce(&owner, "model", 500, &stranger)?;
    forged.sig = Signature::from_byte_array([7; 64]);
    let not_an_announcement = state_event(&owner, "model", 600, b"x")?;
    let events = [
        old.clone(),
        by_stranger,
        new.clone(),
        other_repo,
        forged,
        not_an_announcement,
    ];
    let chosen = newest_announcement(&repo, events.clone()).ok_or("an announcement")?;
    assert_eq!(chosen.id(), new.id);
    assert_eq!(chosen.body().maintainers, vec![m2.public_key()]);
    // The order the relays answer in does not matter.
    let mut reversed = events.to_vec();
    reversed.reverse();
    assert_eq!(
        newest_announcement(&repo, reversed).map(|a| a.id()),
        Some(new.id)
    );
    // Equal times: the lowest id, as for states.
    let twins = [
        announce(&owner, "model", 700, &m1)?,
        announce(&owner, "model", 700, &m2)?,
    ];
    let lowest = twins.iter().map(|e| e.id).min().ok_or("twins")?;
    assert_eq!(
        newest_announcement(&repo, twins.clone()).map(|a| a.id()),
        Some(lowest)
    );
    // Every repository's at once: the same choice for each, the forged one skipped.
    let mut all = events.to_vec();
    all.extend(twins);
    let mut chosen: Vec<(String, _)> = agigit_event::newest_announcements(all)
        .into_iter()
        .map(|a| (a.body().coordinate(a.author()).to_string(), a.id()))
        .collect();
    chosen.sort();
    let mut expected = vec![
        (repo.to_string(), lowest),
        (
            RepoCoordinate::new(stranger.public_key(), repo_id("model")).to_string(),
            by_stranger_id,
        ),
        (
            RepoCoordinate::new(owner.public_key(), repo_id("other")).to_string(),
            other_repo_id,
        ),
    ];
    expected.sort();
    assert_eq!(chosen, expected);
    assert!(newest_announcement(&repo, [old.clone()]).is_some());
    assert!(
        newest_announcement(
            &RepoCoordinate::new(m1.public_key(), repo_id("model")),
            [old]
        )
        .is_none()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Blossom authorization
// ---------------------------------------------------------------------------------------------

#[test]
fn blossom_authorization_checks() -> TestResult {
    let uploader = keys(4);
    let blob = BlobHash::digest(b"shard");
    let other = BlobHash::digest(b"other");
    let token = BlossomAuth::new(Verb::Upload, t(2_000))
        .with_blob(blob)
        .with_server("Blobs.Example.org")
        .with_description("Upload shard");
    let signed = Signed::sign(token, &uploader, t(1_000))?;
    let header = signed.to_authorization_header();
    assert!(header.starts_with("Nostr "));
    let signed = Signed::<BlossomAuth>::from_authorization_header(&header)?;

    let ok = AuthRequest {
        verb: Verb::Upload,
        blob: Some(&blob),
        server: "blobs.example.org",
        now: t(1_500),
    };
    signed.authorize(&ok)?;
    let check = |request: AuthRequest<'_>| signed.authorize(&request);
    assert!(matches!(
        check(AuthRequest {
            now: t(2_000),
            ..ok
        }),
        Err(AuthError::Expired { .. })
    ));
    assert!(matches!(
        check(AuthRequest { now: t(900), ..ok }),
        Err(AuthError::FromTheFuture { .. })
    ));
    assert!(
        check(AuthRequest {
            now: t(1_000 - 60),
            ..ok
        })
        .is_ok(),
        "60 s of clock skew is allowed"
    );
    assert!(matches!(
        check(AuthRequest {
            verb: Verb::Delete,
            ..ok
        }),
        Err(AuthError::WrongVerb { .. })
    ));
    assert!(matches!(
        check(AuthRequest {
            blob: Some(&other),
            ..ok
        }),
        Err(AuthError::BlobNotCovered { .. })
    ));
    assert!(matches!(
        check(AuthRequest { blob: None, ..ok }),
        Err(AuthError::MissingBlob)
    ));
    assert!(matches!(
        check(AuthRequest {
            server: "evil.example",
            ..ok
        }),
        Err(AuthError::WrongServer { .. })
    ));

    // An upload token must name the blob; a get token without x covers any blob.
    let any_upload = Signed::sign(
        BlossomAuth::new(Verb::Upload, t(2_000)),
        &uploader,
        t(1_000),
    )?;
    assert!(matches!(
        any_upload.authorize(&ok),
        Err(AuthError::BlobNotCovered { .. })
    ));
    let any_get = Signed::sign(BlossomAuth::new(Verb::Get, t(2_000)), &uploader, t(1_000))?;
    any_get.authorize(&AuthRequest {
        verb: Verb::Get,
        ..ok
    })?;

    assert!(matches!(
        Signed::<BlossomAuth>::from_authorization_header("Bearer x"),
        Err(AuthError::Scheme)
    ));
    assert!(matches!(
        Signed::<BlossomAuth>::from_authorization_header("Nostr !!!"),
        Err(AuthError::Invalid(_))
    ));
    // BUD-11 writes base64url without padding; clients also send base64, padded or not: all
    // four read as the same token.
    {
        use base64::Engine as _;
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let json = signed.to_json();
        assert_eq!(header, format!("Nostr {}", URL_SAFE_NO_PAD.encode(&json)));
        for encoded in [
            URL_SAFE_NO_PAD.encode(&json),
            URL_SAFE.encode(&json),
            STANDARD.encode(&json),
            STANDARD_NO_PAD.encode(&json),
        ] {
            let back =
                Signed::<BlossomAuth>::from_authorization_header(&format!("Nostr {encoded}"))?;
            assert_eq!(back.event().id, signed.event().id, "{encoded}");
        }
        // Both alphabets in one value: not base64 of either kind.
        assert!(matches!(
            Signed::<BlossomAuth>::from_authorization_header("Nostr ab+c-def"),
            Err(AuthError::Invalid(_))
        ));
    }
    let bad_expiration = sign_raw(
        &uploader,
        kinds::BLOSSOM_AUTH,
        &[&["t", "get"], &["expiration", "+5"]],
        "",
    );
    assert!(Signed::<BlossomAuth>::from_event(bad_expiration).is_err());
    let missing_t = sign_raw(&uploader, kinds::BLOSSOM_AUTH, &[&["expiration", "5"]], "");
    assert!(matches!(
        Signed::<BlossomAuth>::from_event(missing_t),
        Err(ParseError::MissingTag { tag: "t" })
    ));
    Ok(())
}

#[test]
fn parents_keep_their_order() -> TestResult {
    // Parents keep their order (first parent first), as git requires.
    let owner = keys(1);
    let parents = vec![ObjectId::digest(b"p2"), ObjectId::digest(b"p1")];
    let body = CommitEvent {
        repo: RepoCoordinate::new(owner.public_key(), repo_id("m")),
        commit: ObjectId::digest(b"c"),
        parents: parents.clone(),
        packs: vec![],
        pack_parts: BTreeMap::new(),
        encryption: None,
        payload: b"canonical commit bytes".to_vec(),
    };
    let parsed = Signed::<CommitEvent>::from_json(Signed::sign(body, &owner, t(5))?.to_json())?;
    assert_eq!(parsed.body().parents, parents);
    Ok(())
}

#[test]
fn bodies_that_would_not_read_back_are_not_signed() -> TestResult {
    let owner = keys(1);
    let mut announcement = RepoAnnouncement::new(repo_id("m"), Visibility::Public);
    announcement.maintainers = vec![keys(2).public_key(), keys(2).public_key()];
    assert!(matches!(
        Signed::sign(announcement, &owner, t(1)),
        Err(SignError::InvalidBody(ParseError::DuplicateValue { .. }))
    ));

    // Server names are compared in lowercase; a body holding uppercase would read back changed.
    let mut token = BlossomAuth::new(Verb::Get, t(10));
    token.servers.push("Example.ORG".to_owned());
    assert!(matches!(
        Signed::sign(token, &owner, t(1)),
        Err(SignError::InvalidBody(_))
    ));
    Ok(())
}

#[test]
fn list_repeats_are_found_after_normalization() {
    // Two spellings of one relay are one relay.
    let tags: &[&[&str]] = &[
        &["d", "m"],
        &["visibility", "public"],
        &[
            "relays",
            "wss://Relay.example.org",
            "wss://relay.example.org",
        ],
    ];
    let event = sign_raw(&keys(1), kinds::REPO_ANNOUNCEMENT, tags, "");
    assert!(matches!(
        Signed::<RepoAnnouncement>::from_event(event),
        Err(ParseError::DuplicateValue { .. })
    ));
}

#[test]
fn urls_that_do_not_read_back_are_rejected() {
    // Found by the `event_json` fuzz target: the URL parser normalizes this relay URL into a form
    // it then refuses, so an announcement holding it would not survive a round trip.
    for (tag, value) in [
        ("relays", "ws:R/127.0558c792ac4cfc2412f8f39888a72://10X"),
        ("blossom", "ftp://not-http.example"),
    ] {
        let tags: &[&[&str]] = &[&["d", "m"], &["visibility", "public"], &[tag, value]];
        let event = sign_raw(&keys(1), kinds::REPO_ANNOUNCEMENT, tags, "");
        assert!(
            matches!(
                Signed::<RepoAnnouncement>::from_event(event),
                Err(ParseError::InvalidValue { .. })
            ),
            "{tag} {value}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Market events (kinds 1721, 1722)
// ---------------------------------------------------------------------------------------------

fn arb_pull_order() -> impl Strategy<Value = agigit_event::market::PullOrderEvent> {
    use agigit_event::market::{DefaultRule, PullOrderEvent};
    (
        (arb_coordinate(), any::<[u8; 32]>()),
        prop::collection::btree_set(1u8..=254, 1..6),
        (any::<u64>(), any::<u64>(), any::<u64>()),
        prop::option::of(1u8..=254),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        ),
        any::<bool>(),
        "\\PC{0,40}",
    )
        .prop_map(
            |(
                (repo, model),
                relays,
                (price, tip, bond),
                arbiter,
                (take_by, f, d, c, a),
                pay,
                note,
            )| {
                PullOrderEvent {
                    repo,
                    model: model.into(),
                    relays: relays.into_iter().map(|k| keys(k).public_key()).collect(),
                    price,
                    tip,
                    bond,
                    arbiter: arbiter.map(|k| keys(k).public_key()),
                    take_by,
                    fund_within: f,
                    deliver_within: d,
                    confirm_within: c,
                    arbitrate_within: a,
                    default_rule: if pay {
                        DefaultRule::Pay
                    } else {
                        DefaultRule::Refund
                    },
                    note,
                }
            },
        )
}

fn arb_order_action() -> impl Strategy<Value = agigit_event::market::OrderAction> {
    use agigit_event::market::{DefaultRule, OrderAction, OrderVerb};
    let verb = prop_oneof![
        (1u64..).prop_map(OrderVerb::Raise),
        Just(OrderVerb::Cancel),
        Just(OrderVerb::Take),
        Just(OrderVerb::Fund),
        Just(OrderVerb::Deliver),
        Just(OrderVerb::Confirm),
        Just(OrderVerb::Dispute),
        Just(OrderVerb::Rule(DefaultRule::Pay)),
        Just(OrderVerb::Rule(DefaultRule::Refund)),
        any::<[u8; 32]>().prop_map(OrderVerb::Challenge),
        prop::collection::vec(
            (
                prop::collection::vec(any::<u8>(), 1..=agigit_event::market::LEAF_BYTES),
                prop::collection::vec(any::<[u8; 32]>(), 0..=agigit_event::market::MAX_PATH),
            )
                .prop_map(|(bytes, path)| agigit_event::market::Opening { bytes, path }),
            1..=agigit_event::market::MAX_CHALLENGES,
        )
        .prop_map(OrderVerb::Answer),
    ];
    (
        any::<[u8; 32]>(),
        verb,
        "[!-~]{1,80}",
        prop::collection::vec(any::<[u8; 64]>(), 0..4),
        "\\PC{0,40}",
    )
        .prop_map(|(id, verb, token, sigs, note)| {
            let token = matches!(verb, OrderVerb::Fund).then_some(token);
            let release = if matches!(verb, OrderVerb::Confirm | OrderVerb::Rule(_)) {
                sigs.iter()
                    .map(|s| s.iter().map(|b| format!("{b:02x}")).collect())
                    .collect()
            } else {
                Vec::new()
            };
            OrderAction {
                order: EventId::from_byte_array(id),
                verb,
                token,
                release,
                note,
            }
        })
}

fn arb_storage_order() -> impl Strategy<Value = agigit_event::market::StorageOrderEvent> {
    use agigit_event::market::{DefaultRule, MAX_SHARD_BYTES, StorageOrderEvent, StoredShard};
    (
        arb_coordinate(),
        prop::collection::btree_map(
            any::<[u8; 32]>(),
            (1..=MAX_SHARD_BYTES, any::<[u8; 32]>()),
            1..8,
        ),
        prop::collection::btree_set(1u8..=254, 1..6),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        any::<bool>(),
        "\\PC{0,40}",
    )
        .prop_map(
            |(
                repo,
                shards,
                servers,
                (price, periods, period, bond),
                (take_by, fund_within, answer_within, challenges),
                pay,
                note,
            )| StorageOrderEvent {
                repo,
                shards: shards
                    .into_iter()
                    .map(|(blob, (size, root))| StoredShard {
                        blob: blob.into(),
                        size,
                        root,
                    })
                    .collect(),
                servers: servers.into_iter().map(|k| keys(k).public_key()).collect(),
                price,
                periods,
                period,
                bond,
                take_by,
                fund_within,
                answer_within,
                challenges,
                unaudited: if pay {
                    DefaultRule::Pay
                } else {
                    DefaultRule::Refund
                },
                note,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn storage_order_round_trip(body in arb_storage_order(), signer in 1u8..=254) {
        round_trip(body, &keys(signer))?;
    }

    #[test]
    fn pull_order_round_trip(body in arb_pull_order(), signer in 1u8..=254) {
        round_trip(body, &keys(signer))?;
    }

    #[test]
    fn order_action_round_trip(body in arb_order_action(), signer in 1u8..=254) {
        round_trip(body, &keys(signer))?;
    }
}

#[test]
fn market_parsers_reject_malformed_events() {
    use agigit_event::market::{OrderAction, PullOrderEvent};
    let k = keys(1);
    let relay = keys(2).public_key().to_hex();
    let coord = format!("30717:{}:model", keys(3).public_key().to_hex());
    let model = hex32(7);
    let order_tags = |drop: &str, extra: &[&[&str]]| -> Vec<Vec<String>> {
        let mut tags: Vec<Vec<String>> = [
            vec!["a", coord.as_str()],
            vec!["model", model.as_str()],
            vec!["p", relay.as_str()],
            vec!["price", "1000"],
            vec!["take_by", "2000000000"],
            vec!["fund_within", "600"],
            vec!["deliver_within", "600"],
            vec!["confirm_within", "600"],
            vec!["arbitrate_within", "600"],
            vec!["default", "refund"],
        ]
        .into_iter()
        .filter(|t| t[0] != drop)
        .map(|t| t.into_iter().map(str::to_owned).collect())
        .collect();
        tags.extend(
            extra
                .iter()
                .map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
        );
        tags
    };
    let parse_order = |tags: Vec<Vec<String>>, content: &str| {
        let refs: Vec<Vec<&str>> = tags
            .iter()
            .map(|t| t.iter().map(String::as_str).collect())
            .collect();
        let slices: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
        Signed::<PullOrderEvent>::from_event(sign_raw(&k, kinds::PULL_ORDER, &slices, content))
    };
    assert!(parse_order(order_tags("", &[]), "").is_ok());
    let long = "x".repeat(agigit_event::market::MAX_NOTE + 1);
    for (what, tags, content) in [
        ("no relay", order_tags("p", &[]), ""),
        ("no price", order_tags("price", &[]), ""),
        ("no default", order_tags("default", &[]), ""),
        ("no funding window", order_tags("fund_within", &[]), ""),
        (
            "a relay twice",
            order_tags("", &[&["p", relay.as_str()]]),
            "",
        ),
        (
            "a price with a sign",
            order_tags("price", &[&["price", "+5"]]),
            "",
        ),
        (
            "a price with a leading zero",
            order_tags("price", &[&["price", "05"]]),
            "",
        ),
        (
            "a price past u64",
            order_tags("price", &[&["price", "18446744073709551616"]]),
            "",
        ),
        ("two prices", order_tags("", &[&["price", "5"]]), ""),
        (
            "an unknown default",
            order_tags("default", &[&["default", "coinflip"]]),
            "",
        ),
        (
            "an arbiter that is no key",
            order_tags("", &[&["arbiter", "zz"]]),
            "",
        ),
        (
            "a model that is no id",
            order_tags("model", &[&["model", "ABC"]]),
            "",
        ),
        ("a note too long", order_tags("", &[]), long.as_str()),
    ] {
        assert!(parse_order(tags, content).is_err(), "{what}");
    }
    let order_id = hex32(9);
    let parse_action = |tags: &[&[&str]], content: &str| {
        Signed::<OrderAction>::from_event(sign_raw(&k, kinds::ORDER_ACTION, tags, content))
    };
    assert!(parse_action(&[&["e", &order_id], &["action", "take"]], "").is_ok());
    assert!(
        parse_action(
            &[&["e", &order_id], &["action", "raise"], &["amount", "5"]],
            ""
        )
        .is_ok()
    );
    for (what, tags) in [
        ("no order", vec![&["action", "take"][..]]),
        (
            "an upper-case id",
            vec![&["e", "AB"][..], &["action", "take"][..]],
        ),
        (
            "an unknown action",
            vec![&["e", order_id.as_str()][..], &["action", "steal"][..]],
        ),
        (
            "a raise of nothing",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "raise"][..],
                &["amount", "0"][..],
            ],
        ),
        (
            "a raise without amount",
            vec![&["e", order_id.as_str()][..], &["action", "raise"][..]],
        ),
        (
            "a take with an amount",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "take"][..],
                &["amount", "5"][..],
            ],
        ),
        (
            "a rule without ruling",
            vec![&["e", order_id.as_str()][..], &["action", "rule"][..]],
        ),
        (
            "two actions",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "take"][..],
                &["action", "cancel"][..],
            ],
        ),
    ] {
        assert!(parse_action(&tags, "").is_err(), "{what}");
    }
    // An order event is not an action, nor the other way round.
    let order = sign_raw(&k, kinds::PULL_ORDER, &[], "");
    assert!(Signed::<OrderAction>::from_event(order).is_err());

    // Challenges and answers.
    let nonce = hex32(4);
    let leaf = "AAEC"; // three bytes, base64
    let path = hex32(5);
    assert!(
        parse_action(
            &[
                &["e", &order_id],
                &["action", "challenge"],
                &["nonce", &nonce]
            ],
            ""
        )
        .is_ok()
    );
    assert!(
        parse_action(
            &[
                &["e", &order_id],
                &["action", "answer"],
                &["leaf", leaf, &path],
                &["leaf", leaf]
            ],
            ""
        )
        .is_ok()
    );
    let big = "A".repeat(1368 + 4); // more than 1024 bytes of base64
    let sig = "ab".repeat(64);
    let huge_token = "x".repeat(agigit_event::market::MAX_TOKEN + 1);
    assert!(
        parse_action(
            &[
                &["e", &order_id],
                &["action", "fund"],
                &["token", "cashuBo2FteBtodHRwOi8v"]
            ],
            ""
        )
        .is_ok()
    );
    assert!(
        parse_action(
            &[
                &["e", &order_id],
                &["action", "confirm"],
                &["release", &sig, &sig]
            ],
            ""
        )
        .is_ok()
    );
    let nine: Vec<[&str; 2]> = (0..9).map(|_| ["leaf", leaf]).collect();
    let head = [["e", order_id.as_str()], ["action", "answer"]];
    let mut nine_leaves: Vec<&[&str]> = head.iter().map(|t| &t[..]).collect();
    nine_leaves.extend(nine.iter().map(|t| &t[..]));
    let long_path: Vec<&str> = std::iter::once("leaf")
        .chain(std::iter::once(leaf))
        .chain(std::iter::repeat_n(path.as_str(), 23))
        .collect();
    for (what, tags) in [
        (
            "a challenge without nonce",
            vec![&["e", order_id.as_str()][..], &["action", "challenge"][..]],
        ),
        (
            "a nonce that is no hash",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "challenge"][..],
                &["nonce", "00ff"][..],
            ],
        ),
        (
            "a take with a nonce",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "take"][..],
                &["nonce", nonce.as_str()][..],
            ],
        ),
        (
            "an answer without leaves",
            vec![&["e", order_id.as_str()][..], &["action", "answer"][..]],
        ),
        (
            "a leaf that is no base64",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "answer"][..],
                &["leaf", "!!!!"][..],
            ],
        ),
        (
            "an empty leaf",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "answer"][..],
                &["leaf", ""][..],
            ],
        ),
        (
            "a leaf longer than 1024 bytes",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "answer"][..],
                &["leaf", big.as_str()][..],
            ],
        ),
        (
            "a path hash that is no hash",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "answer"][..],
                &["leaf", leaf, "12"][..],
            ],
        ),
        (
            "a path of 23 hashes",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "answer"][..],
                long_path.as_slice(),
            ],
        ),
        ("nine leaves", nine_leaves.clone()),
        (
            "a token on a take",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "take"][..],
                &["token", "cashuBabc"][..],
            ],
        ),
        (
            "a token with a space",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "fund"][..],
                &["token", "cashuB abc"][..],
            ],
        ),
        (
            "a release on a deliver",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "deliver"][..],
                &["release", sig.as_str()][..],
            ],
        ),
        (
            "a release that is no signature",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "confirm"][..],
                &["release", "abcd"][..],
            ],
        ),
        (
            "an empty release",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "confirm"][..],
                &["release"][..],
            ],
        ),
        (
            "a token too long",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "fund"][..],
                &["token", huge_token.as_str()][..],
            ],
        ),
        (
            "a challenge with a leaf",
            vec![
                &["e", order_id.as_str()][..],
                &["action", "challenge"][..],
                &["nonce", nonce.as_str()][..],
                &["leaf", leaf][..],
            ],
        ),
    ] {
        assert!(parse_action(&tags, "").is_err(), "{what}");
    }
}

#[test]
fn storage_order_parser_rejects_malformed_events() {
    use agigit_event::market::StorageOrderEvent;
    let k = keys(1);
    let server = keys(2).public_key().to_hex();
    let coord = format!("30717:{}:model", keys(3).public_key().to_hex());
    let (blob, root, blob2) = (hex32(7), hex32(8), hex32(6));
    let base: Vec<Vec<String>> = [
        vec!["a", coord.as_str()],
        vec!["shard", blob.as_str(), "3000", root.as_str()],
        vec!["p", server.as_str()],
        vec!["price", "100"],
        vec!["periods", "3"],
        vec!["period", "600"],
        vec!["take_by", "2000000000"],
        vec!["fund_within", "60"],
        vec!["answer_within", "60"],
        vec!["challenges", "4"],
        vec!["unaudited", "refund"],
    ]
    .into_iter()
    .map(|t| t.into_iter().map(str::to_owned).collect())
    .collect();
    let with = |drop: &str, extra: &[&[&str]]| -> Vec<Vec<String>> {
        let mut tags: Vec<Vec<String>> = base.iter().filter(|t| t[0] != drop).cloned().collect();
        tags.extend(
            extra
                .iter()
                .map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
        );
        tags
    };
    let parse = |tags: Vec<Vec<String>>| {
        let refs: Vec<Vec<&str>> = tags
            .iter()
            .map(|t| t.iter().map(String::as_str).collect())
            .collect();
        let slices: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
        Signed::<StorageOrderEvent>::from_event(sign_raw(&k, kinds::STORAGE_ORDER, &slices, ""))
    };
    assert!(parse(with("", &[])).is_ok());
    assert!(parse(with("", &[&["shard", &blob2, "1", &root]])).is_ok());
    let too_big = (agigit_event::market::MAX_SHARD_BYTES + 1).to_string();
    for (what, tags) in [
        ("no shard", with("shard", &[])),
        ("no server", with("p", &[])),
        ("no periods", with("periods", &[])),
        ("no unaudited rule", with("unaudited", &[])),
        ("a shard twice", with("", &[&["shard", &blob, "10", &root]])),
        (
            "a shard of 0 bytes",
            with("shard", &[&["shard", &blob, "0", &root]]),
        ),
        (
            "a shard past 4 GiB",
            with("shard", &[&["shard", &blob, &too_big, &root]]),
        ),
        (
            "a shard without root",
            with("shard", &[&["shard", &blob, "10"]]),
        ),
        (
            "a root that is no hash",
            with("shard", &[&["shard", &blob, "10", "xyz"]]),
        ),
        (
            "an unknown rule",
            with("unaudited", &[&["unaudited", "maybe"]]),
        ),
    ] {
        assert!(parse(tags).is_err(), "{what}");
    }
    // 1025 shards: refused before the rest is read.
    let many: Vec<Vec<String>> = (0..=1024u32)
        .map(|i| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.to_le_bytes());
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            vec!["shard".into(), hex, "1".into(), root.clone()]
        })
        .collect();
    let mut tags = with("shard", &[]);
    tags.extend(many);
    assert!(parse(tags).is_err(), "1025 shards");
}

// ---------------------------------------------------------------------------------------------
// Evaluation receipts
// ---------------------------------------------------------------------------------------------

fn arb_receipt() -> impl Strategy<Value = agigit_event::EvalReceipt> {
    (
        arb_coordinate(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        (
            0.0f64..64.0,
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        ),
        any::<[u8; 32]>(),
        "[a-z0-9_.-]{1,64}",
        "[ -~]{1,64}",
        ("\\PC{0,200}", prop::option::of(any::<[u8; 32]>())),
    )
        .prop_map(
            |(
                repo,
                commit,
                data,
                (value, bytes, tokens, documents, context),
                losses,
                model,
                software,
                (note, blob),
            )| {
                agigit_event::EvalReceipt {
                    repo,
                    commit: commit.into(),
                    data: data.into(),
                    metric: "bits-per-byte".into(),
                    value,
                    bytes,
                    tokens,
                    documents,
                    context,
                    losses,
                    model,
                    software,
                    blob: blob.map(BlobHash::from_bytes),
                    note,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn receipt_round_trip(body in arb_receipt(), signer in 1u8..=254) {
        round_trip(body, &keys(signer))?;
    }

    #[test]
    fn arbitrary_json_never_panics_as_a_receipt(json in "\\PC{0,300}") {
        let _ = Signed::<agigit_event::EvalReceipt>::from_json(&json);
    }
}

/// A receipt's tags, with `edit` applied: `None` drops the tag, `Some` replaces its value.
fn receipt_tags(edit: (&str, Option<&str>)) -> Vec<Vec<String>> {
    let coordinate = RepoCoordinate::new(
        keys(3).public_key(),
        RepoId::new("model").unwrap_or_else(|e| panic!("{e}")),
    );
    let base = [
        ("a", coordinate.to_string()),
        ("commit", "11".repeat(32)),
        ("data", "22".repeat(32)),
        ("metric", "bits-per-byte".to_owned()),
        ("value", "1.25".to_owned()),
        ("bytes", "128".to_owned()),
        ("tokens", "128".to_owned()),
        ("documents", "2".to_owned()),
        ("context", "512".to_owned()),
        ("losses", "ab".repeat(32)),
        ("model", "qwen2".to_owned()),
        ("software", "agigit 0.1.0".to_owned()),
    ];
    base.iter()
        .filter_map(|(name, value)| {
            if *name == edit.0 {
                edit.1.map(|v| vec![(*name).to_owned(), v.to_owned()])
            } else {
                Some(vec![(*name).to_owned(), value.clone()])
            }
        })
        .collect()
}

fn parse_receipt(
    tags: &[Vec<String>],
    content: &str,
) -> Result<agigit_event::EvalReceipt, ParseError> {
    let tags: Vec<Tag> = tags
        .iter()
        .map(|t| Tag::parse(t.clone()).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    agigit_event::EvalReceipt::from_parts(&tags, content)
}

#[test]
fn receipt_parser_takes_one_form_of_each_value_and_refuses_the_rest() {
    let ok = parse_receipt(&receipt_tags(("", None)), "").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.value, 1.25);
    assert_eq!(ok.losses, [0xab; 32]);
    for (tag, value) in [
        ("value", Some("1.250")),
        ("value", Some("1.25e0")),
        ("value", Some("-0")),
        ("value", Some("-1")),
        ("value", Some("NaN")),
        ("value", Some("inf")),
        ("value", Some(" 1.25")),
        ("bytes", Some("0128")),
        ("bytes", Some("+128")),
        ("tokens", Some("18446744073709551616")),
        ("losses", Some(&"AB".repeat(32))),
        ("losses", Some(&"ab".repeat(31))),
        ("metric", Some("accuracy")),
        ("model", Some("Qwen2")),
        ("model", Some("")),
        ("software", Some("tab\tbed")),
        ("commit", Some("11")),
        ("a", Some("not a coordinate")),
        ("data", None),
        ("losses", None),
        ("value", None),
        ("context", None),
    ] {
        assert!(
            parse_receipt(&receipt_tags((tag, value)), "").is_err(),
            "{tag} = {value:?} was accepted"
        );
    }
    // A tag twice, and a note too long.
    let mut twice = receipt_tags(("", None));
    twice.push(vec!["value".into(), "2".into()]);
    assert!(parse_receipt(&twice, "").is_err());
    assert!(
        parse_receipt(
            &receipt_tags(("", None)),
            &"n".repeat(agigit_event::MAX_RECEIPT_NOTE + 1)
        )
        .is_err()
    );
    assert!(
        parse_receipt(
            &receipt_tags(("", None)),
            &"n".repeat(agigit_event::MAX_RECEIPT_NOTE)
        )
        .is_ok()
    );
}

// ---------------------------------------------------------------------------------------------
// Competition rounds
// ---------------------------------------------------------------------------------------------

fn arb_round() -> impl Strategy<Value = agigit_event::round::RoundEvent> {
    (
        arb_coordinate(),
        any::<([u8; 32], [u8; 32])>(),
        (
            2u64..=8192,
            0u64..1 << 40,
            1u64..1000,
            1u64..1000,
            1u64..=366 * 86400,
        ),
        (
            0u64..1 << 40,
            1u64..1 << 20,
            0.0f64..1.0,
            1u64..=100_000,
            50u64..=99,
        ),
        prop::collection::btree_set(1u8..=200, 1..5),
        (prop::option::of(201u8..=254), 0u64..1 << 30),
        "\\PC{0,100}",
    )
        .prop_map(
            |(
                repo,
                (foundation, sealed),
                (context, submit_by, r, e, window),
                (pool, rate, margin, samples, confidence),
                evaluators,
                (arbiter, bond),
                note,
            )| {
                agigit_event::round::RoundEvent {
                    repo,
                    foundation: foundation.into(),
                    metric: "bits-per-byte".into(),
                    sealed,
                    context,
                    submit_by,
                    reveal_by: submit_by + r,
                    evaluate_by: submit_by + r + e,
                    challenge_within: window,
                    pool,
                    rate,
                    margin,
                    samples,
                    confidence,
                    evaluators: evaluators
                        .into_iter()
                        .map(|k| keys(k).public_key())
                        .collect(),
                    arbiter: arbiter
                        .or((pool > 0 || bond > 0).then_some(254))
                        .map(|k| keys(k).public_key()),
                    bond,
                    note,
                }
            },
        )
}

fn arb_round_action() -> impl Strategy<Value = agigit_event::round::RoundAction> {
    use agigit_event::round::{RoundAction, RoundVerb};
    let verb = prop_oneof![
        Just(RoundVerb::Fund),
        (arb_coordinate(), any::<[u8; 32]>()).prop_map(|(repo, c)| RoundVerb::Submit {
            repo,
            commit: c.into()
        }),
        any::<([u8; 32], [u8; 32], [u8; 32])>().prop_map(|(d, salt, c)| RoundVerb::Reveal {
            data: d.into(),
            salt,
            commit: c.into(),
        }),
        (
            any::<([u8; 32], [u8; 32])>(),
            prop::collection::btree_set(any::<u64>(), 1..64)
        )
            .prop_map(|((r, c), docs)| RoundVerb::Challenge {
                receipt: EventId::from_byte_array(r),
                counter: EventId::from_byte_array(c),
                documents: docs.into_iter().collect(),
            }),
        any::<[u8; 32]>().prop_map(|r| RoundVerb::Rule {
            receipt: EventId::from_byte_array(r)
        }),
        prop::option::of(any::<[u8; 32]>()).prop_map(|c| RoundVerb::Result {
            champion: c.map(Into::into)
        }),
        (1u8..=254, 1u64..1 << 40).prop_map(|(k, amount)| RoundVerb::Pay {
            to: keys(k).public_key(),
            amount
        }),
        Just(RoundVerb::Bond),
        any::<[u8; 32]>().prop_map(|b| RoundVerb::Consent {
            bond: EventId::from_byte_array(b)
        }),
    ];
    (verb, any::<[u8; 32]>(), "\\PC{0,100}").prop_map(|(verb, round, note)| {
        let token = matches!(
            verb,
            RoundVerb::Fund | RoundVerb::Bond | RoundVerb::Pay { .. }
        )
        .then(|| "cashuBtoken".to_owned());
        let release = if matches!(
            verb,
            RoundVerb::Result { .. } | RoundVerb::Pay { .. } | RoundVerb::Consent { .. }
        ) {
            vec!["ab".repeat(64)]
        } else {
            Vec::new()
        };
        RoundAction {
            round: EventId::from_byte_array(round),
            verb,
            token,
            release,
            note,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn round_round_trip(body in arb_round(), signer in 1u8..=254) {
        round_trip(body, &keys(signer))?;
    }

    #[test]
    fn round_action_round_trip(body in arb_round_action(), signer in 1u8..=254) {
        round_trip(body, &keys(signer))?;
    }

    #[test]
    fn arbitrary_json_never_panics_as_a_round(json in "\\PC{0,300}") {
        let _ = Signed::<agigit_event::round::RoundEvent>::from_json(&json);
        let _ = Signed::<agigit_event::round::RoundAction>::from_json(&json);
    }
}

fn tags_of(list: &[(&str, &str)]) -> Vec<Tag> {
    list.iter()
        .map(|(n, v)| {
            Tag::parse(vec![(*n).to_owned(), (*v).to_owned()]).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

#[test]
fn round_parsers_refuse_out_of_order_deadlines_and_misplaced_arguments() {
    use agigit_event::round::{RoundAction, RoundEvent};
    let coordinate = RepoCoordinate::new(
        keys(3).public_key(),
        RepoId::new("model").unwrap_or_else(|e| panic!("{e}")),
    )
    .to_string();
    let evaluator = keys(4).public_key().to_hex();
    let base: Vec<(&str, String)> = vec![
        ("a", coordinate),
        ("foundation", "11".repeat(32)),
        ("metric", "bits-per-byte".into()),
        ("sealed", "22".repeat(32)),
        ("context", "512".into()),
        ("submit_by", "100".into()),
        ("reveal_by", "200".into()),
        ("evaluate_by", "300".into()),
        ("challenge_within", "60".into()),
        ("pool", "0".into()),
        ("rate", "0".into()),
        ("margin", "0.01".into()),
        ("samples", "1000".into()),
        ("confidence", "95".into()),
        ("p", evaluator),
    ];
    let with = |edit: (&str, Option<&str>)| {
        let list: Vec<(&str, &str)> = base
            .iter()
            .filter_map(|(n, v)| {
                if *n == edit.0 {
                    edit.1.map(|e| (*n, e))
                } else {
                    Some((*n, v.as_str()))
                }
            })
            .collect();
        RoundEvent::from_parts(&tags_of(&list), "")
    };
    assert!(with(("", None)).is_ok());
    // A pool with a rate but no arbiter.
    let mut pooled: Vec<(&str, &str)> = base
        .iter()
        .filter(|(n, _)| *n != "pool" && *n != "rate")
        .map(|(n, v)| (*n, v.as_str()))
        .collect();
    pooled.extend([("pool", "5"), ("rate", "1")]);
    assert!(RoundEvent::from_parts(&tags_of(&pooled), "").is_err());
    let arbiter = keys(5).public_key().to_hex();
    pooled.push(("arbiter", &arbiter));
    assert!(RoundEvent::from_parts(&tags_of(&pooled), "").is_ok());
    // A bond needs an arbiter too; twice, or not a number, it is refused.
    let mut bonded: Vec<(&str, &str)> = base.iter().map(|(n, v)| (*n, v.as_str())).collect();
    bonded.push(("bond", "50"));
    assert!(RoundEvent::from_parts(&tags_of(&bonded), "").is_err());
    bonded.push(("arbiter", &arbiter));
    let parsed = RoundEvent::from_parts(&tags_of(&bonded), "").expect("a bonded round");
    assert_eq!(parsed.bond, 50);
    for bad in [vec![("bond", "50"), ("bond", "60")], vec![("bond", "-1")]] {
        let mut list: Vec<(&str, &str)> = bonded
            .iter()
            .copied()
            .filter(|(n, _)| *n != "bond")
            .collect();
        list.extend(bad);
        assert!(
            RoundEvent::from_parts(&tags_of(&list), "").is_err(),
            "{list:?}"
        );
    }
    for (tag, value) in [
        ("reveal_by", Some("100")),
        ("evaluate_by", Some("150")),
        ("challenge_within", Some("0")),
        ("context", Some("1")),
        ("context", Some("8193")),
        ("pool", Some("5")), // a pool without an arbiter
        ("margin", Some("-0.01")),
        ("margin", Some("0.010")),
        ("samples", Some("0")),
        ("confidence", Some("100")),
        ("sealed", Some("22")),
        ("p", None),
        ("foundation", None),
    ] {
        assert!(
            with((tag, value)).is_err(),
            "{tag} = {value:?} was accepted"
        );
    }
    let e = "33".repeat(32);
    let action = |list: &[(&str, &str)]| RoundAction::from_parts(&tags_of(list), "");
    assert!(action(&[("e", &e), ("action", "rule"), ("receipt", &e)]).is_ok());
    // An argument of another action, a missing one, a fund without its token.
    assert!(action(&[("e", &e), ("action", "rule"), ("receipt", &e), ("salt", &e)]).is_err());
    assert!(
        action(&[
            ("e", &e),
            ("action", "reveal"),
            ("data", &e),
            ("commit", &e)
        ])
        .is_err()
    );
    assert!(action(&[("e", &e), ("action", "fund")]).is_err());
    assert!(action(&[("e", &e), ("action", "bond")]).is_err());
    assert!(action(&[("e", &e), ("action", "bond"), ("token", "cashuBx")]).is_ok());
    let consent = "cd".repeat(64);
    assert!(
        action(&[
            ("e", &e),
            ("action", "consent"),
            ("bond", &e),
            ("release", &consent)
        ])
        .is_ok()
    );
    assert!(action(&[("e", &e), ("action", "consent"), ("bond", &e)]).is_err());
    assert!(action(&[("e", &e), ("action", "consent"), ("release", &consent)]).is_err());
    assert!(action(&[("e", &e), ("action", "withdraw")]).is_err());
    // A payment names its payee and carries the funds and the arbiter's consent, all three.
    let payee = keys(5).public_key().to_hex();
    let sig = "ab".repeat(64);
    let pay = [
        ("e", e.as_str()),
        ("action", "pay"),
        ("p", payee.as_str()),
        ("amount", "21"),
        ("token", "cashuBtoken"),
        ("release", sig.as_str()),
    ];
    assert!(action(&pay).is_ok());
    for missing in ["p", "amount", "token", "release"] {
        let without: Vec<_> = pay.iter().copied().filter(|(n, _)| *n != missing).collect();
        assert!(action(&without).is_err(), "a pay without {missing}");
    }
    let mut nothing = pay.to_vec();
    nothing.retain(|(n, _)| *n != "amount");
    nothing.push(("amount", "0"));
    assert!(action(&nothing).is_err(), "a payment of nothing");
    let mut stray = pay.to_vec();
    stray.push(("champion", e.as_str()));
    assert!(action(&stray).is_err());
    assert!(
        action(&[
            ("e", &e),
            ("action", "rule"),
            ("receipt", &e),
            ("p", &payee)
        ])
        .is_err()
    );
    // Disputed documents: ascending, none twice, at most 64.
    let challenge = |docs: Vec<String>| {
        let mut t = tags_of(&[
            ("e", &e),
            ("action", "challenge"),
            ("receipt", &e),
            ("counter", &e),
        ]);
        let mut d = vec!["document".to_owned()];
        d.extend(docs);
        t.push(Tag::parse(d).unwrap_or_else(|e| panic!("{e}")));
        RoundAction::from_parts(&t, "")
    };
    assert!(challenge(vec!["0".into(), "7".into()]).is_ok());
    assert!(challenge(vec!["7".into(), "0".into()]).is_err());
    assert!(challenge(vec!["7".into(), "7".into()]).is_err());
    assert!(challenge(vec!["07".into()]).is_err());
    assert!(challenge(Vec::new()).is_err());
    assert!(challenge((0..65).map(|i| i.to_string()).collect()).is_err());
}

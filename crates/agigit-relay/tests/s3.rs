//! The S3 blob store against a real S3-compatible server (`s3s-fs`) on loopback: the blob store
//! conformance suite the filesystem store passes, a blob above the multipart threshold read back
//! by ranges, and a blob the bucket lost answered as absent.

#![cfg(feature = "s3")]
#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::io::{Read as _, Seek as _, SeekFrom};

use agigit_hash::BlobHash;
use agigit_relay::config::S3Config;
use agigit_relay::conformance::{CHECKS, test_bytes};
use agigit_relay::{BlobStore, S3BlobStore};
use nostr::prelude::Keys;

mod support;
use support::s3::{ACCESS_KEY, SECRET_KEY, TempS3};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn config(server: &TempS3, bucket: &str, prefix: &str) -> S3Config {
    S3Config {
        bucket: bucket.to_owned(),
        endpoint: Some(server.endpoint.clone()),
        region: "us-east-1".to_owned(),
        prefix: prefix.to_owned(),
        allow_http: true,
        virtual_hosted_style: false,
        access_key_id: Some(ACCESS_KEY.to_owned()),
        secret_access_key: Some(SECRET_KEY.to_owned()),
    }
}

fn local(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("agigit-s3-local-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn the_s3_store_passes_the_conformance_suite() -> TestResult {
    let Some(server) = TempS3::start("conformance")? else {
        return Ok(());
    };
    for (i, (name, check)) in CHECKS.iter().enumerate() {
        let bucket = server.bucket(&format!("conformance-{i}"))?;
        let dir = local(&format!("conformance-{i}"));
        let store = S3BlobStore::open(&config(&server, &bucket, "blobs/"), &dir)?;
        let outcome = check(&store);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        outcome.map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

#[test]
fn a_large_blob_goes_up_in_parts_and_reads_back_by_ranges() -> TestResult {
    let Some(server) = TempS3::start("large")? else {
        return Ok(());
    };
    let bucket = server.bucket("large")?;
    let dir = local("large");
    let store = S3BlobStore::open(&config(&server, &bucket, ""), &dir)?;
    let owner = Keys::generate().public_key();
    // 40 MiB: three parts of a multipart upload.
    let data = test_bytes(40 << 20, 9);
    let hash = BlobHash::digest(&data);
    let mut upload = store.begin(1 << 30)?;
    for chunk in data.chunks(1 << 20) {
        upload.write(chunk)?;
    }
    let (info, new) = upload.commit(&owner, "", Some(&hash), None)?;
    assert!(new);
    assert_eq!(info.size, data.len() as u64);
    let objects = server.objects(&bucket);
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(
        std::fs::read(&objects[0])?,
        data,
        "the bucket holds the bytes"
    );
    assert!(
        std::fs::read_dir(dir.join("tmp"))?.next().is_none(),
        "no spool file is left"
    );

    // Ranges from the middle, across a read block's edge, and the tail.
    let (mut reader, _) = store.open(&hash)?.ok_or("stored")?;
    for (start, len) in [
        (17 << 20, 1000usize),
        ((4 << 20) - 10, 20),
        ((40 << 20) - 5, 5),
    ] {
        reader.seek(SeekFrom::Start(start))?;
        let mut got = vec![0u8; len];
        reader.read_exact(&mut got)?;
        let start = usize::try_from(start)?;
        assert_eq!(got, data[start..start + len], "range at {start}");
    }
    reader.seek(SeekFrom::Start(0))?;
    let mut all = Vec::new();
    reader.read_to_end(&mut all)?;
    assert_eq!(all, data);

    // The bucket loses the object: the store answers it as absent, as for a missing file.
    std::fs::remove_file(&objects[0])?;
    assert!(store.open(&hash)?.is_none());
    // Uploaded again, it is stored again (the index knew it, the bucket did not).
    let mut again = store.begin(1 << 30)?;
    again.write(&data)?;
    again.commit(&owner, "", Some(&hash), None)?;
    assert_eq!(server.objects(&bucket).len(), 1);
    assert!(store.open(&hash)?.is_some());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn a_wrong_secret_is_an_error_not_a_lost_blob() -> TestResult {
    let Some(server) = TempS3::start("secret")? else {
        return Ok(());
    };
    let bucket = server.bucket("secret")?;
    let dir = local("secret");
    let wrong = S3Config {
        secret_access_key: Some("not the secret".to_owned()),
        ..config(&server, &bucket, "")
    };
    let store = S3BlobStore::open(&wrong, &dir)?;
    let owner = Keys::generate().public_key();
    let mut upload = store.begin(1 << 20)?;
    upload.write(b"bytes")?;
    let err = upload
        .commit(&owner, "", None, None)
        .expect_err("a refused PUT fails the upload");
    assert!(
        matches!(err, agigit_relay::BlobStoreError::Backend(_)),
        "{err}"
    );
    assert!(server.objects(&bucket).is_empty());
    assert!(
        store.list(&owner, None, None)?.is_empty(),
        "nothing is indexed that the bucket did not take"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Two relay processes' stores on one bucket, their owner index shared in PostgreSQL: what one
/// takes, the other lists, counts and serves; what one deletes is gone for both.
#[cfg(feature = "postgres")]
#[test]
fn two_stores_on_one_bucket_share_their_index_in_postgres() -> TestResult {
    use agigit_relay::IndexDb;
    use agigit_relay::blobs::DeleteOutcome;
    let Some(server) = TempS3::start("shared")? else {
        return Ok(());
    };
    let Some(pg) = support::postgres::TempPostgres::start("s3-shared")? else {
        return Ok(());
    };
    let bucket = server.bucket("shared")?;
    let index = IndexDb::Postgres {
        url: pg.url.clone(),
        schema: Some("shared_blobs".into()),
    };
    let (dir_a, dir_b) = (local("shared-a"), local("shared-b"));
    let a = S3BlobStore::open_with(&config(&server, &bucket, "b/"), &dir_a, &index)?;
    let b = S3BlobStore::open_with(&config(&server, &bucket, "b/"), &dir_b, &index)?;
    let (alice, bob) = (Keys::generate().public_key(), Keys::generate().public_key());
    let data = test_bytes(200_000, 5);
    let hash = BlobHash::digest(&data);
    let mut upload = a.begin(1 << 20)?;
    upload.write(&data)?;
    let (_, new) = upload.commit(&alice, "", Some(&hash), None)?;
    assert!(new);
    // B sees A's claim, counts it and serves the bytes.
    assert!(b.is_claimed(&hash)?);
    assert_eq!(b.usage(&alice)?, data.len() as u64);
    assert_eq!(b.list(&alice, None, None)?.len(), 1);
    let (mut reader, _) = b.open(&hash)?.ok_or("B serves it")?;
    let mut got = Vec::new();
    reader.read_to_end(&mut got)?;
    assert_eq!(got, data);
    // Bob's upload through B is a second claim on the same blob, not a new one.
    let mut upload = b.begin(1 << 20)?;
    upload.write(&data)?;
    let (_, new) = upload.commit(&bob, "", Some(&hash), None)?;
    assert!(!new, "A's blob, claimed again through B");
    assert_eq!(server.objects(&bucket).len(), 1);
    // Deleting through either store: the blob stays until its last claim goes, for both.
    assert!(matches!(a.delete(&hash, &bob)?, DeleteOutcome::Released));
    assert!(b.open(&hash)?.is_some());
    assert!(matches!(b.delete(&hash, &alice)?, DeleteOutcome::Removed));
    assert!(a.info(&hash)?.is_none());
    assert!(a.open(&hash)?.is_none());
    assert!(server.objects(&bucket).is_empty());
    // Neither kept a local index.
    assert!(!dir_a.join("index.sqlite").exists() && !dir_b.join("index.sqlite").exists());
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir_a);
    let _ = std::fs::remove_dir_all(&dir_b);
    Ok(())
}

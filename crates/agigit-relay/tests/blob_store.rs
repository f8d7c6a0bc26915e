//! The blob store conformance suite (`agigit_relay::conformance`) on the filesystem store, each
//! check on a fresh store in its own directory. Another `BlobStore` runs the same checks.

use agigit_relay::FsBlobStore;
use agigit_relay::conformance::CHECKS;

#[test]
fn the_filesystem_store_passes_the_conformance_suite() -> Result<(), Box<dyn std::error::Error>> {
    for (i, (name, check)) in CHECKS.iter().enumerate() {
        let dir = std::env::temp_dir().join(format!(
            "agigit-blob-conformance-{}-{i}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = FsBlobStore::open(&dir)?;
        let outcome = check(&store);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        outcome.map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// A store that breaks the contract fails the suite: the suite can fail.
#[test]
fn a_store_that_keeps_deleted_bytes_fails_the_suite() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!(
        "agigit-blob-conformance-bad-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    // With a retention, the last owner's delete keeps the bytes: not what the suite's stores do.
    let store = FsBlobStore::open(&dir)?.with_retention(3600)?;
    let outcome = agigit_relay::conformance::check_delete(&store);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    let message = outcome
        .err()
        .ok_or("a store keeping deleted bytes passed")?;
    assert!(message.contains("the bytes stayed"), "{message}");
    Ok(())
}

//! Create a key, announce a repository, point its `main` branch at a commit, print both events
//! as JSON, and verify them the way a reader does.
//!
//! ```text
//! cargo run --example announce              # a fresh key
//! AGIGIT_NSEC=<64 hex chars> cargo run --example announce   # a key you already have
//! ```

use std::error::Error;

use agigit_event::nostr::prelude::{Keys, Timestamp};
use agigit_event::{
    K256Verifier, RefName, RepoAnnouncement, RepoId, RepoState, Signed, Verifier, Visibility,
};
use agigit_hash::ObjectId;

fn main() -> Result<(), Box<dyn Error>> {
    // 1. A key: taken from the environment when set, otherwise generated. The secret never
    //    leaves this process; only the public key appears in the events.
    let keys = match std::env::var("AGIGIT_NSEC") {
        Ok(secret) => Keys::parse(secret.trim())?,
        Err(_) => Keys::generate(),
    };
    eprintln!("public key: {}", keys.public_key());

    // 2. The announcement (kind 30717): what the repository is and where it lives.
    let repo = RepoId::new("tiny-llm")?;
    let mut announcement = RepoAnnouncement::new(repo.clone(), Visibility::Public);
    announcement.name = Some("Tiny LLM".to_owned());
    announcement.description = Some("A 4-layer transformer for agigit's examples".to_owned());
    announcement.license = Some("MIT OR Apache-2.0".to_owned());
    announcement.relays.push("ws://127.0.0.1:7777".parse()?);
    announcement
        .blob_servers
        .push("http://127.0.0.1:7777".parse()?);
    let now = Timestamp::now();
    let announcement = Signed::sign(announcement, &keys, now)?;

    // 3. The state (kind 30718): `main` points at a commit and `HEAD` at `main`. The commit id
    //    here stands in for a real commit object's id.
    let main = RefName::branch("main")?;
    let mut state = RepoState::new(repo);
    state
        .refs
        .insert(main.clone(), ObjectId::digest(b"agigit example commit"));
    state.head = Some(main);
    let state = Signed::sign(state, &keys, now)?;

    // 4. Print both as the JSON a relay stores, one per line.
    println!("{}", announcement.to_json());
    println!("{}", state.to_json());

    // 5. Read them back as a client would: parse + verify (libsecp256k1), cross-check with the
    //    independent k256 verifier, and resolve which state counts.
    let announcement = Signed::<RepoAnnouncement>::from_json(announcement.to_json())?;
    let state = Signed::<RepoState>::from_json(state.to_json())?;
    K256Verifier.verify_event(announcement.event())?;
    K256Verifier.verify_event(state.event())?;
    let resolution = announcement.resolve_state([state.event().clone()]);
    let current = resolution.current.ok_or("the state was not accepted")?;
    eprintln!(
        "verified: announcement {} and state {}; HEAD -> {}",
        announcement.id(),
        current.id(),
        current
            .body()
            .head_commit()
            .map(|c| c.to_string())
            .unwrap_or_default()
    );
    Ok(())
}

//! Event JSON → every typed parser, and the two verifiers against each other.
//!
//! Properties: nothing panics; whatever parses as a Nostr event gets the same verdict from the
//! libsecp256k1 and the k256 verifier; tags and content that parse as a typed event convert back
//! to tags and content that parse to the same value. The tag parsers are also fed directly
//! (`ProtocolEvent::from_parts`), because a fuzzer cannot forge the signatures that guard them in
//! `Signed::from_json`. The NIP-65 and BUD-03 list readers get the same tags.
#![no_main]

use agigit_event::market::{OrderAction, PullOrderEvent, StorageOrderEvent};
use agigit_event::nostr::prelude::Event;
use agigit_event::round::{RoundAction, RoundEvent};
use agigit_event::{
    BlossomAuth, CommitEvent, EvalReceipt, K256Verifier, NostrVerifier, ProtocolEvent,
    RepoAnnouncement, RepoState, Signed, Verifier,
};
use libfuzzer_sys::fuzz_target;

fn check<T: ProtocolEvent + PartialEq + std::fmt::Debug>(data: &[u8], event: Option<&Event>) {
    if let Ok(signed) = Signed::<T>::from_json(data) {
        let again = Signed::<T>::from_json(signed.to_json()).expect("re-serialized event parses");
        assert_eq!(again.body(), signed.body());
    }
    if let Some(event) = event
        && let Ok(body) = T::from_parts(event.tags.as_ref(), &event.content)
    {
        let (tags, content) = body.to_parts();
        let again = T::from_parts(&tags, &content).expect("our own tags parse");
        assert_eq!(again, body);
    }
}

fuzz_target!(|data: &[u8]| {
    let event = Event::from_json(data).ok();
    if let Some(event) = &event {
        assert_eq!(
            NostrVerifier.verify_event(event),
            K256Verifier.verify_event(event)
        );
    }
    check::<RepoAnnouncement>(data, event.as_ref());
    check::<RepoState>(data, event.as_ref());
    check::<CommitEvent>(data, event.as_ref());
    check::<EvalReceipt>(data, event.as_ref());
    check::<BlossomAuth>(data, event.as_ref());
    check::<PullOrderEvent>(data, event.as_ref());
    check::<OrderAction>(data, event.as_ref());
    check::<StorageOrderEvent>(data, event.as_ref());
    check::<RoundEvent>(data, event.as_ref());
    check::<RoundAction>(data, event.as_ref());
    // The relay and server lists (NIP-65, BUD-03) a clone reads to find a repository: only
    // usable URLs, each once, boundedly many, whatever the tags say.
    if let Some(event) = &event {
        for kind in [10002u16, 10063] {
            let mut event = event.clone();
            event.kind = kind.into();
            let relays = agigit_net::info::listed_relays(&event, &event.pubkey);
            let servers = agigit_net::info::listed_blob_servers(&event, &event.pubkey);
            for list in [&relays, &servers] {
                assert!(list.len() <= agigit_net::info::MAX_LISTED_URLS);
                let unique: std::collections::BTreeSet<&String> = list.iter().collect();
                assert_eq!(unique.len(), list.len());
            }
            assert!(
                relays
                    .iter()
                    .all(|u| agigit_net::pool::check_relay_url(u).is_ok())
            );
            assert!(
                servers
                    .iter()
                    .all(|u| agigit_net::info::is_blob_server_url(u))
            );
        }
    }
});

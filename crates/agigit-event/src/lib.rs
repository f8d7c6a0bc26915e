#![doc = include_str!("../README.md")]

mod announcement;
mod blossom;
mod commit;
mod error;
pub mod kinds;
pub mod market;
mod names;
pub mod nip01;
mod receipt;
pub mod round;
mod signed;
mod signer;
mod state;
mod text;
mod verify;

/// Ref names are the commit DAG's; re-exported because state events carry them.
pub use agigit_validate::{MAX_REF_NAME_LEN, RefName, RefNameError};
pub use announcement::{
    ForkOf, MAX_TOPICS, RepoAnnouncement, Visibility, is_topic, newest_announcement,
    newest_announcements,
};
pub use blossom::{AuthError, AuthRequest, BlossomAuth, MAX_CLOCK_SKEW_SECS, Verb};
pub use commit::CommitEvent;
pub use error::ParseError;
pub use names::{CoordinateError, MAX_REPO_ID_LEN, RepoCoordinate, RepoId, RepoIdError};
pub use receipt::{EvalReceipt, MAX_RECEIPT_NOTE, METRICS};
pub use signed::{ProtocolEvent, Signed};
pub use signer::{SignError, Signer};
pub use state::{
    IgnoreReason, Ignored, MAX_NOTE_BYTES, RepoState, SealedRefs, StateResolution, is_valid_note,
    resolve_state,
};
pub use verify::{K256Verifier, NostrVerifier, Verifier, VerifyError, bip340_verify};

/// The `nostr` crate this crate is built on, so callers use the same version of its types.
pub use nostr;

//! The event kinds agigit uses, in one place.
//!
//! The protocol's own kinds mirror NIP-34 (30617 / 30618 / 1617) one hundred higher. No NIP
//! assigns them; if that changes, this module is the only place to edit.

use nostr::prelude::Kind;

/// Repository announcement: addressable, `d` = repository id (NIP-34's 30617 + 100).
pub const REPO_ANNOUNCEMENT: u16 = 30717;
/// Repository state, the branch pointers: addressable, `d` = repository id (NIP-34's 30618 + 100).
pub const REPO_STATE: u16 = 30718;
/// A commit: regular event whose content is the canonical commit (NIP-34's 1617 + 100).
pub const COMMIT: u16 = 1717;
/// Blossom authorization token (BUD-11).
pub const BLOSSOM_AUTH: u16 = 24242;
/// A user's relay list (NIP-65); readers honour it when looking for a user's events.
pub const RELAY_LIST: u16 = 10002;
/// A user's Blossom server list (BUD-03); readers honour it when looking for blobs.
pub const BLOB_SERVER_LIST: u16 = 10063;

/// A market pull order (regular; `docs/market.md`).
pub const PULL_ORDER: u16 = 1721;
/// An action on a market order: raise, cancel, take, deliver, confirm, dispute, rule,
/// challenge, answer (regular).
pub const ORDER_ACTION: u16 = 1722;
/// A market storage order (regular; `docs/market.md`).
pub const STORAGE_ORDER: u16 = 1723;

/// An evaluation receipt: a commit's score on held-out data, signed by its evaluator
/// (regular; `docs/rounds.md`).
pub const EVAL_RECEIPT: u16 = 1724;
/// A competition round: foundation, sealed test set, deadlines, pool (regular;
/// `docs/rounds.md`).
pub const ROUND: u16 = 1725;
/// An action on a round: fund, submit, reveal, challenge, rule, result (regular).
pub const ROUND_ACTION: u16 = 1726;

/// The `nostr` [`Kind`] for one of the numbers above.
pub const fn kind(number: u16) -> Kind {
    Kind::Custom(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_the_replaceability_the_protocol_needs() {
        assert!(kind(REPO_ANNOUNCEMENT).is_addressable());
        assert!(kind(REPO_STATE).is_addressable());
        assert!(kind(COMMIT).is_regular());
        assert!(kind(PULL_ORDER).is_regular());
        assert!(kind(ORDER_ACTION).is_regular());
        assert!(kind(STORAGE_ORDER).is_regular());
        assert!(kind(EVAL_RECEIPT).is_regular());
        assert!(kind(RELAY_LIST).is_replaceable());
        assert!(kind(BLOB_SERVER_LIST).is_replaceable());
        // `Kind::Custom` of a known number still compares equal to the named variant.
        assert_eq!(kind(RELAY_LIST), Kind::RelayList);
    }
}

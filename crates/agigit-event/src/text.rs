//! Untrusted text quoted back in error messages.

/// Longest piece of untrusted input quoted in an error message.
const QUOTE_LIMIT: usize = 80;

/// Quotes untrusted input for an error message, cut to a readable length.
pub(crate) fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// A canonical unsigned decimal: ASCII digits only, no sign, leading zero or space.
pub(crate) fn parse_decimal(value: &str) -> Option<u64> {
    let canonical = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'));
    canonical.then(|| value.parse().ok()).flatten()
}

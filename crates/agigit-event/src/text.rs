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

//! Printing text that came from the network: commit messages, tree names, event content. Control
//! characters (a terminal's escape sequences among them) are shown escaped, never sent raw.

use std::borrow::Cow;
use std::fmt;

/// `text` with every control character except newline and tab escaped as `\u{…}` (and `\` as
/// `\\` when anything was escaped, so the escaping cannot be forged); `text` itself when it has
/// none.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_with(text, |c| c == '\n' || c == '\t')
}

/// [`escape`] for one line: newlines and tabs are escaped too.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    escape_with(text, |_| false)
}

fn escape_with(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && !keep(c);
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Displays a string from the network on one line, control characters escaped.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_line(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_pass_raw() {
        assert_eq!(escape("plain text\nsecond line"), "plain text\nsecond line");
        let hostile = "ok\u{1b}]0;owned\u{7}\u{1b}[2J\r\u{9b}31m";
        let shown = escape(hostile);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert_eq!(shown, "ok\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{d}\\u{9b}31m");
        // A backslash is escaped once anything is, so `\u{1b}` typed by hand stays
        // distinguishable from an escaped ESC.
        assert_eq!(escape("a\\u{1b}\u{1b}"), "a\\\\u{1b}\\u{1b}");
        assert_eq!(Escaped("a\nb").to_string(), "a\\u{a}b");
    }
}

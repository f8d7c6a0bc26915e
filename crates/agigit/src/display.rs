//! Printing for people: text that came from the network (commit messages, tree names, event
//! content) with its control characters (a terminal's escape sequences among them) shown
//! escaped, never sent raw; sizes and times as the command line and the web explorer show them.

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

/// A size for people: `812 B`, `1.5 KiB`, `3.0 GiB` (powers of 1024).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    #[allow(clippy::cast_precision_loss, reason = "a size for people to read")]
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Unix seconds as `2026-12-05 10:00:00 UTC` (the proleptic Gregorian calendar, Howard
/// Hinnant's days-to-civil algorithm).
pub fn utc_date(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn utc_dates_match_known_instants() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00 UTC");
        // A leap day of a century divisible by 400, the day after, and before 1970.
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date(951_868_800 + 3_723), "2000-03-01 01:02:03 UTC");
        assert_eq!(utc_date(-86_400), "1969-12-31 00:00:00 UTC");
        assert_eq!(utc_date(1_795_356_360), "2026-11-22 14:06:00 UTC");
    }

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

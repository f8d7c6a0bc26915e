//! Tree entry names: what a name that came from the network may be before it is ever joined to a
//! path (DESIGN §7, invariant 7).
//!
//! A tree entry is either a path component (a file, an executable, a directory) or a tensor of a
//! safetensors tree (which never becomes a path). Both follow the base rules; path components
//! also follow the portable path rules below, on every platform, so that a repository committed on
//! one system can never write outside the work tree, or into `.agigit/`, when it is checked out on
//! another. The rules follow git's `verify_path` with `core.protectNTFS` and `core.protectHFS` on
//! (git's default everywhere since 2.24.1, CVE-2019-1353), applied to `.agigit`:
//!
//! - **base rules** (every entry): not empty, not `.` or `..`, at most 255 bytes, no `/`, no `\`,
//!   no control character (U+0000–U+001F, U+007F–U+009F);
//! - **path rules** (files and directories), also:
//!   - no `:` (an NTFS alternate data stream such as `x::$DATA`, or a drive-relative `C:x`);
//!   - not a name a filesystem may treat as `.agigit`: compared case-insensitively after removing
//!     the code points HFS+ ignores (U+200C–U+200F, U+202A–U+202E, U+206A–U+206F, U+FEFF) and the
//!     trailing dots and spaces NTFS drops;
//!   - not an NTFS 8.3 short name (`AGIGIT~1`, or any `XXXXXX~N`: one to six characters without a
//!     dot, `~`, then digits), which on NTFS may alias `.agigit` or any other long name.
//!
//! Windows device names (`CON`, `NUL`, `COM1`, `aux.py`, …), the characters `< > " | ? *` and
//! trailing dots or spaces are only unsafe where Windows resolves the path: they are refused at
//! checkout on Windows by the facade ([`windows_hazard`]), and accepted here, because names such
//! as `aux.py` are ordinary on other systems and cannot escape there.

use super::tree::EntryMode;

/// The longest entry name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// The directory agigit keeps its own state in; no entry may name it, in any spelling.
pub const DOT_DIR: &str = ".agigit";

/// A name that cannot be a tree entry, or a tree with a name twice.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name breaks a rule.
    #[error("invalid entry name {name:?}: {reason}")]
    Invalid {
        /// The name (as `{:?}` prints it, so control characters show escaped).
        name: String,
        /// Which rule.
        reason: &'static str,
    },
    /// Two entries share a name.
    #[error("entry name {name:?} appears twice")]
    Duplicate {
        /// The name.
        name: String,
    },
}

fn invalid(name: &str, reason: &'static str) -> NameError {
    NameError::Invalid {
        name: name.to_owned(),
        reason,
    }
}

/// Whether `c` is a control character (C0, DEL or C1).
pub fn is_control(c: char) -> bool {
    c.is_control()
}

/// Code points HFS+ ignores when it compares names.
fn hfs_ignorable(c: char) -> bool {
    matches!(c, '\u{200C}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{206A}'..='\u{206F}' | '\u{FEFF}')
}

/// The base rules: every entry, tensors included.
fn check_base(name: &str) -> Result<(), NameError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name == "." || name == ".." {
        "it is . or .."
    } else if name.len() > MAX_NAME_LEN {
        "it is longer than 255 bytes"
    } else if name.contains('/') {
        "it contains '/'"
    } else if name.contains('\\') {
        "it contains '\\' (a path separator on Windows)"
    } else if name.chars().any(is_control) {
        "it contains a control character"
    } else {
        return Ok(());
    };
    Err(invalid(name, reason))
}

/// Whether a filesystem may take `name` for `.agigit`: case-insensitively, without the code points
/// HFS+ ignores, without the trailing dots and spaces NTFS drops.
pub fn is_dot_dir(name: &str) -> bool {
    let folded: String = name
        .chars()
        .filter(|&c| !hfs_ignorable(c))
        .collect::<String>()
        .trim_end_matches(['.', ' '])
        .to_ascii_lowercase();
    folded == DOT_DIR
}

/// Whether `name` has the shape of an NTFS 8.3 short name: one to six characters without a dot,
/// `~`, one or more digits, then the end or a dot (an extension). `AGIGIT~1` is `.agigit`'s.
fn is_short_name(name: &str) -> bool {
    let name = name.trim_end_matches(['.', ' ']);
    let Some((stem, rest)) = name.split_once('~') else {
        return false;
    };
    let digits = rest.split_once('.').map_or(rest, |(d, _)| d);
    (1..=6).contains(&stem.chars().count())
        && !stem.contains('.')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Checks a path component (a file or directory entry): the base rules and the portable path
/// rules of this module.
///
/// # Errors
/// [`NameError::Invalid`] naming the entry and the rule it breaks.
pub fn check_name(name: &str) -> Result<(), NameError> {
    check_base(name)?;
    let reason = if name.contains(':') {
        "it contains ':' (an NTFS stream or a drive letter)"
    } else if is_dot_dir(name) {
        "a filesystem may take it for .agigit, where agigit keeps its own state"
    } else if is_short_name(name) {
        "it has the shape of an NTFS 8.3 short name (like AGIGIT~1), which may alias another name"
    } else {
        return Ok(());
    };
    Err(invalid(name, reason))
}

/// Checks a tensor's name inside a safetensors tree (never a path): the base rules only.
///
/// # Errors
/// [`NameError::Invalid`] naming the entry and the rule it breaks.
pub fn check_tensor_name(name: &str) -> Result<(), NameError> {
    check_base(name)
}

/// Checks the name of an entry of `mode`: tensors by [`check_tensor_name`], everything else (which
/// becomes a path at checkout) by [`check_name`].
///
/// # Errors
/// [`NameError::Invalid`] naming the entry and the rule it breaks.
pub fn check_entry_name(name: &str, mode: EntryMode) -> Result<(), NameError> {
    match mode {
        EntryMode::Tensor => check_tensor_name(name),
        EntryMode::Tree | EntryMode::File | EntryMode::Executable | EntryMode::Chunked => {
            check_name(name)
        }
    }
}

/// Why Windows would not treat `name` (already valid by [`check_name`]) as an ordinary file name:
/// a device name (`CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`, `LPT0`–`LPT9`, their superscript-digit
/// forms, `CONIN$`, `CONOUT$`, with or without an extension), one of `< > " | ? *`, or a trailing
/// dot or space. `None` when it is fine.
pub fn windows_hazard(name: &str) -> Option<&'static str> {
    if name.ends_with(['.', ' ']) {
        return Some("Windows drops a trailing dot or space");
    }
    if name.contains(['<', '>', '"', '|', '?', '*']) {
        return Some("Windows does not allow < > \" | ? * in file names");
    }
    let base = name
        .split('.')
        .next()
        .unwrap_or(name)
        .trim_end_matches(' ')
        .to_ascii_uppercase();
    let device = match base.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" => true,
        _ => {
            let mut chars = base.chars();
            let prefix: String = chars.by_ref().take(3).collect();
            let rest: String = chars.collect();
            (prefix == "COM" || prefix == "LPT")
                && (matches!(rest.as_str(), "¹" | "²" | "³")
                    || (rest.len() == 1 && rest.bytes().all(|b| b.is_ascii_digit())))
        }
    };
    device.then_some("it is a Windows device name")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components_that_escape_or_alias_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "..\\..\\ESCAPED",
            "\\tmp\\x\\ESCAPED",
            ".agigit\\config.toml",
            "a\0b",
            "a\nb",
            "bell\u{7}",
            "csi\u{9b}2J",
            "C:evil",
            "x::$DATA",
            ".agigit",
            ".AGIGIT",
            ".AgIgIt",
            ".agigit.",
            ".agigit. . ",
            ".agigit ",
            ".agi\u{200C}git",
            "\u{FEFF}.agigit",
            ".agigit\u{206F}",
            "AGIGIT~1",
            "agigit~2",
            "AG1B2C~1",
            "abc~12.txt",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_name(&"x".repeat(256)).is_err());
    }

    #[test]
    fn ordinary_names_pass() {
        for good in [
            "config.json",
            "model.safetensors",
            ".safetensors-header",
            "aux.py",
            "CON",
            "what?.txt",
            "notes ",
            ".agigitignore",
            ".agigit-old",
            "agigit",
            "file~",
            "long-name~1.txt",
            "a~b",
            "é",
            &"x".repeat(255),
        ] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn tensor_names_follow_the_base_rules_only() {
        for good in ["model.layers.0:weight", "CON", "aux.weight", ".agigit"] {
            assert_eq!(
                check_entry_name(good, EntryMode::Tensor),
                Ok(()),
                "{good:?}"
            );
        }
        for bad in ["a/b", "a\\b", "..", "x\u{1b}[2J"] {
            assert!(check_entry_name(bad, EntryMode::Tensor).is_err(), "{bad:?}");
        }
        assert!(check_entry_name("C:x", EntryMode::File).is_err());
        assert!(check_entry_name(".AGIGIT", EntryMode::Tree).is_err());
    }

    #[test]
    fn windows_hazards() {
        for bad in [
            "CON", "con.txt", "Aux.py", "NUL", "com1", "LPT9.log", "COM¹", "conin$", "a.", "a ",
            "a?b", "a*b", "a|b", "a<b", "a\"b",
        ] {
            assert!(windows_hazard(bad).is_some(), "{bad:?}");
        }
        for good in ["console", "COM10", "LPT", "auxiliary.py", "a.b", "nul_test"] {
            assert_eq!(windows_hazard(good), None, "{good:?}");
        }
    }
}

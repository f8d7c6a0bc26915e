//! Held-out documents from a validation part's files.

use crate::EvalError;

/// One document of held-out text: a loss is computed and kept per document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// Where it came from: the file's path, with `:<line>` for a line of a JSON Lines file.
    pub name: String,
    /// Its text.
    pub text: String,
}

/// The most documents one evaluation takes (a JSON Lines file of a million empty objects is not
/// a reason to allocate without end).
pub const MAX_DOCUMENTS: usize = 1 << 20;

/// How a file of the validation part is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// The whole file is one document (`.txt`, `.md`, `.text`).
    Text,
    /// One document per non-empty line, each a JSON object with a string `"text"` (`.jsonl`).
    JsonLines,
    /// Not read (any other extension: tokenized data, images, a README of the set…).
    Skipped,
}

impl FileKind {
    /// How a file named `path` is read.
    pub fn of(path: &str) -> FileKind {
        let ext = path
            .rsplit('/')
            .next()
            .and_then(|name| name.rsplit_once('.'))
            .map(|(_, ext)| ext.to_ascii_lowercase());
        match ext.as_deref() {
            Some("txt" | "md" | "text") => FileKind::Text,
            Some("jsonl") => FileKind::JsonLines,
            _ => FileKind::Skipped,
        }
    }
}

/// Adds the documents of the file `path` (`bytes`) to `out`, in file order; files of another
/// kind add nothing. Returns whether the file was read.
///
/// # Errors
/// [`EvalError::Data`] for text that is not UTF-8, a JSON line that is not an object with a
/// string `"text"`, or more than [`MAX_DOCUMENTS`] documents.
pub fn add_documents(path: &str, bytes: &[u8], out: &mut Vec<Document>) -> Result<bool, EvalError> {
    let bad = |line: Option<usize>, why: String| EvalError::Data {
        file: path.to_owned(),
        line,
        why,
    };
    let full = |out: &Vec<Document>| {
        if out.len() >= MAX_DOCUMENTS {
            Err(bad(
                None,
                format!("more than {MAX_DOCUMENTS} documents: split the evaluation"),
            ))
        } else {
            Ok(())
        }
    };
    match FileKind::of(path) {
        FileKind::Skipped => Ok(false),
        FileKind::Text => {
            full(out)?;
            let text = std::str::from_utf8(bytes)
                .map_err(|e| bad(None, format!("not UTF-8 text ({e})")))?;
            out.push(Document {
                name: path.to_owned(),
                text: text.to_owned(),
            });
            Ok(true)
        }
        FileKind::JsonLines => {
            let text = std::str::from_utf8(bytes)
                .map_err(|e| bad(None, format!("not UTF-8 text ({e})")))?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                full(out)?;
                #[derive(serde::Deserialize)]
                struct Line {
                    text: String,
                }
                let parsed: Line = serde_json::from_str(line).map_err(|e| {
                    bad(
                        Some(i + 1),
                        format!("expected a JSON object with a string \"text\" ({e})"),
                    )
                })?;
                out.push(Document {
                    name: format!("{path}:{}", i + 1),
                    text: parsed.text,
                });
            }
            Ok(true)
        }
    }
}

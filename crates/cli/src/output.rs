//! Where chatctl's results go: text or one JSON object per line on stdout,
//! notices on stderr. Write errors are returned instead of panicking like
//! `println!` would; a closed pipe (`chatctl watch | head`) ends the
//! command quietly ([`ReaderGone`]).

use std::io::Write;

use anyhow::Result;
use serde_json::Value;

use super::sanitize::{escape_line, escape_text, json_line};

/// Whoever read stdout stopped (`chatctl history | head`): the command
/// ends there, quietly and successfully, as with any Unix filter.
#[derive(Debug)]
pub struct ReaderGone;

impl std::fmt::Display for ReaderGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for ReaderGone {}

/// The output mode chosen with `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    json: bool,
}

impl Output {
    /// Text output, or JSON lines when `json` is set.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether JSON lines were asked for.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `text` (a trailing newline is added when missing). Callers
    /// escape server text field by field; control characters other than
    /// `\n` that still get here are escaped as a backstop.
    pub fn text(&self, text: &str) -> Result<()> {
        self.line(&escape_text(text))
    }

    /// Writes `text` and a newline if missing, unchanged.
    fn line(&self, text: &str) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| {
                if text.ends_with('\n') {
                    Ok(())
                } else {
                    stdout.write_all(b"\n")
                }
            })
            .and_then(|()| stdout.flush())
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::BrokenPipe => anyhow::Error::new(ReaderGone),
                _ => anyhow::Error::new(e).context("cannot write to stdout"),
            })
    }

    /// Prints one JSON object on one line, with no raw control or bidi
    /// character even inside strings (see [`json_line`]).
    pub fn object(&self, value: &Value) -> Result<()> {
        self.line(&json_line(value))
    }

    /// Prints the text or the JSON form, depending on the mode. Both are
    /// built lazily so only the needed one is computed.
    pub fn either(
        &self,
        text: impl FnOnce() -> String,
        json: impl FnOnce() -> Value,
    ) -> Result<()> {
        if self.json {
            self.object(&json())
        } else {
            self.text(&text())
        }
    }

    /// A side remark for humans (stderr), e.g. reconnection notices. Never
    /// mixed into stdout, so JSON consumers are not confused. Escaped as
    /// one line: notices often quote server errors.
    pub fn notice(&self, text: &str) {
        eprintln!("chatctl: {}", escape_line(text));
    }
}

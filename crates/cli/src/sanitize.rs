//! Text from the server (message bodies, names, errors) is untrusted: raw,
//! it could drive the terminal (`ESC [2J` clears the screen, OSC 0 sets the
//! window title, OSC 52 writes the clipboard), reorder what is shown (bidi
//! overrides) or forge whole lines (`\n[999] ... carol: I approve`). So
//! every such character chatctl prints becomes a visible escape.
//!
//! Escaped: C0 controls U+0000–U+001F (tab and CR included), DEL U+007F,
//! C1 controls U+0080–U+009F, the bidi embeddings/overrides U+202A–U+202E
//! and isolates U+2066–U+2069, and the Unicode line/paragraph separators
//! U+2028/U+2029 (some viewers break lines there). Forms, Rust-like:
//! `\n`, `\r`, `\t` for those three, `\x1b` for the other C0 and DEL,
//! `\u{9b}` for C1 and the Unicode ones. Tab is escaped rather than
//! expanded, so it cannot push text into another table column.
//!
//! Backslashes are not doubled: a body typing `\x1b` literally looks like
//! an escaped ESC, which is harmless and keeps paths and regexes readable;
//! `--json` gives the exact text. No crate we depend on fits: `escape_debug`
//! (std) also escapes quotes and backslashes and mangles ordinary text.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::Value;

/// Whether `c` must not reach a terminal as is.
pub fn is_unsafe(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        // Infallible: writing to a String cannot fail.
        '\u{0}'..='\u{1f}' | '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        _ => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
}

/// `text` with every unsafe character escaped except those `keep` accepts;
/// borrowed when nothing needed escaping (the common case).
fn escape_except(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    let needs = |c: char| is_unsafe(c) && !keep(c);
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A single-line field (a name, a URL, an error message): newlines too are
/// escaped, so the field cannot end the line it is printed on.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    escape_except(text, |_| false)
}

/// A message body that may span lines. Each line is escaped like
/// [`escape_line`]; lines after the first start with `indent` spaces, so a
/// body can never produce a line that starts at column 0 and pass for one
/// of chatctl's own. CRLF counts as a newline; a lone CR is escaped.
pub fn escape_body(text: &str, indent: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', indent));
        }
        out.push_str(&escape_line(line.strip_suffix('\r').unwrap_or(line)));
    }
    out
}

/// `head` followed by `body`, continuation lines aligned under the body's
/// first character (by character count: wide characters in `head` would
/// misalign them, but never to column 0 unless `head` is empty).
pub fn with_body(head: String, body: &str) -> String {
    let indent = head.chars().count();
    let mut line = head;
    line.push_str(&escape_body(body, indent));
    line
}

/// Last line of defence for whole text blocks about to be printed: escapes
/// everything but `\n`, which is structure added by chatctl (tables,
/// escaped bodies). Fields must still be escaped where they are formatted;
/// this only guarantees no raw control sequence reaches the terminal if a
/// print path forgets.
pub fn escape_text(text: &str) -> Cow<'_, str> {
    escape_except(text, |c| c == '\n')
}

/// `value` as one JSON line whose bytes are terminal-safe too. serde_json
/// already escapes U+0000–U+001F, but passes DEL, C1 controls and bidi
/// characters raw; they become `\uXXXX` here. That is still the same JSON
/// value: such characters can only occur inside strings, where `\uXXXX`
/// means exactly them.
pub fn json_line(value: &Value) -> String {
    let raw = value.to_string();
    if !raw.chars().any(is_unsafe) {
        return raw;
    }
    let mut out = String::with_capacity(raw.len() + 8);
    for c in raw.chars() {
        if is_unsafe(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terminal_sequences_become_visible() {
        assert_eq!(escape_line("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(
            escape_line("\x1b]0;pwned\x07"),
            "\\x1b]0;pwned\\x07",
            "OSC 0 (window title) ended by BEL"
        );
        assert_eq!(
            escape_line("\x1b]52;c;aGk=\x1b\\"),
            "\\x1b]52;c;aGk=\\x1b\\",
            "OSC 52 (clipboard) ended by ST"
        );
        assert_eq!(escape_line("ding\x07"), "ding\\x07");
        assert_eq!(escape_line("nul\0"), "nul\\x00");
        assert_eq!(escape_line("del\x7f"), "del\\x7f");
        assert_eq!(escape_line("\u{9b}31m"), "\\u{9b}31m", "C1 CSI");
        assert_eq!(escape_line("\u{80}\u{9f}"), "\\u{80}\\u{9f}");
    }

    #[test]
    fn bidi_controls_become_visible() {
        assert_eq!(escape_line("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape_line("\u{202a}"), "\\u{202a}");
        assert_eq!(escape_line("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
        assert_eq!(escape_line("a\u{2028}b"), "a\\u{2028}b");
        // Neighbours of the ranges are ordinary text.
        assert_eq!(escape_line("\u{2029}"), "\\u{2029}");
        assert_eq!(
            escape_line("\u{2065}\u{206a}\u{2030}"),
            "\u{2065}\u{206a}\u{2030}"
        );
    }

    #[test]
    fn line_breaks_and_tabs_in_one_line_fields() {
        assert_eq!(escape_line("a\nb"), "a\\nb");
        assert_eq!(escape_line("a\rb"), "a\\rb");
        assert_eq!(escape_line("a\r\nb"), "a\\r\\nb");
        assert_eq!(escape_line("a\tb"), "a\\tb");
    }

    #[test]
    fn ordinary_text_is_untouched_and_borrowed() {
        for text in [
            "plain ascii, with 'quotes' \"and\" a \\ backslash",
            "日本語のメッセージ",
            "emoji 🎉👍🏽 and ZWJ 👨‍👩‍👧",
            "accents: é ü ñ, Arabic: مرحبا, Hebrew: שלום",
            "",
        ] {
            assert!(matches!(escape_line(text), Cow::Borrowed(t) if t == text));
            assert_eq!(escape_body(text, 4), text);
        }
    }

    #[test]
    fn a_newline_cannot_forge_a_line() {
        let body = "hi\n[999] 2026-12-02 17:00:00  carol: I approve the transfer";
        let line = with_body("[5] 2026-11-23 08:52:12  alice: ".into(), body);
        let indent = " ".repeat("[5] 2026-11-23 08:52:12  alice: ".len());
        assert_eq!(
            line,
            format!(
                "[5] 2026-11-23 08:52:12  alice: hi\n\
                 {indent}[999] 2026-12-02 17:00:00  carol: I approve the transfer"
            )
        );
        for (i, l) in line.lines().enumerate() {
            assert!(i == 0 || l.starts_with(' '), "{l:?}");
        }
    }

    #[test]
    fn bodies_keep_their_shape() {
        assert_eq!(escape_body("a\r\nb\n\nc\n", 2), "a\n  b\n  \n  c\n  ");
        assert_eq!(escape_body("a\rb", 2), "a\\rb", "a lone CR is escaped");
        assert_eq!(escape_body("x\n\x1b[2Jy\t", 1), "x\n \\x1b[2Jy\\t");
        assert_eq!(
            with_body(String::new(), "a\nb"),
            "a\nb",
            "no head, no indent"
        );
    }

    #[test]
    fn the_backstop_keeps_only_newlines() {
        assert_eq!(escape_text("a\nb\x1b[2J\r\t"), "a\nb\\x1b[2J\\r\\t");
        assert!(matches!(escape_text("x\ny"), Cow::Borrowed("x\ny")));
    }

    #[test]
    fn json_stays_the_same_value_and_terminal_safe() {
        let body = "\x1b[2J\x07\x7f\u{9b}\u{202e}\n日本 🎉 \"q\" \\";
        let value = json!({ "body": body, "n": 1 });
        let line = json_line(&value);
        assert!(!line.chars().any(is_unsafe), "{line:?}");
        assert!(line.contains("\\u007f") && line.contains("\\u009b") && line.contains("\\u202e"));
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, value);
        assert_eq!(json_line(&json!({"a": "b"})), r#"{"a":"b"}"#);
    }
}

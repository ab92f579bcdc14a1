//! Stored strings on an operator's terminal: an event must not be able to
//! move the cursor, clear the screen, set the window title or hide a line.
//!
//! - Human output (tables) shows every control character visibly:
//!   `\n`, `\r`, `\t`, `\x1b` for the other C0 controls and DEL, `\u{9b}` for
//!   the C1 controls (U+0080–U+009F, which some terminals obey like ESC +
//!   a letter) and for the bidirectional overrides and isolates (U+202A–U+202E,
//!   U+2066–U+2069), which reorder what is shown.
//! - JSON written to a terminal (`tail`, `cat`, `query --format json|ndjson`)
//!   is already free of C0 controls (JSON escapes them inside strings); DEL,
//!   C1 and the bidirectional controls are written as `\u007f`-style escapes
//!   too. The result is the same JSON value; piped output is left byte for
//!   byte as stored.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal as is.
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character shown as an escape (see the module
/// docs); borrowed when there is none.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// JSON text made safe for a terminal, as the same JSON value: DEL, C1 and
/// bidirectional controls (valid JSON holds them only inside strings) are
/// written as `\uXXXX` escapes; a raw CR (valid JSON holds one only as
/// whitespace between tokens) becomes a space; newlines and tabs stay.
/// Other raw C0 controls make the text invalid JSON anyway: they are
/// escaped the same way.
pub fn json(text: &str) -> Cow<'_, str> {
    let unsafe_in_json = |c: char| c != '\n' && c != '\t' && unsafe_char(c);
    if !text.chars().any(unsafe_in_json) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c == '\r' {
            out.push(' ');
        } else if unsafe_in_json(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`json`] over bytes that should be UTF-8 JSON; other bytes pass
/// unchanged only if they hold nothing unsafe.
pub fn json_bytes(line: &[u8]) -> Cow<'_, [u8]> {
    match std::str::from_utf8(line) {
        Ok(s) => match json(s) {
            Cow::Borrowed(_) => Cow::Borrowed(line),
            Cow::Owned(o) => Cow::Owned(o.into_bytes()),
        },
        Err(_) => Cow::Owned(
            visible(&String::from_utf8_lossy(line))
                .into_owned()
                .into_bytes(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_shows_every_control_character() {
        assert!(matches!(visible("plain text ünïcode"), Cow::Borrowed(_)));
        assert_eq!(
            visible("a\x1b[2J\x1b]0;title\x07b\r\nc\td\x7fe\u{9b}31m\u{202e}f"),
            "a\\x1b[2J\\x1b]0;title\\x07b\\r\\nc\\td\\x7fe\\u{9b}31m\\u{202e}f"
        );
        assert_eq!(visible("\0\u{85}"), "\\x00\\u{85}");
    }

    #[test]
    fn json_escapes_what_json_writers_leave_raw_and_keeps_the_value() {
        let v = serde_json::json!({"d": "x\u{7f}y\u{9b}2J\u{2066}z\u{1b}", "n": 1});
        let text = v.to_string();
        assert!(text.contains('\u{9b}'), "serde_json writes C1 raw");
        let safe = json(&text);
        assert!(!safe.chars().any(unsafe_char), "{safe}");
        assert!(safe.contains("\\u009b") && safe.contains("\\u007f"));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, v);
        assert!(matches!(json("{\"a\":\"b\"}"), Cow::Borrowed(_)));
        // Lines and whitespace between tokens: a CR becomes a space.
        let two = "{\"a\":\t1,\r\"b\":2}\n{}\n";
        assert_eq!(json(two), "{\"a\":\t1, \"b\":2}\n{}\n");
        assert_eq!(
            &*json_bytes(b"{\"a\":\"\xc2\x9b\"}"),
            b"{\"a\":\"\\u009b\"}"
        );
        assert_eq!(&*json_bytes(b"\xff\x1b"), "\u{fffd}\\x1b".as_bytes());
    }
}

//! JSON parser for one complete, already-lexed message.
//!
//! The framer ([`super::decoder`]) has run qemu's lexer over every byte, so the
//! buffer handed in here is a sequence of lexically valid tokens: structural
//! characters, strings (no raw control bytes, no 0xFE/0xFF, every `\` followed
//! by one more byte), numbers matching qemu's number grammar and `[a-z]+`
//! keywords, separated at most by single spaces. This module re-tokenises the
//! buffer and applies the rules of qemu's `qobject/json-parser.c`: the first
//! error wins and its text is reproduced exactly.
//!
//! The parser is iterative (an explicit stack of open containers), so nesting
//! depth costs heap, not call stack. The framer caps depth at 1024 anyway.
//! Nothing here indexes input without a bounds check or can panic.

use serde_json::{Map, Number, Value};

/// qemu formats parse errors into a 1024-byte buffer (`vsnprintf`), so the part
/// after `JSON parse error, ` is at most 1023 bytes.
const MAX_PARSE_ERROR_MESSAGE: usize = 1023;

fn perr(message: &str) -> String {
    if message.len() <= MAX_PARSE_ERROR_MESSAGE {
        return format!("JSON parse error, {message}");
    }
    let mut end = MAX_PARSE_ERROR_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "JSON parse error, {}",
        message.get(..end).unwrap_or_default()
    )
}

/// A container still being built.
enum Frame {
    Array(Vec<Value>),
    /// The object so far and, once its colon has been read, the pending key.
    Object(Map<String, Value>, Option<String>),
}

/// What the innermost open container wants next, decided before touching it
/// mutably (keeps the borrow checker out of the way of `stack.pop()`).
enum Slot {
    Top,
    Element,
    Key,
    Member,
}

/// Parses one complete message. `Err` carries the full `desc` text.
pub(crate) fn parse(buf: &[u8]) -> Result<Value, String> {
    let mut p = Parser { buf, pos: 0 };
    let mut stack: Vec<Frame> = Vec::new();
    'value: loop {
        let mut value = match p.peek() {
            None => return Err(perr("premature EOI")),
            Some(b'{') => {
                p.pos += 1;
                if p.peek() == Some(b'}') {
                    p.pos += 1;
                    Value::Object(Map::new())
                } else {
                    stack.push(Frame::Object(Map::new(), None));
                    continue 'value;
                }
            }
            Some(b'[') => {
                p.pos += 1;
                if p.peek() == Some(b']') {
                    p.pos += 1;
                    Value::Array(Vec::new())
                } else {
                    stack.push(Frame::Array(Vec::new()));
                    continue 'value;
                }
            }
            Some(q @ (b'"' | b'\'')) => Value::String(p.string(q)?),
            Some(b'-' | b'0'..=b'9') => p.number()?,
            Some(b'a'..=b'z') => p.keyword()?,
            Some(_) => return Err(perr("expecting value")),
        };
        // Hand the finished value to the containers, closing them as far as
        // their closing tokens follow.
        loop {
            let slot = match stack.last() {
                None => Slot::Top,
                Some(Frame::Array(_)) => Slot::Element,
                Some(Frame::Object(_, None)) => Slot::Key,
                Some(Frame::Object(_, Some(_))) => Slot::Member,
            };
            match slot {
                Slot::Top => {
                    // The framer ends a message exactly where its value ends.
                    if p.peek().is_some() {
                        return Err(perr("expecting value"));
                    }
                    return Ok(value);
                }
                Slot::Element => {
                    if let Some(Frame::Array(items)) = stack.last_mut() {
                        items.push(value);
                    }
                    match p.next_byte() {
                        None => return Err(perr("premature EOI")),
                        Some(b']') => match stack.pop() {
                            Some(Frame::Array(items)) => value = Value::Array(items),
                            _ => return Err(perr("premature EOI")),
                        },
                        Some(b',') => continue 'value,
                        Some(_) => return Err(perr("expected separator in list")),
                    }
                }
                Slot::Key => {
                    let Value::String(key) = value else {
                        return Err(perr("key is not a string in object"));
                    };
                    match p.next_byte() {
                        None => return Err(perr("premature EOI")),
                        Some(b':') => {
                            if let Some(Frame::Object(_, pending)) = stack.last_mut() {
                                *pending = Some(key);
                            }
                            continue 'value;
                        }
                        Some(_) => return Err(perr("missing : in object pair")),
                    }
                }
                Slot::Member => {
                    if let Some(Frame::Object(map, pending)) = stack.last_mut()
                        && let Some(key) = pending.take()
                    {
                        // Like qemu, the duplicate check comes after the value.
                        if map.contains_key(&key) {
                            return Err(perr("duplicate key"));
                        }
                        map.insert(key, value);
                    }
                    match p.next_byte() {
                        None => return Err(perr("premature EOI")),
                        Some(b'}') => match stack.pop() {
                            Some(Frame::Object(map, _)) => value = Value::Object(map),
                            _ => return Err(perr("premature EOI")),
                        },
                        Some(b',') => continue 'value,
                        Some(_) => return Err(perr("expected separator in dict")),
                    }
                }
            }
        }
    }
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn is_digit(b: Option<&u8>) -> bool {
    matches!(b, Some(b'0'..=b'9'))
}

impl Parser<'_> {
    /// First byte of the next token, after separating whitespace.
    fn peek(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.buf.get(self.pos) {
            self.pos += 1;
        }
        self.buf.get(self.pos).copied()
    }

    /// Pops a one-byte token (a structural character). Anything else is an
    /// error at the call site, so consuming just its first byte is harmless.
    fn next_byte(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn skip_digits(&mut self) {
        while is_digit(self.buf.get(self.pos)) {
            self.pos += 1;
        }
    }

    /// A number, with qemu's lexer's longest match:
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, except that an
    /// exponent directly after a bare `0`/`-0` is not part of the number.
    /// The value keeps the exact text (serde_json `arbitrary_precision`).
    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        if self.buf.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        let bare_zero = self.buf.get(self.pos) == Some(&b'0');
        if bare_zero {
            self.pos += 1;
        } else {
            self.skip_digits();
        }
        let mut fraction = false;
        if self.buf.get(self.pos) == Some(&b'.') && is_digit(self.buf.get(self.pos + 1)) {
            self.pos += 1;
            self.skip_digits();
            fraction = true;
        }
        if (!bare_zero || fraction) && matches!(self.buf.get(self.pos), Some(b'e' | b'E')) {
            let mut q = self.pos + 1;
            if matches!(self.buf.get(q), Some(b'+' | b'-')) {
                q += 1;
            }
            if is_digit(self.buf.get(q)) {
                self.pos = q;
                self.skip_digits();
            }
        }
        let text = self
            .buf
            .get(start..self.pos)
            .and_then(|t| std::str::from_utf8(t).ok())
            .unwrap_or_default();
        // `str::parse` validates but normalises exponents (`1e3` -> `1e+3`);
        // the unchecked constructor keeps the client's exact spelling, which
        // is what gets echoed back in `id`.
        if text.parse::<Number>().is_err() {
            return Err(perr("expecting value"));
        }
        Ok(Value::Number(Number::from_string_unchecked(
            text.to_owned(),
        )))
    }

    fn keyword(&mut self) -> Result<Value, String> {
        let start = self.pos;
        while let Some(b'a'..=b'z') = self.buf.get(self.pos) {
            self.pos += 1;
        }
        let word = self.buf.get(start..self.pos).unwrap_or_default();
        match word {
            b"true" => Ok(Value::Bool(true)),
            b"false" => Ok(Value::Bool(false)),
            b"null" => Ok(Value::Null),
            _ => Err(perr(&format!(
                "invalid keyword '{}'",
                String::from_utf8_lossy(word)
            ))),
        }
    }

    /// Decodes the string token starting at `self.pos` (its opening quote is
    /// `quote`), like qemu's `parse_string`: runs of plain bytes are validated
    /// as (modified) UTF-8 and copied in bulk.
    fn string(&mut self, quote: u8) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = self.buf.get(self.pos..).unwrap_or_default();
            let n = rest
                .iter()
                .position(|&c| c == quote || c == b'\\')
                .unwrap_or(rest.len());
            append_run(&mut out, rest.get(..n).unwrap_or_default())?;
            self.pos += n;
            match rest.get(n) {
                None => return Err(perr("premature EOI")),
                Some(&c) if c == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(_) => self.escape(quote, &mut out)?,
            }
        }
    }

    /// One escape sequence; `self.pos` is at the backslash.
    fn escape(&mut self, quote: u8, out: &mut String) -> Result<(), String> {
        let beg = self.pos;
        let c = self.buf.get(beg + 1).copied();
        self.pos = beg + 2;
        let ch = match c {
            Some(b'"') => '"',
            Some(b'\'') => '\'',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let mut cp = hex4(self.buf.get(beg + 2..beg + 6));
                let mut end = beg + 6;
                if (0xD800..=0xDBFF).contains(&cp)
                    && self.buf.get(end) == Some(&b'\\')
                    && self.buf.get(end + 1) == Some(&b'u')
                {
                    let trailing = hex4(self.buf.get(end + 2..end + 6));
                    if (0xDC00..=0xDFFF).contains(&trailing) {
                        cp = 0x10000 + ((cp & 0x3FF) << 10) + (trailing & 0x3FF);
                        end += 6;
                    } else {
                        cp = -1;
                    }
                }
                let decoded = u32::try_from(cp)
                    .ok()
                    .filter(|&cp| is_valid_codepoint(cp))
                    .and_then(char::from_u32);
                let Some(ch) = decoded else {
                    // qemu prints the 6 bytes from the backslash, cut at the
                    // end of the token (its string is NUL-terminated there).
                    let text_end = (beg + 6).min(self.token_end_within(beg + 2, beg + 6, quote));
                    let text = self.buf.get(beg..text_end).unwrap_or_default();
                    return Err(perr(&format!(
                        "{} is not a valid Unicode character",
                        String::from_utf8_lossy(text)
                    )));
                };
                self.pos = end;
                ch
            }
            _ => return Err(perr("invalid escape sequence in string")),
        };
        out.push(ch);
        Ok(())
    }

    /// End (exclusive, after the closing quote) of the string token if it
    /// closes in `from..to`, else `usize::MAX`.
    fn token_end_within(&self, from: usize, to: usize, quote: u8) -> usize {
        let mut j = from;
        while j < to {
            match self.buf.get(j) {
                Some(b'\\') => j += 2,
                Some(&c) if c == quote => return j + 1,
                Some(_) => j += 1,
                None => break,
            }
        }
        usize::MAX
    }
}

/// Four hex digits, or -1 (qemu's `cvt4hex`).
fn hex4(digits: Option<&[u8]>) -> i64 {
    let Some(digits) = digits else { return -1 };
    let mut cp = 0i64;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return -1,
        };
        cp = (cp << 4) | i64::from(v);
    }
    cp
}

/// qemu's `is_valid_codepoint`: in range, not a surrogate, not one of the 66
/// noncharacters.
fn is_valid_codepoint(cp: u32) -> bool {
    cp <= 0x10FFFF
        && !(0xFDD0..=0xFDEF).contains(&cp)
        && (cp & 0xFFFE) != 0xFFFE
        && !(0xD800..=0xDFFF).contains(&cp)
}

/// Appends raw string bytes (no quote, no backslash) decoded as qemu's
/// "modified UTF-8": standard UTF-8 without noncharacters, plus `C0 80` for
/// U+0000.
fn append_run(out: &mut String, mut run: &[u8]) -> Result<(), String> {
    out.reserve(run.len());
    loop {
        match std::str::from_utf8(run) {
            Ok(s) => return push_checked(out, s),
            Err(e) => {
                let valid = e.valid_up_to();
                let (good, bad) = run.split_at(valid);
                push_checked(out, std::str::from_utf8(good).unwrap_or_default())?;
                if bad.starts_with(&[0xC0, 0x80]) {
                    out.push('\0');
                    run = bad.get(2..).unwrap_or_default();
                } else {
                    return Err(perr("invalid UTF-8 sequence in string"));
                }
            }
        }
    }
}

fn push_checked(out: &mut String, s: &str) -> Result<(), String> {
    if !s.is_ascii() && s.chars().any(|c| !is_valid_codepoint(u32::from(c))) {
        return Err(perr("invalid UTF-8 sequence in string"));
    }
    out.push_str(s);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Value {
        match parse(s.as_bytes()) {
            Ok(v) => v,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn err(s: &[u8]) -> String {
        match parse(s) {
            Ok(v) => panic!("{:?} parsed as {v}", String::from_utf8_lossy(s)),
            Err(e) => e,
        }
    }

    #[test]
    fn values() {
        assert_eq!(
            ok(r#"{"a":[1,true,false,null,"x"],'b':{}}"#).to_string(),
            r#"{"a":[1,true,false,null,"x"],"b":{}}"#
        );
        assert_eq!(ok("[]"), Value::Array(vec![]));
        assert_eq!(
            ok(r#""a\"b\'c\\d\/e\bf\fg\nh\ri\tj""#),
            Value::String("a\"b'c\\d/e\u{8}f\u{c}g\nh\ri\tj".into())
        );
        assert_eq!(ok(r#"'say "hi"'"#), Value::String("say \"hi\"".into()));
        assert_eq!(
            ok(r#""\u00e9\u20AC\ud83d\ude00\u0000""#),
            Value::String("é€😀\0".into())
        );
        assert_eq!(
            parse(b"\"a\xC0\x80b\"").ok(),
            Some(Value::String("a\0b".into()))
        );
        assert_eq!(
            parse("\"é€😀\"".as_bytes()).ok(),
            Some(Value::String("é€😀".into()))
        );
    }

    #[test]
    fn numbers_keep_their_text() {
        for n in [
            "1e3",
            "1E3",
            "18446744073709551616",
            "-0.0",
            "1.50",
            "-0",
            "0.5e-7",
            "1e400",
        ] {
            assert_eq!(ok(n).to_string(), n);
        }
    }

    #[test]
    fn errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"{\"a\":1,\"a\":2}", "duplicate key"),
            (b"{\"a\" 1}", "missing : in object pair"),
            (b"{\"a\"]", "missing : in object pair"),
            (b"{1:2}", "key is not a string in object"),
            (b"{\"a\":1 \"b\":2}", "expected separator in dict"),
            (b"{\"a\":1]", "expected separator in dict"),
            (b"[1 2]", "expected separator in list"),
            (b"[1}", "expected separator in list"),
            (b"{\"a\":}", "expecting value"),
            (b"{\"a\":1,}", "expecting value"),
            (b"[1,]", "expecting value"),
            (b"}", "expecting value"),
            (b"{]", "expecting value"),
            (b"tru", "invalid keyword 'tru'"),
            (b"\"\\x\"", "invalid escape sequence in string"),
            (b"\"\\u12zz\"", "\\u12zz is not a valid Unicode character"),
            (b"\"\\u12\"}", "\\u12\" is not a valid Unicode character"),
            (b"\"\\ud800\"", "\\ud800 is not a valid Unicode character"),
            (
                b"\"\\ud800\\u0041\"",
                "\\ud800 is not a valid Unicode character",
            ),
            (b"\"\\udc00\"", "\\udc00 is not a valid Unicode character"),
            (b"\"\\uFFFF\"", "\\uFFFF is not a valid Unicode character"),
            (b"\"a\xC3\"", "invalid UTF-8 sequence in string"),
            (b"\"\xC1\x81\"", "invalid UTF-8 sequence in string"),
            (b"\"\xEF\xB7\x90\"", "invalid UTF-8 sequence in string"),
            (b"{\"a\":1,\"a\":[1 2]}", "expected separator in list"),
        ];
        for (input, want) in cases {
            assert_eq!(
                err(input),
                format!("JSON parse error, {want}"),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn long_keyword_error_is_truncated_like_qemu() {
        let word = "x".repeat(5000);
        let e = err(word.as_bytes());
        assert_eq!(e.len(), "JSON parse error, ".len() + 1023);
    }

    #[test]
    fn deep_nesting_is_iterative() {
        let depth = 100_000;
        let s = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let v = ok(&s);
        // Drop the deep value without recursing through serde_json's Drop.
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            if let Value::Array(items) = v {
                stack.extend(items);
            }
        }
    }
}

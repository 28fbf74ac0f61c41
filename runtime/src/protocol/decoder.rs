//! Streaming decoder: bytes in, [`Inbound`] events out.
//!
//! The framer runs qemu's JSON lexer (`qobject/json-lexer.c`) as a
//! state × byte table, and qemu's streamer rules (`qobject/json-streamer.c`)
//! on the tokens: a message ends when its braces and brackets balance (or
//! either count goes negative), a top-level scalar is a message of its own.
//! Token bytes of the message in progress are copied once into a buffer
//! (string contents in bulk); whitespace between tokens is not kept. A
//! complete message is handed to [`super::parser`] and then checked as a QMP
//! envelope.
//!
//! Deliberate differences from qemu-ga:
//! * 0xFF or 0xFE anywhere (also inside a string, or while skipping) drops the
//!   partial message and returns to the start state **without any event**.
//! * After a limit error (nesting, token count, size) exactly one error is
//!   emitted and the rest of that message is skipped: string and bracket
//!   state are tracked, bytes are not kept, and decoding resumes once the
//!   message balances. (qemu forgets the message instead, and then answers
//!   every remaining closing bracket with `expecting value`.) While skipping,
//!   only quotes, escapes, brackets and 0xFE/0xFF matter; other bytes,
//!   including control bytes, are ignored.
//! * After a stray byte the recovery is qemu's: skip bytes until a structural
//!   character `[ ] { } : ,` or a control byte other than TAB (which are then
//!   processed normally), or 0xFE/0xFF (which reset silently).

use serde_json::{Map, Value};

use super::parser;

/// `MAX_NESTING`: `brace_count + bracket_count` may not exceed this.
pub const MAX_NESTING: i64 = 1024;
/// `MAX_TOKEN_COUNT`: tokens per message.
pub const MAX_TOKEN_COUNT: usize = 2 << 20;
/// `MAX_TOKEN_SIZE`: qemu rejects a message once its token bytes (whitespace
/// between tokens not counted) reach this size, so the largest accepted
/// message is one byte shorter (measured on qemu-ga 7.2: 67,108,863 bytes
/// accepted, 67,108,864 rejected).
pub const MAX_MESSAGE_SIZE: usize = 64 << 20;
const MAX_MESSAGE_LEN: usize = MAX_MESSAGE_SIZE - 1;

/// Buffers above this capacity are released after their message is done.
const KEEP_CAPACITY: usize = 16 << 20;

/// A QMP request that passed the envelope checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub execute: String,
    pub arguments: Option<Map<String, Value>>,
    pub id: Option<Value>,
}

/// Input that must be answered with a `GenericError` carrying `desc` (and
/// `id`, when the request object had one).
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolError {
    pub desc: String,
    pub id: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Request(Request),
    Error(ProtocolError),
}

impl Inbound {
    fn error(desc: impl Into<String>, id: Option<Value>) -> Self {
        Inbound::Error(ProtocolError {
            desc: desc.into(),
            id,
        })
    }
}

// ---------------------------------------------------------------------------
// The lexer table. Values are the next state or a token/action code; LA
// (lookahead) means the byte is not consumed and is looked at again in the
// next state. Lexer states are 1..=15 (row 0 is unused).

const LA: u8 = 0x80;

const ERROR: u8 = 0;
const RECOVERY: u8 = 1;
const DQ: u8 = 2;
const DQ_ESC: u8 = 3;
const SQ: u8 = 4;
const SQ_ESC: u8 = 5;
const ZERO: u8 = 6;
const EXP_DIGITS: u8 = 7;
const EXP_SIGN: u8 = 8;
const EXP_E: u8 = 9;
const MANTISSA: u8 = 10;
const MANTISSA_DIGITS: u8 = 11;
const DIGITS: u8 = 12;
const SIGN: u8 = 13;
const KEYWORD: u8 = 14;
const START: u8 = 15;
const T_LCURLY: u8 = 16;
const T_RCURLY: u8 = 17;
const T_LSQUARE: u8 = 18;
const T_RSQUARE: u8 = 19;
const T_COLON: u8 = 20;
const T_COMMA: u8 = 21;
const T_INTEGER: u8 = 22;
const T_FLOAT: u8 = 23;
const T_KEYWORD: u8 = 24;
const T_STRING: u8 = 25;
/// 0xFE/0xFF: drop everything, back to START, no event.
const RESET: u8 = 26;

const fn set_range(row: &mut [u8; 256], lo: u8, hi: u8, v: u8) {
    let mut b = lo as usize;
    while b <= hi as usize {
        row[b] = v;
        b += 1;
    }
}

const fn set_bytes(row: &mut [u8; 256], bytes: &[u8], v: u8) {
    let mut i = 0;
    while i < bytes.len() {
        row[bytes[i] as usize] = v;
        i += 1;
    }
}

const fn build_table() -> [[u8; 256]; 16] {
    let mut t = [[ERROR; 256]; 16];

    let r = &mut t[RECOVERY as usize];
    set_range(r, 0x00, 0x1F, START | LA);
    set_range(r, 0x20, 0xFF, RECOVERY);
    set_bytes(r, b"\t", RECOVERY);
    set_bytes(r, b"[]{}:,", START | LA);

    let mut s = DQ;
    while s <= SQ_ESC {
        let string = if s <= DQ_ESC { DQ } else { SQ };
        set_range(&mut t[s as usize], 0x20, 0xFD, string);
        s += 1;
    }
    set_bytes(&mut t[DQ as usize], b"\\", DQ_ESC);
    set_bytes(&mut t[DQ as usize], b"\"", T_STRING);
    set_bytes(&mut t[SQ as usize], b"\\", SQ_ESC);
    set_bytes(&mut t[SQ as usize], b"'", T_STRING);

    let r = &mut t[ZERO as usize];
    set_range(r, 0x00, 0xFF, T_INTEGER | LA);
    set_range(r, b'0', b'9', ERROR);
    set_bytes(r, b".", MANTISSA);

    let r = &mut t[EXP_DIGITS as usize];
    set_range(r, 0x00, 0xFF, T_FLOAT | LA);
    set_range(r, b'0', b'9', EXP_DIGITS);

    set_range(&mut t[EXP_SIGN as usize], b'0', b'9', EXP_DIGITS);

    let r = &mut t[EXP_E as usize];
    set_bytes(r, b"+-", EXP_SIGN);
    set_range(r, b'0', b'9', EXP_DIGITS);

    let r = &mut t[MANTISSA_DIGITS as usize];
    set_range(r, 0x00, 0xFF, T_FLOAT | LA);
    set_range(r, b'0', b'9', MANTISSA_DIGITS);
    set_bytes(r, b"eE", EXP_E);

    set_range(&mut t[MANTISSA as usize], b'0', b'9', MANTISSA_DIGITS);

    let r = &mut t[DIGITS as usize];
    set_range(r, 0x00, 0xFF, T_INTEGER | LA);
    set_range(r, b'0', b'9', DIGITS);
    set_bytes(r, b"eE", EXP_E);
    set_bytes(r, b".", MANTISSA);

    let r = &mut t[SIGN as usize];
    set_bytes(r, b"0", ZERO);
    set_range(r, b'1', b'9', DIGITS);

    let r = &mut t[KEYWORD as usize];
    set_range(r, 0x00, 0xFF, T_KEYWORD | LA);
    set_range(r, b'a', b'z', KEYWORD);

    let r = &mut t[START as usize];
    set_bytes(r, b"\"", DQ);
    set_bytes(r, b"'", SQ);
    set_bytes(r, b"0", ZERO);
    set_range(r, b'1', b'9', DIGITS);
    set_bytes(r, b"-", SIGN);
    set_bytes(r, b"{", T_LCURLY);
    set_bytes(r, b"}", T_RCURLY);
    set_bytes(r, b"[", T_LSQUARE);
    set_bytes(r, b"]", T_RSQUARE);
    set_bytes(r, b",", T_COMMA);
    set_bytes(r, b":", T_COLON);
    set_range(r, b'a', b'z', KEYWORD);
    set_bytes(r, b" \t\r\n", START);

    let mut s = 0;
    while s < 16 {
        set_bytes(&mut t[s], b"\xFE\xFF", RESET);
        s += 1;
    }
    t
}

static TABLE: [[u8; 256]; 16] = build_table();

/// Bytes that stay in the same string state (the bulk-copy fast path).
const fn plain_table(state: u8) -> [bool; 256] {
    let mut p = [false; 256];
    let mut b = 0;
    while b < 256 {
        p[b] = TABLE[state as usize][b] == state;
        b += 1;
    }
    p
}

static DQ_PLAIN: [bool; 256] = plain_table(DQ);
static SQ_PLAIN: [bool; 256] = plain_table(SQ);

/// Bytes with no meaning inside a string that is being skipped.
const fn skip_plain_table(quote: u8) -> [bool; 256] {
    let mut p = [true; 256];
    p[quote as usize] = false;
    p[b'\\' as usize] = false;
    p[0xFE] = false;
    p[0xFF] = false;
    p
}

static SKIP_DQ_PLAIN: [bool; 256] = skip_plain_table(b'"');
static SKIP_SQ_PLAIN: [bool; 256] = skip_plain_table(b'\'');

fn table(state: u8, b: u8) -> u8 {
    TABLE[usize::from(state & 0x0F)][usize::from(b)]
}

fn is_scalar_state(state: u8) -> bool {
    (ZERO..=KEYWORD).contains(&state)
}

/// Skipping the rest of a message after a limit error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// Outside strings: count brackets, watch for quotes.
    Code,
    Dq,
    DqEsc,
    Sq,
    SqEsc,
    /// An oversized top-level number or keyword: skip its characters.
    Scalar,
}

/// Result of appending one byte to the message.
type Pushed = Result<(), &'static str>;
const SIZE_EXCEEDED: &str = "JSON token size limit exceeded";

/// The streaming decoder: one per connection. (qemu-ga keeps one for the
/// agent's life, across client reconnects, which is why its clients send
/// 0xFF first; a fresh decoder per connection makes that unnecessary.)
#[derive(Debug)]
pub struct Decoder {
    /// Lexer state (1..=15).
    state: u8,
    /// Token bytes of the message in progress (plus a single space between
    /// two adjacent scalar tokens). Never longer than `MAX_MESSAGE_LEN`.
    buf: Vec<u8>,
    /// Where the current token starts in `buf`.
    tok_start: usize,
    brace: i64,
    bracket: i64,
    tokens: usize,
    /// The previous token was a number or keyword.
    last_scalar: bool,
    skip: Option<Skip>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            state: START,
            buf: Vec::new(),
            tok_start: 0,
            brace: 0,
            bracket: 0,
            tokens: 0,
            last_scalar: false,
            skip: None,
        }
    }

    /// Consumes `bytes` and appends the resulting events, in order, to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Inbound>) {
        let mut i = 0;
        while let Some(rest) = bytes.get(i..) {
            if rest.is_empty() {
                break;
            }
            if let Some(skip) = self.skip {
                i += self.skip_bytes(skip, rest);
                continue;
            }
            if self.state == DQ || self.state == SQ {
                let n = self.copy_string_run(rest);
                if n > 0 {
                    i += n;
                    continue;
                }
            }
            let Some(&b) = rest.first() else { break };
            if self.step(b, out) {
                i += 1;
            }
        }
    }

    /// Bulk-copies plain string bytes; returns how many were taken.
    fn copy_string_run(&mut self, rest: &[u8]) -> usize {
        let plain = if self.state == DQ {
            &DQ_PLAIN
        } else {
            &SQ_PLAIN
        };
        let room = MAX_MESSAGE_LEN.saturating_sub(self.buf.len());
        let window = rest.get(..room.min(rest.len())).unwrap_or_default();
        let n = window
            .iter()
            .position(|&c| !plain[usize::from(c)])
            .unwrap_or(window.len());
        let run = window.get(..n).unwrap_or_default();
        reserve(&mut self.buf, run.len());
        self.buf.extend_from_slice(run);
        n
    }

    /// Runs the lexer on one byte; returns whether the byte was consumed.
    fn step(&mut self, b: u8, out: &mut Vec<Inbound>) -> bool {
        let state = self.state;
        let act = table(state, b);
        let code = act & !LA;
        match code {
            RESET => {
                self.reset();
                true
            }
            ERROR => {
                self.stray(b, out);
                true
            }
            RECOVERY => true,
            START => {
                self.state = START;
                act & LA == 0
            }
            DQ..=KEYWORD => {
                let pushed = if state == START {
                    self.begin_token(b, is_scalar_state(code))
                } else {
                    self.push(b)
                };
                match pushed {
                    Ok(()) => self.state = code,
                    Err(desc) => self.limit_exceeded(desc, code, out),
                }
                true
            }
            T_INTEGER | T_FLOAT | T_KEYWORD => {
                // Ended by lookahead: `b` belongs to the next token.
                self.state = START;
                self.last_scalar = true;
                self.token_done(out);
                false
            }
            T_STRING => {
                match self.push(b) {
                    Ok(()) => {
                        self.state = START;
                        self.token_done(out);
                    }
                    Err(desc) => self.limit_exceeded(desc, START, out),
                }
                true
            }
            T_LCURLY..=T_COMMA => {
                self.structural(b, code, out);
                true
            }
            _ => true,
        }
    }

    fn structural(&mut self, b: u8, code: u8, out: &mut Vec<Inbound>) {
        match code {
            T_LCURLY => self.brace += 1,
            T_RCURLY => self.brace -= 1,
            T_LSQUARE => self.bracket += 1,
            T_RSQUARE => self.bracket -= 1,
            _ => {}
        }
        if let Err(desc) = self.begin_token(b, false) {
            self.limit_exceeded(desc, START, out);
            return;
        }
        if matches!(code, T_LCURLY | T_LSQUARE) && self.brace + self.bracket > MAX_NESTING {
            self.limit_exceeded("JSON nesting depth limit exceeded", START, out);
            return;
        }
        self.state = START;
        self.token_done(out);
    }

    /// Appends the first byte of a token, with the size and count checks.
    fn begin_token(&mut self, b: u8, scalar: bool) -> Pushed {
        if scalar && self.last_scalar {
            // Two adjacent scalars (always a parse error later): keep them
            // apart in the buffer. Counted against the size limit.
            self.push(b' ')?;
        }
        self.last_scalar = false;
        self.tok_start = self.buf.len();
        self.push(b)?;
        self.tokens += 1;
        if self.tokens > MAX_TOKEN_COUNT {
            return Err("JSON token count limit exceeded");
        }
        Ok(())
    }

    fn push(&mut self, b: u8) -> Pushed {
        if self.buf.len() >= MAX_MESSAGE_LEN {
            return Err(SIZE_EXCEEDED);
        }
        reserve(&mut self.buf, 1);
        self.buf.push(b);
        Ok(())
    }

    fn is_complete(&self) -> bool {
        !((self.brace > 0 || self.bracket > 0) && self.brace >= 0 && self.bracket >= 0)
    }

    /// After each token: if the message balances, parse and emit it.
    fn token_done(&mut self, out: &mut Vec<Inbound>) {
        if !self.is_complete() {
            return;
        }
        let event = match parser::parse(&self.buf) {
            Ok(value) => envelope(value),
            Err(desc) => Inbound::error(desc, None),
        };
        out.push(event);
        self.end_message();
    }

    /// Forgets the message in progress (not the lexer state).
    fn end_message(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
        self.tok_start = 0;
        self.brace = 0;
        self.bracket = 0;
        self.tokens = 0;
        self.last_scalar = false;
    }

    /// 0xFE/0xFF: silently back to a clean start.
    fn reset(&mut self) {
        self.end_message();
        self.skip = None;
        self.state = START;
    }

    /// A byte the lexer cannot accept: qemu's `stray '<token text>'` error
    /// (the text is cut at a NUL byte, as in C), then recovery.
    fn stray(&mut self, b: u8, out: &mut Vec<Inbound>) {
        let start = if self.state == START {
            self.buf.len()
        } else {
            self.tok_start
        };
        let mut text = self.buf.get(start..).unwrap_or_default().to_vec();
        text.push(b);
        if let Some(nul) = text.iter().position(|&c| c == 0) {
            text.truncate(nul);
        }
        out.push(Inbound::error(
            format!(
                "JSON parse error, stray '{}'",
                String::from_utf8_lossy(&text)
            ),
            None,
        ));
        self.end_message();
        self.state = RECOVERY;
    }

    /// Emits one limit error and skips the rest of the message. `state_after`
    /// is the lexer state the byte that hit the limit led to.
    fn limit_exceeded(&mut self, desc: &str, state_after: u8, out: &mut Vec<Inbound>) {
        out.push(Inbound::error(desc, None));
        let (brace, bracket) = (self.brace, self.bracket);
        self.end_message();
        self.brace = brace;
        self.bracket = bracket;
        self.state = START;
        self.skip = match state_after {
            DQ => Some(Skip::Dq),
            DQ_ESC => Some(Skip::DqEsc),
            SQ => Some(Skip::Sq),
            SQ_ESC => Some(Skip::SqEsc),
            s if is_scalar_state(s) => Some(if brace == 0 && bracket == 0 {
                Skip::Scalar
            } else {
                Skip::Code
            }),
            _ => Some(Skip::Code),
        };
        if self.skip == Some(Skip::Code) && self.is_complete() {
            self.finish_skip();
        }
    }

    fn finish_skip(&mut self) {
        self.skip = None;
        self.end_message();
        self.state = START;
    }

    /// Skips part of an over-limit message; returns the bytes consumed.
    fn skip_bytes(&mut self, skip: Skip, rest: &[u8]) -> usize {
        match skip {
            Skip::Dq | Skip::Sq => {
                let (plain, esc) = if skip == Skip::Dq {
                    (&SKIP_DQ_PLAIN, Skip::DqEsc)
                } else {
                    (&SKIP_SQ_PLAIN, Skip::SqEsc)
                };
                let n = rest
                    .iter()
                    .position(|&c| !plain[usize::from(c)])
                    .unwrap_or(rest.len());
                match rest.get(n) {
                    None => {}
                    Some(0xFE | 0xFF) => self.reset(),
                    Some(b'\\') => self.skip = Some(esc),
                    Some(_) => {
                        // Closing quote.
                        self.skip = Some(Skip::Code);
                        if self.is_complete() {
                            self.finish_skip();
                        }
                    }
                }
                (n + 1).min(rest.len())
            }
            Skip::DqEsc | Skip::SqEsc => {
                match rest.first() {
                    Some(0xFE | 0xFF) => self.reset(),
                    _ => {
                        self.skip = Some(if skip == Skip::DqEsc {
                            Skip::Dq
                        } else {
                            Skip::Sq
                        })
                    }
                }
                1
            }
            Skip::Code => {
                for (n, &c) in rest.iter().enumerate() {
                    match c {
                        b'{' => self.brace += 1,
                        b'[' => self.bracket += 1,
                        b'}' | b']' => {
                            if c == b'}' {
                                self.brace -= 1;
                            } else {
                                self.bracket -= 1;
                            }
                            if self.is_complete() {
                                self.finish_skip();
                                return n + 1;
                            }
                        }
                        b'"' => {
                            self.skip = Some(Skip::Dq);
                            return n + 1;
                        }
                        b'\'' => {
                            self.skip = Some(Skip::Sq);
                            return n + 1;
                        }
                        0xFE | 0xFF => {
                            self.reset();
                            return n + 1;
                        }
                        _ => {}
                    }
                }
                rest.len()
            }
            Skip::Scalar => {
                let n = rest
                    .iter()
                    .position(
                        |&c| !matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'E' | b'+' | b'-'),
                    )
                    .unwrap_or(rest.len());
                if n < rest.len() {
                    // The byte after the scalar is looked at again from START.
                    self.finish_skip();
                }
                n
            }
        }
    }
}

/// Grows `buf` for `additional` more bytes, doubling but never past
/// `MAX_MESSAGE_SIZE` (callers never need more than that).
fn reserve(buf: &mut Vec<u8>, additional: usize) {
    let needed = buf.len().saturating_add(additional);
    if needed <= buf.capacity() {
        return;
    }
    let target = buf
        .capacity()
        .saturating_mul(2)
        .max(needed)
        .max(256)
        .min(MAX_MESSAGE_SIZE.max(needed));
    buf.reserve_exact(target - buf.len());
}

/// The QMP envelope checks of `qmp_dispatch` / `qmp_dispatch_check_obj`, with
/// OOB disabled as in qemu-ga.
fn envelope(value: Value) -> Inbound {
    let Value::Object(map) = value else {
        return Inbound::error("QMP input must be a JSON object", None);
    };
    let mut members: Vec<(String, Value)> = map.into_iter().collect();
    let id = members
        .iter()
        .position(|(k, _)| k == "id")
        .and_then(|i| members.get_mut(i))
        .map(|(_, v)| std::mem::take(v));
    let mut execute = None;
    let mut arguments = None;
    for (name, value) in members {
        match name.as_str() {
            "id" => {}
            "execute" => match value {
                Value::String(s) => execute = Some(s),
                _ => {
                    return Inbound::error("QMP input member 'execute' must be a string", id);
                }
            },
            "arguments" => match value {
                Value::Object(m) => arguments = Some(m),
                _ => {
                    return Inbound::error("QMP input member 'arguments' must be an object", id);
                }
            },
            _ => {
                return Inbound::error(format!("QMP input member '{name}' is unexpected"), id);
            }
        }
    }
    match execute {
        Some(execute) => Inbound::Request(Request {
            execute,
            arguments,
            id,
        }),
        None => Inbound::error("QMP input lacks member 'execute'", id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<Inbound> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Vec<Inbound> {
        decode_all(&[bytes])
    }

    fn req(execute: &str) -> Inbound {
        Inbound::Request(Request {
            execute: execute.into(),
            arguments: None,
            id: None,
        })
    }

    fn err(desc: &str) -> Inbound {
        Inbound::error(desc, None)
    }

    fn err_id(desc: &str, id: &str) -> Inbound {
        Inbound::error(desc, Some(serde_json::from_str(id).unwrap()))
    }

    #[test]
    fn no_newline_needed() {
        assert_eq!(
            decode(br#"{"execute":"guest-ping"}"#),
            vec![req("guest-ping")]
        );
    }

    #[test]
    fn several_requests_in_one_feed_with_whitespace() {
        let out = decode(
            b" \t\r\n{\"execute\":\"a\"}{\"execute\":\"b\"}\n\n  {\"execute\" :\t\"c\" }\r\n",
        );
        assert_eq!(out, vec![req("a"), req("b"), req("c")]);
    }

    #[test]
    fn split_byte_by_byte() {
        let input = br#"{"execute": "guest-sync", "arguments": {"id": 1234}, "id": [1.5, 'x']}"#;
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        let out = decode_all(&chunks);
        let Inbound::Request(r) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(out.len(), 1);
        assert_eq!(r.execute, "guest-sync");
        assert_eq!(r.arguments.as_ref().unwrap()["id"].to_string(), "1234");
        assert_eq!(r.id.as_ref().unwrap().to_string(), r#"[1.5,"x"]"#);
        // And a pipelined pair split at every possible point.
        let pair = br#"{"execute":"a"} {"execute":'b','arguments':{'s':"x\"y"}}"#;
        for cut in 0..=pair.len() {
            let out = decode_all(&[&pair[..cut], &pair[cut..]]);
            assert_eq!(out.len(), 2, "cut {cut}");
            assert_eq!(out[0], req("a"));
        }
    }

    #[test]
    fn single_quotes() {
        let out =
            decode(br#"{'execute':'guest-ping','arguments':{'a':"it's",'b':'say "hi" \'x\''}}"#);
        let Inbound::Request(r) = &out[0] else {
            panic!("{out:?}")
        };
        let args = r.arguments.as_ref().unwrap();
        assert_eq!(args["a"], "it's");
        assert_eq!(args["b"], "say \"hi\" 'x'");
    }

    #[test]
    fn ff_discards_partial_request_silently() {
        assert_eq!(decode(b"\xff"), vec![]);
        assert_eq!(decode(b"\xff\xfe\xff"), vec![]);
        assert_eq!(
            decode(b"{\"execute\":\"a\"\xff{\"execute\":\"b\"}"),
            vec![req("b")]
        );
        assert_eq!(
            decode(b"{\"execute\":[[1,\xfe{\"execute\":\"b\"}"),
            vec![req("b")]
        );
        // Split: partial in one feed, 0xFF in the next.
        assert_eq!(
            decode_all(&[b"{\"execute\":", b"\xff", b"{\"execute\":\"b\"}"]),
            vec![req("b")]
        );
        // After a stray error, in recovery.
        assert_eq!(
            decode(b"Xabc\xff{\"execute\":\"b\"}"),
            vec![err("JSON parse error, stray 'X'"), req("b")]
        );
        // A pending top-level number is dropped too.
        assert_eq!(decode(b"42\xff{\"execute\":\"b\"}"), vec![req("b")]);
    }

    #[test]
    fn ff_inside_string() {
        assert_eq!(
            decode(b"{\"execute\":\"gu\xff{\"execute\":\"b\"}"),
            vec![req("b")]
        );
        assert_eq!(
            decode(b"{\"execute\":'gu\\\xff{\"execute\":\"b\"}"),
            vec![req("b")]
        );
        // The reset is to the start state: what follows the 0xFF is new input.
        assert_eq!(
            decode(b"{\"execute\":\"gu\xffest{\"execute\":\"b\"}"),
            vec![err("JSON parse error, invalid keyword 'est'"), req("b")]
        );
    }

    #[test]
    fn orphan_closers() {
        assert_eq!(decode(b"}"), vec![err("JSON parse error, expecting value")]);
        assert_eq!(decode(b"]"), vec![err("JSON parse error, expecting value")]);
        assert_eq!(
            decode(b"} {\"execute\":\"a\"}"),
            vec![err("JSON parse error, expecting value"), req("a")]
        );
    }

    #[test]
    fn stray_bytes() {
        assert_eq!(decode(b"X"), vec![err("JSON parse error, stray 'X'")]);
        assert_eq!(decode(b"\0"), vec![err("JSON parse error, stray ''")]);
        // qemu's recovery: skip to a structural character.
        assert_eq!(
            decode(b"#garbage \"quoted\" {\"execute\":\"a\"}"),
            vec![err("JSON parse error, stray '#'"), req("a")]
        );
        // A control byte in a string: the partial string is the token text,
        // the orphan `}` then gives a second error (as in qemu).
        assert_eq!(
            decode(b"{\"execute\":\"x\x01\"}"),
            vec![
                err("JSON parse error, stray '\"x\u{1}'"),
                err("JSON parse error, expecting value")
            ]
        );
        // Partial token text spans feeds.
        assert_eq!(
            decode_all(&[b"{\"execute\":\"ab", b"c\n"]),
            vec![err("JSON parse error, stray '\"abc\n'")]
        );
        assert_eq!(
            decode(b"[-x]"),
            vec![
                err("JSON parse error, stray '-x'"),
                err("JSON parse error, expecting value")
            ]
        );
        assert_eq!(decode(b"01 "), vec![err("JSON parse error, stray '01'")]);
        // A control byte ends recovery and is itself stray.
        assert_eq!(
            decode(b"X\x01{\"execute\":\"a\"}"),
            vec![
                err("JSON parse error, stray 'X'"),
                err("JSON parse error, stray '\u{1}'"),
                req("a")
            ]
        );
        // Invalid UTF-8 in the token text is decoded lossily.
        assert_eq!(
            decode(b"\x80"),
            vec![err("JSON parse error, stray '\u{FFFD}'")]
        );
    }

    #[test]
    fn top_level_non_objects() {
        let not_object = err("QMP input must be a JSON object");
        assert_eq!(decode(b"42"), vec![]);
        assert_eq!(decode(b"42 "), vec![not_object.clone()]);
        assert_eq!(decode(b"-1.5e3\n"), vec![not_object.clone()]);
        assert_eq!(decode(b"\"str\""), vec![not_object.clone()]);
        assert_eq!(decode(b"'str'"), vec![not_object.clone()]);
        assert_eq!(decode(b"[1,{}]"), vec![not_object.clone()]);
        assert_eq!(decode(b"true\n"), vec![not_object.clone()]);
        assert_eq!(
            decode(b"null{\"execute\":\"a\"}"),
            vec![not_object.clone(), req("a")]
        );
        assert_eq!(
            decode(b"nope "),
            vec![err("JSON parse error, invalid keyword 'nope'")]
        );
        assert_eq!(decode(b"1 2 "), vec![not_object.clone(), not_object]);
    }

    #[test]
    fn json_errors() {
        assert_eq!(
            decode(br#"{"execute":"a","execute":"b"}"#),
            vec![err("JSON parse error, duplicate key")]
        );
        assert_eq!(
            decode(br#"{"execute" "a"}"#),
            vec![err("JSON parse error, missing : in object pair")]
        );
        assert_eq!(
            decode(br#"{"id":1 2}"#),
            vec![err("JSON parse error, expected separator in dict")]
        );
        assert_eq!(
            decode(br#"{"id":[true false]}"#),
            vec![err("JSON parse error, expected separator in list")]
        );
        assert_eq!(
            decode(br#"{"id":0e5}"#),
            vec![err("JSON parse error, expected separator in dict")]
        );
    }

    #[test]
    fn envelope_errors_echo_id() {
        let cases: &[(&[u8], &str, &str)] = &[
            (
                br#"{"execute":1,"id":8}"#,
                "QMP input member 'execute' must be a string",
                "8",
            ),
            (
                br#"{"id":"x","execute":"a","arguments":null}"#,
                "QMP input member 'arguments' must be an object",
                r#""x""#,
            ),
            (
                br#"{"execute":"a","arguments":[],"id":{"k":[]}}"#,
                "QMP input member 'arguments' must be an object",
                r#"{"k":[]}"#,
            ),
            (
                br#"{"exec-oob":"a","id":null}"#,
                "QMP input member 'exec-oob' is unexpected",
                "null",
            ),
            (
                br#"{"execute":"a","foo":1,"id":1.50}"#,
                "QMP input member 'foo' is unexpected",
                "1.50",
            ),
            (br#"{"id":[1]}"#, "QMP input lacks member 'execute'", "[1]"),
        ];
        for (input, desc, id) in cases {
            let out = decode(input);
            assert_eq!(
                out,
                vec![err_id(desc, id)],
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(decode(b"{}"), vec![err("QMP input lacks member 'execute'")]);
    }

    #[test]
    fn ids_are_echoed_exactly() {
        for id in [
            "1e3",
            "18446744073709551616",
            "-0.0",
            "1.50",
            "1E+03",
            "-12",
            "\"s\"",
            "null",
            "{\"a\":[1e400]}",
        ] {
            let input = format!(r#"{{"execute":"guest-ping","id":{id}}}"#);
            let out = decode(input.as_bytes());
            let Inbound::Request(r) = &out[0] else {
                panic!("{out:?}")
            };
            let mut line = Vec::new();
            super::super::write_return(&mut line, &Value::Object(Map::new()), r.id.as_ref());
            let expected = id.replace('\'', "\"");
            assert_eq!(
                String::from_utf8(line).unwrap(),
                format!("{{\"return\":{{}},\"id\":{expected}}}\n")
            );
        }
    }

    fn nested(arrays: usize) -> Vec<u8> {
        format!(
            r#"{{"execute":"a","id":{}{}}}"#,
            "[".repeat(arrays),
            "]".repeat(arrays)
        )
        .into_bytes()
    }

    #[test]
    fn nesting_limit_boundary() {
        // The object plus 1023 arrays is depth 1024: accepted.
        let out = decode(&nested(1023));
        let Inbound::Request(r) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(out.len(), 1);
        // Echoing the deep id works (serde_json's writer recurses 1024 deep).
        let mut line = Vec::new();
        super::super::write_return(&mut line, &Value::Null, r.id.as_ref());
        assert_eq!(line.len(), "{\"return\":null,\"id\":}\n".len() + 2 * 1023);
        // One more: exactly one error, then the stream goes on normally.
        let mut input = nested(1024);
        input.extend_from_slice(br#"{"execute":"next"}"#);
        assert_eq!(
            decode(&input),
            vec![err("JSON nesting depth limit exceeded"), req("next")]
        );
        // Brackets inside strings in the skipped part do not count.
        let input = format!(
            r#"{{"id":{}"]]]}}}}'\"",'\'[[',{}}}{{"execute":"next"}}"#,
            "[".repeat(1030),
            "]".repeat(1030)
        );
        assert_eq!(
            decode(input.as_bytes()),
            vec![err("JSON nesting depth limit exceeded"), req("next")]
        );
        // Split across feeds.
        let input = nested(5000);
        let mut chunks: Vec<&[u8]> = input.chunks(7).collect();
        chunks.push(br#"{"execute":"next"}"#);
        assert_eq!(
            decode_all(&chunks),
            vec![err("JSON nesting depth limit exceeded"), req("next")]
        );
    }

    fn big_id_request(n: usize) -> Vec<u8> {
        let mut v = br#"{"execute":"guest-ping","id":""#.to_vec();
        v.resize(v.len() + n, b'A');
        v.extend_from_slice(b"\"}");
        v
    }

    #[test]
    fn size_limit() {
        // The boundary measured on qemu-ga: 67,108,831 `A`s pass.
        let input = big_id_request(67_108_831);
        assert_eq!(input.len(), MAX_MESSAGE_SIZE - 1);
        let out = decode(&input);
        let Inbound::Request(r) = &out[0] else {
            panic!("{:?}", out.len())
        };
        assert_eq!(
            r.id.as_ref().and_then(Value::as_str).map(str::len),
            Some(67_108_831)
        );
        drop(out);
        // One more byte: one error, and the next request still parses, also
        // when the big message arrives in 4 KiB pieces.
        let mut input = big_id_request(67_108_832);
        input.extend_from_slice(br#" {"execute":"next"}"#);
        assert_eq!(
            decode(&input),
            vec![err("JSON token size limit exceeded"), req("next")]
        );
        let chunks: Vec<&[u8]> = input.chunks(4096).collect();
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out);
            assert!(d.buf.capacity() <= MAX_MESSAGE_SIZE);
        }
        assert_eq!(
            out,
            vec![err("JSON token size limit exceeded"), req("next")]
        );
        // Whitespace between tokens does not count.
        let mut input = br#"{"execute" : "guest-ping" , "id" : ""#.to_vec();
        input.resize(input.len() + 67_108_831, b'A');
        input.extend_from_slice(b"\" }  {\"execute\":\"next\"}");
        let out = decode(&input);
        assert_eq!(out.len(), 2);
        assert!(matches!(out[0], Inbound::Request(_)));
    }

    #[test]
    fn size_limit_top_level_string_and_number() {
        let mut input = vec![b'"'];
        input.resize(70 << 20, b'x');
        input.extend_from_slice(b"\"{\"execute\":\"next\"}");
        assert_eq!(
            decode(&input),
            vec![err("JSON token size limit exceeded"), req("next")]
        );
        let mut input = vec![b'1'; 70 << 20];
        input.extend_from_slice(b"{\"execute\":\"next\"}");
        assert_eq!(
            decode(&input),
            vec![err("JSON token size limit exceeded"), req("next")]
        );
    }

    #[test]
    fn token_count_limit() {
        // `{ "execute" : "a" , "id" : [ [ ]` (10 tokens), `,0` (2 tokens)
        // repeated, `] }` (2 tokens): exactly MAX_TOKEN_COUNT is accepted.
        let repeats = (MAX_TOKEN_COUNT - 12) / 2;
        let exact = format!(r#"{{"execute":"a","id":[[]{}]}}"#, ",0".repeat(repeats));
        assert_eq!(12 + 2 * repeats, MAX_TOKEN_COUNT);
        let out = decode(exact.as_bytes());
        assert!(
            matches!(out.as_slice(), [Inbound::Request(_)]),
            "{:?}",
            out.first()
        );
        // `{ "execute" : "a" , "id" : [ 0` (9 tokens), then `,0` pairs and
        // `] }`: one token over, the last `}` hits the limit.
        let over = format!(
            r#"{{"execute":"a","id":[0{}]}}{{"execute":"next"}}"#,
            ",0".repeat(repeats + 1)
        );
        assert_eq!(9 + 2 * (repeats + 1) + 2, MAX_TOKEN_COUNT + 1);
        assert_eq!(
            decode(over.as_bytes()),
            vec![err("JSON token count limit exceeded"), req("next")]
        );
        // Far over: the rest of the message is skipped, one error only.
        let far = format!(
            r#"{{"execute":"a","id":[0{}]}}{{"execute":"next"}}"#,
            ",0".repeat(repeats + 1000)
        );
        assert_eq!(
            decode(far.as_bytes()),
            vec![err("JSON token count limit exceeded"), req("next")]
        );
    }

    #[test]
    fn arguments_and_unicode() {
        let out = decode(
            "{\"execute\":\"x\",\"arguments\":{\"p\":\"/tmp/é\\u00e9\\ud83d\\ude00\"}}".as_bytes(),
        );
        let Inbound::Request(r) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(r.arguments.as_ref().unwrap()["p"], "/tmp/éé😀");
    }

    #[test]
    fn large_string_round_trip_in_pieces() {
        let payload = "QUJD".repeat(1_500_000);
        let input = format!(
            r#"{{"execute":"guest-file-write","arguments":{{"handle":1,"buf-b64":"{payload}"}}}}"#
        );
        for size in [4096, 65536, 1 << 20] {
            let chunks: Vec<&[u8]> = input.as_bytes().chunks(size).collect();
            let out = decode_all(&chunks);
            let Inbound::Request(r) = &out[0] else {
                panic!()
            };
            assert_eq!(
                r.arguments.as_ref().unwrap()["buf-b64"]
                    .as_str()
                    .map(str::len),
                Some(payload.len())
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz over interesting bytes.
        let alphabet =
            b"{}[]:,\"'\\ \n\t0123456789-.eE+abcdefnrtu\x00\x01\x7f\x80\xc0\xc3\xa9\xfe\xff";
        let mut seed: u64 = 0x243F_6A88_85A3_08D3;
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for _ in 0..2000 {
            let mut chunk = Vec::new();
            for _ in 0..64 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                chunk.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            d.feed(&chunk, &mut out);
            out.clear();
        }
        d.feed(b"\xff{\"execute\":\"a\"}", &mut out);
        assert_eq!(out, vec![req("a")]);
    }
}

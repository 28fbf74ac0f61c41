//! Response writers: one compact JSON object per response, then `\n`.
//!
//! serde_json's compact writer escapes `"`, `\` and every control character,
//! so a response is always exactly one line whatever strings it carries.
//! Member order differs from qemu's (hash order); JSON objects are unordered
//! and no client depends on it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Map, Value};

/// Prefixed by the caller to the response of `guest-sync-delimited`.
pub const DELIMITER: u8 = 0xFF;

/// The `class` of an error response. qemu-ga uses only these two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    GenericError,
    CommandNotFound,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::GenericError => "GenericError",
            ErrorClass::CommandNotFound => "CommandNotFound",
        }
    }
}

/// Serializes `value` compactly. Writing a `Value` or `str` to a `Vec` cannot
/// fail; should it ever, `null` keeps the line valid JSON.
fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let mark = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(mark);
        out.extend_from_slice(b"null");
    }
}

fn finish(out: &mut Vec<u8>, id: Option<&Value>) {
    if let Some(id) = id {
        out.extend_from_slice(b",\"id\":");
        write_json(out, id);
    }
    out.extend_from_slice(b"}\n");
}

/// `{"return":<value>,"id":<id>}\n` (no `id` member when `id` is `None`).
/// `value` is a `Value`, or a `RawValue` the caller has checked to be one
/// line of valid JSON.
pub fn write_return<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T, id: Option<&Value>) {
    out.extend_from_slice(b"{\"return\":");
    write_json(out, value);
    finish(out, id);
}

/// Like [`write_return`] with the return value `object` plus a last string
/// member `member` holding standard base64 (padded) of `staged`. The base64
/// text is encoded straight into `out`; no intermediate string is built. A
/// member of `object` with the same name as `member` is left out.
pub fn write_return_with_staged(
    out: &mut Vec<u8>,
    object: &Map<String, Value>,
    member: &str,
    staged: &[u8],
    id: Option<&Value>,
) {
    out.extend_from_slice(b"{\"return\":{");
    for (key, value) in object.iter().filter(|(key, _)| key.as_str() != member) {
        write_json(out, key.as_str());
        out.push(b':');
        write_json(out, value);
        out.push(b',');
    }
    write_json(out, member);
    out.extend_from_slice(b":\"");
    let encoded_len = base64::encoded_len(staged.len(), true).unwrap_or(0);
    let start = out.len();
    out.resize(start + encoded_len, 0);
    let written = match out.get_mut(start..) {
        Some(tail) => STANDARD.encode_slice(staged, tail).unwrap_or(0),
        None => 0,
    };
    out.truncate(start + written);
    out.extend_from_slice(b"\"}");
    finish(out, id);
}

/// `{"error":{"class":<class>,"desc":<desc>},"id":<id>}\n`.
pub fn write_error(out: &mut Vec<u8>, class: ErrorClass, desc: &str, id: Option<&Value>) {
    out.extend_from_slice(b"{\"error\":{\"class\":\"");
    out.extend_from_slice(class.as_str().as_bytes());
    out.extend_from_slice(b"\",\"desc\":");
    write_json(out, desc);
    out.push(b'}');
    finish(out, id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one_line(out: &[u8]) -> Value {
        assert_eq!(out.last(), Some(&b'\n'));
        let body = &out[..out.len() - 1];
        assert!(!body.contains(&b'\n'), "embedded newline");
        serde_json::from_slice(body).expect("valid JSON")
    }

    #[test]
    fn return_with_and_without_id() {
        let mut out = Vec::new();
        write_return(&mut out, &json!({}), None);
        assert_eq!(out, b"{\"return\":{}}\n");
        out.clear();
        let id = Value::Number(serde_json::Number::from_string_unchecked("1e3".into()));
        write_return(&mut out, &json!(2), Some(&id));
        assert_eq!(out, b"{\"return\":2,\"id\":1e3}\n");
    }

    #[test]
    fn error_format() {
        let mut out = Vec::new();
        write_error(
            &mut out,
            ErrorClass::CommandNotFound,
            "The command x has not been found",
            Some(&json!("a")),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"The command x has not been found\"},\"id\":\"a\"}\n"
        );
    }

    #[test]
    fn control_characters_in_desc_stay_on_one_line() {
        let desc: String = (0u8..0x20)
            .map(char::from)
            .chain("\"\\\u{7f}é".chars())
            .collect();
        let mut out = Vec::new();
        write_error(&mut out, ErrorClass::GenericError, &desc, None);
        let v = one_line(&out);
        assert_eq!(v["error"]["desc"], Value::String(desc));
        assert_eq!(v["error"]["class"], "GenericError");
        assert!(v.get("id").is_none());
    }

    #[test]
    fn staged_member_matches_serde_json() {
        use base64::Engine as _;
        for len in [0usize, 1, 2, 3, 4, 5, 1000, 4 << 20] {
            let staged: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut object = Map::new();
            object.insert("count".into(), json!(len));
            object.insert("buf-b64".into(), json!("stale, replaced"));
            object.insert("eof".into(), json!(true));
            let id = json!({"k": [1, "\n"]});
            let mut out = Vec::new();
            write_return_with_staged(&mut out, &object, "buf-b64", &staged, Some(&id));

            let mut expected_obj = object.clone();
            expected_obj.shift_remove("buf-b64");
            expected_obj.insert("buf-b64".into(), Value::String(STANDARD.encode(&staged)));
            let mut expected =
                serde_json::to_vec(&json!({"return": expected_obj, "id": id})).unwrap();
            expected.push(b'\n');
            assert!(out == expected, "len {len}");
            one_line(&out);
        }
    }

    #[test]
    fn staged_member_with_empty_object() {
        let mut out = Vec::new();
        write_return_with_staged(&mut out, &Map::new(), "buf-b64", b"hi", None);
        assert_eq!(out, b"{\"return\":{\"buf-b64\":\"aGk=\"}}\n");
    }
}

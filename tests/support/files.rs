//! guest-file-* requests, as the file tests and the VM tests send them:
//! `<command>` returns the whole response, `<command>_ok` checks it
//! succeeded with the shape qemu-ga gives and returns the result.

use serde_json::{Value, json};

use super::{Client, b64, ret, unb64};

pub fn open(client: &mut Client, path: &str, mode: Option<&str>) -> Value {
    let mut arguments = json!({ "path": path });
    if let Some(mode) = mode {
        arguments["mode"] = json!(mode);
    }
    client.call_value(&json!({"execute": "guest-file-open", "arguments": arguments}))
}

#[track_caller]
pub fn open_ok(client: &mut Client, path: &str, mode: &str) -> i64 {
    let response = open(client, path, Some(mode));
    ret(&response)
        .as_i64()
        .unwrap_or_else(|| panic!("open {path} {mode}: handle is not an integer: {response}"))
}

pub fn read(client: &mut Client, handle: i64, count: Option<i64>) -> Value {
    let mut arguments = json!({ "handle": handle });
    if let Some(count) = count {
        arguments["count"] = json!(count);
    }
    client.call_value(&json!({"execute": "guest-file-read", "arguments": arguments}))
}

/// A successful read: `(bytes, eof)`, with `count` checked against the bytes.
#[track_caller]
pub fn read_ok(client: &mut Client, handle: i64, count: Option<i64>) -> (Vec<u8>, bool) {
    let response = read(client, handle, count);
    let result = ret(&response)
        .as_object()
        .expect("read result is an object");
    assert_eq!(
        result.len(),
        3,
        "read result must be count, buf-b64, eof: {response}"
    );
    let data = unb64(result["buf-b64"].as_str().expect("buf-b64 is a string"));
    assert_eq!(
        result["count"].as_u64(),
        Some(data.len() as u64),
        "count disagrees with buf-b64: {response}"
    );
    (data, result["eof"].as_bool().expect("eof is a bool"))
}

pub fn write(client: &mut Client, handle: i64, b64: &str, count: Option<i64>) -> Value {
    let mut arguments = json!({ "handle": handle, "buf-b64": b64 });
    if let Some(count) = count {
        arguments["count"] = json!(count);
    }
    client.call_value(&json!({"execute": "guest-file-write", "arguments": arguments}))
}

#[track_caller]
pub fn write_ok(client: &mut Client, handle: i64, data: &[u8]) {
    let response = write(client, handle, &b64(data), None);
    assert_eq!(
        ret(&response),
        &json!({"count": data.len(), "eof": false}),
        "{response}"
    );
}

pub fn seek(client: &mut Client, handle: i64, offset: i64, whence: Value) -> Value {
    client.call_value(&json!({
        "execute": "guest-file-seek",
        "arguments": {"handle": handle, "offset": offset, "whence": whence},
    }))
}

#[track_caller]
pub fn seek_ok(client: &mut Client, handle: i64, offset: i64, whence: Value) -> i64 {
    let response = seek(client, handle, offset, whence);
    let result = ret(&response);
    assert_eq!(result["eof"], json!(false), "{response}");
    assert_eq!(result.as_object().map(|o| o.len()), Some(2), "{response}");
    result["position"]
        .as_i64()
        .unwrap_or_else(|| panic!("no position: {response}"))
}

pub fn close(client: &mut Client, handle: i64) -> Value {
    client.call_value(&json!({"execute": "guest-file-close", "arguments": {"handle": handle}}))
}

#[track_caller]
pub fn close_ok(client: &mut Client, handle: i64) {
    let response = close(client, handle);
    assert_eq!(ret(&response), &json!({}), "{response}");
}

pub fn flush(client: &mut Client, handle: i64) -> Value {
    client.call_value(&json!({"execute": "guest-file-flush", "arguments": {"handle": handle}}))
}

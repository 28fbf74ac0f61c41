//! The wire protocol, end to end: framing, 0xFF, `id`, error classes and
//! texts, limits, connection handling, signals and the command line. Each test
//! drives the built `sandga` over a unix socket (default policy unless
//! stated); expectations are qemu-ga's (see the spec, §1 and §3), except
//! where sandga differs on purpose, which the test says.

mod support;

use std::ffi::OsString;
use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use support::*;

const PING: &str = r#"{"execute":"guest-ping"}"#;

fn sync(id: i64) -> String {
    format!(r#"{{"execute":"guest-sync","arguments":{{"id":{id}}}}}"#)
}

/// Sends a guest-sync and asserts that the very next response is its answer
/// (proves that nothing else was queued before it and the agent is in sync).
fn assert_in_sync(client: &mut Client, id: i64) {
    let answer = client.call(&sync(id));
    assert_eq!(
        ret(&answer),
        &json!(id),
        "expected the sync answer, got {answer}"
    );
}

// ---------------------------------------------------------------------------
// Framing

#[test]
fn request_needs_no_newline() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    client.send(PING);
    let response = client.recv_response();
    assert_eq!(response.value, json!({"return": {}}));
    assert!(!response.delimited);
    // Nothing else follows.
    client.expect_silence();
}

#[test]
fn several_requests_in_one_write_are_answered_in_order() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    client.send(&format!("{PING}{}{}{PING}", sync(2), sync(3)));
    assert_eq!(ret(&client.recv()), &json!({}));
    assert_eq!(ret(&client.recv()), &json!(2));
    assert_eq!(ret(&client.recv()), &json!(3));
    assert_eq!(ret(&client.recv()), &json!({}));
    client.expect_silence();
}

#[test]
fn request_split_byte_by_byte() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    let request = sync(424242);
    let (head, last) = request.as_bytes().split_at(request.len() - 1);
    for byte in head {
        client.send_raw(std::slice::from_ref(byte));
    }
    // Not complete yet: no answer.
    client.expect_silence();
    client.send_raw(last);
    assert_eq!(ret(&client.recv()), &json!(424242));
}

#[test]
fn whitespace_between_and_inside_requests_is_ignored() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    client.send(
        " \t\r\n{ \"execute\" :\t\"guest-sync\" ,\r\n\"arguments\":{\"id\" : 5 } }\n\n\t  \r\n",
    );
    assert_eq!(ret(&client.recv()), &json!(5));
    client.send("\n\n{\"execute\":\"guest-ping\"}   \n");
    assert_eq!(ret(&client.recv()), &json!({}));
    client.expect_silence();
}

#[test]
fn single_quoted_json() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    let answer = client.call("{'execute':'guest-sync','arguments':{'id':7}}");
    assert_eq!(ret(&answer), &json!(7));
    // The \' escape, and a double quote inside a single-quoted string.
    let answer = client.call(r#"{'execute':'guest-ping','id':'it\'s "q"'}"#);
    assert_eq!(ret(&answer), &json!({}));
    assert_eq!(answer["id"], json!("it's \"q\""));
}

// ---------------------------------------------------------------------------
// 0xFF

#[test]
fn ff_discards_a_partial_request_and_is_not_answered() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    // A lone 0xFF: qemu-ga answers it with a "stray" parse error; sandga
    // deliberately stays silent (the byte only resets the parser).
    client.send_raw(b"\xff");
    client.expect_silence();
    // A partial request, then 0xFF: the partial request is dropped.
    client.send_raw(br#"{"execute":"guest-sync","arguments":{"id":1"#);
    client.send_raw(b"\xff");
    client.expect_silence();
    assert_in_sync(&mut client, 2);
    // Inside a string, in the same write as the next request.
    client.send_raw(b"{\"execute\":\"guest-sync\",\"id\":\"ab\xffcd");
    client.send_raw(b"\xff\xff");
    client.send_raw(sync(3).as_bytes());
    assert_eq!(ret(&client.recv()), &json!(3));
    client.expect_silence();
}

#[test]
fn sync_delimited_is_prefixed_by_ff() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    for id in [0_i64, 1, 3_735_928_559, 1_795_279_719_404, -42] {
        let mut request = vec![0xFF];
        request.extend_from_slice(
            format!(r#"{{"execute":"guest-sync-delimited","arguments":{{"id":{id}}}}}"#).as_bytes(),
        );
        client.send_raw(&request);
        let response = client.recv_response();
        assert!(response.delimited, "no 0xFF prefix: {:?}", response.text());
        // Exactly one 0xFF, right before the object; one line.
        assert_eq!(response.raw.get(1), Some(&b'{'), "{:?}", response.raw);
        assert_eq!(response.value, json!({ "return": id }));
        assert_eq!(response.value["return"].to_string(), id.to_string());
    }
    // The prefix is one-shot: the next plain sync is not prefixed.
    assert_in_sync(&mut client, 9);
}

#[test]
fn sync_delimited_errors_are_not_prefixed() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    let response = client.call(r#"{"execute":"guest-sync-delimited"}"#);
    assert_error(&response, "Parameter 'id' is missing");
    let response = client.call(r#"{"execute":"guest-sync-delimited","arguments":{"id":"x"}}"#);
    assert_error(
        &response,
        "Invalid parameter type for 'id', expected: integer",
    );
    let response =
        client.call(r#"{"execute":"guest-sync-delimited","arguments":{"id":1,"foo":2}}"#);
    assert_error(&response, "Parameter 'foo' is unexpected");
    // And a failed delimited sync leaves no prefix pending.
    assert_in_sync(&mut client, 4);
}

// ---------------------------------------------------------------------------
// id

/// Compact JSON texts of ids, each echoed exactly as sent.
const IDS: &[&str] = &[
    r#""abc""#,
    r#""""#,
    "42",
    "-7",
    "0",
    r#"{"a":[1,"x",{"b":null}],"c":true}"#,
    "[1,2,[3]]",
    "[]",
    "{}",
    "null",
    "true",
    "1e3",
    "18446744073709551616",
    "1.50",
    "-0.0",
    "1E-2",
];

/// The response carries `"id":<id>` with `id` byte for byte as sent (the
/// client's own JSON library may normalise numbers, e.g. `1e3` to `1e+3`,
/// so the raw line is checked, and the parsed value compared).
#[track_caller]
fn assert_id_verbatim(response: &Response, id: &str) {
    let text = response.text();
    let member = format!("\"id\":{id}");
    let found = text.match_indices(&member).any(|(at, _)| {
        matches!(
            text.as_bytes().get(at + member.len()),
            Some(b'}') | Some(b',')
        )
    });
    assert!(found, "id {id} not echoed byte for byte in {text:?}");
    let expected: Value = serde_json::from_str(id).unwrap();
    assert_eq!(response.value["id"], expected, "in {text:?}");
}

#[test]
fn id_is_echoed_verbatim_on_success_and_error() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    for id in IDS {
        // Success.
        client.send(&format!(r#"{{"execute":"guest-ping","id":{id}}}"#));
        let response = client.recv_response();
        assert_eq!(ret(&response.value), &json!({}), "id {id}");
        assert_id_verbatim(&response, id);
        // Error from the dispatcher (unknown command).
        client.send(&format!(r#"{{"id":{id},"execute":"guest-foo"}}"#));
        let response = client.recv_response();
        assert_error_class(
            &response.value,
            "CommandNotFound",
            "The command guest-foo has not been found",
        );
        assert_id_verbatim(&response, id);
        // Error from the argument checks.
        client.send(&format!(r#"{{"execute":"guest-sync","id":{id}}}"#));
        let response = client.recv_response();
        assert_error(&response.value, "Parameter 'id' is missing");
        assert_id_verbatim(&response, id);
        // Error from the envelope checks.
        client.send(&format!(r#"{{"id":{id},"exec-oob":"guest-ping"}}"#));
        let response = client.recv_response();
        assert_error(&response.value, "QMP input member 'exec-oob' is unexpected");
        assert_id_verbatim(&response, id);
    }
    // No id, no id member.
    let response = client.call(PING);
    assert!(response.get("id").is_none(), "{response}");
}

// ---------------------------------------------------------------------------
// Errors

#[test]
fn unknown_command() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    assert_error_class(
        &client.call(r#"{"execute":"guest-foo"}"#),
        "CommandNotFound",
        "The command guest-foo has not been found",
    );
    // Names are case-sensitive.
    assert_error_class(
        &client.call(r#"{"execute":"GUEST-PING"}"#),
        "CommandNotFound",
        "The command GUEST-PING has not been found",
    );
    // A forbidden command sandga does not implement is just unknown (and is
    // never run): the name is all that matters here.
    assert_error_class(
        &client.call(r#"{"execute":"guest-invalid-cmd"}"#),
        "CommandNotFound",
        "The command guest-invalid-cmd has not been found",
    );
}

#[test]
fn command_disabled_by_policy() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    for name in ["guest-file-open", "guest-file-read"] {
        let response = client.call(&format!(
            r#"{{"execute":"{name}","arguments":{{"path":"/etc/passwd"}},"id":"d"}}"#
        ));
        let (class, desc) = error(&response);
        assert_eq!(class, "CommandNotFound", "{response}");
        assert!(
            desc.starts_with(&format!("Command {name} has been disabled")),
            "{desc}"
        );
        assert_eq!(response["id"], json!("d"));
    }
}

#[test]
fn input_that_is_not_an_object() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    // Scalars need a following character to end (qemu's lexer lookahead).
    for input in [
        "[]",
        "[1,2]",
        r#"[{"execute":"guest-ping"}]"#,
        "42 ",
        "-1.5\n",
        r#""guest-ping""#,
        "'x'",
        "true ",
        "null\n",
    ] {
        let response = client.call(input);
        assert_error(&response, "QMP input must be a JSON object");
        assert!(response.get("id").is_none(), "{input}: {response}");
    }
    assert_in_sync(&mut client, 1);
}

#[test]
fn envelope_errors() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    let cases = [
        (
            r#"{"exec-oob":"guest-ping"}"#,
            "QMP input member 'exec-oob' is unexpected",
        ),
        (r#"{"arguments":{}}"#, "QMP input lacks member 'execute'"),
        ("{}", "QMP input lacks member 'execute'"),
        (
            r#"{"execute":"guest-ping","arguments":[]}"#,
            "QMP input member 'arguments' must be an object",
        ),
        (
            r#"{"execute":"guest-ping","arguments":null}"#,
            "QMP input member 'arguments' must be an object",
        ),
        (
            r#"{"execute":"guest-ping","arguments":"x"}"#,
            "QMP input member 'arguments' must be an object",
        ),
        (
            r#"{"execute":1}"#,
            "QMP input member 'execute' must be a string",
        ),
        (
            r#"{"execute":"guest-ping","foo":1}"#,
            "QMP input member 'foo' is unexpected",
        ),
    ];
    for (input, desc) in cases {
        let response = client.call(input);
        assert_error(&response, desc);
        assert!(response.get("id").is_none(), "{input}: {response}");
    }
    // With an id, the id is echoed.
    let response = client.call(r#"{"arguments":{},"id":"x1"}"#);
    assert_error(&response, "QMP input lacks member 'execute'");
    assert_eq!(response["id"], json!("x1"));
}

#[test]
fn argument_errors() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    let cases = [
        (
            r#"{"execute":"guest-ping","arguments":{"foo":42}}"#,
            "Parameter 'foo' is unexpected",
        ),
        (
            r#"{"execute":"guest-info","arguments":{"bar":[]}}"#,
            "Parameter 'bar' is unexpected",
        ),
        (r#"{"execute":"guest-sync"}"#, "Parameter 'id' is missing"),
        (
            r#"{"execute":"guest-sync","arguments":{}}"#,
            "Parameter 'id' is missing",
        ),
        (
            r#"{"execute":"guest-sync","arguments":{"id":"1"}}"#,
            "Invalid parameter type for 'id', expected: integer",
        ),
        (
            r#"{"execute":"guest-sync","arguments":{"id":1.0}}"#,
            "Invalid parameter type for 'id', expected: integer",
        ),
        (
            r#"{"execute":"guest-sync","arguments":{"id":18446744073709551616}}"#,
            "Invalid parameter type for 'id', expected: integer",
        ),
        (
            r#"{"execute":"guest-sync","arguments":{"id":9223372036854775808}}"#,
            "Invalid parameter type for 'id', expected: integer",
        ),
        (
            r#"{"execute":"guest-sync","arguments":{"id":null}}"#,
            "Invalid parameter type for 'id', expected: integer",
        ),
        (
            r#"{"execute":"guest-sync","arguments":{"id":[1]}}"#,
            "Invalid parameter type for 'id', expected: integer",
        ),
    ];
    for (input, desc) in cases {
        assert_error(&client.call(input), desc);
    }
}

#[test]
fn json_parse_errors() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    // Each input is one lexically valid, balanced message: exactly one error,
    // then the agent answers the next request.
    let cases = [
        (r#"{"execute" "guest-ping"}"#, None),
        (r#"{"execute":"guest-ping",}"#, None),
        (r#"{"execute":"guest-ping""id":1}"#, None),
        (r#"{1:2}"#, None),
        (
            r#"{"execute":tru}"#,
            Some("JSON parse error, invalid keyword 'tru'"),
        ),
        (
            r#"{"execute":"guest-ping","id":1,"id":2}"#,
            Some("JSON parse error, duplicate key"),
        ),
        ("}", Some("JSON parse error, expecting value")),
        ("]", Some("JSON parse error, expecting value")),
        (
            r#"{"execute":"guest-ping","id":"\q"}"#,
            Some("JSON parse error, invalid escape sequence in string"),
        ),
    ];
    for (n, (input, exact)) in cases.into_iter().enumerate() {
        let response = client.call(input);
        let (class, desc) = error(&response);
        assert_eq!(class, "GenericError", "{input}: {response}");
        assert!(desc.starts_with("JSON parse error, "), "{input}: {desc}");
        if let Some(exact) = exact {
            assert_eq!(desc, exact, "{input}");
        }
        assert_in_sync(&mut client, n as i64);
    }
}

#[test]
fn every_response_is_one_line() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    // Control characters and non-ASCII in a command name come back in the
    // desc, escaped, on one line (recv checks the line is valid JSON).
    let response = client.call(r#"{"execute":"guest-\n\r\t\u0001é\"x"}"#);
    assert_error_class(
        &response,
        "CommandNotFound",
        "The command guest-\n\r\t\u{1}é\"x has not been found",
    );
    let response = client.call(r#"{"execute":"guest-ping","id":"a\nb\u2028c"}"#);
    assert_eq!(response["id"], json!("a\nb\u{2028}c"));
}

// ---------------------------------------------------------------------------
// Commands answered by the runtime

#[test]
fn guest_sync_int64_limits() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    for id in [
        "1795279719404",
        "0",
        "-1",
        "-1795279719404",
        "4294967296",
        "9223372036854775807",
        "-9223372036854775808",
    ] {
        client.send(&format!(
            r#"{{"execute":"guest-sync","arguments":{{"id":{id}}}}}"#
        ));
        let response = client.recv_response();
        assert!(!response.delimited);
        assert_eq!(response.value.as_object().map(|o| o.len()), Some(1));
        // The number exactly (the client keeps integer digits as received).
        assert_eq!(
            response.value["return"].to_string(),
            id,
            "{:?}",
            response.text()
        );
    }
}

#[test]
fn guest_ping_returns_empty_object() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    assert_eq!(ret(&client.call(PING)), &json!({}));
    let response = client.call(r#"{"execute":"guest-ping","arguments":{}}"#);
    assert_eq!(ret(&response), &json!({}));
}

fn supported_commands(info: &Value) -> Vec<(String, bool, bool)> {
    let info = ret(info);
    assert!(
        info["version"].as_str().is_some_and(|v| !v.is_empty()),
        "version is not a non-empty string: {info}"
    );
    let list = info["supported_commands"]
        .as_array()
        .unwrap_or_else(|| panic!("supported_commands is not a list: {info}"));
    list.iter()
        .map(|entry| {
            let object = entry.as_object().expect("command info is an object");
            assert_eq!(
                object.len(),
                3,
                "exactly name, enabled, success-response: {entry}"
            );
            (
                entry["name"].as_str().expect("name").to_string(),
                entry["enabled"].as_bool().expect("enabled"),
                entry["success-response"]
                    .as_bool()
                    .expect("success-response"),
            )
        })
        .collect()
}

fn lookup<'a>(list: &'a [(String, bool, bool)], name: &str) -> &'a (String, bool, bool) {
    list.iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("{name} is not in supported_commands: {list:?}"))
}

const RUNTIME_COMMANDS: &[&str] = &[
    "guest-sync-delimited",
    "guest-sync",
    "guest-ping",
    "guest-info",
];

#[test]
fn guest_info_with_default_policy() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    let list = supported_commands(&client.call(r#"{"execute":"guest-info"}"#));
    for name in RUNTIME_COMMANDS.iter().chain(&["guest-get-time"]) {
        assert_eq!(lookup(&list, name), &(name.to_string(), true, true));
    }
    for name in FILE_COMMANDS {
        assert_eq!(lookup(&list, name), &(name.to_string(), false, true));
    }
    // The privileged commands are listed, disabled: the default policy
    // grants no change to the guest.
    for name in [
        "guest-set-time",
        "guest-set-vcpus",
        "guest-fsfreeze-status",
        "guest-fsfreeze-freeze",
        "guest-fsfreeze-thaw",
        "guest-fstrim",
    ] {
        assert_eq!(lookup(&list, name), &(name.to_string(), false, true));
    }
    assert_eq!(
        lookup(&list, "guest-shutdown"),
        &("guest-shutdown".to_string(), false, false)
    );
    // Each command once; these are not even implemented.
    let mut names: Vec<&str> = list.iter().map(|(n, _, _)| n.as_str()).collect();
    names.sort_unstable();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count, "duplicate entries: {list:?}");
    for absent in ["guest-suspend-ram", "guest-exec"] {
        assert!(!names.contains(&absent), "{absent} listed");
    }
}

#[test]
fn guest_info_with_qemu_ga_compat_policy() {
    let agent = Agent::start(Policy::Shipped("qemu-ga-compat.toml"));
    let mut client = agent.connect();
    let list = supported_commands(&client.call(r#"{"execute":"guest-info"}"#));
    for name in RUNTIME_COMMANDS
        .iter()
        .chain(&["guest-get-time"])
        .chain(FILE_COMMANDS)
    {
        assert_eq!(lookup(&list, name), &(name.to_string(), true, true));
    }
}

#[test]
fn guest_get_time_is_the_current_time_in_nanoseconds() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let response = client.call(r#"{"execute":"guest-get-time"}"#);
    let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let time = ret(&response)
        .as_i64()
        .unwrap_or_else(|| panic!("not an integer: {response}"));
    let slack = 2_000_000_000_i128;
    let (before, after) = (before.as_nanos() as i128, after.as_nanos() as i128);
    assert!(
        i128::from(time) >= before - slack && i128::from(time) <= after + slack,
        "guest-get-time {time} is not within 2 s of [{before}, {after}]"
    );
    assert_error(
        &client.call(r#"{"execute":"guest-get-time","arguments":{"x":1}}"#),
        "Parameter 'x' is unexpected",
    );
}

#[test]
fn component_command_without_its_grant_is_disabled() {
    let agent = Agent::start(Policy::Text(
        "[commands.guest-info]\n[commands.guest-ping]\n\
         [commands.guest-get-time]\ngrants = []\n"
            .into(),
    ));
    let mut client = agent.connect();
    let list = supported_commands(&client.call(r#"{"execute":"guest-info"}"#));
    assert_eq!(
        lookup(&list, "guest-get-time"),
        &("guest-get-time".to_string(), false, true)
    );
    let response = client.call(r#"{"execute":"guest-get-time","id":3}"#);
    let (class, desc) = error(&response);
    assert_eq!(class, "CommandNotFound", "{response}");
    assert!(
        desc.starts_with("Command guest-get-time has been disabled"),
        "{desc}"
    );
    assert!(
        desc.contains("clock"),
        "the desc does not name the grant: {desc}"
    );
    assert_eq!(response["id"], json!(3));
    // Commands the policy omits are disabled too.
    let (class, desc) = error(&client.call(&sync(1)));
    assert_eq!(class, "CommandNotFound");
    assert!(
        desc.starts_with("Command guest-sync has been disabled"),
        "{desc}"
    );
}

// ---------------------------------------------------------------------------
// Limits

/// `{"execute":"guest-ping","arguments":{"foo":[[…]]}}` with `depth` levels
/// of nesting in all (the two braces count).
fn nested(depth: usize) -> String {
    let arrays = depth - 2;
    format!(
        r#"{{"execute":"guest-ping","arguments":{{"foo":{}{}}}}}"#,
        "[".repeat(arrays),
        "]".repeat(arrays)
    )
}

#[test]
fn nesting_limit_is_1024() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    // 1024 levels are parsed (and the command then sees the extra member).
    assert_error(&client.call(&nested(1024)), "Parameter 'foo' is unexpected");
    assert_in_sync(&mut client, 1);
    // 1025 levels: one error, nothing more, and the next request is answered.
    assert_error(
        &client.call(&nested(1025)),
        "JSON nesting depth limit exceeded",
    );
    assert_in_sync(&mut client, 2);
    // The same in one write with the next request.
    client.send(&format!("{}{}", nested(1025), sync(3)));
    assert_error(&client.recv(), "JSON nesting depth limit exceeded");
    assert_eq!(ret(&client.recv()), &json!(3));
    client.expect_silence();
}

const MAX_MESSAGE: usize = 64 << 20;

/// Sends `prefix`, `len` bytes of `A`, then `suffix`, in 1 MiB writes.
fn send_big(client: &mut Client, prefix: &str, len: usize, suffix: &str) {
    client.send(prefix);
    let chunk = vec![b'A'; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        client.send_raw(&chunk[..n]);
        left -= n;
    }
    client.send(suffix);
}

#[test]
fn message_size_limit_is_64_mib() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    let prefix = r#"{"execute":"guest-ping","arguments":{"foo":""#;
    let suffix = r#""}}"#;
    let frame = prefix.len() + suffix.len();
    // The largest message qemu-ga accepts is 64 MiB - 1 bytes (spec §1.5:
    // 67,108,863 bytes with a 32-byte frame).
    send_big(&mut client, prefix, MAX_MESSAGE - 1 - frame, suffix);
    assert_error(&client.recv(), "Parameter 'foo' is unexpected");
    assert_in_sync(&mut client, 1);
    // One byte more: one error, and the agent answers the next request.
    send_big(&mut client, prefix, MAX_MESSAGE - frame, suffix);
    assert_error(&client.recv(), "JSON token size limit exceeded");
    assert_in_sync(&mut client, 2);
    // Well over the limit.
    send_big(&mut client, prefix, MAX_MESSAGE + (3 << 20), suffix);
    assert_error(&client.recv(), "JSON token size limit exceeded");
    assert_in_sync(&mut client, 3);
    client.expect_silence();
}

// ---------------------------------------------------------------------------
// Connections (unix-listen)

#[test]
fn second_client_waits_for_the_first() {
    let agent = Agent::start(Policy::Default);
    let mut first = agent.connect();
    assert_in_sync(&mut first, 1);
    let mut second = agent.connect();
    second.send(&sync(2));
    second.expect_silence();
    // The first is still served.
    assert_in_sync(&mut first, 3);
    first.disconnect();
    // Now the second's queued request is answered.
    assert_eq!(ret(&second.recv()), &json!(2));
    assert_in_sync(&mut second, 4);
}

#[test]
fn new_client_after_disconnect_is_served() {
    let agent = Agent::start(Policy::Default);
    for id in 0..3 {
        let mut client = agent.connect();
        assert_in_sync(&mut client, id);
        client.disconnect();
    }
    // A client that disconnects without reading its answer does not break
    // the agent either.
    let mut client = agent.connect();
    client.send(&format!("{}{}", sync(10), sync(11)));
    client.disconnect();
    let mut client = agent.connect();
    assert_in_sync(&mut client, 12);
}

/// qemu-ga keeps its parser across connections (a partial request from one
/// client swallows the next client's bytes, which is why clients send 0xFF
/// first). sandga resets the parser for each connection on purpose, so the
/// next client is answered whether or not it resynchronises.
#[test]
fn partial_request_does_not_carry_over_to_the_next_client() {
    let agent = Agent::start(Policy::Default);
    let mut first = agent.connect();
    first.send(r#"{"execute":"guest-sync","arguments":{"id":1"#);
    first.disconnect();
    let mut second = agent.connect();
    assert_in_sync(&mut second, 2);
    second.expect_silence();
    // Also inside a string and after a stray byte.
    second.send("{\"execute\":\"guest-sync\",\"id\":\"abc");
    second.disconnect();
    let mut third = agent.connect();
    assert_in_sync(&mut third, 3);
    third.send("\u{1}");
    assert_error(&third.recv(), "JSON parse error, stray '\u{1}'");
    third.disconnect();
    let mut fourth = agent.connect();
    assert_in_sync(&mut fourth, 4);
}

// ---------------------------------------------------------------------------
// Signals and pidfile

#[test]
fn sigint_exits_cleanly() {
    let mut agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    assert_in_sync(&mut client, 1);
    let status = agent.signal_and_wait(Signal::SIGINT);
    assert_eq!(
        status.code(),
        Some(0),
        "after SIGINT: {}",
        describe(&status)
    );
}

#[test]
fn sigterm_exits_cleanly_while_a_client_is_connected() {
    let mut agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    client.send(r#"{"execute":"guest-sync","#);
    client.expect_silence();
    agent.stop();
}

#[test]
fn pidfile_is_written_and_removed() {
    let dir = temp_dir();
    let pidfile = dir.path().join("sandga.pid");
    let mut config = Config::new(Policy::Default);
    config.args = vec!["-f".into(), "@DIR@/sandga.pid".into()];
    let mut agent = Agent::start_in(dir, config);
    // The agent answered its start-up probe, so it wrote the pidfile before.
    let text = fs::read_to_string(&pidfile).expect("reading the pidfile");
    assert_eq!(text.trim(), agent.pid().to_string(), "pidfile {text:?}");
    agent.stop();
    assert!(!pidfile.exists(), "pidfile not removed on exit");
}

// ---------------------------------------------------------------------------
// Command line

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

#[test]
fn unknown_option() {
    let dir = temp_dir();
    for args in [&["--bogus"][..], &["-x"], &["-m", "unix-listen", "--bogus"]] {
        let out = run_to_exit(&sandga_bin(), &os(args), dir.path());
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            describe(&out.status)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Unknown option"), "{args:?}: {stderr}");
    }
}

#[test]
fn version_option() {
    let dir = temp_dir();
    let out = run_to_exit(&sandga_bin(), &os(&["-V"]), dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out.status));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(env!("CARGO_PKG_VERSION")),
        "no version in {stdout:?}"
    );
    let out = run_to_exit(&sandga_bin(), &os(&["--help"]), dir.path());
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for option in ["--method", "--path", "--statedir", "--pidfile", "--policy"] {
        assert!(stdout.contains(option), "help lacks {option}: {stdout}");
    }
}

#[test]
fn unix_listen_needs_a_path() {
    let dir = temp_dir();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    let mut args = os(&["-m", "unix-listen", "-t"]);
    args.push(state.into_os_string());
    let out = run_to_exit(&sandga_bin(), &args, dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out.status));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("must specify a path for this channel"),
        "{stderr}"
    );
}

#[test]
fn malformed_policy_stops_the_daemon() {
    let cases = [
        // A TOML syntax error on line 3.
        "[commands.guest-ping]\n\nthis is not toml\n",
        // An unknown command on line 3.
        "[commands.guest-ping]\n\n[commands.guest-frobnicate]\n",
        // An unknown grant on line 3.
        "[commands.guest-ping]\n[commands.guest-get-time]\ngrants = [\"network\"]\n",
    ];
    for text in cases {
        let dir = temp_dir();
        let state = dir.path().join("state");
        fs::create_dir(&state).unwrap();
        let policy = dir.path().join("broken-policy.toml");
        fs::write(&policy, text).unwrap();
        let sock = dir.path().join("sock");
        let mut args = os(&["-m", "unix-listen", "-p"]);
        args.push(sock.clone().into_os_string());
        args.push("-t".into());
        args.push(state.into_os_string());
        args.push("--policy".into());
        args.push(policy.into_os_string());
        let out = run_to_exit(&sandga_bin(), &args, dir.path());
        assert_ne!(
            out.status.code(),
            Some(0),
            "{text:?}: {}",
            describe(&out.status)
        );
        assert!(
            out.status.code().is_some(),
            "{text:?}: {}",
            describe(&out.status)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("broken-policy.toml:3:"),
            "{text:?}: stderr lacks file and line: {stderr}"
        );
        // It never served.
        assert!(
            std::os::unix::net::UnixStream::connect(&sock).is_err(),
            "{text:?}: the socket accepts"
        );
    }
}

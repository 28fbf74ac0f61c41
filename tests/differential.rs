//! Differential test: Debian's qemu-ga and sandga (with
//! `policies/qemu-ga-compat.toml`) get the same safe requests, and their
//! answers must mean the same: the same shape (return or error), the same
//! error class, the same `desc` and the same return values, except where
//! sandga differs on purpose; each such difference is listed where it is
//! compared.
//!
//! Deliberate differences (not compared, or compared loosely):
//! * A 0xFF byte gets a `JSON parse error, stray '\uFFFD'` from qemu-ga and
//!   nothing from sandga (it only resets the parser).
//! * `guest-info`'s `version` is qemu-ga's QEMU version and sandga's own.
//! * `guest-info` lists more commands on qemu-ga: only the commands both
//!   list are compared.
//! * Member order and separators (`", "` / `": "` vs compact): JSON objects
//!   are compared as values.
//! * guest-get-time: two clocks read at slightly different moments; likewise
//!   the traffic counters of guest-network-get-interfaces.
//!
//! Only guest-ping, guest-sync*, guest-info, guest-get-time, guest-get-vcpus,
//! guest-network-get-interfaces and guest-file-*
//! on a file in each agent's own temporary directory are ever sent; never
//! freeze, thaw, shutdown, suspend, set-time, set-vcpus or fstrim.

mod support;

use std::fs;

use serde_json::{Value, json};
use support::*;

/// One agent under test and its client.
struct Side {
    name: &'static str,
    agent: Agent,
    client: Client,
}

struct Pair {
    qemu: Side,
    sandga: Side,
}

impl Pair {
    fn start() -> Pair {
        let qemu = Agent::start_qemu_ga();
        let sandga = Agent::start(Policy::Shipped("qemu-ga-compat.toml"));
        let qemu_client = qemu.connect();
        let sandga_client = sandga.connect();
        Pair {
            qemu: Side {
                name: "qemu-ga",
                agent: qemu,
                client: qemu_client,
            },
            sandga: Side {
                name: "sandga",
                agent: sandga,
                client: sandga_client,
            },
        }
    }

    /// Sends `request` to both; returns `(qemu-ga's, sandga's)` answers.
    fn both(&mut self, request: &str) -> (Value, Value) {
        (
            self.qemu.client.call(request),
            self.sandga.client.call(request),
        )
    }

    /// Both answers must be equal as JSON values (member order aside).
    #[track_caller]
    fn same(&mut self, request: &str) -> Value {
        let (q, s) = self.both(request);
        assert_same_meaning(request, &q, &s);
        assert_eq!(q, s, "{request}: qemu-ga {q} vs sandga {s}");
        s
    }

    /// Both return, and the return values satisfy `check`.
    #[track_caller]
    fn both_return(&mut self, request: &str) -> (Value, Value) {
        let (q, s) = self.both(request);
        assert_same_meaning(request, &q, &s);
        let (Some(qr), Some(sr)) = (q.get("return"), s.get("return")) else {
            panic!("{request}: expected returns, got qemu-ga {q}, sandga {s}");
        };
        (qr.clone(), sr.clone())
    }
}

/// Same top-level shape, same error class and desc, same id.
#[track_caller]
fn assert_same_meaning(request: &str, q: &Value, s: &Value) {
    let shape = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        shape(q),
        shape(s),
        "{request}: different shapes: qemu-ga {q} vs sandga {s}"
    );
    if q.get("error").is_some() {
        assert_eq!(
            error(q),
            error(s),
            "{request}: different errors: qemu-ga {q} vs sandga {s}"
        );
    }
    assert_eq!(
        q.get("id"),
        s.get("id"),
        "{request}: different ids: qemu-ga {q} vs sandga {s}"
    );
}

#[test]
fn protocol_answers_match_qemu_ga() {
    let mut pair = Pair::start();

    // guest-ping, with and without id (/qga/ping, /qga/id).
    pair.same(r#"{"execute":"guest-ping"}"#);
    pair.same(r#"{"execute":"guest-ping","id":1}"#);
    pair.same(r#"{"execute":"guest-ping","id":"abc"}"#);
    pair.same(r#"{"execute":"guest-ping","id":{"a":[1,"b",null]}}"#);
    pair.same("{'execute':'guest-ping','id':'single'}");

    // guest-sync with ids across int64 (libvirt sends ms timestamps).
    for id in [
        "0",
        "1",
        "-1",
        "4294967295",
        "1795279719404",
        "9223372036854775807",
        "-9223372036854775808",
    ] {
        let v = pair.same(&format!(
            r#"{{"execute":"guest-sync","arguments":{{"id":{id}}}}}"#
        ));
        assert_eq!(v["return"].to_string(), id);
    }

    // Several requests in one write, answered in order by both.
    let burst = r#"{"execute":"guest-ping"}{"execute":"guest-sync","arguments":{"id":2}}"#;
    for side in [&mut pair.qemu, &mut pair.sandga] {
        side.client.send(burst);
        assert_eq!(side.client.recv(), json!({"return": {}}), "{}", side.name);
        assert_eq!(side.client.recv(), json!({"return": 2}), "{}", side.name);
    }

    // Errors whose class and desc sandga matches exactly.
    for request in [
        // Unknown command (/qga/invalid-cmd).
        r#"{"execute":"guest-invalid-cmd"}"#,
        r#"{"execute":"guest-foo","id":7}"#,
        // Bad arguments (/qga/invalid-args).
        r#"{"execute":"guest-ping","arguments":{"foo":42}}"#,
        r#"{"execute":"guest-sync"}"#,
        r#"{"execute":"guest-sync","arguments":{"id":"1"}}"#,
        r#"{"execute":"guest-sync","arguments":{"id":1.0}}"#,
        r#"{"execute":"guest-sync","arguments":{"id":18446744073709551616}}"#,
        r#"{"execute":"guest-sync-delimited"}"#,
        r#"{"execute":"guest-info","arguments":{"x":1}}"#,
        r#"{"execute":"guest-get-time","arguments":{"x":1}}"#,
        // Not an object.
        "[1,2]",
        r#""guest-ping""#,
        "42\n",
        "null\n",
        // Envelope (/qga/invalid-oob).
        r#"{"exec-oob":"guest-ping"}"#,
        r#"{"arguments":{}}"#,
        r#"{"execute":"guest-ping","arguments":[]}"#,
        r#"{"execute":1}"#,
        r#"{"execute":"guest-ping","foo":1}"#,
        r#"{"execute":"guest-ping","id":5,"exec-oob":"x"}"#,
        // JSON errors.
        r#"{"execute":"guest-ping","id":1,"id":2}"#,
        "}",
    ] {
        let (q, s) = pair.both(request);
        assert!(
            q.get("error").is_some(),
            "{request}: qemu-ga did not fail: {q}"
        );
        assert_same_meaning(request, &q, &s);
    }

    // guest-sync-delimited after 0xFF. qemu-ga first answers the 0xFF with
    // a "stray" parse error; sandga does not (deliberate). Both then send
    // the 0xFF-prefixed return.
    let mut request = vec![0xFF];
    request.extend_from_slice(br#"{"execute":"guest-sync-delimited","arguments":{"id":123456}}"#);
    pair.qemu.client.send_raw(&request);
    let stray = pair.qemu.client.recv_response();
    assert!(!stray.delimited);
    assert_error(&stray.value, "JSON parse error, stray '\u{FFFD}'");
    let q = pair.qemu.client.recv_response();
    pair.sandga.client.send_raw(&request);
    let s = pair.sandga.client.recv_response();
    assert!(q.delimited && s.delimited, "qemu-ga {q:?}, sandga {s:?}");
    assert_eq!(q.value, json!({"return": 123456}));
    assert_eq!(s.value, q.value);
    // Neither has anything more to say.
    pair.qemu.client.expect_silence();
    pair.sandga.client.expect_silence();
    pair.same(r#"{"execute":"guest-sync","arguments":{"id":99}}"#);
}

#[test]
fn guest_info_matches_qemu_ga_on_common_commands() {
    let mut pair = Pair::start();
    let (q, s) = pair.both_return(r#"{"execute":"guest-info"}"#);
    // Shape: version and supported_commands on both. The version differs
    // (deliberately: sandga reports its own).
    for info in [&q, &s] {
        let object = info.as_object().expect("guest-info returns an object");
        let mut keys: Vec<&String> = object.keys().collect();
        keys.sort();
        assert_eq!(keys, ["supported_commands", "version"], "{info}");
        assert!(info["version"].as_str().is_some_and(|v| !v.is_empty()));
    }
    let commands = |info: &Value| -> Vec<(String, Value)> {
        info["supported_commands"]
            .as_array()
            .expect("supported_commands is a list")
            .iter()
            .map(|c| (c["name"].as_str().expect("name").to_string(), c.clone()))
            .collect()
    };
    let qemu = commands(&q);
    let sandga = commands(&s);
    // qemu-ga lists more commands (deliberate); every command sandga
    // implements must exist in qemu-ga, and agree on success-response and
    // (under qemu-ga-compat, where everything sandga has is enabled) on
    // enabled.
    for (name, entry) in &sandga {
        let (_, theirs) = qemu
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("sandga lists {name}, which qemu-ga does not"));
        assert_eq!(
            entry["success-response"], theirs["success-response"],
            "{name}: sandga {entry} vs qemu-ga {theirs}"
        );
        assert_eq!(
            entry["enabled"], theirs["enabled"],
            "{name}: sandga {entry} vs qemu-ga {theirs}"
        );
    }
    let others = [
        "guest-sync-delimited",
        "guest-sync",
        "guest-ping",
        "guest-info",
        "guest-get-time",
        "guest-get-vcpus",
        "guest-network-get-interfaces",
    ];
    for name in others.iter().chain(FILE_COMMANDS) {
        assert!(
            sandga.iter().any(|(n, _)| n == name),
            "sandga does not list {name}"
        );
    }
}

#[test]
fn guest_get_time_matches_qemu_ga() {
    let mut pair = Pair::start();
    let (q, s) = pair.both_return(r#"{"execute":"guest-get-time"}"#);
    let q = q
        .as_i64()
        .unwrap_or_else(|| panic!("qemu-ga: not an integer: {q}"));
    let s = s
        .as_i64()
        .unwrap_or_else(|| panic!("sandga: not an integer: {s}"));
    assert!(q > 0 && s > 0);
    assert!(
        (q - s).abs() < 5_000_000_000,
        "the clocks differ by more than 5 s: qemu-ga {q}, sandga {s}"
    );
}

#[test]
fn guest_get_vcpus_matches_qemu_ga() {
    let mut pair = Pair::start();
    // Both read the same sysfs directory in the same order.
    let vcpus = pair.same(r#"{"execute":"guest-get-vcpus"}"#);
    assert!(!vcpus["return"].as_array().expect("a list").is_empty());
}

#[test]
fn guest_network_get_interfaces_matches_qemu_ga() {
    let mut pair = Pair::start();
    let (q, s) = pair.both_return(r#"{"execute":"guest-network-get-interfaces"}"#);
    // The counters move between the two reads: compare everything else, and
    // that the same interfaces have statistics with the same members.
    let without_counters = |list: &Value| -> Value {
        let mut list = list.clone();
        for interface in list.as_array_mut().expect("a list") {
            if let Some(stats) = interface.get_mut("statistics") {
                for counter in stats.as_object_mut().expect("an object").values_mut() {
                    assert!(counter.is_u64(), "{counter}");
                    *counter = json!(0);
                }
            }
        }
        list
    };
    assert_eq!(without_counters(&q), without_counters(&s));
    assert!(
        s.as_array()
            .expect("a list")
            .iter()
            .any(|i| i["name"] == "lo"),
        "{s}"
    );
}

/// `guest-file-*` request text.
fn file_request(command: &str, arguments: Value) -> String {
    json!({"execute": command, "arguments": arguments}).to_string()
}

#[test]
fn file_commands_match_qemu_ga() {
    let mut pair = Pair::start();
    let hello = b64(b"Hello World!\n\0");

    // Relative paths resolve against each agent's own working directory,
    // its temporary directory. Fresh state directories: handles from 1000.
    let v = pair.same(&file_request(
        "guest-file-open",
        json!({"path": "foo", "mode": "w+"}),
    ));
    assert_eq!(v, json!({"return": 1000}));
    let v = pair.same(&file_request(
        "guest-file-write",
        json!({"handle": 1000, "buf-b64": hello}),
    ));
    assert_eq!(v, json!({"return": {"count": 14, "eof": false}}));
    // Read straight after a write: at EOF.
    let v = pair.same(&file_request("guest-file-read", json!({"handle": 1000})));
    assert_eq!(
        v,
        json!({"return": {"count": 0, "eof": true, "buf-b64": ""}})
    );
    let v = pair.same(&file_request(
        "guest-file-seek",
        json!({"handle": 1000, "offset": 0, "whence": "set"}),
    ));
    assert_eq!(v, json!({"return": {"position": 0, "eof": false}}));
    let v = pair.same(&file_request("guest-file-read", json!({"handle": 1000})));
    assert_eq!(
        v,
        json!({"return": {"count": 14, "eof": true, "buf-b64": hello}})
    );
    // Read at EOF.
    pair.same(&file_request("guest-file-read", json!({"handle": 1000})));
    // count 0 and exact counts.
    pair.same(&file_request(
        "guest-file-seek",
        json!({"handle": 1000, "offset": 2, "whence": 0}),
    ));
    pair.same(&file_request(
        "guest-file-read",
        json!({"handle": 1000, "count": 0}),
    ));
    pair.same(&file_request(
        "guest-file-read",
        json!({"handle": 1000, "count": 12}),
    ));
    pair.same(&file_request(
        "guest-file-read",
        json!({"handle": 1000, "count": 12}),
    ));
    // Seek variants, past EOF, and relative to the end.
    for (offset, whence) in [
        (3, json!("cur")),
        (-4, json!("end")),
        (1, json!(1)),
        (100, json!(0)),
        (0, json!(2)),
    ] {
        pair.same(&file_request(
            "guest-file-seek",
            json!({"handle": 1000, "offset": offset, "whence": whence}),
        ));
    }
    pair.same(&file_request("guest-file-flush", json!({"handle": 1000})));
    pair.same(&file_request("guest-file-close", json!({"handle": 1000})));
    // Closed: the handle is gone.
    pair.same(&file_request("guest-file-close", json!({"handle": 1000})));
    pair.same(&file_request("guest-file-read", json!({"handle": 1000})));

    // Reopen read-only.
    let v = pair.same(&file_request(
        "guest-file-open",
        json!({"path": "foo", "mode": "r"}),
    ));
    assert_eq!(v, json!({"return": 1001}));
    let v = pair.same(&file_request("guest-file-read", json!({"handle": 1001})));
    assert_eq!(
        v,
        json!({"return": {"count": 14, "eof": true, "buf-b64": hello}})
    );
    // Invalid counts (on a valid handle: qemu-ga looks the handle up first).
    for count in [-1_i64, 50_331_649] {
        pair.same(&file_request(
            "guest-file-read",
            json!({"handle": 1001, "count": count}),
        ));
    }
    // Invalid whence.
    for whence in [json!(3), json!("foo"), json!(true)] {
        pair.same(&file_request(
            "guest-file-seek",
            json!({"handle": 1001, "offset": 0, "whence": whence}),
        ));
    }
    // A negative position.
    pair.same(&file_request(
        "guest-file-seek",
        json!({"handle": 1001, "offset": -1, "whence": "set"}),
    ));
    // Base64 with invalid characters, and a count beyond the data.
    pair.same(&file_request(
        "guest-file-write",
        json!({"handle": 1001, "buf-b64": "QUJD!"}),
    ));
    pair.same(&file_request(
        "guest-file-write",
        json!({"handle": 1001, "buf-b64": "QUJD", "count": 4}),
    ));
    pair.same(&file_request("guest-file-close", json!({"handle": 1001})));
    // An unknown handle is reported before the other argument errors.
    pair.same(&file_request(
        "guest-file-read",
        json!({"handle": 1001, "count": -1}),
    ));
    pair.same(&file_request(
        "guest-file-write",
        json!({"handle": 1001, "buf-b64": "QUJD!"}),
    ));
    pair.same(&file_request(
        "guest-file-seek",
        json!({"handle": 1001, "offset": 0, "whence": 3}),
    ));

    // Invalid mode, missing file, missing arguments.
    pair.same(&file_request(
        "guest-file-open",
        json!({"path": "foo", "mode": "rw"}),
    ));
    pair.same(&file_request(
        "guest-file-open",
        json!({"path": "does-not-exist", "mode": "r"}),
    ));
    pair.same(&file_request("guest-file-open", json!({})));
    pair.same(&file_request(
        "guest-file-seek",
        json!({"handle": 1001, "offset": 0}),
    ));

    // Append mode, then the file contents on each side.
    let v = pair.same(&file_request(
        "guest-file-open",
        json!({"path": "foo", "mode": "a"}),
    ));
    assert_eq!(v, json!({"return": 1002}));
    pair.same(&file_request(
        "guest-file-write",
        json!({"handle": 1002, "buf-b64": b64(b"more"), "count": 3}),
    ));
    pair.same(&file_request("guest-file-close", json!({"handle": 1002})));

    let qemu_foo = fs::read(pair.qemu.agent.dir().join("foo")).unwrap();
    let sandga_foo = fs::read(pair.sandga.agent.dir().join("foo")).unwrap();
    assert_eq!(qemu_foo, b"Hello World!\n\0mor");
    assert_eq!(sandga_foo, qemu_foo);
    // Both persisted the same handle counter, in the same format.
    let state = |side: &Side| fs::read_to_string(side.agent.state_dir().join("qga.state")).unwrap();
    assert_eq!(state(&pair.qemu), "[global]\nfd_counter=1003\n");
    assert_eq!(state(&pair.sandga), state(&pair.qemu));
}

//! guest-file-*: qemu-ga's upstream file tests, handles and their persistence,
//! modes, read/write/seek semantics and error texts, and sandga's own
//! confinement to the directories its policy grants. Only files inside each
//! test's temporary directory are ever created or written.

mod support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
use std::path::Path;

use serde_json::{Value, json};
use support::files::*;
use support::*;

const COMPAT: Policy = Policy::Shipped("qemu-ga-compat.toml");

/// A policy enabling the protocol and file commands with `files` granted, and
/// the given `(directory, access)` grants (`@DIR@` is the test's directory).
fn file_policy(grants: &[(&str, &str)]) -> Policy {
    let mut text = String::from(
        "[commands.guest-sync-delimited]\n[commands.guest-sync]\n\
         [commands.guest-ping]\n[commands.guest-info]\n",
    );
    for command in FILE_COMMANDS {
        text.push_str(&format!("[commands.{command}]\ngrants = [\"files\"]\n"));
    }
    for (path, access) in grants {
        text.push_str(&format!(
            "[[files.grant]]\npath = \"{path}\"\naccess = \"{access}\"\n"
        ));
    }
    Policy::Text(text)
}

/// `<dir>/granted` granted read-write, created before the agent starts.
fn granted_agent() -> Agent {
    let dir = temp_dir();
    fs::create_dir(dir.path().join("granted")).unwrap();
    Agent::start_in(
        dir,
        Config::new(file_policy(&[("@DIR@/granted", "read-write")])),
    )
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("UTF-8 temporary path").to_string()
}

fn not_found(handle: i64) -> String {
    format!("handle '{handle}' has not been found")
}

// ---------------------------------------------------------------------------
// qemu's tests/unit/test-qga.c, ported as they are (spec §4)

/// `"Hello World!\n"` with its terminating NUL, as test-qga.c writes it.
const HELLO: &[u8] = b"Hello World!\n\0";

/// `/qga/file-ops`.
#[test]
fn upstream_file_ops() {
    let agent = Agent::start(COMPAT);
    let mut client = agent.connect();
    let enc = b64(HELLO);

    // Open 'foo' (relative: the agent's working directory) for writing.
    let handle = open_ok(&mut client, "foo", "w+");
    assert_eq!(handle, 1000);
    let response = write(&mut client, handle, &enc, None);
    assert_eq!(ret(&response)["count"], json!(14));
    assert_eq!(ret(&response)["eof"], json!(false));
    assert_eq!(ret(&flush(&mut client, handle)), &json!({}));
    close_ok(&mut client, handle);

    // The file is on disk, in the working directory.
    assert_eq!(fs::read(agent.dir().join("foo")).unwrap(), HELLO);

    let handle = open_ok(&mut client, "foo", "r");
    assert_eq!(handle, 1001);
    let response = read(&mut client, handle, None);
    assert_eq!(
        ret(&response),
        &json!({"count": 14, "eof": true, "buf-b64": enc}),
        "{response}"
    );
    // Read at EOF.
    let response = read(&mut client, handle, None);
    assert_eq!(
        ret(&response),
        &json!({"count": 0, "eof": true, "buf-b64": ""}),
        "{response}"
    );
    // Seek and read the rest.
    let response = seek(&mut client, handle, 6, json!("set"));
    assert_eq!(ret(&response), &json!({"position": 6, "eof": false}));
    let response = read(&mut client, handle, None);
    assert_eq!(ret(&response)["count"], json!(8));
    assert_eq!(ret(&response)["eof"], json!(true));
    assert_eq!(
        unb64(ret(&response)["buf-b64"].as_str().unwrap()),
        &HELLO[6..]
    );
    close_ok(&mut client, handle);
}

/// `/qga/file-write-read`.
#[test]
fn upstream_file_write_read() {
    let agent = Agent::start(COMPAT);
    let mut client = agent.connect();
    let enc = b64(HELLO);

    let handle = open_ok(&mut client, "foo", "w+");
    let response = write(&mut client, handle, &enc, None);
    assert_eq!(ret(&response), &json!({"count": 14, "eof": false}));
    // Read right after the write (qemu-ga flushes first): at EOF.
    let response = read(&mut client, handle, None);
    assert_eq!(
        ret(&response),
        &json!({"count": 0, "eof": true, "buf-b64": ""}),
        "{response}"
    );
    let response = seek(&mut client, handle, 0, json!("set"));
    assert_eq!(ret(&response), &json!({"position": 0, "eof": false}));
    let response = read(&mut client, handle, None);
    assert_eq!(
        ret(&response),
        &json!({"count": 14, "eof": true, "buf-b64": enc}),
        "{response}"
    );
    close_ok(&mut client, handle);
    assert_eq!(fs::read(agent.dir().join("foo")).unwrap(), HELLO);
}

// ---------------------------------------------------------------------------
// Handles

fn state_file(agent: &Agent) -> String {
    fs::read_to_string(agent.state_dir().join("qga.state")).expect("reading qga.state")
}

#[test]
fn handles_count_from_1000_and_persist_across_restarts() {
    let mut agent = granted_agent();
    assert_eq!(state_file(&agent), "[global]\nfd_counter=1000\n");
    let mut client = agent.connect();
    let granted = path_str(&agent.dir().join("granted"));
    let handles: Vec<i64> = (0..3)
        .map(|n| open_ok(&mut client, &format!("{granted}/f{n}"), "w"))
        .collect();
    assert_eq!(handles, [1000, 1001, 1002]);
    assert_eq!(state_file(&agent), "[global]\nfd_counter=1003\n");
    // A failed open takes no handle.
    let (class, _) = error(&open(&mut client, &format!("{granted}/missing"), None));
    assert_eq!(class, "GenericError");
    assert_eq!(state_file(&agent), "[global]\nfd_counter=1003\n");
    // Closing does not give a number back.
    close_ok(&mut client, 1002);
    assert_eq!(open_ok(&mut client, &format!("{granted}/f2"), "r"), 1003);
    drop(client);

    agent.restart();
    let mut client = agent.connect();
    // Open handles do not survive a restart; the counter does.
    for handle in [1000, 1001, 1003] {
        assert_error(&read(&mut client, handle, None), &not_found(handle));
    }
    assert_error(&close(&mut client, 1000), &not_found(1000));
    assert_eq!(open_ok(&mut client, &format!("{granted}/f0"), "r"), 1004);
    assert_eq!(state_file(&agent), "[global]\nfd_counter=1005\n");
}

#[test]
fn unknown_handles() {
    let agent = granted_agent();
    let mut client = agent.connect();
    for handle in [0_i64, 999, 1000, -1, i64::MAX] {
        assert_error(&read(&mut client, handle, None), &not_found(handle));
        assert_error(
            &write(&mut client, handle, "QUJD", None),
            &not_found(handle),
        );
        assert_error(&seek(&mut client, handle, 0, json!(0)), &not_found(handle));
        assert_error(&flush(&mut client, handle), &not_found(handle));
        assert_error(&close(&mut client, handle), &not_found(handle));
    }
    assert_error(
        &client.call(r#"{"execute":"guest-file-read","arguments":{"handle":"1000"}}"#),
        "Invalid parameter type for 'handle', expected: integer",
    );
    assert_error(
        &client.call(r#"{"execute":"guest-file-close"}"#),
        "Parameter 'handle' is missing",
    );
}

#[test]
fn open_handles_survive_client_reconnects() {
    let agent = granted_agent();
    let path = path_str(&agent.dir().join("granted/persist"));
    let mut first = agent.connect();
    let handle = open_ok(&mut first, &path, "w+");
    write_ok(&mut first, handle, b"kept across connections");
    first.disconnect();

    let mut second = agent.connect();
    assert_eq!(seek_ok(&mut second, handle, 5, json!("set")), 5);
    let (data, eof) = read_ok(&mut second, handle, None);
    assert_eq!(data, b"across connections");
    assert!(eof);
    close_ok(&mut second, handle);
    second.disconnect();

    let mut third = agent.connect();
    assert_error(&close(&mut third, handle), &not_found(handle));
}

#[test]
fn close_twice_and_flush() {
    let agent = granted_agent();
    let mut client = agent.connect();
    let path = agent.dir().join("granted/f");
    let handle = open_ok(&mut client, &path_str(&path), "w");
    write_ok(&mut client, handle, b"flushed");
    assert_eq!(ret(&flush(&mut client, handle)), &json!({}));
    assert_eq!(fs::read(&path).unwrap(), b"flushed");
    assert_eq!(ret(&flush(&mut client, handle)), &json!({}));
    close_ok(&mut client, handle);
    assert_error(&close(&mut client, handle), &not_found(handle));
    assert_error(&flush(&mut client, handle), &not_found(handle));
    assert_error(&read(&mut client, handle, None), &not_found(handle));
}

// ---------------------------------------------------------------------------
// Modes

const MODES: &[&str] = &[
    "r", "rb", "w", "wb", "a", "ab", "r+", "rb+", "r+b", "w+", "wb+", "w+b", "a+", "ab+", "a+b",
];

#[test]
fn all_fifteen_modes_on_an_existing_file() {
    let agent = granted_agent();
    let mut client = agent.connect();
    for (n, mode) in MODES.iter().enumerate() {
        let path = agent.dir().join(format!("granted/existing{n}"));
        fs::write(&path, b"hello").unwrap();
        let handle = open_ok(&mut client, &path_str(&path), mode);
        let base = mode.replace('b', "");
        // What the file holds once the handle is closed (qemu-ga buffers
        // writes until a flush, a seek or the close).
        let expected: &[u8] = match base.as_str() {
            "r" => {
                assert_eq!(
                    read_ok(&mut client, handle, None),
                    (b"hello".to_vec(), true)
                );
                assert_error_contains(
                    &write(&mut client, handle, "QUJD", None),
                    &["failed to write to file"],
                );
                b"hello"
            }
            "r+" => {
                // No truncation; writes at the start, reads go on after them.
                write_ok(&mut client, handle, b"HE");
                assert_eq!(read_ok(&mut client, handle, None), (b"llo".to_vec(), true));
                b"HEllo"
            }
            "w" => {
                assert_eq!(fs::read(&path).unwrap(), b"", "{mode} does not truncate");
                write_ok(&mut client, handle, b"xyz");
                let (class, desc) = error(&read(&mut client, handle, None));
                assert_eq!(class, "GenericError");
                assert!(desc.starts_with("failed to read file"), "{mode}: {desc}");
                b"xyz"
            }
            "w+" => {
                assert_eq!(fs::read(&path).unwrap(), b"", "{mode} does not truncate");
                write_ok(&mut client, handle, b"xyz");
                assert_eq!(seek_ok(&mut client, handle, 0, json!("set")), 0);
                assert_eq!(read_ok(&mut client, handle, None), (b"xyz".to_vec(), true));
                b"xyz"
            }
            "a" => {
                write_ok(&mut client, handle, b"!");
                // Appends even after a seek to the start.
                assert_eq!(seek_ok(&mut client, handle, 0, json!("set")), 0);
                write_ok(&mut client, handle, b"?");
                let (class, desc) = error(&read(&mut client, handle, None));
                assert_eq!(class, "GenericError");
                assert!(desc.starts_with("failed to read file"), "{mode}: {desc}");
                b"hello!?"
            }
            "a+" => {
                // Reading starts at the beginning; writing appends.
                assert_eq!(
                    read_ok(&mut client, handle, Some(2)),
                    (b"he".to_vec(), false)
                );
                write_ok(&mut client, handle, b"!");
                b"hello!"
            }
            other => unreachable!("{other}"),
        };
        close_ok(&mut client, handle);
        assert_eq!(fs::read(&path).unwrap(), expected, "{mode}");
    }
}

#[test]
fn creating_modes_create_files_0666_regardless_of_umask() {
    let dir = temp_dir();
    fs::create_dir(dir.path().join("granted")).unwrap();
    let mut config = Config::new(file_policy(&[("@DIR@/granted", "read-write")]));
    config.umask = Some(0o077);
    let agent = Agent::start_in(dir, config);
    let mut client = agent.connect();
    for (n, mode) in MODES.iter().enumerate() {
        let path = agent.dir().join(format!("granted/new{n}"));
        let text = path_str(&path);
        if mode.starts_with('r') {
            assert_error(
                &open(&mut client, &text, Some(mode)),
                &format!(
                    "failed to open file '{text}' (mode: '{mode}'): No such file or directory"
                ),
            );
            assert!(!path.exists(), "{mode} created {text}");
            continue;
        }
        let handle = open_ok(&mut client, &text, mode);
        let meta = fs::metadata(&path).unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o666, "{mode}");
        assert_eq!(meta.len(), 0);
        write_ok(&mut client, handle, b"new");
        close_ok(&mut client, handle);
        assert_eq!(fs::read(&path).unwrap(), b"new", "{mode}");
    }
    // An existing file keeps its permissions.
    let path = agent.dir().join("granted/private");
    fs::write(&path, b"x").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let handle = open_ok(&mut client, &path_str(&path), "w");
    close_ok(&mut client, handle);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o600
    );
}

#[test]
fn invalid_modes_and_missing_files() {
    let agent = granted_agent();
    let mut client = agent.connect();
    let path = agent.dir().join("granted/f");
    fs::write(&path, b"data").unwrap();
    let text = path_str(&path);
    for mode in ["rw", "", "x", "R", "rb+b", "r+ ", "w++", "br"] {
        assert_error(
            &open(&mut client, &text, Some(mode)),
            &format!("invalid file open mode '{mode}'"),
        );
    }
    assert_eq!(fs::read(&path).unwrap(), b"data");
    // The default mode is "r".
    let handle = ret(&open(&mut client, &text, None)).as_i64().unwrap();
    assert_eq!(read_ok(&mut client, handle, None), (b"data".to_vec(), true));
    assert_error_contains(
        &write(&mut client, handle, "QUJD", None),
        &["failed to write"],
    );
    close_ok(&mut client, handle);
    // A missing file.
    let missing = path_str(&agent.dir().join("granted/missing"));
    assert_error(
        &open(&mut client, &missing, Some("r")),
        &format!("failed to open file '{missing}' (mode: 'r'): No such file or directory"),
    );
    assert_error(
        &open(&mut client, &missing, None),
        &format!("failed to open file '{missing}' (mode: 'r'): No such file or directory"),
    );
    // Argument checks.
    assert_error(
        &client.call(r#"{"execute":"guest-file-open","arguments":{}}"#),
        "Parameter 'path' is missing",
    );
    assert_error(
        &client.call(r#"{"execute":"guest-file-open","arguments":{"path":1}}"#),
        "Invalid parameter type for 'path', expected: string",
    );
    assert_error(
        &client.call(&format!(
            r#"{{"execute":"guest-file-open","arguments":{{"path":"{text}","mode":"r","x":1}}}}"#
        )),
        "Parameter 'x' is unexpected",
    );
}

// ---------------------------------------------------------------------------
// Read

#[test]
fn read_counts() {
    let agent = granted_agent();
    let mut client = agent.connect();
    let path = agent.dir().join("granted/f");
    let content = pattern(5000, 1);
    fs::write(&path, &content).unwrap();
    let handle = open_ok(&mut client, &path_str(&path), "r");

    // count 0: nothing, and not EOF.
    let response = read(&mut client, handle, Some(0));
    assert_eq!(
        ret(&response),
        &json!({"count": 0, "eof": false, "buf-b64": ""})
    );
    // The default count is 4096.
    let (first, eof) = read_ok(&mut client, handle, None);
    assert_eq!(first.len(), 4096);
    assert!(!eof);
    let (rest, eof) = read_ok(&mut client, handle, None);
    assert_eq!(rest.len(), 904);
    assert!(eof);
    assert_eq!([first, rest].concat(), content);
    // At EOF, count 0 still says eof false (qemu-ga clears EOF after every read).
    assert_eq!(read_ok(&mut client, handle, Some(0)), (vec![], false));
    assert_eq!(read_ok(&mut client, handle, None), (vec![], true));

    // Out of range counts, on a valid handle.
    for count in [-1_i64, 50_331_649, i64::MIN, i64::MAX] {
        assert_error(
            &read(&mut client, handle, Some(count)),
            &format!("value '{count}' is invalid for argument count"),
        );
    }
    // The largest count is allowed.
    assert_eq!(seek_ok(&mut client, handle, 0, json!(0)), 0);
    let (all, eof) = read_ok(&mut client, handle, Some(50_331_648));
    assert_eq!(all, content);
    assert!(eof);
    assert_error(
        &client.call_value(&json!({
            "execute": "guest-file-read",
            "arguments": {"handle": handle, "count": "1"},
        })),
        "Invalid parameter type for 'count', expected: integer",
    );
    close_ok(&mut client, handle);
}

#[test]
fn read_eof_semantics() {
    let agent = granted_agent();
    let mut client = agent.connect();
    let path = agent.dir().join("granted/ten");
    fs::write(&path, b"0123456789").unwrap();
    let handle = open_ok(&mut client, &path_str(&path), "r");
    // Exactly the remaining bytes: not EOF yet (fread stopped at count).
    assert_eq!(
        read_ok(&mut client, handle, Some(10)),
        (b"0123456789".to_vec(), false)
    );
    assert_eq!(read_ok(&mut client, handle, Some(10)), (vec![], true));
    // EOF is not sticky.
    assert_eq!(seek_ok(&mut client, handle, 4, json!("set")), 4);
    assert_eq!(
        read_ok(&mut client, handle, Some(4)),
        (b"4567".to_vec(), false)
    );
    assert_eq!(
        read_ok(&mut client, handle, Some(100)),
        (b"89".to_vec(), true)
    );
    // An empty file.
    let empty = agent.dir().join("granted/empty");
    fs::write(&empty, b"").unwrap();
    let h2 = open_ok(&mut client, &path_str(&empty), "r");
    assert_eq!(read_ok(&mut client, h2, None), (vec![], true));
    close_ok(&mut client, h2);
    close_ok(&mut client, handle);
}

#[test]
fn large_file_read_in_three_chunks() {
    let agent = granted_agent();
    let mut client = agent.connect();
    let path = agent.dir().join("granted/big");
    let content = pattern(3_000_000, 7);
    fs::write(&path, &content).unwrap();
    let handle = open_ok(&mut client, &path_str(&path), "rb");
    let mut got = Vec::new();
    for expect_eof in [false, false, true] {
        let (chunk, eof) = read_ok(&mut client, handle, Some(1_200_000));
        assert_eq!(eof, expect_eof, "after {} bytes", got.len());
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got.len(), content.len());
    assert!(got == content, "the chunks do not reassemble the file");
    close_ok(&mut client, handle);
}

// ---------------------------------------------------------------------------
// Write

#[test]
fn write_base64_and_count() {
    let agent = granted_agent();
    let mut client = agent.connect();
    let path = agent.dir().join("granted/f");
    fs::write(&path, b"original").unwrap();
    let handle = open_ok(&mut client, &path_str(&path), "r+");

    // Characters outside the base64 alphabet.
    for bad in ["QUJD!", "QU JD", "QUJD\t", "QUJD\r\n", "QUJ-", "QUJD\u{e9}"] {
        assert_error_contains(
            &write(&mut client, handle, bad, None),
            &["Base64 data contains invalid characters"],
        );
    }
    assert_eq!(fs::read(&path).unwrap(), b"original");
    // Malformed base64 (qemu-ga's glib decoder silently drops the partial
    // group: "QUJ" writes 0 bytes). sandga refuses it on purpose.
    for bad in ["QUJ", "Q", "QUJDR", "Q===", "QU=J", "=QUJ"] {
        let (class, desc) = error(&write(&mut client, handle, bad, None));
        assert_eq!(class, "GenericError", "{bad}");
        assert!(!desc.is_empty());
    }
    assert_eq!(fs::read(&path).unwrap(), b"original");
    // count beyond the decoded length, or negative.
    for count in [4_i64, 100, -1] {
        assert_error(
            &write(&mut client, handle, "QUJD", Some(count)),
            &format!("value '{count}' is invalid for argument count"),
        );
    }
    assert_eq!(fs::read(&path).unwrap(), b"original");
    // count below the length writes only count bytes.
    let response = write(&mut client, handle, "QUJD", Some(2));
    assert_eq!(ret(&response), &json!({"count": 2, "eof": false}));
    assert_eq!(ret(&flush(&mut client, handle)), &json!({}));
    assert_eq!(fs::read(&path).unwrap(), b"ABiginal");
    let response = write(&mut client, handle, "QUJD", Some(0));
    assert_eq!(ret(&response), &json!({"count": 0, "eof": false}));
    let response = write(&mut client, handle, "", None);
    assert_eq!(ret(&response), &json!({"count": 0, "eof": false}));
    assert_eq!(ret(&flush(&mut client, handle)), &json!({}));
    assert_eq!(fs::read(&path).unwrap(), b"ABiginal");
    // Line-wrapped base64 is accepted (glib skips the newlines).
    let response = write(&mut client, handle, "QUJD\nREVG", None);
    assert_eq!(ret(&response), &json!({"count": 6, "eof": false}));
    assert_eq!(ret(&flush(&mut client, handle)), &json!({}));
    assert_eq!(fs::read(&path).unwrap(), b"ABABCDEF");
    // Binary data round-trips.
    let binary: Vec<u8> = (0..=255).collect();
    assert_eq!(seek_ok(&mut client, handle, 0, json!("set")), 0);
    write_ok(&mut client, handle, &binary);
    assert_eq!(ret(&flush(&mut client, handle)), &json!({}));
    assert_eq!(fs::read(&path).unwrap(), binary);
    assert_error(
        &client.call_value(&json!({
            "execute": "guest-file-write",
            "arguments": {"handle": handle},
        })),
        "Parameter 'buf-b64' is missing",
    );
    close_ok(&mut client, handle);
}

// ---------------------------------------------------------------------------
// Seek

#[test]
fn seek_whence() {
    let agent = granted_agent();
    let mut client = agent.connect();
    let path = agent.dir().join("granted/digits");
    fs::write(&path, b"0123456789").unwrap();
    let handle = open_ok(&mut client, &path_str(&path), "r+");

    for (set, cur, end) in [
        (json!(0), json!(1), json!(2)),
        (json!("set"), json!("cur"), json!("end")),
    ] {
        assert_eq!(seek_ok(&mut client, handle, 3, set.clone()), 3);
        assert_eq!(
            read_ok(&mut client, handle, Some(2)),
            (b"34".to_vec(), false)
        );
        assert_eq!(seek_ok(&mut client, handle, 2, cur.clone()), 7);
        assert_eq!(
            read_ok(&mut client, handle, Some(1)),
            (b"7".to_vec(), false)
        );
        assert_eq!(seek_ok(&mut client, handle, -2, cur), 6);
        assert_eq!(seek_ok(&mut client, handle, -1, end.clone()), 9);
        assert_eq!(read_ok(&mut client, handle, None), (b"9".to_vec(), true));
        assert_eq!(seek_ok(&mut client, handle, 0, end), 10);
        assert_eq!(seek_ok(&mut client, handle, 0, set), 0);
    }

    // Past EOF is allowed; writing there leaves a hole.
    assert_eq!(seek_ok(&mut client, handle, 100, json!("set")), 100);
    assert_eq!(read_ok(&mut client, handle, None), (vec![], true));
    write_ok(&mut client, handle, b"!");
    assert_eq!(ret(&flush(&mut client, handle)), &json!({}));
    let on_disk = fs::read(&path).unwrap();
    assert_eq!(on_disk.len(), 101);
    assert_eq!(&on_disk[..10], b"0123456789");
    assert!(on_disk[10..100].iter().all(|&b| b == 0));

    // A negative position.
    for (offset, whence) in [(-1, json!("set")), (-1000, json!(2)), (-1000, json!("cur"))] {
        assert_error_contains(
            &seek(&mut client, handle, offset, whence),
            &["failed to seek file", "Invalid argument"],
        );
    }

    // Bad whence values.
    for code in [3_i64, -1, 4096] {
        assert_error(
            &seek(&mut client, handle, 0, json!(code)),
            &format!("invalid whence code {code}"),
        );
    }
    assert_error(
        &seek(&mut client, handle, 0, json!("foo")),
        "Parameter 'whence' does not accept value 'foo'",
    );
    assert_error(
        &seek(&mut client, handle, 0, json!("SET")),
        "Parameter 'whence' does not accept value 'SET'",
    );
    for whence in [json!(true), json!(null), json!([0]), json!({"set": 0})] {
        assert_error(
            &seek(&mut client, handle, 0, whence),
            "Invalid parameter type for 'whence', expected: GuestFileWhence",
        );
    }
    assert_error(
        &client.call_value(&json!({
            "execute": "guest-file-seek",
            "arguments": {"handle": handle, "offset": 0},
        })),
        "Parameter 'whence' is missing",
    );
    assert_error(
        &client.call_value(&json!({
            "execute": "guest-file-seek",
            "arguments": {"handle": handle, "whence": 0},
        })),
        "Parameter 'offset' is missing",
    );
    // The position is unchanged by the failures.
    assert_eq!(seek_ok(&mut client, handle, 0, json!("cur")), 101);
    close_ok(&mut client, handle);
}

// ---------------------------------------------------------------------------
// Confinement

/// `desc` refuses `path` because of the policy.
#[track_caller]
fn assert_refused(response: &Value, path: &str) {
    let (class, desc) = error(response);
    assert_eq!(class, "GenericError", "{response}");
    assert!(
        desc.contains(&format!("'{path}'")),
        "the error does not name '{path}': {desc}"
    );
    assert!(
        desc.contains("policy") || desc.contains("granted directory"),
        "the error does not mention the policy or the granted directory: {desc}"
    );
}

#[test]
fn confinement_to_granted_directories() {
    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    fs::create_dir(root.join("granted")).unwrap();
    fs::create_dir(root.join("outside")).unwrap();
    let secret = root.join("outside/secret");
    fs::write(&secret, b"top secret").unwrap();
    symlink("../outside/secret", root.join("granted/rel")).unwrap();
    symlink(&secret, root.join("granted/abs")).unwrap();
    symlink("../outside", root.join("granted/dirlink")).unwrap();
    fs::write(root.join("granted/ok"), b"fine").unwrap();
    symlink("ok", root.join("granted/inlink")).unwrap();
    let agent = Agent::start_in(
        dir,
        Config::new(file_policy(&[("@DIR@/granted", "read-write")])),
    );
    let mut client = agent.connect();
    let r = path_str(&root);

    let refused = [
        format!("{r}/outside/secret"),
        format!("{r}/granted/../outside/secret"),
        format!("{r}/granted/rel"),
        format!("{r}/granted/abs"),
        format!("{r}/granted/dirlink/secret"),
        "/etc/passwd".to_string(),
        // Relative paths resolve against the working directory, the test's.
        "outside/secret".to_string(),
        "granted/rel".to_string(),
        "granted/../outside/secret".to_string(),
    ];
    for path in &refused {
        // Never anything but "r" on a file outside the temporary directory.
        let modes: &[&str] = if path.starts_with("/etc") {
            &["r"]
        } else {
            &["r", "r+", "w", "a", "w+"]
        };
        for mode in modes {
            assert_refused(&open(&mut client, path, Some(mode)), path);
        }
    }
    // Creating outside through the grant creates nothing.
    for path in [
        format!("{r}/granted/../outside/new"),
        format!("{r}/granted/dirlink/new"),
        "granted/../new".to_string(),
    ] {
        for mode in ["w", "a+"] {
            assert_refused(&open(&mut client, &path, Some(mode)), &path);
        }
    }
    assert!(!root.join("outside/new").exists());
    assert!(!root.join("new").exists());
    assert_eq!(fs::read(&secret).unwrap(), b"top secret");
    let mut entries: Vec<_> = fs::read_dir(root.join("outside"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    entries.sort();
    assert_eq!(entries, ["secret"]);

    // Inside the grant, by absolute and relative path and through a symlink
    // that stays inside, files open.
    for path in [
        format!("{r}/granted/ok"),
        "granted/ok".to_string(),
        format!("{r}/granted/./ok"),
        format!("{r}/granted/inlink"),
    ] {
        let handle = open_ok(&mut client, &path, "r");
        assert_eq!(read_ok(&mut client, handle, None), (b"fine".to_vec(), true));
        close_ok(&mut client, handle);
    }
    // The handle counter only moved for those.
    assert_eq!(
        fs::read_to_string(agent.state_dir().join("qga.state")).unwrap(),
        "[global]\nfd_counter=1004\n"
    );
}

#[test]
fn read_only_grant() {
    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    fs::create_dir(root.join("ro")).unwrap();
    fs::create_dir(root.join("rw")).unwrap();
    fs::create_dir(root.join("ro/sub")).unwrap();
    fs::write(root.join("ro/f"), b"data").unwrap();
    fs::write(root.join("ro/sub/g"), b"nested").unwrap();
    let agent = Agent::start_in(
        dir,
        Config::new(file_policy(&[
            ("@DIR@/ro", "read"),
            ("@DIR@/rw", "read-write"),
        ])),
    );
    let mut client = agent.connect();
    let r = path_str(&root);

    for (path, content) in [
        (format!("{r}/ro/f"), &b"data"[..]),
        (format!("{r}/ro/sub/g"), b"nested"),
    ] {
        for mode in ["r", "rb"] {
            let handle = open_ok(&mut client, &path, mode);
            assert_eq!(read_ok(&mut client, handle, None), (content.to_vec(), true));
            close_ok(&mut client, handle);
        }
        for mode in ["w", "a", "r+", "w+", "a+", "wb", "rb+"] {
            let (class, desc) = error(&open(&mut client, &path, Some(mode)));
            assert_eq!(class, "GenericError");
            assert!(desc.contains(&path), "{mode}: {desc}");
        }
    }
    // Nothing truncated, nothing created.
    assert_eq!(fs::read(root.join("ro/f")).unwrap(), b"data");
    assert_eq!(fs::read(root.join("ro/sub/g")).unwrap(), b"nested");
    // Nor through a way round from the read-write grant.
    std::os::unix::fs::symlink(root.join("ro"), root.join("rw/link")).unwrap();
    for path in [
        format!("{r}/ro/new"),
        format!("{r}/ro/sub/new"),
        format!("{r}/rw/../ro/new"),
        format!("{r}/rw/link/new"),
    ] {
        let (class, _) = error(&open(&mut client, &path, Some("w")));
        assert_eq!(class, "GenericError");
        assert!(!Path::new(&path).exists(), "{path} created");
    }
    assert!(!root.join("ro/new").exists());
    // The read-write grant beside the read-only one still writes.
    let handle = open_ok(&mut client, &format!("{r}/rw/new"), "w");
    write_ok(&mut client, handle, b"ok");
    close_ok(&mut client, handle);
    assert_eq!(fs::read(root.join("rw/new")).unwrap(), b"ok");
}

#[test]
fn non_regular_files_are_refused() {
    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    fs::create_dir(root.join("granted")).unwrap();
    fs::create_dir(root.join("granted/sub")).unwrap();
    let fifo = root.join("granted/fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let agent = Agent::start_in(
        dir,
        Config::new(file_policy(&[("@DIR@/granted", "read-write")])),
    );
    let mut client = agent.connect();
    let r = path_str(&root);
    // A fifo with no writer would block a plain open for reading; the
    // client's read timeout turns a hang into a failure.
    for path in [
        format!("{r}/granted/fifo"),
        format!("{r}/granted/sub"),
        format!("{r}/granted"),
        format!("{r}/granted/"),
    ] {
        for mode in ["r", "w", "r+", "a"] {
            let (class, desc) = error(&open(&mut client, &path, Some(mode)));
            assert_eq!(class, "GenericError");
            assert!(desc.contains(&path), "{path} {mode}: {desc}");
            assert!(desc.contains("regular file"), "{path} {mode}: {desc}");
        }
    }
    // The fifo is still a fifo, nothing was created in the directory.
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(fs::read_dir(root.join("granted/sub")).unwrap().count(), 0);
    // And the agent is still answering.
    assert_eq!(
        ret(&client.call(r#"{"execute":"guest-sync","arguments":{"id":5}}"#)),
        &json!(5)
    );
}

#[test]
fn compat_policy_refuses_non_regular_files_too() {
    let agent = Agent::start(COMPAT);
    let mut client = agent.connect();
    // qemu-ga would open these; sandga refuses anything but a regular file
    // whatever the policy.
    fs::create_dir(agent.dir().join("subdir")).unwrap();
    nix::unistd::mkfifo(
        &agent.dir().join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    for path in ["subdir", "fifo"] {
        let (class, desc) = error(&open(&mut client, path, Some("r")));
        assert_eq!(class, "GenericError");
        assert!(desc.contains("regular file"), "{path}: {desc}");
    }
    // A file in the temporary directory works, by relative path.
    fs::write(agent.dir().join("rel"), b"relative").unwrap();
    let handle = open_ok(&mut client, "rel", "r");
    assert_eq!(
        read_ok(&mut client, handle, None),
        (b"relative".to_vec(), true)
    );
    close_ok(&mut client, handle);
}

#[test]
fn default_policy_disables_file_commands() {
    let agent = Agent::start(Policy::Default);
    let mut client = agent.connect();
    let path = path_str(&agent.dir().join("never"));
    for command in FILE_COMMANDS {
        let response = client.call_value(&json!({
            "execute": command,
            "arguments": {"path": path, "mode": "w", "handle": 1000},
        }));
        let (class, desc) = error(&response);
        assert_eq!(class, "CommandNotFound", "{response}");
        assert!(desc.contains("has been disabled"), "{desc}");
        assert!(desc.contains(command), "{desc}");
    }
    assert!(!agent.dir().join("never").exists());
}

//! The command logic against a fake `files` host.

use std::collections::BTreeMap;

use crate::{FileError, FileHost, OpenFlags, ReadOutcome, Reply, Whence, run};

#[derive(Debug, PartialEq, Eq)]
enum Call {
    Open(String, OpenFlags),
    Close(i64),
    Read(i64, u64),
    Write(i64, Vec<u8>),
    Seek(i64, i64, Whence),
    Flush(i64),
}

/// Keeps open handles (from 1000, like qemu-ga) and records every call;
/// `fail` makes the next call on a known handle (or open) fail.
#[derive(Default)]
struct Fake {
    calls: Vec<Call>,
    open: BTreeMap<i64, ()>,
    next: i64,
    fail: Option<FileError>,
}

impl Fake {
    fn new() -> Self {
        Fake {
            next: 1000,
            ..Fake::default()
        }
    }

    fn with_handle(handle: i64) -> Self {
        let mut fake = Fake::new();
        fake.open.insert(handle, ());
        fake
    }

    fn lookup(&mut self, handle: i64) -> Result<(), FileError> {
        if !self.open.contains_key(&handle) {
            return Err(FileError::UnknownHandle);
        }
        self.fail.take().map_or(Ok(()), Err)
    }
}

impl FileHost for Fake {
    fn open(&mut self, path: &str, flags: OpenFlags) -> Result<i64, FileError> {
        self.calls.push(Call::Open(path.to_owned(), flags));
        if let Some(err) = self.fail.take() {
            return Err(err);
        }
        let handle = self.next;
        self.next += 1;
        self.open.insert(handle, ());
        Ok(handle)
    }

    /// A query, not recorded: it changes nothing.
    fn check(&mut self, handle: i64) -> Result<(), FileError> {
        if self.open.contains_key(&handle) {
            Ok(())
        } else {
            Err(FileError::UnknownHandle)
        }
    }

    fn close(&mut self, handle: i64) -> Result<(), FileError> {
        self.calls.push(Call::Close(handle));
        self.lookup(handle)?;
        self.open.remove(&handle);
        Ok(())
    }

    fn read(&mut self, handle: i64, count: u64) -> Result<ReadOutcome, FileError> {
        self.calls.push(Call::Read(handle, count));
        self.lookup(handle)?;
        // Pretends the file holds 10 bytes from the current position.
        Ok(ReadOutcome {
            count: count.min(10),
            eof: count >= 10,
        })
    }

    fn write(&mut self, handle: i64, data: &[u8]) -> Result<u64, FileError> {
        self.calls.push(Call::Write(handle, data.to_vec()));
        self.lookup(handle)?;
        Ok(data.len() as u64)
    }

    fn seek(&mut self, handle: i64, offset: i64, whence: Whence) -> Result<u64, FileError> {
        self.calls.push(Call::Seek(handle, offset, whence));
        self.lookup(handle)?;
        Ok(offset.unsigned_abs() + 7)
    }

    fn flush(&mut self, handle: i64) -> Result<(), FileError> {
        self.calls.push(Call::Flush(handle));
        self.lookup(handle)
    }
}

fn ok(json: &str) -> Result<Reply, String> {
    Ok(Reply {
        json: json.to_owned(),
        staged_member: None,
    })
}

fn err(desc: &str) -> Result<Reply, String> {
    Err(desc.to_owned())
}

const R: OpenFlags = OpenFlags {
    read: true,
    write: false,
    create: false,
    truncate: false,
    append: false,
};

#[test]
fn unknown_command() {
    let mut host = Fake::new();
    assert_eq!(
        run(&mut host, "guest-get-time", "{}"),
        err("component 'file' does not implement guest-get-time")
    );
    // The name is checked before the arguments.
    assert_eq!(
        run(&mut host, "guest-file-Open", "[]"),
        err("component 'file' does not implement guest-file-Open")
    );
    assert_eq!(
        run(&mut host, "guest-file-open", "[]"),
        err("QMP input member 'arguments' must be an object")
    );
    assert!(host.calls.is_empty());
}

#[test]
fn open_modes() {
    let w = OpenFlags {
        write: true,
        create: true,
        truncate: true,
        ..OpenFlags::default()
    };
    let a = OpenFlags {
        write: true,
        create: true,
        append: true,
        ..OpenFlags::default()
    };
    let plus = |f: OpenFlags| OpenFlags {
        read: true,
        write: true,
        ..f
    };
    let table = [
        ("r", R),
        ("rb", R),
        ("w", w),
        ("wb", w),
        ("a", a),
        ("ab", a),
        ("r+", plus(R)),
        ("rb+", plus(R)),
        ("r+b", plus(R)),
        ("w+", plus(w)),
        ("wb+", plus(w)),
        ("w+b", plus(w)),
        ("a+", plus(a)),
        ("ab+", plus(a)),
        ("a+b", plus(a)),
    ];
    for (i, (mode, flags)) in table.into_iter().enumerate() {
        let mut host = Fake::new();
        host.next = 1000 + i as i64;
        let args = format!(r#"{{"path":"/tmp/x","mode":"{mode}"}}"#);
        assert_eq!(
            run(&mut host, "guest-file-open", &args),
            ok(&(1000 + i).to_string()),
            "{mode}"
        );
        assert_eq!(host.calls, [Call::Open("/tmp/x".into(), flags)], "{mode}");
    }
    // Default mode.
    let mut host = Fake::new();
    assert_eq!(
        run(&mut host, "guest-file-open", r#"{"path":"rel/x"}"#),
        ok("1000")
    );
    assert_eq!(host.calls, [Call::Open("rel/x".into(), R)]);
}

#[test]
fn open_invalid_modes() {
    for mode in [
        "", "rw", "R", "rb+b", "br", "+r", "r++", "wa", "x", "r ", " r", "rt", "ab+x", "é",
    ] {
        let mut host = Fake::new();
        let args = format!(r#"{{"path":"/tmp/x","mode":"{mode}"}}"#);
        assert_eq!(
            run(&mut host, "guest-file-open", &args),
            err(&format!("invalid file open mode '{mode}'")),
        );
        assert!(host.calls.is_empty());
    }
}

#[test]
fn open_arguments() {
    let mut host = Fake::new();
    let mut open = |args: &str| run(&mut host, "guest-file-open", args);
    assert_eq!(open("{}"), err("Parameter 'path' is missing"));
    assert_eq!(
        open(r#"{"path":1}"#),
        err("Invalid parameter type for 'path', expected: string")
    );
    assert_eq!(
        open(r#"{"path":"x","mode":null}"#),
        err("Invalid parameter type for 'mode', expected: string")
    );
    // Arguments are visited before the mode is checked.
    assert_eq!(
        open(r#"{"path":"x","mode":"bad","foo":1}"#),
        err("Parameter 'foo' is unexpected")
    );
    assert_eq!(
        open(r#"{"mode":"bad","foo":1}"#),
        err("Parameter 'path' is missing")
    );
    assert!(host.calls.is_empty());
}

#[test]
fn open_host_errors() {
    for (fail, desc) in [
        (
            FileError::Os("No such file or directory".into()),
            "failed to open file '/nope' (mode: 'r+'): No such file or directory",
        ),
        (
            FileError::Denied("not under a granted directory".into()),
            "failed to open file '/nope' (mode: 'r+'): not under a granted directory",
        ),
        (FileError::Invalid("path too long".into()), "path too long"),
        (
            FileError::UnknownHandle,
            "failed to open file '/nope' (mode: 'r+'): unknown handle",
        ),
    ] {
        let mut host = Fake::new();
        host.fail = Some(fail);
        assert_eq!(
            run(
                &mut host,
                "guest-file-open",
                r#"{"path":"/nope","mode":"r+"}"#
            ),
            err(desc)
        );
    }
}

#[test]
fn close() {
    let mut host = Fake::with_handle(1000);
    assert_eq!(
        run(&mut host, "guest-file-close", r#"{"handle":1000}"#),
        ok("{}")
    );
    assert_eq!(
        run(&mut host, "guest-file-close", r#"{"handle":1000}"#),
        err("handle '1000' has not been found")
    );
    assert_eq!(
        run(&mut host, "guest-file-close", r#"{"handle":-5}"#),
        err("handle '-5' has not been found")
    );
    let mut host = Fake::with_handle(7);
    host.fail = Some(FileError::Os("Input/output error".into()));
    assert_eq!(
        run(&mut host, "guest-file-close", r#"{"handle":7}"#),
        err("failed to close handle: Input/output error")
    );
    host.fail = Some(FileError::Invalid("nope".into()));
    assert_eq!(
        run(&mut host, "guest-file-close", r#"{"handle":7}"#),
        err("nope")
    );
    assert_eq!(
        run(&mut host, "guest-file-close", "{}"),
        err("Parameter 'handle' is missing")
    );
    assert_eq!(
        run(&mut host, "guest-file-close", r#"{"handle":"7"}"#),
        err("Invalid parameter type for 'handle', expected: integer")
    );
    assert_eq!(
        run(&mut host, "guest-file-close", r#"{"handle":7.0}"#),
        err("Invalid parameter type for 'handle', expected: integer")
    );
    assert_eq!(
        run(&mut host, "guest-file-close", r#"{"handle":7,"count":1}"#),
        err("Parameter 'count' is unexpected")
    );
}

#[test]
fn read_counts() {
    let staged = |json: &str| {
        Ok(Reply {
            json: json.to_owned(),
            staged_member: Some("buf-b64"),
        })
    };
    let mut host = Fake::with_handle(1000);
    let mut read = |args: &str| run(&mut host, "guest-file-read", args);
    assert_eq!(
        read(r#"{"handle":1000}"#),
        staged(r#"{"count":10,"eof":true}"#)
    );
    assert_eq!(
        read(r#"{"handle":1000,"count":0}"#),
        staged(r#"{"count":0,"eof":false}"#)
    );
    assert_eq!(
        read(r#"{"handle":1000,"count":4096}"#),
        staged(r#"{"count":10,"eof":true}"#)
    );
    assert_eq!(
        read(r#"{"handle":1000,"count":50331648}"#),
        staged(r#"{"count":10,"eof":true}"#)
    );
    assert_eq!(
        read(r#"{"handle":1000,"count":3}"#),
        staged(r#"{"count":3,"eof":false}"#)
    );
    for bad in [
        "50331649",
        "-1",
        "-9223372036854775808",
        "9223372036854775807",
    ] {
        assert_eq!(
            read(&format!(r#"{{"handle":1000,"count":{bad}}}"#)),
            err(&format!("value '{bad}' is invalid for argument count"))
        );
        // As in qemu-ga, an unknown handle is reported before the range.
        assert_eq!(
            read(&format!(r#"{{"handle":1,"count":{bad}}}"#)),
            err("handle '1' has not been found")
        );
    }
    assert_eq!(
        read(r#"{"handle":1000,"count":1.5}"#),
        err("Invalid parameter type for 'count', expected: integer")
    );
    assert_eq!(read(r#"{"count":1}"#), err("Parameter 'handle' is missing"));
    assert_eq!(
        read(r#"{"handle":1000,"count":1,"buf-b64":""}"#),
        err("Parameter 'buf-b64' is unexpected")
    );
    assert_eq!(
        read(r#"{"handle":1,"count":1}"#),
        err("handle '1' has not been found")
    );
    assert_eq!(
        host.calls,
        [
            Call::Read(1000, 4096),
            Call::Read(1000, 0),
            Call::Read(1000, 4096),
            Call::Read(1000, 50331648),
            Call::Read(1000, 3),
        ]
    );
}

#[test]
fn read_host_errors() {
    let mut host = Fake::with_handle(3);
    host.fail = Some(FileError::Os("Is a directory".into()));
    assert_eq!(
        run(&mut host, "guest-file-read", r#"{"handle":3}"#),
        err("failed to read file: Is a directory")
    );
    host.fail = Some(FileError::Denied("read not granted".into()));
    assert_eq!(
        run(&mut host, "guest-file-read", r#"{"handle":3}"#),
        err("failed to read file: read not granted")
    );
    host.fail = Some(FileError::Invalid("too much".into()));
    assert_eq!(
        run(&mut host, "guest-file-read", r#"{"handle":3}"#),
        err("too much")
    );
}

fn write(host: &mut Fake, args: &str) -> Result<Reply, String> {
    run(host, "guest-file-write", args)
}

#[test]
fn write_decodes_and_counts() {
    let mut host = Fake::with_handle(1000);
    let h = &mut host;
    assert_eq!(
        write(h, r#"{"handle":1000,"buf-b64":"aGVsbG8gd29ybGQK"}"#),
        ok(r#"{"count":12,"eof":false}"#)
    );
    assert_eq!(
        write(
            h,
            r#"{"handle":1000,"buf-b64":"aGVsbG8gd29ybGQK","count":5}"#
        ),
        ok(r#"{"count":5,"eof":false}"#)
    );
    assert_eq!(
        write(
            h,
            r#"{"handle":1000,"buf-b64":"aGVsbG8gd29ybGQK","count":12}"#
        ),
        ok(r#"{"count":12,"eof":false}"#)
    );
    assert_eq!(
        write(h, r#"{"handle":1000,"buf-b64":"","count":0}"#),
        ok(r#"{"count":0,"eof":false}"#)
    );
    assert_eq!(
        write(h, r#"{"handle":1000,"buf-b64":""}"#),
        ok(r#"{"count":0,"eof":false}"#)
    );
    // Newlines are skipped wherever they are.
    assert_eq!(
        write(h, r#"{"handle":1000,"buf-b64":"\nQU\nJD\nRA==\n"}"#),
        ok(r#"{"count":4,"eof":false}"#)
    );
    // Padding; nonzero trailing bits are ignored as glib does ("QUJ=" = "AB").
    assert_eq!(
        write(h, r#"{"handle":1000,"buf-b64":"QQ=="}"#),
        ok(r#"{"count":1,"eof":false}"#)
    );
    assert_eq!(
        write(h, r#"{"handle":1000,"buf-b64":"QUJ="}"#),
        ok(r#"{"count":2,"eof":false}"#)
    );
    assert_eq!(
        write(h, r#"{"handle":1000,"buf-b64":"+/+/"}"#),
        ok(r#"{"count":3,"eof":false}"#)
    );
    assert_eq!(
        host.calls,
        [
            Call::Write(1000, b"hello world\n".to_vec()),
            Call::Write(1000, b"hello".to_vec()),
            Call::Write(1000, b"hello world\n".to_vec()),
            Call::Write(1000, vec![]),
            Call::Write(1000, vec![]),
            Call::Write(1000, b"ABCD".to_vec()),
            Call::Write(1000, b"A".to_vec()),
            Call::Write(1000, b"AB".to_vec()),
            Call::Write(1000, vec![0xfb, 0xff, 0xbf]),
        ]
    );
}

#[test]
fn write_bad_base64() {
    let mut host = Fake::with_handle(1000);
    for b64 in [
        "QUJD!",
        "QUJD RA==",
        "QUJD\\r\\n",
        "QU-D",
        "QU_D",
        "\\u0000",
        "QUJDé",
        "\\t",
    ] {
        assert_eq!(
            write(
                &mut host,
                &format!(r#"{{"handle":1000,"buf-b64":"{b64}"}}"#)
            ),
            err("Base64 data contains invalid characters"),
            "{b64}"
        );
    }
    for (b64, reason) in [
        ("QUJ", "missing or misplaced '=' padding"),
        ("QQ", "missing or misplaced '=' padding"),
        ("QQ=", "missing or misplaced '=' padding"),
        ("QUJDR", "length is not a multiple of 4"),
        ("Q", "length is not a multiple of 4"),
        ("QQ===", "misplaced '='"),
        ("QQ==QUJD", "misplaced '='"),
        ("=QUJ", "misplaced '='"),
        ("Q=JD", "misplaced '='"),
        ("====", "misplaced '='"),
        ("QUJD\\n=", "misplaced '='"),
    ] {
        assert_eq!(
            write(
                &mut host,
                &format!(r#"{{"handle":1000,"buf-b64":"{b64}"}}"#)
            ),
            err(&format!("Base64 data is malformed: {reason}")),
            "{b64}"
        );
    }
    // Decoding comes before the count check.
    assert_eq!(
        write(&mut host, r#"{"handle":1000,"buf-b64":"QUJ","count":-1}"#),
        err("Base64 data is malformed: missing or misplaced '=' padding")
    );
    assert!(host.calls.is_empty());
}

#[test]
fn write_bad_count() {
    let mut host = Fake::with_handle(1000);
    for count in [
        "-1",
        "4",
        "13",
        "9223372036854775807",
        "-9223372036854775808",
    ] {
        assert_eq!(
            write(
                &mut host,
                &format!(r#"{{"handle":1000,"buf-b64":"QUJD","count":{count}}}"#)
            ),
            err(&format!("value '{count}' is invalid for argument count")),
        );
    }
    assert_eq!(
        write(&mut host, r#"{"handle":1000,"buf-b64":"","count":1}"#),
        err("value '1' is invalid for argument count")
    );
    assert!(host.calls.is_empty());
    // As in qemu-ga, an unknown handle is reported before the count and
    // the data are checked.
    assert_eq!(
        write(&mut host, r#"{"handle":5,"buf-b64":"QUJD","count":4}"#),
        err("handle '5' has not been found")
    );
    assert_eq!(
        write(&mut host, r#"{"handle":5,"buf-b64":"!!!!"}"#),
        err("handle '5' has not been found")
    );
    assert_eq!(
        write(&mut host, r#"{"handle":5,"buf-b64":"QUJD","count":3}"#),
        err("handle '5' has not been found")
    );
}

#[test]
fn write_arguments_and_host_errors() {
    let mut host = Fake::with_handle(1000);
    assert_eq!(
        write(&mut host, r#"{"handle":1000}"#),
        err("Parameter 'buf-b64' is missing")
    );
    assert_eq!(
        write(&mut host, r#"{"buf-b64":"!!"}"#),
        err("Parameter 'handle' is missing")
    );
    assert_eq!(
        write(&mut host, r#"{"handle":1000,"buf-b64":[]}"#),
        err("Invalid parameter type for 'buf-b64', expected: string")
    );
    assert_eq!(
        write(&mut host, r#"{"handle":1000,"buf-b64":"!!","count":"1"}"#),
        err("Invalid parameter type for 'count', expected: integer")
    );
    // Unexpected members are reported before the data is looked at.
    assert_eq!(
        write(&mut host, r#"{"handle":1000,"buf-b64":"!!","buf":""}"#),
        err("Parameter 'buf' is unexpected")
    );
    host.fail = Some(FileError::Os("No space left on device".into()));
    assert_eq!(
        write(&mut host, r#"{"handle":1000,"buf-b64":"QUJD"}"#),
        err("failed to write to file: No space left on device")
    );
    host.fail = Some(FileError::Denied("read-only grant".into()));
    assert_eq!(
        write(&mut host, r#"{"handle":1000,"buf-b64":"QUJD"}"#),
        err("failed to write to file: read-only grant")
    );
}

fn seek(host: &mut Fake, args: &str) -> Result<Reply, String> {
    run(host, "guest-file-seek", args)
}

#[test]
fn seek_whence_forms() {
    let mut host = Fake::with_handle(1000);
    for (whence, expected) in [
        ("0", Whence::Set),
        ("1", Whence::Cur),
        ("2", Whence::End),
        ("-0", Whence::Set),
        (r#""set""#, Whence::Set),
        (r#""cur""#, Whence::Cur),
        (r#""end""#, Whence::End),
    ] {
        host.calls.clear();
        assert_eq!(
            seek(
                &mut host,
                &format!(r#"{{"handle":1000,"offset":-3,"whence":{whence}}}"#)
            ),
            ok(r#"{"position":10,"eof":false}"#)
        );
        assert_eq!(host.calls, [Call::Seek(1000, -3, expected)]);
    }
    host.calls.clear();
    for (whence, desc) in [
        ("3", "invalid whence code 3"),
        ("-1", "invalid whence code -1"),
        (
            "9223372036854775807",
            "invalid whence code 9223372036854775807",
        ),
        (
            "1.0",
            "Invalid parameter type for 'whence', expected: integer",
        ),
        (
            "18446744073709551616",
            "Invalid parameter type for 'whence', expected: integer",
        ),
        (r#""SET""#, "Parameter 'whence' does not accept value 'SET'"),
        (r#""""#, "Parameter 'whence' does not accept value ''"),
        (r#""0""#, "Parameter 'whence' does not accept value '0'"),
        (
            "true",
            "Invalid parameter type for 'whence', expected: GuestFileWhence",
        ),
        (
            "null",
            "Invalid parameter type for 'whence', expected: GuestFileWhence",
        ),
        (
            "[0]",
            "Invalid parameter type for 'whence', expected: GuestFileWhence",
        ),
        (
            r#"{"set":0}"#,
            "Invalid parameter type for 'whence', expected: GuestFileWhence",
        ),
    ] {
        assert_eq!(
            seek(
                &mut host,
                &format!(r#"{{"handle":1000,"offset":0,"whence":{whence}}}"#)
            ),
            err(desc),
            "{whence}"
        );
    }
    assert!(host.calls.is_empty());
}

#[test]
fn seek_argument_order() {
    let mut host = Fake::with_handle(1000);
    assert_eq!(
        seek(&mut host, r#"{"handle":1000,"offset":0}"#),
        err("Parameter 'whence' is missing")
    );
    assert_eq!(
        seek(&mut host, r#"{"handle":1000,"whence":0}"#),
        err("Parameter 'offset' is missing")
    );
    assert_eq!(
        seek(&mut host, r#"{"handle":1000,"offset":"0","whence":9}"#),
        err("Invalid parameter type for 'offset', expected: integer")
    );
    // A bad enum name is a visitor error, so it beats an unexpected member;
    // a bad whence code is checked after the visit, so it does not.
    assert_eq!(
        seek(
            &mut host,
            r#"{"handle":1000,"offset":0,"whence":"x","foo":1}"#
        ),
        err("Parameter 'whence' does not accept value 'x'")
    );
    assert_eq!(
        seek(
            &mut host,
            r#"{"handle":1000,"offset":0,"whence":9,"foo":1}"#
        ),
        err("Parameter 'foo' is unexpected")
    );
    assert!(host.calls.is_empty());
    assert_eq!(
        seek(&mut host, r#"{"handle":9,"offset":0,"whence":"end"}"#),
        err("handle '9' has not been found")
    );
    host.fail = Some(FileError::Os("Invalid argument".into()));
    assert_eq!(
        seek(&mut host, r#"{"handle":1000,"offset":-100,"whence":0}"#),
        err("failed to seek file: Invalid argument")
    );
}

#[test]
fn flush() {
    let mut host = Fake::with_handle(1000);
    assert_eq!(
        run(&mut host, "guest-file-flush", r#"{"handle":1000}"#),
        ok("{}")
    );
    assert_eq!(
        run(&mut host, "guest-file-flush", r#"{"handle":1001}"#),
        err("handle '1001' has not been found")
    );
    host.fail = Some(FileError::Os("Input/output error".into()));
    assert_eq!(
        run(&mut host, "guest-file-flush", r#"{"handle":1000}"#),
        err("failed to flush file: Input/output error")
    );
    assert_eq!(
        run(
            &mut host,
            "guest-file-flush",
            r#"{"handle":1000,"x":[[[]]]}"#
        ),
        err("Parameter 'x' is unexpected")
    );
    assert_eq!(
        host.calls,
        [Call::Flush(1000), Call::Flush(1001), Call::Flush(1000)]
    );
}

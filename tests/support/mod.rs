//! Shared harness of the integration tests: starts an agent (sandga, or
//! Debian's qemu-ga for the differential test) on a unix socket in a
//! temporary directory, and talks to it as a QMP client would.
//!
//! Everything is bounded in time: the agent must accept within
//! [`START_TIMEOUT`], every read has [`READ_TIMEOUT`], and an agent that does
//! not exit within [`EXIT_TIMEOUT`] of a signal is killed (and the test
//! fails).

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

pub mod files;

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

pub const START_TIMEOUT: Duration = Duration::from_secs(10);
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client waits to be sure that no answer is coming.
pub const SILENCE: Duration = Duration::from_millis(300);

/// The `sandga` binary built by cargo for these tests.
pub fn sandga_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sandga"))
}

/// The file commands, in qemu-ga's schema order.
pub const FILE_COMMANDS: &[&str] = &[
    "guest-file-open",
    "guest-file-close",
    "guest-file-read",
    "guest-file-write",
    "guest-file-seek",
    "guest-file-flush",
];

/// Debian's qemu-ga, used by the differential test.
pub const QEMU_GA: &str = "/usr/sbin/qemu-ga";

/// The shipped policies (`<workspace>/policies/<name>`).
pub fn shipped_policy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policies")
        .join(name)
}

/// The policy an agent is started with.
#[derive(Debug, Clone)]
pub enum Policy {
    /// No `--policy`: sandga's built-in `policies/default.toml`.
    Default,
    /// A shipped file, e.g. `"qemu-ga-compat.toml"`.
    Shipped(&'static str),
    /// TOML text, written to `<dir>/policy.toml`. Every `@DIR@` in it is
    /// replaced by the agent's temporary directory.
    Text(String),
}

/// Everything about how an agent is started.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Policy,
    /// Extra command-line arguments; `@DIR@` is replaced as in policies.
    pub args: Vec<String>,
    /// The umask the agent runs with (the test process's if `None`).
    pub umask: Option<u32>,
}

impl Config {
    pub fn new(policy: Policy) -> Config {
        Config {
            policy,
            args: Vec::new(),
            umask: None,
        }
    }
}

enum Program {
    Sandga,
    QemuGa,
}

/// A running agent on `<dir>/sock` (sandga) or `<dir>/qga.sock` (qemu-ga),
/// with state directory `<dir>/state` (or `<dir>/qga-state`), working
/// directory `<dir>` and stderr in `<dir>/agent.log`.
///
/// Dropping it sends SIGTERM and, unless the test is already failing or the
/// agent is qemu-ga, asserts that the agent exits with status 0.
pub struct Agent {
    dir: TempDir,
    program: Program,
    config: Config,
    child: Option<Child>,
}

/// The temporary directory an agent will run in; set it up (grants, files)
/// before calling [`Agent::start_in`].
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("sandga-test.")
        .tempdir()
        .expect("creating a temporary directory")
}

fn expand(text: &str, dir: &Path) -> String {
    text.replace("@DIR@", &dir.display().to_string())
}

impl Agent {
    /// sandga with `policy`, in a fresh temporary directory.
    pub fn start(policy: Policy) -> Agent {
        Agent::start_in(temp_dir(), Config::new(policy))
    }

    /// sandga in `dir` (already set up by the test).
    pub fn start_in(dir: TempDir, config: Config) -> Agent {
        let mut agent = Agent {
            dir,
            program: Program::Sandga,
            config,
            child: None,
        };
        agent.spawn();
        agent
    }

    /// Debian's qemu-ga in a fresh temporary directory, as qemu's own test
    /// harness starts it: `-m unix-listen -p <dir>/qga.sock -t <dir>/qga-state`
    /// with the working directory `<dir>`.
    pub fn start_qemu_ga() -> Agent {
        assert!(
            Path::new(QEMU_GA).exists(),
            "{QEMU_GA} is missing: the differential test needs Debian's qemu-ga \
             (`apt-get install qemu-guest-agent`)"
        );
        let mut agent = Agent {
            dir: temp_dir(),
            program: Program::QemuGa,
            config: Config::new(Policy::Default),
            child: None,
        };
        agent.spawn();
        agent
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        match self.program {
            Program::Sandga => self.dir().join("sock"),
            Program::QemuGa => self.dir().join("qga.sock"),
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        match self.program {
            Program::Sandga => self.dir().join("state"),
            Program::QemuGa => self.dir().join("qga-state"),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir().join("agent.log")
    }

    /// What the agent wrote to stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> Pid {
        let child = self.child.as_ref().expect("the agent is not running");
        Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"))
    }

    fn command(&self) -> Command {
        let dir = self.dir();
        let state = self.state_dir();
        fs::create_dir_all(&state).expect("creating the state directory");
        let mut command;
        match self.program {
            Program::Sandga => {
                command = Command::new(sandga_bin());
                command.arg("-m").arg("unix-listen");
                command.arg("-p").arg(self.socket());
                command.arg("-t").arg(&state);
                match &self.config.policy {
                    Policy::Default => {}
                    Policy::Shipped(name) => {
                        command.arg("--policy").arg(shipped_policy(name));
                    }
                    Policy::Text(text) => {
                        let path = dir.join("policy.toml");
                        fs::write(&path, expand(text, dir)).expect("writing the policy");
                        command.arg("--policy").arg(path);
                    }
                }
            }
            Program::QemuGa => {
                command = Command::new(QEMU_GA);
                command.arg("-m").arg("unix-listen");
                command.arg("-p").arg(self.socket());
                command.arg("-t").arg(&state);
                // Never the system's pidfile (only written when daemonized,
                // but stay clear of /var/run anyway).
                command.arg("-f").arg(dir.join("qemu-ga.pid"));
                // Never the system's /etc/qemu/qemu-ga.conf.
                command.env("QGA_CONF", dir.join("qemu-ga.conf"));
            }
        }
        command.args(self.config.args.iter().map(|arg| expand(arg, dir)));
        command.current_dir(dir);
        command.stdin(Stdio::null());
        command.stdout(Stdio::null());
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("creating the agent's log");
        command.stderr(log);
        if let Some(mask) = self.config.umask {
            let mode = nix::sys::stat::Mode::from_bits_truncate(mask);
            // SAFETY: umask(2) is async-signal-safe and touches no memory.
            unsafe {
                command.pre_exec(move || {
                    nix::sys::stat::umask(mode);
                    Ok(())
                });
            }
        }
        command
    }

    fn spawn(&mut self) {
        let _ = fs::remove_file(self.socket());
        let child = self
            .command()
            .spawn()
            .unwrap_or_else(|e| panic!("starting the agent: {e}"));
        self.child = Some(child);
        self.wait_until_serving();
    }

    /// Waits until the socket accepts and a request is answered (so the
    /// agent's signal handlers are installed and it is in its serve loop).
    fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "the agent exited at start with {status}; its log:\n{}",
                    self.log()
                );
            }
            if let Ok(stream) = UnixStream::connect(self.socket()) {
                let mut client = Client::from_stream(stream);
                let answer = client.call(r#"{"execute":"guest-ping"}"#);
                assert!(
                    answer.get("return").is_some() || answer.get("error").is_some(),
                    "unexpected answer to the start-up probe: {answer}"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not accept on {} within {START_TIMEOUT:?}; its log:\n{}",
                self.socket().display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A new client connection.
    pub fn connect(&self) -> Client {
        let stream = UnixStream::connect(self.socket())
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.socket().display()));
        Client::from_stream(stream)
    }

    /// Sends `signal` and waits (bounded) for the agent to exit.
    pub fn signal_and_wait(&mut self, signal: Signal) -> ExitStatus {
        let mut child = self.child.take().expect("the agent is not running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
        kill(pid, signal).expect("signalling the agent");
        let status = wait_bounded(&mut child, EXIT_TIMEOUT);
        status.unwrap_or_else(|| {
            panic!(
                "the agent did not exit within {EXIT_TIMEOUT:?} of {signal}; its log:\n{}",
                self.log()
            )
        })
    }

    /// SIGTERM; asserts exit status 0.
    pub fn stop(&mut self) {
        let status = self.signal_and_wait(Signal::SIGTERM);
        assert_eq!(
            status.code(),
            Some(0),
            "agent exit status after SIGTERM: {status}; its log:\n{}",
            self.log()
        );
    }

    /// Stops the agent (asserting a clean exit) and starts it again with the
    /// same directory, state directory and configuration.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let _ = kill(pid, Signal::SIGTERM);
        let status = wait_bounded(&mut child, EXIT_TIMEOUT);
        // Only sandga is under test. (Debian's qemu-ga 7.2 now and then takes
        // over 10 s to exit after SIGTERM; it is killed then.)
        if std::thread::panicking() || matches!(self.program, Program::QemuGa) {
            return;
        }
        let status = status.unwrap_or_else(|| {
            panic!(
                "the agent did not exit within {EXIT_TIMEOUT:?} of SIGTERM; its log:\n{}",
                self.log()
            )
        });
        assert_eq!(
            status.code(),
            Some(0),
            "agent exit status after SIGTERM: {status}; its log:\n{}",
            self.log()
        );
    }
}

/// Waits up to `timeout` for `child`; kills it (and reaps it) if it is still
/// running then, returning `None`.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return None,
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `program` with `args` in `cwd` to completion (bounded by
/// [`EXIT_TIMEOUT`]) and returns its output.
pub fn run_to_exit(program: &Path, args: &[OsString], cwd: &Path) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
    // The outputs are small (usage and error lines), so the pipes cannot
    // fill up before the process exits.
    let status = wait_bounded(&mut child, EXIT_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "{} {args:?} did not exit within {EXIT_TIMEOUT:?}",
            program.display()
        )
    });
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut stdout).expect("reading stdout");
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_end(&mut stderr).expect("reading stderr");
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Describes how a process ended, for messages.
pub fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => format!("{status}"),
    }
}

/// One response line.
#[derive(Debug, Clone)]
pub struct Response {
    /// The parsed JSON object.
    pub value: Value,
    /// The line was prefixed by the 0xFF delimiter.
    pub delimited: bool,
    /// The bytes as received, including the 0xFF prefix and the `\n`.
    pub raw: Vec<u8>,
}

impl Response {
    /// The line without the 0xFF prefix and the `\n`, as text.
    pub fn text(&self) -> String {
        let body = self.raw.strip_prefix(&[0xFF]).unwrap_or(&self.raw);
        let body = body.strip_suffix(b"\n").unwrap_or(body);
        String::from_utf8_lossy(body).into_owned()
    }
}

/// A QMP client over a unix socket. Every read times out (after
/// [`READ_TIMEOUT`] unless told otherwise), so a hanging agent fails the test
/// instead of blocking.
pub struct Client {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    read_timeout: Duration,
}

impl Client {
    pub fn from_stream(stream: UnixStream) -> Client {
        Client::with_read_timeout(stream, READ_TIMEOUT)
    }

    /// For agents that are slow for a reason (an emulated guest).
    pub fn with_read_timeout(stream: UnixStream, read_timeout: Duration) -> Client {
        stream
            .set_read_timeout(Some(read_timeout))
            .expect("setting the read timeout");
        stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .expect("setting the write timeout");
        let reader =
            BufReader::with_capacity(1 << 16, stream.try_clone().expect("cloning the socket"));
        Client {
            writer: stream,
            reader,
            read_timeout,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("sending to the agent");
        self.writer.flush().expect("flushing to the agent");
    }

    pub fn send(&mut self, text: &str) {
        self.send_raw(text.as_bytes());
    }

    /// Reads one response line (up to and including `\n`), checks that it is
    /// a single line of valid JSON and notes a 0xFF prefix.
    pub fn recv_response(&mut self) -> Response {
        let mut raw = Vec::new();
        match self.reader.read_until(b'\n', &mut raw) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "no complete response within {:?} (got {:?})",
                    self.read_timeout,
                    String::from_utf8_lossy(&raw)
                )
            }
            Err(e) => panic!("reading from the agent: {e}"),
        }
        assert!(
            raw.ends_with(b"\n"),
            "the agent closed the connection mid-response or before answering \
             (got {:?})",
            String::from_utf8_lossy(&raw)
        );
        let delimited = raw.first() == Some(&0xFF);
        let body = &raw[usize::from(delimited)..raw.len() - 1];
        let value: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "response is not one line of valid JSON ({e}): {:?}",
                String::from_utf8_lossy(&raw)
            )
        });
        assert!(value.is_object(), "response is not an object: {value}");
        Response {
            value,
            delimited,
            raw,
        }
    }

    /// Reads one response, which must not be 0xFF-prefixed.
    pub fn recv(&mut self) -> Value {
        let response = self.recv_response();
        assert!(
            !response.delimited,
            "unexpected 0xFF prefix on {}",
            response.value
        );
        response.value
    }

    /// Sends `text` and reads one (undelimited) response.
    pub fn call(&mut self, text: &str) -> Value {
        self.send(text);
        self.recv()
    }

    /// Sends `value` as JSON and reads one (undelimited) response.
    pub fn call_value(&mut self, value: &Value) -> Value {
        self.call(&value.to_string())
    }

    /// Reads one response if a whole one arrives within `timeout`; a
    /// partial line is consumed and dropped (the caller resynchronises).
    pub fn recv_within(&mut self, timeout: Duration) -> Option<Value> {
        match read_line_within(&mut self.reader, timeout) {
            Line::Read(raw) => {
                let body = raw.strip_prefix(&[0xFF]).unwrap_or(&raw);
                serde_json::from_slice(body).ok()
            }
            Line::TimedOut => None,
            Line::Closed => panic!("the agent closed the connection"),
        }
    }

    /// Asserts that nothing arrives within [`SILENCE`].
    pub fn expect_silence(&mut self) {
        self.expect_silence_for(SILENCE);
    }

    pub fn expect_silence_for(&mut self, duration: Duration) {
        let buffered = self.reader.buffer().to_vec();
        assert!(
            buffered.is_empty(),
            "expected no answer, but got {:?}",
            String::from_utf8_lossy(&buffered)
        );
        self.reader
            .get_ref()
            .set_read_timeout(Some(duration))
            .expect("setting the read timeout");
        let got = self.reader.fill_buf().map(<[u8]>::to_vec);
        self.reader
            .get_ref()
            .set_read_timeout(Some(self.read_timeout))
            .expect("setting the read timeout");
        match got {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Ok(bytes) if bytes.is_empty() => panic!("the agent closed the connection"),
            Ok(bytes) => panic!(
                "expected no answer, but got {:?}",
                String::from_utf8_lossy(&bytes)
            ),
            Err(e) => panic!("reading from the agent: {e}"),
        }
    }

    /// Closes both directions (the agent sees EOF).
    pub fn disconnect(self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
    }
}

/// User plus system CPU time, in clock ticks, from a `/proc/PID/stat` line.
#[track_caller]
pub fn cpu_ticks(stat: &str) -> u64 {
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the command name: state is field 3, utime 14 and stime 15.
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no field {n} in /proc/PID/stat: {stat:?}"))
    };
    field(14) + field(15)
}

/// What [`read_line_within`] got.
pub enum Line {
    /// A whole line, with its `\n`.
    Read(Vec<u8>),
    /// No whole line in time; a partial one was consumed and dropped.
    TimedOut,
    /// The peer closed the stream.
    Closed,
}

/// Reads one `\n`-terminated line from `reader` within `timeout`, leaving
/// the stream's read timeout as it was.
pub fn read_line_within(reader: &mut BufReader<UnixStream>, timeout: Duration) -> Line {
    let previous = reader.get_ref().read_timeout().ok().flatten();
    reader
        .get_ref()
        .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
        .expect("setting the read timeout");
    let mut raw = Vec::new();
    let read = reader.read_until(b'\n', &mut raw);
    reader
        .get_ref()
        .set_read_timeout(previous)
        .expect("setting the read timeout");
    match read {
        Ok(_) if raw.ends_with(b"\n") => Line::Read(raw),
        Ok(_) => Line::Closed,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Line::TimedOut,
        Err(e) => panic!("reading a line: {e}"),
    }
}

/// The `return` member of a success response; panics on anything else.
#[track_caller]
pub fn ret(response: &Value) -> &Value {
    assert!(
        response.get("error").is_none(),
        "expected a return, got {response}"
    );
    response
        .get("return")
        .unwrap_or_else(|| panic!("expected a return, got {response}"))
}

/// `(class, desc)` of an error response; panics on anything else.
#[track_caller]
pub fn error(response: &Value) -> (String, String) {
    assert!(
        response.get("return").is_none(),
        "expected an error, got {response}"
    );
    let error = response
        .get("error")
        .unwrap_or_else(|| panic!("expected an error, got {response}"));
    let object = error
        .as_object()
        .unwrap_or_else(|| panic!("error is not an object: {response}"));
    assert_eq!(
        object.len(),
        2,
        "error must have exactly class and desc: {response}"
    );
    let class = error["class"]
        .as_str()
        .unwrap_or_else(|| panic!("error class is not a string: {response}"));
    let desc = error["desc"]
        .as_str()
        .unwrap_or_else(|| panic!("error desc is not a string: {response}"));
    (class.to_string(), desc.to_string())
}

/// Asserts a `GenericError` with exactly `desc`.
#[track_caller]
pub fn assert_error(response: &Value, desc: &str) {
    assert_error_class(response, "GenericError", desc);
}

/// Asserts an error of `class` with exactly `desc`.
#[track_caller]
pub fn assert_error_class(response: &Value, class: &str, desc: &str) {
    let (got_class, got_desc) = error(response);
    assert_eq!(
        (got_class.as_str(), got_desc.as_str()),
        (class, desc),
        "in {response}"
    );
}

/// Asserts a `GenericError` whose desc contains every one of `parts`;
/// returns the desc.
#[track_caller]
pub fn assert_error_contains(response: &Value, parts: &[&str]) -> String {
    let (class, desc) = error(response);
    assert_eq!(class, "GenericError", "in {response}");
    for part in parts {
        assert!(
            desc.contains(part),
            "error desc {desc:?} does not contain {part:?}"
        );
    }
    desc
}

/// Base64 (standard, padded) of `data`.
pub fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decodes standard base64, panicking on malformed input.
pub fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|e| panic!("invalid base64 from the agent ({e}): {text:?}"))
}

/// Deterministic pseudo-random bytes (xorshift), for file contents.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

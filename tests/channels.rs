//! Channels other than unix-listen: a serial port, driven through a
//! pseudo-terminal standing in for it (the agent serves it raw, and once the
//! far side hangs up it neither exits nor burns CPU), and vsock-listen.

mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::pty::openpty;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

struct PortAgent {
    child: Child,
    _state: tempfile::TempDir,
}

impl PortAgent {
    fn start(method: &str, port: &str) -> PortAgent {
        let state = support::temp_dir();
        let child = Command::new(support::sandga_bin())
            .args(["-m", method, "-p", port, "-t"])
            .arg(state.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting sandga");
        PortAgent {
            child,
            _state: state,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"))
    }

    /// User plus system CPU time, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("reading /proc/PID/stat");
        support::cpu_ticks(&stat)
    }

    fn stop(mut self) {
        kill(self.pid(), Signal::SIGTERM).expect("signalling sandga");
        let status = support::wait_bounded(&mut self.child, support::EXIT_TIMEOUT)
            .expect("sandga exits after SIGTERM");
        assert_eq!(status.code(), Some(0), "{status}");
    }
}

/// Reads from the pty master until `want` lines arrived (bounded).
fn read_lines(master: &mut File, want: usize) -> String {
    let deadline = Instant::now() + support::READ_TIMEOUT;
    let mut got = Vec::new();
    while got.iter().filter(|&&b| b == b'\n').count() < want {
        assert!(Instant::now() < deadline, "no answer: {got:?}");
        let mut buf = [0u8; 4096];
        match master.read(&mut buf) {
            Ok(n) => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("reading the pty: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn pty() -> (File, String) {
    let pty = openpty(None, None).expect("openpty");
    let name = nix::unistd::ttyname(pty.slave.as_fd()).expect("ttyname");
    let master: OwnedFd = pty.master;
    nix::fcntl::fcntl(
        &master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .expect("non-blocking master");
    // The slave stays open only in the agent.
    drop(pty.slave);
    (File::from(master), name.display().to_string())
}

#[test]
fn isa_serial_serves_a_raw_port_and_idles_after_hang_up() {
    let (mut master, port) = pty();
    let agent = PortAgent::start("isa-serial", &port);
    // Let the agent open the port and set raw mode before writing to it.
    std::thread::sleep(Duration::from_millis(300));
    master
        .write_all(
            b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":42}}{\"execute\":\"guest-ping\"}",
        )
        .expect("writing to the pty");
    // Raw mode: no echo of the request, no \r\n translation.
    assert_eq!(
        read_lines(&mut master, 2),
        "{\"return\":42}\n{\"return\":{}}\n"
    );

    drop(master);
    std::thread::sleep(Duration::from_millis(300));
    let before = agent.cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let used = agent.cpu_ticks() - before;
    // A spinning agent would use ~200 ticks in 2 s.
    assert!(used <= 10, "{used} ticks of CPU in 2 s after the hang-up");
    agent.stop();
}

/// This machine has no vsock loopback transport, so only the listening side
/// can be exercised: the agent binds, keeps serving (waiting) and stops
/// cleanly; a malformed address is refused at start.
#[test]
fn vsock_listen_binds_and_rejects_bad_addresses() {
    // VMADDR_CID_ANY, and a port unlikely to be taken.
    let mut agent = PortAgent::start("vsock-listen", "4294967295:52981");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        agent.child.try_wait().expect("polling sandga").is_none(),
        "sandga exited instead of listening on vsock"
    );
    agent.stop();

    let state = support::temp_dir();
    for bad in ["52981", "x:1", "1:", "1:2:3"] {
        let out = support::run_to_exit(
            &support::sandga_bin(),
            &[
                "-m".into(),
                "vsock-listen".into(),
                "-p".into(),
                bad.into(),
                "-t".into(),
                state.path().into(),
            ],
            state.path(),
        );
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error parsing address"), "{bad}: {stderr}");
    }
}

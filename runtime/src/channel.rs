//! The transport to the host: a virtio-serial or ISA serial port the agent
//! holds open for its whole life, or a listening unix/vsock socket serving
//! one client at a time. Bytes only; no knowledge of the protocol.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::fcntl::{OFlag, open};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, VsockAddr, accept4, bind, listen, socket,
};
use nix::sys::stat::Mode;
use nix::sys::termios::{self, BaudRate, FlushArg, SetArg, SpecialCharacterIndices};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub const DEFAULT_VIRTIO_PATH: &str = "/dev/virtio-ports/org.qemu.guest_agent.0";
pub const DEFAULT_ISA_PATH: &str = "/dev/ttyS0";

/// Clients waiting for their turn queue in the listen backlog.
const BACKLOG: i32 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    VirtioSerial,
    IsaSerial,
    UnixListen,
    VsockListen,
}

impl Method {
    pub fn parse(name: &str) -> Option<Method> {
        Some(match name {
            "virtio-serial" => Method::VirtioSerial,
            "isa-serial" => Method::IsaSerial,
            "unix-listen" => Method::UnixListen,
            "vsock-listen" => Method::VsockListen,
            _ => return None,
        })
    }

    pub fn default_path(self) -> Option<&'static str> {
        match self {
            Method::VirtioSerial => Some(DEFAULT_VIRTIO_PATH),
            Method::IsaSerial => Some(DEFAULT_ISA_PATH),
            Method::UnixListen | Method::VsockListen => None,
        }
    }
}

pub enum Channel {
    /// A serial port: one stream for the agent's whole life. While the host
    /// side is closed it reads end-of-file; the host may come back any time.
    Port(Connection),
    /// A listening socket; each accepted client is a connection.
    Listener(AsyncFd<OwnedFd>),
}

/// One open byte stream (non-blocking, driven by tokio's edge-triggered
/// epoll, so a hung-up port costs no wake-ups).
pub struct Connection(AsyncFd<OwnedFd>);

impl Channel {
    pub fn open(method: Method, path: &str) -> Result<Channel> {
        let channel = match method {
            Method::VirtioSerial => Channel::Port(open_port(Path::new(path), false)?),
            Method::IsaSerial => Channel::Port(open_port(Path::new(path), true)?),
            Method::UnixListen => Channel::Listener(listen_unix(Path::new(path))?),
            Method::VsockListen => Channel::Listener(listen_vsock(path)?),
        };
        Ok(channel)
    }
}

fn open_port(path: &Path, raw_tty: bool) -> Result<Connection> {
    let fd = open(
        path,
        OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .with_context(|| format!("error opening channel '{}'", path.display()))?;
    if raw_tty {
        make_raw(&fd).with_context(|| format!("configuring serial port '{}'", path.display()))?;
    }
    Ok(Connection(register(fd)?))
}

/// As qemu-ga: raw mode, 38400 baud, a read returns as soon as a byte is there.
fn make_raw(fd: &OwnedFd) -> nix::Result<()> {
    let mut attrs = termios::tcgetattr(fd)?;
    termios::cfmakeraw(&mut attrs);
    termios::cfsetspeed(&mut attrs, BaudRate::B38400)?;
    attrs.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    attrs.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    termios::tcsetattr(fd, SetArg::TCSANOW, &attrs)?;
    termios::tcflush(fd, FlushArg::TCIFLUSH)
}

fn listen_unix(path: &Path) -> Result<AsyncFd<OwnedFd>> {
    // A stale socket file from an earlier run would make bind fail.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("removing stale socket {}", path.display()));
        }
    }
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    bind(fd.as_raw_fd(), &addr)
        .with_context(|| format!("Failed to bind socket to {}", path.display()))?;
    listen(&fd, Backlog::new(BACKLOG)?)?;
    Ok(register(fd)?)
}

fn listen_vsock(address: &str) -> Result<AsyncFd<OwnedFd>> {
    let parsed = address
        .split_once(':')
        .and_then(|(cid, port)| Some((cid.parse::<u32>().ok()?, port.parse::<u32>().ok()?)));
    let Some((cid, port)) = parsed else {
        bail!("error parsing address '{address}': expected CID:PORT");
    };
    let fd = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("creating vsock socket")?;
    bind(fd.as_raw_fd(), &VsockAddr::new(cid, port))
        .with_context(|| format!("Failed to bind socket to vsock:{address}"))?;
    listen(&fd, Backlog::new(BACKLOG)?)?;
    Ok(register(fd)?)
}

/// Hands `fd` to tokio's reactor.
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `OwnedFd` owns its descriptor, keeps it open until dropped
    // with the `AsyncFd`, and always returns the same one.
    Ok(unsafe { AsyncFd::register(fd) }?)
}

/// Waits for the next client.
pub async fn accept(listener: &AsyncFd<OwnedFd>) -> io::Result<Connection> {
    let fd = listener
        .async_io(Interest::READABLE, |fd| {
            accept4(
                fd.as_raw_fd(),
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            )
            .map_err(io::Error::from)
        })
        .await?;
    // SAFETY: accept4 just returned this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(Connection(register(fd)?))
}

impl Connection {
    /// Reads what is available; 0 means the peer hung up.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut ready = self.0.readable().await?;
            let read = ready.try_io(|fd| nix::unistd::read(fd, buf).map_err(io::Error::from));
            match read {
                Ok(Ok(n)) => {
                    // A short read drained the stream: wait for the next
                    // readiness event instead of spending a system call to
                    // learn that it is empty. (tokio keeps the readiness if
                    // an event arrived meanwhile.)
                    if n > 0 && n < buf.len() {
                        ready.clear_ready();
                    }
                    return Ok(n);
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    pub async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let written = self
                .0
                .async_io(Interest::WRITABLE, |fd| {
                    nix::unistd::write(fd, bytes).map_err(io::Error::from)
                })
                .await?;
            bytes = bytes.get(written..).unwrap_or_default();
        }
        Ok(())
    }

    /// After a serial port reads end-of-file (the host side is closed), waits
    /// until it may have come back. The port reports the hang-up once and
    /// then stays quiet until the host connects, so this sleeps without
    /// polling; a slow re-check guards against a missed wake-up.
    pub async fn wait_for_host(&self) {
        if let Ok(mut guard) = self.0.readable().await {
            guard.clear_ready();
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.0.readable()).await;
    }
}

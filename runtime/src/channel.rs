//! The transport to the host: a virtio-serial or ISA serial port the agent
//! holds open for its whole life, or a listening unix/vsock socket serving
//! one client at a time. Bytes only; no knowledge of the protocol.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, VsockAddr, accept4, bind, listen, socket,
};
use nix::sys::stat::Mode;
use nix::sys::termios::{self, BaudRate, FlushArg, SetArg, SpecialCharacterIndices};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub const DEFAULT_VIRTIO_PATH: &str = "/dev/virtio-ports/org.qemu.guest_agent.0";
/// Where udev links virtio-serial ports by name.
const VIRTIO_PORTS_DIR: &str = "/dev/virtio-ports";
/// Where the kernel names them (`vportNpM/name`), udev or not.
const VIRTIO_PORTS_SYSFS: &str = "/sys/class/virtio-ports";
pub const DEFAULT_ISA_PATH: &str = "/dev/ttyS0";

/// While a port's host is connected and quiet, the agent looks for data
/// itself after this long, then twice as long each time, up to the maximum:
/// a guard against a lost wake-up that costs an idle agent next to nothing.
const PORT_RECHECK_FIRST: Duration = Duration::from_secs(1);
const PORT_RECHECK_MAX: Duration = Duration::from_secs(60);

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
    /// side is closed it reports hang-up (a virtio port reads end-of-file, a
    /// pty EIO); the host may come back any time.
    Port(Port),
    /// A listening socket; each accepted client is a connection.
    Listener(AsyncFd<OwnedFd>),
}

/// One open byte stream (non-blocking, driven by tokio's edge-triggered
/// epoll).
pub struct Connection {
    fd: AsyncFd<OwnedFd>,
    kind: StreamKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    /// A stream socket: a read takes everything queued, so a short read
    /// means it is drained; a hang-up is final.
    Socket,
    /// A serial port: a virtio port's read returns one of its buffers and a
    /// tty's what the line discipline has, so more may be queued with no
    /// new event to come; and the host side may close and open again.
    Port,
}

impl Channel {
    pub fn open(method: Method, path: &str) -> Result<Channel> {
        let channel = match method {
            Method::VirtioSerial => Channel::Port(Port::open(&virtio_port_path(path), false)?),
            Method::IsaSerial => Channel::Port(Port::open(Path::new(path), true)?),
            Method::UnixListen => Channel::Listener(listen_unix(Path::new(path))?),
            Method::VsockListen => Channel::Listener(listen_vsock(path)?),
        };
        Ok(channel)
    }
}

/// `/dev/virtio-ports/<name>` is a udev link; guests without udev (minimal
/// images, initramfs stages) have only the kernel's `/dev/vportNpM`, named
/// in sysfs. Falls back to that when the link is missing.
fn virtio_port_path(path: &str) -> PathBuf {
    let path = Path::new(path);
    let name = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if dir == Path::new(VIRTIO_PORTS_DIR) && !path.exists() => name,
        _ => return path.to_path_buf(),
    };
    let found = std::fs::read_dir(VIRTIO_PORTS_SYSFS)
        .into_iter()
        .flatten()
        .flatten()
        .find(|port| {
            std::fs::read_to_string(port.path().join("name"))
                .is_ok_and(|named| named.trim_end().as_bytes() == name.as_encoded_bytes())
        });
    match found {
        Some(port) => {
            let device = Path::new("/dev").join(port.file_name());
            tracing::info!(
                "{} is missing (no udev?); using {}, which sysfs names so",
                path.display(),
                device.display()
            );
            device
        }
        None => path.to_path_buf(),
    }
}

/// A serial port the agent holds open for its whole life, whose host side
/// comes and goes (virtio-serial: the host's chardev; a pty: its master).
///
/// While the host side is closed the port reports hang-up, which tokio
/// treats as final: its readiness would stay set and every wait would
/// return at once. So each time the host is there, the port is served
/// through a fresh registration ([`Port::connect`]); while it is away, the
/// agent sleeps in a private edge-triggered epoll that wakes only when the
/// port's state changes (the virtio console driver wakes its waiters when
/// the host connects): no timer, no wake-ups while nobody is there.
pub struct Port {
    fd: OwnedFd,
    changes: AsyncFd<PortChanges>,
}

/// The private epoll watching a port, as tokio registers it.
struct PortChanges(Epoll);

impl AsRawFd for PortChanges {
    fn as_raw_fd(&self) -> RawFd {
        self.0.0.as_raw_fd()
    }
}

impl Port {
    fn open(path: &Path, raw_tty: bool) -> Result<Port> {
        let fd = open(
            path,
            OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
            Mode::empty(),
        )
        .with_context(|| format!("error opening channel '{}'", path.display()))?;
        if raw_tty {
            make_raw(&fd)
                .with_context(|| format!("configuring serial port '{}'", path.display()))?;
        }
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("creating an epoll")?;
        // OUT as well as IN: a host connecting without sending anything
        // shows only as the port becoming writable.
        let interest = EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EpollFlags::EPOLLET;
        epoll
            .add(&fd, EpollEvent::new(interest, 0))
            .context("watching the port")?;
        // SAFETY: the `Epoll` owns its descriptor, keeps it open until
        // dropped with the `AsyncFd`, and always returns the same one.
        let changes =
            unsafe { AsyncFd::register_with_interest(PortChanges(epoll), Interest::READABLE) }?;
        Ok(Port { fd, changes })
    }

    /// Waits until the host side is open, then returns a connection to
    /// serve until it reads end-of-file.
    pub async fn connect(&self) -> io::Result<Connection> {
        loop {
            // Consume the changes seen so far first, so that one arriving
            // after the check below still wakes the wait.
            self.drain_changes()?;
            if !hung_up(self.fd.as_fd())? {
                return Ok(Connection {
                    fd: register(self.fd.try_clone()?)?,
                    kind: StreamKind::Port,
                });
            }
            tracing::debug!("port: waiting for the host side to open");
            let mut changed = self.changes.readable().await?;
            changed.clear_ready();
            tracing::debug!("port: its state changed");
        }
    }

    fn drain_changes(&self) -> io::Result<()> {
        let mut events = [EpollEvent::empty(); 4];
        loop {
            let seen = self
                .changes
                .get_ref()
                .0
                .wait(&mut events, EpollTimeout::ZERO)?;
            if seen < events.len() {
                return Ok(());
            }
        }
    }
}

/// Whether the far side of a port is closed now.
fn hung_up(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let revents = loop {
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => break fds.first().and_then(PollFd::revents),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    Ok(revents.is_some_and(|r| r.contains(PollFlags::POLLHUP)))
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
    Ok(Connection {
        fd: register(fd)?,
        kind: StreamKind::Socket,
    })
}

impl Connection {
    /// Reads what is available; 0 means the peer hung up.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut patience = PORT_RECHECK_FIRST;
        loop {
            let mut ready = match self.kind {
                StreamKind::Socket => self.fd.readable().await?,
                StreamKind::Port => {
                    match tokio::time::timeout(patience, self.fd.readable()).await {
                        Ok(ready) => ready?,
                        Err(_waited) => {
                            // No wake-up for a while: look for ourselves, in
                            // case one was lost (seen under emulation), then
                            // wait longer.
                            patience = (patience * 2).min(PORT_RECHECK_MAX);
                            match nix::unistd::read(self.fd.get_ref(), buf) {
                                Ok(0) => return Ok(0),
                                Ok(n) => {
                                    tracing::warn!(
                                        "port: {n} bytes were waiting without a wake-up"
                                    );
                                    return Ok(n);
                                }
                                Err(Errno::EAGAIN) => continue,
                                Err(e) => return Err(e.into()),
                            }
                        }
                    }
                }
            };
            let saw_hang_up = ready.ready().is_read_closed();
            let read = ready.try_io(|fd| nix::unistd::read(fd, buf).map_err(io::Error::from));
            match read {
                Ok(Ok(n)) => {
                    // A short read drained a socket: wait for the next
                    // readiness event instead of spending a system call to
                    // learn that it is empty. (tokio keeps the readiness if
                    // an event arrived meanwhile.)
                    if self.kind == StreamKind::Socket && n > 0 && n < buf.len() {
                        ready.clear_ready();
                    }
                    return Ok(n);
                }
                Ok(Err(e)) => return Err(e),
                // The hang-up stays in this registration for good: a port
                // whose host left and came back before this read is served
                // through a fresh one (a new session, as the host's is).
                Err(_would_block) if saw_hang_up => return Ok(0),
                Err(_would_block) => {}
            }
        }
    }

    pub async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let mut ready = self.fd.writable().await?;
            let saw_hang_up = ready.ready().is_write_closed();
            let written = ready.try_io(|fd| nix::unistd::write(fd, bytes).map_err(io::Error::from));
            match written {
                Ok(Ok(n)) => bytes = bytes.get(n..).unwrap_or_default(),
                Ok(Err(e)) => return Err(e),
                // A virtio port refuses writes while its host is away.
                Err(_would_block) if saw_hang_up => return Err(io::ErrorKind::BrokenPipe.into()),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }
}

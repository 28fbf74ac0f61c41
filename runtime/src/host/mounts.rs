//! `sandga:agent/mounts`: the agent's mount table, read-only; and what the
//! interfaces acting on a mounted filesystem (fsfreeze, trim) share: the
//! check that a path is a mountpoint now, and how it is opened.

use std::os::fd::OwnedFd;

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

use super::bindings::sandga::agent::mounts;
use super::{HostState, os_text};

pub const MOUNTINFO: &str = "/proc/self/mountinfo";

pub fn mountinfo() -> Result<String, String> {
    std::fs::read_to_string(MOUNTINFO)
        .map_err(|e| format!("failed to open {MOUNTINFO}: {}", os_text(&e)))
}

impl mounts::Host for HostState {
    fn mountinfo(&mut self) -> Result<String, String> {
        mountinfo()
    }
}

/// Whether `mountpoint` is mounted now: components are untrusted, and only
/// a mountpoint may be opened for the filesystem ioctls.
pub fn is_mounted(mountpoint: &str) -> Result<bool, String> {
    Ok(mountinfo::parse(&mountinfo()?)
        .iter()
        .any(|mount| mount.mountpoint == mountpoint))
}

/// Opens a mountpoint for an ioctl, never through a symlink.
pub fn open_mountpoint(mountpoint: &str) -> nix::Result<OwnedFd> {
    open(
        mountpoint,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

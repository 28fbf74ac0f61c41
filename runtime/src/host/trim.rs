//! `sandga:agent/trim`: FITRIM on a mounted filesystem. The component
//! chooses the mounts; the host checks each is mounted now and does not
//! count the ioctl's time (it can take minutes) against the component.

use std::os::fd::AsRawFd;

use nix::errno::Errno;

use super::HostState;
use super::bindings::sandga::agent::trim::{self, TrimError, Trimmed};
use super::mounts::{is_mounted, open_mountpoint};

/// `struct fstrim_range` (linux/fs.h).
#[repr(C)]
struct FstrimRange {
    start: u64,
    len: u64,
    minlen: u64,
}

nix::ioctl_readwrite!(fitrim, b'X', 121, FstrimRange);

impl trim::Host for HostState {
    fn trim(&mut self, mountpoint: String, minimum: u64) -> Result<Trimmed, TrimError> {
        if !is_mounted(&mountpoint).map_err(TrimError::Open)? {
            return Err(TrimError::NotMounted);
        }
        let directory =
            open_mountpoint(&mountpoint).map_err(|e| TrimError::Open(e.desc().into()))?;
        // The whole filesystem, as qemu-ga asks for it.
        let mut range = FstrimRange {
            start: 0,
            len: u64::MAX,
            minlen: minimum,
        };
        // SAFETY: FITRIM reads and writes one `struct fstrim_range`, which
        // `range` is, for the duration of the call.
        let trimmed =
            self.outside_time_limit(|| unsafe { fitrim(directory.as_raw_fd(), &mut range) });
        match trimmed {
            Ok(_) => Ok(Trimmed {
                bytes: range.len,
                minimum: range.minlen,
            }),
            Err(Errno::ENOTTY | Errno::EOPNOTSUPP) => Err(TrimError::Unsupported),
            Err(e) => Err(TrimError::Trim(e.desc().into())),
        }
    }
}

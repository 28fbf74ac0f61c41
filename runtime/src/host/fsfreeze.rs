//! `sandga:agent/fsfreeze`: FIFREEZE and FITHAW on a mounted filesystem.
//! The component chooses the mounts and their order; the host checks that
//! each is mounted now, records what it froze (the agent's frozen state)
//! and does not count the ioctls' time against the component.

use std::os::fd::AsRawFd;

use nix::errno::Errno;

use super::HostState;
use super::bindings::sandga::agent::fsfreeze::{self, FreezeError};
use super::mounts::{is_mounted, open_mountpoint};

nix::ioctl_write_int_bad!(
    fifreeze,
    nix::request_code_readwrite!(b'X', 119, std::mem::size_of::<nix::libc::c_int>())
);
nix::ioctl_write_int_bad!(
    fithaw,
    nix::request_code_readwrite!(b'X', 120, std::mem::size_of::<nix::libc::c_int>())
);

impl fsfreeze::Host for HostState {
    fn freeze(&mut self, mountpoint: String) -> Result<(), FreezeError> {
        let Some(state) = self.freeze.clone() else {
            return Err(FreezeError::Freeze("fsfreeze is not granted".into()));
        };
        if !is_mounted(&mountpoint).map_err(FreezeError::Open)? {
            return Err(FreezeError::NotMounted);
        }
        let directory =
            open_mountpoint(&mountpoint).map_err(|e| FreezeError::Open(e.desc().into()))?;
        let mut state = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state
            .about_to_freeze()
            .map_err(|e| FreezeError::Freeze(format!("{e:#}")))?;
        // SAFETY: FIFREEZE takes no memory from the caller; the argument is
        // ignored, 0 as qemu-ga passes it.
        let frozen = self.outside_time_limit(|| unsafe { fifreeze(directory.as_raw_fd(), 0) });
        match frozen {
            Ok(_) => {
                state.froze(&mountpoint);
                Ok(())
            }
            Err(Errno::EOPNOTSUPP) => Err(FreezeError::Unsupported),
            Err(Errno::EBUSY) => Err(FreezeError::Busy),
            Err(e) => Err(FreezeError::Freeze(e.desc().into())),
        }
    }

    fn thaw(&mut self, mountpoint: String) -> Result<bool, String> {
        let Some(state) = self.freeze.clone() else {
            return Err("fsfreeze is not granted".into());
        };
        if !is_mounted(&mountpoint)? {
            return Err("not a mountpoint".into());
        }
        let directory = open_mountpoint(&mountpoint).map_err(|e| e.desc().to_string())?;
        // Frozen n times (by us and others), it needs n thaws; the kernel
        // answers EINVAL once it is thawed.
        let thawed = self.outside_time_limit(|| {
            let mut thawed = false;
            // SAFETY: FITHAW takes no memory from the caller.
            while unsafe { fithaw(directory.as_raw_fd(), 0) }.is_ok() {
                thawed = true;
            }
            thawed
        });
        state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .thawed(&mountpoint);
        Ok(thawed)
    }
}

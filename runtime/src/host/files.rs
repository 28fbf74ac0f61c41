//! `sandga:agent/files`: open files by qemu-ga handle, confined to the
//! directories the policy grants.
//!
//! Every path is resolved beneath a `cap-std` handle of a granted directory,
//! so `..`, absolute and relative symlinks cannot leave it; no `std::fs` call
//! ever sees a path from a request. Only regular files are opened: an
//! existing file is pinned with `O_PATH` and checked before it is opened
//! (see [`open_existing`]), and every open is `O_NONBLOCK`. A filesystem
//! that hangs (a dead NFS server) can still block the agent in a host call;
//! the watchdog cannot interrupt those. Handles live
//! here, outside any component's store: they survive client reconnects and
//! component traps.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt, PermissionsExt};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::Whence as SeekWhence;

use super::bindings::sandga::agent::files::{self, FileError, OpenFlags, ReadOutcome, Whence};
use super::{HostState, os_text};
use crate::policy::{Access, DirectoryGrant};
use crate::state::HandleCounter;

/// The host's own cap on one read, whatever a component asks: qemu-ga's
/// 48 MiB, sized so the base64 reply stays under the 64 MiB message limit.
pub const MAX_READ: u64 = 48 << 20;
/// Open handles at once, so a client cannot exhaust the agent's descriptors.
pub const MAX_OPEN: usize = 1000;

struct GrantedDir {
    root: PathBuf,
    dir: Dir,
    access: Access,
}

struct OpenFile {
    file: File,
}

pub struct FileTable {
    grants: Vec<GrantedDir>,
    /// Relative request paths resolve against this, as they do for qemu-ga
    /// (its working directory).
    cwd: PathBuf,
    open: HashMap<i64, OpenFile>,
    counter: HandleCounter,
}

impl FileTable {
    /// Opens every granted directory once, at start, from the root-owned
    /// policy: the only ambient path lookups file access ever does.
    pub fn new(grants: &[DirectoryGrant], cwd: PathBuf, counter: HandleCounter) -> Result<Self> {
        let mut opened = Vec::with_capacity(grants.len());
        for grant in grants {
            let dir = Dir::open_ambient_dir(&grant.path, ambient_authority())
                .with_context(|| format!("opening granted directory '{}'", grant.path.display()))?;
            opened.push(GrantedDir {
                root: grant.path.clone(),
                dir,
                access: grant.access,
            });
        }
        Ok(FileTable {
            grants: opened,
            cwd,
            open: HashMap::new(),
            counter,
        })
    }

    pub fn open(&mut self, path: &str, flags: OpenFlags) -> Result<i64, FileError> {
        let writes = flags.intersects(
            OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::TRUNCATE | OpenFlags::CREATE,
        );
        let create = flags.contains(OpenFlags::CREATE);
        if path.is_empty() {
            return Err(os_error(Errno::ENOENT));
        }
        // Path normalisation would drop these, yet they can only name a
        // directory.
        if path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..") || path == "." {
            return Err(not_regular());
        }
        if self.open.len() >= MAX_OPEN {
            return Err(os_error(Errno::EMFILE));
        }
        let absolute = self.cwd.join(path);
        let (grant, relative) = self.grant_for(&absolute).ok_or_else(|| {
            FileError::Denied(format!(
                "the policy grants no directory that contains '{path}'"
            ))
        })?;
        if writes && grant.access == Access::Read {
            return Err(FileError::Denied(format!(
                "the policy grants '{}' read-only",
                grant.root.display()
            )));
        }
        let outside = || {
            FileError::Denied(format!(
                "'{path}' resolves outside the granted directory '{}'",
                grant.root.display()
            ))
        };

        let mode = IoMode {
            read: flags.contains(OpenFlags::READ),
            write: writes,
            append: flags.contains(OpenFlags::APPEND),
            truncate: flags.contains(OpenFlags::TRUNCATE),
        };
        let file = if create {
            // Like qemu-ga: a file this call creates gets 0666 whatever the
            // umask; an existing file keeps its permissions.
            let mut exclusive = IoMode {
                truncate: false,
                ..mode
            }
            .cap();
            exclusive.create_new(true).mode(0o666);
            match grant.dir.open_with(&relative, &exclusive) {
                Ok(file) => {
                    file.set_permissions(cap_std::fs::Permissions::from_mode(0o666))
                        .map_err(|e| io_error(e, outside))?;
                    file.into_std()
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    open_existing(grant, &relative, mode, outside)?
                }
                Err(e) => return Err(io_error(e, outside)),
            }
        } else {
            open_existing(grant, &relative, mode, outside)?
        };
        let handle = self
            .counter
            .take()
            .map_err(|e| FileError::Os(format!("{e:#}")))?;
        self.open.insert(handle, OpenFile { file });
        Ok(handle)
    }

    pub fn close(&mut self, handle: i64) -> Result<(), FileError> {
        let entry = self.open.remove(&handle).ok_or(FileError::UnknownHandle)?;
        // Linux releases the descriptor even when close reports an error, so
        // the handle is gone either way; the error is still worth reporting.
        nix::unistd::close(entry.file.into_raw_fd()).map_err(os_error)
    }

    /// Reads up to `count` bytes into `staged` (replacing its contents).
    pub fn read(
        &mut self,
        handle: i64,
        count: u64,
        staged: &mut Vec<u8>,
    ) -> Result<ReadOutcome, FileError> {
        if count > MAX_READ {
            return Err(FileError::Invalid(format!(
                "value '{count}' is invalid for argument count"
            )));
        }
        let entry = self.entry(handle)?;
        staged.clear();
        staged.reserve_exact(count as usize);
        // `take` + `read_to_end` reads straight into the spare capacity and
        // keeps going after short reads, like fread.
        (&entry.file)
            .take(count)
            .read_to_end(staged)
            .map_err(|e| io_error(e, || os_error(Errno::EACCES)))?;
        let got = staged.len() as u64;
        Ok(ReadOutcome {
            count: got,
            eof: got < count,
        })
    }

    pub fn write(&mut self, handle: i64, data: &[u8]) -> Result<u64, FileError> {
        let entry = self.entry(handle)?;
        (&entry.file)
            .write_all(data)
            .map_err(|e| io_error(e, || os_error(Errno::EACCES)))?;
        Ok(data.len() as u64)
    }

    pub fn seek(&mut self, handle: i64, offset: i64, whence: Whence) -> Result<u64, FileError> {
        let entry = self.entry(handle)?;
        let whence = match whence {
            Whence::Set => SeekWhence::SeekSet,
            Whence::Cur => SeekWhence::SeekCur,
            Whence::End => SeekWhence::SeekEnd,
        };
        let position = nix::unistd::lseek(entry.file.as_fd(), offset, whence).map_err(os_error)?;
        // lseek never returns a negative position on success.
        Ok(position.unsigned_abs())
    }

    /// Writes go straight to the kernel (there is no user-space buffer as
    /// with qemu-ga's stdio), so a flush only has to find the handle.
    pub fn flush(&mut self, handle: i64) -> Result<(), FileError> {
        self.entry(handle).map(|_| ())
    }

    fn entry(&self, handle: i64) -> Result<&OpenFile, FileError> {
        self.open.get(&handle).ok_or(FileError::UnknownHandle)
    }

    /// The most specific grant whose root contains `path`, and the rest of
    /// the path relative to it (still unresolved: `..` and symlinks in it are
    /// resolved beneath the grant by cap-std).
    fn grant_for(&self, path: &Path) -> Option<(&GrantedDir, PathBuf)> {
        self.grants
            .iter()
            .filter_map(|grant| {
                let rest = path.strip_prefix(&grant.root).ok()?;
                let mut relative: PathBuf = rest
                    .components()
                    .filter(|c| !matches!(c, Component::CurDir))
                    .collect();
                if relative.as_os_str().is_empty() {
                    relative.push(".");
                }
                Some((grant, relative))
            })
            .max_by_key(|(grant, _)| grant.root.components().count())
    }
}

/// O_NONBLOCK: a fifo can block neither the open nor a read. O_NOCTTY: a
/// terminal can never become the agent's controlling tty.
const IO_FLAGS: i32 = OFlag::O_NONBLOCK.bits() | OFlag::O_NOCTTY.bits();

/// How a file is opened for I/O.
#[derive(Clone, Copy)]
struct IoMode {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
}

impl IoMode {
    fn cap(self) -> OpenOptions {
        let mut options = OpenOptions::new();
        options
            .read(self.read)
            .write(self.write)
            .append(self.append)
            .truncate(self.truncate)
            .custom_flags(IO_FLAGS);
        options
    }

    fn std(self) -> std::fs::OpenOptions {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut options = std::fs::OpenOptions::new();
        options
            .read(self.read)
            .write(self.write)
            .append(self.append)
            .truncate(self.truncate)
            .custom_flags(IO_FLAGS);
        options
    }
}

/// Opens the existing file at `relative` beneath `grant` for I/O, and only
/// if it is a regular file. The path is first resolved to an `O_PATH`
/// descriptor, which opens nothing (a device's open has side effects of its
/// own); that very inode is checked, then opened through
/// `/proc/self/fd/N`, so no swap of the path can slip anything else in.
/// Without /proc (a bare initramfs), the file is checked, opened, and checked
/// again.
fn open_existing(
    grant: &GrantedDir,
    relative: &Path,
    mode: IoMode,
    outside: impl Fn() -> FileError,
) -> Result<File, FileError> {
    let mut pin = OpenOptions::new();
    pin.read(true).custom_flags(OFlag::O_PATH.bits());
    let pinned = grant
        .dir
        .open_with(relative, &pin)
        .map_err(|e| io_error(e, &outside))?
        .into_std();
    require_regular(&pinned, &outside)?;
    let reopened = mode
        .std()
        .open(format!("/proc/self/fd/{}", pinned.as_raw_fd()));
    let file = match reopened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => grant
            .dir
            .open_with(relative, &mode.cap())
            .map_err(|e| io_error(e, &outside))?
            .into_std(),
        Err(e) => return Err(io_error(e, &outside)),
    };
    require_regular(&file, &outside)?;
    Ok(file)
}

fn require_regular(file: &File, outside: impl Fn() -> FileError) -> Result<(), FileError> {
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(not_regular()),
        Err(e) => Err(io_error(e, outside)),
    }
}

fn not_regular() -> FileError {
    FileError::Denied("not a regular file; only regular files may be opened".into())
}

fn os_error(errno: Errno) -> FileError {
    FileError::Os(errno.desc().to_string())
}

/// cap-std reports an escape from the granted directory as a permission
/// error with no OS error code; everything else is the kernel's answer.
fn io_error(e: io::Error, outside: impl FnOnce() -> FileError) -> FileError {
    if e.raw_os_error().is_none() && e.kind() == io::ErrorKind::PermissionDenied {
        return outside();
    }
    FileError::Os(os_text(&e))
}

impl files::Host for HostState {
    fn open(&mut self, path: String, flags: OpenFlags) -> Result<i64, FileError> {
        let handle = self.file_table()?.open(&path, flags)?;
        self.opened.push(handle);
        Ok(handle)
    }

    fn close(&mut self, handle: i64) -> Result<(), FileError> {
        self.file_table()?.close(handle)
    }

    fn check(&mut self, handle: i64) -> Result<(), FileError> {
        self.file_table()?.entry(handle).map(|_| ())
    }

    fn read(&mut self, handle: i64, count: u64) -> Result<ReadOutcome, FileError> {
        let HostState { files, staged, .. } = self;
        let mut table = files
            .as_ref()
            .ok_or_else(not_granted)?
            .lock()
            .map_err(|_| poisoned())?;
        table.read(handle, count, staged)
    }

    fn write(&mut self, handle: i64, data: Vec<u8>) -> Result<u64, FileError> {
        self.file_table()?.write(handle, &data)
    }

    fn seek(&mut self, handle: i64, offset: i64, whence: Whence) -> Result<u64, FileError> {
        self.file_table()?.seek(handle, offset, whence)
    }

    fn flush(&mut self, handle: i64) -> Result<(), FileError> {
        self.file_table()?.flush(handle)
    }
}

impl HostState {
    /// The file table, if this call was granted `files` (checked again here:
    /// linking is the first check, not the only one).
    fn file_table(&self) -> Result<std::sync::MutexGuard<'_, FileTable>, FileError> {
        self.files
            .as_ref()
            .ok_or_else(not_granted)?
            .lock()
            .map_err(|_| poisoned())
    }
}

fn not_granted() -> FileError {
    FileError::Denied("the policy does not grant file access to this command".into())
}

fn poisoned() -> FileError {
    FileError::Os("file table unavailable".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(access: Access) -> (tempfile::TempDir, tempfile::TempDir, FileTable) {
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let grants = [DirectoryGrant {
            path: root.path().join("granted"),
            access,
        }];
        std::fs::create_dir(&grants[0].path).unwrap();
        let counter = HandleCounter::load(state.path()).unwrap();
        let table = FileTable::new(&grants, root.path().to_path_buf(), counter).unwrap();
        (root, state, table)
    }

    fn rw() -> OpenFlags {
        OpenFlags::READ | OpenFlags::WRITE | OpenFlags::CREATE
    }

    #[test]
    fn write_read_seek_roundtrip() {
        let (_root, _state, mut t) = table(Access::ReadWrite);
        let h = t.open("granted/f", rw() | OpenFlags::TRUNCATE).unwrap();
        assert_eq!(h, 1000);
        assert_eq!(t.write(h, b"hello").unwrap(), 5);
        assert_eq!(t.seek(h, 1, Whence::Set).unwrap(), 1);
        let mut staged = Vec::new();
        let outcome = t.read(h, 10, &mut staged).unwrap();
        assert_eq!((outcome.count, outcome.eof), (4, true));
        assert_eq!(staged, b"ello");
        t.close(h).unwrap();
        assert!(matches!(t.close(h), Err(FileError::UnknownHandle)));
    }

    #[test]
    fn refuses_paths_outside_grants() {
        let (root, _state, mut t) = table(Access::ReadWrite);
        std::fs::write(root.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink("../secret", root.path().join("granted/rel")).unwrap();
        std::os::unix::fs::symlink(root.path().join("secret"), root.path().join("granted/abs"))
            .unwrap();
        for path in [
            "secret",
            "granted/../secret",
            "granted/rel",
            "granted/abs",
            "/etc/passwd",
        ] {
            match t.open(path, OpenFlags::READ) {
                Err(FileError::Denied(_)) => {}
                other => panic!("{path}: {other:?}"),
            }
        }
        match t.open("granted/../granted/../x", rw()) {
            Err(FileError::Denied(_)) => {}
            other => panic!("{other:?}"),
        }
        assert!(!root.path().join("x").exists());
    }

    #[test]
    fn read_only_grant_refuses_writes_and_non_regular_files() {
        let (root, _state, mut t) = table(Access::Read);
        std::fs::write(root.path().join("granted/f"), "x").unwrap();
        assert!(matches!(
            t.open("granted/f", OpenFlags::WRITE),
            Err(FileError::Denied(_))
        ));
        assert_eq!(std::fs::read(root.path().join("granted/f")).unwrap(), b"x");
        nix::unistd::mkfifo(
            &root.path().join("granted/fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        assert!(matches!(
            t.open("granted/fifo", OpenFlags::READ),
            Err(FileError::Denied(_))
        ));
        assert!(matches!(
            t.open("granted", OpenFlags::READ),
            Err(FileError::Denied(_))
        ));
        assert!(matches!(
            t.open("granted/new", OpenFlags::READ | OpenFlags::CREATE),
            Err(FileError::Denied(_))
        ));
        for path in ["granted/f/", "granted/f/.", "granted/new/", "granted/f/.."] {
            assert!(
                matches!(t.open(path, OpenFlags::READ), Err(FileError::Denied(_))),
                "{path}"
            );
        }
        assert!(!root.path().join("granted/new").exists());
    }
}

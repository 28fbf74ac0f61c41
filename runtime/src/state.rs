//! What the agent keeps in its state directory across restarts: the file
//! handle counter, in qemu-ga's own `qga.state` format so either agent can
//! take over a guest from the other and handles are never reused.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

const STATE_FILE: &str = "qga.state";
/// qemu-ga's first handle.
const FIRST_HANDLE: i64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// On disk before `save` returns.
    Synced,
    /// Whenever the kernel writes it back.
    Lazy,
}

#[derive(Debug)]
pub struct HandleCounter {
    path: PathBuf,
    next: i64,
}

impl HandleCounter {
    /// Reads `<statedir>/qga.state`, creating it if it is missing (which
    /// also proves at start that the state directory is writable).
    pub fn load(state_dir: &Path) -> Result<HandleCounter> {
        let path = state_dir.join(STATE_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let next = parse(&text)
                    .with_context(|| format!("loading persistent state from {}", path.display()))?;
                Ok(HandleCounter { path, next })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let counter = HandleCounter {
                    path,
                    next: FIRST_HANDLE,
                };
                // Losing this write loses nothing (a missing file means the
                // first handle), so start-up does not wait for the disk.
                counter.save(Durability::Lazy)?;
                Ok(counter)
            }
            Err(e) => {
                Err(e).with_context(|| format!("loading persistent state from {}", path.display()))
            }
        }
    }

    /// Takes the next handle and records that it is taken before handing it
    /// out, so a crash right after cannot make a restarted agent reuse it.
    pub fn take(&mut self) -> Result<i64> {
        let handle = self.next;
        self.next = handle
            .checked_add(1)
            .context("file handle counter exhausted")?;
        self.save(Durability::Synced)?;
        Ok(handle)
    }

    fn save(&self, durability: Durability) -> Result<()> {
        let tmp = self.path.with_extension("state.tmp");
        let write = || -> std::io::Result<()> {
            // Never follow a link someone else put there (the state
            // directory may be shared, e.g. /tmp).
            match fs::remove_file(&tmp) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                .open(&tmp)?;
            write!(file, "[global]\nfd_counter={}\n", self.next)?;
            if durability == Durability::Synced {
                file.sync_all()?;
            }
            fs::rename(&tmp, &self.path)
        };
        write().with_context(|| {
            format!(
                "failed to commit persistent state to disk ({})",
                self.path.display()
            )
        })
    }
}

/// Parses the `[global]` `fd_counter` key of a GKeyFile; a missing key means
/// the first handle, as in qemu-ga. Anything malformed is refused rather than
/// guessed at, since a wrong guess could hand out a handle twice.
fn parse(text: &str) -> Result<i64> {
    let mut group = None;
    let mut counter = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            group = Some(name.to_string());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            bail!("line {}: not a key=value pair", number + 1);
        };
        if group.as_deref() == Some("global") && key.trim() == "fd_counter" {
            let value: i64 = value
                .trim()
                .parse()
                .with_context(|| format!("line {}: fd_counter is not an integer", number + 1))?;
            if value < 0 {
                bail!("line {}: fd_counter is negative", number + 1);
            }
            counter = Some(value);
        }
    }
    Ok(counter.unwrap_or(FIRST_HANDLE))
}

/// qemu-ga's marker: present while the agent has filesystems frozen.
const FROZEN_MARKER: &str = "qga.state.isfrozen";

/// Whether the agent has filesystems frozen: the ones it froze and has not
/// thawed, or, when it started with the marker of an earlier instance, an
/// unknown set until a `guest-fsfreeze-thaw` completes.
///
/// The marker is written before the first freeze and removed only once
/// nothing is frozen: while frozen, nothing may be written (the state
/// directory itself may be on a frozen filesystem).
#[derive(Debug)]
pub struct FreezeState {
    marker: PathBuf,
    frozen: std::collections::BTreeSet<String>,
    inherited: bool,
    marked: bool,
}

impl FreezeState {
    pub fn load(state_dir: &Path) -> Result<FreezeState> {
        let marker = state_dir.join(FROZEN_MARKER);
        let inherited = marker
            .try_exists()
            .with_context(|| format!("checking {}", marker.display()))?;
        if inherited {
            // Said before the log goes quiet; qemu-ga says the same.
            tracing::warn!(
                "previous instance appears to have exited with frozen filesystems; only \
                 fsfreeze-safe commands are enabled until guest-fsfreeze-thaw is issued, or \
                 filesystems are manually unfrozen and {} is removed",
                marker.display()
            );
        }
        let state = FreezeState {
            marker,
            frozen: Default::default(),
            inherited,
            marked: inherited,
        };
        crate::logging::suspend(state.is_frozen());
        Ok(state)
    }

    pub fn is_frozen(&self) -> bool {
        self.inherited || !self.frozen.is_empty()
    }

    /// Before freezing: the marker goes to disk first, so that an agent
    /// killed while filesystems are frozen is restarted knowing it.
    pub fn about_to_freeze(&mut self) -> Result<()> {
        if !self.marked {
            let file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&self.marker)
                .with_context(|| format!("creating {}", self.marker.display()))?;
            file.sync_all()
                .with_context(|| format!("syncing {}", self.marker.display()))?;
            self.marked = true;
        }
        Ok(())
    }

    pub fn froze(&mut self, mountpoint: &str) {
        self.frozen.insert(mountpoint.to_string());
        crate::logging::suspend(true);
    }

    pub fn thawed(&mut self, mountpoint: &str) {
        self.frozen.remove(mountpoint);
        crate::logging::suspend(self.is_frozen());
    }

    /// A `guest-fsfreeze-thaw` completed: nothing is frozen any more, as
    /// far as the agent is concerned (qemu-ga's `ga_unset_frozen`).
    pub fn thaw_completed(&mut self) {
        self.frozen.clear();
        self.inherited = false;
        crate::logging::suspend(false);
        self.unmark_if_thawed();
    }

    /// After a freeze command: drops the marker if it froze nothing.
    pub fn unmark_if_thawed(&mut self) {
        if self.marked && !self.is_frozen() {
            match fs::remove_file(&self.marker) {
                Ok(()) => self.marked = false,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.marked = false,
                Err(e) => tracing::warn!("removing {}: {e}", self.marker.display()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_1000_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let mut counter = HandleCounter::load(dir.path()).unwrap();
        assert_eq!(counter.take().unwrap(), 1000);
        assert_eq!(counter.take().unwrap(), 1001);
        let text = fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
        assert_eq!(text, "[global]\nfd_counter=1002\n");
        let mut again = HandleCounter::load(dir.path()).unwrap();
        assert_eq!(again.take().unwrap(), 1002);
    }

    #[test]
    fn reads_qemu_ga_state_and_refuses_garbage() {
        assert_eq!(parse("[global]\nfd_counter=1003\n").unwrap(), 1003);
        assert_eq!(parse("[global]\n").unwrap(), 1000);
        assert!(parse("[global]\nfd_counter=abc\n").is_err());
        assert!(parse("garbage").is_err());
    }

    #[test]
    fn the_frozen_marker_outlives_the_agent_until_a_thaw_completes() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join(FROZEN_MARKER);
        let mut state = FreezeState::load(dir.path()).unwrap();
        assert!(!state.is_frozen());
        state.about_to_freeze().unwrap();
        assert!(marker.exists(), "written before the first freeze");
        state.froze("/data");
        state.unmark_if_thawed();
        assert!(state.is_frozen() && marker.exists());

        // A new agent starts frozen from the marker, not knowing what.
        let mut restarted = FreezeState::load(dir.path()).unwrap();
        assert!(restarted.is_frozen());
        restarted.thawed("/data");
        assert!(restarted.is_frozen(), "only a completed thaw ends it");
        restarted.thaw_completed();
        assert!(!restarted.is_frozen());
        assert!(!marker.exists());
        crate::logging::suspend(false);
    }

    #[test]
    fn a_freeze_that_froze_nothing_leaves_no_marker() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = FreezeState::load(dir.path()).unwrap();
        state.about_to_freeze().unwrap();
        state.froze("/data");
        state.thawed("/data");
        state.unmark_if_thawed();
        assert!(!state.is_frozen());
        assert!(!dir.path().join(FROZEN_MARKER).exists());
    }
}

//! `sandga:agent/mounts`: the agent's mount table, read-only.

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

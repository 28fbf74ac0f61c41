//! `sandga:agent/vcpu`: the guest's logical CPUs, as sysfs lists them.

use std::fs;
use std::io::{ErrorKind, Read};

use super::bindings::sandga::agent::vcpu::{self, LogicalCpu};
use super::{HostState, os_text};

const CPU_DIR: &str = "/sys/devices/system/cpu";

/// Reads every `cpuN` entry, in directory order as qemu-ga does (unsorted).
pub fn logical_cpus() -> Result<Vec<LogicalCpu>, String> {
    let entries = fs::read_dir(CPU_DIR)
        .map_err(|e| format!("failed to list entries: {CPU_DIR}: {}", os_text(&e)))?;
    let mut cpus = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| format!("failed to list entries: {CPU_DIR}: {}", os_text(&e)))?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|name| name.strip_prefix("cpu"))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        let online_path = format!("{CPU_DIR}/cpu{id}/online");
        let online = match fs::File::open(&online_path) {
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(format!("open(\"{online_path}\"): {}", os_text(&e))),
            Ok(mut file) => {
                let mut byte = [0u8; 1];
                match file.read(&mut byte) {
                    Ok(1) => Some(byte[0] != b'0'),
                    Ok(_) => return Err(format!("pread(\"{online_path}\"): unexpected EOF")),
                    Err(e) => return Err(format!("pread(\"{online_path}\"): {}", os_text(&e))),
                }
            }
        };
        cpus.push(LogicalCpu { id, online });
    }
    Ok(cpus)
}

impl vcpu::Host for HostState {
    fn logical_cpus(&mut self) -> Result<Vec<LogicalCpu>, String> {
        logical_cpus()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_this_machines_cpus() {
        let cpus = super::logical_cpus().unwrap();
        let online = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(cpus.len() >= online, "{cpus:?}");
        assert!(cpus.iter().any(|cpu| cpu.id == 0), "{cpus:?}");
    }
}

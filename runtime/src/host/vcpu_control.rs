//! `sandga:agent/vcpu-control`: a logical CPU's sysfs `online` switch.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::Path;

use super::bindings::sandga::agent::vcpu_control;
use super::{HostState, os_text};

const CPU_DIR: &str = "/sys/devices/system/cpu";

impl vcpu_control::Host for HostState {
    fn set_online(&mut self, id: u64, online: bool) -> Result<(), String> {
        // Checked again: the CPU must exist and have a switch. The path is
        // made of a number only.
        let dir = format!("{CPU_DIR}/cpu{id}");
        if !Path::new(&dir).is_dir() {
            return Err(format!("open(\"{dir}/\"): No such file or directory"));
        }
        let path = format!("{dir}/online");
        let mut switch = match OpenOptions::new().write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(format!("logical processor #{id} can't be offlined"));
            }
            Err(e) => return Err(format!("open(\"{path}\"): {}", os_text(&e))),
        };
        // Taking a CPU down can take a while; it is not the component's time.
        self.outside_time_limit(|| {
            switch
                .write_all(if online { b"1" } else { b"0" })
                .map_err(|e| format!("pwrite(\"{path}\"): {}", os_text(&e)))
        })
    }
}

//! `sandga:agent/power`: shutting the guest down through its init system,
//! so services stop cleanly: systemd and busybox init are asked with the
//! signals they define for it; any other init through `/sbin/shutdown`, as
//! qemu-ga does.

use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::HostState;
use super::bindings::sandga::agent::power::{self, ShutdownMode};

enum Init {
    Systemd,
    Busybox,
    Other,
}

fn init_system() -> Init {
    if Path::new("/run/systemd/system").is_dir() {
        return Init::Systemd;
    }
    let busybox = std::fs::read_link("/proc/1/exe")
        .is_ok_and(|exe| exe.file_name().is_some_and(|name| name == "busybox"));
    if busybox { Init::Busybox } else { Init::Other }
}

/// systemd(1): SIGRTMIN+4 poweroff.target, +3 halt.target, +5 reboot.target.
fn systemd_signal(mode: ShutdownMode) -> nix::libc::c_int {
    let offset = match mode {
        ShutdownMode::Powerdown => 4,
        ShutdownMode::Halt => 3,
        ShutdownMode::Reboot => 5,
    };
    nix::libc::SIGRTMIN() + offset
}

/// busybox init: SIGUSR2 poweroff, SIGUSR1 halt, SIGTERM reboot.
fn busybox_signal(mode: ShutdownMode) -> Signal {
    match mode {
        ShutdownMode::Powerdown => Signal::SIGUSR2,
        ShutdownMode::Halt => Signal::SIGUSR1,
        ShutdownMode::Reboot => Signal::SIGTERM,
    }
}

fn shutdown_command(mode: ShutdownMode) -> Result<(), String> {
    let flag = match mode {
        ShutdownMode::Powerdown => "-P",
        ShutdownMode::Halt => "-H",
        ShutdownMode::Reboot => "-r",
    };
    let status = Command::new("/sbin/shutdown")
        .args(["-h", flag, "+0", "hypervisor initiated shutdown"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("child process has failed to shutdown: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("child process has failed to shutdown: {status}"))
    }
}

impl power::Host for HostState {
    fn shutdown(&mut self, mode: ShutdownMode) -> Result<(), String> {
        tracing::info!("shutting the guest down ({mode:?}), as the host asked");
        let init = Pid::from_raw(1);
        match init_system() {
            Init::Systemd => {
                // SAFETY: kill(2) with a valid signal number; no memory.
                let sent = unsafe { nix::libc::kill(1, systemd_signal(mode)) };
                if sent == 0 {
                    Ok(())
                } else {
                    Err(format!(
                        "failed to signal systemd: {}",
                        nix::errno::Errno::last().desc()
                    ))
                }
            }
            Init::Busybox => kill(init, busybox_signal(mode))
                .map_err(|e| format!("failed to signal init: {}", e.desc())),
            Init::Other => self.outside_time_limit(|| shutdown_command(mode)),
        }
    }
}

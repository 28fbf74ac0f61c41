//! guest-set-time: with `time`, set the system clock, then the hardware
//! clock from it (qemu-ga: `settimeofday`, then `hwclock -w`); without,
//! set the system clock from the hardware clock (`hwclock -s`).

use qapi_args::Args;

use crate::Reply;

/// The `clock-control` interface: the wit-bindgen import in the component,
/// a fake in tests.
pub trait ClockControlHost {
    fn set_system_time(&mut self, nanoseconds: i64) -> Result<(), String>;
    fn save_to_hardware_clock(&mut self) -> Result<(), String>;
    fn load_from_hardware_clock(&mut self) -> Result<(), String>;
}

/// 2070-01-01T00:00:00Z: qemu-ga refuses the year 2070 and later.
const YEAR_2070: i64 = 3_155_760_000;

/// `{*time: int}` (nanoseconds since the epoch) → `{}`.
pub fn set_time(host: &mut impl ClockControlHost, mut args: Args) -> Result<Reply, String> {
    let time = args.opt_int("time")?;
    args.finish()?;
    match time {
        Some(nanoseconds) => {
            // qemu-ga checks the whole seconds (truncated, as C divides)
            // for a year from 1970 to 2069.
            let seconds = nanoseconds / 1_000_000_000;
            if !(0..YEAR_2070).contains(&seconds) {
                return Err("Invalid time".into());
            }
            host.set_system_time(nanoseconds)
                .map_err(|e| format!("Failed to set time to guest: {e}"))?;
            host.save_to_hardware_clock()
                .map_err(|e| format!("failed to set hardware clock to system time: {e}"))?;
        }
        None => host
            .load_from_hardware_clock()
            .map_err(|e| format!("failed to set system time from hardware clock: {e}"))?,
    }
    Ok(Reply::json("{}".into()))
}

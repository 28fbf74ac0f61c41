//! `sandga:agent/clock`: the guest's wall clock, read-only.

use std::time::{SystemTime, UNIX_EPOCH};

use super::HostState;
use super::bindings::sandga::agent::clock;

impl clock::Host for HostState {
    fn now(&mut self) -> i64 {
        // qemu-ga reports g_get_real_time() * 1000: microsecond resolution.
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_micros()).map_or(i64::MAX, |us| us * 1000),
            Err(before) => {
                -i64::try_from(before.duration().as_micros()).map_or(i64::MAX, |us| us * 1000)
            }
        }
    }
}

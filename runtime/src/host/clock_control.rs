//! `sandga:agent/clock-control`: setting the system clock and the hardware
//! clock. The RTC is driven with its own ioctls (what `hwclock` does), no
//! helper program, and kept in UTC.

use std::fs::File;
use std::os::fd::AsRawFd;

use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime, clock_settime};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use super::bindings::sandga::agent::clock_control;
use super::{HostState, os_text};

/// 2070-01-01T00:00:00Z: the host accepts the years 1970 to 2069, as
/// qemu-ga does.
const YEAR_2070: i64 = 3_155_760_000;

/// Where `hwclock` looks for the RTC, in its order.
const RTC_DEVICES: &[&str] = &["/dev/rtc0", "/dev/rtc", "/dev/misc/rtc"];

/// `struct rtc_time` (linux/rtc.h): a `struct tm` without the zone.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct RtcTime {
    tm_sec: i32,
    tm_min: i32,
    tm_hour: i32,
    tm_mday: i32,
    tm_mon: i32,
    tm_year: i32,
    tm_wday: i32,
    tm_yday: i32,
    tm_isdst: i32,
}

nix::ioctl_read!(rtc_read_time, b'p', 0x09, RtcTime);
nix::ioctl_write_ptr!(rtc_set_time, b'p', 0x0a, RtcTime);

fn open_rtc(write: bool) -> Result<File, String> {
    let mut last = String::from("no RTC device");
    for path in RTC_DEVICES {
        match File::options().read(true).write(write).open(path) {
            Ok(file) => return Ok(file),
            Err(e) => last = format!("{path}: {}", os_text(&e)),
        }
    }
    Err(last)
}

fn set_realtime(seconds: i64, nanoseconds: i64) -> Result<(), String> {
    clock_settime(ClockId::CLOCK_REALTIME, TimeSpec::new(seconds, nanoseconds))
        .map_err(|e| e.desc().to_string())
}

fn to_rtc(seconds: i64) -> Result<RtcTime, String> {
    let at = OffsetDateTime::from_unix_timestamp(seconds).map_err(|e| e.to_string())?;
    let field = |n: i64| i32::try_from(n).map_err(|e| e.to_string());
    Ok(RtcTime {
        tm_sec: field(at.second().into())?,
        tm_min: field(at.minute().into())?,
        tm_hour: field(at.hour().into())?,
        tm_mday: field(at.day().into())?,
        tm_mon: field(i64::from(u8::from(at.month())) - 1)?,
        tm_year: field(i64::from(at.year()) - 1900)?,
        tm_wday: field(at.weekday().number_days_from_sunday().into())?,
        tm_yday: field(i64::from(at.ordinal()) - 1)?,
        tm_isdst: 0,
    })
}

fn from_rtc(rtc: &RtcTime) -> Result<i64, String> {
    let invalid = |what: &str| format!("the hardware clock reads an invalid {what}: {rtc:?}");
    let small = |n: i32, what: &str| u8::try_from(n).map_err(|_| invalid(what));
    let month = Month::try_from(small(rtc.tm_mon + 1, "month")?).map_err(|_| invalid("month"))?;
    let date = Date::from_calendar_date(rtc.tm_year + 1900, month, small(rtc.tm_mday, "day")?)
        .map_err(|_| invalid("date"))?;
    let time = Time::from_hms(
        small(rtc.tm_hour, "hour")?,
        small(rtc.tm_min, "minute")?,
        small(rtc.tm_sec, "second")?,
    )
    .map_err(|_| invalid("time"))?;
    Ok(PrimitiveDateTime::new(date, time)
        .assume_utc()
        .unix_timestamp())
}

impl clock_control::Host for HostState {
    fn set_system_time(&mut self, nanoseconds: i64) -> Result<(), String> {
        // Checked again: the component is untrusted.
        let seconds = nanoseconds.div_euclid(1_000_000_000);
        if !(0..YEAR_2070).contains(&seconds) {
            // As settimeofday answers a negative time.
            return Err(nix::errno::Errno::EINVAL.desc().to_string());
        }
        self.outside_time_limit(|| set_realtime(seconds, nanoseconds.rem_euclid(1_000_000_000)))
    }

    fn save_to_hardware_clock(&mut self) -> Result<(), String> {
        self.outside_time_limit(|| {
            let now = clock_gettime(ClockId::CLOCK_REALTIME).map_err(|e| e.desc().to_string())?;
            let rtc = to_rtc(now.tv_sec())?;
            let device = open_rtc(true)?;
            // SAFETY: RTC_SET_TIME reads one `struct rtc_time`, which `rtc` is.
            unsafe { rtc_set_time(device.as_raw_fd(), &rtc) }
                .map_err(|e| format!("RTC_SET_TIME: {}", e.desc()))?;
            Ok(())
        })
    }

    fn load_from_hardware_clock(&mut self) -> Result<(), String> {
        self.outside_time_limit(|| {
            let device = open_rtc(false)?;
            let mut rtc = RtcTime::default();
            // SAFETY: RTC_RD_TIME writes one `struct rtc_time` into `rtc`.
            unsafe { rtc_read_time(device.as_raw_fd(), &mut rtc) }
                .map_err(|e| format!("RTC_RD_TIME: {}", e.desc()))?;
            set_realtime(from_rtc(&rtc)?, 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtc_fields_round_trip_through_unix_time() {
        // 2024-02-29T23:59:58Z, a Thursday, day 60 of a leap year.
        let seconds = 1_709_251_198;
        let rtc = to_rtc(seconds).unwrap();
        assert_eq!(
            (
                rtc.tm_year,
                rtc.tm_mon,
                rtc.tm_mday,
                rtc.tm_hour,
                rtc.tm_min,
                rtc.tm_sec
            ),
            (124, 1, 29, 23, 59, 58)
        );
        assert_eq!((rtc.tm_wday, rtc.tm_yday), (4, 59));
        assert_eq!(from_rtc(&rtc), Ok(seconds));
    }

    #[test]
    fn an_impossible_rtc_reading_is_an_error() {
        let rtc = RtcTime {
            tm_mon: 12,
            tm_mday: 1,
            tm_year: 124,
            ..RtcTime::default()
        };
        assert!(from_rtc(&rtc).unwrap_err().contains("invalid month"));
    }
}

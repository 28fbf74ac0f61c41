//! The command logic against a fake `clock-control` host.

use crate::{ClockControlHost, run};

#[derive(Default)]
struct Fake {
    calls: Vec<String>,
    fail: Option<&'static str>,
}

impl Fake {
    fn record(&mut self, call: String) -> Result<(), String> {
        let failing = self.fail.is_some_and(|name| call.starts_with(name));
        self.calls.push(call);
        if failing {
            Err("Operation not permitted".into())
        } else {
            Ok(())
        }
    }
}

impl ClockControlHost for Fake {
    fn set_system_time(&mut self, nanoseconds: i64) -> Result<(), String> {
        self.record(format!("system {nanoseconds}"))
    }

    fn save_to_hardware_clock(&mut self) -> Result<(), String> {
        self.record("save".into())
    }

    fn load_from_hardware_clock(&mut self) -> Result<(), String> {
        self.record("load".into())
    }
}

fn set(host: &mut Fake, arguments: &str) -> Result<String, String> {
    run(host, "guest-set-time", arguments).map(|reply| reply.json)
}

#[test]
fn with_a_time_sets_the_system_clock_then_the_hardware_clock() {
    let mut host = Fake::default();
    assert_eq!(
        set(&mut host, r#"{"time":1700000000123456789}"#),
        Ok("{}".into())
    );
    assert_eq!(host.calls, ["system 1700000000123456789", "save"]);
}

#[test]
fn without_a_time_sets_the_system_clock_from_the_hardware_clock() {
    let mut host = Fake::default();
    assert_eq!(set(&mut host, "{}"), Ok("{}".into()));
    assert_eq!(host.calls, ["load"]);
}

#[test]
fn times_outside_1970_to_2069_are_invalid_and_touch_nothing() {
    let mut host = Fake::default();
    for time in ["-1000000000", "3155760000000000000", "9223372036854775807"] {
        assert_eq!(
            set(&mut host, &format!(r#"{{"time":{time}}}"#)),
            Err("Invalid time".into()),
            "{time}"
        );
    }
    assert!(host.calls.is_empty());
    // Truncated to whole seconds first, as qemu-ga does: the host decides.
    assert_eq!(set(&mut host, r#"{"time":-1}"#), Ok("{}".into()));
    assert_eq!(
        set(&mut host, r#"{"time":"now"}"#),
        Err("Invalid parameter type for 'time', expected: integer".into())
    );
}

#[test]
fn host_failures_say_which_step_failed() {
    let mut host = Fake {
        fail: Some("system"),
        ..Fake::default()
    };
    assert_eq!(
        set(&mut host, r#"{"time":1700000000000000000}"#),
        Err("Failed to set time to guest: Operation not permitted".into())
    );
    assert_eq!(host.calls, ["system 1700000000000000000"]);
    let mut host = Fake {
        fail: Some("save"),
        ..Fake::default()
    };
    assert_eq!(
        set(&mut host, r#"{"time":1700000000000000000}"#),
        Err("failed to set hardware clock to system time: Operation not permitted".into())
    );
    let mut host = Fake {
        fail: Some("load"),
        ..Fake::default()
    };
    assert_eq!(
        set(&mut host, "{}"),
        Err("failed to set system time from hardware clock: Operation not permitted".into())
    );
}

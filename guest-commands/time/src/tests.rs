//! The command logic against a fake `clock` host.

use crate::{ClockHost, Reply, run};

struct Fake {
    now: i64,
    calls: usize,
}

impl ClockHost for Fake {
    fn now(&mut self) -> i64 {
        self.calls += 1;
        self.now
    }
}

#[test]
fn get_time() {
    let mut host = Fake {
        now: 1_763_745_000_123_456_000,
        calls: 0,
    };
    assert_eq!(
        run(&mut host, "guest-get-time", "{}"),
        Ok(Reply {
            json: "1763745000123456000".to_owned(),
            staged_member: None,
        })
    );
    host.now = -1;
    assert_eq!(
        run(&mut host, "guest-get-time", " { } ").map(|r| r.json),
        Ok("-1".to_owned())
    );
    assert_eq!(host.calls, 2);
}

#[test]
fn rejects_arguments() {
    let mut host = Fake { now: 0, calls: 0 };
    assert_eq!(
        run(&mut host, "guest-get-time", r#"{"foo":42}"#),
        Err("Parameter 'foo' is unexpected".to_owned())
    );
    assert_eq!(
        run(&mut host, "guest-get-time", "null"),
        Err("QMP input member 'arguments' must be an object".to_owned())
    );
    assert_eq!(
        run(&mut host, "guest-set-time", "{}"),
        Err("component 'time' does not implement guest-set-time".to_owned())
    );
    assert_eq!(host.calls, 0);
}

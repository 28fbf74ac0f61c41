//! The command logic against a fake `power` host.

use crate::{PowerHost, ShutdownMode, run};

#[derive(Default)]
struct Fake(Vec<ShutdownMode>);

impl PowerHost for Fake {
    fn shutdown(&mut self, mode: ShutdownMode) -> Result<(), String> {
        self.0.push(mode);
        Ok(())
    }
}

#[test]
fn modes_as_qemu_ga_reads_them() {
    let mut host = Fake::default();
    for (arguments, mode) in [
        ("{}", ShutdownMode::Powerdown),
        (r#"{"mode":"powerdown"}"#, ShutdownMode::Powerdown),
        (r#"{"mode":"halt"}"#, ShutdownMode::Halt),
        (r#"{"mode":"reboot"}"#, ShutdownMode::Reboot),
    ] {
        host.0.clear();
        assert_eq!(
            run(&mut host, "guest-shutdown", arguments).map(|r| r.json),
            Ok("{}".into())
        );
        assert_eq!(host.0, [mode], "{arguments}");
    }
}

#[test]
fn an_invalid_mode_shuts_nothing_down() {
    let mut host = Fake::default();
    assert_eq!(
        run(&mut host, "guest-shutdown", r#"{"mode":"sleep"}"#).map(|r| r.json),
        Err("mode is invalid (valid values are: halt|powerdown|reboot".into())
    );
    assert_eq!(
        run(&mut host, "guest-shutdown", r#"{"mode":1}"#).map(|r| r.json),
        Err("Invalid parameter type for 'mode', expected: string".into())
    );
    assert!(host.0.is_empty());
}

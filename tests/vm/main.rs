//! sandga in a real guest: QEMU (TCG) boots a small Linux guest in which
//! init starts sandga on a real virtio-serial port, and every result is
//! checked from outside the agent, through an independent control shell or
//! QEMU's monitor (see `guest.rs`).
//!
//! One boot serves many cases, so this test has its own harness: it prints
//! each case's result, runs the rest after a failure, and exits non-zero if
//! any failed. Arguments filter cases by name (`cargo test -p sandga --test
//! vm -- files`).
//!
//! Needs `qemu-system-x86_64`, a static busybox and a kernel with its
//! modules (Debian: `qemu-system-x86 busybox-static linux-image-amd64`).
//! Without them the test is skipped with a message, except under CI
//! (`CI=true`), where that is a failure.

#[path = "../support/mod.rs"]
mod support;

mod guest;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};

use guest::{Guest, Prerequisites};
use support::files::{close_ok, open, open_ok, read_ok, seek_ok, write_ok};
use support::{FILE_COMMANDS, assert_error_contains, pattern, ret};

/// Every command sandga implements; the guest's policy enables them all.
const PROTOCOL_COMMANDS: &[&str] = &[
    "guest-sync-delimited",
    "guest-sync",
    "guest-ping",
    "guest-info",
];
const QUERY_COMMANDS: &[&str] = &[
    "guest-get-time",
    "guest-get-vcpus",
    "guest-network-get-interfaces",
];
const PRIVILEGED_COMMANDS: &[&str] = &[
    "guest-set-time",
    "guest-set-vcpus",
    "guest-fsfreeze-status",
    "guest-fsfreeze-freeze",
    "guest-fsfreeze-freeze-list",
    "guest-fsfreeze-thaw",
    "guest-fstrim",
    "guest-shutdown",
];

/// The guest's file grant (`tests/vm/image/policy.toml`).
const GRANTED: &str = "/srv";

/// How long the agent's CPU use is watched while the host side is closed.
const IDLE_WATCH: Duration = Duration::from_secs(30);

type Case = (&'static str, fn(&mut Guest));

/// QEMU's default CPU model: x86-64 with little more than SSE3, what a
/// migration-safe guest sees. Every case runs here.
const ON_QEMU64: &[Case] = &[
    (
        "guest-info lists every command enabled",
        every_command_enabled,
    ),
    ("guest-get-time is the guest's clock", time_is_guest_clock),
    ("guest-get-vcpus matches sysfs", vcpus_match_sysfs),
    (
        "guest-network-get-interfaces matches lo and eth0",
        interfaces_match_guest,
    ),
    (
        "files: 4 MiB written, checked in the guest, read back",
        files_round_trip,
    ),
    ("files: open modes, checked in the guest", files_open_modes),
    (
        "files: paths outside the grant refused, nothing created",
        files_confined,
    ),
    (
        "agent killed, restarted by init: handles continue",
        restart_continues_handles,
    ),
    (
        "host side closed: no CPU, then resynchronises",
        host_away_costs_nothing,
    ),
    ("isa-serial: guest-sync and a file read", isa_serial_serves),
    (
        "guest-set-vcpus takes cpu1 offline and back, seen in sysfs",
        set_vcpus_in_sysfs,
    ),
    (
        "guest-set-time sets the system clock and the RTC",
        set_time_and_rtc,
    ),
    (
        "fsfreeze: writes wait while frozen, allow-list, thaw",
        freeze_blocks_writes,
    ),
    (
        "fsfreeze: frozen state survives the agent",
        freeze_survives_restart,
    ),
    (
        "guest-fstrim discards freed blocks, seen in the host's image",
        fstrim_discards,
    ),
];

/// Everything the host CPU offers: the components must load here too.
const ON_MAX: &[Case] = &[
    (
        "guest-info lists every command enabled",
        every_command_enabled,
    ),
    ("guest-get-time is the guest's clock", time_is_guest_clock),
    // Last, as it ends the guest.
    (
        "guest-shutdown powers the guest off through init",
        shutdown_powers_off,
    ),
];

fn main() -> ExitCode {
    // Words that are not options (nor an option's number) select cases.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-') && arg.parse::<u64>().is_err())
        .collect();
    let selected = |cases: &[Case]| -> Vec<Case> {
        cases
            .iter()
            .filter(|(name, _)| {
                filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
            })
            .copied()
            .collect()
    };
    let runs = [("qemu64", selected(ON_QEMU64)), ("max", selected(ON_MAX))];
    if runs.iter().all(|(_, cases)| cases.is_empty()) {
        println!("vm: no case matches {filters:?}");
        return ExitCode::SUCCESS;
    }
    let prerequisites = match Prerequisites::find() {
        Ok(found) => found,
        Err(missing) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            eprintln!("vm: FAILED: the VM tests cannot run under CI: missing {missing}");
            return ExitCode::FAILURE;
        }
        Err(missing) => {
            eprintln!(
                "vm: SKIPPED: the VM tests need {missing} (Debian: apt-get install {})",
                guest::PACKAGES
            );
            return ExitCode::SUCCESS;
        }
    };

    let mut failures = Vec::new();
    for (cpu, cases) in runs.iter().filter(|(_, cases)| !cases.is_empty()) {
        match catch_unwind(AssertUnwindSafe(|| Guest::boot(&prerequisites, cpu))) {
            Ok(mut guest) => {
                for (name, case) in cases {
                    if !run_case(name, &mut guest, *case) {
                        failures.push(format!("[-cpu {cpu}] {name}"));
                    }
                }
                if guest.running() {
                    report_recovered_wakeups(&mut guest);
                }
            }
            Err(_) => failures.push(format!("[-cpu {cpu}] boot")),
        }
    }

    if failures.is_empty() {
        println!("vm: all cases passed");
        ExitCode::SUCCESS
    } else {
        println!("vm: {} case(s) FAILED:", failures.len());
        for failure in &failures {
            println!("  {failure}");
        }
        ExitCode::FAILURE
    }
}

/// Says how often the agent found data on its port that no wake-up had
/// announced (its guard against lost wake-ups, `channel.rs`), so that a
/// run shows whether the guard is needed.
fn report_recovered_wakeups(guest: &mut Guest) {
    let count = guest
        .control()
        .run_within(
            "grep -c 'without a wake-up' /var/log/sandga.log; true",
            Duration::from_secs(30),
        )
        .map(|(_, out)| out.trim().to_string())
        .unwrap_or_default();
    println!("vm: data found on the port without a wake-up: {count} time(s)");
}

/// Runs one case, reporting it; a failure (panic) does not stop the run.
fn run_case(name: &str, guest: &mut Guest, case: fn(&mut Guest)) -> bool {
    let started = Instant::now();
    println!("vm: case {name}");
    match catch_unwind(AssertUnwindSafe(|| case(guest))) {
        Ok(()) => {
            println!("vm: ... ok ({:.1} s)", started.elapsed().as_secs_f64());
            true
        }
        Err(_) => {
            println!("vm: ... FAILED\n{}", guest.diagnostics());
            false
        }
    }
}

fn every_command_enabled(guest: &mut Guest) {
    let mut agent = guest.agent();
    let info = agent.call(r#"{"execute":"guest-info"}"#);
    let commands = ret(&info)["supported_commands"]
        .as_array()
        .expect("supported_commands is a list");
    for command in commands {
        assert_eq!(
            command["enabled"],
            json!(true),
            "disabled in the guest: {command}"
        );
    }
    for expected in PROTOCOL_COMMANDS
        .iter()
        .chain(QUERY_COMMANDS)
        .chain(PRIVILEGED_COMMANDS)
        .chain(FILE_COMMANDS)
    {
        assert!(
            commands.iter().any(|c| c["name"] == json!(expected)),
            "{expected} missing from guest-info"
        );
    }
    // The commands run in components: each must have loaded on this CPU.
    assert!(ret(&agent.call(r#"{"execute":"guest-get-vcpus"}"#)).is_array());
}

fn time_is_guest_clock(guest: &mut Guest) {
    let mut agent = guest.agent();
    let before: i64 = guest
        .control()
        .ok("date +%s")
        .trim()
        .parse()
        .expect("seconds");
    let agent_ns = ret(&agent.call(r#"{"execute":"guest-get-time"}"#))
        .as_i64()
        .expect("nanoseconds");
    let after: i64 = guest
        .control()
        .ok("date +%s")
        .trim()
        .parse()
        .expect("seconds");
    let agent_s = agent_ns / 1_000_000_000;
    assert!(
        before <= agent_s && agent_s <= after,
        "guest-get-time {agent_ns} ns is not between the guest's {before} s and {after} s"
    );
}

fn vcpus_match_sysfs(guest: &mut Guest) {
    let mut agent = guest.agent();
    let vcpus = agent.call(r#"{"execute":"guest-get-vcpus"}"#);
    // Listed in readdir order, as qemu-ga does; compared by id.
    let mut listed = ret(&vcpus).as_array().expect("a list").clone();
    listed.sort_by_key(|cpu| cpu["logical-id"].as_i64());
    let present = guest
        .control()
        .ok("ls -d /sys/devices/system/cpu/cpu[0-9]* | sed 's/.*cpu//' | sort -n");
    let ids: Vec<i64> = present.lines().filter_map(|id| id.parse().ok()).collect();
    assert_eq!(ids, vec![0, 1], "the guest has -smp 2");
    assert_eq!(listed.len(), ids.len(), "{vcpus}");
    for (entry, id) in listed.iter().zip(&ids) {
        assert_eq!(entry["logical-id"], json!(id), "{entry}");
        let online_file = format!("/sys/devices/system/cpu/cpu{id}/online");
        let control = guest.control();
        let can_offline = control.status(&format!("test -e {online_file}")) == 0;
        let online = !can_offline || control.ok(&format!("cat {online_file}")).trim() == "1";
        assert_eq!(entry["online"], json!(online), "{entry}");
        assert_eq!(entry["can-offline"], json!(can_offline), "{entry}");
    }
}

/// `(address, prefix)` pairs of `ip -o addr show dev DEV` in the guest.
fn guest_addresses(guest: &mut Guest, device: &str) -> Vec<(String, i64)> {
    let mut addresses: Vec<(String, i64)> = guest
        .control()
        .ok(&format!("ip -o addr show dev {device}"))
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            let (address, prefix) = words.next()?.split_once('/')?;
            Some((address.to_string(), prefix.parse().ok()?))
        })
        .collect();
    addresses.sort();
    addresses
}

fn interfaces_match_guest(guest: &mut Guest) {
    let mut agent = guest.agent();
    let response = agent.call(r#"{"execute":"guest-network-get-interfaces"}"#);
    let interfaces = ret(&response).as_array().expect("a list").clone();
    for device in ["lo", "eth0"] {
        let interface = interfaces
            .iter()
            .find(|i| i["name"] == json!(device))
            .unwrap_or_else(|| panic!("{device} missing: {response}"));
        let mut reported: Vec<(String, i64)> = interface["ip-addresses"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|a| {
                (
                    a["ip-address"].as_str().unwrap_or_default().to_string(),
                    a["prefix"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        reported.sort();
        assert_eq!(
            reported,
            guest_addresses(guest, device),
            "{device}: {interface}"
        );
        let mac = guest
            .control()
            .ok(&format!("cat /sys/class/net/{device}/address"));
        assert_eq!(interface["hardware-address"], json!(mac.trim()), "{device}");
    }
    assert!(
        guest_addresses(guest, "eth0").contains(&("10.0.2.15".into(), 24)),
        "the guest's eth0 is 10.0.2.15/24"
    );
}

fn files_round_trip(guest: &mut Guest) {
    let mut agent = guest.agent();
    let data = pattern(4 << 20, 9);
    let started = Instant::now();
    let path = format!("{GRANTED}/big");
    let handle = open_ok(&mut agent, &path, "w");
    write_ok(&mut agent, handle, &data);
    println!(
        "vm:   4 MiB written in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    close_ok(&mut agent, handle);

    let digest: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let in_guest = guest.control().ok(&format!("sha256sum {path}"));
    assert_eq!(in_guest.split_whitespace().next(), Some(digest.as_str()));

    let handle = open_ok(&mut agent, &path, "r");
    let (back, _) = read_ok(&mut agent, handle, Some(4 << 20));
    assert!(
        back == data,
        "the 4 MiB read back differs from what was written"
    );
    let (rest, eof) = read_ok(&mut agent, handle, Some(4096));
    assert!(
        rest.is_empty() && eof,
        "read past the end: {} bytes, eof {eof}",
        rest.len()
    );
    close_ok(&mut agent, handle);
    guest.control().ok(&format!("rm {path}"));
}

fn files_open_modes(guest: &mut Guest) {
    let mut agent = guest.agent();
    let path = format!("{GRANTED}/modes");
    let contents = |guest: &mut Guest| guest.control().ok(&format!("cat {path}"));

    let missing = open(&mut agent, &path, Some("r"));
    assert_error_contains(&missing, &["No such file"]);
    assert_ne!(guest.control().status(&format!("test -e {path}")), 0);

    let handle = open_ok(&mut agent, &path, "w");
    write_ok(&mut agent, handle, b"hello");
    close_ok(&mut agent, handle);
    assert_eq!(contents(guest), "hello");
    // As qemu-ga: created files are rw-rw-rw- whatever the umask.
    assert_eq!(
        guest.control().ok(&format!("stat -c %a {path}")).trim(),
        "666"
    );

    let handle = open_ok(&mut agent, &path, "a");
    write_ok(&mut agent, handle, b" world");
    close_ok(&mut agent, handle);
    assert_eq!(contents(guest), "hello world");

    let handle = open_ok(&mut agent, &path, "r+");
    write_ok(&mut agent, handle, b"J");
    close_ok(&mut agent, handle);
    assert_eq!(contents(guest), "Jello world");

    let handle = open_ok(&mut agent, &path, "w+");
    write_ok(&mut agent, handle, b"x");
    assert_eq!(seek_ok(&mut agent, handle, 0, json!("set")), 0);
    assert_eq!(read_ok(&mut agent, handle, Some(100)).0, b"x");
    close_ok(&mut agent, handle);
    assert_eq!(contents(guest), "x");

    let handle = open_ok(&mut agent, &path, "a+");
    write_ok(&mut agent, handle, b"y");
    close_ok(&mut agent, handle);
    assert_eq!(contents(guest), "xy");
    guest.control().ok(&format!("rm {path}"));
}

fn files_confined(guest: &mut Guest) {
    let mut agent = guest.agent();
    for path in [
        "/etc/sandga-escape",
        "/srv/../etc/sandga-escape",
        "/tmp/sandga-escape",
    ] {
        let response = open(&mut agent, path, Some("w"));
        assert!(response.get("error").is_some(), "{path} opened: {response}");
    }
    guest.control().ok("ln -sf /etc/sandga-escape /srv/link");
    let response = open(&mut agent, "/srv/link", Some("w"));
    assert!(
        response.get("error").is_some(),
        "a symlink out of the grant opened: {response}"
    );
    let found = guest
        .control()
        .ok("ls /etc/sandga-escape /tmp/sandga-escape 2>/dev/null; rm /srv/link; true");
    assert!(found.is_empty(), "created outside the grant: {found}");
}

fn restart_continues_handles(guest: &mut Guest) {
    let mut agent = guest.agent();
    let path = format!("{GRANTED}/restart");
    let before = open_ok(&mut agent, &path, "w");
    close_ok(&mut agent, before);

    let mut qmp = guest.qmp();
    let old_pid = guest.control().ok("cat /run/sandga.pid");
    guest.control().ok(&format!("kill {}", old_pid.trim()));
    // Seen from the machine: the agent's port closes, and opens again when
    // init has started a new agent.
    assert!(
        qmp.wait_port_change("qgaport", false, Duration::from_secs(30)),
        "the port did not close when the agent was killed"
    );
    assert!(
        qmp.wait_port_change("qgaport", true, Duration::from_secs(60)),
        "init did not restart the agent"
    );
    guest::resync(&mut agent);
    let new_pid = guest.control().ok("cat /run/sandga.pid");
    assert_ne!(old_pid, new_pid, "a new agent process");

    let after = open_ok(&mut agent, &path, "r");
    assert!(
        after > before,
        "handle {after} after the restart reuses one (before: {before})"
    );
    close_ok(&mut agent, after);
    guest.control().ok(&format!("rm {path}"));
}

fn host_away_costs_nothing(guest: &mut Guest) {
    let agent = guest.agent();
    let pid: u32 = guest
        .control()
        .ok("cat /run/sandga.pid")
        .trim()
        .parse()
        .expect("a pid");
    let closed_seen = |guest: &mut Guest| -> usize {
        guest
            .control()
            .ok("grep -c 'host side of the port closed' /var/log/sandga.log; true")
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let closed_before = closed_seen(guest);
    agent.disconnect();
    // The agent notices the hang-up (its log says so), then settles: two
    // samples a second apart agree.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sample = guest::process_activity(guest.control(), pid);
    loop {
        assert!(
            Instant::now() < deadline,
            "the agent did not settle after the hang-up"
        );
        std::thread::sleep(Duration::from_secs(1));
        let next = guest::process_activity(guest.control(), pid);
        if next == sample && closed_seen(guest) > closed_before {
            break;
        }
        sample = next;
    }
    std::thread::sleep(IDLE_WATCH);
    let (ticks_after, switches_after) = guest::process_activity(guest.control(), pid);
    let ticks = ticks_after - sample.0;
    let switches = switches_after - sample.1;
    println!("vm:   host away {IDLE_WATCH:?}: {ticks} CPU ticks, {switches} context switches");
    // The goal of the issue: no CPU at all, and at most one wake-up per 10 s.
    assert_eq!(
        ticks, 0,
        "the agent used CPU while the host side was closed"
    );
    let allowed = IDLE_WATCH.as_secs() / 10;
    assert!(
        switches <= allowed,
        "{switches} wake-ups in {IDLE_WATCH:?} with the host side closed (at most {allowed})"
    );

    // Back: a client resynchronises as qemu-ga's clients do, with 0xFF and
    // guest-sync-delimited, and everything works again.
    let stream =
        std::os::unix::net::UnixStream::connect(guest.socket("qga.sock")).expect("reconnecting");
    let mut agent = support::Client::with_read_timeout(stream, guest::AGENT_TIMEOUT);
    agent.send_raw(b"\xff");
    agent.send(r#"{"execute":"guest-sync-delimited","arguments":{"id":4242}}"#);
    let synced = agent.recv_response();
    assert!(synced.delimited, "the answer starts with 0xFF");
    assert_eq!(synced.value, json!({"return": 4242}));
    ret(&agent.call(r#"{"execute":"guest-ping"}"#));
    assert!(ret(&agent.call(r#"{"execute":"guest-get-time"}"#)).is_i64());
    let handle = open_ok(&mut agent, &format!("{GRANTED}/back"), "w+");
    write_ok(&mut agent, handle, b"back");
    close_ok(&mut agent, handle);
    assert_eq!(guest.control().ok(&format!("cat {GRANTED}/back")), "back");
}

fn isa_serial_serves(guest: &mut Guest) {
    let path = format!("{GRANTED}/isa");
    let data = pattern(3000, 5);
    guest
        .control()
        .ok(&format!("printf '{}' > {path}", octal_escaped(&data)));
    let mut agent = guest.isa_agent();
    let handle = open_ok(&mut agent, &path, "r");
    let (back, _) = read_ok(&mut agent, handle, Some(4096));
    assert!(back == data, "the file read over isa-serial differs");
    close_ok(&mut agent, handle);
    guest.control().ok(&format!("rm {path}"));
}

/// `data` as POSIX printf escapes (`\NNN`), to create a binary file in the
/// guest.
fn octal_escaped(data: &[u8]) -> String {
    data.iter().map(|b| format!("\\{b:03o}")).collect()
}

fn set_vcpus(agent: &mut support::Client, vcpus: serde_json::Value) -> serde_json::Value {
    agent.call_value(&json!({"execute": "guest-set-vcpus", "arguments": {"vcpus": vcpus}}))
}

fn set_vcpus_in_sysfs(guest: &mut Guest) {
    let mut agent = guest.agent();
    let cpu1 = |guest: &mut Guest| {
        guest
            .control()
            .ok("cat /sys/devices/system/cpu/cpu1/online")
            .trim()
            .to_string()
    };
    let taken = set_vcpus(&mut agent, json!([{"logical-id": 1, "online": false}]));
    assert_eq!(ret(&taken), &json!(1), "{taken}");
    assert_eq!(cpu1(guest), "0");
    assert_eq!(
        guest
            .control()
            .ok("cat /sys/devices/system/cpu/online")
            .trim(),
        "0"
    );
    let listed = agent.call(r#"{"execute":"guest-get-vcpus"}"#);
    assert!(
        ret(&listed)
            .as_array()
            .is_some_and(|cpus| cpus
                .contains(&json!({"logical-id": 1, "online": false, "can-offline": true}))),
        "{listed}"
    );

    let refused = set_vcpus(&mut agent, json!([{"logical-id": 0, "online": false}]));
    assert_error_contains(&refused, &["logical processor #0 can't be offlined"]);
    // Partial success: the count of entries done before the failing one.
    let partial = set_vcpus(
        &mut agent,
        json!([{"logical-id": 1, "online": true}, {"logical-id": 99, "online": true}]),
    );
    assert_eq!(ret(&partial), &json!(1), "{partial}");
    assert_eq!(cpu1(guest), "1");
    let missing = set_vcpus(&mut agent, json!([{"logical-id": 99, "online": true}]));
    assert_error_contains(&missing, &["cpu99", "No such file or directory"]);
}

/// `struct tm` fields of QEMU's RTC (`qom-get /machine rtc-time`).
fn machine_rtc(guest: &Guest) -> (i64, i64, i64, i64, i64, i64) {
    let tm = guest.qmp().execute_with(
        "qom-get",
        json!({"path": "/machine", "property": "rtc-time"}),
    );
    let field = |name: &str| {
        tm[name]
            .as_i64()
            .unwrap_or_else(|| panic!("rtc-time: {tm}"))
    };
    (
        field("tm_year") + 1900,
        field("tm_mon") + 1,
        field("tm_mday"),
        field("tm_hour"),
        field("tm_min"),
        field("tm_sec"),
    )
}

fn guest_seconds(guest: &mut Guest) -> i64 {
    guest
        .control()
        .ok("date +%s")
        .trim()
        .parse()
        .expect("seconds")
}

fn set_time_and_rtc(guest: &mut Guest) {
    let mut agent = guest.agent();
    // 2031-05-06T07:08:09Z.
    let target: i64 = 1_935_817_689;
    let set = agent.call_value(
        &json!({"execute": "guest-set-time", "arguments": {"time": target * 1_000_000_000}}),
    );
    assert_eq!(ret(&set), &json!({}), "{set}");
    let now = guest_seconds(guest);
    assert!(
        (target..target + 10).contains(&now),
        "the guest's clock reads {now}"
    );
    // The hardware clock, as the machine sees it.
    let (year, month, day, hour, minute, second) = machine_rtc(guest);
    assert_eq!(
        (year, month, day, hour, minute),
        (2031, 5, 6, 7, 8),
        "the RTC"
    );
    assert!((9..30).contains(&second), "the RTC's seconds: {second}");

    // Without a time: the system clock from the hardware clock.
    guest
        .control()
        .ok("date -u -s '2040-01-01 00:00:00' >/dev/null");
    let load = agent.call(r#"{"execute":"guest-set-time"}"#);
    assert_eq!(ret(&load), &json!({}), "{load}");
    let now = guest_seconds(guest);
    assert!(
        (target..target + 30).contains(&now),
        "the guest's clock reads {now}"
    );

    let invalid = agent.call(r#"{"execute":"guest-set-time","arguments":{"time":-5000000000}}"#);
    assert_error_contains(&invalid, &["Invalid time"]);

    // Back to the real time, clock and RTC both.
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    let real_ns = i64::try_from(real.as_nanos()).expect("fits");
    let restore =
        agent.call_value(&json!({"execute": "guest-set-time", "arguments": {"time": real_ns}}));
    assert_eq!(ret(&restore), &json!({}), "{restore}");
    let now = guest_seconds(guest);
    let real_s = real_ns / 1_000_000_000;
    assert!(
        (real_s..real_s + 10).contains(&now),
        "the guest's clock reads {now}"
    );
}

/// The guest's data disk (`tests/vm/image/rcS`).
const DATA_MOUNT: &str = "/mnt/data";
const FROZEN_MARKER: &str = "/var/lib/sandga/qga.state.isfrozen";

fn freeze_status(agent: &mut support::Client) -> String {
    let status = agent.call(r#"{"execute":"guest-fsfreeze-status"}"#);
    ret(&status).as_str().expect("a string").to_string()
}

/// Starts a write to the data disk in the background; it blocks while the
/// filesystem is frozen. `/tmp/written` appears once it is done.
fn start_blocked_write(guest: &mut Guest) {
    guest.control().ok("rm -f /tmp/written");
    guest.control().ok(&format!(
        "(echo probe > {DATA_MOUNT}/probe && sync && touch /tmp/written) </dev/null >/dev/null 2>&1 &"
    ));
    std::thread::sleep(Duration::from_secs(2));
    assert_ne!(
        guest.control().status("test -e /tmp/written"),
        0,
        "a write went through to a frozen filesystem"
    );
}

fn wait_written(guest: &mut Guest) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while guest.control().status("test -e /tmp/written") != 0 {
        assert!(
            Instant::now() < deadline,
            "the write never completed after the thaw"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        guest
            .control()
            .ok(&format!("cat {DATA_MOUNT}/probe"))
            .trim(),
        "probe"
    );
}

fn freeze_blocks_writes(guest: &mut Guest) {
    let mut agent = guest.agent();
    assert_eq!(freeze_status(&mut agent), "thawed");
    let frozen = agent.call(r#"{"execute":"guest-fsfreeze-freeze"}"#);
    // The data disk is the guest's only filesystem on a device.
    assert_eq!(ret(&frozen), &json!(1), "{frozen}");
    assert_eq!(freeze_status(&mut agent), "frozen");
    assert_eq!(
        guest.control().status(&format!("test -e {FROZEN_MARKER}")),
        0
    );
    start_blocked_write(guest);

    // Only what cannot touch a filesystem is allowed meanwhile.
    let refused = agent.call(r#"{"execute":"guest-get-time"}"#);
    assert_eq!(
        refused["error"]["class"],
        json!("CommandNotFound"),
        "{refused}"
    );
    let again = agent.call(r#"{"execute":"guest-fsfreeze-freeze"}"#);
    assert_eq!(again["error"]["class"], json!("CommandNotFound"), "{again}");
    let info = agent.call(r#"{"execute":"guest-info"}"#);
    let enabled = |name: &str| {
        ret(&info)["supported_commands"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["name"] == json!(name)))
            .map(|c| c["enabled"].clone())
    };
    assert_eq!(enabled("guest-file-open"), Some(json!(false)));
    assert_eq!(enabled("guest-fsfreeze-thaw"), Some(json!(true)));
    ret(&agent.call(r#"{"execute":"guest-ping"}"#));

    let thawed = agent.call(r#"{"execute":"guest-fsfreeze-thaw"}"#);
    assert_eq!(ret(&thawed), &json!(1), "{thawed}");
    wait_written(guest);
    assert_eq!(freeze_status(&mut agent), "thawed");
    assert_ne!(
        guest.control().status(&format!("test -e {FROZEN_MARKER}")),
        0
    );
    assert!(ret(&agent.call(r#"{"execute":"guest-get-time"}"#)).is_i64());

    // freeze-list: only the mountpoints given; one that is not, an error.
    let listed = agent.call_value(&json!({
        "execute": "guest-fsfreeze-freeze-list",
        "arguments": {"mountpoints": [DATA_MOUNT]},
    }));
    assert_eq!(ret(&listed), &json!(1), "{listed}");
    assert_eq!(
        ret(&agent.call(r#"{"execute":"guest-fsfreeze-thaw"}"#)),
        &json!(1)
    );
    let unknown = agent.call_value(&json!({
        "execute": "guest-fsfreeze-freeze-list",
        "arguments": {"mountpoints": ["/tmp"]},
    }));
    assert_error_contains(
        &unknown,
        &["/tmp", "not a mounted filesystem that can be frozen"],
    );
    assert_eq!(freeze_status(&mut agent), "thawed");
    // Nothing frozen: thaw says so.
    assert_eq!(
        ret(&agent.call(r#"{"execute":"guest-fsfreeze-thaw"}"#)),
        &json!(0)
    );
}

fn freeze_survives_restart(guest: &mut Guest) {
    let mut agent = guest.agent();
    assert_eq!(
        ret(&agent.call(r#"{"execute":"guest-fsfreeze-freeze"}"#)),
        &json!(1)
    );
    start_blocked_write(guest);
    let pid = guest.control().ok("cat /run/sandga.pid");
    // As qemu-ga: SIGTERM is ignored while frozen; only SIGKILL stops it.
    guest.control().ok(&format!("kill -TERM {}", pid.trim()));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        guest.control().status(&format!("kill -0 {}", pid.trim())),
        0
    );
    let mut qmp = guest.qmp();
    guest.control().ok(&format!("kill -KILL {}", pid.trim()));
    assert!(
        qmp.wait_port_change("qgaport", true, Duration::from_secs(60)),
        "init did not restart the agent"
    );
    guest::resync(&mut agent);
    // The new agent starts frozen, from the marker.
    assert_eq!(freeze_status(&mut agent), "frozen");
    let refused = agent.call(r#"{"execute":"guest-file-open","arguments":{"path":"/srv/x"}}"#);
    assert_eq!(
        refused["error"]["class"],
        json!("CommandNotFound"),
        "{refused}"
    );
    assert_eq!(
        ret(&agent.call(r#"{"execute":"guest-fsfreeze-thaw"}"#)),
        &json!(1)
    );
    wait_written(guest);
    assert_eq!(freeze_status(&mut agent), "thawed");
}

fn fstrim_discards(guest: &mut Guest) {
    let mut agent = guest.agent();
    let allocated = |guest: &Guest| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(guest.socket("data.img"))
            .expect("the data disk image")
            .blocks()
            * 512
    };
    guest.control().ok(&format!(
        "dd if=/dev/urandom of={DATA_MOUNT}/junk bs=1M count=16 2>/dev/null && sync && rm {DATA_MOUNT}/junk && sync"
    ));
    let before = allocated(guest);
    let trim = agent.call(r#"{"execute":"guest-fstrim","arguments":{"minimum":0}}"#);
    let paths = ret(&trim)["paths"].as_array().expect("paths").clone();
    let data = paths
        .iter()
        .find(|p| p["path"] == json!(DATA_MOUNT))
        .unwrap_or_else(|| panic!("{DATA_MOUNT} not trimmed: {trim}"));
    assert_eq!(data["minimum"], json!(0), "{data}");
    let trimmed = data["trimmed"].as_u64().unwrap_or_else(|| panic!("{data}"));
    assert!(trimmed >= 16 << 20, "trimmed only {trimmed} bytes: {data}");
    let after = allocated(guest);
    println!("vm:   image allocation {before} -> {after} bytes");
    assert!(
        after + (8 << 20) <= before,
        "the host's image did not shrink: {before} -> {after} bytes"
    );
}

fn shutdown_powers_off(guest: &mut Guest) {
    let mut agent = guest.agent();
    let invalid = agent.call(r#"{"execute":"guest-shutdown","arguments":{"mode":"nap"}}"#);
    assert_error_contains(&invalid, &["mode is invalid"]);
    let mut qmp = guest.qmp();
    // Success says nothing (success-response false); the guest goes down.
    agent.send(r#"{"execute":"guest-shutdown"}"#);
    let shutdown = qmp
        .wait_event("SHUTDOWN", Duration::from_secs(60))
        .expect("QEMU saw no shutdown");
    // The guest powered itself off, after init stopped everything.
    assert_eq!(shutdown["reason"], json!("guest-shutdown"), "{shutdown}");
    assert!(
        guest.exits_within(Duration::from_secs(30)),
        "QEMU did not exit"
    );
    let console = guest.console();
    assert!(
        console.contains("The system is going down"),
        "init did not shut down: {console}"
    );
}

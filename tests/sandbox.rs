//! The component sandbox under attack: a hostile stand-in for the `time`
//! component (`guest-commands/test-time`, built by `cargo xtask
//! build-components` into `target/test-components/`, never into the daemon)
//! is loaded through the policy's sha256-pinned component directory.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{Agent, Config, Policy, temp_dir};

fn built(dir: &str, name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(dir)
        .join(name);
    assert!(
        path.exists(),
        "{} is missing (run `cargo xtask build-components` first)",
        path.display()
    );
    path
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("reading a component");
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Starts sandga with the hostile component as `guest-get-time` (granted
/// `grants`) beside the real `file` component, both loaded from
/// `<dir>/components` and pinned; `time_pin` overrides the hostile one's pin.
fn start(grants: &str, time_pin: Option<String>) -> Agent {
    let dir = temp_dir();
    let components = dir.path().join("components");
    std::fs::create_dir(&components).unwrap();
    std::fs::copy(
        built("test-components", "time.cwasm"),
        components.join("time.cwasm"),
    )
    .unwrap();
    std::fs::copy(
        built("components", "file.cwasm"),
        components.join("file.cwasm"),
    )
    .unwrap();
    let time_pin = time_pin.unwrap_or_else(|| sha256(&components.join("time.cwasm")));
    let file_pin = sha256(&components.join("file.cwasm"));
    let policy = format!(
        r#"
[limits]
time-ms = 500
memory-mib = 16

[commands.guest-ping]
[commands.guest-info]
[commands.guest-get-time]
grants = [{grants}]
[commands.guest-file-open]
grants = ["files"]
[commands.guest-file-read]
grants = ["files"]
[commands.guest-file-close]
grants = ["files"]

[[files.grant]]
path = "@DIR@"
access = "read"

[components]
dir = "@DIR@/components"
[components.sha256]
time = "{time_pin}"
file = "{file_pin}"
"#
    );
    Agent::start_in(dir, Config::new(Policy::Text(policy)))
}

fn hostile_agent() -> Agent {
    start(r#""clock", "files""#, None)
}

fn error_desc(answer: &Value) -> String {
    assert!(
        answer.get("return").is_none(),
        "expected an error: {answer}"
    );
    assert_eq!(answer["error"]["class"], "GenericError", "{answer}");
    answer["error"]["desc"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn call_hostile(agent: &Agent, behaviour: &str) -> Value {
    let mut client = agent.connect();
    client.call(&format!(
        r#"{{"execute":"guest-get-time","arguments":{{"{behaviour}":1}},"id":"{behaviour}"}}"#
    ))
}

fn assert_still_serving(agent: &Agent) {
    let mut client = agent.connect();
    let answer = client.call(r#"{"execute":"guest-get-time"}"#);
    assert!(answer["return"].is_i64(), "{answer}");
}

#[test]
fn a_runaway_loop_is_stopped_by_the_time_limit() {
    let agent = hostile_agent();
    let answer = call_hostile(&agent, "spin");
    assert_eq!(answer["id"], "spin");
    let desc = error_desc(&answer);
    assert!(desc.contains("time limit of 500 ms"), "{desc}");
    assert_still_serving(&agent);
}

#[test]
fn unbounded_allocation_is_stopped_by_the_memory_limit() {
    let agent = hostile_agent();
    let desc = error_desc(&call_hostile(&agent, "grow"));
    assert!(desc.contains("memory limit of 16 MiB"), "{desc}");
    assert_still_serving(&agent);
}

#[test]
fn a_trap_fails_only_its_call() {
    let agent = hostile_agent();
    let desc = error_desc(&call_hostile(&agent, "trap"));
    assert!(
        desc.contains("trapped") && desc.contains("unreachable"),
        "{desc}"
    );
    assert_still_serving(&agent);
}

#[test]
fn malformed_replies_are_refused_not_forwarded() {
    let agent = hostile_agent();
    let desc = error_desc(&call_hostile(&agent, "bad-json"));
    assert!(desc.contains("invalid JSON"), "{desc}");
    let desc = error_desc(&call_hostile(&agent, "stage-scalar"));
    assert!(desc.contains("staged member"), "{desc}");
    assert_still_serving(&agent);
}

#[test]
fn the_host_rechecks_what_a_component_asks_for() {
    let agent = hostile_agent();
    let desc = error_desc(&call_hostile(&agent, "read-too-much"));
    assert_eq!(
        desc,
        "value '18446744073709551615' is invalid for argument count"
    );
}

#[test]
fn an_import_the_policy_does_not_grant_refuses_the_command_at_start() {
    // The stand-in imports `files` too; grant it only `clock`.
    let agent = start(r#""clock""#, None);
    let mut client = agent.connect();
    let info = client.call(r#"{"execute":"guest-info"}"#);
    let commands = info["return"]["supported_commands"]
        .as_array()
        .expect("supported_commands");
    let time = commands
        .iter()
        .find(|c| c["name"] == "guest-get-time")
        .expect("guest-get-time listed");
    assert_eq!(time["enabled"], false, "{time}");
    let answer = client.call(r#"{"execute":"guest-get-time"}"#);
    assert_eq!(answer["error"]["class"], "CommandNotFound", "{answer}");
    let desc = answer["error"]["desc"].as_str().unwrap_or_default();
    assert!(
        desc.contains("sandga:agent/files") && desc.contains("does not grant"),
        "{desc}"
    );
    assert!(
        agent.log().contains("guest-get-time is disabled"),
        "{}",
        agent.log()
    );
}

#[test]
fn a_component_file_whose_digest_does_not_match_its_pin_is_not_loaded() {
    let agent = start(r#""clock", "files""#, Some("0".repeat(64)));
    let mut client = agent.connect();
    let answer = client.call(r#"{"execute":"guest-get-time"}"#);
    assert_eq!(answer["error"]["class"], "CommandNotFound", "{answer}");
    let desc = answer["error"]["desc"].as_str().unwrap_or_default();
    assert!(desc.contains("but the policy pins"), "{desc}");
}

#[test]
fn a_component_directory_without_pins_loads_nothing() {
    let dir = temp_dir();
    let text = format!(
        "[commands.guest-get-time]\ngrants = [\"clock\"]\n[components]\ndir = \"{}\"\n",
        built("test-components", "time.cwasm")
            .parent()
            .expect("a directory")
            .display()
    );
    let agent = Agent::start_in(dir, Config::new(Policy::Text(text)));
    let mut client = agent.connect();
    let answer = client.call(r#"{"execute":"guest-get-time"}"#);
    let desc = answer["error"]["desc"].as_str().unwrap_or_default();
    assert!(desc.contains("pins no sha256"), "{answer}");
}

/// A pinned file that is not a loadable artifact (here a truncated one; on
/// a guest, one compiled for CPU features the guest lacks): the daemon says
/// so once, naming the component and why, and its commands are disabled.
#[test]
fn a_component_that_cannot_be_loaded_disables_its_commands_and_says_so_once() {
    let dir = temp_dir();
    let components = dir.path().join("components");
    std::fs::create_dir(&components).expect("creating the component directory");
    let whole = std::fs::read(built("components", "file.cwasm")).expect("reading file.cwasm");
    let truncated = components.join("file.cwasm");
    std::fs::write(&truncated, whole.get(..whole.len() / 2).unwrap_or_default())
        .expect("writing the truncated component");
    let policy = format!(
        "[commands.guest-info]\n\
         [commands.guest-file-open]\ngrants = [\"files\"]\n\
         [commands.guest-file-close]\ngrants = [\"files\"]\n\
         [components]\ndir = \"@DIR@/components\"\n\
         [components.sha256]\nfile = \"{}\"\n",
        sha256(&truncated)
    );
    let agent = Agent::start_in(dir, Config::new(Policy::Text(policy)));
    let mut client = agent.connect();
    let info = client.call(r#"{"execute":"guest-info"}"#);
    for command in ["guest-file-open", "guest-file-close"] {
        let listed = info["return"]["supported_commands"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["name"] == command))
            .unwrap_or_else(|| panic!("{command} not listed: {info}"));
        assert_eq!(listed["enabled"], false, "{listed}");
    }
    let answer = client.call(r#"{"execute":"guest-file-open","arguments":{"path":"x"}}"#);
    assert_eq!(answer["error"]["class"], "CommandNotFound", "{answer}");
    let log = agent.log();
    assert_eq!(
        log.matches("component 'file' cannot be loaded").count(),
        1,
        "said once, naming the component: {log}"
    );
}

#[test]
fn a_call_never_sees_bytes_another_call_staged() {
    let agent = hostile_agent();
    let secret = agent.dir().join("secret");
    std::fs::write(&secret, b"not for you").unwrap();
    let mut client = agent.connect();
    let open = client.call(&format!(
        r#"{{"execute":"guest-file-open","arguments":{{"path":"{}"}}}}"#,
        secret.display()
    ));
    let handle = open["return"].as_i64().expect("a handle");
    let read = client.call(&format!(
        r#"{{"execute":"guest-file-read","arguments":{{"handle":{handle}}}}}"#
    ));
    assert_eq!(read["return"]["count"], 11, "{read}");
    let answer =
        client.call(r#"{"execute":"guest-get-time","arguments":{"stage-without-read":1}}"#);
    assert_eq!(answer["return"]["buf-b64"], "", "{answer}");
}

#[test]
fn a_failed_call_keeps_no_file_open() {
    let agent = hostile_agent();
    let path = agent.dir().join("f");
    std::fs::write(&path, b"x").unwrap();
    let mut client = agent.connect();
    let answer = client.call(&format!(
        r#"{{"execute":"guest-get-time","arguments":{{"open-then-trap":"{}"}}}}"#,
        path.display()
    ));
    assert!(error_desc(&answer).contains("trapped"), "{answer}");
    // The trapped call took handle 1000 and must have given it back.
    let close = client.call(r#"{"execute":"guest-file-close","arguments":{"handle":1000}}"#);
    assert_eq!(
        close["error"]["desc"], "handle '1000' has not been found",
        "{close}"
    );
    let open = client.call(&format!(
        r#"{{"execute":"guest-file-open","arguments":{{"path":"{}"}}}}"#,
        path.display()
    ));
    assert_eq!(open["return"], 1001, "{open}");
}

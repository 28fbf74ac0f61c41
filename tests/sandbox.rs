//! The component sandbox under attack: a hostile stand-in for the `time`
//! component (`guest-commands/test-time`, built by `cargo xtask
//! build-components` into `target/test-components/`, never into the daemon)
//! is loaded through the policy's sha256-pinned component directory.

mod support;

use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{Agent, Config, Policy, temp_dir};

fn hostile_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-components")
}

fn hostile_sha256() -> String {
    let path = hostile_dir().join("time.cwasm");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run `cargo xtask build-components` first)",
            path.display()
        )
    });
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A policy running the hostile component as `guest-get-time`.
fn policy(grants: &str, pin: &str) -> Policy {
    Policy::Text(format!(
        r#"
[limits]
time-ms = 500
memory-mib = 16

[commands.guest-ping]
[commands.guest-info]
[commands.guest-get-time]
grants = [{grants}]

[components]
dir = "{dir}"
[components.sha256]
time = "{pin}"
"#,
        dir = hostile_dir().display()
    ))
}

fn hostile_agent() -> Agent {
    Agent::start(policy(r#""clock", "files""#, &hostile_sha256()))
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
    let agent = Agent::start(policy(r#""clock""#, &hostile_sha256()));
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
    let agent = Agent::start(policy(r#""clock", "files""#, &"0".repeat(64)));
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
        hostile_dir().display()
    );
    let agent = Agent::start_in(dir, Config::new(Policy::Text(text)));
    let mut client = agent.connect();
    let answer = client.call(r#"{"execute":"guest-get-time"}"#);
    let desc = answer["error"]["desc"].as_str().unwrap_or_default();
    assert!(desc.contains("pins no sha256"), "{answer}");
}

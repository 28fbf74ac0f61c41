//! The dispatcher: from a request to an answer. It knows the commands and the
//! policy, not the channel or the wire format: the protocol layer hands it a
//! parsed request and writes out whatever it answers.

use std::sync::{Arc, Mutex};

use qapi_args::Args;
use serde_json::value::{RawValue, to_raw_value};
use serde_json::{Map, Value, json};

use crate::commands::{self, Builtin, CommandSpec, Executor, WhileFrozen};
use crate::host::FileTable;
use crate::policy::Policy;
use crate::protocol::{ErrorClass, Request};
use crate::sandbox::{CallError, HostResources, Loader, Reply};
use crate::state::FreezeState;

/// What to send back for one request.
#[derive(Debug)]
pub enum Answer {
    Return {
        /// Valid, single-line JSON.
        value: Box<RawValue>,
        /// `guest-sync-delimited`: prefix the response with 0xFF.
        delimited: bool,
    },
    /// A return object plus one member holding [`Dispatcher::staged`],
    /// base64-encoded by the writer.
    ReturnStaged {
        object: Map<String, Value>,
        member: String,
    },
    Error {
        class: ErrorClass,
        desc: String,
    },
    /// Commands with `success-response: false` say nothing on success.
    Nothing,
}

impl Answer {
    fn error(desc: impl Into<String>) -> Answer {
        Answer::Error {
            class: ErrorClass::GenericError,
            desc: desc.into(),
        }
    }

    fn value(value: &Value, delimited: bool) -> Answer {
        match to_raw_value(value) {
            Ok(value) => Answer::Return { value, delimited },
            Err(e) => Answer::error(format!("encoding the answer: {e}")),
        }
    }
}

pub struct Dispatcher {
    policy: Policy,
    /// Components load on a thread of their own, so the agent answers
    /// `guest-sync` while they load; the first request that needs them waits.
    loader: Loader,
    resources: HostResources,
    /// Bulk bytes a command staged for its answer (reused between calls).
    staged: Vec<u8>,
}

/// The largest reply a component may return as JSON text (bulk data goes
/// through the staged member instead). The text is checked, not parsed
/// into a tree, so a hostile reply cannot blow up in the host.
const MAX_REPLY: usize = 16 << 20;
/// A reply that gets a staged member is parsed to add it: keep it small.
const MAX_STAGED_REPLY: usize = 64 << 10;
/// The longest error text a component may return.
const MAX_ERROR_DESC: usize = 64 << 10;

/// Above this, a staged buffer is released after use rather than kept for
/// the next call, so one 48 MiB read does not pin its memory forever.
const STAGED_KEEP: usize = 8 << 20;

impl Dispatcher {
    pub fn new(
        policy: Policy,
        files: FileTable,
        freeze: Arc<Mutex<FreezeState>>,
        loader: Loader,
    ) -> Dispatcher {
        Dispatcher {
            policy,
            loader,
            resources: HostResources {
                files: Arc::new(Mutex::new(files)),
                freeze,
            },
            staged: Vec::new(),
        }
    }

    fn freeze_state(&self) -> std::sync::MutexGuard<'_, FreezeState> {
        self.resources
            .freeze
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The bytes of the last [`Answer::ReturnStaged`].
    pub fn staged(&self) -> &[u8] {
        &self.staged
    }

    /// Drops a large staged buffer once its answer has been written.
    pub fn release_staged(&mut self) {
        if self.staged.capacity() > STAGED_KEEP {
            self.staged = Vec::new();
        }
    }

    pub fn dispatch(&mut self, request: &Request) -> Answer {
        let name = request.execute.as_str();
        let Some(spec) = commands::find(name) else {
            return Answer::Error {
                class: ErrorClass::CommandNotFound,
                desc: format!("The command {name} has not been found"),
            };
        };
        if let Err(reason) = self.enabled(spec) {
            return Answer::Error {
                class: ErrorClass::CommandNotFound,
                desc: format!("Command {name} has been disabled: {reason}"),
            };
        }
        let arguments = match &request.arguments {
            Some(map) if !map.is_empty() => match serde_json::to_string(map) {
                Ok(text) => text,
                Err(e) => return Answer::error(format!("encoding arguments: {e}")),
            },
            _ => "{}".to_string(),
        };
        let answer = match spec.executor {
            Executor::Builtin(builtin) => self.builtin(builtin, &arguments),
            Executor::Component(_) => self.component(spec, &arguments),
        };
        match answer {
            Answer::Return { .. } | Answer::ReturnStaged { .. } if !spec.success_response => {
                Answer::Nothing
            }
            answer => answer,
        }
    }

    /// Whether the policy enables `spec` and, for a component command,
    /// whether its component was linked; the reason if not.
    fn enabled(&mut self, spec: &CommandSpec) -> Result<(), String> {
        if self.policy.command(spec.name).is_none() {
            return Err("the command is not allowed".into());
        }
        // While frozen, only what cannot touch a filesystem (qemu-ga's
        // allow-list, and its text).
        let refused_while_frozen = matches!(
            spec.while_frozen,
            WhileFrozen::Refused | WhileFrozen::Freezes
        );
        if refused_while_frozen && self.freeze_state().is_frozen() {
            return Err("the command is not allowed".into());
        }
        match spec.executor {
            Executor::Builtin(_) => Ok(()),
            Executor::Component(_) => self
                .loader
                .get()
                .and_then(|sandbox| sandbox.availability(spec.name))
                .map_err(str::to_string),
        }
    }

    /// Lets the components load now (the agent's first answers are out).
    pub fn start_loading(&mut self) {
        self.loader.start();
    }

    /// The client or the host side is gone: nothing will come for a while,
    /// so the watchdog drops the wake-up it kept for the last call (kept
    /// while calls come, so that back-to-back calls cost it nothing).
    pub fn session_ended(&mut self) {
        if let Some(sandbox) = self.loader.loaded() {
            sandbox.settle();
        }
    }

    fn builtin(&mut self, builtin: Builtin, arguments: &str) -> Answer {
        let parsed = Args::parse(arguments).and_then(|mut args| {
            let id = match builtin {
                Builtin::Sync | Builtin::SyncDelimited => Some(args.int("id")?),
                Builtin::Ping | Builtin::Info | Builtin::FsfreezeStatus => None,
            };
            args.finish()?;
            Ok(id)
        });
        let id = match parsed {
            Ok(id) => id,
            Err(desc) => return Answer::error(desc),
        };
        match builtin {
            Builtin::Sync | Builtin::SyncDelimited => {
                Answer::value(&json!(id), builtin == Builtin::SyncDelimited)
            }
            Builtin::Ping => {
                tracing::debug!("guest-ping called");
                Answer::value(&json!({}), false)
            }
            Builtin::Info => {
                let info = self.info();
                Answer::value(&info, false)
            }
            Builtin::FsfreezeStatus => {
                let status = if self.freeze_state().is_frozen() {
                    "frozen"
                } else {
                    "thawed"
                };
                Answer::value(&json!(status), false)
            }
        }
    }

    /// `guest-info`: every command, last-defined first as in qemu-ga, with
    /// `enabled` as the policy and the component loader decided.
    fn info(&mut self) -> Value {
        let supported: Vec<Value> = commands::CATALOGUE
            .iter()
            .rev()
            .map(|spec| {
                json!({
                    "enabled": self.enabled(spec).is_ok(),
                    "name": spec.name,
                    "success-response": spec.success_response,
                })
            })
            .collect();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "supported_commands": supported,
        })
    }

    fn component(&mut self, spec: &CommandSpec, arguments: &str) -> Answer {
        let mut staged = std::mem::take(&mut self.staged);
        let result = match self.loader.get() {
            Ok(sandbox) => sandbox.call(spec.name, arguments, &self.resources, &mut staged),
            Err(reason) => Err(CallError::Command(reason.to_string())),
        };
        self.staged = staged;
        // The frozen state follows what the host saw the call do.
        match (spec.while_frozen, &result) {
            (WhileFrozen::Thaws, Ok(_)) => self.freeze_state().thaw_completed(),
            (WhileFrozen::Freezes | WhileFrozen::Thaws, _) => {
                self.freeze_state().unmark_if_thawed();
            }
            (WhileFrozen::Refused | WhileFrozen::Allowed, _) => {}
        }
        let answer = match result {
            Ok(reply) => checked_reply(spec.name, reply),
            Err(e) => Answer::error(call_error_desc(spec.name, e)),
        };
        if !matches!(answer, Answer::ReturnStaged { .. }) {
            self.release_staged();
        }
        answer
    }
}

/// The component is untrusted: its reply is checked, never passed through
/// unseen, and never parsed into more than a small tree.
fn checked_reply(command: &str, reply: Reply) -> Answer {
    let invalid = |why: &str| Answer::error(format!("{command}: its component returned {why}"));
    match reply.staged_member {
        None => {
            if reply.json.len() > MAX_REPLY {
                return invalid("a reply larger than 16 MiB");
            }
            // Inside valid JSON a raw line break can only be whitespace, but
            // the answer must stay on one line.
            if reply.json.contains(['\n', '\r']) {
                return invalid("a reply spanning several lines");
            }
            match RawValue::from_string(reply.json) {
                Ok(value) => Answer::Return {
                    value,
                    delimited: false,
                },
                Err(e) => invalid(&format!("invalid JSON: {e}")),
            }
        }
        Some(member) => {
            if reply.json.len() > MAX_STAGED_REPLY {
                return invalid("a reply larger than 64 KiB with a staged member");
            }
            match serde_json::from_str::<Value>(&reply.json) {
                Ok(Value::Object(object)) if !object.contains_key(&member) => {
                    Answer::ReturnStaged { object, member }
                }
                Ok(_) => invalid(&format!(
                    "a staged member '{member}' on a value that is not an object without it"
                )),
                Err(e) => invalid(&format!("invalid JSON: {e}")),
            }
        }
    }
}

fn call_error_desc(command: &str, error: CallError) -> String {
    match error {
        CallError::Command(mut desc) => {
            if desc.len() > MAX_ERROR_DESC {
                desc.truncate(desc.floor_char_boundary(MAX_ERROR_DESC));
            }
            desc
        }
        CallError::Trap(trap) => format!("{command} failed: its component trapped: {trap}"),
        CallError::Start(why) => format!("{command} failed: its component could not start: {why}"),
        CallError::Timeout(limit) => format!(
            "{command} failed: its component exceeded the time limit of {} ms",
            limit.as_millis()
        ),
        CallError::MemoryLimit(mib) => {
            format!("{command} failed: its component exceeded the memory limit of {mib} MiB")
        }
    }
}

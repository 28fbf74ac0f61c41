//! The catalogue of commands sandga implements: each command's name, whether
//! it answers on success, and where it runs. Runtime-owned commands are the
//! protocol's own (sync, ping, info); every other command runs in a component.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    SyncDelimited,
    Sync,
    Ping,
    Info,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executor {
    Builtin(Builtin),
    /// The component (a crate in `guest-commands/`) that implements it.
    Component(&'static str),
}

#[derive(Debug)]
pub struct CommandSpec {
    pub name: &'static str,
    /// qemu-ga's `success-response`: false means nothing is sent on success.
    pub success_response: bool,
    pub executor: Executor,
}

const fn builtin(name: &'static str, which: Builtin) -> CommandSpec {
    CommandSpec {
        name,
        success_response: true,
        executor: Executor::Builtin(which),
    }
}

const fn component(name: &'static str, component: &'static str) -> CommandSpec {
    CommandSpec {
        name,
        success_response: true,
        executor: Executor::Component(component),
    }
}

/// In qemu-ga's schema order; `guest-info` lists them in reverse, as qemu-ga does.
pub const CATALOGUE: &[CommandSpec] = &[
    builtin("guest-sync-delimited", Builtin::SyncDelimited),
    builtin("guest-sync", Builtin::Sync),
    builtin("guest-ping", Builtin::Ping),
    component("guest-get-time", "time"),
    component("guest-set-time", "set_time"),
    builtin("guest-info", Builtin::Info),
    component("guest-file-open", "file"),
    component("guest-file-close", "file"),
    component("guest-file-read", "file"),
    component("guest-file-write", "file"),
    component("guest-file-seek", "file"),
    component("guest-file-flush", "file"),
    component("guest-network-get-interfaces", "network"),
    component("guest-get-vcpus", "vcpus"),
    component("guest-set-vcpus", "set_vcpus"),
];

pub fn find(name: &str) -> Option<&'static CommandSpec> {
    CATALOGUE.iter().find(|spec| spec.name == name)
}

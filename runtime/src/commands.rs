//! The catalogue of commands sandga implements: each command's name, whether
//! it answers on success, and where it runs. Runtime-owned commands are the
//! protocol's own (sync, ping, info) and the agent's frozen state
//! (fsfreeze-status); every other command runs in a component.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    SyncDelimited,
    Sync,
    Ping,
    Info,
    FsfreezeStatus,
}

/// A command's part in the frozen state (filesystems frozen by the agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhileFrozen {
    /// Refused while frozen: it might touch a frozen filesystem.
    Refused,
    /// Safe while frozen (qemu-ga's allow-list).
    Allowed,
    /// Freezes; refused while frozen. Leaves the agent frozen if it froze
    /// anything.
    Freezes,
    /// Thaws; allowed while frozen. Its success ends the frozen state.
    Thaws,
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
    pub while_frozen: WhileFrozen,
}

/// The runtime's own commands touch no filesystem: all are safe while frozen.
const fn builtin(name: &'static str, which: Builtin) -> CommandSpec {
    CommandSpec {
        name,
        success_response: true,
        executor: Executor::Builtin(which),
        while_frozen: WhileFrozen::Allowed,
    }
}

const fn component(name: &'static str, component: &'static str) -> CommandSpec {
    CommandSpec {
        name,
        success_response: true,
        executor: Executor::Component(component),
        while_frozen: WhileFrozen::Refused,
    }
}

const fn freezing(name: &'static str, component: &'static str, role: WhileFrozen) -> CommandSpec {
    CommandSpec {
        while_frozen: role,
        ..self::component(name, component)
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
    CommandSpec {
        success_response: false,
        ..component("guest-shutdown", "shutdown")
    },
    component("guest-file-open", "file"),
    component("guest-file-close", "file"),
    component("guest-file-read", "file"),
    component("guest-file-write", "file"),
    component("guest-file-seek", "file"),
    component("guest-file-flush", "file"),
    builtin("guest-fsfreeze-status", Builtin::FsfreezeStatus),
    freezing("guest-fsfreeze-freeze", "freeze", WhileFrozen::Freezes),
    freezing("guest-fsfreeze-freeze-list", "freeze", WhileFrozen::Freezes),
    freezing("guest-fsfreeze-thaw", "freeze", WhileFrozen::Thaws),
    component("guest-fstrim", "fstrim"),
    component("guest-network-get-interfaces", "network"),
    component("guest-get-vcpus", "vcpus"),
    component("guest-set-vcpus", "set_vcpus"),
];

pub fn find(name: &str) -> Option<&'static CommandSpec> {
    CATALOGUE.iter().find(|spec| spec.name == name)
}

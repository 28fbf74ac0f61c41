//! The policy file: which commands run, which host interfaces each command's
//! component is linked with, which directories file commands may touch, and
//! the limits of every call. Deny by default: a command the policy does not
//! name is disabled.
//!
//! Loading checks everything it can (unknown keys, commands, grants, bad
//! paths) and reports the file, line and reason; a bad policy stops the
//! daemon before it serves anything.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::commands::{self, Executor};

/// The policy compiled into the binary, used when `--policy` is absent.
pub const DEFAULT_POLICY: &str = include_str!("../../policies/default.toml");

/// A host interface a policy can grant to a command's component: one WIT
/// interface of `sandga:agent`, named in policy files as in the WIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    Files,
    Clock,
    /// Setting the clocks; `Clock` only reads.
    ClockControl,
    Vcpu,
    /// Taking CPUs online and offline; `Vcpu` only reads.
    VcpuControl,
    Net,
    /// The mount table, read-only.
    Mounts,
    /// Freezing and thawing filesystems.
    Fsfreeze,
    /// Discarding unused blocks of filesystems.
    Trim,
    /// Shutting the guest down.
    Power,
}

impl Grant {
    pub const ALL: [Grant; 10] = [
        Grant::Files,
        Grant::Clock,
        Grant::ClockControl,
        Grant::Vcpu,
        Grant::VcpuControl,
        Grant::Net,
        Grant::Mounts,
        Grant::Fsfreeze,
        Grant::Trim,
        Grant::Power,
    ];

    /// The interface's name, in policy files and in `sandga:agent/<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Grant::Files => "files",
            Grant::Clock => "clock",
            Grant::ClockControl => "clock-control",
            Grant::Vcpu => "vcpu",
            Grant::VcpuControl => "vcpu-control",
            Grant::Net => "net",
            Grant::Mounts => "mounts",
            Grant::Fsfreeze => "fsfreeze",
            Grant::Trim => "trim",
            Grant::Power => "power",
        }
    }

    pub fn from_name(name: &str) -> Option<Grant> {
        Grant::ALL.into_iter().find(|grant| grant.name() == name)
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub commands: BTreeMap<String, CommandPolicy>,
    pub directories: Vec<DirectoryGrant>,
    pub components: ComponentSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPolicy {
    /// Host interfaces the component is linked with.
    pub grants: Vec<Grant>,
    pub limits: Limits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: usize,
    pub time_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            time_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryGrant {
    pub path: PathBuf,
    pub access: Access,
}

/// Where components come from: the ones built into the daemon, or `.cwasm`
/// files in a directory, each accepted only if its sha256 is pinned here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentSource {
    pub dir: Option<PathBuf>,
    pub sha256: BTreeMap<String, String>,
}

/// A policy error, with the place it was found.
#[derive(Debug)]
pub struct PolicyError {
    pub origin: String,
    pub line: Option<usize>,
    pub reason: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "policy {}:{line}: {}", self.origin, self.reason),
            None => write!(f, "policy {}: {}", self.origin, self.reason),
        }
    }
}

impl std::error::Error for PolicyError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    commands: BTreeMap<Spanned<String>, RawCommand>,
    #[serde(default)]
    files: RawFiles,
    #[serde(default)]
    components: RawComponents,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    memory_mib: Option<Spanned<u64>>,
    time_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCommand {
    #[serde(default)]
    grants: Vec<Spanned<String>>,
    // The limits' keys, inline (serde's `flatten` would lose their spans).
    memory_mib: Option<Spanned<u64>>,
    time_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFiles {
    #[serde(default)]
    grant: Vec<RawDirectory>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    path: Spanned<String>,
    access: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawComponents {
    dir: Option<Spanned<String>>,
    #[serde(default)]
    sha256: BTreeMap<String, Spanned<String>>,
}

impl Policy {
    /// Loads the policy at `path`, or the built-in default.
    pub fn load(path: Option<&Path>) -> Result<Policy, PolicyError> {
        match path {
            None => Policy::parse(DEFAULT_POLICY, "(built-in default)"),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
                    origin: path.display().to_string(),
                    line: None,
                    reason: format!("cannot read: {e}"),
                })?;
                Policy::parse(&text, &path.display().to_string())
            }
        }
    }

    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let error = |span: Option<std::ops::Range<usize>>, reason: String| PolicyError {
            origin: origin.to_string(),
            line: span.map(|s| line_of(text, s.start)),
            reason,
        };
        let raw: RawPolicy =
            toml::from_str(text).map_err(|e| error(e.span(), e.message().to_string()))?;

        let defaults = raw.limits.apply(Limits::default(), &error)?;
        let mut commands = BTreeMap::new();
        for (name, command) in raw.commands {
            let span = name.span();
            let name = name.into_inner();
            let Some(spec) = commands::find(&name) else {
                return Err(error(Some(span), format!("unknown command '{name}'")));
            };
            let mut grants = Vec::new();
            for grant in command.grants {
                let grant_span = grant.span();
                let grant = grant.into_inner();
                if matches!(spec.executor, Executor::Builtin(_)) {
                    return Err(error(
                        Some(grant_span),
                        format!("{name} runs in the runtime itself and takes no grants"),
                    ));
                }
                let Some(grant) = Grant::from_name(&grant) else {
                    let known: Vec<&str> = Grant::ALL.iter().map(|g| g.name()).collect();
                    return Err(error(
                        Some(grant_span),
                        format!("unknown grant '{grant}' (known: {})", known.join(", ")),
                    ));
                };
                if !grants.contains(&grant) {
                    grants.push(grant);
                }
            }
            if matches!(spec.executor, Executor::Builtin(_))
                && let Some(span) = command
                    .memory_mib
                    .as_ref()
                    .map(Spanned::span)
                    .or_else(|| command.time_ms.as_ref().map(Spanned::span))
            {
                return Err(error(
                    Some(span),
                    format!("{name} runs in the runtime itself and takes no limits"),
                ));
            }
            let limits = RawLimits {
                memory_mib: command.memory_mib,
                time_ms: command.time_ms,
            }
            .apply(defaults, &error)?;
            commands.insert(name, CommandPolicy { grants, limits });
        }

        let mut directories = Vec::new();
        for dir in raw.files.grant {
            let path_span = dir.path.span();
            let path = PathBuf::from(dir.path.into_inner());
            if !path.is_absolute() {
                return Err(error(
                    Some(path_span),
                    format!("granted directory '{}' is not absolute", path.display()),
                ));
            }
            if path
                .components()
                .any(|c| !matches!(c, Component::RootDir | Component::Normal(_)))
            {
                return Err(error(
                    Some(path_span),
                    format!(
                        "granted directory '{}' is not a normalised path",
                        path.display()
                    ),
                ));
            }
            // Paths resolve beneath the grant they start in, with `..` and
            // symlinks allowed inside it: a grant inside another could be
            // reached through the outer one, bypassing its access.
            if let Some(other) = directories.iter().find(|other: &&DirectoryGrant| {
                path.starts_with(&other.path) || other.path.starts_with(&path)
            }) {
                return Err(error(
                    Some(path_span),
                    format!(
                        "granted directory '{}' overlaps granted directory '{}'; grants must not nest",
                        path.display(),
                        other.path.display()
                    ),
                ));
            }
            let access_span = dir.access.span();
            let access = match dir.access.into_inner().as_str() {
                "read" => Access::Read,
                "read-write" => Access::ReadWrite,
                other => {
                    return Err(error(
                        Some(access_span),
                        format!("access '{other}' is neither 'read' nor 'read-write'"),
                    ));
                }
            };
            directories.push(DirectoryGrant { path, access });
        }

        let mut components = ComponentSource::default();
        if let Some(dir) = raw.components.dir {
            let span = dir.span();
            let dir = PathBuf::from(dir.into_inner());
            if !dir.is_absolute() {
                return Err(error(
                    Some(span),
                    format!("component directory '{}' is not absolute", dir.display()),
                ));
            }
            components.dir = Some(dir);
        }
        for (component, digest) in raw.components.sha256 {
            let span = digest.span();
            let known = commands::CATALOGUE
                .iter()
                .any(|spec| matches!(spec.executor, Executor::Component(c) if c == component));
            if !known {
                return Err(error(
                    Some(span),
                    format!("sha256 pinned for '{component}', which is no component"),
                ));
            }
            let digest = digest.into_inner().to_ascii_lowercase();
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(error(
                    Some(span),
                    format!("sha256 of '{component}' is not 64 hex digits"),
                ));
            }
            components.sha256.insert(component, digest);
        }

        Ok(Policy {
            commands,
            directories,
            components,
        })
    }

    pub fn command(&self, name: &str) -> Option<&CommandPolicy> {
        self.commands.get(name)
    }
}

impl RawLimits {
    fn apply(
        self,
        base: Limits,
        error: &impl Fn(Option<std::ops::Range<usize>>, String) -> PolicyError,
    ) -> Result<Limits, PolicyError> {
        let mut limits = base;
        if let Some(mib) = self.memory_mib {
            let max = sandga_engine::MAX_MEMORY_BYTES >> 20;
            let value = *mib.get_ref();
            if value == 0 || value > max as u64 {
                return Err(error(
                    Some(mib.span()),
                    format!("memory-mib must be between 1 and {max}"),
                ));
            }
            limits.memory_bytes = (value as usize) << 20;
        }
        if let Some(ms) = self.time_ms {
            if *ms.get_ref() == 0 {
                return Err(error(Some(ms.span()), "time-ms must be positive".into()));
            }
            limits.time_ms = *ms.get_ref();
        }
        Ok(limits)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()
        .get(..end)
        .map_or(0, |prefix| prefix.iter().filter(|&&b| b == b'\n').count())
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> PolicyError {
        match Policy::parse(text, "t.toml") {
            Ok(_) => panic!("policy unexpectedly valid:\n{text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn shipped_policies_are_valid() {
        for (name, text) in [
            ("default", DEFAULT_POLICY),
            (
                "qemu-ga-compat",
                include_str!("../../policies/qemu-ga-compat.toml"),
            ),
        ] {
            if let Err(e) = Policy::parse(text, name) {
                panic!("{e}");
            }
        }
    }

    #[test]
    fn default_policy_enables_runtime_commands_and_grants_no_directory() {
        let policy = Policy::parse(DEFAULT_POLICY, "default").unwrap();
        for name in [
            "guest-sync",
            "guest-sync-delimited",
            "guest-ping",
            "guest-info",
        ] {
            assert!(policy.command(name).is_some(), "{name}");
        }
        assert!(policy.command("guest-file-write").is_none());
        assert!(policy.directories.is_empty());
    }

    #[test]
    fn unknown_command_is_reported_with_its_line() {
        let e = parse_err("[commands.guest-ping]\n\n[commands.guest-frobnicate]\n");
        assert_eq!(e.line, Some(3));
        assert!(
            e.reason.contains("unknown command 'guest-frobnicate'"),
            "{e}"
        );
        assert!(e.to_string().starts_with("policy t.toml:3: "), "{e}");
    }

    #[test]
    fn unknown_key_and_grant_and_access_are_errors() {
        let e = parse_err("[commands.guest-file-open]\ngrants = [\"files\"]\nbogus = 1\n");
        assert_eq!(e.line, Some(3), "{e}");
        let e = parse_err("[commands.guest-file-open]\ngrants = [\"network\"]\n");
        assert!(e.reason.contains("unknown grant 'network'"), "{e}");
        let e = parse_err("[[files.grant]]\npath = \"/srv\"\naccess = \"write\"\n");
        assert_eq!(e.line, Some(3));
        let e = parse_err("[[files.grant]]\npath = \"srv\"\naccess = \"read\"\n");
        assert!(e.reason.contains("not absolute"), "{e}");
        let e = parse_err("[commands.guest-ping]\ngrants = [\"clock\"]\n");
        assert!(e.reason.contains("takes no grants"), "{e}");
    }

    #[test]
    fn syntax_errors_carry_a_line() {
        let e = parse_err("[commands.guest-ping]\n\nthis is not toml\n");
        assert_eq!(e.line, Some(3), "{e}");
    }

    #[test]
    fn limits_inherit_and_override() {
        let policy = Policy::parse(
            "[limits]\ntime-ms = 500\n[commands.guest-get-time]\ngrants = [\"clock\"]\nmemory-mib = 8\n",
            "t",
        )
        .unwrap();
        let limits = policy.command("guest-get-time").unwrap().limits;
        assert_eq!(limits.time_ms, 500);
        assert_eq!(limits.memory_bytes, 8 << 20);
        let e = parse_err("[limits]\nmemory-mib = 100000\n");
        assert!(e.reason.contains("memory-mib"), "{e}");
    }

    #[test]
    fn grants_must_be_normalised_and_must_not_nest() {
        let grant = |path: &str| format!("[[files.grant]]\npath = \"{path}\"\naccess = \"read\"\n");
        let e = parse_err(&(grant("/srv") + &grant("/srv/ro")));
        assert!(e.reason.contains("must not nest"), "{e}");
        assert_eq!(e.line, Some(5));
        let e = parse_err(&(grant("/srv/ro") + &grant("/srv")));
        assert!(e.reason.contains("must not nest"), "{e}");
        let e = parse_err(&(grant("/srv") + &grant("/srv")));
        assert!(e.reason.contains("must not nest"), "{e}");
        let e = parse_err(&grant("/srv/../etc"));
        assert!(e.reason.contains("normalised"), "{e}");
        assert!(Policy::parse(&(grant("/srv") + &grant("/srvx")), "t").is_ok());
    }

    #[test]
    fn pins_must_be_sha256() {
        let e = parse_err("[components.sha256]\nfile = \"abc\"\n");
        assert!(e.reason.contains("64 hex digits"), "{e}");
        let e = parse_err(&format!(
            "[components.sha256]\nfiel = \"{}\"\n",
            "0".repeat(64)
        ));
        assert!(e.reason.contains("no component"), "{e}");
        let e = parse_err("[commands.guest-ping]\ntime-ms = 5\n");
        assert!(e.reason.contains("takes no limits"), "{e}");
    }
}

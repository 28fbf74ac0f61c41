//! Command-line options, spelled as qemu-ga spells them (short options may
//! be bundled or take their value attached; long ones take `=value` or the
//! next argument), plus sandga's own `--policy` and `--components`.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::channel::Method;

pub const USAGE: &str = "\
Usage: sandga [-m <method> -p <path>] [<options>]
A sandboxed QEMU Guest Agent: qemu-ga's protocol, each command in a WebAssembly component.

  -m, --method      transport method: one of unix-listen, virtio-serial (default),
                    isa-serial, or vsock-listen
  -p, --path        device/socket path (virtio-serial default:
                    /dev/virtio-ports/org.qemu.guest_agent.0, isa-serial default:
                    /dev/ttyS0); for vsock-listen, CID:PORT
  -t, --statedir    directory for the agent's state (default: /var/run)
  -l, --logfile     log to this file (default: stderr)
  -f, --pidfile     write the agent's pid to this file, removed on exit
  -v, --verbose     log extra debugging information
  -V, --version     print version information and exit
      --policy      policy file (default: the built-in policy, see policies/default.toml)
      --components  load components from this directory instead of the built-in ones;
                    each must have its sha256 pinned in the policy
  -h, --help        display this help and exit
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub method: Method,
    pub path: Option<String>,
    pub state_dir: PathBuf,
    pub logfile: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
    pub verbose: bool,
    pub policy: Option<PathBuf>,
    pub components: Option<PathBuf>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    Help,
    Version,
}

/// Why the command line was refused, ready to print.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

const UNKNOWN: &str = "Unknown option, try 'sandga --help' for more information.";

/// Options that take a value, by short and long name.
const WITH_VALUE: &[(char, &str)] = &[
    ('m', "method"),
    ('p', "path"),
    ('t', "statedir"),
    ('l', "logfile"),
    ('f', "pidfile"),
];
const FLAGS: &[(char, &str)] = &[('v', "verbose"), ('V', "version"), ('h', "help")];
const LONG_ONLY_WITH_VALUE: &[&str] = &["policy", "components"];

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = args.into_iter().map(|arg| {
        arg.into_string()
            .map_err(|_| UsageError("arguments must be valid UTF-8".into()))
    });
    let mut options = Options {
        method: Method::VirtioSerial,
        path: None,
        state_dir: PathBuf::from("/var/run"),
        logfile: None,
        pidfile: None,
        verbose: false,
        policy: None,
        components: None,
    };
    let mut help = false;
    let mut version = false;

    while let Some(arg) = args.next() {
        let arg = arg?;
        // Each option as (long name, attached value if any).
        let mut pending: Vec<(&str, Option<String>)> = Vec::new();
        if let Some(long) = arg.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (long, None),
            };
            let known = WITH_VALUE
                .iter()
                .chain(FLAGS)
                .map(|(_, long)| *long)
                .chain(LONG_ONLY_WITH_VALUE.iter().copied())
                .find(|known| *known == name)
                .ok_or_else(|| UsageError(UNKNOWN.into()))?;
            pending.push((known, value));
        } else if let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            for (at, c) in shorts.char_indices() {
                if let Some((_, long)) = WITH_VALUE.iter().find(|(short, _)| *short == c) {
                    let rest = shorts.get(at + c.len_utf8()..).unwrap_or_default();
                    pending.push((long, (!rest.is_empty()).then(|| rest.to_string())));
                    break;
                }
                let (_, long) = FLAGS
                    .iter()
                    .find(|(short, _)| *short == c)
                    .ok_or_else(|| UsageError(UNKNOWN.into()))?;
                pending.push((long, None));
            }
        } else {
            return Err(UsageError(format!(
                "unexpected argument '{arg}', try 'sandga --help' for more information."
            )));
        }

        for (name, value) in pending {
            let takes_value = WITH_VALUE.iter().any(|(_, long)| *long == name)
                || LONG_ONLY_WITH_VALUE.contains(&name);
            let value = match (takes_value, value) {
                (true, Some(value)) => Some(value),
                (true, None) => Some(args.next().transpose()?.ok_or_else(|| {
                    UsageError(format!("option '--{name}' requires an argument"))
                })?),
                (false, Some(_)) => {
                    return Err(UsageError(format!(
                        "option '--{name}' doesn't allow an argument"
                    )));
                }
                (false, None) => None,
            };
            let value = value.unwrap_or_default();
            match name {
                "method" => {
                    options.method = Method::parse(&value).ok_or_else(|| {
                        UsageError(format!("unsupported channel method/type: {value}"))
                    })?;
                }
                "path" => options.path = Some(value),
                "statedir" => options.state_dir = PathBuf::from(value),
                "logfile" => options.logfile = Some(PathBuf::from(value)),
                "pidfile" => options.pidfile = Some(PathBuf::from(value)),
                "policy" => options.policy = Some(PathBuf::from(value)),
                "components" => options.components = Some(PathBuf::from(value)),
                "verbose" => options.verbose = true,
                "version" => version = true,
                _ => help = true,
            }
        }
    }
    Ok(if help {
        Command::Help
    } else if version {
        Command::Version
    } else {
        Command::Run(options)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, UsageError> {
        match parse(args.iter().map(OsString::from))? {
            Command::Run(options) => Ok(options),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn qemu_ga_spellings() {
        let o = run(&["-m", "unix-listen", "-p/tmp/s", "--statedir=/tmp/st", "-v"]).unwrap();
        assert_eq!(o.method, Method::UnixListen);
        assert_eq!(o.path.as_deref(), Some("/tmp/s"));
        assert_eq!(o.state_dir, PathBuf::from("/tmp/st"));
        assert!(o.verbose);
        let o = run(&[
            "-vm",
            "vsock-listen",
            "--path",
            "3:1234",
            "--policy",
            "p.toml",
        ])
        .unwrap();
        assert_eq!(o.method, Method::VsockListen);
        assert_eq!(o.policy, Some(PathBuf::from("p.toml")));
        assert_eq!(parse([OsString::from("-V")]), Ok(Command::Version));
        assert_eq!(parse([OsString::from("--help")]), Ok(Command::Help));
    }

    #[test]
    fn bad_command_lines() {
        assert_eq!(run(&["-x"]), Err(UsageError(UNKNOWN.into())));
        assert_eq!(run(&["--bogus"]), Err(UsageError(UNKNOWN.into())));
        assert!(
            run(&["-m", "carrier-pigeon"])
                .unwrap_err()
                .0
                .contains("unsupported channel")
        );
        assert!(run(&["-p"]).unwrap_err().0.contains("requires an argument"));
        assert!(
            run(&["--verbose=yes"])
                .unwrap_err()
                .0
                .contains("doesn't allow")
        );
        assert!(run(&["stray"]).is_err());
    }
}

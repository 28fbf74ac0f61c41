//! The plumbing every command component shares: the reply type, the table
//! from command names to handlers, and the wit-bindgen glue.

use crate::Args;

/// `sandga:agent/command.reply`, mirrored so command logic builds natively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The `return` value as JSON text.
    pub json: String,
    /// The member the host fills with the bytes it staged, if any.
    pub staged_member: Option<&'static str>,
}

impl Reply {
    pub fn json(json: String) -> Reply {
        Reply {
            json,
            staged_member: None,
        }
    }
}

/// One command: its arguments in, its reply or qemu-ga's `desc` out.
pub type Handler<H> = fn(&mut H, Args) -> Result<Reply, String>;

/// Runs command `name` of component `component` from its `handlers`; an
/// error is the `desc` of qemu-ga's `GenericError`.
pub fn dispatch<H>(
    host: &mut H,
    component: &str,
    handlers: &[(&str, Handler<H>)],
    name: &str,
    arguments: &str,
) -> Result<Reply, String> {
    let Some((_, handler)) = handlers.iter().find(|(command, _)| *command == name) else {
        return Err(format!("component '{component}' does not implement {name}"));
    };
    handler(host, Args::parse(arguments)?)
}

/// Exports the component: implements the generated `Guest` trait with
/// `$run(&mut $host, name, arguments)`, the component's `run` over its real
/// host. Expand it inside the module that invoked `wit_bindgen::generate!`.
#[macro_export]
macro_rules! export_command {
    ($host:expr, $run:path) => {
        struct Component;

        impl exports::sandga::agent::command::Guest for Component {
            fn run(
                name: String,
                arguments: String,
            ) -> Result<
                exports::sandga::agent::command::Reply,
                exports::sandga::agent::command::CommandError,
            > {
                $run(&mut $host, &name, &arguments)
                    .map(|reply| exports::sandga::agent::command::Reply {
                        json: reply.json,
                        staged_member: reply.staged_member.map(str::to_owned),
                    })
                    .map_err(|desc| exports::sandga::agent::command::CommandError { desc })
            }
        }

        export!(Component);
    };
}

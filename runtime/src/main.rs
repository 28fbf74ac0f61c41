use std::process::ExitCode;

use sandga::cli::{self, Command};

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!(
                "sandga {} (QEMU Guest Agent compatible)",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", e.0);
            return ExitCode::FAILURE;
        }
    };

    if let Err(e) = sandga::logging::init(options.verbose, options.logfile.as_deref()) {
        eprintln!("{e:#}");
        return ExitCode::FAILURE;
    }

    match sandga::daemon::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

use std::fs::OpenOptions;
use std::process::ExitCode;
use std::sync::Mutex;

use sandga::cli::{self, Command};
use tracing::Level;

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

    let level = if options.verbose {
        Level::DEBUG
    } else {
        Level::WARN
    };
    let logging = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false);
    match &options.logfile {
        Some(path) => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(file) => logging
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .init(),
            Err(e) => {
                eprintln!("error opening logfile {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => logging.with_writer(std::io::stderr).init(),
    }

    match sandga::daemon::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

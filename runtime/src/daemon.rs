//! Start-up and shut-down: loads the policy and state, opens the channel,
//! starts the component loader, serves until SIGTERM or SIGINT.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result, bail};
use tokio::signal::unix::{SignalKind, signal};

use crate::agent::Agent;
use crate::channel::Channel;
use crate::cli::Options;
use crate::dispatch::Dispatcher;
use crate::host::FileTable;
use crate::policy::Policy;
use crate::sandbox::Loader;
use crate::state::{FreezeState, HandleCounter};

pub fn run(options: Options) -> Result<()> {
    let path = match (&options.path, options.method.default_path()) {
        (Some(path), _) => path.clone(),
        (None, Some(default)) => default.to_string(),
        (None, None) => bail!("must specify a path for this channel"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("starting the event loop")?;
    runtime.block_on(async {
        // First, so that a SIGTERM during start-up is an orderly exit too.
        // The handlers only record the signal; the loop below acts on it.
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;

        let policy = Policy::load(options.policy.as_deref())?;
        let counter = HandleCounter::load(&options.state_dir)?;
        let freeze = Arc::new(Mutex::new(FreezeState::load(&options.state_dir)?));
        let cwd = std::env::current_dir().context("reading the working directory")?;
        let files = FileTable::new(&policy.directories, cwd, counter)?;
        let loader = Loader::spawn(policy.clone(), options.components.clone())?;
        let channel = Channel::open(options.method, &path)
            .context("failed to initialize guest agent channel")?;
        if let Some(pidfile) = &options.pidfile {
            write_pidfile(pidfile)?;
        }
        tracing::info!("sandga {} serving on {path}", env!("CARGO_PKG_VERSION"));
        let mut agent = Agent::new(Dispatcher::new(policy, files, Arc::clone(&freeze), loader));
        let frozen = || {
            freeze
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_frozen()
        };
        let serving = agent.run(channel);
        tokio::pin!(serving);
        // As qemu-ga: while filesystems are frozen, SIGTERM and SIGINT are
        // ignored; the agent must stay to thaw them.
        let served = loop {
            tokio::select! {
                result = &mut serving => break result,
                _ = terminate.recv() => if !frozen() { break Ok(()) },
                _ = interrupt.recv() => if !frozen() { break Ok(()) },
            }
        };
        if let Some(pidfile) = &options.pidfile {
            let _ = std::fs::remove_file(pidfile);
        }
        served
    })
}

fn write_pidfile(path: &Path) -> Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing pidfile {}", path.display()))
}

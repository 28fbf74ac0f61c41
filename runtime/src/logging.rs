//! The log: stderr or qemu-ga's `-l` file, through `tracing`. While the
//! agent has filesystems frozen it writes nothing, as qemu-ga: the log may
//! live on a frozen filesystem, and a write there would block the agent
//! until someone else thawed it.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use anyhow::{Context, Result};
use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

static SUSPENDED: AtomicBool = AtomicBool::new(false);

/// Stops (or resumes) writing log lines; lines meanwhile are dropped.
pub fn suspend(suspended: bool) {
    SUSPENDED.store(suspended, Ordering::SeqCst);
}

pub fn init(verbose: bool, logfile: Option<&Path>) -> Result<()> {
    let level = if verbose { Level::DEBUG } else { Level::WARN };
    let logging = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false);
    match logfile {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("error opening logfile {}", path.display()))?;
            logging
                .with_ansi(false)
                .with_writer(Gated(Mutex::new(file)))
                .init();
        }
        None => logging.with_writer(Gated(Mutex::new(io::stderr()))).init(),
    }
    Ok(())
}

/// A writer that drops what it is given while logging is suspended.
struct Gated<W>(Mutex<W>);

struct GatedWriter<'a, W>(Option<MutexGuard<'a, W>>);

impl<'a, W: Write + 'a> MakeWriter<'a> for Gated<W> {
    type Writer = GatedWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        if SUSPENDED.load(Ordering::SeqCst) {
            GatedWriter(None)
        } else {
            GatedWriter(Some(self.0.lock().unwrap_or_else(PoisonError::into_inner)))
        }
    }
}

impl<W: Write> Write for GatedWriter<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Some(writer) => writer.write(bytes),
            None => Ok(bytes.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Some(writer) => writer.flush(),
            None => Ok(()),
        }
    }
}

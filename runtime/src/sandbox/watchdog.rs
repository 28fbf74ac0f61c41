//! Enforces per-call time limits by bumping the engine's epoch when a call
//! overruns. The thread sleeps until the running call's deadline and is not
//! woken at all while the agent is idle: no periodic ticker, so an idle agent
//! costs no CPU.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use wasmtime::{Engine, EngineWeak};

#[derive(Default)]
struct Shared {
    /// The running call's deadline, if a call is running.
    deadline: Mutex<Slot>,
    wake: Condvar,
}

#[derive(Default)]
struct Slot {
    deadline: Option<Instant>,
    /// When the thread will look again by itself (`None`: only when woken).
    /// Arming wakes it only if the new deadline comes sooner, so a stream of
    /// calls costs no wake-ups.
    wakes_at: Option<Instant>,
}

pub struct Watchdog {
    shared: Arc<Shared>,
}

/// Disarms the watchdog when the call ends, however it ends.
pub struct Armed<'a>(&'a Watchdog);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.0.slot().deadline = None;
    }
}

impl Watchdog {
    pub fn start(engine: &Engine) -> std::io::Result<Watchdog> {
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let engine = engine.weak();
        std::thread::Builder::new()
            .name("sandga-watchdog".into())
            .spawn(move || run(&thread_shared, &engine))?;
        Ok(Watchdog { shared })
    }

    /// Arms the deadline for a call whose store has an epoch deadline of one
    /// tick: the call traps once the epoch moves.
    pub fn arm(&self, limit: Duration) -> Armed<'_> {
        let mut slot = self.slot();
        let deadline = Instant::now() + limit;
        slot.deadline = Some(deadline);
        if slot.wakes_at.is_none_or(|at| deadline < at) {
            self.shared.wake.notify_one();
        }
        Armed(self)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.shared
            .deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn run(shared: &Shared, engine: &EngineWeak) {
    let mut slot = shared
        .deadline
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    loop {
        match slot.deadline {
            None => {
                slot.wakes_at = None;
                slot = shared
                    .wake
                    .wait(slot)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    let Some(engine) = engine.upgrade() else {
                        return;
                    };
                    engine.increment_epoch();
                    slot.deadline = None;
                } else {
                    slot.wakes_at = Some(deadline);
                    let wait = deadline.saturating_duration_since(now);
                    slot = shared
                        .wake
                        .wait_timeout(slot, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }
}

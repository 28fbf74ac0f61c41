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

/// A handle on the watchdog thread; clones share it.
#[derive(Clone)]
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

    /// Cancels the wake-up the thread still has for a call that is over
    /// (disarming leaves it, so back-to-back calls cost no wake-ups): the
    /// thread wakes now, as the agent goes idle, instead of later in an
    /// idle agent.
    pub fn settle(&self) {
        let slot = self.slot();
        if slot.deadline.is_none() && slot.wakes_at.is_some() {
            self.shared.wake.notify_one();
        }
    }

    /// Runs `operation` with the running call's deadline stopped: the time
    /// it takes is added to the deadline. A deadline that already fired
    /// stays fired.
    pub fn paused<R>(&self, operation: impl FnOnce() -> R) -> R {
        let remaining = {
            let mut slot = self.slot();
            let remaining = slot
                .deadline
                .map(|deadline| deadline.saturating_duration_since(Instant::now()));
            slot.deadline = None;
            remaining
        };
        let result = operation();
        if let Some(remaining) = remaining {
            let mut slot = self.slot();
            let deadline = Instant::now() + remaining;
            slot.deadline = Some(deadline);
            if slot.wakes_at.is_none_or(|at| deadline < at) {
                self.shared.wake.notify_one();
            }
        }
        result
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

#[cfg(test)]
mod tests {
    use super::*;

    fn deadline(watchdog: &Watchdog) -> Option<Instant> {
        watchdog.slot().deadline
    }

    #[test]
    fn time_spent_paused_is_added_to_the_deadline() {
        let engine = Engine::default();
        let watchdog = Watchdog::start(&engine).expect("watchdog");
        let _armed = watchdog.arm(Duration::from_millis(100));
        let before = deadline(&watchdog).expect("armed");
        watchdog.paused(|| {
            assert_eq!(deadline(&watchdog), None, "stopped while paused");
            std::thread::sleep(Duration::from_millis(300));
        });
        let after = deadline(&watchdog).expect("armed again after the pause");
        assert!(
            after >= before + Duration::from_millis(300),
            "the deadline moved by the paused time"
        );
    }

    #[test]
    fn without_a_pause_the_deadline_fires() {
        let engine = Engine::default();
        let watchdog = Watchdog::start(&engine).expect("watchdog");
        let _armed = watchdog.arm(Duration::from_millis(20));
        let give_up = Instant::now() + Duration::from_secs(10);
        while deadline(&watchdog).is_some() {
            assert!(Instant::now() < give_up, "the watchdog never fired");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

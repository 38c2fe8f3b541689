//! `GWCTL_TIMINGS=1`: how long each phase of a command took, on stderr, as
//! `timing: <phase>: 0.123 s (at 0.456 s)`. For profiling (`bench/sync.sh`
//! shows where a slow diff spends its time); silent otherwise.

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

struct Clock {
    start: Instant,
    last: Mutex<Instant>,
}

fn clock() -> Option<&'static Clock> {
    static CLOCK: OnceLock<Option<Clock>> = OnceLock::new();
    CLOCK
        .get_or_init(|| {
            let enabled = std::env::var_os("GWCTL_TIMINGS").is_some_and(|v| !v.is_empty());
            enabled.then(|| {
                let now = Instant::now();
                Clock {
                    start: now,
                    last: Mutex::new(now),
                }
            })
        })
        .as_ref()
}

/// Start the clock (the first call of any function here does).
pub fn start() {
    clock();
}

/// The phase that just ended: its time since the previous mark.
pub fn mark(phase: &str) {
    let Some(clock) = clock() else {
        return;
    };
    let now = Instant::now();
    let mut last = clock.last.lock().unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "timing: {phase}: {:.3} s (at {:.3} s)",
        now.duration_since(*last).as_secs_f64(),
        now.duration_since(clock.start).as_secs_f64()
    );
    *last = now;
}

/// A moment inside a phase (from a worker thread, say), without ending it.
pub fn note(what: &str) {
    let Some(clock) = clock() else {
        return;
    };
    eprintln!(
        "timing: {what} (at {:.3} s)",
        clock.start.elapsed().as_secs_f64()
    );
}

//! On a terminal, a spinner on stderr naming the phase gwctl is in
//! (`reading the files`, `building the files`, `sending the configuration`,
//! ...) once that phase has taken more than a second, so a large diff or
//! sync does not look hung. Nothing is drawn when stderr is not a terminal
//! (scripts, CI, `bench/`), and the spinner is cleared before gwctl prints
//! anything, so output is the same byte for byte either way.
//!
//! [`phase`] starts a phase (ending the previous one); [`clear`] removes the
//! spinner for good, before results or errors are printed; [`suspend`]
//! prints a line (a warning) without tearing the spinner.

use std::io::IsTerminal;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long a phase runs before the spinner shows it.
const SHOW_AFTER: Duration = Duration::from_secs(1);
/// How often the watcher looks at the current phase.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// The phase in progress and the spinner, once shown.
struct Progress {
    phase: Option<(&'static str, Instant)>,
    spinner: Option<ProgressBar>,
    /// Set by [`clear`]: nothing is shown any more.
    done: bool,
}

/// The shared state, `None` when stderr is not a terminal.
fn progress() -> Option<&'static Mutex<Progress>> {
    static PROGRESS: OnceLock<Option<Mutex<Progress>>> = OnceLock::new();
    PROGRESS
        .get_or_init(|| {
            std::io::stderr().is_terminal().then(|| {
                let _watcher = thread::Builder::new()
                    .name("progress".to_owned())
                    .spawn(watch);
                Mutex::new(Progress {
                    phase: None,
                    spinner: None,
                    done: false,
                })
            })
        })
        .as_ref()
}

fn lock(progress: &Mutex<Progress>) -> MutexGuard<'_, Progress> {
    progress.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// A phase starts (`reading the files`); the previous one ends.
pub fn phase(name: &'static str) {
    let Some(progress) = progress() else {
        return;
    };
    let mut progress = lock(progress);
    if progress.done {
        return;
    }
    progress.phase = Some((name, Instant::now()));
    if let Some(spinner) = &progress.spinner {
        spinner.set_message(name);
        spinner.reset_elapsed();
    }
}

/// Remove the spinner for good: results or an error are printed next.
pub fn clear() {
    let Some(progress) = progress() else {
        return;
    };
    let mut progress = lock(progress);
    progress.done = true;
    progress.phase = None;
    if let Some(spinner) = progress.spinner.take() {
        spinner.finish_and_clear();
    }
}

/// Run `print` (which writes to stderr) with the spinner out of the way.
pub fn suspend<T>(print: impl FnOnce() -> T) -> T {
    let Some(progress) = progress() else {
        return print();
    };
    let progress = lock(progress);
    match &progress.spinner {
        Some(spinner) => spinner.suspend(print),
        None => print(),
    }
}

/// The watcher thread: shows the spinner once a phase has run for
/// [`SHOW_AFTER`]; ends once [`clear`] was called.
fn watch() {
    loop {
        thread::sleep(WATCH_EVERY);
        let Some(progress) = progress() else {
            return;
        };
        let mut progress = lock(progress);
        if progress.done {
            return;
        }
        let Some((name, started)) = progress.phase else {
            continue;
        };
        if progress.spinner.is_none() && started.elapsed() >= SHOW_AFTER {
            progress.spinner = Some(spinner(name, started));
        }
    }
}

fn spinner(name: &'static str, started: Instant) -> ProgressBar {
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        spinner.set_style(style);
    }
    spinner.set_message(name);
    spinner.set_elapsed(started.elapsed());
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}

//! `gwctl`: keep a gateway's configuration equal to decK files kept in git.
//!
//! Exit codes: 0 success, 1 error, 2 differences found by
//! `diff --non-zero-exit-code`.

mod apply;
mod client;
mod commands;
mod error;
mod export;
mod files;
mod names;
mod output;
mod plan;
mod progress;
mod reconcile;
mod secrets;
mod state;
mod timing;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: a diff of a large configuration
/// builds and compares hundreds of thousands of small JSON values, many on
/// the threads that read the gateway's state or validate the files; glibc's
/// per-thread arenas spent a third of gwctl's CPU time allocating, growing
/// their heaps and faulting pages in (see bench/README.md).
///
/// `--features system-allocator` keeps glibc's malloc, for heap profilers
/// that hook it (heaptrack, valgrind's massif; see bench/README.md).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    keep_small_pages();
    timing::start();
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(error) => {
            progress::clear();
            error.print();
            error.exit_code()
        }
    }
}

/// No transparent huge pages for this process: mimalloc asks for them, and
/// on a large diff they added about 40 MB of resident memory (half-used
/// 2 MiB pages) and no speed.
#[cfg(target_os = "linux")]
fn keep_small_pages() {
    // Only an economy: if the kernel refuses, the pages stay as they were.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

#[cfg(not(target_os = "linux"))]
fn keep_small_pages() {}

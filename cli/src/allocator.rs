//! gwctl's memory allocator (mimalloc) and how gwctl tunes it: no
//! transparent huge pages, freed pages given back after 10 ms rather than
//! a second, and at once while a large file's YAML tree is taken apart.
//!
//! `--features system-allocator` keeps glibc's malloc instead, for heap
//! profilers that hook it (heaptrack, valgrind's massif; see
//! bench/README.md); the tuning is then left out.

/// mimalloc instead of glibc's malloc: a diff of a large configuration
/// builds and compares hundreds of thousands of small JSON values, many on
/// the threads that read the gateway's state or validate the files; glibc's
/// per-thread arenas spent a third of gwctl's CPU time allocating, growing
/// their heaps and faulting pages in (see bench/README.md).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tune the allocator for gwctl: small pages, and freed pages given back
/// sooner (see the functions' docs).
pub fn configure() {
    keep_small_pages();
    purge_sooner();
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

/// How long a freed page waits before it goes back to the system (in
/// milliseconds), unless
/// `MIMALLOC_PURGE_DELAY` says otherwise. mimalloc v3 waits a second: a
/// large diff's phases each free what the one before built (the YAML tree,
/// then the entities' fields), so waiting that long kept their pages
/// counted in gwctl's resident memory all the way: at 250k entities a no-op
/// diff peaked at ~420 MB instead of ~396 MB with 10 ms, for ~0.04 s more
/// (bench/README.md).
#[cfg(not(feature = "system-allocator"))]
const PURGE_DELAY_MS: std::ffi::c_long = 10;

#[cfg(not(feature = "system-allocator"))]
fn purge_sooner() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain call into mimalloc's option table, settable while
        // the program runs (this is before any other thread starts).
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

#[cfg(feature = "system-allocator")]
fn purge_sooner() {}

/// mimalloc's `mi_option_purge_delay` (the same in its v2 and v3 headers:
/// the enum keeps retired options in place), in milliseconds.
#[cfg(not(feature = "system-allocator"))]
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Run `work` with freed pages given back to the system at once, then
/// restore the delay as it was.
///
/// For flattening the files: it takes a large file's YAML tree apart entity
/// by entity, freeing the tree's maps as it makes the entities' field
/// lists, and the pages it frees would count in gwctl's resident memory
/// through the build that follows. For a whole run the same setting costs
/// ~0.35 s at 250k entities (a purge for every page validation frees).
#[cfg(not(feature = "system-allocator"))]
pub fn returning_freed_memory<T>(work: impl FnOnce() -> T) -> T {
    // SAFETY: plain calls into mimalloc's option table, which it documents
    // as settable while the program runs; the option and values are valid.
    let delay = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
    let result = work();
    // SAFETY: as above.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, delay) };
    result
}

#[cfg(feature = "system-allocator")]
pub fn returning_freed_memory<T>(work: impl FnOnce() -> T) -> T {
    work()
}

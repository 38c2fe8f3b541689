//! Independent work on every item of a large batch, on all cores.
//!
//! Validating tens of thousands of entities is the largest part of a build,
//! and each entity is independent of the others. The batch is cut into
//! chunks that the threads take in turn, rather than into one half per
//! thread, because items differ in cost (a plugin takes longer than a
//! consumer, and a file lists them in runs). Results come back in item
//! order, so whatever follows stays deterministic. Only the standard
//! library is used: this is all the scheduling a build needs.

use std::sync::{Mutex, PoisonError};
use std::thread;

/// Items a thread takes at a time: large enough that taking them costs
/// nothing next to the work, small enough to keep the threads even.
const CHUNK: usize = 256;

/// More threads than this would only wait on the chunk lock.
const MAX_THREADS: usize = 8;

/// `f` applied to every item (which it may change), the results in item
/// order: for many small items, taken [`CHUNK`] at a time. A batch of one
/// chunk, or a single core, runs on the calling thread alone; a panic in
/// `f` is passed on to the caller.
pub fn map_mut<T, R, F>(items: &mut [T], f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(&mut T) -> R + Sync,
{
    map_chunks(items, CHUNK, f)
}

/// [`map_mut`] for items only read.
pub fn map<'a, T, R, F>(items: &'a [T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&'a T) -> R + Sync,
{
    map_shared(items, CHUNK, f)
}

/// [`map`] for a few large items, each taken on its own.
pub fn map_each<'a, T, R, F>(items: &'a [T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&'a T) -> R + Sync,
{
    map_shared(items, 1, f)
}

fn map_shared<'a, T, R, F>(items: &'a [T], chunk: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&'a T) -> R + Sync,
{
    let mut refs: Vec<&'a T> = items.iter().collect();
    map_chunks(&mut refs, chunk, |item| f(*item))
}

/// [`map_mut`] for a few large items, each taken on its own.
pub fn map_each_mut<T, R, F>(items: &mut [T], f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(&mut T) -> R + Sync,
{
    map_chunks(items, 1, f)
}

fn map_chunks<T, R, F>(items: &mut [T], chunk: usize, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(&mut T) -> R + Sync,
{
    let threads = thread_count(items.len().div_ceil(chunk));
    if threads <= 1 {
        return items.iter_mut().map(f).collect();
    }
    let chunks = Mutex::new(items.chunks_mut(chunk).enumerate());
    let work = || {
        let mut done = Vec::new();
        loop {
            let next = chunks.lock().unwrap_or_else(PoisonError::into_inner).next();
            let Some((number, chunk)) = next else {
                return done;
            };
            done.push((number, chunk.iter_mut().map(&f).collect::<Vec<R>>()));
        }
    };
    let mut parts = thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut parts = work();
        for helper in helpers {
            match helper.join() {
                Ok(more) => parts.extend(more),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        parts
    });
    parts.sort_unstable_by_key(|(number, _)| *number);
    parts.into_iter().flat_map(|(_, results)| results).collect()
}

/// The cores, capped, and no more threads than chunks.
fn thread_count(chunks: usize) -> usize {
    let cores = thread::available_parallelism().map_or(1, usize::from);
    cores.min(MAX_THREADS).min(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_item_order_and_items_are_changed() {
        for len in [0, 1, CHUNK - 1, CHUNK, 10 * CHUNK + 3] {
            let mut items: Vec<usize> = (0..len).collect();
            let doubled = map_mut(&mut items, |item| {
                *item += 1;
                *item * 2
            });
            let expected: Vec<usize> = (1..=len).map(|n| n * 2).collect();
            assert_eq!(doubled, expected, "{len} items");
            assert_eq!(items, (1..=len).collect::<Vec<_>>());
        }
    }

    #[test]
    fn large_items_are_taken_one_by_one() {
        let mut items = vec![3, 1, 2];
        assert_eq!(map_each_mut(&mut items, |item| *item * 10), [30, 10, 20]);
    }

    #[test]
    #[should_panic(expected = "boom")]
    fn a_panic_reaches_the_caller() {
        let mut items: Vec<usize> = (0..4 * CHUNK).collect();
        map_mut(&mut items, |item| {
            assert!(*item != 3 * CHUNK + 1, "boom");
        });
    }
}

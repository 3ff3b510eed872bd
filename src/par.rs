//! Data parallelism, behind the `threads` feature.
//!
//! With `threads` (on by default) the work items are spread over rayon's thread pool; without
//! it (for `wasm32-unknown-unknown`, say) they run one after another on the calling thread.
//! Every caller hands out items that own disjoint outputs and reduces them afterwards in a fixed
//! order, so the numbers are the same bits either way, and for any number of threads.

/// Calls `f` on every item, in parallel when the `threads` feature is on. `min_len` is the
/// smallest number of items a thread takes at a time (rayon's `with_min_len`).
#[cfg(feature = "threads")]
pub fn for_each_mut<T: Send>(items: &mut [T], min_len: usize, f: impl Fn(&mut T) + Sync + Send) {
    use rayon::prelude::*;
    items
        .par_iter_mut()
        .with_min_len(min_len.max(1))
        .for_each(f);
}

/// Calls `f` on every item, in order, on this thread (the `threads` feature is off).
#[cfg(not(feature = "threads"))]
pub fn for_each_mut<T: Send>(items: &mut [T], _min_len: usize, f: impl Fn(&mut T) + Sync + Send) {
    items.iter_mut().for_each(f);
}

/// The number of threads that [`for_each_mut`] may use: rayon's pool size with the `threads`
/// feature, 1 without.
pub fn threads() -> usize {
    #[cfg(feature = "threads")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "threads"))]
    {
        1
    }
}

/// Makes the global pool `n` threads wide. It can be set once per process, before any parallel
/// work; the error says why not otherwise.
#[cfg(feature = "threads")]
pub fn set_threads(n: usize) -> Result<(), String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| e.to_string())
}

/// Runs `f` on a pool of its own with `n` threads (the figures of `mnist bench` at 1 thread and
/// at all of them, in one process). Inside `f`, [`for_each_mut`] and [`threads`] use that pool.
#[cfg(feature = "threads")]
pub fn with_threads<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> Result<R, String> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(pool.install(f))
}

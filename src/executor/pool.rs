//! The persistent thread pool every forward pass runs in.

use std::sync::OnceLock;

/// Upper bound on worker threads, as a multiple of the available cores:
/// more threads than this only add scheduling cost.
const MAX_THREADS_PER_CORE: usize = 4;

/// Number of worker threads requested: `OMP_NUM_THREADS` (MXNet's
/// convention) if it is a positive integer, else the number of available
/// cores; at most `MAX_THREADS_PER_CORE` threads per core.
pub fn thread_count() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let requested = std::env::var("OMP_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(cores);
    let limit = cores * MAX_THREADS_PER_CORE;
    if requested > limit {
        log::warn!("OMP_NUM_THREADS={requested} exceeds {limit} ({MAX_THREADS_PER_CORE} per core); using {limit}");
    }
    requested.min(limit)
}

/// Returns the process-wide pool, created on first use.
pub fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = thread_count();
        log::debug!("starting a thread pool of {threads} threads");
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("mxnet-int8-{i}"))
            .build()
            .unwrap_or_else(|e| {
                log::warn!("cannot start {threads} threads ({e}); running on one thread");
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .expect("a one-thread pool needs no extra OS threads beyond one")
            })
    })
}

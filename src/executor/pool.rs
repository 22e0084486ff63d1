//! The persistent thread pool every forward pass runs in.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

/// Number of forward passes inside [`run_hot`]. Only a pass that finds 0
/// here makes the workers poll.
static HOT_PASSES: AtomicUsize = AtomicUsize::new(0);

/// Time without work after which a polling task returns, so a task that
/// ends up waiting for its own pass cannot hold its thread for longer.
const IDLE_LIMIT: Duration = Duration::from_millis(2);

/// Runs `f` in the pool while every other worker waits for work by polling
/// instead of sleeping.
///
/// A forward pass is a chain of short parallel regions. A rayon worker with
/// nothing to do soon goes to sleep, and waking it again delays the next
/// region. Here each other worker runs a task that takes pending jobs with
/// [`rayon::yield_now`] until `f` returns or it has found no work for
/// [`IDLE_LIMIT`]. Like the spinning threads of OpenMP, it uses its core
/// during the pass. Only one
/// pass at a time polls. A pass that starts while another one polls (from
/// predictors used on several threads) runs as a plain `install`, so no two
/// passes wait on each other's polling tasks.
pub fn run_hot<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let pool = pool();
    let helpers = pool.current_num_threads().saturating_sub(1);
    if helpers == 0 {
        return pool.install(f);
    }
    // Released on return and on unwinding alike.
    let pass = HotPass::enter();
    if !pass.first {
        return pool.install(f);
    }
    let active = AtomicBool::new(true);
    pool.install(|| {
        rayon::scope(|s| {
            for _ in 0..helpers {
                s.spawn(|_| poll_for_work(&active));
            }
            // Stops the polling tasks also when `f` panics: the scope waits
            // for them before it passes the panic on.
            let _stop = StopOnDrop(&active);
            f()
        })
    })
}

/// A pass counted in [`HOT_PASSES`] while it lives.
struct HotPass {
    /// No other pass was counted when this one entered.
    first: bool,
}

impl HotPass {
    fn enter() -> HotPass {
        HotPass {
            first: HOT_PASSES.fetch_add(1, Ordering::AcqRel) == 0,
        }
    }
}

impl Drop for HotPass {
    fn drop(&mut self) {
        HOT_PASSES.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs pending pool jobs until `active` is false or none came for
/// [`IDLE_LIMIT`].
fn poll_for_work(active: &AtomicBool) {
    let mut last_work = Instant::now();
    while active.load(Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            last_work = Instant::now();
        } else if last_work.elapsed() > IDLE_LIMIT {
            return;
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Clears its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

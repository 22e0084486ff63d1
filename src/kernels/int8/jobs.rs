//! How many parallel jobs a kernel call splits its work into.
//!
//! A kernel splits a call into about 4 jobs per pool thread. A caller that
//! already runs one job per thread (a convolution chain computing an image
//! band by band) wraps its kernel calls in [`serially`], so each call makes
//! one job and runs on the calling thread.

use std::cell::Cell;

thread_local! {
    static SERIAL: Cell<bool> = const { Cell::new(false) };
}

/// Number of jobs a kernel call should aim for on this thread.
pub fn target() -> usize {
    if SERIAL.with(Cell::get) {
        1
    } else {
        4 * rayon::current_num_threads()
    }
}

/// Runs `f` with every kernel call on this thread made as one job.
pub fn serially<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the previous setting, also when `f` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERIAL.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SERIAL.with(|s| s.replace(true)));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serially_makes_one_job() {
        let outside = target();
        assert_eq!(outside, 4 * rayon::current_num_threads());
        assert_eq!(serially(target), 1);
        assert_eq!(serially(|| serially(target)), 1);
        assert_eq!(target(), outside);
    }
}

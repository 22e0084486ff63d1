//! The C ABI. Every exported function converts pointers to Rust values,
//! calls the layers below inside `catch_unwind`, and returns 0 on success or
//! -1 with a message for `MXGetLastError`.
//!
//! Pointers returned to C (string arrays, shape arrays) live in per-thread
//! buffers, one per exported function, so a result stays valid until the same
//! function is called again on the same thread.

pub mod ndarray;
pub mod predict;
pub mod symbol;

use crate::error::{Error, Result};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// `mx_uint` in MXNet's headers.
pub type MxUint = u32;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Stores `msg` as this thread's last error, in MXNet's `MXNetError: …` form.
pub fn set_last_error(msg: &str) {
    let text = format!("MXNetError: {msg}").replace('\0', " ");
    log::debug!("C API call failed: {text}");
    LAST_ERROR.with(|e| *e.borrow_mut() = CString::new(text).unwrap_or_default());
}

/// Starts logging for programs that load the library from C, C++ or
/// Python: `RUST_LOG` sets the level (warnings by default), to stderr. A Rust
/// host that installed its own logger keeps it.
fn init_logging() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let env = env_logger::Env::default().default_filter_or("warn");
        let _ = env_logger::Builder::from_env(env).try_init();
    });
}

/// Runs `f`, converting errors and panics into -1 plus a message.
pub fn api_call(f: impl FnOnce() -> Result<()>) -> c_int {
    init_logging();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            set_last_error(&e.to_string());
            -1
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (please report): {what}"));
            -1
        }
    }
}

/// Returns the last error message of this thread; `""` before any failure.
#[no_mangle]
pub extern "C" fn MXGetLastError() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Writes the MXNet version this library stands in for (10901 = 1.9.1).
///
/// # Safety
/// `out` must be null or point to writable memory for one `int`.
#[no_mangle]
pub unsafe extern "C" fn MXGetVersion(out: *mut c_int) -> c_int {
    api_call(|| {
        write_out(out, crate::MXNET_VERSION, "out")?;
        Ok(())
    })
}

/// Releases library state before exit; nothing to do here.
#[no_mangle]
pub extern "C" fn MXNotifyShutdown() -> c_int {
    0
}

/// Reads a NUL-terminated C string argument.
///
/// # Safety
/// `p` must be null or a valid NUL-terminated string.
pub unsafe fn c_str<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is a null pointer")));
    }
    CStr::from_ptr(p)
        .to_str()
        .map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

/// Writes `value` through an output pointer, failing on null.
///
/// # Safety
/// `p` must be null or valid for one write of `T`.
pub unsafe fn write_out<T>(p: *mut T, value: T, what: &str) -> Result<()> {
    if p.is_null() {
        return Err(Error::invalid(format!("output pointer {what} is null")));
    }
    p.write(value);
    Ok(())
}

/// Borrows `len` elements from a C array; a null pointer is allowed only for `len == 0`.
///
/// # Safety
/// `p` must be null or valid for reads of `len` elements.
pub unsafe fn c_slice<'a, T>(p: *const T, len: usize, what: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is a null pointer")));
    }
    Ok(std::slice::from_raw_parts(p, len))
}

/// A per-thread list of C strings with a stable array of pointers to them.
#[derive(Default)]
pub struct StringArray {
    strings: Vec<CString>,
    pointers: Vec<*const c_char>,
}

impl StringArray {
    /// Replaces the contents and returns the pointer array (null when empty).
    pub fn set<S: AsRef<str>>(&mut self, items: &[S]) -> *const *const c_char {
        self.strings = items
            .iter()
            .map(|s| CString::new(s.as_ref().replace('\0', " ")).unwrap_or_default())
            .collect();
        self.pointers = self.strings.iter().map(|s| s.as_ptr()).collect();
        if self.pointers.is_empty() {
            std::ptr::null()
        } else {
            self.pointers.as_ptr()
        }
    }
}

/// Accepts the CPU device types (cpu, cpu_pinned, cpu_shared) and rejects the rest.
pub fn check_device(dev_type: c_int) -> Result<()> {
    match dev_type {
        1 | 3 | 5 => Ok(()),
        2 => Err(Error::invalid(
            "GPU devices are not supported: this library runs on the CPU (dev_type 1)",
        )),
        other => Err(Error::invalid(format!("unknown device type {other}"))),
    }
}

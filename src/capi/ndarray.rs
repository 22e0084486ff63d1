//! `MXNDArray*`: array handles, list files, raw copies.

use super::{api_call, c_slice, c_str, write_out, MxUint, StringArray};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::format::params::{load_params, save_params, NdList};
use crate::tensor::Tensor;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void};
use std::sync::{Arc, RwLock};

/// Shared storage behind array handles. `None` is MXNet's "none" array.
pub type SharedTensor = Arc<RwLock<Option<Tensor>>>;

/// The object an `NDArrayHandle` points to: a reference-counted view, so
/// freeing one handle never invalidates another one to the same storage.
pub struct NdArray {
    pub tensor: SharedTensor,
}

/// `NDArrayHandle` in MXNet's headers.
pub type NDArrayHandle = *mut c_void;

impl NdArray {
    /// Boxes a new handle around `tensor`.
    pub fn into_handle(tensor: Option<Tensor>) -> NDArrayHandle {
        Self::share(Arc::new(RwLock::new(tensor)))
    }

    /// Boxes a new handle viewing existing shared storage.
    pub fn share(tensor: SharedTensor) -> NDArrayHandle {
        Box::into_raw(Box::new(NdArray { tensor })) as NDArrayHandle
    }

    /// Borrows the object behind a handle.
    ///
    /// # Safety
    /// `h` must be null or a handle returned by this library and not yet freed.
    pub unsafe fn from_handle<'a>(h: NDArrayHandle) -> Result<&'a NdArray> {
        (h as *const NdArray)
            .as_ref()
            .ok_or_else(|| Error::invalid("NDArrayHandle is null"))
    }
}

thread_local! {
    static LOAD_HANDLES: RefCell<Vec<NDArrayHandle>> = const { RefCell::new(Vec::new()) };
    static LOAD_NAMES: RefCell<StringArray> = RefCell::new(StringArray::default());
    static SHAPE_U32: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    static SHAPE_I32: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
    static SHAPE_I64: RefCell<Vec<i64>> = const { RefCell::new(Vec::new()) };
}

fn create(shape: &[usize], dtype: i32) -> Result<NDArrayHandle> {
    let dtype = DType::from_flag(dtype)?;
    Ok(NdArray::into_handle(Some(Tensor::zeros(dtype, shape)?)))
}

/// Creates a "none" array (no shape, no dtype).
///
/// # Safety
/// `out` must be valid for one write.
#[no_mangle]
pub unsafe extern "C" fn MXNDArrayCreateNone(out: *mut NDArrayHandle) -> c_int {
    api_call(|| write_out(out, NdArray::into_handle(None), "out"))
}

/// Creates a float32 array on the CPU (contents are zero-filled).
///
/// # Safety
/// `shape` must be valid for `ndim` reads and `out` for one write.
#[no_mangle]
pub unsafe extern "C" fn MXNDArrayCreate(
    shape: *const MxUint,
    ndim: MxUint,
    dev_type: c_int,
    dev_id: c_int,
    delay_alloc: c_int,
    out: *mut NDArrayHandle,
) -> c_int {
    MXNDArrayCreateEx(shape, ndim, dev_type, dev_id, delay_alloc, 0, out)
}

/// Creates a zero-filled array of dtype flag `dtype`.
///
/// # Safety
/// `shape` must be valid for `ndim` reads and `out` for one write.
#[no_mangle]
pub unsafe extern "C" fn MXNDArrayCreateEx(
    shape: *const MxUint,
    ndim: MxUint,
    dev_type: c_int,
    dev_id: c_int,
    delay_alloc: c_int,
    dtype: c_int,
    out: *mut NDArrayHandle,
) -> c_int {
    api_call(|| {
        super::check_device(dev_type)?;
        let _ = (dev_id, delay_alloc);
        let dims: Vec<usize> = c_slice(shape, ndim as usize, "shape")?
            .iter()
            .map(|&d| d as usize)
            .collect();
        write_out(out, create(&dims, dtype)?, "out")
    })
}

/// Creates a zero-filled array with 64-bit dims.
///
/// # Safety
/// `shape` must be valid for `ndim` reads and `out` for one write.
#[no_mangle]
pub unsafe extern "C" fn MXNDArrayCreateEx64(
    shape: *const i64,
    ndim: c_int,
    dev_type: c_int,
    dev_id: c_int,
    delay_alloc: c_int,
    dtype: c_int,
    out: *mut NDArrayHandle,
) -> c_int {
    api_call(|| {
        super::check_device(dev_type)?;
        let _ = (dev_id, delay_alloc);
        if ndim < 0 {
            return Err(Error::invalid(format!("negative ndim {ndim}")));
        }
        let dims = c_slice(shape, ndim as usize, "shape")?
            .iter()
            .map(|&d| {
                usize::try_from(d).map_err(|_| Error::invalid(format!("invalid dimension {d}")))
            })
            .collect::<Result<Vec<_>>>()?;
        write_out(out, create(&dims, dtype)?, "out")
    })
}

/// Releases a handle; null is accepted.
///
/// # Safety
/// `h` must be null or a live handle from this library.
#[no_mangle]
pub unsafe extern "C" fn MXNDArrayFree(h: NDArrayHandle) -> c_int {
    api_call(|| {
        if !h.is_null() {
            drop(Box::from_raw(h as *mut NdArray));
        }
        Ok(())
    })
}

unsafe fn publish_list(
    list: NdList,
    out_size: *mut MxUint,
    out_arr: *mut *mut NDArrayHandle,
    out_name_size: *mut MxUint,
    out_names: *mut *mut *const c_char,
) -> Result<()> {
    for (p, what) in [(out_size, "out_size"), (out_name_size, "out_name_size")] {
        if p.is_null() {
            return Err(Error::invalid(format!("output pointer {what} is null")));
        }
    }
    if out_arr.is_null() || out_names.is_null() {
        return Err(Error::invalid(
            "output pointer out_arr or out_names is null",
        ));
    }
    let count = list.arrays.len();
    let handles = LOAD_HANDLES.with(|b| {
        let mut b = b.borrow_mut();
        *b = list.arrays.into_iter().map(NdArray::into_handle).collect();
        if b.is_empty() {
            std::ptr::null_mut()
        } else {
            b.as_mut_ptr()
        }
    });
    let names = LOAD_NAMES.with(|b| b.borrow_mut().set(&list.names));
    *out_size = count as MxUint;
    *out_arr = handles;
    *out_name_size = list.names.len() as MxUint;
    *out_names = names as *mut *const c_char;
    Ok(())
}

/// Loads an NDArray list file; the caller owns (and frees) every returned handle.
///
/// # Safety
/// `fname` must be a NUL-terminated string; the outputs must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXNDArrayLoad(
    fname: *const c_char,
    out_size: *mut MxUint,
    out_arr: *mut *mut NDArrayHandle,
    out_name_size: *mut MxUint,
    out_names: *mut *mut *const c_char,
) -> c_int {
    api_call(|| {
        let path = c_str(fname, "fname")?;
        let list = crate::format::params::load_params_file(std::path::Path::new(path))?;
        publish_list(list, out_size, out_arr, out_name_size, out_names)
    })
}

/// Loads an NDArray list from memory.
///
/// # Safety
/// `buf` must be valid for `size` reads; the outputs must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXNDArrayLoadFromBuffer(
    buf: *const c_void,
    size: usize,
    out_size: *mut MxUint,
    out_arr: *mut *mut NDArrayHandle,
    out_name_size: *mut MxUint,
    out_names: *mut *mut *const c_char,
) -> c_int {
    api_call(|| {
        if buf.is_null() {
            return Err(Error::invalid("ndarray_buffer is a null pointer"));
        }
        let bytes = std::slice::from_raw_parts(buf as *const u8, size);
        publish_list(
            load_params(bytes)?,
            out_size,
            out_arr,
            out_name_size,
            out_names,
        )
    })
}

/// Saves arrays as a V2 NDArray list file; `keys == NULL` writes an unnamed list.
///
/// # Safety
/// `args` must hold `num_args` live handles and `keys` null or `num_args` strings.
#[no_mangle]
pub unsafe extern "C" fn MXNDArraySave(
    fname: *const c_char,
    num_args: MxUint,
    args: *mut NDArrayHandle,
    keys: *mut *const c_char,
) -> c_int {
    api_call(|| {
        let path = c_str(fname, "fname")?;
        let handles = c_slice(args as *const NDArrayHandle, num_args as usize, "args")?;
        let names = if keys.is_null() {
            Vec::new()
        } else {
            c_slice(keys, num_args as usize, "keys")?
                .iter()
                .map(|&k| c_str(k, "key"))
                .collect::<Result<Vec<_>>>()?
        };
        let guards = handles
            .iter()
            .map(|&h| {
                NdArray::from_handle(h).map(|a| a.tensor.read().unwrap_or_else(|p| p.into_inner()))
            })
            .collect::<Result<Vec<_>>>()?;
        let tensors = guards
            .iter()
            .map(|g| {
                g.as_ref()
                    .ok_or_else(|| Error::invalid("cannot save a none array"))
            })
            .collect::<Result<Vec<_>>>()?;
        let bytes = save_params(&tensors, &names)?;
        std::fs::write(path, bytes).map_err(|source| Error::Io {
            path: path.to_string(),
            source,
        })
    })
}

fn with_tensor<R>(h: NDArrayHandle, f: impl FnOnce(Option<&Tensor>) -> Result<R>) -> Result<R> {
    let a = unsafe { NdArray::from_handle(h)? };
    let g = a.tensor.read().unwrap_or_else(|p| p.into_inner());
    f(g.as_ref())
}

/// Copies `size` elements of raw bytes of the array's dtype into the array.
///
/// # Safety
/// `data` must be valid for `size * sizeof(dtype)` bytes.
#[no_mangle]
pub unsafe extern "C" fn MXNDArraySyncCopyFromCPU(
    h: NDArrayHandle,
    data: *const c_void,
    size: usize,
) -> c_int {
    api_call(|| {
        let a = NdArray::from_handle(h)?;
        let mut g = a.tensor.write().unwrap_or_else(|p| p.into_inner());
        let t = g
            .as_mut()
            .ok_or_else(|| Error::invalid("cannot copy into a none array"))?;
        if size != t.numel() {
            return Err(Error::invalid(format!(
                "memory size does not match: {size} elements given, the array has {}",
                t.numel()
            )));
        }
        if size == 0 {
            return Ok(());
        }
        let n = t.bytes().len();
        t.bytes_mut()
            .copy_from_slice(c_slice(data as *const u8, n, "data")?);
        Ok(())
    })
}

/// Copies the array's raw bytes out; `size` is an element count and must match.
///
/// # Safety
/// `data` must be valid for `size * sizeof(dtype)` bytes of writes.
#[no_mangle]
pub unsafe extern "C" fn MXNDArraySyncCopyToCPU(
    h: NDArrayHandle,
    data: *mut c_void,
    size: usize,
) -> c_int {
    api_call(|| {
        with_tensor(h, |t| {
            let t = t.ok_or_else(|| Error::invalid("cannot copy from a none array"))?;
            if size != t.numel() {
                return Err(Error::invalid(format!(
                    "memory size does not match: {size} elements requested, the array has {}",
                    t.numel()
                )));
            }
            if size == 0 {
                return Ok(());
            }
            if data.is_null() {
                return Err(Error::invalid("data is a null pointer"));
            }
            std::ptr::copy_nonoverlapping(t.bytes().as_ptr(), data as *mut u8, t.bytes().len());
            Ok(())
        })
    })
}

/// Writes the shape as u32 dims in a per-thread buffer; a none array gives ndim 0.
///
/// # Safety
/// The output pointers must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXNDArrayGetShape(
    h: NDArrayHandle,
    out_dim: *mut MxUint,
    out_pdata: *mut *const MxUint,
) -> c_int {
    api_call(|| {
        with_tensor(h, |t| {
            let Some(t) = t else {
                return write_out(out_dim, 0, "out_dim");
            };
            let dims = t
                .shape()
                .iter()
                .map(|&d| {
                    u32::try_from(d).map_err(|_| {
                        Error::invalid(format!(
                            "dimension {d} does not fit in 32 bits; use MXNDArrayGetShapeEx64"
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let p = SHAPE_U32.with(|b| {
                *b.borrow_mut() = dims;
                b.borrow().as_ptr()
            });
            write_out(out_dim, t.ndim() as MxUint, "out_dim")?;
            write_out(out_pdata, p, "out_pdata")
        })
    })
}

/// Writes the shape as int dims in a per-thread buffer.
///
/// # Safety
/// The output pointers must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXNDArrayGetShapeEx(
    h: NDArrayHandle,
    out_dim: *mut c_int,
    out_pdata: *mut *const c_int,
) -> c_int {
    api_call(|| {
        with_tensor(h, |t| {
            let Some(t) = t else {
                return write_out(out_dim, 0, "out_dim");
            };
            let dims = t
                .shape()
                .iter()
                .map(|&d| {
                    i32::try_from(d).map_err(|_| {
                        Error::invalid(format!(
                            "dimension {d} does not fit in 32 bits; use MXNDArrayGetShapeEx64"
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let p = SHAPE_I32.with(|b| {
                *b.borrow_mut() = dims;
                b.borrow().as_ptr()
            });
            write_out(out_dim, t.ndim() as c_int, "out_dim")?;
            write_out(out_pdata, p, "out_pdata")
        })
    })
}

/// Writes the shape as int64 dims in a per-thread buffer.
///
/// # Safety
/// The output pointers must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXNDArrayGetShapeEx64(
    h: NDArrayHandle,
    out_dim: *mut c_int,
    out_pdata: *mut *const i64,
) -> c_int {
    api_call(|| {
        with_tensor(h, |t| {
            let Some(t) = t else {
                return write_out(out_dim, 0, "out_dim");
            };
            let p = SHAPE_I64.with(|b| {
                *b.borrow_mut() = t.shape().iter().map(|&d| d as i64).collect();
                b.borrow().as_ptr()
            });
            write_out(out_dim, t.ndim() as c_int, "out_dim")?;
            write_out(out_pdata, p, "out_pdata")
        })
    })
}

/// Writes the dtype flag; -1 for a none array.
///
/// # Safety
/// `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXNDArrayGetDType(h: NDArrayHandle, out: *mut c_int) -> c_int {
    api_call(|| {
        with_tensor(h, |t| {
            write_out(out, t.map_or(-1, |t| t.dtype().flag()), "out_dtype")
        })
    })
}

/// Writes the context: cpu(0) for every array, (0, 0) for a none array.
///
/// # Safety
/// The output pointers must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXNDArrayGetContext(
    h: NDArrayHandle,
    out_dev_type: *mut c_int,
    out_dev_id: *mut c_int,
) -> c_int {
    api_call(|| {
        with_tensor(h, |t| {
            write_out(
                out_dev_type,
                if t.is_some() { 1 } else { 0 },
                "out_dev_type",
            )?;
            write_out(out_dev_id, 0, "out_dev_id")
        })
    })
}

/// Writes the storage type: 0 (dense) or -1 for a none array.
///
/// # Safety
/// `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXNDArrayGetStorageType(h: NDArrayHandle, out: *mut c_int) -> c_int {
    api_call(|| {
        with_tensor(h, |t| {
            write_out(out, if t.is_some() { 0 } else { -1 }, "out_storage_type")
        })
    })
}

/// Waits for pending writes; computation here is synchronous, so it returns at once.
#[no_mangle]
pub extern "C" fn MXNDArrayWaitToRead(_h: NDArrayHandle) -> c_int {
    0
}

/// Waits for pending reads and writes; returns at once (synchronous engine).
#[no_mangle]
pub extern "C" fn MXNDArrayWaitToWrite(_h: NDArrayHandle) -> c_int {
    0
}

/// Waits for all pending work; returns at once (synchronous engine).
#[no_mangle]
pub extern "C" fn MXNDArrayWaitAll() -> c_int {
    0
}

/// Writes a pointer to the array's data (default row-major layout); null
/// for a none array. The pointer stays valid while any handle to the
/// storage lives.
///
/// # Safety
/// `out_pdata` must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXNDArrayGetData(h: NDArrayHandle, out_pdata: *mut *mut c_void) -> c_int {
    api_call(|| {
        let a = NdArray::from_handle(h)?;
        let mut g = a.tensor.write().unwrap_or_else(|p| p.into_inner());
        let p = match g.as_mut() {
            Some(t) => t.bytes_mut().as_mut_ptr() as *mut c_void,
            None => std::ptr::null_mut(),
        };
        write_out(out_pdata, p, "out_pdata")
    })
}

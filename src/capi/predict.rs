//! `c_predict_api.h`: `MXPred*` and `MXNDList*`.

use super::ndarray::NdArray;
use super::{api_call, c_slice, c_str, check_device, write_out, MxUint};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::format::params::load_params;
use crate::ops::Shape;
use crate::predictor::{Predictor, PredictorConfig};
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::Mutex;

/// `PredictorHandle` in MXNet's headers.
pub type PredictorHandle = *mut c_void;
/// `NDListHandle` in MXNet's headers.
pub type NDListHandle = *mut c_void;
/// `PredMonitorCallback`: called with an output name and a new array handle the callee owns.
pub type PredMonitorCallback =
    Option<unsafe extern "C" fn(*const c_char, *mut c_void, *mut c_void)>;

struct Monitor {
    callback: unsafe extern "C" fn(*const c_char, *mut c_void, *mut c_void),
    user: usize,
    include_inputs: bool,
}

/// The object a `PredictorHandle` points to.
struct PredictorObject {
    predictor: Predictor,
    /// Backing store of the pointer `MXPredGetOutputShape` returns.
    shape_buf: Vec<u32>,
    monitor: Option<Monitor>,
}

type Handle = Mutex<PredictorObject>;

fn new_handle(predictor: Predictor) -> PredictorHandle {
    Box::into_raw(Box::new(Mutex::new(PredictorObject {
        predictor,
        shape_buf: Vec::new(),
        monitor: None,
    }))) as PredictorHandle
}

/// Predictors whose lock is held right now. Monitor callbacks run on the
/// worker threads of the pool, so a callback that calls back into its own
/// predictor gets an error instead of a deadlock.
static ACTIVE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn active() -> std::sync::MutexGuard<'static, Vec<usize>> {
    ACTIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// # Safety
/// `h` must be null or a live handle from this library.
unsafe fn with_predictor<R>(
    h: PredictorHandle,
    f: impl FnOnce(&mut PredictorObject) -> Result<R>,
) -> Result<R> {
    let m = (h as *const Handle)
        .as_ref()
        .ok_or_else(|| Error::invalid("PredictorHandle is null"))?;
    let key = h as usize;
    let on_worker = rayon::current_thread_index().is_some();
    if on_worker && active().contains(&key) {
        return Err(Error::invalid(
            "the predictor is running MXPredForward (a monitor callback cannot call its own \
             predictor); read its outputs after MXPredForward returns",
        ));
    }
    let mut guard = m.lock().unwrap_or_else(|p| p.into_inner());
    active().push(key);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut guard)));
    {
        let mut set = active();
        if let Some(i) = set.iter().position(|&k| k == key) {
            set.swap_remove(i);
        }
    }
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Reads `num` named shapes given as keys + CSR-style index pointer + dims.
unsafe fn read_shapes(
    num: MxUint,
    keys: *mut *const c_char,
    indptr: *const MxUint,
    data: *const MxUint,
) -> Result<Vec<(String, Shape)>> {
    let n = num as usize;
    let keys = c_slice(keys, n, "input_keys")?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let indptr = c_slice(indptr, n + 1, "input_shape_indptr")?;
    let total = indptr[n] as usize;
    let dims = c_slice(data, total, "input_shape_data")?;
    let mut shapes = Vec::with_capacity(n);
    for i in 0..n {
        let (lo, hi) = (indptr[i] as usize, indptr[i + 1] as usize);
        if lo > hi || hi > total {
            return Err(Error::invalid(format!(
                "input_shape_indptr is not increasing at index {i} ({lo} > {hi})"
            )));
        }
        let name = c_str(keys[i], "input key")?.to_string();
        shapes.push((name, dims[lo..hi].iter().map(|&d| d as usize).collect()));
    }
    Ok(shapes)
}

unsafe fn params_slice<'a>(bytes: *const c_void, size: c_int) -> Result<&'a [u8]> {
    if size <= 0 {
        return Err(Error::invalid(format!(
            "param_size must be positive, got {size}"
        )));
    }
    c_slice(bytes as *const u8, size as usize, "param_bytes")
}

#[allow(clippy::too_many_arguments)]
unsafe fn create_common(
    symbol_json: *const c_char,
    param_bytes: *const c_void,
    param_size: c_int,
    dev_type: c_int,
    num_input_nodes: MxUint,
    input_keys: *mut *const c_char,
    input_shape_indptr: *const MxUint,
    input_shape_data: *const MxUint,
    input_dtypes: Vec<(String, DType)>,
    output_keys: Vec<String>,
) -> Result<Predictor> {
    check_device(dev_type)?;
    let config = PredictorConfig {
        symbol_json: c_str(symbol_json, "symbol_json_str")?,
        params: params_slice(param_bytes, param_size)?,
        input_shapes: read_shapes(
            num_input_nodes,
            input_keys,
            input_shape_indptr,
            input_shape_data,
        )?,
        input_dtypes,
        output_keys,
    };
    Predictor::create(&config)
}

/// Creates a predictor from a symbol JSON string and a `.params` buffer.
///
/// # Safety
/// Pointers must be valid as described in `c_predict_api.h`.
#[no_mangle]
pub unsafe extern "C" fn MXPredCreate(
    symbol_json_str: *const c_char,
    param_bytes: *const c_void,
    param_size: c_int,
    dev_type: c_int,
    dev_id: c_int,
    num_input_nodes: MxUint,
    input_keys: *mut *const c_char,
    input_shape_indptr: *const MxUint,
    input_shape_data: *const MxUint,
    out: *mut PredictorHandle,
) -> c_int {
    api_call(|| {
        let _ = dev_id; // Every CPU device id runs on the same CPU.
        let p = create_common(
            symbol_json_str,
            param_bytes,
            param_size,
            dev_type,
            num_input_nodes,
            input_keys,
            input_shape_indptr,
            input_shape_data,
            Vec::new(),
            Vec::new(),
        )?;
        write_out(out, new_handle(p), "out")
    })
}

/// Like `MXPredCreate`, with dtypes for inputs that no parameter types.
///
/// # Safety
/// Pointers must be valid as described in `c_predict_api.h`.
#[no_mangle]
pub unsafe extern "C" fn MXPredCreateEx(
    symbol_json_str: *const c_char,
    param_bytes: *const c_void,
    param_size: c_int,
    dev_type: c_int,
    dev_id: c_int,
    num_input_nodes: MxUint,
    input_keys: *mut *const c_char,
    input_shape_indptr: *const MxUint,
    input_shape_data: *const MxUint,
    num_provided_arg_dtypes: MxUint,
    provided_arg_dtype_names: *mut *const c_char,
    provided_arg_dtypes: *const c_int,
    out: *mut PredictorHandle,
) -> c_int {
    api_call(|| {
        let _ = dev_id; // Every CPU device id runs on the same CPU.
        let n = num_provided_arg_dtypes as usize;
        let names = c_slice(provided_arg_dtype_names, n, "provided_arg_dtype_names")?;
        let flags = c_slice(provided_arg_dtypes, n, "provided_arg_dtypes")?;
        let mut dtypes = Vec::with_capacity(n);
        for (&name, &flag) in names.iter().zip(flags) {
            dtypes.push((
                c_str(name, "dtype name")?.to_string(),
                DType::from_flag(flag)?,
            ));
        }
        let p = create_common(
            symbol_json_str,
            param_bytes,
            param_size,
            dev_type,
            num_input_nodes,
            input_keys,
            input_shape_indptr,
            input_shape_data,
            dtypes,
            Vec::new(),
        )?;
        write_out(out, new_handle(p), "out")
    })
}

/// Like `MXPredCreate`, keeping only the `output` of the named nodes as outputs.
///
/// # Safety
/// Pointers must be valid as described in `c_predict_api.h`.
#[no_mangle]
pub unsafe extern "C" fn MXPredCreatePartialOut(
    symbol_json_str: *const c_char,
    param_bytes: *const c_void,
    param_size: c_int,
    dev_type: c_int,
    dev_id: c_int,
    num_input_nodes: MxUint,
    input_keys: *mut *const c_char,
    input_shape_indptr: *const MxUint,
    input_shape_data: *const MxUint,
    num_output_nodes: MxUint,
    output_keys: *mut *const c_char,
    out: *mut PredictorHandle,
) -> c_int {
    api_call(|| {
        let _ = dev_id; // Every CPU device id runs on the same CPU.
        let keys = c_slice(output_keys, num_output_nodes as usize, "output_keys")?
            .iter()
            .map(|&k| c_str(k, "output key").map(str::to_string))
            .collect::<Result<Vec<_>>>()?;
        let p = create_common(
            symbol_json_str,
            param_bytes,
            param_size,
            dev_type,
            num_input_nodes,
            input_keys,
            input_shape_indptr,
            input_shape_data,
            Vec::new(),
            keys,
        )?;
        write_out(out, new_handle(p), "out")
    })
}

/// Creates `num_threads` predictors that share parameters but not inputs or outputs.
///
/// # Safety
/// `out` must be valid for `num_threads` writes; other pointers as in `MXPredCreate`.
#[no_mangle]
pub unsafe extern "C" fn MXPredCreateMultiThread(
    symbol_json_str: *const c_char,
    param_bytes: *const c_void,
    param_size: c_int,
    dev_type: c_int,
    dev_id: c_int,
    num_input_nodes: MxUint,
    input_keys: *mut *const c_char,
    input_shape_indptr: *const MxUint,
    input_shape_data: *const MxUint,
    num_threads: c_int,
    out: *mut PredictorHandle,
) -> c_int {
    api_call(|| {
        let _ = dev_id; // Every CPU device id runs on the same CPU.
        if num_threads <= 0 {
            return Err(Error::invalid(format!(
                "num_threads must be positive, got {num_threads}"
            )));
        }
        if out.is_null() {
            return Err(Error::invalid("output pointer out is null"));
        }
        let first = create_common(
            symbol_json_str,
            param_bytes,
            param_size,
            dev_type,
            num_input_nodes,
            input_keys,
            input_shape_indptr,
            input_shape_data,
            Vec::new(),
            Vec::new(),
        )?;
        let mut all = vec![];
        let shapes = read_shapes(
            num_input_nodes,
            input_keys,
            input_shape_indptr,
            input_shape_data,
        )?;
        for _ in 1..num_threads {
            all.push(first.reshape(shapes.clone())?);
        }
        all.insert(0, first);
        for (i, p) in all.into_iter().enumerate() {
            out.add(i).write(new_handle(p));
        }
        Ok(())
    })
}

/// Creates a new predictor with new input shapes; `handle` stays valid.
///
/// # Safety
/// Pointers must be valid as described in `c_predict_api.h`.
#[no_mangle]
pub unsafe extern "C" fn MXPredReshape(
    num_input_nodes: MxUint,
    input_keys: *mut *const c_char,
    input_shape_indptr: *const MxUint,
    input_shape_data: *const MxUint,
    handle: PredictorHandle,
    out: *mut PredictorHandle,
) -> c_int {
    api_call(|| {
        let shapes = read_shapes(
            num_input_nodes,
            input_keys,
            input_shape_indptr,
            input_shape_data,
        )?;
        let p = with_predictor(handle, |o| o.predictor.reshape(shapes))?;
        write_out(out, new_handle(p), "out")
    })
}

/// Returns the shape of output `index` in a buffer owned by the predictor
/// and overwritten by the next call on it.
///
/// # Safety
/// Output pointers must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXPredGetOutputShape(
    handle: PredictorHandle,
    index: MxUint,
    shape_data: *mut *mut MxUint,
    shape_ndim: *mut MxUint,
) -> c_int {
    api_call(|| {
        with_predictor(handle, |o| {
            let dims = o
                .predictor
                .executor
                .output(index as usize)?
                .shape()
                .iter()
                .map(|&d| {
                    u32::try_from(d).map_err(|_| {
                        Error::invalid(format!("dimension {d} does not fit in 32 bits"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            o.shape_buf = dims;
            write_out(shape_data, o.shape_buf.as_mut_ptr(), "shape_data")?;
            write_out(shape_ndim, o.shape_buf.len() as MxUint, "shape_ndim")
        })
    })
}

/// Writes the dtype flag of output `index` to `*out_dtype`.
///
/// NOTE: MXNet 1.9.1 writes to `out_dtype[index]`; this writes `*out_dtype`, the documented contract.
///
/// # Safety
/// `out_dtype` must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXPredGetOutputType(
    handle: PredictorHandle,
    index: MxUint,
    out_dtype: *mut c_int,
) -> c_int {
    api_call(|| {
        with_predictor(handle, |o| {
            let flag = o.predictor.executor.output(index as usize)?.dtype().flag();
            write_out(out_dtype, flag, "out_dtype")
        })
    })
}

/// Copies `size` elements of raw bytes of the input's dtype into input `key`.
///
/// # Safety
/// `data` must be valid for `size` elements of the input's dtype.
#[no_mangle]
pub unsafe extern "C" fn MXPredSetInput(
    handle: PredictorHandle,
    key: *const c_char,
    data: *const f32,
    size: MxUint,
) -> c_int {
    api_call(|| {
        let key = c_str(key, "key")?;
        with_predictor(handle, |o| {
            let t = o
                .predictor
                .executor
                .argument(key)
                .ok_or_else(|| Error::invalid(format!("cannot find input key {key}")))?;
            if size as usize != t.numel() {
                return Err(Error::invalid(format!(
                    "memory size does not match for input {key}: {size} elements given, {} expected",
                    t.numel()
                )));
            }
            let bytes = c_slice(data as *const u8, t.bytes().len(), "data")?;
            o.predictor.executor.set_argument(key, bytes)
        })
    })
}

fn run_forward(o: &mut PredictorObject) -> Result<()> {
    let Some(m) = &o.monitor else {
        return o.predictor.executor.forward();
    };
    let (callback, user, include_inputs) = (m.callback, m.user, m.include_inputs);
    let mut call = |name: &str, t: &crate::tensor::Tensor| {
        let Ok(name) = CString::new(name) else { return };
        let h = NdArray::into_handle(Some(t.clone()));
        // SAFETY: the caller registered `callback` for exactly this use.
        unsafe { callback(name.as_ptr(), h, user as *mut c_void) };
    };
    o.predictor
        .executor
        .forward_monitored(Some(&mut call), include_inputs)
}

/// Runs the whole graph.
///
/// # Safety
/// `handle` must be a live predictor handle.
#[no_mangle]
pub unsafe extern "C" fn MXPredForward(handle: PredictorHandle) -> c_int {
    api_call(|| with_predictor(handle, run_forward))
}

/// Runs operator `step` only; `*step_left` receives the number of steps after it.
///
/// # Safety
/// `step_left` must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXPredPartialForward(
    handle: PredictorHandle,
    step: c_int,
    step_left: *mut c_int,
) -> c_int {
    api_call(|| {
        with_predictor(handle, |o| {
            let total = o.predictor.executor.num_steps();
            let step = usize::try_from(step)
                .map_err(|_| Error::invalid(format!("step must not be negative, got {step}")))?;
            o.predictor.executor.forward_step(step)?;
            write_out(step_left, (total - step - 1) as c_int, "step_left")
        })
    })
}

/// Copies output `index` (raw bytes of its dtype, `size` elements) into `data`.
///
/// # Safety
/// `data` must be valid for `size` elements of the output's dtype.
#[no_mangle]
pub unsafe extern "C" fn MXPredGetOutput(
    handle: PredictorHandle,
    index: MxUint,
    data: *mut f32,
    size: MxUint,
) -> c_int {
    api_call(|| {
        with_predictor(handle, |o| {
            let t = o.predictor.executor.output(index as usize)?;
            if size as usize != t.numel() {
                return Err(Error::invalid(format!(
                    "memory size does not match for output {index}: {size} elements requested, the output has {}",
                    t.numel()
                )));
            }
            if t.numel() == 0 {
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

/// Installs a callback called after each operator with each of its outputs
/// and, with `monitor_all`, before it with each of its inputs. The callee
/// owns (and frees) each array handle it receives.
///
/// # Safety
/// `callback` must stay callable while the predictor lives.
#[no_mangle]
pub unsafe extern "C" fn MXPredSetMonitorCallback(
    handle: PredictorHandle,
    callback: PredMonitorCallback,
    callback_handle: *mut c_void,
    monitor_all: bool,
) -> c_int {
    api_call(|| {
        with_predictor(handle, |o| {
            // A monitor receives every operator's outputs, so no operator
            // may be absorbed into the step before it.
            o.predictor
                .executor
                .set_keep_all_steps(callback.is_some())?;
            o.monitor = callback.map(|callback| Monitor {
                callback,
                user: callback_handle as usize,
                include_inputs: monitor_all,
            });
            Ok(())
        })
    })
}

/// Frees a predictor; null is accepted.
///
/// # Safety
/// `handle` must be null or a live predictor handle.
#[no_mangle]
pub unsafe extern "C" fn MXPredFree(handle: PredictorHandle) -> c_int {
    api_call(|| {
        if !handle.is_null() {
            drop(Box::from_raw(handle as *mut Handle));
        }
        Ok(())
    })
}

/// An NDArray list loaded for `MXNDListGet`: every array's raw bytes in a
/// float slot of its element count, as MXNet lays them out.
struct NdListObject {
    keys: Vec<CString>,
    data: Vec<f32>,
    offsets: Vec<usize>,
    shapes: Vec<Vec<u32>>,
    shape_buf: Vec<u32>,
}

/// Loads an NDArray list file from memory.
///
/// # Safety
/// `nd_file_bytes` must be valid for `nd_file_size` bytes; outputs writable.
#[no_mangle]
pub unsafe extern "C" fn MXNDListCreate(
    nd_file_bytes: *const c_char,
    nd_file_size: c_int,
    out: *mut NDListHandle,
    out_length: *mut MxUint,
) -> c_int {
    api_call(|| {
        let bytes = params_slice(nd_file_bytes as *const c_void, nd_file_size)?;
        let list = load_params(bytes)?;
        let mut obj = NdListObject {
            keys: Vec::new(),
            data: Vec::new(),
            offsets: Vec::new(),
            shapes: Vec::new(),
            shape_buf: Vec::new(),
        };
        for (i, a) in list.arrays.iter().enumerate() {
            let t = a
                .as_ref()
                .ok_or_else(|| Error::invalid(format!("array {i} is a none array")))?;
            let name = list.names.get(i).map_or("", String::as_str);
            obj.keys
                .push(CString::new(name.replace('\0', " ")).unwrap_or_default());
            obj.offsets.push(obj.data.len());
            let start = obj.data.len();
            // A slot is numel floats, but an f64/i64 array needs numel * 8 bytes.
            let slot = t.numel().max(t.bytes().len().div_ceil(4));
            obj.data.resize(start + slot, 0.0);
            bytemuck::cast_slice_mut::<f32, u8>(&mut obj.data[start..])[..t.bytes().len()]
                .copy_from_slice(t.bytes());
            obj.shapes
                .push(t.shape().iter().map(|&d| d as u32).collect());
        }
        let len = obj.keys.len() as MxUint;
        write_out(out_length, len, "out_length")?;
        write_out(out, Box::into_raw(Box::new(obj)) as NDListHandle, "out")
    })
}

/// Returns key, data, shape and ndim of entry `index` of an NDArray list.
///
/// # Safety
/// Output pointers must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXNDListGet(
    handle: NDListHandle,
    index: MxUint,
    out_key: *mut *const c_char,
    out_data: *mut *const f32,
    out_shape: *mut *const MxUint,
    out_ndim: *mut MxUint,
) -> c_int {
    api_call(|| {
        let obj = (handle as *mut NdListObject)
            .as_mut()
            .ok_or_else(|| Error::invalid("NDListHandle is null"))?;
        let i = index as usize;
        if i >= obj.keys.len() {
            return Err(Error::invalid(format!(
                "index {i} out of range: the list has {} arrays",
                obj.keys.len()
            )));
        }
        obj.shape_buf = obj.shapes[i].clone();
        write_out(out_key, obj.keys[i].as_ptr(), "out_key")?;
        write_out(out_data, obj.data.as_ptr().add(obj.offsets[i]), "out_data")?;
        write_out(out_shape, obj.shape_buf.as_ptr(), "out_shape")?;
        write_out(out_ndim, obj.shape_buf.len() as MxUint, "out_ndim")
    })
}

/// Frees an NDArray list; null is accepted.
///
/// # Safety
/// `handle` must be null or a live list handle.
#[no_mangle]
pub unsafe extern "C" fn MXNDListFree(handle: NDListHandle) -> c_int {
    api_call(|| {
        if !handle.is_null() {
            drop(Box::from_raw(handle as *mut NdListObject));
        }
        Ok(())
    })
}

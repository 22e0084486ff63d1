//! `MXSymbol*` and `NNSymbol*`: symbol handles created from JSON, saved
//! back, listed and split into outputs.

use super::{api_call, c_str, write_out, MxUint, StringArray};
use crate::error::{Error, Result};
use crate::format::symbol::{load_file, load_json, save_file, save_json};
use crate::graph::{Entry, Graph};
use crate::ops::registry;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CString};
use std::path::Path;

/// The object a `SymbolHandle` points to: one graph, owned by the handle.
pub struct Symbol {
    pub graph: Graph,
}

/// `SymbolHandle` in MXNet's headers.
pub type SymbolHandle = *mut c_void;

impl Symbol {
    /// Boxes a new handle owning `graph`.
    pub fn into_handle(graph: Graph) -> SymbolHandle {
        Box::into_raw(Box::new(Symbol { graph })) as SymbolHandle
    }

    /// Borrows the object behind a handle.
    ///
    /// # Safety
    /// `h` must be null or a handle returned by this library and not yet freed.
    pub unsafe fn from_handle<'a>(h: SymbolHandle) -> Result<&'a Symbol> {
        (h as *const Symbol)
            .as_ref()
            .ok_or_else(|| Error::invalid("SymbolHandle is null"))
    }
}

thread_local! {
    static SAVE_JSON: RefCell<CString> = RefCell::new(CString::default());
    static LIST_ARGUMENTS: RefCell<StringArray> = RefCell::new(StringArray::default());
    static LIST_OUTPUTS: RefCell<StringArray> = RefCell::new(StringArray::default());
    static LIST_AUX: RefCell<StringArray> = RefCell::new(StringArray::default());
    static LIST_INPUT_NAMES: RefCell<StringArray> = RefCell::new(StringArray::default());
    static GET_NAME: RefCell<CString> = RefCell::new(CString::default());
    static GET_ATTR: RefCell<CString> = RefCell::new(CString::default());
}

/// Stores `text` in a per-thread buffer and returns a pointer to it.
fn publish_string(
    buffer: &'static std::thread::LocalKey<RefCell<CString>>,
    text: &str,
) -> *const c_char {
    buffer.with(|b| {
        *b.borrow_mut() = CString::new(text.replace('\0', " ")).unwrap_or_default();
        b.borrow().as_ptr()
    })
}

/// Stores `names` in a per-thread string array and writes its size and pointer.
unsafe fn publish_names(
    buffer: &'static std::thread::LocalKey<RefCell<StringArray>>,
    names: &[String],
    out_size: *mut MxUint,
    out_array: *mut *mut *const c_char,
) -> Result<()> {
    if out_size.is_null() || out_array.is_null() {
        return Err(Error::invalid(
            "output pointer out_size or out_str_array is null",
        ));
    }
    let count = MxUint::try_from(names.len())
        .map_err(|_| Error::invalid(format!("{} names do not fit in mx_uint", names.len())))?;
    let pointers = buffer.with(|b| b.borrow_mut().set(names));
    *out_size = count;
    *out_array = pointers as *mut *const c_char;
    Ok(())
}

/// Creates a symbol from a JSON file, upgrading legacy layouts.
///
/// # Safety
/// `fname` must be a NUL-terminated string and `out` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn MXSymbolCreateFromFile(
    fname: *const c_char,
    out: *mut SymbolHandle,
) -> c_int {
    api_call(|| {
        let path = c_str(fname, "fname")?;
        let graph = load_file(Path::new(path))?;
        write_out(out, Symbol::into_handle(graph), "out")
    })
}

/// Creates a symbol from JSON text, upgrading legacy layouts.
///
/// # Safety
/// `json` must be a NUL-terminated string and `out` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn MXSymbolCreateFromJSON(
    json: *const c_char,
    out: *mut SymbolHandle,
) -> c_int {
    api_call(|| {
        let text = c_str(json, "json")?;
        let graph = load_json(text)?;
        write_out(out, Symbol::into_handle(graph), "out")
    })
}

/// Writes the symbol as MXNet 1.9.1's JSON into a per-thread string.
///
/// # Safety
/// `symbol` must be a live handle and `out_json` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn MXSymbolSaveToJSON(
    symbol: SymbolHandle,
    out_json: *mut *const c_char,
) -> c_int {
    api_call(|| {
        let text = save_json(&Symbol::from_handle(symbol)?.graph);
        write_out(out_json, publish_string(&SAVE_JSON, &text), "out_json")
    })
}

/// Writes the symbol as MXNet 1.9.1's JSON to a file.
///
/// # Safety
/// `symbol` must be a live handle and `fname` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn MXSymbolSaveToFile(symbol: SymbolHandle, fname: *const c_char) -> c_int {
    api_call(|| {
        let graph = &Symbol::from_handle(symbol)?.graph;
        save_file(graph, Path::new(c_str(fname, "fname")?))
    })
}

/// Lists the argument names (variables no operator mutates), in MXNet's order.
///
/// # Safety
/// `symbol` must be a live handle; the output pointers must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXSymbolListArguments(
    symbol: SymbolHandle,
    out_size: *mut MxUint,
    out_str_array: *mut *mut *const c_char,
) -> c_int {
    api_call(|| {
        let names = Symbol::from_handle(symbol)?.graph.list_arguments();
        publish_names(&LIST_ARGUMENTS, &names, out_size, out_str_array)
    })
}

/// Lists the output names (`<node>_<output>` for each head).
///
/// # Safety
/// `symbol` must be a live handle; the output pointers must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXSymbolListOutputs(
    symbol: SymbolHandle,
    out_size: *mut MxUint,
    out_str_array: *mut *mut *const c_char,
) -> c_int {
    api_call(|| {
        let names = Symbol::from_handle(symbol)?.graph.list_outputs();
        publish_names(&LIST_OUTPUTS, &names, out_size, out_str_array)
    })
}

/// Lists the auxiliary-state names (variables an operator mutates).
///
/// # Safety
/// `symbol` must be a live handle; the output pointers must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXSymbolListAuxiliaryStates(
    symbol: SymbolHandle,
    out_size: *mut MxUint,
    out_str_array: *mut *mut *const c_char,
) -> c_int {
    api_call(|| {
        let names = Symbol::from_handle(symbol)?.graph.list_auxiliary_states();
        publish_names(&LIST_AUX, &names, out_size, out_str_array)
    })
}

/// Lists input variable names: `option` 0 for all of them in DFS order,
/// 1 for arguments only, 2 for auxiliary states only.
///
/// # Safety
/// `symbol` must be a live handle; the output pointers must be writable.
#[no_mangle]
pub unsafe extern "C" fn NNSymbolListInputNames(
    symbol: SymbolHandle,
    option: c_int,
    out_size: *mut MxUint,
    out_str_array: *mut *mut *const c_char,
) -> c_int {
    api_call(|| {
        let graph = &Symbol::from_handle(symbol)?.graph;
        let names = match option {
            0 => graph.list_inputs(),
            1 => graph.list_arguments(),
            2 => graph.list_auxiliary_states(),
            other => {
                return Err(Error::invalid(format!(
                    "invalid option {other}: expected 0 (all inputs), 1 (arguments) or 2 (auxiliary states)"
                )))
            }
        };
        publish_names(&LIST_INPUT_NAMES, &names, out_size, out_str_array)
    })
}

/// Releases a symbol handle; null is accepted.
///
/// # Safety
/// `symbol` must be null or a live handle from this library.
#[no_mangle]
pub unsafe extern "C" fn MXSymbolFree(symbol: SymbolHandle) -> c_int {
    api_call(|| {
        if !symbol.is_null() {
            drop(Box::from_raw(symbol as *mut Symbol));
        }
        Ok(())
    })
}

/// Releases a symbol handle; the same as `MXSymbolFree`.
///
/// # Safety
/// `symbol` must be null or a live handle from this library.
#[no_mangle]
pub unsafe extern "C" fn NNSymbolFree(symbol: SymbolHandle) -> c_int {
    MXSymbolFree(symbol)
}

/// Creates an independent copy of a symbol.
///
/// # Safety
/// `symbol` must be a live handle and `out` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn MXSymbolCopy(symbol: SymbolHandle, out: *mut SymbolHandle) -> c_int {
    api_call(|| {
        let graph = Symbol::from_handle(symbol)?.graph.clone();
        write_out(out, Symbol::into_handle(graph), "out")
    })
}

/// Creates the internals symbol: every variable and every visible operator
/// output, in DFS order.
///
/// # Safety
/// `symbol` must be a live handle and `out` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn MXSymbolGetInternals(
    symbol: SymbolHandle,
    out: *mut SymbolHandle,
) -> c_int {
    api_call(|| {
        let graph = Symbol::from_handle(symbol)?.graph.internals();
        write_out(out, Symbol::into_handle(graph), "out")
    })
}

/// Creates a symbol with only output `index` of `symbol`.
///
/// # Safety
/// `symbol` must be a live handle and `out` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn MXSymbolGetOutput(
    symbol: SymbolHandle,
    index: MxUint,
    out: *mut SymbolHandle,
) -> c_int {
    api_call(|| {
        let graph = &Symbol::from_handle(symbol)?.graph;
        let head = *graph.heads.get(index as usize).ok_or_else(|| {
            Error::invalid(format!(
                "output index {index} is out of range: the symbol has {} outputs",
                graph.heads.len()
            ))
        })?;
        let single = Graph {
            heads: vec![head],
            ..graph.clone()
        };
        write_out(out, Symbol::into_handle(single.pruned()), "out")
    })
}

/// Writes the number of outputs (heads) of a symbol.
///
/// # Safety
/// `symbol` must be a live handle and `output_count` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn MXSymbolGetNumOutputs(
    symbol: SymbolHandle,
    output_count: *mut MxUint,
) -> c_int {
    api_call(|| {
        let count = Symbol::from_handle(symbol)?.graph.heads.len();
        let count = MxUint::try_from(count)
            .map_err(|_| Error::invalid("the output count does not fit in mx_uint"))?;
        write_out(output_count, count, "output_count")
    })
}

/// Returns the node all heads come from, if there is exactly one.
fn single_head_node(graph: &Graph) -> Option<usize> {
    let first = graph.heads.first()?.node;
    graph.heads.iter().all(|e| e.node == first).then_some(first)
}

/// Writes `value` (or NULL for `None`) and the matching success flag.
unsafe fn publish_optional(
    buffer: &'static std::thread::LocalKey<RefCell<CString>>,
    value: Option<String>,
    out: *mut *const c_char,
    success: *mut c_int,
) -> Result<()> {
    if out.is_null() || success.is_null() {
        return Err(Error::invalid("output pointer out or success is null"));
    }
    match value {
        Some(text) => {
            *out = publish_string(buffer, &text);
            *success = 1;
        }
        None => {
            *out = std::ptr::null();
            *success = 0;
        }
    }
    Ok(())
}

/// Writes the name of the node the symbol's outputs come from; `*success`
/// is 0 and `*out` NULL when they come from several nodes.
///
/// # Safety
/// `symbol` must be a live handle; `out` and `success` must be writable.
#[no_mangle]
pub unsafe extern "C" fn MXSymbolGetName(
    symbol: SymbolHandle,
    out: *mut *const c_char,
    success: *mut c_int,
) -> c_int {
    api_call(|| {
        let graph = &Symbol::from_handle(symbol)?.graph;
        let name = single_head_node(graph).map(|id| graph.nodes[id].name.clone());
        publish_optional(&GET_NAME, name, out, success)
    })
}

/// Legacy attribute names that MXNet also looks up as `__<name>__`.
const LEGACY_HIDDEN_KEYS: &[&str] = &[
    "ctx_group",
    "lr_mult",
    "wd_mult",
    "force_mirroring",
    "mirror_stage",
];

/// Looks up the value `MXSymbolGetAttr` reports for `key` on the symbol's
/// single node.
fn attribute(graph: &Graph, key: &str) -> Option<String> {
    let id = single_head_node(graph)?;
    let node = &graph.nodes[id];
    match key {
        "name" => return Some(node.name.clone()),
        "op_name" => {
            if node.is_variable() {
                return Some("null".into());
            }
            return Some(
                registry()
                    .get(&node.op)
                    .map_or(node.op.clone(), |d| d.name.to_string()),
            );
        }
        "_value_index" => {
            let indices: Vec<String> = graph
                .heads
                .iter()
                .map(|e: &Entry| e.index.to_string())
                .collect();
            return Some(indices.join(", "));
        }
        _ => {}
    }
    if let Some(value) = node.attrs.get(key) {
        return Some(value.clone());
    }
    if LEGACY_HIDDEN_KEYS.contains(&key) {
        return node.attrs.get(&format!("__{key}__")).cloned();
    }
    None
}

/// Looks up attribute `key` of the node the symbol's outputs come from.
/// `name`, `op_name` and `_value_index` are read from the node itself, and
/// `lr_mult` and the other legacy names also find `__lr_mult__`, …
/// A missing attribute is not an error: `*success` is 0 and `*out` NULL.
///
/// # Safety
/// `symbol` must be a live handle, `key` a NUL-terminated string, and
/// `out` and `success` writable.
#[no_mangle]
pub unsafe extern "C" fn MXSymbolGetAttr(
    symbol: SymbolHandle,
    key: *const c_char,
    out: *mut *const c_char,
    success: *mut c_int,
) -> c_int {
    api_call(|| {
        let graph = &Symbol::from_handle(symbol)?.graph;
        let key = c_str(key, "key")?;
        publish_optional(&GET_ATTR, attribute(graph, key), out, success)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    const JSON: &str = r#"{
        "nodes": [
            {"op": "null", "name": "x", "attrs": {"__lr_mult__": "2.0"}, "inputs": []},
            {"op": "split", "name": "sp", "attrs": {"num_outputs": "2"}, "inputs": [[0, 0, 0]]}
        ],
        "arg_nodes": [0],
        "heads": [[1, 0, 0], [1, 1, 0]],
        "attrs": {"mxnet_version": ["int", 10901]}
    }"#;

    fn handle() -> SymbolHandle {
        let text = CString::new(JSON).unwrap();
        let mut h: SymbolHandle = std::ptr::null_mut();
        assert_eq!(unsafe { MXSymbolCreateFromJSON(text.as_ptr(), &mut h) }, 0);
        h
    }

    unsafe fn names(p: *mut *const c_char, n: MxUint) -> Vec<String> {
        (0..n as usize)
            .map(|i| CStr::from_ptr(*p.add(i)).to_string_lossy().into_owned())
            .collect()
    }

    unsafe fn attr(h: SymbolHandle, key: &str) -> Option<String> {
        let key = CString::new(key).unwrap();
        let mut out: *const c_char = std::ptr::null();
        let mut success = -1;
        assert_eq!(MXSymbolGetAttr(h, key.as_ptr(), &mut out, &mut success), 0);
        (success == 1).then(|| CStr::from_ptr(out).to_string_lossy().into_owned())
    }

    #[test]
    fn list_and_split_outputs() {
        let h = handle();
        unsafe {
            let (mut n, mut p) = (0, std::ptr::null_mut());
            assert_eq!(MXSymbolListOutputs(h, &mut n, &mut p), 0);
            assert_eq!(names(p, n), ["sp_output0", "sp_output1"]);
            let mut count = 0;
            assert_eq!(MXSymbolGetNumOutputs(h, &mut count), 0);
            assert_eq!(count, 2);
            let mut second: SymbolHandle = std::ptr::null_mut();
            assert_eq!(MXSymbolGetOutput(h, 1, &mut second), 0);
            assert_eq!(MXSymbolListOutputs(second, &mut n, &mut p), 0);
            assert_eq!(names(p, n), ["sp_output1"]);
            assert_eq!(MXSymbolGetOutput(h, 2, &mut second), -1);
            assert_eq!(MXSymbolFree(second), 0);
            assert_eq!(MXSymbolFree(h), 0);
        }
    }

    #[test]
    fn attributes_follow_mxnet() {
        let h = handle();
        unsafe {
            assert_eq!(attr(h, "name").as_deref(), Some("sp"));
            assert_eq!(attr(h, "op_name").as_deref(), Some("SliceChannel"));
            assert_eq!(attr(h, "_value_index").as_deref(), Some("0, 1"));
            assert_eq!(attr(h, "num_outputs").as_deref(), Some("2"));
            assert_eq!(attr(h, "nosuch"), None);
            let mut internals: SymbolHandle = std::ptr::null_mut();
            assert_eq!(MXSymbolGetInternals(h, &mut internals), 0);
            let mut x: SymbolHandle = std::ptr::null_mut();
            assert_eq!(MXSymbolGetOutput(internals, 0, &mut x), 0);
            assert_eq!(attr(x, "lr_mult").as_deref(), Some("2.0"));
            assert_eq!(attr(x, "op_name").as_deref(), Some("null"));
            // The internals come from two nodes, so they have no name.
            assert_eq!(attr(internals, "name"), None);
            for s in [x, internals, h] {
                MXSymbolFree(s);
            }
        }
    }

    #[test]
    fn null_and_invalid_arguments_fail() {
        unsafe {
            let mut h: SymbolHandle = std::ptr::null_mut();
            assert_eq!(MXSymbolCreateFromJSON(std::ptr::null(), &mut h), -1);
            let bad = CString::new("{\"nodes\": [").unwrap();
            assert_eq!(MXSymbolCreateFromJSON(bad.as_ptr(), &mut h), -1);
            let (mut n, mut p) = (0, std::ptr::null_mut());
            assert_eq!(
                MXSymbolListArguments(std::ptr::null_mut(), &mut n, &mut p),
                -1
            );
            let h = handle();
            assert_eq!(MXSymbolListArguments(h, std::ptr::null_mut(), &mut p), -1);
            assert_eq!(NNSymbolListInputNames(h, 3, &mut n, &mut p), -1);
            assert_eq!(NNSymbolFree(h), 0);
            assert_eq!(MXSymbolFree(std::ptr::null_mut()), 0);
        }
    }

    #[test]
    fn save_to_json_round_trips() {
        let h = handle();
        unsafe {
            let mut text: *const c_char = std::ptr::null();
            assert_eq!(MXSymbolSaveToJSON(h, &mut text), 0);
            let mut copy: SymbolHandle = std::ptr::null_mut();
            assert_eq!(MXSymbolCreateFromJSON(text, &mut copy), 0);
            let (mut n, mut p) = (0, std::ptr::null_mut());
            assert_eq!(MXSymbolListArguments(copy, &mut n, &mut p), 0);
            assert_eq!(names(p, n), ["x"]);
            MXSymbolFree(copy);
            MXSymbolFree(h);
        }
    }
}

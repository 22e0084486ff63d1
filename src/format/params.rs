//! Reader and writer for MXNet's NDArray list files (`*.params`, `mx.nd.save`).
//!
//! Layout (all little-endian, no padding): u64 magic 0x112, u64 reserved,
//! u64 array count N, N array records, u64 name count K (0 or N), then K
//! names as u64 length + bytes. A record starts with a u32 that selects its
//! version: 0xF993FAC8 (V1, i64 dims), 0xF993FAC9 (V2, adds a storage type),
//! 0xF993FACA (V3, numpy-shape semantics, rejected here) or anything else,
//! which is the dimension count of a legacy V0 record with u32 dims.
//!
//! Every count or size the file claims is checked against the bytes that
//! remain before anything is allocated for it.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

const LIST_MAGIC: u64 = 0x112;
const V1_MAGIC: u32 = 0xF993_FAC8;
const V2_MAGIC: u32 = 0xF993_FAC9;
const V3_MAGIC: u32 = 0xF993_FACA;

/// The arrays of an NDArray list file, with their names if the list is named.
/// An entry is `None` for a "none" array (a V1/V2 record with zero dimensions).
#[derive(Debug, Clone, Default)]
pub struct NdList {
    pub arrays: Vec<Option<Tensor>>,
    /// Empty for an unnamed list, else one name per array.
    pub names: Vec<String>,
}

impl NdList {
    /// Iterates over `(name, tensor)` pairs of a named list, skipping none arrays.
    pub fn named(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.names
            .iter()
            .zip(&self.arrays)
            .filter_map(|(n, a)| a.as_ref().map(|t| (n.as_str(), t)))
    }
}

/// Little-endian cursor over a byte slice that fails cleanly at the end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::Params(format!(
                "truncated file: {what} needs {n} bytes at offset {}, only {} remain",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }

    fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }

    fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
}

/// Reads an NDArray list file from memory.
pub fn load_params(bytes: &[u8]) -> Result<NdList> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let magic = r.u64("list header")?;
    if magic != LIST_MAGIC {
        return Err(Error::Params(format!(
            "bad list magic {magic:#x} (expected 0x112): not an MXNet NDArray file"
        )));
    }
    r.u64("reserved header field")?;
    let count = r.u64("array count")?;
    // The smallest record (V2 none array) takes 12 bytes.
    if count > (r.remaining() / 12) as u64 {
        return Err(Error::Params(format!(
            "array count {count} cannot fit in the {} bytes that follow",
            r.remaining()
        )));
    }
    let mut arrays = Vec::with_capacity(count as usize);
    for index in 0..count as usize {
        let array = read_record(&mut r).map_err(|e| match e {
            Error::Params(msg) => Error::Params(format!("record {index}: {msg}")),
            other => other,
        })?;
        arrays.push(array);
    }
    let names = read_names(&mut r, arrays.len())?;
    if r.remaining() != 0 {
        return Err(Error::Params(format!(
            "{} bytes of trailing data after the name list (offset {})",
            r.remaining(),
            r.pos
        )));
    }
    // Name errors are reported after all records were read, so attach names now.
    Ok(NdList { arrays, names })
}

/// Reads a `.params` file from disk.
pub fn load_params_file(path: &std::path::Path) -> Result<NdList> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    load_params(&bytes)
}

fn read_names(r: &mut Reader, count: usize) -> Result<Vec<String>> {
    let name_count = r.u64("name count")?;
    if name_count != 0 && name_count != count as u64 {
        return Err(Error::Params(format!(
            "name count {name_count} is neither 0 nor the array count {count}"
        )));
    }
    let mut names = Vec::with_capacity(name_count as usize);
    for i in 0..name_count as usize {
        let len = r.u64("name length")?;
        if len > r.remaining() as u64 {
            return Err(Error::Params(format!(
                "name {i}: length {len} exceeds the {} bytes that remain",
                r.remaining()
            )));
        }
        let raw = r.take(len as usize, "name")?;
        names.push(String::from_utf8_lossy(raw).into_owned());
    }
    Ok(names)
}

fn read_record(r: &mut Reader) -> Result<Option<Tensor>> {
    let head = r.u32("record magic")?;
    let shape = match head {
        V3_MAGIC => {
            return Err(Error::Params(
                "numpy-shape (V3) records are not supported; save the array with \
                 numpy semantics off (mx.nd.save)"
                    .into(),
            ))
        }
        V2_MAGIC => {
            let stype = r.i32("storage type")?;
            if stype != 0 {
                let kind = match stype {
                    1 => "row_sparse",
                    2 => "csr",
                    _ => "unknown",
                };
                return Err(Error::Params(format!(
                    "storage type {stype} ({kind}) is not supported, only dense arrays"
                )));
            }
            match read_i64_shape(r)? {
                Some(s) => s,
                None => return Ok(None),
            }
        }
        V1_MAGIC => match read_i64_shape(r)? {
            Some(s) => s,
            None => return Ok(None),
        },
        ndim => read_u32_shape(r, ndim)?,
    };
    r.i32("context device type")?;
    r.i32("context device id")?;
    let flag = r.i32("dtype flag")?;
    let dtype = DType::from_flag(flag).map_err(|_| {
        Error::Params(format!(
            "unknown or unsupported dtype flag {flag} (supported: 0-7, 12)"
        ))
    })?;
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::Params(format!("shape {shape:?} overflows the element count")))?;
    let nbytes = numel
        .checked_mul(dtype.size())
        .filter(|&n| n <= r.remaining())
        .ok_or_else(|| {
            Error::Params(format!(
                "shape {shape:?} of {dtype} needs more data than the {} bytes that remain",
                r.remaining()
            ))
        })?;
    let data = r.take(nbytes, "array data")?;
    Tensor::from_bytes(dtype, &shape, data).map(Some)
}

/// Reads an i32 ndim and i64 dims (V1, V2). `None` means a "none" array.
fn read_i64_shape(r: &mut Reader) -> Result<Option<Vec<usize>>> {
    let ndim = r.i32("ndim")?;
    if ndim < 0 {
        return Err(Error::Params(format!("negative ndim {ndim}")));
    }
    if ndim == 0 {
        return Ok(None);
    }
    if ndim as usize * 8 > r.remaining() {
        return Err(Error::Params(format!(
            "ndim {ndim} needs more bytes than the {} that remain",
            r.remaining()
        )));
    }
    let mut shape = Vec::with_capacity(ndim as usize);
    for _ in 0..ndim {
        let d = r.i64("dimension")?;
        if d < 0 {
            return Err(Error::Params(format!("negative dimension {d}")));
        }
        shape.push(
            usize::try_from(d).map_err(|_| Error::Params(format!("dimension {d} too large")))?,
        );
    }
    Ok(Some(shape))
}

/// Reads the u32 dims of a legacy V0 record whose ndim was the record's first word.
fn read_u32_shape(r: &mut Reader, ndim: u32) -> Result<Vec<usize>> {
    if ndim as u64 * 4 > r.remaining() as u64 {
        return Err(Error::Params(format!(
            "unknown record magic {ndim:#x} (read as a legacy ndim, it needs more bytes \
             than the {} that remain)",
            r.remaining()
        )));
    }
    (0..ndim)
        .map(|_| r.u32("legacy dimension").map(|d| d as usize))
        .collect()
}

/// Serialises arrays as MXNet 1.9.1 does: V2 records, context cpu(0), names
/// only when `names` is not empty. Fails on a none array, as MXNet does.
pub fn save_params(arrays: &[&Tensor], names: &[&str]) -> Result<Vec<u8>> {
    if !names.is_empty() && names.len() != arrays.len() {
        return Err(Error::invalid(format!(
            "{} names for {} arrays",
            names.len(),
            arrays.len()
        )));
    }
    let mut out = Vec::new();
    out.extend_from_slice(&LIST_MAGIC.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&(arrays.len() as u64).to_le_bytes());
    for t in arrays {
        if t.ndim() == 0 {
            return Err(Error::invalid(
                "cannot save a 0-d array in a V2 record (it would load as none)",
            ));
        }
        out.extend_from_slice(&V2_MAGIC.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&(t.ndim() as i32).to_le_bytes());
        for &d in t.shape() {
            out.extend_from_slice(&(d as i64).to_le_bytes());
        }
        out.extend_from_slice(&1i32.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&t.dtype().flag().to_le_bytes());
        out.extend_from_slice(t.bytes());
    }
    out.extend_from_slice(&(names.len() as u64).to_le_bytes());
    for n in names {
        out.extend_from_slice(&(n.len() as u64).to_le_bytes());
        out.extend_from_slice(n.as_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_named_list() {
        let a = Tensor::from_f32(&[2, 3], &[0., 1., 2., 3., 4., 5.]).unwrap();
        let b = Tensor::from_slice::<i8>(DType::I8, &[4], &[-1, 2, -128, 127]).unwrap();
        let c = Tensor::from_slice::<u8>(DType::U8, &[3], &[0, 1, 255]).unwrap();
        let bytes = save_params(&[&a, &b, &c], &["arg:a", "arg:b", "aux:c"]).unwrap();
        assert_eq!(bytes.len(), 206);
        let list = load_params(&bytes).unwrap();
        assert_eq!(list.names, ["arg:a", "arg:b", "aux:c"]);
        assert_eq!(
            list.arrays[1].as_ref().unwrap().bytes(),
            &[0xff, 2, 0x80, 0x7f]
        );
    }

    #[test]
    fn empty_list_is_32_bytes() {
        let bytes = save_params(&[], &[]).unwrap();
        assert_eq!(bytes.len(), 32);
        assert!(load_params(&bytes).unwrap().arrays.is_empty());
    }
}

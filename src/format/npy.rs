//! Minimal reader and writer for numpy's `.npy` format (versions 1.0–3.0),
//! little-endian, C order, for the dtypes MXNet uses.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::{checked_numel, Tensor};

const MAGIC: &[u8] = b"\x93NUMPY";

fn err(msg: impl Into<String>) -> Error {
    Error::invalid(format!("invalid .npy file: {}", msg.into()))
}

fn dtype_from_descr(descr: &str) -> Result<DType> {
    Ok(match descr {
        "<f4" => DType::F32,
        "<f8" => DType::F64,
        "<f2" => DType::F16,
        "|u1" | "<u1" => DType::U8,
        "|i1" | "<i1" => DType::I8,
        "<i4" => DType::I32,
        "<i8" => DType::I64,
        "|b1" => DType::Bool,
        other => return Err(err(format!("unsupported dtype {other:?} (use float32, float64, float16, uint8, int8, int32, int64 or bool, little-endian)"))),
    })
}

fn descr(dtype: DType) -> Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::F16 => "<f2",
        DType::U8 => "|u1",
        DType::I8 => "|i1",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::Bool => "|b1",
        DType::BF16 => {
            return Err(Error::invalid(
                "numpy has no bfloat16 dtype; cast the array first",
            ))
        }
    })
}

/// Extracts the value text of `key` from the header dict, e.g. `'descr': '<f4'`.
fn header_value<'a>(header: &'a str, key: &str) -> Result<&'a str> {
    let pat = format!("'{key}':");
    let start = header
        .find(&pat)
        .ok_or_else(|| err(format!("header has no {key:?}")))?
        + pat.len();
    let rest = header[start..].trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')').map(|i| i + 1)
    } else {
        rest.find([',', '}'])
    }
    .ok_or_else(|| err(format!("unterminated {key:?} in header")))?;
    Ok(rest[..end].trim())
}

/// Parses a `.npy` file from memory.
pub fn read_npy(bytes: &[u8]) -> Result<Tensor> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err("missing \\x93NUMPY magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(err(format!("unsupported version {v}"))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| err("truncated header"))?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| err("header is not text"))?;
    let descr_text = header_value(header, "descr")?.trim_matches(['\'', '"']);
    let dtype = dtype_from_descr(descr_text)?;
    if header_value(header, "fortran_order")? != "False" {
        return Err(err(
            "Fortran-order arrays are not supported; save with np.ascontiguousarray",
        ));
    }
    let shape_text = header_value(header, "shape")?;
    let shape = shape_text
        .trim_matches(['(', ')'])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| err(format!("bad shape {shape_text}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let nbytes = checked_numel(&shape)
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| err(format!("shape {shape:?} is too large")))?;
    let data = &bytes[end..];
    if data.len() != nbytes {
        return Err(err(format!(
            "shape {shape:?} of {dtype} needs {nbytes} data bytes, the file has {}",
            data.len()
        )));
    }
    Tensor::from_bytes(dtype, &shape, data)
}

/// Serialises a tensor as a version 1.0 `.npy` file.
pub fn write_npy(t: &Tensor) -> Result<Vec<u8>> {
    let shape = match t.shape() {
        [d] => format!("({d},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        descr(t.dtype())?
    );
    // Pad so the data starts on a 64-byte boundary, ending the header with '\n'.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + t.bytes().len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(t.bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_roundtrip() {
        let t = Tensor::from_f32(&[2, 3], &[1., 2., 3., 4., 5., -6.]).unwrap();
        let bytes = write_npy(&t).unwrap();
        assert_eq!((bytes.len() - t.bytes().len()) % 64, 0);
        let back = read_npy(&bytes).unwrap();
        assert_eq!(back.shape(), &[2, 3]);
        assert_eq!(back.f32s().unwrap(), t.f32s().unwrap());
    }

    #[test]
    fn npy_rejects_short_data() {
        let t = Tensor::from_f32(&[4], &[1., 2., 3., 4.]).unwrap();
        let bytes = write_npy(&t).unwrap();
        assert!(read_npy(&bytes[..bytes.len() - 1]).is_err());
    }
}

//! `Tensor`: a dense, row-major array with a dtype, a shape and 64-byte
//! aligned storage.

use crate::dtype::DType;
use crate::error::{Error, Result};
use bytemuck::Pod;

/// One cache line; the unit of storage, so every buffer starts 64-byte aligned.
#[derive(Clone, Copy, Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Zero-initialised, 64-byte aligned bytes.
#[derive(Clone, Default)]
pub struct Buffer {
    lines: Vec<Line>,
    len: usize,
}

impl Buffer {
    /// Allocates `len` zero bytes; fails instead of aborting when the
    /// system refuses the memory. The zeroed allocation maps pages lazily.
    pub fn try_zeroed(len: usize) -> Result<Buffer> {
        let lines = bytemuck::allocation::try_zeroed_vec::<Line>(len.div_ceil(64))
            .map_err(|()| Error::invalid(format!("cannot allocate {len} bytes: out of memory")))?;
        Ok(Buffer { lines, len })
    }

    /// Allocates `len` zero bytes for small, bounded sizes; panics if the
    /// memory cannot be had (callers inside the C API turn that into an error).
    pub fn zeroed(len: usize) -> Buffer {
        Buffer::try_zeroed(len).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Copies `bytes` into a new aligned buffer.
    pub fn from_bytes(bytes: &[u8]) -> Buffer {
        // Filled line by line instead of zeroed first: an aligned zeroed
        // allocation is written twice, and parameter files are large.
        let mut lines = Vec::new();
        if lines.try_reserve_exact(bytes.len().div_ceil(64)).is_err() {
            panic!("cannot allocate {} bytes: out of memory", bytes.len());
        }
        lines.extend(bytes.chunks(64).map(|chunk| {
            let mut line = Line([0; 64]);
            line.0[..chunk.len()].copy_from_slice(chunk);
            line
        }));
        Buffer {
            lines,
            len: bytes.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes the buffer can hold without reallocating.
    pub fn capacity(&self) -> usize {
        self.lines.len() * 64
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.lines)[..self.len]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.lines)[..self.len]
    }
}

/// Number of elements of `shape`, or `None` if the product overflows `usize`.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// A dense array. The element count of `shape` times the dtype size always
/// equals the storage length.
#[derive(Clone)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: Buffer,
}

/// An empty float32 tensor of shape `[0]`, used as a placeholder.
impl Default for Tensor {
    fn default() -> Self {
        Tensor {
            dtype: DType::F32,
            shape: vec![0],
            data: Buffer::default(),
        }
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({}, {:?})", self.dtype, self.shape)
    }
}

impl Tensor {
    /// Allocates a zero-filled tensor. Fails if the byte size overflows.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Result<Tensor> {
        let bytes = checked_numel(shape)
            .and_then(|n| n.checked_mul(dtype.size()))
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| Error::invalid(format!("shape {shape:?} is too large")))?;
        Ok(Tensor {
            dtype,
            shape: shape.to_vec(),
            data: Buffer::try_zeroed(bytes)?,
        })
    }

    /// Builds a tensor on an existing buffer, which must be large enough;
    /// used by the executor to reuse memory between entries. With `clear`
    /// the elements are zero, otherwise they keep the buffer's bytes.
    pub fn on_buffer(
        dtype: DType,
        shape: &[usize],
        mut buf: Buffer,
        clear: bool,
    ) -> Result<Tensor> {
        let bytes = checked_numel(shape)
            .and_then(|n| n.checked_mul(dtype.size()))
            .filter(|&b| b <= buf.capacity())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "shape {shape:?} of {dtype} does not fit a buffer of {} bytes",
                    buf.capacity()
                ))
            })?;
        buf.len = bytes;
        if clear {
            buf.bytes_mut().fill(0);
        }
        Ok(Tensor {
            dtype,
            shape: shape.to_vec(),
            data: buf,
        })
    }

    /// Gives the storage back, e.g. to a buffer pool.
    pub fn into_buffer(self) -> Buffer {
        self.data
    }

    /// Builds a tensor from raw little-endian bytes of `dtype`.
    pub fn from_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<Tensor> {
        let expected = checked_numel(shape).and_then(|n| n.checked_mul(dtype.size()));
        if expected != Some(bytes.len()) {
            return Err(Error::invalid(format!(
                "{} bytes do not match shape {shape:?} of {dtype}",
                bytes.len()
            )));
        }
        Ok(Tensor {
            dtype,
            shape: shape.to_vec(),
            data: Buffer::from_bytes(bytes),
        })
    }

    /// Builds an f32 tensor from values.
    pub fn from_f32(shape: &[usize], values: &[f32]) -> Result<Tensor> {
        Tensor::from_bytes(DType::F32, shape, bytemuck::cast_slice(values))
    }

    /// Builds a tensor of any plain element type whose size matches `dtype`.
    pub fn from_slice<T: Pod>(dtype: DType, shape: &[usize], values: &[T]) -> Result<Tensor> {
        if std::mem::size_of::<T>() != dtype.size() {
            return Err(Error::invalid(format!(
                "element size {} does not match {dtype}",
                std::mem::size_of::<T>()
            )));
        }
        Tensor::from_bytes(dtype, shape, bytemuck::cast_slice(values))
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn bytes(&self) -> &[u8] {
        self.data.bytes()
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.data.bytes_mut()
    }

    /// Views the elements as `T`; fails if `T`'s size is not the dtype's size.
    pub fn as_slice<T: Pod>(&self) -> Result<&[T]> {
        self.check_elem::<T>()?;
        Ok(bytemuck::cast_slice(self.data.bytes()))
    }

    /// Mutable view of the elements as `T`.
    pub fn as_mut_slice<T: Pod>(&mut self) -> Result<&mut [T]> {
        self.check_elem::<T>()?;
        Ok(bytemuck::cast_slice_mut(self.data.bytes_mut()))
    }

    /// f32 view; fails unless the dtype is float32.
    pub fn f32s(&self) -> Result<&[f32]> {
        self.expect_dtype(DType::F32)?;
        self.as_slice()
    }

    /// Mutable f32 view; fails unless the dtype is float32.
    pub fn f32s_mut(&mut self) -> Result<&mut [f32]> {
        self.expect_dtype(DType::F32)?;
        self.as_mut_slice()
    }

    /// Changes the shape without touching the data; the element count must not change.
    pub fn reshape(&mut self, shape: &[usize]) -> Result<()> {
        if checked_numel(shape) != Some(self.numel()) {
            return Err(Error::invalid(format!(
                "cannot reshape {:?} to {shape:?}",
                self.shape
            )));
        }
        self.shape = shape.to_vec();
        Ok(())
    }

    /// Converts every element to f32 (for printing, comparisons and casts).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        let b = self.bytes();
        match self.dtype {
            DType::F32 => bytemuck::pod_collect_to_vec::<u8, f32>(b),
            DType::F64 => bytemuck::pod_collect_to_vec::<u8, f64>(b)
                .into_iter()
                .map(|v| v as f32)
                .collect(),
            DType::F16 => bytemuck::pod_collect_to_vec::<u8, half::f16>(b)
                .into_iter()
                .map(f32::from)
                .collect(),
            DType::BF16 => bytemuck::pod_collect_to_vec::<u8, half::bf16>(b)
                .into_iter()
                .map(f32::from)
                .collect(),
            DType::U8 | DType::Bool => b.iter().map(|&v| v as f32).collect(),
            DType::I8 => b.iter().map(|&v| v as i8 as f32).collect(),
            DType::I32 => bytemuck::pod_collect_to_vec::<u8, i32>(b)
                .into_iter()
                .map(|v| v as f32)
                .collect(),
            DType::I64 => bytemuck::pod_collect_to_vec::<u8, i64>(b)
                .into_iter()
                .map(|v| v as f32)
                .collect(),
        }
    }

    fn expect_dtype(&self, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(Error::invalid(format!(
                "expected a {dtype} tensor, got {}",
                self.dtype
            )));
        }
        Ok(())
    }

    fn check_elem<T: Pod>(&self) -> Result<()> {
        if std::mem::size_of::<T>() != self.dtype.size() {
            return Err(Error::invalid(format!(
                "element type of size {} does not match {}",
                std::mem::size_of::<T>(),
                self.dtype
            )));
        }
        Ok(())
    }
}

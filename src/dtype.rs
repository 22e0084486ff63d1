//! Element types, numbered with MXNet's type flags (mshadow `TypeFlag`).

use crate::error::{Error, Result};
use std::fmt;

/// Element type of a tensor. The discriminant is MXNet's type flag as stored
/// in `.params` files and passed through the C API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum DType {
    F32 = 0,
    F64 = 1,
    F16 = 2,
    U8 = 3,
    I32 = 4,
    I8 = 5,
    I64 = 6,
    Bool = 7,
    BF16 = 12,
}

impl DType {
    /// Maps an MXNet type flag to a dtype. Flags 8–11 (int16, uint16,
    /// uint32, uint64) are rejected because MXNet 1.9.1 cannot load them either.
    pub fn from_flag(flag: i32) -> Result<DType> {
        Ok(match flag {
            0 => DType::F32,
            1 => DType::F64,
            2 => DType::F16,
            3 => DType::U8,
            4 => DType::I32,
            5 => DType::I8,
            6 => DType::I64,
            7 => DType::Bool,
            12 => DType::BF16,
            _ => return Err(Error::invalid(format!("unknown dtype flag {flag}"))),
        })
    }

    /// MXNet's type flag.
    pub fn flag(self) -> i32 {
        self as i32
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::U8 | DType::I8 | DType::Bool => 1,
        }
    }

    /// The numpy / MXNet name, as used in `dtype` attributes.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::F16 => "float16",
            DType::U8 => "uint8",
            DType::I32 => "int32",
            DType::I8 => "int8",
            DType::I64 => "int64",
            DType::Bool => "bool",
            DType::BF16 => "bfloat16",
        }
    }

    /// Parses a dtype name as written in operator attributes (`"float32"`, `"int8"`, …).
    pub fn from_name(name: &str) -> Option<DType> {
        Some(match name {
            "float32" => DType::F32,
            "float64" => DType::F64,
            "float16" => DType::F16,
            "uint8" => DType::U8,
            "int32" => DType::I32,
            "int8" => DType::I8,
            "int64" => DType::I64,
            "bool" => DType::Bool,
            "bfloat16" => DType::BF16,
            _ => return None,
        })
    }

    /// True for the floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

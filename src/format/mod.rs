//! Bytes to model and back: `.params` NDArray lists and symbol JSON.

pub mod npy;
pub mod params;
pub mod symbol;

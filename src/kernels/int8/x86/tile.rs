//! The arguments of a register-tile microkernel.

/// Most output pixels of one register tile in any tier.
pub(super) const MAX_TILE_PIXELS: usize = 12;

/// int32 values per pixel row of a tile's result buffer: the widest tile
/// (4 panels of 16 channels).
pub(super) const TILE_ROW: usize = 64;

/// One register tile: `MR` output pixels by `NV` panels of 16 output channels.
///
/// For pixel `m`, tap `t` and step `s`, the kernel reads the 4 data bytes at
/// `bases[m] + tap_offsets[t] + 4·s` and the weights at
/// `panels + v·panel_stride + (t·steps + s)·step_bytes` for panel `v`.
pub(super) struct TileArgs<'a> {
    pub bases: [*const u8; MAX_TILE_PIXELS],
    pub tap_offsets: &'a [isize],
    pub steps: usize,
    pub panels: *const u8,
    pub panel_stride: usize,
    /// Initial accumulators (the +128 shift correction), 16 per panel;
    /// read only by kernels for shifted signed data.
    pub init: *const i32,
    /// Result: row `m` at `out + m·TILE_ROW`, channels in natural order.
    pub out: *mut i32,
}

/// A microkernel. Callers guarantee the CPU runs its tier and every address
/// it derives from [`TileArgs`] is readable (or writable for `out`).
pub(super) type TileFn = unsafe fn(&TileArgs);

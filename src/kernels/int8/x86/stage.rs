//! The output stage on vectors: the arithmetic of
//! [`OutputStage::store_row`], 16 or 8 channels at a time.
//!
//! Every step is the same IEEE f32 operation in the same order as the scalar
//! stage (no fused multiply-add), and conversions round half to even as
//! `cvtps2dq` does under the default MXCSR, so results match bit for bit.
//! Activations without an exact vector form run lane by lane through
//! [`Activation::apply`]. The one difference: when two operands of an
//! addition or product are both NaN, which NaN payload survives may differ.

use std::any::TypeId;
use std::arch::x86_64::*;

use crate::kernels::int8::elem::{OutputElem, QuantSlice};
use crate::kernels::int8::output::{Activation, OutputStage, PerChannel};

/// Calls `$columns::<UNSIGNED, ACT, SUM, POST_RELU>$args` with the constants
/// of the [`FastForm`] `$form`, so each form runs a loop without branches.
macro_rules! dispatch_form {
    ($form:expr, $columns:ident, $args:tt) => {
        dispatch_form!(@arms $form, $columns, $args;
            false, 0, false, false; false, 0, false, true; false, 0, true, false; false, 0, true, true;
            false, 1, false, false; false, 1, false, true; false, 1, true, false; false, 1, true, true;
            false, 2, false, false; false, 2, false, true; false, 2, true, false; false, 2, true, true;
            true, 0, false, false; true, 0, false, true; true, 0, true, false; true, 0, true, true;
            true, 1, false, false; true, 1, false, true; true, 1, true, false; true, 1, true, true;
            true, 2, false, false; true, 2, false, true; true, 2, true, false; true, 2, true, true)
    };
    (@arms $form:expr, $columns:ident, $args:tt;
        $($u:literal, $a:literal, $s:literal, $p:literal);*) => {
        match ($form.unsigned, $form.act, $form.sum, $form.post_relu) {
            $(($u, $a, $s, $p) => $columns::<$u, $a, $s, $p> $args,)*
            _ => unreachable!("activation codes are 0, 1 or 2"),
        }
    };
}

/// Applies the float steps of a [`LaneForm`] to one vector of 16 int32
/// accumulators with their bias and scale vectors (and, for a form with a
/// sum, the residual already multiplied by its scale), and evaluates to the
/// rounded int32 values, to be narrowed with saturation (`vpackssdw` and
/// `vpackuswb`/`vpacksswb`, or a clamp and `vpmovdb`). A macro, so that it
/// expands inside each kernel with that kernel's target features.
///
/// Narrowing with saturation clamps every int32 into the output type. So an
/// unsigned output needs no ReLU (it only changes values that store 0
/// anyway), and the upper bound is only needed where the conversion could
/// overflow (it turns values of 2^31 or more into -2^31). No value is NaN
/// (`lane_form` requires it).
macro_rules! lane_quantize {
    ($acc:expr, $bias:expr, $scale:expr, $form:expr) => {
        lane_quantize!($acc, $bias, $scale, $form, None)
    };
    ($acc:expr, $bias:expr, $scale:expr, $form:expr, $residual:expr) => {{
        let form: LaneForm = $form;
        let residual: Option<__m512> = $residual;
        let zero = _mm512_setzero_ps();
        let mut v = _mm512_mul_ps(_mm512_add_ps(_mm512_cvtepi32_ps($acc), $bias), $scale);
        // A ReLU before a sum changes what the sum gives, whatever the type.
        if (!form.unsigned || residual.is_some()) && form.act == 1 {
            v = _mm512_max_ps(v, zero);
        } else if form.act == 2 {
            let (lo, hi) = (_mm512_set1_ps(form.clip.0), _mm512_set1_ps(form.clip.1));
            v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        }
        if let Some(r) = residual {
            v = _mm512_add_ps(v, r);
        }
        if !form.unsigned && form.post_relu {
            v = _mm512_max_ps(v, zero);
        }
        if !form.in_int32 || form.act == 2 {
            let high = if form.unsigned { 255.0 } else { 127.0 };
            v = _mm512_min_ps(v, _mm512_set1_ps(high));
        }
        _mm512_cvtps_epi32(v)
    }};
}
pub(super) use lane_quantize;

/// Calls `$pick::<UNSIGNED, ACT, POST_RELU, IN_INT32>()` with the constants
/// of the [`LaneForm`] `$form` (which must have no sum), so that each byte
/// store is compiled per form and branches on none of them.
macro_rules! dispatch_byte_form {
    ($form:expr, $pick:ident) => {
        dispatch_byte_form!(@arms $form, $pick;
            false 0 false false, false 0 false true, false 0 true false, false 0 true true,
            false 1 false false, false 1 false true, false 1 true false, false 1 true true,
            false 2 false false, false 2 false true, false 2 true false, false 2 true true,
            true 0 false false, true 0 false true, true 0 true false, true 0 true true,
            true 1 false false, true 1 false true, true 1 true false, true 1 true true,
            true 2 false false, true 2 false true, true 2 true false, true 2 true true)
    };
    (@arms $form:expr, $pick:ident; $($u:literal $a:literal $p:literal $i:literal),*) => {
        match ($form.unsigned, $form.act, $form.post_relu, $form.in_int32) {
            $(($u, $a, $p, $i) => $pick::<$u, $a, $p, $i>(),)*
            _ => unreachable!("activation codes are 0, 1 or 2"),
        }
    };
}
pub(super) use dispatch_byte_form;

/// Element type of the output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OutKind {
    I8,
    U8,
    I32,
    F32,
}

impl OutKind {
    pub(super) fn of<O: 'static>() -> Option<OutKind> {
        let id = TypeId::of::<O>();
        if id == TypeId::of::<i8>() {
            Some(OutKind::I8)
        } else if id == TypeId::of::<u8>() {
            Some(OutKind::U8)
        } else if id == TypeId::of::<i32>() {
            Some(OutKind::I32)
        } else if id == TypeId::of::<f32>() {
            Some(OutKind::F32)
        } else {
            None
        }
    }
}

/// A per-channel stage parameter, resolved once per call.
#[derive(Clone, Copy)]
pub(super) enum Param<'a> {
    Absent,
    Uniform(f32),
    PerChannel(&'a [f32]),
}

impl<'a> Param<'a> {
    fn new(values: &'a PerChannel, channels: usize, what: &str) -> Param<'a> {
        match values.0.len() {
            0 => Param::Absent,
            1 => Param::Uniform(values.0[0]),
            n => {
                assert!(
                    n >= channels,
                    "output stage {what} has {n} values for {channels} channels"
                );
                Param::PerChannel(&values.0)
            }
        }
    }
}

/// An activation in the form the vector code applies it.
#[derive(Clone, Copy)]
enum VecAct {
    Relu,
    Leaky(f32),
    Clip(f32, f32),
    Abs,
    Square,
    Sqrt,
    /// An activation without an exact vector form, applied lane by lane
    /// with [`Activation::apply`].
    Lanewise(Activation),
}

impl VecAct {
    fn new(act: Activation, kind: OutKind) -> VecAct {
        match act {
            Activation::Relu => VecAct::Relu,
            Activation::Leaky { slope } => VecAct::Leaky(slope),
            // `f32::max`/`min` leave the sign of a zero result unspecified, so
            // only integer outputs, where -0 and +0 both store 0, clip on vectors.
            Activation::Clip { min, max }
                if kind != OutKind::F32 && !min.is_nan() && !max.is_nan() =>
            {
                VecAct::Clip(min, max)
            }
            Activation::Abs => VecAct::Abs,
            Activation::Square => VecAct::Square,
            Activation::Sqrt => VecAct::Sqrt,
            other => VecAct::Lanewise(other),
        }
    }
}

/// Kept out of line so that it compiles exactly as the scalar stage's call
/// does, without the vector target features of its callers.
#[inline(never)]
fn apply_lane(act: Activation, v: f32) -> f32 {
    act.apply(v)
}

/// An [`OutputStage`] prepared for one kernel call.
pub(super) struct StagePlan<'a> {
    stage: &'a OutputStage,
    kind: OutKind,
    identity: bool,
    bias: Param<'a>,
    scale: Param<'a>,
    act: Option<VecAct>,
    act_scale: Option<f32>,
    /// Residual scale and operand, present when both are given.
    sum: Option<(f32, QuantSlice<'a>)>,
    residual: Option<QuantSlice<'a>>,
    post_act: Option<VecAct>,
    /// The branch-free form of this stage, if it has one.
    fast: Option<FastForm>,
}

impl<'a> StagePlan<'a> {
    /// Prepares `stage` for outputs of `kind` with `channels` channels.
    pub(super) fn new(
        stage: &'a OutputStage,
        kind: OutKind,
        residual: Option<QuantSlice<'a>>,
        channels: usize,
    ) -> StagePlan<'a> {
        let mut plan = StagePlan {
            stage,
            kind,
            identity: stage.is_identity(),
            bias: Param::new(&stage.bias, channels, "bias"),
            scale: Param::new(&stage.scale, channels, "scale"),
            act: stage.activation.map(|a| VecAct::new(a, kind)),
            act_scale: stage.act_scale,
            sum: stage.sum_scale.zip(residual),
            residual,
            post_act: stage.post_sum_activation.map(|a| VecAct::new(a, kind)),
            fast: None,
        };
        plan.fast = FastForm::of(&plan);
        plan
    }

    /// Returns the branch-free form of this stage for kernels that apply it
    /// in their own vector layout. It is `Some` when the stage has a fast
    /// form and no value can become NaN (see [`FastForm::bounded`]).
    pub(super) fn lane_form(&self) -> Option<LaneForm> {
        let f = self.fast.filter(|f| f.finite)?;
        // Each of the two f32 roundings adds at most a relative 2^-24, so a
        // margin of 2^-20 keeps every rounded value below the bound.
        const INT32_SAFE: f64 = 2_147_483_000.0;
        Some(LaneForm {
            unsigned: f.unsigned,
            act: f.act,
            clip: f.clip,
            post_relu: f.post_relu,
            sum: f.sum,
            in_int32: f.largest * (1.0 + 1.0 / 1_048_576.0) < INT32_SAFE,
        })
    }

    /// Bias and scale of `channel` as the fast forms apply them: an absent
    /// bias is +0 and an absent scale is 1.
    pub(super) fn bias_scale(&self, channel: usize) -> (f32, f32) {
        let value = |p: Param, absent: f32| match p {
            Param::Absent => absent,
            Param::Uniform(v) => v,
            Param::PerChannel(v) => v[channel],
        };
        (value(self.bias, 0.0), value(self.scale, 1.0))
    }

    /// Stores one value with the scalar stage's code.
    ///
    /// # Safety
    /// `out` must point to an output buffer of this plan's kind with more than
    /// `index` elements, and `index` must be inside the residual if there is one.
    unsafe fn store_scalar(&self, acc: i32, channel: usize, index: usize, out: *mut u8) {
        // SAFETY: the caller guarantees `out` has element `index` of `self.kind`.
        unsafe {
            match self.kind {
                OutKind::I8 => self.store_scalar_as::<i8>(acc, channel, index, out),
                OutKind::U8 => self.store_scalar_as::<u8>(acc, channel, index, out),
                OutKind::I32 => self.store_scalar_as::<i32>(acc, channel, index, out),
                OutKind::F32 => self.store_scalar_as::<f32>(acc, channel, index, out),
            }
        }
    }

    unsafe fn store_scalar_as<O: OutputElem>(
        &self,
        acc: i32,
        channel: usize,
        index: usize,
        out: *mut u8,
    ) {
        let value = if self.identity {
            O::from_acc(acc)
        } else {
            let r = self.residual.map(|s| s.get_f32(index));
            O::from_f32(self.stage.compute(channel, acc, r))
        };
        // SAFETY: the caller guarantees `out` is an `O` buffer holding `index`.
        unsafe { out.cast::<O>().add(index).write_unaligned(value) };
    }
}

/// Stores a tile: `rows` rows of `n` accumulators each, row `m` at
/// `acc + m·acc_stride`, for channels `channel..channel + n`, into output
/// elements `index + m·out_stride ..`, 16 channels at a time (the last
/// column masked). Each column loads its per-channel parameters once for
/// all rows.
///
/// # Safety
/// The CPU must support AVX-512 F, BW and VL. Every row must hold `n`
/// accumulators, `out` must be a buffer of the plan's kind holding the
/// elements written, and the residual, if any, must be as long as the output.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn store_tile_avx512(
    plan: &StagePlan,
    acc: *const i32,
    acc_stride: usize,
    rows: usize,
    n: usize,
    channel: usize,
    index: usize,
    out_stride: usize,
    out: *mut u8,
) {
    let bytes = matches!(plan.kind, OutKind::I8 | OutKind::U8);
    let mut done = 0;
    if let Some(form) = plan.lane_form().filter(|_| bytes) {
        // Whole rows of 64, then 32 and 16 channels; any last channels
        // below 16 go through the general loops below.
        while done + 16 <= n {
            let width = if done + 64 <= n {
                64
            } else if done + 32 <= n {
                32
            } else {
                16
            };
            let rows_of = rows_of_bytes_fn(width / 16, form);
            // SAFETY: forwarded from the caller, for channels
            // `done..done + width`.
            unsafe {
                rows_of(
                    plan,
                    form,
                    acc.add(done),
                    acc_stride,
                    rows,
                    channel + done,
                    index + done,
                    out_stride,
                    out,
                )
            };
            done += width;
        }
        if done == n {
            return;
        }
    }
    let (acc, n, channel, index) = (
        // SAFETY: `done <= n`, inside every accumulator row.
        unsafe { acc.add(done) },
        n - done,
        channel + done,
        index + done,
    );
    if let Some(form) = plan.fast.filter(|f| f.finite) {
        // SAFETY: forwarded from the caller.
        return unsafe {
            dispatch_form!(
                form,
                fast_columns_avx512,
                (plan, form.clip, acc, acc_stride, rows, n, channel, index, out_stride, out)
            )
        };
    }
    for i in (0..n).step_by(16) {
        let mask = lane_mask(n - i);
        for m in 0..rows {
            let at = index + m * out_stride + i;
            // SAFETY: lanes past `n` are masked off, so only the row's
            // accumulators are read and only its output elements written.
            unsafe {
                let a = _mm512_maskz_loadu_epi32(mask, acc.add(m * acc_stride + i));
                if plan.identity {
                    store_acc_avx512(plan.kind, a, mask, out, at);
                } else {
                    let v = compute_avx512(plan, a, mask, channel + i, at);
                    store_f32_avx512(plan.kind, v, mask, out, at);
                }
            }
        }
    }
}

/// Stores `rows` rows of `16·V` int8 or uint8 outputs (V = 1, 2 or 4) in
/// a [`LaneForm`]: per row, V vectors of accumulators are quantized,
/// narrowed together with saturation (`vpackssdw`, then `vpackuswb` or
/// `vpacksswb`), put back in channel order with one `vpermd` and stored as
/// one vector of `16·V` bytes.
///
/// # Safety
/// As [`store_tile_avx512`] with `n` = `16·V`; `plan` must have `form` as
/// its lane form and int8 or uint8 outputs.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn rows_of_bytes_avx512<
    const V: usize,
    const U: bool,
    const A: u8,
    const S: bool,
    const P: bool,
>(
    plan: &StagePlan,
    form: LaneForm,
    acc: *const i32,
    acc_stride: usize,
    rows: usize,
    channel: usize,
    index: usize,
    out_stride: usize,
    out: *mut u8,
) {
    // The form's fields as constants, so no vector branches on them.
    let form = LaneForm {
        unsigned: U,
        act: A,
        sum: S,
        post_relu: P,
        ..form
    };
    let mut bias = [_mm512_setzero_ps(); 4];
    let mut scale = [_mm512_setzero_ps(); 4];
    for j in 0..V {
        bias[j] = param_vector(plan.bias, 0.0, channel + 16 * j);
        scale[j] = param_vector(plan.scale, 1.0, channel + 16 * j);
    }
    let sum = plan.sum.filter(|_| form.sum);
    let sum_scale = _mm512_set1_ps(sum.map_or(0.0, |(s, _)| s));
    for m in 0..rows {
        // SAFETY: the caller guarantees the row's `16·V` accumulators and
        // output bytes, and the residual's elements at the same indices.
        unsafe {
            let row = acc.add(m * acc_stride);
            let at = index + m * out_stride;
            // A loop, not a closure: closures do not inherit the target
            // features, and one here was not inlined.
            let mut q = [_mm512_setzero_si512(); 4];
            for (j, q) in q.iter_mut().enumerate().take(V) {
                let a = _mm512_loadu_si512(row.add(16 * j).cast());
                let residual = match sum {
                    Some((_, r)) => {
                        let r = load_residual_avx512(r, u16::MAX, at + 16 * j);
                        Some(_mm512_mul_ps(sum_scale, r))
                    }
                    None => None,
                };
                *q = lane_quantize!(a, bias[j], scale[j], form, residual);
            }
            // Vectors past V repeat the first ones, so the first `4·V`
            // words of the result are the row's channels in order.
            for j in V..4 {
                q[j] = q[j % V];
            }
            let ordered = pack_channels(q, form.unsigned);
            let at = out.add(at);
            match V {
                4 => _mm512_storeu_si512(at.cast(), ordered),
                2 => _mm256_storeu_si256(at.cast(), _mm512_castsi512_si256(ordered)),
                _ => _mm_storeu_si128(at.cast(), _mm512_castsi512_si128(ordered)),
            }
        }
    }
}

type RowsOfBytes =
    unsafe fn(&StagePlan, LaneForm, *const i32, usize, usize, usize, usize, usize, *mut u8);

/// Returns [`rows_of_bytes_avx512`] for `vectors` (1, 2 or 4) vectors of
/// channels and the constants of `form`.
fn rows_of_bytes_fn(vectors: usize, form: LaneForm) -> RowsOfBytes {
    fn one<const U: bool, const A: u8, const S: bool, const P: bool>() -> RowsOfBytes {
        rows_of_bytes_avx512::<1, U, A, S, P>
    }
    fn two<const U: bool, const A: u8, const S: bool, const P: bool>() -> RowsOfBytes {
        rows_of_bytes_avx512::<2, U, A, S, P>
    }
    fn four<const U: bool, const A: u8, const S: bool, const P: bool>() -> RowsOfBytes {
        rows_of_bytes_avx512::<4, U, A, S, P>
    }
    match vectors {
        4 => dispatch_form!(form, four, ()),
        2 => dispatch_form!(form, two, ()),
        _ => dispatch_form!(form, one, ()),
    }
}

/// Accumulators of one register tile: pixel `p`, vector `v` at `p·V + v`
/// for tiles of `V` vectors per pixel.
pub(super) type TileVectors = [__m512i; 24];

/// The output and parameters of a tile that [`store_bytes_fns`]'s functions
/// store through a byte form without a sum: pixel `p`'s masked-in bytes go
/// to `out + p·step`, with the bias and scale of each vector of channels.
pub(super) struct ByteRows {
    /// 16 values each, for the tile's vectors.
    pub bias: [*const f32; 4],
    pub scale: [*const f32; 4],
    pub clip: (f32, f32),
    pub out: *mut u8,
    pub step: usize,
    pub mask: __mmask64,
}

/// Returns the mask of the first `count` (at most 64) bytes.
pub(super) fn first_bytes(count: usize) -> __mmask64 {
    if count >= 64 {
        u64::MAX
    } else {
        (1u64 << count) - 1
    }
}

/// Stores `pixels` pixels of a tile of `V` vectors per pixel.
pub(super) type StoreBytesFn = unsafe fn(&TileVectors, usize, &ByteRows);

/// Applies the byte form given by the constants (unsigned output,
/// activation code, post-sum ReLU, values inside int32) to `pixels` pixels
/// of `V` vectors and stores their bytes. Constant forms leave no branch
/// per vector. When a pixel's channels are whole vectors and the next pixel
/// follows them (16 or 32 channels in all), one store takes `4 / V` pixels.
///
/// # Safety
/// The CPU must support AVX-512 BW; `acc` must hold `pixels·V` vectors, the
/// sink's first `V` bias and scale pointers 16 values each, and its output
/// room for the pixels' masked-in bytes.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn store_bytes<const V: usize, const U: bool, const A: u8, const P: bool, const I: bool>(
    acc: &TileVectors,
    pixels: usize,
    sink: &ByteRows,
) {
    let form = LaneForm {
        unsigned: U,
        act: A,
        clip: sink.clip,
        post_relu: P,
        sum: false,
        in_int32: I,
    };
    let mut bias = [_mm512_setzero_ps(); 4];
    let mut scale = [_mm512_setzero_ps(); 4];
    for v in 0..V {
        // SAFETY: the caller guarantees 16 values at each pointer.
        bias[v] = unsafe { _mm512_loadu_ps(sink.bias[v]) };
        scale[v] = unsafe { _mm512_loadu_ps(sink.scale[v]) };
    }
    let run = if sink.step == 16 * V && sink.mask == first_bytes(16 * V) {
        4 / V
    } else {
        1
    };
    let mut p = 0;
    while p < pixels {
        let count = run.min(pixels - p);
        let mut q = [_mm512_setzero_si512(); 4];
        for k in 0..count {
            for v in 0..V {
                q[k * V + v] = lane_quantize!(acc[(p + k) * V + v], bias[v], scale[v], form);
            }
        }
        let bytes = pack_channels(q, U);
        let mask = if run > 1 {
            first_bytes(16 * V * count)
        } else {
            sink.mask
        };
        // SAFETY: the caller guarantees room for the pixels' masked-in bytes.
        unsafe { _mm512_mask_storeu_epi8(sink.out.add(p * sink.step).cast(), mask, bytes) };
        p += count;
    }
}

/// Returns the [`store_bytes`] functions of `form` (which must have no
/// sum), by vector count 1 to 4.
pub(super) fn store_bytes_fns(form: LaneForm) -> [StoreBytesFn; 4] {
    fn by_vectors<const U: bool, const A: u8, const P: bool, const I: bool>() -> [StoreBytesFn; 4] {
        [
            store_bytes::<1, U, A, P, I>,
            store_bytes::<2, U, A, P, I>,
            store_bytes::<3, U, A, P, I>,
            store_bytes::<4, U, A, P, I>,
        ]
    }
    assert!(!form.sum, "store_bytes_fns: the form has a sum");
    dispatch_byte_form!(form, by_vectors)
}

/// Narrows 4 vectors of int32 to 64 bytes with saturation (`vpackssdw`,
/// then `vpackuswb` or `vpacksswb`). Lane `l` of vector `j` lands at byte
/// `16·(l / 4) + 4·j + l % 4`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) fn pack_bytes(q: [__m512i; 4], unsigned: bool) -> __m512i {
    let low = _mm512_packs_epi32(q[0], q[1]);
    let high = _mm512_packs_epi32(q[2], q[3]);
    if unsigned {
        _mm512_packus_epi16(low, high)
    } else {
        _mm512_packs_epi16(low, high)
    }
}

/// Narrows 4 vectors of 16 channels each to 64 bytes in channel order:
/// [`pack_bytes`], then one `vpermd` that puts 32-bit word `4·l + j`
/// (channels `16·j + 4·l ..`) back at word `4·j + l`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) fn pack_channels(q: [__m512i; 4], unsigned: bool) -> __m512i {
    let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_permutexvar_epi32(order, pack_bytes(q, unsigned))
}

/// Returns the 16 values of a stage parameter from channel `at` on, or
/// `absent` in every lane when the stage has none.
#[target_feature(enable = "avx512f")]
pub(super) fn param_vector(p: Param, absent: f32, at: usize) -> __m512 {
    match p {
        Param::Absent => _mm512_set1_ps(absent),
        Param::Uniform(v) => _mm512_set1_ps(v),
        // SAFETY: the slice has 16 values from `at` (it panics otherwise).
        Param::PerChannel(v) => unsafe { _mm512_loadu_ps(v[at..at + 16].as_ptr()) },
    }
}

/// Returns the mask of the first `lanes` of 16 lanes (all 16 for more).
fn lane_mask(lanes: usize) -> __mmask16 {
    if lanes >= 16 {
        u16::MAX
    } else {
        ((1u32 << lanes) - 1) as u16
    }
}

/// Stores a tile in one fast form, 16 channels at a time; see
/// [`fast_columns`] on why an absent bias or scale may be applied as +0 or ·1.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn fast_columns_avx512<
    const UNSIGNED: bool,
    const ACT: u8,
    const SUM: bool,
    const POST_RELU: bool,
>(
    plan: &StagePlan,
    clip: (f32, f32),
    acc: *const i32,
    acc_stride: usize,
    rows: usize,
    n: usize,
    channel: usize,
    index: usize,
    out_stride: usize,
    out: *mut u8,
) {
    let zero = _mm512_setzero_ps();
    let (lo, hi) = (_mm512_set1_ps(clip.0), _mm512_set1_ps(clip.1));
    let (sum_scale, residual) = match plan.sum {
        Some((s, r)) => (_mm512_set1_ps(s), Some(r)),
        None => (zero, None),
    };
    let high = _mm512_set1_ps(127.0);
    for i in (0..n).step_by(16) {
        let mask = lane_mask(n - i);
        // SAFETY: per-channel parameters have a value for every channel;
        // lanes past `n` are masked off.
        let load = |p: Param, absent: f32| match p {
            Param::Absent => _mm512_set1_ps(absent),
            Param::Uniform(v) => _mm512_set1_ps(v),
            Param::PerChannel(v) => unsafe {
                _mm512_maskz_loadu_ps(mask, v.as_ptr().add(channel + i))
            },
        };
        let bias = load(plan.bias, 0.0);
        let scale = load(plan.scale, 1.0);
        for m in 0..rows {
            let at = index + m * out_stride + i;
            // SAFETY: the caller guarantees the row's accumulators and the
            // output (and residual) elements of the masked-in lanes.
            unsafe {
                let a = _mm512_maskz_loadu_epi32(mask, acc.add(m * acc_stride + i));
                let mut v = _mm512_mul_ps(_mm512_add_ps(_mm512_cvtepi32_ps(a), bias), scale);
                if ACT == 1 {
                    v = _mm512_max_ps(v, zero);
                } else if ACT == 2 {
                    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
                }
                if SUM {
                    if let Some(r) = residual {
                        let r = load_residual_avx512(r, mask, at);
                        v = _mm512_add_ps(v, _mm512_mul_ps(sum_scale, r));
                    }
                }
                // No value is NaN (the form is `finite`), and the bounds are
                // integers, so clamping only where the conversion needs it
                // and then narrowing with saturation equals the scalar
                // clamp-then-round: uint8 needs v >= 0 (`cvtps2dq` turns
                // values of 2^31 or more into 0x8000_0000, which the unsigned
                // narrowing saturates to 255), int8 needs v <= 127 (that
                // value would saturate to -128).
                if UNSIGNED {
                    // This maximum is also the post-sum ReLU; after a ReLU
                    // with no sum, v is already non-negative.
                    if ACT != 1 || SUM {
                        v = _mm512_max_ps(v, zero);
                    }
                    let q = _mm512_cvtps_epi32(v);
                    _mm512_mask_cvtusepi32_storeu_epi8(out.cast::<i8>().add(at), mask, q);
                } else {
                    if POST_RELU {
                        v = _mm512_max_ps(v, zero);
                    }
                    let q = _mm512_cvtps_epi32(_mm512_min_ps(v, high));
                    _mm512_mask_cvtsepi32_storeu_epi8(out.cast::<i8>().add(at), mask, q);
                }
            }
        }
    }
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn compute_avx512(
    plan: &StagePlan,
    acc: __m512i,
    mask: __mmask16,
    channel: usize,
    index: usize,
) -> __m512 {
    let mut v = _mm512_cvtepi32_ps(acc);
    // SAFETY (all loads below): per-channel parameters have a value for
    // every channel, as `StagePlan::new` checks. The residual is as long as
    // the output, and lanes past the row are masked off.
    match plan.bias {
        Param::Absent => {}
        Param::Uniform(b) => v = _mm512_add_ps(v, _mm512_set1_ps(b)),
        Param::PerChannel(b) => {
            let b = unsafe { _mm512_maskz_loadu_ps(mask, b.as_ptr().add(channel)) };
            v = _mm512_add_ps(v, b);
        }
    }
    match plan.scale {
        Param::Absent => {}
        Param::Uniform(s) => v = _mm512_mul_ps(v, _mm512_set1_ps(s)),
        Param::PerChannel(s) => {
            let s = unsafe { _mm512_maskz_loadu_ps(mask, s.as_ptr().add(channel)) };
            v = _mm512_mul_ps(v, s);
        }
    }
    if let Some(act) = plan.act {
        v = activate_avx512(act, v);
    }
    if let Some(s) = plan.act_scale {
        v = _mm512_mul_ps(v, _mm512_set1_ps(s));
    }
    if let Some((s, residual)) = plan.sum {
        let r = unsafe { load_residual_avx512(residual, mask, index) };
        v = _mm512_add_ps(v, _mm512_mul_ps(_mm512_set1_ps(s), r));
    }
    if let Some(act) = plan.post_act {
        v = activate_avx512(act, v);
    }
    v
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn load_residual_avx512(residual: QuantSlice, mask: __mmask16, index: usize) -> __m512 {
    // SAFETY: the caller guarantees the masked-in elements exist.
    let ints = unsafe {
        match residual {
            QuantSlice::I8(r) => {
                _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, r.as_ptr().add(index)))
            }
            QuantSlice::U8(r) => {
                _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, r.as_ptr().add(index).cast()))
            }
            QuantSlice::I32(r) => _mm512_maskz_loadu_epi32(mask, r.as_ptr().add(index)),
        }
    };
    _mm512_cvtepi32_ps(ints)
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
fn activate_avx512(act: VecAct, v: __m512) -> __m512 {
    let zero = _mm512_setzero_ps();
    match act {
        // `vmaxps` returns its second operand for NaN and for -0 vs +0,
        // which is the scalar `if v > 0 { v } else { 0 }`.
        VecAct::Relu => _mm512_max_ps(v, zero),
        VecAct::Leaky(slope) => {
            let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, zero);
            _mm512_mask_blend_ps(positive, _mm512_mul_ps(v, _mm512_set1_ps(slope)), v)
        }
        // `f32::max` ignores a NaN operand; `vmaxps` returns the second one.
        VecAct::Clip(lo, hi) => {
            _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(lo)), _mm512_set1_ps(hi))
        }
        VecAct::Abs => _mm512_abs_ps(v),
        VecAct::Square => _mm512_mul_ps(v, v),
        VecAct::Sqrt => _mm512_sqrt_ps(v),
        VecAct::Lanewise(act) => {
            let mut lanes = [0f32; 16];
            // SAFETY: `lanes` has room for 16 floats.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), v) };
            for x in &mut lanes {
                *x = apply_lane(act, *x);
            }
            // SAFETY: as above.
            unsafe { _mm512_loadu_ps(lanes.as_ptr()) }
        }
    }
}

/// Rounds half to even and saturates into `[lo, hi]`; NaN becomes 0, as in
/// `QuantElem::saturate`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
fn round_saturate_avx512(v: __m512, lo: f32, hi: f32) -> __m512i {
    let ordered = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(v, v);
    let v = _mm512_maskz_mov_ps(ordered, v);
    let v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(lo)), _mm512_set1_ps(hi));
    _mm512_cvtps_epi32(v)
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn store_f32_avx512(kind: OutKind, v: __m512, mask: __mmask16, out: *mut u8, index: usize) {
    // SAFETY: the caller guarantees the masked-in elements exist in `out`.
    unsafe {
        match kind {
            OutKind::F32 => _mm512_mask_storeu_ps(out.cast::<f32>().add(index), mask, v),
            OutKind::I8 => {
                let q = round_saturate_avx512(v, -128.0, 127.0);
                _mm512_mask_cvtepi32_storeu_epi8(out.cast::<i8>().add(index), mask, q);
            }
            OutKind::U8 => {
                let q = round_saturate_avx512(v, 0.0, 255.0);
                _mm512_mask_cvtepi32_storeu_epi8(out.cast::<i8>().add(index), mask, q);
            }
            OutKind::I32 => {
                let q = round_saturate_avx512(v, -2_147_483_648.0, 2_147_483_520.0);
                _mm512_mask_storeu_epi32(out.cast::<i32>().add(index), mask, q);
            }
        }
    }
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn store_acc_avx512(kind: OutKind, a: __m512i, mask: __mmask16, out: *mut u8, index: usize) {
    let clamp = |lo: i32, hi: i32| {
        _mm512_min_epi32(
            _mm512_max_epi32(a, _mm512_set1_epi32(lo)),
            _mm512_set1_epi32(hi),
        )
    };
    // SAFETY: the caller guarantees the masked-in elements exist in `out`.
    unsafe {
        match kind {
            OutKind::I32 => _mm512_mask_storeu_epi32(out.cast::<i32>().add(index), mask, a),
            OutKind::F32 => {
                _mm512_mask_storeu_ps(out.cast::<f32>().add(index), mask, _mm512_cvtepi32_ps(a))
            }
            OutKind::I8 => _mm512_mask_cvtepi32_storeu_epi8(
                out.cast::<i8>().add(index),
                mask,
                clamp(-128, 127),
            ),
            OutKind::U8 => {
                _mm512_mask_cvtepi32_storeu_epi8(out.cast::<i8>().add(index), mask, clamp(0, 255))
            }
        }
    }
}

/// Stores a tile: `rows` rows of `n` accumulators each, row `m` at
/// `acc + m·acc_stride`, for channels `channel..channel + n`, into output
/// elements `index + m·out_stride ..`, 8 channels at a time and the last
/// `n % 8` through the scalar stage. Each 8-channel column loads its
/// per-channel parameters once for all rows.
///
/// # Safety
/// The CPU must support AVX2; otherwise as [`store_tile_avx512`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn store_tile_avx2(
    plan: &StagePlan,
    acc: *const i32,
    acc_stride: usize,
    rows: usize,
    n: usize,
    channel: usize,
    index: usize,
    out_stride: usize,
    out: *mut u8,
) {
    let full = n - n % 8;
    let mut i = 0;
    if full > 0 {
        if let Some(form) = plan.fast {
            // SAFETY: forwarded from the caller, for the first `full` channels.
            unsafe {
                dispatch_form!(
                    form,
                    fast_columns,
                    (
                        plan, form.clip, acc, acc_stride, rows, full, channel, index, out_stride,
                        out
                    )
                )
            };
            i = full;
        }
    }
    while i < full {
        let params = channel_params_avx2(plan, channel + i);
        for m in 0..rows {
            let at = index + m * out_stride + i;
            // SAFETY: elements `i..i + 8` of row `m` are inside the tile.
            unsafe {
                let a = _mm256_loadu_si256(acc.add(m * acc_stride + i).cast());
                if plan.identity {
                    store_acc_avx2(plan.kind, a, out, at);
                } else {
                    let v = apply_avx2(plan, params, a, at);
                    store_f32_avx2(plan.kind, v, out, at);
                }
            }
        }
        i += 8;
    }
    for m in 0..rows {
        for j in full..n {
            // SAFETY: element `j` of row `m` is inside the tile.
            unsafe {
                plan.store_scalar(
                    *acc.add(m * acc_stride + j),
                    channel + j,
                    index + m * out_stride + j,
                    out,
                )
            };
        }
    }
}

/// The steps of a fast form, for kernels with their own lane order. First
/// `v = (f32(acc) + bias) · scale`, then the activation (0: none, 1: ReLU,
/// 2: clip to `clip`), the residual times its scale if `sum`, and ReLU if
/// `post_relu`. Last, round half to even and saturate to uint8 or int8.
#[derive(Clone, Copy, Debug)]
pub(super) struct LaneForm {
    pub unsigned: bool,
    pub act: u8,
    pub clip: (f32, f32),
    pub post_relu: bool,
    /// A residual is added after the activation (with `plan.sum`'s scale).
    pub sum: bool,
    /// Every value before the activation lies strictly inside the int32
    /// range, so converting it cannot overflow.
    pub in_int32: bool,
}

/// A stage form that [`fast_columns`] and [`fast_columns_avx512`] run
/// without branching per vector: int8 or uint8 output, an optional ReLU or
/// clip, an optional residual sum and an optional post-sum ReLU.
#[derive(Clone, Copy)]
struct FastForm {
    unsigned: bool,
    /// 0: no activation, 1: ReLU, 2: clip to `clip`.
    act: u8,
    clip: (f32, f32),
    sum: bool,
    post_relu: bool,
    /// Every intermediate value is finite whatever the accumulator, so no
    /// NaN can reach the final conversion (see [`FastForm::bounded`]).
    finite: bool,
    /// An upper bound of `|v|` before the activation (see
    /// [`FastForm::largest_value`]).
    largest: f64,
}

impl FastForm {
    fn of(plan: &StagePlan) -> Option<FastForm> {
        let unsigned = match plan.kind {
            OutKind::U8 => true,
            OutKind::I8 => false,
            _ => return None,
        };
        if plan.identity || plan.act_scale.is_some() {
            return None;
        }
        let (act, clip) = match plan.act {
            None => (0, (0.0, 0.0)),
            Some(VecAct::Relu) => (1, (0.0, 0.0)),
            Some(VecAct::Clip(lo, hi)) => (2, (lo, hi)),
            Some(_) => return None,
        };
        let post_relu = match plan.post_act {
            None => false,
            Some(VecAct::Relu) => true,
            Some(_) => return None,
        };
        let largest = FastForm::largest_value(plan);
        Some(FastForm {
            unsigned,
            act,
            clip,
            sum: plan.sum.is_some(),
            post_relu,
            finite: FastForm::bounded(plan, largest),
            largest,
        })
    }

    /// True when bias, scale and residual scale are small enough that no
    /// step of the stage can overflow to infinity from any int32
    /// accumulator and int8, uint8 or int32 residual: then no value is NaN.
    /// `largest` is [`FastForm::largest_value`] of `plan`.
    fn bounded(plan: &StagePlan, largest: f64) -> bool {
        const LIMIT: f64 = 1e30;
        largest < LIMIT && plan.sum.is_none_or(|(s, _)| s.is_finite())
    }

    /// Returns an upper bound of `|v|` before the activation over every
    /// int32 accumulator (and residual), or infinity.
    fn largest_value(plan: &StagePlan) -> f64 {
        fn largest(p: Param, absent: f32) -> f64 {
            let values: &[f32] = match p {
                Param::Absent => &[absent],
                Param::Uniform(ref v) => std::slice::from_ref(v),
                Param::PerChannel(v) => v,
            };
            // Without the sign bit, the bits of floats order as their
            // magnitudes, and infinities and NaNs lie above every finite
            // value: an integer maximum that vectorizes.
            let bits = values
                .iter()
                .map(|x| x.to_bits() & 0x7fff_ffff)
                .max()
                .unwrap_or(0);
            if bits >= f32::INFINITY.to_bits() {
                f64::INFINITY
            } else {
                f32::from_bits(bits) as f64
            }
        }
        const ACC: f64 = 2_147_483_648.0;
        let product = (ACC + largest(plan.bias, 0.0)) * largest(plan.scale, 1.0);
        let sum = plan.sum.map_or(0.0, |(s, _)| ACC * (s.abs() as f64));
        product + sum
    }
}

/// Stores the first `n` (a multiple of 8) channels of a tile in one fast form. An absent bias adds +0 and
/// an absent scale multiplies by 1, which leave every value converted from
/// an int32 unchanged, so the results equal the general stage's.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
unsafe fn fast_columns<
    const UNSIGNED: bool,
    const ACT: u8,
    const SUM: bool,
    const POST_RELU: bool,
>(
    plan: &StagePlan,
    clip: (f32, f32),
    acc: *const i32,
    acc_stride: usize,
    rows: usize,
    n: usize,
    channel: usize,
    index: usize,
    out_stride: usize,
    out: *mut u8,
) {
    let zero = _mm256_setzero_ps();
    let (lo, hi) = (_mm256_set1_ps(clip.0), _mm256_set1_ps(clip.1));
    let (sum_scale, residual) = match plan.sum {
        Some((s, r)) => (_mm256_set1_ps(s), Some(r)),
        None => (zero, None),
    };
    let (min, max) = if UNSIGNED {
        (0.0, 255.0)
    } else {
        (-128.0, 127.0)
    };
    for i in (0..n).step_by(8) {
        let params = channel_params_avx2(plan, channel + i);
        let bias = params.bias.unwrap_or(zero);
        let scale = params.scale.unwrap_or(_mm256_set1_ps(1.0));
        for m in 0..rows {
            let at = index + m * out_stride + i;
            // SAFETY: the caller guarantees 8 accumulators and 8 output
            // elements (and residual elements) here.
            unsafe {
                let a = _mm256_loadu_si256(acc.add(m * acc_stride + i).cast());
                let mut v = _mm256_mul_ps(_mm256_add_ps(_mm256_cvtepi32_ps(a), bias), scale);
                if ACT == 1 {
                    v = _mm256_max_ps(v, zero);
                } else if ACT == 2 {
                    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
                }
                if SUM {
                    if let Some(r) = residual {
                        let r = load_residual_avx2(r, at);
                        v = _mm256_add_ps(v, _mm256_mul_ps(sum_scale, r));
                    }
                }
                if POST_RELU {
                    v = _mm256_max_ps(v, zero);
                }
                let q = narrow_avx2(round_saturate_avx2(v, min, max), UNSIGNED);
                _mm_storel_epi64(out.add(at).cast(), q);
            }
        }
    }
}

/// Bias and scale of 8 channels from `channel`; absent parameters are
/// `None`, so the arithmetic skips them exactly as the scalar stage does.
#[derive(Clone, Copy)]
struct ChannelParams {
    bias: Option<__m256>,
    scale: Option<__m256>,
}

#[target_feature(enable = "avx2")]
fn channel_params_avx2(plan: &StagePlan, channel: usize) -> ChannelParams {
    // SAFETY (both loads): per-channel parameters have a value for every
    // channel, so the 8 lanes from `channel` are readable.
    let load = |p: Param| match p {
        Param::Absent => None,
        Param::Uniform(v) => Some(_mm256_set1_ps(v)),
        Param::PerChannel(v) => Some(unsafe { _mm256_loadu_ps(v.as_ptr().add(channel)) }),
    };
    ChannelParams {
        bias: load(plan.bias),
        scale: load(plan.scale),
    }
}

#[target_feature(enable = "avx2")]
unsafe fn apply_avx2(
    plan: &StagePlan,
    params: ChannelParams,
    acc: __m256i,
    index: usize,
) -> __m256 {
    let mut v = _mm256_cvtepi32_ps(acc);
    if let Some(b) = params.bias {
        v = _mm256_add_ps(v, b);
    }
    if let Some(s) = params.scale {
        v = _mm256_mul_ps(v, s);
    }
    if let Some(act) = plan.act {
        v = activate_avx2(act, v);
    }
    if let Some(s) = plan.act_scale {
        v = _mm256_mul_ps(v, _mm256_set1_ps(s));
    }
    if let Some((s, residual)) = plan.sum {
        // SAFETY: the residual is as long as the output, so 8 elements
        // from `index` exist.
        let r = unsafe { load_residual_avx2(residual, index) };
        v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_set1_ps(s), r));
    }
    if let Some(act) = plan.post_act {
        v = activate_avx2(act, v);
    }
    v
}

#[target_feature(enable = "avx2")]
unsafe fn load_residual_avx2(residual: QuantSlice, index: usize) -> __m256 {
    // SAFETY: the caller guarantees 8 elements from `index` exist.
    let ints = unsafe {
        match residual {
            QuantSlice::I8(r) => {
                _mm256_cvtepi8_epi32(_mm_loadl_epi64(r.as_ptr().add(index).cast()))
            }
            QuantSlice::U8(r) => {
                _mm256_cvtepu8_epi32(_mm_loadl_epi64(r.as_ptr().add(index).cast()))
            }
            QuantSlice::I32(r) => _mm256_loadu_si256(r.as_ptr().add(index).cast()),
        }
    };
    _mm256_cvtepi32_ps(ints)
}

#[target_feature(enable = "avx2")]
fn activate_avx2(act: VecAct, v: __m256) -> __m256 {
    let zero = _mm256_setzero_ps();
    match act {
        VecAct::Relu => _mm256_max_ps(v, zero),
        VecAct::Leaky(slope) => {
            let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(v, zero);
            _mm256_blendv_ps(_mm256_mul_ps(v, _mm256_set1_ps(slope)), v, positive)
        }
        VecAct::Clip(lo, hi) => {
            _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(lo)), _mm256_set1_ps(hi))
        }
        VecAct::Abs => _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX))),
        VecAct::Square => _mm256_mul_ps(v, v),
        VecAct::Sqrt => _mm256_sqrt_ps(v),
        VecAct::Lanewise(act) => {
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` has room for 8 floats.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
            for x in &mut lanes {
                *x = apply_lane(act, *x);
            }
            // SAFETY: as above.
            unsafe { _mm256_loadu_ps(lanes.as_ptr()) }
        }
    }
}

#[target_feature(enable = "avx2")]
pub(super) fn round_saturate_avx2(v: __m256, lo: f32, hi: f32) -> __m256i {
    let ordered = _mm256_cmp_ps::<_CMP_ORD_Q>(v, v);
    let v = _mm256_and_ps(v, ordered);
    let v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(lo)), _mm256_set1_ps(hi));
    _mm256_cvtps_epi32(v)
}

/// Narrows 8 int32 lanes already inside the target range to 8 bytes.
#[target_feature(enable = "avx2")]
pub(super) fn narrow_avx2(q: __m256i, unsigned: bool) -> __m128i {
    let words = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
    if unsigned {
        _mm_packus_epi16(words, words)
    } else {
        _mm_packs_epi16(words, words)
    }
}

#[target_feature(enable = "avx2")]
unsafe fn store_f32_avx2(kind: OutKind, v: __m256, out: *mut u8, index: usize) {
    // SAFETY: the caller guarantees 8 elements from `index` exist in `out`.
    unsafe {
        match kind {
            OutKind::F32 => _mm256_storeu_ps(out.cast::<f32>().add(index), v),
            OutKind::I8 => {
                let q = narrow_avx2(round_saturate_avx2(v, -128.0, 127.0), false);
                _mm_storel_epi64(out.add(index).cast(), q);
            }
            OutKind::U8 => {
                let q = narrow_avx2(round_saturate_avx2(v, 0.0, 255.0), true);
                _mm_storel_epi64(out.add(index).cast(), q);
            }
            OutKind::I32 => {
                let q = round_saturate_avx2(v, -2_147_483_648.0, 2_147_483_520.0);
                _mm256_storeu_si256(out.cast::<i32>().add(index).cast(), q);
            }
        }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn store_acc_avx2(kind: OutKind, a: __m256i, out: *mut u8, index: usize) {
    let clamp = |lo: i32, hi: i32| {
        _mm256_min_epi32(
            _mm256_max_epi32(a, _mm256_set1_epi32(lo)),
            _mm256_set1_epi32(hi),
        )
    };
    // SAFETY: the caller guarantees 8 elements from `index` exist in `out`.
    unsafe {
        match kind {
            OutKind::I32 => _mm256_storeu_si256(out.cast::<i32>().add(index).cast(), a),
            OutKind::F32 => _mm256_storeu_ps(out.cast::<f32>().add(index), _mm256_cvtepi32_ps(a)),
            OutKind::I8 => {
                _mm_storel_epi64(out.add(index).cast(), narrow_avx2(clamp(-128, 127), false))
            }
            OutKind::U8 => {
                _mm_storel_epi64(out.add(index).cast(), narrow_avx2(clamp(0, 255), true))
            }
        }
    }
}

//! The Cranelift JIT: every conv, pool and dense stage of the plan becomes
//! machine code specialised to its shapes (all sizes are constants, kernel
//! taps unrolled, loops kept), compiled at run time for the host CPU.
//!
//! Settings (measured; see docs/design.md): `opt_level = "none"` — "speed" spills
//! the many live accumulators and ran slower — and the host ISA from
//! `cranelift-native`, so `fma` becomes `vfmadd`. The verifier is on in
//! debug builds and tests.

mod conv;
mod dense;
mod emit;
mod network;
mod runtime_calls;

pub use network::JitNetwork;

use std::fmt;
use std::time::Instant;

use convc_runtime::Activation;
use convc_runtime::compiled::ConvGeom;
use convc_runtime::kernels::gemm::{PackedA, gemm_abt, gemm_packed, gemm_rows, gemv_on, transpose};
use convc_runtime::kernels::im2col::{self as rows, Im2col};
use convc_runtime::kernels::pool;
use convc_runtime::kernels::winograd;
use convc_runtime::kernels::{direct, filter_lanes};
use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature, UserFuncName, types};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module};

use crate::graph::Graph;
use crate::plan::{Plan, StageKind};
use emit::{Fx, Import, RuntimeFns};

/// A compiled kernel: `args` is a table of buffer pointers whose lengths
/// the caller checked against `batch`.
pub(crate) type KernelFn = unsafe extern "C" fn(args: *const *mut u8, batch: i64);

#[derive(Debug, Clone)]
pub struct JitError(pub String);

impl fmt::Display for JitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JIT compilation failed: {}", self.0)
    }
}

impl std::error::Error for JitError {}

extern "C" fn convc_expf(x: f32) -> f32 {
    x.exp()
}

extern "C" fn convc_tanhf(x: f32) -> f32 {
    x.tanh()
}

/// What Cranelift calls for `fma` on a CPU without FMA (it then lowers the
/// instruction to the libcall `fmaf`, ~50× slower, but correct).
extern "C" fn convc_fmaf(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// `len` values at `ptr` (none when `len` is 0, whatever `ptr` is).
///
/// # Safety
/// For `len > 0`, `ptr` points to `len` initialised values that nothing
/// writes while the slice lives.
unsafe fn view<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if len == 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// [`convc_runtime::kernels::gemm::gemm_packed`] for JIT code: `c = act(bias + A·b)`
/// with `a` a `PackedA`, `bias` null for none.
///
/// # Safety
/// `a` points to a live `PackedA`; `b` holds `a.depth()` rows of `n`
/// values `ldb` apart and `c` `a.rows()` rows of `n` values `ldc` apart
/// (not overlapping `b`); `bias`, unless null, `a.rows()` values. The JIT's
/// kernels pass the stage's buffers, sized by the closures in `network`.
#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn convc_gemm_packed(
    a: *const PackedA,
    b: *const f32,
    ldb: usize,
    n: usize,
    bias: *const f32,
    relu: usize,
    c: *mut f32,
    ldc: usize,
) {
    // SAFETY: the caller's contract, for every pointer.
    let a = unsafe { &*a };
    let span = |rows: usize, ld: usize| if rows == 0 || n == 0 { 0 } else { (rows - 1) * ld + n };
    // SAFETY: as above.
    let (b, bias) = unsafe { (view(b, span(a.depth(), ldb)), if bias.is_null() { &[][..] } else { view(bias, a.rows()) }) };
    let c_len = span(a.rows(), ldc);
    if c_len == 0 {
        return;
    }
    // SAFETY: as above; `c` is the only view of its values.
    let c = unsafe { std::slice::from_raw_parts_mut(c, c_len) };
    gemm_packed(a, b, ldb, n, bias, relu != 0, c, ldc);
}

/// [`gemm_rows`] for JIT code: [`convc_gemm_packed`] with `a` a row-major
/// `rows × depth` matrix read in place.
///
/// # Safety
/// As [`convc_gemm_packed`], with `a` holding `rows × depth` values; the
/// CPU has AVX-512 (the caller checked `reads_rows_in_place` when it
/// generated the call).
#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn convc_gemm_rows(
    a: *const f32,
    rows: usize,
    depth: usize,
    b: *const f32,
    ldb: usize,
    n: usize,
    bias: *const f32,
    relu: usize,
    c: *mut f32,
    ldc: usize,
) {
    let span = |rows: usize, ld: usize| if rows == 0 || n == 0 { 0 } else { (rows - 1) * ld + n };
    let c_len = span(rows, ldc);
    if c_len == 0 {
        return;
    }
    // SAFETY: the caller's contract, for every pointer; `c` is the only view of its values.
    let (a, b, bias, c) = unsafe {
        (
            view(a, rows * depth),
            view(b, span(depth, ldb)),
            if bias.is_null() { &[][..] } else { view(bias, rows) },
            std::slice::from_raw_parts_mut(c, c_len),
        )
    };
    gemm_rows(a, rows, depth, b, ldb, n, bias, relu != 0, c, ldc);
}

/// [`convc_runtime::kernels::gemm::gemm_abt`] for JIT code: `c += a·bᵀ`, both
/// read along the depth `k`.
///
/// # Safety
/// `a` holds `m` rows of `k` values `lda` apart, `b` `n` rows `ldb` apart,
/// `c` `m` rows of `n` values `ldc` apart, not overlapping `a` or `b`.
#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn convc_gemm_abt(
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    ldc: usize,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // SAFETY: the caller's contract.
    let (a, b, c) =
        unsafe { (view(a, (m - 1) * lda + k), view(b, (n - 1) * ldb + k), std::slice::from_raw_parts_mut(c, (m - 1) * ldc + n)) };
    gemm_abt(a, lda, b, ldb, m, n, k, c, ldc);
}

/// [`convc_runtime::kernels::gemm::gemv_on`] for JIT code: `y[n][r] += w[r]·x[n]`,
/// over the stage's `packed` weight when it holds the dot products' copy.
///
/// # Safety
/// `w` holds `rows × depth` values, `packed` points to the stage's live
/// [`PackedA`], `x` holds `images × depth` values, `y` `images × rows`,
/// `y` overlapping neither.
unsafe extern "C" fn convc_gemv(
    w: *const f32,
    packed: *const PackedA,
    rows: usize,
    depth: usize,
    x: *const f32,
    images: usize,
    y: *mut f32,
) {
    if rows == 0 || images == 0 {
        return;
    }
    // SAFETY: the caller's contract.
    let (w, packed, x, y) =
        unsafe { (view(w, rows * depth), &*packed, view(x, images * depth), std::slice::from_raw_parts_mut(y, images * rows)) };
    gemv_on(w, packed, rows, depth, x, images, y);
}

/// The stage geometry behind a JIT call's first argument.
///
/// # Safety
/// `g` points to the [`ConvGeom`] the calling stage's kernel closure holds
/// (and passes in its argument table): alive for the whole call.
unsafe fn stage<'a>(g: *const ConvGeom) -> &'a ConvGeom {
    // SAFETY: the caller's contract.
    unsafe { &*g }
}

/// [`rows::im2col`] for JIT code: one image `x` of stage `g` into `cols`,
/// through the zero-bordered `xpad` when padded.
///
/// # Safety
/// `g` as [`stage`] requires; `x`, `xpad` and `cols` hold the stage's image,
/// `xpad_len()` and `cols_len()` values; `xpad` and `cols` overlap nothing else.
unsafe extern "C" fn convc_im2col(g: *const ConvGeom, x: *const f32, xpad: *mut f32, cols: *mut f32) {
    // SAFETY: the caller's contract.
    let d = unsafe { stage(g) }.im2col();
    if d.cols_len() == 0 {
        return;
    }
    // SAFETY: the caller's contract.
    let ((x, xpad), cols) = unsafe { (image_views(&d, x, xpad), std::slice::from_raw_parts_mut(cols, d.cols_len())) };
    rows::im2col(&d, x, xpad, cols);
}

/// [`rows::col2im`] for JIT code: `dx` (the image's input gradient,
/// written in full) from the gradient at stage `g`'s columns.
///
/// # Safety
/// `g` as [`stage`] requires; `cols` holds `cols_len()` values, `dx` the
/// image's, not overlapping.
unsafe extern "C" fn convc_col2im(g: *const ConvGeom, cols: *const f32, dx: *mut f32) {
    // SAFETY: the caller's contract.
    let g = unsafe { stage(g) };
    let d = g.im2col();
    if g.in_len() == 0 {
        return;
    }
    // SAFETY: the caller's contract.
    let (cols, dx) = unsafe { (view(cols, d.cols_len()), std::slice::from_raw_parts_mut(dx, g.in_len())) };
    rows::col2im(&d, cols, dx);
}

/// The image and its zero-bordered copy (empty without padding), as the
/// runtime's gathers take them.
///
/// # Safety
/// `x` holds `c·h·w` values, `xpad` `xpad_len()`, not overlapping; nothing
/// else uses `xpad` while the view lives.
unsafe fn image_views<'a>(d: &Im2col, x: *const f32, xpad: *mut f32) -> (&'a [f32], &'a mut [f32]) {
    // SAFETY: the caller's contract.
    unsafe {
        let xpad = if d.xpad_len() == 0 { &mut [][..] } else { std::slice::from_raw_parts_mut(xpad, d.xpad_len()) };
        (view(x, d.c * d.h * d.w), xpad)
    }
}

/// [`rows::weight_grad`] for JIT code: `gw += dz · im2row(x)` for one
/// image of stage `g`, `rows` (and `xpad` when padded) scratch.
///
/// # Safety
/// `g` as [`stage`] requires; `x` holds the stage's image, `xpad`
/// `xpad_len()` and `rows` `cols_len()` values, `dz` `filters × oh·ow` and
/// `gw` `filters × taps`; the written buffers overlap nothing else.
unsafe extern "C" fn convc_weight_grad(g: *const ConvGeom, x: *const f32, xpad: *mut f32, rows: *mut f32, dz: *const f32, gw: *mut f32) {
    // SAFETY: the caller's contract.
    let g = unsafe { stage(g) };
    let (d, filters) = (g.im2col(), g.conv.filters);
    if d.cols_len() == 0 || filters == 0 {
        return;
    }
    // SAFETY: the caller's contract.
    let ((x, xpad), rows, dz, gw) = unsafe {
        (
            image_views(&d, x, xpad),
            std::slice::from_raw_parts_mut(rows, d.cols_len()),
            view(dz, g.conv_len()),
            std::slice::from_raw_parts_mut(gw, filters * g.taps()),
        )
    };
    rows::weight_grad(&d, x, xpad, rows, dz, filters, gw);
}

/// [`direct::conv`] for JIT code: one image `x` of stage `g` into `z`
/// (`filters × oh × ow`), ReLU applied if it is the stage's activation,
/// `bias` null for none; with `pool` 1, [`direct::conv_max_pool`] (`z`:
/// `filters × oh/2 × ow/2`).
///
/// # Safety
/// `g` as [`stage`] requires, a stage [`ConvGeom::direct`] holds for (as the
/// caller checked when it generated the call); `packed` points to the
/// stage's live [`PackedA`], `x` holds the stage's image, `bias` (unless
/// null) one value per filter, `z` the output, overlapping nothing else.
unsafe extern "C" fn convc_direct_conv(
    g: *const ConvGeom,
    x: *const f32,
    packed: *const PackedA,
    bias: *const f32,
    pool: usize,
    z: *mut f32,
) {
    // SAFETY: the caller's contract.
    let g = unsafe { stage(g) };
    let d = g.im2col();
    let out = if pool != 0 { (g.oh / 2) * (g.ow / 2) } else { g.plane() };
    // SAFETY: the caller's contract.
    let (x, packed, z) = unsafe { (view(x, g.in_len()), &*packed, std::slice::from_raw_parts_mut(z, g.conv.filters * out)) };
    // SAFETY: as above.
    let bias = if bias.is_null() { &[][..] } else { unsafe { view(bias, g.conv.filters) } };
    let relu = g.activation == Activation::Relu;
    if pool != 0 {
        direct::conv_max_pool(&d, x, packed, bias, relu, z);
    } else {
        direct::conv(&d, x, packed, bias, relu, z);
    }
}

/// [`pool::max_pool_2x2`] for JIT code; `argmax` null when not recorded.
///
/// # Safety
/// `x` holds `planes × h × w` values, `y` (and `argmax` unless null)
/// `planes × (h/2) × (w/2)`, overlapping nothing else.
unsafe extern "C" fn convc_max_pool_2x2(x: *const f32, planes: usize, h: usize, w: usize, y: *mut f32, argmax: *mut u32) {
    let outs = planes * (h / 2) * (w / 2);
    if outs == 0 {
        return;
    }
    // SAFETY: the caller's contract.
    let (x, y, argmax) = unsafe {
        let argmax = if argmax.is_null() { &mut [][..] } else { std::slice::from_raw_parts_mut(argmax, outs) };
        (view(x, planes * h * w), std::slice::from_raw_parts_mut(y, outs), argmax)
    };
    pool::max_pool_2x2(x, planes, h, w, y, argmax);
}

/// An activation as two words for a call into the runtime: a tag and
/// `alpha`'s bits ([`activation_from_words`] reads them back).
pub(super) fn activation_words(a: Activation) -> [usize; 2] {
    match a {
        Activation::None => [0, 0],
        Activation::Relu => [1, 0],
        Activation::LeakyRelu { alpha } => [2, alpha.to_bits() as usize],
        Activation::Elu { alpha } => [3, alpha.to_bits() as usize],
        Activation::Sigmoid => [4, 0],
        Activation::Tanh => [5, 0],
    }
}

/// The activation [`activation_words`] wrote.
fn activation_from_words(tag: usize, alpha: usize) -> Activation {
    let alpha = f32::from_bits(alpha as u32);
    match tag {
        0 => Activation::None,
        1 => Activation::Relu,
        2 => Activation::LeakyRelu { alpha },
        3 => Activation::Elu { alpha },
        4 => Activation::Sigmoid,
        5 => Activation::Tanh,
        _ => unreachable!("activation tag {tag}: JIT code passes one `activation_words` wrote"),
    }
}

/// [`rows::max_unpool_2x2`] for JIT code: the activation as
/// [`activation_words`] wrote it.
///
/// # Safety
/// `dy`, `y` and `argmax` hold `planes × (h/2) × (w/2)` values, `argmax`
/// indices below `planes × h × w` as `max_pool_2x2` recorded them, `dz`
/// `planes × h × w` values overlapping nothing else.
#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn convc_max_unpool_2x2(
    dy: *const f32,
    y: *const f32,
    argmax: *const u32,
    tag: usize,
    alpha: usize,
    planes: usize,
    h: usize,
    w: usize,
    dz: *mut f32,
) {
    let outs = planes * (h / 2) * (w / 2);
    if planes * h * w == 0 {
        return;
    }
    // SAFETY: the caller's contract.
    let (dy, y, argmax, dz) =
        unsafe { (view(dy, outs), view(y, outs), view(argmax, outs), std::slice::from_raw_parts_mut(dz, planes * h * w)) };
    pool::max_unpool_2x2(dy, y, argmax, activation_from_words(tag, alpha), planes, h, w, dz);
}

/// [`filter_lanes::forward`] for JIT code: one image `x` of stage `g` into
/// `y` over `packed` (as `filter_lanes::pack_forward` stores the weight),
/// ReLU applied if it is the stage's activation, `bias` null for none;
/// with `pool` 1 pooled 2×2 (`y`: `filters × oh/2 × ow/2`), each maximum's
/// index into `argmax` unless it is null.
///
/// # Safety
/// `g` as [`stage`] requires, a stage [`ConvGeom::lanes_forward`] holds for;
/// `x` holds the stage's input, `y` (and `argmax`) its outputs, `bias` null
/// or `filters` values, `packed` points to a live `PackedA`; the written
/// buffers overlap nothing.
#[allow(clippy::too_many_arguments)] // the C ABI: the stage and its buffers
unsafe extern "C" fn convc_lanes_conv(
    g: *const ConvGeom,
    x: *const f32,
    packed: *const PackedA,
    bias: *const f32,
    pool: usize,
    y: *mut f32,
    argmax: *mut u32,
) {
    // SAFETY: the caller's contract.
    let g = unsafe { stage(g) };
    let (d, filters) = (g.im2col(), g.conv.filters);
    let outs = if pool != 0 { filters * (g.oh / 2) * (g.ow / 2) } else { g.conv_len() };
    // SAFETY: the caller's contract.
    let (x, packed, bias, y) = unsafe {
        (view(x, g.in_len()), &*packed, if bias.is_null() { &[][..] } else { view(bias, filters) }, std::slice::from_raw_parts_mut(y, outs))
    };
    let out = if pool != 0 {
        // SAFETY: as above.
        let argmax = if argmax.is_null() { &mut [][..] } else { unsafe { std::slice::from_raw_parts_mut(argmax, outs) } };
        filter_lanes::Output::MaxPool { y, argmax }
    } else {
        filter_lanes::Output::Planes(y)
    };
    filter_lanes::forward(&d, x, packed, bias, g.activation == Activation::Relu, filters, out);
}

/// [`rows::add_row_sums`] for JIT code: `out[r] += Σ x[r·len ..][..len]`
/// for `r < rows`.
///
/// # Safety
/// `x` holds `rows × len` values, `out` `rows`, not overlapping them.
unsafe extern "C" fn convc_row_sums(x: *const f32, len: usize, rows: usize, out: *mut f32) {
    if rows * len == 0 {
        return;
    }
    // SAFETY: the caller's contract.
    let (x, out) = unsafe { (view(x, rows * len), std::slice::from_raw_parts_mut(out, rows)) };
    rows::add_row_sums(x, len, out);
}

/// [`convc_runtime::kernels::gemm::transpose`] for JIT code: `dst` (`cols × rows`) = `srcᵀ`.
///
/// # Safety
/// `src` and `dst` hold `rows × cols` values each and do not overlap.
unsafe extern "C" fn convc_transpose(src: *const f32, rows: usize, cols: usize, dst: *mut f32) {
    if rows * cols == 0 {
        return;
    }
    // SAFETY: the caller's contract.
    let (src, dst) = unsafe { (view(src, rows * cols), std::slice::from_raw_parts_mut(dst, rows * cols)) };
    transpose(src, rows, cols, dst);
}

/// [`winograd::conv`] for JIT code: one image of stage `g`, a Winograd conv
/// ([`ConvGeom::winograd`]), with the filters transformed into `u`. Forward
/// (`adjoint` 0): `x` is the input, `y` the conv output, ReLU applied if it
/// is the stage's activation, `bias` null or one per filter. The input
/// gradient (`adjoint` 1): the adjoint conv of `x`, the gradient at the
/// conv output, into `y`, the input gradient, over the adjoint's `u`; `bias`
/// null.
///
/// # Safety
/// `g` as [`stage`] requires, a stage [`ConvGeom::winograd`] holds for (as
/// the caller checked when it emitted the call); the buffers hold the
/// conv's (or its adjoint's) values and `y` overlaps nothing else.
unsafe extern "C" fn convc_winograd(g: *const ConvGeom, adjoint: usize, x: *const f32, u: *const PackedA, bias: *const f32, y: *mut f32) {
    // SAFETY: the caller's contract.
    let g = unsafe { stage(g) };
    let forward = g.winograd().expect("the JIT calls Winograd for stages it applies to");
    let (d, relu) = if adjoint != 0 { (forward.adjoint(), false) } else { (forward, g.activation == Activation::Relu) };
    // SAFETY: the caller's contract.
    let (x, u, bias, y) = unsafe {
        let bias = if bias.is_null() { &[][..] } else { view(bias, d.filters) };
        (view(x, d.c * d.h * d.w), &*u, bias, std::slice::from_raw_parts_mut(y, d.filters * d.oh * d.ow))
    };
    winograd::conv(&d, x, u, bias, relu, y);
}

/// [`winograd::weight_grad_acc`] for JIT code: `acc += ` one image's
/// weight gradient in the transform domain (`x` its input, `dz` the
/// gradient at its conv output) for stage `g`.
///
/// # Safety
/// `g` as [`stage`] requires, a Winograd stage; `x`, `dz` and `acc` hold the
/// stage's input, conv output and `grad_len()` values, `acc` overlapping neither.
unsafe extern "C" fn convc_winograd_grad(g: *const ConvGeom, x: *const f32, dz: *const f32, acc: *mut f32) {
    // SAFETY: the caller's contract.
    let g = unsafe { stage(g) };
    let d = g.winograd().expect("the JIT calls Winograd for stages it applies to");
    // SAFETY: the caller's contract.
    let (x, dz, acc) = unsafe { (view(x, g.in_len()), view(dz, g.conv_len()), std::slice::from_raw_parts_mut(acc, d.grad_len())) };
    winograd::weight_grad_acc(&d, x, dz, acc);
}

/// [`winograd::weight_grad_finish`] for JIT code: `gw` (filters × c × 5 × 5)
/// of stage `g` from the sums in `acc`.
///
/// # Safety
/// `g` as [`stage`] requires, a Winograd stage; `acc` holds `grad_len()`
/// values, `gw` the filters' and overlaps nothing.
unsafe extern "C" fn convc_winograd_grad_finish(g: *const ConvGeom, acc: *const f32, gw: *mut f32) {
    // SAFETY: the caller's contract.
    let g = unsafe { stage(g) };
    let d = g.winograd().expect("the JIT calls Winograd for stages it applies to");
    // SAFETY: the caller's contract.
    let (acc, gw) = unsafe { (view(acc, d.grad_len()), std::slice::from_raw_parts_mut(gw, g.conv.filters * g.taps())) };
    winograd::weight_grad_finish(&d, acc, gw);
}

/// [`filter_lanes::backward`] for JIT code: `acc += ` one image's
/// weight gradient with the filters in the lanes (`x` its input, `dz` the
/// gradient at its conv output) and, unless `dx` is null, its input gradient
/// over `packed_t` (as `filter_lanes::pack_weights` stores the weight).
///
/// # Safety
/// `g` as [`stage`] requires, a stage [`ConvGeom::filter_lanes`] holds for;
/// `x`, `dz` and `acc` hold the stage's input, conv output and `grad_len()`
/// values, `dx` null or the input's, `packed_t` points to a live `PackedA`;
/// the written buffers overlap nothing.
unsafe extern "C" fn convc_lanes_backward(
    g: *const ConvGeom,
    x: *const f32,
    dz: *const f32,
    packed_t: *const PackedA,
    acc: *mut f32,
    dx: *mut f32,
) {
    // SAFETY: the caller's contract.
    let g = unsafe { stage(g) };
    let (d, filters) = (g.im2col(), g.conv.filters);
    // SAFETY: the caller's contract.
    let (x, dz, packed_t, acc, dx) = unsafe {
        (
            view(x, g.in_len()),
            view(dz, g.conv_len()),
            &*packed_t,
            std::slice::from_raw_parts_mut(acc, filter_lanes::grad_len(&d, filters)),
            if dx.is_null() { &mut [][..] } else { std::slice::from_raw_parts_mut(dx, g.in_len()) },
        )
    };
    filter_lanes::backward(&d, x, dz, filters, packed_t, acc, dx);
}

/// [`filter_lanes::weight_grad_finish`] for JIT code: `gw` (filters ×
/// taps) of stage `g` from the sums in `acc`.
///
/// # Safety
/// `g` as [`stage`] requires, a stage [`ConvGeom::filter_lanes`] holds for;
/// `acc` holds `grad_len()` values, `gw` the filters' and overlaps nothing.
unsafe extern "C" fn convc_lanes_grad_finish(g: *const ConvGeom, acc: *const f32, gw: *mut f32) {
    // SAFETY: the caller's contract.
    let g = unsafe { stage(g) };
    let (d, filters) = (g.im2col(), g.conv.filters);
    // SAFETY: the caller's contract.
    let (acc, gw) = unsafe { (view(acc, filter_lanes::grad_len(&d, filters)), std::slice::from_raw_parts_mut(gw, filters * g.taps())) };
    filter_lanes::weight_grad_finish(&d, filters, acc, gw);
}

/// How an import is called: `f32 → f32`, or that many pointer-sized words.
enum Params {
    Unary,
    Words(usize),
}

/// Each import's symbol, address and parameters.
fn import(i: Import) -> (&'static str, *const u8, Params) {
    use Params::{Unary, Words};
    match i {
        Import::Exp => ("convc_expf", convc_expf as *const u8, Unary),
        Import::Tanh => ("convc_tanhf", convc_tanhf as *const u8, Unary),
        Import::GemmPacked => ("convc_gemm_packed", convc_gemm_packed as *const u8, Words(8)),
        Import::GemmRows => ("convc_gemm_rows", convc_gemm_rows as *const u8, Words(10)),
        Import::GemmAbt => ("convc_gemm_abt", convc_gemm_abt as *const u8, Words(9)),
        Import::Gemv => ("convc_gemv", convc_gemv as *const u8, Words(7)),
        Import::Im2col => ("convc_im2col", convc_im2col as *const u8, Words(4)),
        Import::Col2im => ("convc_col2im", convc_col2im as *const u8, Words(3)),
        Import::MaxPool => ("convc_max_pool_2x2", convc_max_pool_2x2 as *const u8, Words(6)),
        Import::MaxUnpool => ("convc_max_unpool_2x2", convc_max_unpool_2x2 as *const u8, Words(9)),
        Import::Transpose => ("convc_transpose", convc_transpose as *const u8, Words(4)),
        Import::WeightGrad => ("convc_weight_grad", convc_weight_grad as *const u8, Words(6)),
        Import::DirectConv => ("convc_direct_conv", convc_direct_conv as *const u8, Words(6)),
        Import::Winograd => ("convc_winograd", convc_winograd as *const u8, Words(6)),
        Import::WinogradGrad => ("convc_winograd_grad", convc_winograd_grad as *const u8, Words(4)),
        Import::WinogradGradFinish => ("convc_winograd_grad_finish", convc_winograd_grad_finish as *const u8, Words(3)),
        Import::LanesBackward => ("convc_lanes_backward", convc_lanes_backward as *const u8, Words(6)),
        Import::LanesGradFinish => ("convc_lanes_grad_finish", convc_lanes_grad_finish as *const u8, Words(3)),
        Import::LanesConv => ("convc_lanes_conv", convc_lanes_conv as *const u8, Words(7)),
        Import::RowSums => ("convc_row_sums", convc_row_sums as *const u8, Words(4)),
    }
}

/// Options of [`compile_with`].
#[derive(Debug, Clone, Copy)]
pub struct JitOptions {
    /// Fuse conv + activation + pool into one stage (see [`crate::plan`]).
    pub fuse: bool,
    /// Seed of the initial parameters (the same values as the interpreter's).
    pub seed: u64,
    /// Threads a batch is split over (data-parallel); results depend on it
    /// only through the order of the gradient sums.
    pub threads: usize,
    /// Use the host's AVX/FMA/AVX-512 (the default). Off, the code targets
    /// baseline x86-64 with SSE4.2 and `fma` becomes a call to `fmaf` — how
    /// the JIT behaves on a CPU without FMA; the tests run it this way too.
    pub host_features: bool,
    /// Run conv and dense stages on the runtime's GEMM microkernels (the
    /// default; see `runtime_calls`). Off, every stage runs the JIT's own
    /// direct kernels (128-bit vectors) — to compare the two.
    pub microkernels: bool,
}

impl Default for JitOptions {
    fn default() -> Self {
        Self { fuse: true, seed: 0, threads: 1, host_features: true, microkernels: true }
    }
}

/// Compile a checked graph with default options and the given seed.
pub fn compile(graph: &Graph, seed: u64) -> Result<JitNetwork, JitError> {
    compile_with(graph, JitOptions { seed, ..JitOptions::default() })
}

pub fn compile_with(graph: &Graph, options: JitOptions) -> Result<JitNetwork, JitError> {
    let start = Instant::now();
    let plan = Plan::new(graph, options.fuse);
    let mut jit = Jit::new(options.host_features)?;
    let mut kernels = Vec::new();
    for (index, stage) in plan.stages.iter().enumerate() {
        let k = match &stage.kind {
            StageKind::Conv { .. } | StageKind::Pool(_) | StageKind::Dense { .. } => Some([
                jit.declare(&format!("s{index}_infer"))?,
                jit.declare(&format!("s{index}_train"))?,
                jit.declare(&format!("s{index}_backward"))?,
            ]),
            _ => None,
        };
        kernels.push(k);
    }
    let geoms: Vec<network::StageGeom> = plan.stages.iter().map(network::StageGeom::of).collect();
    let micro = options.microkernels;
    for ((stage, ids), geom) in plan.stages.iter().zip(&kernels).zip(&geoms) {
        let Some([infer, train, backward]) = ids else { continue };
        jit.define(*infer, |fx| network::emit_stage(fx, stage, geom, network::Pass::Infer, micro))?;
        jit.define(*train, |fx| network::emit_stage(fx, stage, geom, network::Pass::Train, micro))?;
        jit.define(*backward, |fx| network::emit_stage(fx, stage, geom, network::Pass::Backward, micro))?;
    }
    jit.module.finalize_definitions().map_err(|e| JitError(e.to_string()))?;
    let compiled: Vec<Option<[KernelFn; 3]>> = kernels
        .iter()
        .map(|ids| {
            ids.map(|ids| {
                ids.map(|id| {
                    let code = jit.module.get_finalized_function(id);
                    // SAFETY: `code` is a function we defined above with the
                    // signature `(ptr, i64) -> ()` (see `Jit::signature`),
                    // which is `KernelFn`'s C ABI, and the module that owns
                    // the code is kept alive by the network (`_module`).
                    unsafe { std::mem::transmute::<*const u8, KernelFn>(code) }
                })
            })
        })
        .collect();
    let code = network::Code::new(jit.module);
    let stages = plan.stages.iter().zip(&geoms).zip(compiled).map(|((s, g), k)| network::stage_def(s, g, k, micro, &code)).collect();
    let compile_time = start.elapsed();
    Ok(JitNetwork::new(graph, &plan, stages, options.seed, options.threads, compile_time))
}

struct Jit {
    module: JITModule,
    ctx: cranelift_codegen::Context,
    fctx: FunctionBuilderContext,
    /// The runtime's functions, by [`Import`].
    imports: [FuncId; Import::ALL.len()],
    /// See `Fx::unaligned_vectors`.
    unaligned_vectors: bool,
}

impl Jit {
    fn new(host_features: bool) -> Result<Self, JitError> {
        let err = |e: &dyn fmt::Display| JitError(e.to_string());
        let mut flags = settings::builder();
        flags.set("is_pic", "false").map_err(|e| err(&e))?;
        flags.set("opt_level", "none").map_err(|e| err(&e))?;
        flags.set("enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" }).map_err(|e| err(&e))?;
        let mut isa = cranelift_native::builder().map_err(|e| err(&e))?;
        if !host_features {
            for flag in
                ["has_fma", "has_avx", "has_avx2", "has_avx512f", "has_avx512vl", "has_avx512dq", "has_avx512bitalg", "has_avx512vbmi"]
            {
                // A flag this Cranelift does not know is simply not in use.
                let _ = isa.set(flag, "false");
            }
        }
        let isa = isa.finish(settings::Flags::new(flags)).map_err(|e| err(&e))?;
        let mut builder = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
        builder.symbol("fmaf", convc_fmaf as *const u8);
        for i in Import::ALL {
            let (name, address, _) = import(i);
            builder.symbol(name, address);
        }
        let mut module = JITModule::new(builder);
        let mut imports = Vec::new();
        for i in Import::ALL {
            let (name, _, params) = import(i);
            let mut sig = module.make_signature();
            match params {
                Params::Unary => {
                    sig.params.push(AbiParam::new(types::F32));
                    sig.returns.push(AbiParam::new(types::F32));
                }
                Params::Words(count) => sig.params.extend((0..count).map(|_| AbiParam::new(types::I64))),
            }
            imports.push(module.declare_function(name, Linkage::Import, &sig).map_err(|e| err(&e))?);
        }
        let imports = imports.try_into().expect("one FuncId per import");
        let ctx = module.make_context();
        #[cfg(target_arch = "x86_64")]
        let unaligned_vectors = host_features && std::arch::is_x86_feature_detected!("avx");
        #[cfg(not(target_arch = "x86_64"))]
        let unaligned_vectors = true;
        Ok(Self { module, ctx, fctx: FunctionBuilderContext::new(), imports, unaligned_vectors })
    }

    fn signature(&self) -> Signature {
        let mut sig = self.module.make_signature();
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I64));
        sig
    }

    fn declare(&mut self, name: &str) -> Result<FuncId, JitError> {
        let sig = self.signature();
        self.module.declare_function(name, Linkage::Local, &sig).map_err(|e| JitError(e.to_string()))
    }

    fn define(&mut self, id: FuncId, body: impl FnOnce(&mut Fx)) -> Result<(), JitError> {
        self.ctx.func.signature = self.signature();
        self.ctx.func.name = UserFuncName::user(0, id.as_u32());
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let runtime = RuntimeFns(self.imports.map(|id| self.module.declare_func_in_func(id, b.func)));
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let (args, batch) = (b.block_params(entry)[0], b.block_params(entry)[1]);
            let mut fx = Fx { b, args, batch, runtime, unaligned_vectors: self.unaligned_vectors };
            body(&mut fx);
            fx.b.ins().return_(&[]);
            fx.b.seal_all_blocks();
            fx.b.finalize(self.module.target_config());
        }
        let result = self.module.define_function(id, &mut self.ctx).map_err(|e| JitError(format!("{e:?}")));
        self.module.clear_context(&mut self.ctx);
        result
    }
}

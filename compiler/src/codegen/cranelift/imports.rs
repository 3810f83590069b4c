//! The runtime functions JIT code calls, as `extern "C"` trampolines: each
//! turns the pointers and words it is passed into the slices and geometry
//! the runtime's kernel takes, and calls it. Conv kernels take the stage's
//! [`ConvGeom`] by pointer (see `runtime_calls`); GEMMs, pools and
//! transposes take their few sizes as words. [`import`] lists each one's
//! symbol, address and parameters for the JIT module.

use convc_runtime::Activation;
use convc_runtime::compiled::ConvGeom;
use convc_runtime::kernels::gemm::{PackedA, gemm_abt, gemm_packed, gemm_rows, gemv_on, transpose};
use convc_runtime::kernels::im2col::{self as rows, Im2col};
use convc_runtime::kernels::pool;
use convc_runtime::kernels::winograd;
use convc_runtime::kernels::{direct, filter_lanes};

use super::emit::Import;

extern "C" fn convc_expf(x: f32) -> f32 {
    x.exp()
}

extern "C" fn convc_tanhf(x: f32) -> f32 {
    x.tanh()
}

/// What Cranelift calls for `fma` on a CPU without FMA (it then lowers the
/// instruction to the libcall `fmaf`, ~50× slower, but correct).
pub(super) extern "C" fn convc_fmaf(a: f32, b: f32, c: f32) -> f32 {
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
    // SAFETY: as above.
    let (b, bias) = unsafe { (view(b, span(a.depth(), ldb, n)), if bias.is_null() { &[][..] } else { view(bias, a.rows()) }) };
    let c_len = span(a.rows(), ldc, n);
    if c_len == 0 {
        return;
    }
    // SAFETY: as above; `c` is the only view of its values.
    let c = unsafe { std::slice::from_raw_parts_mut(c, c_len) };
    gemm_packed(a, b, ldb, n, bias, relu != 0, c, ldc);
}

/// Values spanned by `rows` rows of `n` values `ld` apart (0 when empty).
fn span(rows: usize, ld: usize, n: usize) -> usize {
    if rows == 0 || n == 0 { 0 } else { (rows - 1) * ld + n }
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
    let c_len = span(rows, ldc, n);
    if c_len == 0 {
        return;
    }
    // SAFETY: the caller's contract, for every pointer; `c` is the only view of its values.
    let (a, b, bias, c) = unsafe {
        (
            view(a, rows * depth),
            view(b, span(depth, ldb, n)),
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
pub(super) enum Params {
    Unary,
    Words(usize),
}

/// Each import's symbol, address and parameters.
pub(super) fn import(i: Import) -> (&'static str, *const u8, Params) {
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

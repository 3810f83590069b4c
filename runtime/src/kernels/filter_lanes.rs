//! Convs with the filters in the vector lanes — forward, weight gradient
//! and input gradient — for the convs that would otherwise run as im2col
//! and GEMMs (LeNet-5's conv2: 6 → 16 channels, 5 × 5, 10 × 10 outputs).
//!
//! There the GEMMs are as short as their operands — 16 filters by 100
//! positions by 150 taps; the input gradient's depth is the 16 filters —
//! behind gathers that write every input 25 times (im2col, im2row, col2im:
//! 17% of LeNet-5's training step; the weight gradient's GEMM ran at 58%
//! of peak). With a vector holding filters (16 at AVX-512, 8 at AVX2)
//! each becomes FMA-bound without a gather:
//!
//! - [`forward`]: a block of two output rows × up to 12 outputs (6 with
//!   16 registers) in registers, one weight vector per tap, each input broadcast from the
//!   image; a 2 × 2 max pool and its maxima's indices in registers.
//! - The weight gradient ([`backward`]): `dz` channels-last, a block of
//!   taps (a channel's 5 × 5, three channels' 3 × 3 — with 16 registers
//!   two rows of a 5 × 5, one channel's 3 × 3) keeps its sums
//!   `gw[·][tap] += dz[p] · x[tap at p]` in registers across all the
//!   positions. The sums stay channels-last — `acc[tap][filter]` — from
//!   image to image and are transposed into the filters' layout once per
//!   chunk ([`weight_grad_finish`]), as the Winograd conv's are.
//! - The input gradient ([`backward`]): each input sums its reaching
//!   outputs' `dz` vectors times its taps' weight vectors, two inputs of a
//!   row at a time, and the lanes are added up for a vector of inputs at
//!   once.
//!
//! The weight is packed taps × filters for both directions ([`pack_weights`]),
//! the filters in blocks of 16 at every level (one AVX-512 vector, two AVX2
//! ones), so that the packing does not depend on the level.

use std::cell::RefCell;

use super::im2col::{Bordered, Im2col};
use super::winograd::{
    ALPHA, ALPHA2, G, G2, KERNEL, TILE, at as a_t, at2, channels_last, column_point, column_tiles, columns_transform, convert, grown,
    planes,
};
use crate::kernels::gemm::PackedA;
use crate::kernels::simd::{MAX_LANES, Simd, block, multiversion};

/// Filters per block of the packed weights and of the channels-last
/// buffers, at every level.
const BLOCK: usize = 16;

/// Whether [`backward`] runs `d`'s weight gradient: a square kernel
/// 2 to 5 wide (a block of taps fits the registers), any stride and
/// padding.
pub fn applies(d: &Im2col) -> bool {
    d.kernel[0] == d.kernel[1] && (2..=5).contains(&d.kernel[0]) && d.c > 0 && d.oh * d.ow > 0 && d.fits()
}

/// Filters rounded up to whole blocks.
const fn lanes(filters: usize) -> usize {
    filters.div_ceil(BLOCK) * BLOCK
}

/// The sums' length: taps × filters rounded up to whole vectors.
pub const fn grad_len(d: &Im2col, filters: usize) -> usize {
    d.c * d.kernel[0] * d.kernel[1] * lanes(filters)
}

#[derive(Default)]
struct Scratch {
    xpad: Bordered,
    /// `dz` channels-last, and the transpose on the way.
    dzt: Vec<f32>,
    tmp: Vec<f32>,
    /// The forward's outputs channels-last, and their maxima's indices (as bits).
    yt: Vec<f32>,
    at: Vec<f32>,
    /// The forward's columns transform: a row tile's 8 points of each
    /// channel's rows (`columns_winograd`).
    t: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Whether [`forward`] runs `d` (its weight then packed by [`pack_weights`]
/// for the forward too): as [`applies`], with stride 1.
pub fn forward_applies(d: &Im2col) -> bool {
    applies(d) && d.stride == [1, 1]
}

/// Whether [`forward`] runs `d` by Winograd's F(4, 5) down the columns
/// (its weight then packed by [`pack_forward`] as the filters' column
/// transforms): a 5 × 5 kernel and at least four rows of outputs.
///
/// Each tile of four output rows comes from eight input rows transformed
/// down the columns, `T = Bᵀ d`, and each output column from eight
/// transformed rows times each filter column's transform `U = G g`:
/// `y = Aᵀ [Σ_{c, dx} U[c][dx] ⊙ T[c][· + dx]]`, 8 × 5 multiply-adds per
/// channel for four outputs instead of 4 × 25 — 2.5× fewer. The transform
/// runs down the columns only, so both transforms are whole-row vector
/// arithmetic (no transposes), while the products keep the filters in the
/// lanes, each transformed input broadcast. Rows left over after the tiles
/// of four run as F(2, 5), tiles of two rows from six (6 × 5 for 2 outputs;
/// LeNet-5's ten rows: 4 + 4 + 2, not a third tile of four over rows 6–9).
pub fn columns_winograd(d: &Im2col) -> bool {
    forward_applies(d) && d.kernel == [KERNEL, KERNEL] && d.oh >= TILE
}

/// Rows of the forward's packed weight ([`pack_forward`]): the taps, or
/// for [`columns_winograd`] each channel's five columns' eight points of
/// F(4, 5) and six of F(2, 5).
fn forward_rows(d: &Im2col) -> usize {
    if columns_winograd(d) { d.c * KERNEL * (ALPHA + ALPHA2) } else { d.c * d.kernel[0] * d.kernel[1] }
}

/// The length of the forward's packed weight ([`pack_forward`]).
pub fn forward_len(d: &Im2col, filters: usize) -> usize {
    forward_rows(d) * lanes(filters)
}

/// Where [`forward`] writes.
pub enum Output<'a> {
    /// The conv's planes, `filters × oh × ow`.
    Planes(&'a mut [f32]),
    /// The planes pooled 2 × 2 with stride 2 (`filters × oh/2 × ow/2`), and
    /// unless `argmax` is empty each maximum's index into the planes — as
    /// `pool::max_pool_2x2` pools and records.
    MaxPool { y: &'a mut [f32], argmax: &'a mut [u32] },
}

/// One image's conv, `act(bias + w ∗ x)` (`relu`: ReLU, else none), over
/// the weight as [`pack_weights`] stores it — with the filters in the
/// lanes: for each block of two rows by up to twelve outputs, one weight
/// vector per tap and each input broadcast from the image into up to 24
/// accumulators; with a 2 × 2 max pool the block's windows are pooled in
/// registers (their maxima's indices alongside) and only the pooled
/// outputs are transposed into planes.
pub fn forward(d: &Im2col, x: &[f32], wt: &PackedA, bias: &[f32], relu: bool, filters: usize, out: Output<'_>) {
    forward_at(d, x, wt, bias, relu, filters, out)
}

multiversion! {
    fn forward_at(d: &Im2col, x: &[f32], wt: &PackedA, bias: &[f32], relu: bool, filters: usize, out: Output<'_>)
        => |s| forward_with(s, d, x, wt, bias, relu, filters, out)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_with<S: Simd>(s: S, d: &Im2col, x: &[f32], wt: &PackedA, bias: &[f32], relu: bool, filters: usize, out: Output<'_>) {
    let cs = lanes(filters);
    let (oh, ow) = (d.oh, d.ow);
    let fits = match &out {
        Output::Planes(z) => z.len() >= filters * oh * ow,
        Output::MaxPool { y, argmax } => {
            let pooled = filters * (oh / 2) * (ow / 2);
            y.len() >= pooled && (argmax.is_empty() || argmax.len() >= pooled)
        }
    };
    assert!(
        forward_applies(d)
            && fits
            && x.len() >= d.c * d.h * d.w
            && wt.rows() == forward_rows(d)
            && wt.depth() == cs
            && (bias.is_empty() || bias.len() >= filters),
        "filter_lanes::forward: buffers do not fit {d:?} with {filters} filters"
    );
    let (hp, wp) = d.padded();
    let mut scratch = SCRATCH.take();
    let Scratch { xpad, tmp, yt, at, t, .. } = &mut scratch;
    let pool = matches!(out, Output::MaxPool { .. });
    let (rows, cols) = if pool { (oh / 2, ow / 2) } else { (oh, ow) };
    let yt = grown(yt, rows * cols * cs);
    let record = matches!(&out, Output::MaxPool { argmax, .. } if !argmax.is_empty());
    let at = grown(at, if record { rows * cols * cs } else { 0 });
    // SAFETY: `forward_applies` holds; `x` holds the image
    // (read in place by the column Winograd, its padding as zeros) and
    // `xp` the padded one, in which every window fits; `wt` holds
    // `forward_rows × cs` values, `bias` none or `filters`; `yt` (and
    // `at`) `rows × cols × cs`; `t` a row tile's transform of every channel.
    unsafe {
        if columns_winograd(d) {
            let t = grown(t, d.c * ALPHA * transform_row::<S>(d));
            conv_columns(s, d, x, wt.values(), cs, bias, relu, pool, t, yt, at)
        } else {
            let xp: &[f32] = if d.xpad_len() == 0 { x } else { xpad.copy(x, [d.c, d.h, d.w], d.pad, [hp, wp]) };
            conv(s, d, xp, wt.values(), cs, bias, relu, pool, yt, at)
        }
    };
    match out {
        Output::Planes(z) => planes(yt, [oh, ow, cs], [filters, oh, ow], tmp, z),
        Output::MaxPool { y, argmax } => {
            planes(yt, [rows, cols, cs], [filters, rows, cols], tmp, y);
            if record {
                let len = filters * rows * cols;
                // SAFETY: u32 and f32 have one size and alignment, and
                // the transpose moves the indices' bits unchanged.
                let argmax = unsafe { std::slice::from_raw_parts_mut(argmax.as_mut_ptr().cast::<f32>(), len) };
                planes(at, [rows, cols, cs], [filters, rows, cols], tmp, argmax);
            }
        }
    }
    SCRATCH.set(scratch);
}

/// The weight as [`backward`]'s input gradient reads it: `wt[tap][fi] =
/// w[fi][tap]`, each tap a row of the filters rounded up to whole vectors
/// (zero past `filters`).
pub fn pack_weights(d: &Im2col, filters: usize, weight: &[f32], packed: &mut PackedA) {
    let (taps, cs) = (d.c * d.kernel[0] * d.kernel[1], lanes(filters));
    assert!(weight.len() >= filters * taps, "filter_lanes::pack_weights: the weight is shorter than {filters} × {taps}");
    packed.store_rows(taps, cs, |wt| {
        for (fi, row) in weight.chunks_exact(taps).take(filters).enumerate() {
            for (t, &v) in row.iter().enumerate() {
                wt[t * cs + fi] = v;
            }
        }
    });
}

/// The weight as [`forward`] reads it: as [`pack_weights`] stores it, or
/// for [`columns_winograd`] each filter column's transform `Σ_dy G[ξ][dy]
/// · w[fi][ci][dy][dx]` (in f64, rounded once) — a block of filters
/// `fi = 16·vb + l` at `(((vb·c + ci)·5 + dx)·8 + ξ)·16 + l` (zero past
/// `filters`), so that a block's weights are one run of whole vectors —
/// followed by F(2, 5)'s (`G2`, six points) laid out alike.
pub fn pack_forward(d: &Im2col, filters: usize, weight: &[f32], packed: &mut PackedA) {
    if !columns_winograd(d) {
        return pack_weights(d, filters, weight, packed);
    }
    let (taps, cs) = (d.c * KERNEL * KERNEL, lanes(filters));
    assert!(weight.len() >= filters * taps, "filter_lanes::pack_forward: the weight is shorter than {filters} × {taps}");
    packed.store_rows(forward_rows(d), cs, |u| {
        let (fours, pairs) = u.split_at_mut(d.c * KERNEL * ALPHA * cs);
        for (transform, u) in [(&G[..], fours), (&G2[..], pairs)] {
            let points = transform.len();
            for (fi, g) in weight.chunks_exact(taps).take(filters).enumerate() {
                for (ci, g) in g.chunks_exact(KERNEL * KERNEL).enumerate() {
                    for dx in 0..KERNEL {
                        for (xi, gx) in transform.iter().enumerate() {
                            u[((((fi / BLOCK) * d.c + ci) * KERNEL + dx) * points + xi) * BLOCK + fi % BLOCK] = column_point(gx, g, dx);
                        }
                    }
                }
            }
        }
    });
}

/// One image's backward: `acc[tap][fi] += Σ_p dz[fi][p] · x[tap at p]`
/// for its input `x` (`c × h × w`) and output gradient `dz` (`filters ×
/// oh·ow`) — `acc` holds [`grad_len`] values, zero before the first image —
/// and, unless `dx` is empty, the input gradient `dx` (`c × h × w`, written
/// in full) over the weight as [`pack_weights`] stores it.
///
/// The input gradient also runs with the filters in the lanes: each input
/// sums, for every output that read it, that output's vector of `dz`
/// times its tap's vector of weights (a block of up to eight channels'
/// sums in registers), and the lanes are added up sixteen inputs at a time
/// — no columns matrix, no col2im, and only the taps that reach an output.
pub fn backward(d: &Im2col, x: &[f32], dz: &[f32], filters: usize, wt: &PackedA, acc: &mut [f32], dx: &mut [f32]) {
    backward_at(d, x, dz, filters, wt, acc, dx)
}

multiversion! {
    fn backward_at(d: &Im2col, x: &[f32], dz: &[f32], filters: usize, wt: &PackedA, acc: &mut [f32], dx: &mut [f32])
        => |s| backward_with(s, d, x, dz, filters, wt, acc, dx)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_with<S: Simd>(s: S, d: &Im2col, x: &[f32], dz: &[f32], filters: usize, wt: &PackedA, acc: &mut [f32], dx: &mut [f32]) {
    let plane = d.oh * d.ow;
    let (taps, cs) = (d.c * d.kernel[0] * d.kernel[1], lanes(filters));
    assert!(
        applies(d)
            && x.len() >= d.c * d.h * d.w
            && dz.len() >= filters * plane
            && acc.len() >= grad_len(d, filters)
            && (dx.is_empty() || (dx.len() >= d.c * d.h * d.w && wt.rows() == taps && wt.depth() == cs)),
        "filter_lanes::backward: buffers do not fit {d:?} with {filters} filters"
    );
    let (hp, wp) = d.padded();
    let mut scratch = SCRATCH.take();
    let xp: &[f32] = if d.xpad_len() == 0 { x } else { scratch.xpad.copy(x, [d.c, d.h, d.w], d.pad, [hp, wp]) };
    // With stride 1 each row of `dz` gets `k − 1` zero pixels either
    // side, so that the input gradient reads whole rows of taps.
    let edge = if d.stride[1] == 1 { d.kernel[1] - 1 } else { 0 };
    let (row, shape) = ((d.ow + 2 * edge) * cs, [d.oh, d.ow + 2 * edge]);
    let dzt = channels_last(&dz[..filters * plane], [filters, d.oh, d.ow], [0, edge], shape, cs, &mut scratch.tmp, &mut scratch.dzt);
    // SAFETY: `applies` holds; `xp` is the padded image, in which
    // every window fits (`fits`); `dzt` holds `oh` rows as `layout`
    // says, `acc` and `wt` `taps × cs` values, `dx` the image's.
    unsafe {
        let layout = Dz { edge, row, cs };
        accumulate(s, d, xp, dzt, &layout, acc);
        if !dx.is_empty() {
            input_grad(s, d, dzt, &layout, wt.values(), dx);
        }
    };
    SCRATCH.set(scratch);
}

/// `gw[fi][tap] = acc[tap][fi]`: the weight gradient (`filters × taps`)
/// from [`backward`]'s sums.
pub fn weight_grad_finish(d: &Im2col, filters: usize, acc: &[f32], gw: &mut [f32]) {
    let (taps, cs) = (d.c * d.kernel[0] * d.kernel[1], lanes(filters));
    assert!(
        acc.len() >= taps * cs && gw.len() >= filters * taps,
        "filter_lanes::weight_grad_finish: buffers do not fit {d:?} with {filters} filters"
    );
    // The sums are `taps` pixels of `cs` channels-last values: back to planes.
    SCRATCH.with_borrow_mut(|s| planes(&acc[..taps * cs], [taps, 1, cs], [filters, taps, 1], &mut s.tmp, gw));
}

/// Outputs per block row of the forward: two rows of this many in
/// registers (24 accumulators with 32 registers, 12 with 16).
const fn block_cols<S: Simd>() -> usize {
    if S::WIDE { 12 } else { 6 }
}

/// `bias[v..]` as a vector (lanes past the filters zero), or zero.
#[inline(always)]
fn bias_at<S: Simd>(s: S, bias: &[f32], v: usize) -> S::F32 {
    if bias.is_empty() {
        return s.zero();
    }
    // SAFETY: the lanes up to the bias's length (masked).
    unsafe { s.load_masked(s.first(bias.len().saturating_sub(v)), bias.as_ptr().add(v.min(bias.len()))) }
}

/// [`forward`]'s conv into `yt` (pixels of `cs` values, channels-last) —
/// with `pool`, pooled, and the maxima's plane indices into `at` (as bits)
/// unless it is empty.
///
/// # Safety
/// `xp` is the `c × hp × wp` padded image in which `d`'s windows fit
/// (stride 1), `wt` `taps × cs` values, `bias` empty or at least the
/// filters, `yt` and `at` (unless empty) the outputs' pixels.
#[allow(clippy::too_many_arguments)] // a kernel's operands
#[inline(always)]
unsafe fn conv<S: Simd>(
    s: S,
    d: &Im2col,
    xp: &[f32],
    wt: &[f32],
    cs: usize,
    bias: &[f32],
    relu: bool,
    pool: bool,
    yt: &mut [f32],
    at: &mut [f32],
) {
    let (hp, wp) = d.padded();
    let (oh, ow) = if pool { (d.oh / 2 * 2, d.ow / 2 * 2) } else { (d.oh, d.ow) };
    let b = Block { plane: hp * wp, wp, c: d.c, k: d.kernel[0], cs, relu, plane_out: d.oh * d.ow, ow: d.ow };
    for v in (0..cs).step_by(S::LANES) {
        // Blocks of a row as even as they come (14 outputs at 12 a block:
        // 7 + 7, not 12 + 2, whose weight loads would serve 4 FMAs each),
        // even when pooled.
        let per_block = ow.div_ceil(ow.div_ceil(block_cols::<S>()));
        let per_block = if pool { per_block.next_multiple_of(2) } else { per_block };
        for oy in (0..oh).step_by(2) {
            let rows = 2.min(oh - oy);
            for ox in (0..ow).step_by(per_block) {
                let cols = per_block.min(ow - ox);
                let at_out = if pool { (oy / 2 * (ow / 2) + ox / 2) * cs + v } else { (oy * ow + ox) * cs + v };
                // SAFETY: the block's windows are inside `xp`, its outputs
                // inside `yt` (and `at`); its taps' weights inside `wt`.
                unsafe {
                    let x = xp.as_ptr().add(oy * wp + ox);
                    let (w, y) = (wt.as_ptr().add(v), yt.as_mut_ptr().add(at_out));
                    let a = if at.is_empty() { std::ptr::null_mut() } else { at.as_mut_ptr().add(at_out) };
                    let first = v * b.plane_out + oy * b.ow + ox;
                    macro_rules! go {
                        ($($c:literal)*) => {
                            match (rows, cols) {
                                $((2, $c) => s.call(Blocked::<2, $c>((&b, x, w, (bias, v), pool, y, a, first))),)*
                                $((1, $c) => s.call(Blocked::<1, $c>((&b, x, w, (bias, v), false, y, a, first))),)*
                                _ => unreachable!("blocks are 1 or 2 rows by 1 to {} outputs", block_cols::<S>()),
                            }
                        };
                    }
                    // (Only this level's block widths are instantiated.)
                    if S::WIDE { go!(1 2 3 4 5 6 7 8 9 10 11 12) } else { go!(1 2 3 4 5 6) }
                }
            }
        }
    }
}

/// The operands of a [`block`]: the geometry, its windows, weights, the
/// biases and the first filter of its vector, whether it pools, its
/// outputs, indices and first output's plane index.
type BlockOperands<'a> = (&'a Block, *const f32, *const f32, (&'a [f32], usize), bool, *mut f32, *mut f32, usize);

block! {
    /// [`block`] as a [`Kernel`](super::simd::Kernel).
    Blocked<'a, const R: usize, const C: usize>(BlockOperands<'a>) = block
}

struct Block {
    /// The padded image: values per channel, per row; channels, kernel size.
    plane: usize,
    wp: usize,
    c: usize,
    k: usize,
    /// Values per pixel of `wt` and of the outputs.
    cs: usize,
    relu: bool,
    /// The conv's output plane (for the maxima's indices).
    plane_out: usize,
    ow: usize,
}

/// `R × C` outputs from `x` (the block's first window), activated, into
/// `y` at `cs` values a pixel (rows `ow` pixels apart) — or with `pool`
/// (`R` = 2, `C` even) their 2 × 2 maxima into `y` at `cs` values a pooled
/// pixel, and unless `a` is null their indices (`first` is the block's
/// first output's in lane 0; a lane is a plane further).
///
/// # Safety
/// As [`conv`], for the block's windows and outputs.
#[allow(clippy::needless_range_loop)] // constant indices keep `acc` in registers
#[inline(always)]
unsafe fn block<S: Simd, const R: usize, const C: usize>(s: S, (b, x, w, (bias, v), pool, y, a, first): BlockOperands<'_>) {
    let mut acc = [[bias_at(s, bias, v); C]; R];
    let mut w = w;
    for ci in 0..b.c {
        for ky in 0..b.k {
            // SAFETY (all below): rows `ky..ky + R` of channel `ci` of the
            // block's windows, the taps' weight vectors in turn.
            let mut line = [x; R];
            for (r, line) in line.iter_mut().enumerate() {
                *line = unsafe { x.add(ci * b.plane + (ky + r) * b.wp) };
            }
            for kx in 0..b.k {
                let wv = unsafe { s.load(w) };
                for r in 0..R {
                    for j in 0..C {
                        acc[r][j] = s.fma(s.splat(unsafe { *line[r].add(j + kx) }), wv, acc[r][j]);
                    }
                }
                w = unsafe { w.add(b.cs) };
            }
        }
    }
    if b.relu {
        let zero = s.zero();
        for r in 0..R {
            for j in 0..C {
                acc[r][j] = s.max(acc[r][j], zero);
            }
        }
    }
    if !pool {
        for r in 0..R {
            for j in 0..C {
                unsafe { s.store(y.add((r * b.ow + j) * b.cs), acc[r][j]) };
            }
        }
        return;
    }
    let lanes = plane_lanes(s, b.plane_out);
    for jj in 0..C / 2 {
        let j = 2 * jj;
        // The candidates by value: constant indices keep `acc` in registers.
        let window = [acc[0][j], acc[0][j + 1], acc[R - 1][j], acc[R - 1][j + 1]];
        let (best, at) = window_max(s, window, lanes, first + j, b.ow);
        unsafe { s.store(y.add(jj * b.cs), best) };
        if !a.is_null() {
            unsafe { s.store(a.add(jj * b.cs), s.i_as_f(at)) };
        }
    }
}

/// Each lane's index offset into the conv's planes: a plane further per lane.
#[inline(always)]
fn plane_lanes<S: Simd>(s: S, plane: usize) -> S::I32 {
    s.mul_i(s.index(), s.splat_i(plane as i32))
}

/// The maximum of a 2 × 2 window's outputs `v` (top left, top right,
/// bottom left, bottom right) and its index into the conv's planes, as
/// `pool::max_pool_2x2` picks it: a later one wins when greater or NaN.
/// `first` is the top left output's index in lane 0 (`lanes`:
/// [`plane_lanes`]), `ow` the conv's row.
#[inline(always)]
fn window_max<S: Simd>(s: S, v: [S::F32; 4], lanes: S::I32, first: usize, ow: usize) -> (S::F32, S::I32) {
    let (mut best, mut at) = (v[0], s.add_i(lanes, s.splat_i(first as i32)));
    for (v, offset) in [(v[1], 1), (v[2], ow), (v[3], ow + 1)] {
        let wins = s.or(s.gt(v, best), s.is_nan(v));
        best = s.select(wins, v, best);
        at = s.select_i(wins, s.add_i(lanes, s.splat_i((first + offset) as i32)), at);
    }
    (best, at)
}

/// Values per row of [`conv_columns`]' transform: the padded width in
/// whole vectors.
fn transform_row<S: Simd>(d: &Im2col) -> usize {
    d.padded().1.next_multiple_of(S::LANES)
}

/// [`forward`] by Winograd's F(4, 5) down the columns
/// ([`columns_winograd`]), into `yt` and `at` as [`conv`] writes them: for
/// each tile of four output rows ([`column_tiles`]; the rows left over,
/// F(2, 5)'s tiles of two), its eight (six) input rows' transform `Bᵀ d`
/// into `t`, then blocks of two output columns.
///
/// # Safety
/// As [`conv`], with `x` the image itself (`c × h × w`; its padding is
/// read as zeros), `u` as [`pack_forward`] stores it, and `t` holding `c ×
/// 8` rows of [`transform_row`] values.
#[allow(clippy::too_many_arguments)] // a kernel's operands
#[inline(always)]
unsafe fn conv_columns<S: Simd>(
    s: S,
    d: &Im2col,
    x: &[f32],
    u: &[f32],
    cs: usize,
    bias: &[f32],
    relu: bool,
    pool: bool,
    t: &mut [f32],
    yt: &mut [f32],
    at: &mut [f32],
) {
    let wp = d.padded().1;
    let tr = transform_row::<S>(d);
    let ow = if pool { d.ow / 2 * 2 } else { d.ow };
    let b = Columns { c: d.c, tr, cs, relu, plane_out: d.oh * d.ow, ow: d.ow, pooled_row: ow / 2 * cs };
    // F(2, 5)'s weights follow F(4, 5)'s.
    let pairs_at = d.c * KERNEL * ALPHA * cs;
    for (s0, skip, rows) in column_tiles(d.oh, pool, true) {
        // SAFETY: `x` holds the image; `t` c × 8 rows of `tr` ≥ wp values.
        unsafe {
            if rows == TILE {
                columns_transform::<S, ALPHA>(s, x, d.c, [d.h, d.w], d.pad, wp, s0, tr, t)
            } else {
                columns_transform::<S, ALPHA2>(s, x, d.c, [d.h, d.w], d.pad, wp, s0, tr, t)
            }
        };
        for v in (0..cs).step_by(S::LANES) {
            let bias = bias_at(s, bias, v);
            // The vector's weights: its block of 16 filters, from its lane.
            let (vb, lane) = (v / BLOCK, v % BLOCK);
            for ox in (0..ow).step_by(2) {
                let at_out = if pool { (s0 / 2 * (ow / 2) + ox / 2) * cs + v } else { (s0 * ow + ox) * cs + v };
                let first = v * b.plane_out + s0 * d.ow + ox;
                // SAFETY: the block's columns ox.. + 6 ≤ wp of `t`, its
                // outputs inside `yt` (and `at`), its weights inside `u`.
                unsafe {
                    let (t, y) = (t.as_ptr().add(ox), yt.as_mut_ptr().add(at_out));
                    let a = if at.is_empty() { std::ptr::null_mut() } else { at.as_mut_ptr().add(at_out) };
                    let pair = ox + 1 < ow;
                    if rows == TILE {
                        let u = u.as_ptr().add(vb * d.c * KERNEL * ALPHA * BLOCK + lane);
                        if pair {
                            columns::<S, ALPHA, TILE, 2>(s, &b, t, u, bias, pool, skip, y, a, first);
                        } else {
                            columns::<S, ALPHA, TILE, 1>(s, &b, t, u, bias, false, skip, y, a, first);
                        }
                    } else {
                        let u = u.as_ptr().add(pairs_at + vb * d.c * KERNEL * ALPHA2 * BLOCK + lane);
                        if pair {
                            columns::<S, ALPHA2, 2, 2>(s, &b, t, u, bias, pool, skip, y, a, first);
                        } else {
                            columns::<S, ALPHA2, 2, 1>(s, &b, t, u, bias, false, skip, y, a, first);
                        }
                    }
                }
            }
        }
    }
}

struct Columns {
    /// Channels; values per transformed row and per output pixel.
    c: usize,
    tr: usize,
    cs: usize,
    relu: bool,
    /// The conv's output plane and row (for the maxima's indices), and the
    /// values per pooled row of `y`.
    plane_out: usize,
    ow: usize,
    pooled_row: usize,
}

/// `M` rows by `C` columns of outputs from `t` (the block's first column of
/// the tile's transformed rows): `acc[ξ][j] = Σ_{ci, dx} U[ci][dx][ξ] ·
/// T[ci][ξ][j + dx]` (the `P` points × `C` columns in registers), `Aᵀ acc`
/// down each column, activated, into `y` as [`block`] stores them — or with
/// `pool` (`C` = 2) the windows' maxima and their indices — but for the
/// first `skip` rows. F(4, 5): `P` = 8, `M` = 4; F(2, 5): 6 and 2.
///
/// # Safety
/// As [`conv_columns`], for the block's columns and outputs.
#[allow(clippy::too_many_arguments)] // a kernel's operands
#[allow(clippy::needless_range_loop)] // constant indices keep `acc` in registers
#[inline(always)]
unsafe fn columns<S: Simd, const P: usize, const M: usize, const C: usize>(
    s: S,
    b: &Columns,
    t: *const f32,
    u: *const f32,
    bias: S::F32,
    pool: bool,
    skip: usize,
    y: *mut f32,
    a: *mut f32,
    first: usize,
) {
    let mut acc = [[s.zero(); C]; P];
    let mut u = u;
    for ci in 0..b.c {
        // SAFETY (all below): channel ci's transformed rows, and its five
        // columns' weight vectors in turn (a block's 16 filters apart).
        let tc = unsafe { t.add(ci * P * b.tr) };
        for dx in 0..KERNEL {
            for xi in 0..P {
                let uv = unsafe { s.load(u.add(xi * BLOCK)) };
                for j in 0..C {
                    let tv = s.splat(unsafe { *tc.add(xi * b.tr + j + dx) });
                    acc[xi][j] = s.fma(tv, uv, acc[xi][j]);
                }
            }
            u = unsafe { u.add(P * BLOCK) };
        }
    }
    let zero = s.zero();
    let mut out = [[zero; C]; M];
    for j in 0..C {
        let mut column = [zero; P];
        for (xi, c) in column.iter_mut().enumerate() {
            *c = acc[xi][j];
        }
        let rows: [S::F32; M] = if P == ALPHA { convert(&a_t(s, &convert(&column))) } else { convert(&at2(s, &convert(&column))) };
        for (i, v) in rows.into_iter().enumerate() {
            let v = s.add(v, bias);
            out[i][j] = if b.relu { s.max(v, zero) } else { v };
        }
    }
    if !pool {
        for i in skip..M {
            for j in 0..C {
                // SAFETY: output (i, j) of the block is inside `y`.
                unsafe { s.store(y.add((i * b.ow + j) * b.cs), out[i][j]) };
            }
        }
        return;
    }
    let lanes = plane_lanes(s, b.plane_out);
    for p in skip / 2..M / 2 {
        let (r, top) = (2 * p, 2 * p * b.ow);
        let (best, at) = window_max(s, [out[r][0], out[r][C - 1], out[r + 1][0], out[r + 1][C - 1]], lanes, first + top, b.ow);
        // SAFETY: pooled rows p of the block are inside `y` (and `a`).
        unsafe { s.store(y.add(p * b.pooled_row), best) };
        if !a.is_null() {
            unsafe { s.store(a.add(p * b.pooled_row), s.i_as_f(at)) };
        }
    }
}

/// Where `dz` is, channels-last: `edge` zero pixels either side of each
/// row of `row` values, `cs` values a pixel.
struct Dz {
    edge: usize,
    row: usize,
    cs: usize,
}

/// Every block of taps of every vector of filters.
///
/// # Safety
/// `xp` is the `c × hp × wp` padded image in which `d`'s windows fit,
/// `dzt` `oh` rows as `dz` says, `acc` `taps × cs` values.
#[inline(always)]
unsafe fn accumulate<S: Simd>(s: S, d: &Im2col, xp: &[f32], dzt: &[f32], dz: &Dz, acc: &mut [f32]) {
    let k = d.kernel[0];
    let (hp, wp) = d.padded();
    let cs = dz.cs;
    let g = Geometry { plane: hp * wp, wp, stride: d.stride, out: [d.oh, d.ow], cs, dz_row: dz.row };
    for v in (0..cs).step_by(S::LANES) {
        let mut ci = 0;
        while ci < d.c {
            // Blocks of taps whose sums fit the registers: with 32, as many
            // whole kernels as fit 28 accumulators; with 16, up to 12 (a
            // 5 × 5 kernel as rows 2 + 2 + 1).
            // SAFETY: the caller's contract; the block's channels are in
            // `xp`, its taps in `acc`.
            unsafe {
                let x = xp.as_ptr().add(ci * g.plane);
                let (dz, a) = (dzt.as_ptr().add(dz.edge * cs + v), acc.as_mut_ptr().add(ci * k * k * cs + v));
                let left = d.c - ci;
                let done = if S::WIDE {
                    match (k, left) {
                        (2, 7..) => s.call(Sums::<2, 7, 2, 28>((&g, x, dz, a))),
                        (2, _) => s.call(Sums::<2, 1, 2, 4>((&g, x, dz, a))),
                        (3, 3..) => s.call(Sums::<3, 3, 3, 27>((&g, x, dz, a))),
                        (3, _) => s.call(Sums::<3, 1, 3, 9>((&g, x, dz, a))),
                        (4, _) => s.call(Sums::<4, 1, 4, 16>((&g, x, dz, a))),
                        (5, _) => s.call(Sums::<5, 1, 5, 25>((&g, x, dz, a))),
                        _ => unreachable!("filter_lanes applies to kernels 2 to 5 wide"),
                    }
                } else {
                    match (k, left) {
                        (2, 3..) => s.call(Sums::<2, 3, 2, 12>((&g, x, dz, a))),
                        (2, _) => s.call(Sums::<2, 1, 2, 4>((&g, x, dz, a))),
                        (3, _) => s.call(Sums::<3, 1, 3, 9>((&g, x, dz, a))),
                        (4, _) => {
                            s.call(Sums::<4, 1, 3, 12>((&g, x, dz, a)));
                            s.call(Sums::<4, 1, 1, 4>((&g, x.add(3 * g.wp), dz, a.add(3 * k * cs))))
                        }
                        (5, _) => {
                            s.call(Sums::<5, 1, 2, 10>((&g, x, dz, a)));
                            s.call(Sums::<5, 1, 2, 10>((&g, x.add(2 * g.wp), dz, a.add(2 * k * cs))));
                            s.call(Sums::<5, 1, 1, 5>((&g, x.add(4 * g.wp), dz, a.add(4 * k * cs))))
                        }
                        _ => unreachable!("filter_lanes applies to kernels 2 to 5 wide"),
                    }
                };
                ci += done;
            }
        }
    }
}

struct Geometry {
    /// Values per channel of the padded image, per row.
    plane: usize,
    wp: usize,
    stride: [usize; 2],
    out: [usize; 2],
    /// Values per pixel of `dzt` and per tap of `acc`.
    cs: usize,
    /// Values per row of `dzt`.
    dz_row: usize,
}

block! {
    /// [`sums`] as a [`Kernel`](super::simd::Kernel).
    Sums<'a, const K: usize, const C: usize, const R: usize, const T: usize>((&'a Geometry, *const f32, *const f32, *mut f32)) -> usize = sums
}

/// `acc[t] += Σ_p dz[p] · x[t at p]` for the `T = C·R·K` taps of `C`
/// channels' `R` kernel rows (all `K` of them when `C` > 1), in registers
/// across the positions; returns the channels done (`C`).
///
/// # Safety
/// As [`accumulate`], `x` at the block's first channel and row, `dz` and
/// `acc` at the vector's first filter (`acc` at the block's first tap).
#[inline(always)]
unsafe fn sums<S: Simd, const K: usize, const C: usize, const R: usize, const T: usize>(
    s: S,
    (g, x, dz, acc): (&Geometry, *const f32, *const f32, *mut f32),
) -> usize {
    debug_assert_eq!(T, C * R * K);
    let [sh, sw] = g.stride;
    let [oh, ow] = g.out;
    // Tap (c, ky, kx)'s sum is `s[(c·R + ky)·K + kx]`, in `acc` at
    // `(c·K + ky)·K + kx` taps from the first.
    // SAFETY (all below): the offsets stay inside the buffers the caller
    // vouched for — windows fit the padded image, pixels and taps the sums.
    let mut sum = [s.zero(); T];
    for (t, v) in sum.iter_mut().enumerate() {
        *v = unsafe { s.load(acc.add(tap_offset::<K, R>(t) * g.cs)) };
    }
    for oy in 0..oh {
        let row = unsafe { x.add(oy * sh * g.wp) };
        let dz_row = unsafe { dz.add(oy * g.dz_row) };
        for ox in 0..ow {
            let v = unsafe { s.load(dz_row.add(ox * g.cs)) };
            let at = unsafe { row.add(ox * sw) };
            for c in 0..C {
                for ky in 0..R {
                    let line = unsafe { at.add(c * g.plane + ky * g.wp) };
                    for kx in 0..K {
                        let t = (c * R + ky) * K + kx;
                        sum[t] = s.fma(s.splat(unsafe { *line.add(kx) }), v, sum[t]);
                    }
                }
            }
        }
    }
    for (t, &v) in sum.iter().enumerate() {
        unsafe { s.store(acc.add(tap_offset::<K, R>(t) * g.cs), v) };
    }
    C
}

/// Where [`sums`]' `t`-th sum (`(c·R + ky)·K + kx`) is among the taps:
/// `(c·K + ky)·K + kx`.
#[inline(always)]
const fn tap_offset<const K: usize, const R: usize>(t: usize) -> usize {
    (t / (R * K)) * K * K + t % (R * K)
}

/// Channels per block of the input gradient: `C × 2` accumulators and `C`
/// weight vectors (8 with 32 registers, 4 with 16).
const fn channel_block<S: Simd>() -> usize {
    if S::WIDE { 8 } else { 4 }
}

/// `dx[ci][q] = Σ over the outputs p that read input q, at tap t: Σ_f
/// wt[ci, t][f] · dz[p][f]`, for every channel and input.
///
/// # Safety
/// `dzt` holds `oh` rows as `dz` says, `wt` `taps × cs` values, `dx` `c × h × w`.
#[inline(always)]
unsafe fn input_grad<S: Simd>(s: S, d: &Im2col, dzt: &[f32], dz: &Dz, wt: &[f32], dx: &mut [f32]) {
    let (k, cs) = (d.kernel[0], dz.cs);
    let plane = d.h * d.w;
    // Rows of taps against zero-edged rows of `dz` (stride 1, and kernels
    // instantiated for them).
    let rows = d.stride == [1, 1] && dz.edge + 1 == k && (k == 3 || k == 5);
    let block = channel_block::<S>();
    for c0 in (0..d.c).step_by(block) {
        // SAFETY: the caller's contract; the block's taps are in `wt`, its
        // planes in `dx`; output (0, 0) of `dzt` is `edge` pixels in.
        unsafe {
            let (w, out) = (wt.as_ptr().add(c0 * k * k * cs), dx.as_mut_ptr().add(c0 * plane));
            let g = dzt.as_ptr().add(dz.edge * cs);
            // `$f::<C, …>(args)` for the block's channels `C`, each in its
            // own function: only this level's block sizes instantiated.
            macro_rules! by_channels {
                ($f:ident $(, $p:tt)*; $($arg:expr),*) => {
                    if S::WIDE {
                        match d.c - c0 {
                            1 => s.call($f::<1 $(, $p)*>(($($arg),*))),
                            2 => s.call($f::<2 $(, $p)*>(($($arg),*))),
                            3 => s.call($f::<3 $(, $p)*>(($($arg),*))),
                            4 => s.call($f::<4 $(, $p)*>(($($arg),*))),
                            5 => s.call($f::<5 $(, $p)*>(($($arg),*))),
                            6 => s.call($f::<6 $(, $p)*>(($($arg),*))),
                            7 => s.call($f::<7 $(, $p)*>(($($arg),*))),
                            _ => s.call($f::<8 $(, $p)*>(($($arg),*))),
                        }
                    } else {
                        match d.c - c0 {
                            1 => s.call($f::<1 $(, $p)*>(($($arg),*))),
                            2 => s.call($f::<2 $(, $p)*>(($($arg),*))),
                            3 => s.call($f::<3 $(, $p)*>(($($arg),*))),
                            _ => s.call($f::<4 $(, $p)*>(($($arg),*))),
                        }
                    }
                };
            }
            match (rows, k) {
                (true, 3) => by_channels!(RowInputs, 3; d, g, [dz.row, cs], w, out),
                (true, _) => by_channels!(RowInputs, 5; d, g, [dz.row, cs], w, out),
                (false, _) => by_channels!(Inputs; d, g, dz, cs == BLOCK, w, out),
            }
        }
    }
}

/// The taps of one axis that reach an output from an input: `count` taps
/// `first, first + s, …`, reading outputs `out, out − 1, …`.
#[derive(Clone, Copy)]
struct Reach {
    first: usize,
    count: usize,
    out: usize,
}

/// [`Reach`] of input `i` along an axis with padding `pad`, kernel `k`,
/// stride `s` and `outputs` outputs.
#[inline(always)]
fn reach(i: usize, pad: usize, k: usize, s: usize, outputs: usize) -> Reach {
    let t = i + pad;
    let last = (k - 1).min(t);
    // The smallest tap whose output is inside, then the first of those
    // that lands on an output (stride).
    let lo = t.saturating_sub((outputs - 1) * s);
    if s == 1 {
        return Reach { first: lo, count: (last + 1).saturating_sub(lo), out: t - lo };
    }
    let first = lo + (t - lo) % s;
    let count = if first > last { 0 } else { (last - first) / s + 1 };
    Reach { first, count, out: (t - first) / s }
}

/// The operands of [`inputs`]: the geometry, `dz` at output (0, 0) and its
/// layout, whether a pixel is one block of filters, the block's weights and
/// input planes.
type InputsOperands<'a> = (&'a Im2col, *const f32, &'a Dz, bool, *const f32, *mut f32);

block! {
    /// [`inputs`] as a [`Kernel`](super::simd::Kernel).
    Inputs<'a, const C: usize>(InputsOperands<'a>) = inputs
}

/// [`input_grad`] for `C` channels (`dx` and `w` at the first, `dzt` at
/// output (0, 0)), any stride; `one` when the filters are one block.
///
/// # Safety
/// As [`input_grad`].
#[inline(always)]
unsafe fn inputs<S: Simd, const C: usize>(s: S, (d, dzt, dz, one, w, dx): InputsOperands<'_>) {
    let (k, cs) = (d.kernel[0], dz.cs);
    let [sy, sx] = d.stride;
    let plane = d.h * d.w;
    let vectors = if one { BLOCK } else { cs };
    let zero = s.zero();
    let mut stage = Stage::<S, C>::new(s);
    for iy in 0..d.h {
        let ry = reach(iy, d.pad[0], k, sy, d.oh);
        for ix in 0..d.w {
            let rx = reach(ix, d.pad[1], k, sx, d.ow);
            let mut acc = [zero; C];
            for a in 0..ry.count {
                let (ky, oy) = (ry.first + a * sy, ry.out - a);
                // SAFETY (all pointers below): output `(oy, ox)` and tap
                // `(ky, kx)` stay inside `dzt` and `w` (`reach`), the vector
                // `v` below `cs`.
                let (mut g, mut taps) = unsafe { (dzt.add(oy * dz.row + rx.out * cs), w.add((ky * k + rx.first) * cs)) };
                for _ in 0..rx.count {
                    for v in (0..vectors).step_by(S::LANES) {
                        let gv = unsafe { s.load(g.add(v)) };
                        for (c, acc) in acc.iter_mut().enumerate() {
                            *acc = s.fma(unsafe { s.load(taps.add(c * k * k * cs + v)) }, gv, *acc);
                        }
                    }
                    // The next tap reads the output one to the left.
                    (g, taps) = (g.wrapping_sub(cs), taps.wrapping_add(sx * cs));
                }
            }
            // SAFETY: `stage` is flushed to `dx` inside its plane.
            unsafe { stage.put([acc], plane, dx) };
        }
    }
    // SAFETY: as above.
    unsafe { stage.flush(plane, dx) };
}

/// The input gradient's sums for up to a vector's lanes of consecutive
/// inputs of `C` channels, added across lanes together into `dx` (a masked
/// store of the inputs held) when full and at the end.
struct Stage<S: Simd, const C: usize> {
    s: S,
    sums: [[S::F32; MAX_LANES]; C],
    /// Inputs held, and the first one's index in a plane.
    held: usize,
    first: usize,
}

impl<S: Simd, const C: usize> Stage<S, C> {
    #[inline(always)]
    fn new(s: S) -> Self {
        Self { s, sums: [[s.zero(); MAX_LANES]; C], held: 0, first: 0 }
    }

    /// Hold the sums of the next `P` inputs (`acc[p][c]`), flushing first
    /// if they do not fit.
    ///
    /// # Safety
    /// `dx` holds `C` planes of `plane` values, which the inputs are in.
    #[inline(always)]
    unsafe fn put<const P: usize>(&mut self, acc: [[S::F32; C]; P], plane: usize, dx: *mut f32) {
        if self.held + P > S::LANES {
            // SAFETY: the caller's contract.
            unsafe { self.flush(plane, dx) };
        }
        for (p, acc) in acc.iter().enumerate() {
            for (sums, &a) in self.sums.iter_mut().zip(acc) {
                sums[self.held + p] = a;
            }
        }
        self.held += P;
    }

    /// # Safety
    /// As [`Self::put`].
    #[inline(always)]
    unsafe fn flush(&mut self, plane: usize, dx: *mut f32) {
        if self.held == 0 {
            return;
        }
        let s = self.s;
        let mask = s.first(self.held);
        for (c, sums) in self.sums.iter().enumerate() {
            // SAFETY: inputs `first..first + held` of channel `c`'s plane.
            unsafe { s.store_masked(mask, dx.add(c * plane + self.first), s.sum_lanes(&sums[..S::LANES])) };
        }
        (self.first, self.held) = (self.first + self.held, 0);
    }
}

/// The operands of [`row_inputs`]: the geometry, `dz` at output (0, 0),
/// its row and pixel lengths, the block's weights and input planes.
type RowOperands<'a> = (&'a Im2col, *const f32, [usize; 2], *const f32, *mut f32);

block! {
    /// [`row_inputs`] as a [`Kernel`](super::simd::Kernel).
    RowInputs<'a, const C: usize, const K: usize>(RowOperands<'a>) = row_inputs
}

/// [`input_grad`] for `C` channels, stride 1, a kernel `K` wide: two inputs
/// of a row at a time, for each vector of filters and each tap `kx` of each
/// row `ky` reaching an output the `C` weight vectors loaded once and
/// multiplied into both inputs' `dz` — the outputs `ix − kx` and `ix + 1 −
/// kx` (zero past the row's ends: the zero edge).
///
/// # Safety
/// As [`input_grad`]; `dzt` at output (0, 0) with `K − 1` zero pixels
/// either side of each row of `row` values, `cs` a pixel.
#[inline(always)]
unsafe fn row_inputs<S: Simd, const C: usize, const K: usize>(s: S, (d, dzt, [row, cs], w, dx): RowOperands<'_>) {
    let plane = d.h * d.w;
    let mut stage = Stage::<S, C>::new(s);
    for iy in 0..d.h {
        let ry = reach(iy, d.pad[0], K, 1, d.oh);
        let mut ix = 0;
        while ix < d.w {
            // SAFETY (both): as `pair`'s.
            unsafe {
                let (at, t) = ([row, cs, d.ow], ix + d.pad[1]);
                match (ix + 1 < d.w, cs == BLOCK) {
                    (true, true) => stage.put(pair::<S, C, K, 2, true>(s, ry, dzt, at, w, t), plane, dx),
                    (true, false) => stage.put(pair::<S, C, K, 2, false>(s, ry, dzt, at, w, t), plane, dx),
                    (false, true) => stage.put(pair::<S, C, K, 1, true>(s, ry, dzt, at, w, t), plane, dx),
                    (false, false) => stage.put(pair::<S, C, K, 1, false>(s, ry, dzt, at, w, t), plane, dx),
                }
                ix += if ix + 1 < d.w { 2 } else { 1 };
            }
        }
    }
    // SAFETY: as above.
    unsafe { stage.flush(plane, dx) };
}

/// `P` inputs from `t` (their column plus the padding) on: `acc[p][c]`.
///
/// # Safety
/// As [`row_inputs`]; `ry` the inputs' row's taps; outputs `t + p − kx`
/// lie in a row or its zero edge.
#[inline(always)]
unsafe fn pair<S: Simd, const C: usize, const K: usize, const P: usize, const ONE: bool>(
    s: S,
    ry: Reach,
    dzt: *const f32,
    [row, cs, ow]: [usize; 3],
    w: *const f32,
    t: usize,
) -> [[S::F32; C]; P] {
    let zero = s.zero();
    let mut acc = [[zero; C]; P];
    // Only the taps that reach an output from one of the inputs (the other
    // reads the zero edge).
    let (lo, hi) = ((t + 1).saturating_sub(ow), K.min(t + P));
    // One block of filters: a constant stride and trip count.
    let cs = if ONE { BLOCK } else { cs };
    for a in 0..ry.count {
        let (ky, oy) = (ry.first + a, ry.out - a);
        for v in (0..cs).step_by(S::LANES) {
            // SAFETY: row `oy` of `dzt`, column `t`; tap row `ky` of `w`;
            // the vector of filters `v`.
            let (g, taps) = unsafe { (dzt.add(oy * row + t * cs + v), w.add(ky * K * cs + v)) };
            // All `K` taps away from the row's ends: a constant trip count, unrolled.
            if (lo, hi) == (0, K) {
                for kx in 0..K {
                    // SAFETY: as `tap`'s.
                    unsafe { tap::<S, C, K, P>(s, &mut acc, g, taps, cs, kx) };
                }
            } else {
                for kx in lo..hi {
                    // SAFETY: as `tap`'s.
                    unsafe { tap::<S, C, K, P>(s, &mut acc, g, taps, cs, kx) };
                }
            }
        }
    }
    acc
}

/// Tap `(ky, kx)` of [`pair`]'s `C` channels (their weight vectors from
/// `taps`) into its `P` inputs' sums (their outputs' `dz` from `g`).
///
/// # Safety
/// Tap `kx` of each of the `C` channels is in the weights; output `t + p −
/// kx`, at least `−(K − 1)`, is in `dz`'s row or its zero edge.
#[inline(always)]
unsafe fn tap<S: Simd, const C: usize, const K: usize, const P: usize>(
    s: S,
    acc: &mut [[S::F32; C]; P],
    g: *const f32,
    taps: *const f32,
    cs: usize,
    kx: usize,
) {
    let mut wv = [s.zero(); C];
    for (c, wv) in wv.iter_mut().enumerate() {
        // SAFETY: the caller's contract.
        *wv = unsafe { s.load(taps.add((c * K * K + kx) * cs)) };
    }
    for (p, acc) in acc.iter_mut().enumerate() {
        // SAFETY: the caller's contract.
        let gv = unsafe { s.load(g.offset((p as isize - kx as isize) * cs as isize)) };
        for (acc, &wv) in acc.iter_mut().zip(&wv) {
            *acc = s.fma(wv, gv, *acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::testing::{AtEveryLevel, for_each_simd};
    use crate::rng::Rng;

    /// Both gradients by their definition, in f64: `gw[fi][tap] = Σ_p
    /// dz[fi][p] · x[tap at p]`, and `dx[ci][q] = Σ w[fi][tap] · dz[fi][p]`
    /// over the (output, tap) pairs reading input `q`.
    fn reference(d: &Im2col, x: &[f32], w: &[f32], dz: &[f32], filters: usize) -> (Vec<f64>, Vec<f64>) {
        let [kh, kw] = d.kernel;
        let taps = d.c * kh * kw;
        let mut gw = vec![0.0; filters * taps];
        let mut dx = vec![0.0; d.c * d.h * d.w];
        for fi in 0..filters {
            for ci in 0..d.c {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let t = (ci * kh + ky) * kw + kx;
                        for oy in 0..d.oh {
                            for ox in 0..d.ow {
                                let (iy, ix) = (oy * d.stride[0] + ky, ox * d.stride[1] + kx);
                                let (Some(iy), Some(ix)) = (iy.checked_sub(d.pad[0]), ix.checked_sub(d.pad[1])) else { continue };
                                if iy >= d.h || ix >= d.w {
                                    continue;
                                }
                                let q = (ci * d.h + iy) * d.w + ix;
                                let g = f64::from(dz[(fi * d.oh + oy) * d.ow + ox]);
                                gw[fi * taps + t] += g * f64::from(x[q]);
                                dx[q] += g * f64::from(w[fi * taps + t]);
                            }
                        }
                    }
                }
            }
        }
        (gw, dx)
    }

    fn close(got: &[f32], want: &[f64], scale: &[f64], what: &str) {
        for (i, ((&got, &want), &scale)) in got.iter().zip(want).zip(scale).enumerate() {
            assert!((f64::from(got) - want).abs() <= 1e-5 * scale.max(1.0), "{what}[{i}] = {got}, want {want}");
        }
    }

    struct Definitions;

    impl AtEveryLevel for Definitions {
        fn at<S: Simd>(&mut self, s: S) {
            gradients_match_their_definition_over_images(s);
            forward_matches_the_definition_and_pools_as_max_pool_2x2(s);
        }
    }

    #[test]
    fn kernels_match_their_definitions_at_every_level() {
        for_each_simd(&mut Definitions);
    }

    fn gradients_match_their_definition_over_images<S: Simd>(s: S) {
        let mut rng = Rng::new(7);
        // (c, h, w, k, stride, pad, filters): LeNet-5's conv2, the block
        // remainders of each kernel size and of the input gradient's eight
        // channels, strides (one leaving inputs no window reads), padding,
        // filters that are not whole vectors or more than one, rows of odd
        // width (the input gradient's pairs of inputs).
        let cases = [
            (6, 14, 14, 5, 1, 0, 16),
            (7, 9, 11, 3, 1, 1, 20),
            (5, 8, 8, 3, 2, 1, 33),
            (9, 7, 6, 2, 1, 0, 3),
            (2, 10, 9, 4, 2, 2, 16),
            (1, 6, 6, 5, 1, 2, 1),
            (17, 5, 7, 2, 3, 1, 17),
            (3, 7, 9, 3, 1, 1, 10),
            (10, 6, 5, 3, 1, 2, 16),
            (9, 9, 8, 5, 1, 2, 16),
        ];
        for (c, h, w, k, st, p, filters) in cases {
            let o = |n: usize| (n + 2 * p - k) / st + 1;
            let d = Im2col { c, h, w, kernel: [k, k], stride: [st, st], pad: [p, p], oh: o(h), ow: o(w) };
            assert!(applies(&d), "{d:?}");
            let (plane, taps) = (d.oh * d.ow, c * k * k);
            let weight: Vec<f32> = (0..filters * taps).map(|_| rng.symmetric(1.0)).collect();
            let mut wt = PackedA::default();
            pack_weights(&d, filters, &weight, &mut wt);
            let mut acc = vec![0.0; grad_len(&d, filters)];
            let (mut want, mut scale) = (vec![0.0f64; filters * taps], vec![0.0f64; filters * taps]);
            for image in 0..2 {
                let x: Vec<f32> = (0..c * h * w).map(|_| rng.symmetric(1.0)).collect();
                let dz: Vec<f32> = (0..filters * plane).map(|_| rng.symmetric(1.0)).collect();
                // Stale values in dx: it is written in full.
                let mut dx = vec![f32::NAN; c * h * w];
                backward_with(s, &d, &x, &dz, filters, &wt, &mut acc, &mut dx);
                let (gw, dx_want) = reference(&d, &x, &weight, &dz, filters);
                let abs = |v: &[f32]| v.iter().map(|v| v.abs()).collect::<Vec<_>>();
                let (gw_scale, dx_scale) = reference(&d, &abs(&x), &abs(&weight), &abs(&dz), filters);
                close(&dx, &dx_want, &dx_scale, &format!("{}: {d:?} filters {filters} image {image}: dx", S::NAME));
                for ((w, sc), (g, s)) in want.iter_mut().zip(&mut scale).zip(gw.into_iter().zip(gw_scale)) {
                    *w += g;
                    *sc += s;
                }
            }
            let mut gw = vec![f32::NAN; filters * taps];
            weight_grad_finish(&d, filters, &acc, &mut gw);
            close(&gw, &want, &scale, &format!("{}: {d:?} filters {filters}: gw", S::NAME));
        }
    }

    fn forward_matches_the_definition_and_pools_as_max_pool_2x2<S: Simd>(s: S) {
        let mut rng = Rng::new(5);
        // (c, h, w, k, pad, filters, bias): LeNet-5's conv2; padding;
        // outputs of odd size (the pool drops the last row and column);
        // rows wider than a block (12) and not a multiple of it; filters
        // that are not a whole vector or more than one. 5 × 5 kernels with
        // four or more output rows run by Winograd down the columns: rows
        // a multiple of its tiles (4) or not (the last tile overlapping,
        // by 2 and, pooled or not, by 1 or 3), transformed rows wider than
        // a vector, one channel.
        let cases = [
            (6, 14, 14, 5, 0, 16, true),
            (3, 9, 11, 3, 1, 20, true),
            (4, 11, 13, 5, 1, 7, false),
            (2, 8, 30, 3, 0, 33, true),
            (5, 6, 6, 2, 0, 16, true),
            (3, 8, 9, 5, 0, 16, true),
            (2, 12, 30, 5, 2, 33, true),
            (1, 9, 21, 5, 0, 5, true),
            (7, 11, 6, 5, 0, 16, false),
        ];
        for (c, h, w, k, p, filters, has_bias) in cases {
            let d = Im2col { c, h, w, kernel: [k, k], stride: [1, 1], pad: [p, p], oh: h + 2 * p - k + 1, ow: w + 2 * p - k + 1 };
            assert!(forward_applies(&d), "{d:?}");
            let (plane, taps) = (d.oh * d.ow, c * k * k);
            let weight: Vec<f32> = (0..filters * taps).map(|_| rng.symmetric(1.0)).collect();
            let bias: Vec<f32> = if has_bias { (0..filters).map(|_| rng.symmetric(1.0)).collect() } else { Vec::new() };
            let x: Vec<f32> = (0..c * h * w).map(|_| rng.symmetric(1.0)).collect();
            let mut wt = PackedA::default();
            pack_forward(&d, filters, &weight, &mut wt);
            for relu in [false, true] {
                let mut z = vec![f32::NAN; filters * plane];
                forward_with(s, &d, &x, &wt, &bias, relu, filters, Output::Planes(&mut z));
                for fi in 0..filters {
                    for oy in 0..d.oh {
                        for ox in 0..d.ow {
                            let (mut want, mut scale) = (bias.get(fi).map_or(0.0, |&b| f64::from(b)), 1.0f64);
                            for ci in 0..c {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        let (Some(iy), Some(ix)) = ((oy + ky).checked_sub(p), (ox + kx).checked_sub(p)) else { continue };
                                        if iy < h && ix < w {
                                            let t = f64::from(weight[fi * taps + (ci * k + ky) * k + kx])
                                                * f64::from(x[(ci * h + iy) * w + ix]);
                                            (want, scale) = (want + t, scale + t.abs());
                                        }
                                    }
                                }
                            }
                            let want = if relu { want.max(0.0) } else { want };
                            let got = z[(fi * d.oh + oy) * d.ow + ox];
                            assert!(
                                (f64::from(got) - want).abs() <= 1e-5 * scale,
                                "{}: {d:?} relu {relu}: z[{fi}][{oy}][{ox}] = {got}, want {want}",
                                S::NAME
                            );
                        }
                    }
                }
                // Pooled in registers: exactly the pool of those planes.
                let pooled = filters * (d.oh / 2) * (d.ow / 2);
                let (mut want_y, mut want_at) = (vec![0.0; pooled], vec![0u32; pooled]);
                crate::kernels::pool::tests::max_pool_reference(&z, filters, d.oh, d.ow, &mut want_y, &mut want_at);
                let (mut y, mut at) = (vec![f32::NAN; pooled], vec![u32::MAX; pooled]);
                forward_with(s, &d, &x, &wt, &bias, relu, filters, Output::MaxPool { y: &mut y, argmax: &mut at });
                assert_eq!(y, want_y, "{}: {d:?} relu {relu}: pooled", S::NAME);
                assert_eq!(at, want_at, "{}: {d:?} relu {relu}: argmax", S::NAME);
                let mut y_only = vec![f32::NAN; pooled];
                forward_with(s, &d, &x, &wt, &bias, relu, filters, Output::MaxPool { y: &mut y_only, argmax: &mut [] });
                assert_eq!(y_only, want_y, "{}: {d:?} relu {relu}: pooled without indices", S::NAME);
            }
        }
    }
}

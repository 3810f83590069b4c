//! 5×5 stride-1 convolutions by Winograd's minimal filtering F(4×4, 5×5):
//! each 4×4 block of outputs ("tile") comes from an 8×8 window of the
//! input as `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`, 64 multiplications per input
//! channel instead of 400. Over a layer that is 64 GEMMs, one per point ξ
//! of the 8 × 8 transform domain:
//!
//! ```text
//! Mᵀ[ξ] (tiles × filters) = Vᵀ[ξ] (tiles × channels) · Uᵀ[ξ] (channels × filters)
//! ```
//!
//! with `U = G g Gᵀ` transformed once per change of the weights and
//! `V = Bᵀ d B` per image. fashion_tf's conv2 (32 → 64, 14 × 14: 16 tiles,
//! covering 16 × 16) does 4.8× fewer multiply-adds than im2col's GEMM
//! (F(2×2, 5×5), before: 2.8×); with few channels (LeNet-5's 6 → 16) the
//! transforms dominate and the direct GEMM stays ([`applies`]).
//!
//! Everything runs channels-last: the image is transposed to pixels of
//! vectors of channels (`CHANNELS` a pixel at least), so a tile's window is 64 whole vectors (no permutes
//! or gathers), `V` comes out tile-major — the left operand of the GEMMs,
//! read in place by the microkernel — and the output transform works on
//! vectors of filters before the result is transposed back to planes.
//! Each point's block of `V` and `M` is a cache line longer than its
//! tiles' values (`point_stride`): 16 tiles × 64 floats is 4 KB, and 64
//! loads 4 KB apart all fall in one set of the L1 cache (with that stride
//! the output transform ran 3× slower).
//!
//! The transform matrices come from the interpolation points 0, ±1, ±2,
//! ±1/2, ∞ (Toom–Cook; `G` carries the Lagrange denominators). fp32 error:
//! ~1.3e-6 of a sum's `Σ|x·w|` at worst over random images (F(2×2, 5×5):
//! ~2.5e-6), measured against an f64 direct sum.
//!
//! The input gradient of such a conv is again a 5×5 stride-1 conv — of the
//! output gradient, with the filters rotated by 180° and their channels
//! swapped, padded `4 − pad` ([`Winograd::adjoint`], [`pack_filters`]'s
//! `flipped`): training's backward pass uses the same code. The weight
//! gradient is formed in the transform domain, `dU[ξ] = Σ dM[ξ]·V[ξ]ᵀ` with
//! `dM = A dY Aᵀ` per tile of the output gradient (written straight into
//! the GEMM's packed panels), 64 GEMMs per image summed over the chunk,
//! and taken back to the filters once by `Gᵀ dU G` ([`weight_grad_acc`],
//! [`weight_grad_finish`]).

use std::cell::RefCell;

use std::mem::MaybeUninit;

use crate::kernels::gemm::{MR, PackedA, Panels, gemm_block, gemm_block_acc, transpose};
use crate::kernels::simd::{Simd, block, multiversion};

/// Outputs per tile side (`m`) and the kernel size (`r`).
pub const TILE: usize = 4;
pub const KERNEL: usize = 5;
/// The transform's size, `m + r − 1`, and its points.
pub(super) const ALPHA: usize = TILE + KERNEL - 1;
const POINTS: usize = ALPHA * ALPHA;

/// `Bᵀ`: the input transform (as written out in [`bt`], checked by a test).
#[cfg_attr(not(test), allow(dead_code))]
const BT: [[f32; ALPHA]; ALPHA] = [
    [-1.0, 0.0, 5.25, 0.0, -5.25, 0.0, 1.0, 0.0],
    [0.0, 1.0, 1.0, -4.25, -4.25, 1.0, 1.0, 0.0],
    [0.0, -1.0, 1.0, 4.25, -4.25, -1.0, 1.0, 0.0],
    [0.0, 0.5, 0.25, -2.5, -1.25, 2.0, 1.0, 0.0],
    [0.0, -0.5, 0.25, 2.5, -1.25, -2.0, 1.0, 0.0],
    [0.0, 2.0, 4.0, -2.5, -5.0, 0.5, 1.0, 0.0],
    [0.0, -2.0, 4.0, 2.5, -5.0, -0.5, 1.0, 0.0],
    [0.0, -1.0, 0.0, 5.25, 0.0, -5.25, 0.0, 1.0],
];

/// `G`: the filter transform.
pub(super) const G: [[f64; KERNEL]; ALPHA] = [
    [-1.0, 0.0, 0.0, 0.0, 0.0],
    [-2.0 / 9.0, -2.0 / 9.0, -2.0 / 9.0, -2.0 / 9.0, -2.0 / 9.0],
    [-2.0 / 9.0, 2.0 / 9.0, -2.0 / 9.0, 2.0 / 9.0, -2.0 / 9.0],
    [1.0 / 90.0, 1.0 / 45.0, 2.0 / 45.0, 4.0 / 45.0, 8.0 / 45.0],
    [1.0 / 90.0, -1.0 / 45.0, 2.0 / 45.0, -4.0 / 45.0, 8.0 / 45.0],
    [32.0 / 45.0, 16.0 / 45.0, 8.0 / 45.0, 4.0 / 45.0, 2.0 / 45.0],
    [32.0 / 45.0, -16.0 / 45.0, 8.0 / 45.0, -4.0 / 45.0, 2.0 / 45.0],
    [0.0, 0.0, 0.0, 0.0, 1.0],
];

/// `Aᵀ`: the output transform ([`at`]).
#[cfg_attr(not(test), allow(dead_code))]
const AT: [[f32; ALPHA]; TILE] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.25, 0.25, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 0.125, -0.125, 1.0],
];

/// Fewest input channels and filters for which Winograd beats the direct
/// GEMM here (measured per image, standalone: 16 → 16 channels on 14 × 14,
/// 24.8 vs 29.1 µs; 6 → 16 on 10 × 10, 8.6 vs 6.2 µs).
pub const MIN_CHANNELS: usize = 16;

/// A 5×5, stride-1 conv of `c × h × w` images into `filters × oh × ow`,
/// zero-padded `pad` on each side (`oh = h + 2·pad − 4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Winograd {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub pad: [usize; 2],
    pub filters: usize,
    pub oh: usize,
    pub ow: usize,
}

/// Fewest outputs per image (9 × 9): below, the tiles' GEMMs are too
/// narrow to gain (a 7 × 7 output, 64 → 64 channels: no faster than the
/// direct GEMM, measured with 2 × 2 tiles).
pub const MIN_OUTPUTS: usize = 81;

/// Whether a conv with this kernel and stride runs as Winograd `d` here:
/// 5×5 kernels, stride 1, padding at most 4, at least [`MIN_CHANNELS`]
/// channels and filters, [`MIN_OUTPUTS`] outputs.
pub fn applies(kernel: [usize; 2], stride: [usize; 2], d: &Winograd) -> bool {
    kernel == [KERNEL; 2]
        && stride == [1, 1]
        && d.pad.iter().all(|&p| p < KERNEL)
        && d.c >= MIN_CHANNELS
        && d.filters >= MIN_CHANNELS
        && d.oh * d.ow >= MIN_OUTPUTS
}

impl Winograd {
    /// Tiles down and across.
    pub const fn tiles(&self) -> (usize, usize) {
        (self.oh.div_ceil(TILE), self.ow.div_ceil(TILE))
    }

    const fn tile_count(&self) -> usize {
        let (ty, tx) = self.tiles();
        ty * tx
    }

    /// The zero-bordered input the tiles' windows read: every window in
    /// full (the last tiles may reach past `oh`, `ow`).
    pub const fn padded(&self) -> (usize, usize) {
        let (ty, tx) = self.tiles();
        (TILE * ty + KERNEL - 1, TILE * tx + KERNEL - 1)
    }

    /// Channels and filters as stored channels-last: a whole number of
    /// vectors each (the rest zero).
    const fn lanes(&self) -> (usize, usize) {
        (self.c.next_multiple_of(CHANNELS), self.filters.next_multiple_of(CHANNELS))
    }

    /// The shape of [`pack_filters`]' matrix: the 64 points' `Uᵀ` blocks,
    /// `c` rows of `filters` each (both rounded up to whole vectors).
    pub const fn u_shape(&self) -> (usize, usize) {
        let (cs, fs) = self.lanes();
        (POINTS * cs, fs)
    }

    /// The accumulator [`weight_grad_acc`] sums into: the weight gradient
    /// in the transform domain, 64 × filters × c.
    pub const fn grad_len(&self) -> usize {
        POINTS * self.filters * self.c
    }

    /// The conv giving this one's input gradient from its output gradient.
    pub const fn adjoint(&self) -> Winograd {
        Winograd {
            c: self.filters,
            h: self.oh,
            w: self.ow,
            pad: [KERNEL - 1 - self.pad[0], KERNEL - 1 - self.pad[1]],
            filters: self.c,
            oh: self.h,
            ow: self.w,
        }
    }

    fn check(&self) {
        assert!(
            self.pad[0] < KERNEL
                && self.pad[1] < KERNEL
                && self.h + 2 * self.pad[0] == self.oh + KERNEL - 1
                && self.w + 2 * self.pad[1] == self.ow + KERNEL - 1,
            "winograd: {self:?} is not a 5×5 stride-1 conv"
        );
    }
}

/// `Uᵀ[ξ][ci][f] = (G g Gᵀ)[ξ]` for the filters `g = weight[f][ci]`
/// (`filters × c × 5 × 5`), stored for [`conv`] (the right-hand side of
/// its GEMMs, [`Winograd::u_shape`]). With `flipped`, `weight`
/// is the forward conv's of which `d` is the [`Winograd::adjoint`]
/// (`c × filters × 5 × 5` in `d`'s terms) and `g` its filters rotated by
/// 180° with the two channel axes swapped.
pub fn pack_filters(d: &Winograd, weight: &[f32], flipped: bool, u: &mut PackedA) {
    d.check();
    let (f, c, taps) = (d.filters, d.c, KERNEL * KERNEL);
    assert_eq!(weight.len(), f * c * taps, "winograd::pack_filters: {f}×{c}×5×5 weights expected");
    let pairs = f * c;
    PLANES.with_borrow_mut(|pl| {
        // g[tap][fi·c + ci]: each tap of every filter, a plane of pairs (in f64:
        // the transform is rounded once, at the end).
        let g = grown(&mut pl.input, taps * pairs);
        for fi in 0..f {
            for ci in 0..c {
                let src = if flipped { &weight[(ci * f + fi) * taps..][..taps] } else { &weight[(fi * c + ci) * taps..][..taps] };
                let pair = fi * c + ci;
                for tap in 0..taps {
                    // Flipped: rotated by 180°, tap t reads tap 24 − t.
                    let v = if flipped { src[taps - 1 - tap] } else { src[tap] };
                    g[tap * pairs + pair] = f64::from(v);
                }
            }
        }
        // G g Gᵀ, whole planes at a time: u[a·6 + b][pair].
        let u_planes = pl.two_sided([KERNEL, KERNEL], [ALPHA, ALPHA], |a, ky| G[a][ky], |b, kx| G[b][kx], pairs);
        let (cs, fs) = d.lanes();
        // Point ξ's block is Uᵀ: row ci, column fi (padding rows and columns zero).
        u.store_rows(POINTS * cs, fs, |rows| {
            for (xi, plane) in u_planes.chunks_exact(pairs).enumerate() {
                let block = &mut rows[xi * cs * fs..][..cs * fs];
                for (pair, &v) in plane.iter().enumerate() {
                    block[(pair % c) * fs + pair / c] = v as f32;
                }
            }
        });
    });
}

/// The tiles of four output rows that the convs by F(4, 5) down the
/// columns (`direct`'s and `filter_lanes`') compute over `oh` ≥ 4 rows, as
/// (first row, how many of its rows the tile before stored). The tiles of
/// the rows a pool reads (all but an odd last row) are the same pooled or
/// not, so that pooling in registers gives what pooling the planes would
/// (the products round by tile): from row 0 by fours, the last one moved
/// up to end at the last even row, then for an odd last row, unpooled, one
/// more tile ending there. A tile stores only the rows the one before did not.
///
/// With `pairs`, the rows left after the tiles of four (two, and an odd
/// last one unpooled) are tiles of two rows — F(2, 5) — instead of a tile
/// of four moved up over rows already done. Yields (first row, rows
/// already stored, rows: 4 or 2).
pub(super) fn column_tiles(oh: usize, pool: bool, pairs: bool) -> impl Iterator<Item = (usize, usize, usize)> {
    let even = oh / 2 * 2;
    let (fours, tail) = if pairs { (even / TILE, PAIR) } else { (even.div_ceil(TILE), TILE) };
    let pair = (pairs && !even.is_multiple_of(TILE)).then(|| (even - PAIR, PAIR));
    let odd = (!pool && even < oh).then(|| (oh - tail, tail));
    (0..fours).map(move |i| ((i * TILE).min(even - TILE), TILE)).chain(pair).chain(odd).scan(0, |done, (s, rows)| {
        let skip = *done - s;
        *done = s + rows;
        Some((s, skip, rows))
    })
}

/// Point `gx` (a row of [`G`] or [`G2`]) of column `dx` of a 5 × 5
/// kernel `g` (row-major): `Σ_dy gx[dy] · g[dy][dx]`, in f64 and rounded
/// once — the filter transform of the convs by Winograd down the columns.
pub(super) fn column_point(gx: &[f64; KERNEL], g: &[f32], dx: usize) -> f32 {
    gx.iter().enumerate().map(|(dy, &gy)| gy * f64::from(g[dy * KERNEL + dx])).sum::<f64>() as f32
}

/// F(2, 5): outputs per tile, the transform's size (points 0, ±1, ±2, ∞)
/// and the filter transform ([`bt2`] and [`at2`] write out its `Bᵀ`
/// and `Aᵀ`).
pub(super) const PAIR: usize = 2;
pub(super) const ALPHA2: usize = PAIR + KERNEL - 1;
pub(super) const G2: [[f64; KERNEL]; ALPHA2] = [
    [1.0 / 4.0, 0.0, 0.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0, 1.0 / 3.0, 2.0 / 3.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0, -1.0 / 3.0, 2.0 / 3.0],
    [0.0, 0.0, 0.0, 0.0, 1.0],
];

/// `v[..len]`, grown (never shrunk) to hold it: scratch reused from call to
/// call (freed and allocated afresh, these planes cost page faults).
pub(super) fn grown<T: Copy + Default>(v: &mut Vec<T>, len: usize) -> &mut [T] {
    if v.len() < len {
        v.resize(len, T::default());
    }
    &mut v[..len]
}

/// Per-thread f64 planes of the filter transforms.
#[derive(Default)]
struct Planes {
    input: Vec<f64>,
    half: Vec<f64>,
    out: Vec<f64>,
}

thread_local! {
    static PLANES: RefCell<Planes> = RefCell::default();
}

impl Planes {
    /// `out[i][j] = Σ_k Σ_l left(i, k) · input[k][l] · right(j, l)` for
    /// every pair at once: `input` holds `K × L` planes of `pairs` values
    /// (`[k·L + l][pair]`), the result `I × J` of them — `G g Gᵀ` for the
    /// filters, `Gᵀ dU G` for their gradient — one side after the other.
    fn two_sided(
        &mut self,
        [k_n, l_n]: [usize; 2],
        [i_n, j_n]: [usize; 2],
        left: impl Fn(usize, usize) -> f64,
        right: impl Fn(usize, usize) -> f64,
        pairs: usize,
    ) -> &[f64] {
        let input = &self.input[..k_n * l_n * pairs];
        let half = grown(&mut self.half, i_n * l_n * pairs);
        for i in 0..i_n {
            for l in 0..l_n {
                let terms = (0..k_n).map(|k| (left(i, k), &input[(k * l_n + l) * pairs..][..pairs]));
                combine_planes(&mut half[(i * l_n + l) * pairs..][..pairs], terms);
            }
        }
        let out = grown(&mut self.out, i_n * j_n * pairs);
        for i in 0..i_n {
            for j in 0..j_n {
                let terms = (0..l_n).map(|l| (right(j, l), &half[(i * l_n + l) * pairs..][..pairs]));
                combine_planes(&mut out[(i * j_n + j) * pairs..][..pairs], terms);
            }
        }
        out
    }
}

/// `out = Σ coef · plane` over the `terms`, zero coefficients skipped.
fn combine_planes<'a>(out: &mut [f64], terms: impl Iterator<Item = (f64, &'a [f64])>) {
    out.fill(0.0);
    for (coef, plane) in terms {
        if coef != 0.0 {
            for (o, &v) in out.iter_mut().zip(plane) {
                *o += coef * v;
            }
        }
    }
}

/// Per-thread buffers: the image (or gradient) channels-last, a row of
/// points of its transform `V`, the products `M`, the output
/// channels-last, and the transposes on the way.
#[derive(Default)]
struct Buffers {
    xt: Vec<f32>,
    v: Vec<f32>,
    m: Vec<f32>,
    zt: Vec<f32>,
    tmp: Vec<f32>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::default();
}

/// `y[f] = act(bias[f] + Σ_ci x[ci] ⋆ g[f][ci])` for one image, with
/// `u` from [`pack_filters`]: `x` is `c × h × w`, `y` `filters × oh × ow`
/// (written in full); `bias` empty or one per filter; `relu` applies
/// max(0, ·) before the store.
///
/// Channels-last throughout (the image and the output are transposed in
/// and out): each tile's window is 64 whole vectors of channels, and
/// point ξ's GEMM is `Mᵀ[ξ] (tiles × filters) = Vᵀ[ξ] (tiles × c) ·
/// Uᵀ[ξ] (c × filters)` with `Vᵀ` read in place by the microkernel.
///
/// # Panics
/// When the geometry is not a 5×5 stride-1 conv, a buffer is shorter than
/// it, or `u` was packed for another.
pub fn conv(d: &Winograd, x: &[f32], u: &PackedA, bias: &[f32], relu: bool, y: &mut [f32]) {
    conv_at(d, x, u, bias, relu, y)
}

multiversion! {
    fn conv_at(d: &Winograd, x: &[f32], u: &PackedA, bias: &[f32], relu: bool, y: &mut [f32]) => |s| conv_with(s, d, x, u, bias, relu, y)
}

/// [`conv`] with the transforms at `s`'s level (the GEMMs at
/// [`cpu_level`](crate::cpu::cpu_level)'s).
#[inline(always)]
fn conv_with<S: Simd>(s: S, d: &Winograd, x: &[f32], u: &PackedA, bias: &[f32], relu: bool, y: &mut [f32]) {
    d.check();
    assert!(x.len() >= d.c * d.h * d.w && y.len() >= d.filters * d.oh * d.ow, "winograd::conv: buffers shorter than {d:?}");
    assert!(bias.is_empty() || bias.len() == d.filters, "winograd::conv: {} biases for {} filters", bias.len(), d.filters);
    assert!((u.rows(), u.depth()) == d.u_shape(), "winograd::conv: filters packed for another geometry");
    let mut b = BUFFERS.take();
    let (tiles, (ty, tx), (cs, fs)) = (d.tile_count(), d.tiles(), d.lanes());
    let Buffers { xt, v, m, zt, tmp } = &mut b;
    let xt = channels_last(&x[..d.c * d.h * d.w], [d.c, d.h, d.w], d.pad, d.padded().into(), cs, tmp, xt);
    let (vs, ms) = (point_stride(tiles, cs), point_stride(tiles, fs));
    let (v, m) = (grown(v, POINTS * vs), grown(m, POINTS * ms));
    let ut = u.values();
    input_transform(s, d, xt, cs, v);
    for xi in 0..POINTS {
        let vt = Panels::in_place(&v[xi * vs..][..tiles * cs], tiles, cs, cs);
        gemm_block(vt, &ut[xi * cs * fs..][..cs * fs], fs, d.filters, &mut m[xi * ms..][..tiles * fs], fs);
    }
    let (hy, wy) = (TILE * ty, TILE * tx);
    let yt = grown(zt, hy * wy * fs);
    output_transform(s, d, m, fs, bias, relu, yt);
    planes(yt, [hy, wy, fs], [d.filters, d.oh, d.ow], tmp, y);
    BUFFERS.set(b);
}

/// `acc[ξ][f][ci] += Σ_t dM[ξ][f][t] · V[ξ][ci][t]` for one image: the
/// weight gradient in the transform domain (`dM = A dY Aᵀ` per tile of the
/// output gradient `dz`, `filters × oh × ow`; `V` of the input `x`), by 64
/// accumulating GEMMs. [`weight_grad_finish`] takes it back to the filters.
///
/// The GEMMs' depth is the tiles, so both transforms run channels-last
/// (a vector of channels, a tile's window read as whole vectors): `V`
/// comes out tile-major as the GEMM's right operand, `dM` straight in its
/// packed panels — no per-image packing or transposing of either.
///
/// # Panics
/// As [`conv`]; and when `acc` is not [`Winograd::grad_len`] long.
pub fn weight_grad_acc(d: &Winograd, x: &[f32], dz: &[f32], acc: &mut [f32]) {
    weight_grad_at(d, x, dz, acc)
}

multiversion! {
    fn weight_grad_at(d: &Winograd, x: &[f32], dz: &[f32], acc: &mut [f32]) => |s| weight_grad_with(s, d, x, dz, acc)
}

/// [`weight_grad_acc`] with the transforms at `s`'s level.
#[inline(always)]
fn weight_grad_with<S: Simd>(s: S, d: &Winograd, x: &[f32], dz: &[f32], acc: &mut [f32]) {
    d.check();
    assert!(
        x.len() >= d.c * d.h * d.w && dz.len() >= d.filters * d.oh * d.ow && acc.len() == d.grad_len(),
        "winograd::weight_grad_acc: buffers do not fit {d:?}"
    );
    let mut b = BUFFERS.take();
    let (tiles, (ty, tx)) = (d.tile_count(), d.tiles());
    let (cs, fs) = d.lanes();
    let Buffers { v, m, xt, zt, tmp, .. } = &mut b;
    let xt = channels_last(&x[..d.c * d.h * d.w], [d.c, d.h, d.w], d.pad, d.padded().into(), cs, tmp, xt);
    // Tiles past oh, ow read zeros.
    let zt = channels_last(&dz[..d.filters * d.oh * d.ow], [d.filters, d.oh, d.ow], [0, 0], [TILE * ty, TILE * tx], fs, tmp, zt);
    // `V` for every point, `dM` a row of eight points at a time (its
    // stores are scattered over the panels: an eighth of them is still in
    // cache when the row's GEMMs read it).
    let (vs, ms) = (point_stride(tiles, cs), point_stride(tiles, fs));
    let (v, m) = (grown(v, POINTS * vs), grown(m, ALPHA * ms));
    let (fc, panels) = (d.filters * d.c, fs / MR);
    input_transform(s, d, xt, cs, v);
    for a in 0..ALPHA {
        gradient_row(s, a, d, zt, fs, m);
        for b in 0..ALPHA {
            let xi = a * ALPHA + b;
            let dm = Panels::packed(&m[b * ms..][..panels * tiles * MR], d.filters, tiles);
            let acc = &mut acc[xi * fc..][..fc];
            gemm_block_acc(dm, &v[xi * vs..][..tiles * cs], cs, d.c, acc, d.c);
        }
    }
    BUFFERS.set(b);
}

/// Values from one point's block of `V` or `M` to the next: its tiles'
/// `lanes` values and a cache line more — with 16 tiles of 64 values the
/// blocks would be 4 KB apart, and a tile's 64 loads (or stores) across
/// them would all fall in one set of the L1 cache.
const fn point_stride(tiles: usize, lanes: usize) -> usize {
    tiles * lanes + CHANNELS
}

/// Channels-last buffers hold a multiple of this many channels per pixel
/// (a whole AVX-512 vector, two AVX2 ones), whatever the level: the packed
/// filters' layout is the same at every level. Also a cache line of floats.
pub(super) const CHANNELS: usize = 16;

/// `x` (`c × h × w`) channels-last in `out`: pixel `(iy + pad₀, ix + pad₁)`
/// of an `hp × wp` plane holds its `c` channels and zeros up to `cs`; the
/// border is zero. `tmp` holds the plain transpose on the way.
pub(super) fn channels_last<'a>(
    x: &[f32],
    [c, h, w]: [usize; 3],
    pad: [usize; 2],
    [hp, wp]: [usize; 2],
    cs: usize,
    tmp: &mut Vec<f32>,
    out: &'a mut Vec<f32>,
) -> &'a [f32] {
    assert!(h + pad[0] <= hp && w + pad[1] <= wp && c <= cs, "channels_last: {c} × {h} × {w} does not fit {hp} × {wp} × {cs}");
    let t = grown(tmp, h * w * c);
    transpose(x, c, h * w, t);
    let out = grown(out, hp * wp * cs);
    // Zero the border only (the interior is written below): whole rows
    // above and below, the pixels left and right of each image row.
    let row_len = wp * cs;
    out[..pad[0] * row_len].fill(0.0);
    out[(pad[0] + h) * row_len..].fill(0.0);
    for iy in 0..h {
        let row = &mut out[(iy + pad[0]) * row_len..][..row_len];
        row[..pad[1] * cs].fill(0.0);
        row[(pad[1] + w) * cs..].fill(0.0);
        let (inside, src) = (&mut row[pad[1] * cs..][..w * cs], &t[iy * w * c..][..w * c]);
        if cs == c {
            inside.copy_from_slice(src);
        } else {
            for (dst, px) in inside.chunks_exact_mut(cs).zip(src.chunks_exact(c)) {
                dst[..c].copy_from_slice(px);
                dst[c..].fill(0.0);
            }
        }
    }
    out
}

/// `gw[f][ci] = Gᵀ acc[·][f][ci] G` (5 × 5 from the 8 × 8 points):
/// the weight gradient (`filters × c × 5 × 5`) from [`weight_grad_acc`]'s sums.
pub fn weight_grad_finish(d: &Winograd, acc: &[f32], gw: &mut [f32]) {
    let pairs = d.filters * d.c;
    assert!(acc.len() == d.grad_len() && gw.len() == pairs * KERNEL * KERNEL, "winograd::weight_grad_finish: buffers do not fit {d:?}");
    PLANES.with_borrow_mut(|pl| {
        // acc[ξ] is a plane of (fi, ci) pairs: Gᵀ acc G (in f64), taps[ky·5 + kx][pair].
        for (p, &v) in grown(&mut pl.input, acc.len()).iter_mut().zip(acc) {
            *p = f64::from(v);
        }
        let taps = pl.two_sided([ALPHA, ALPHA], [KERNEL, KERNEL], |ky, a| G[a][ky], |kx, b| G[b][kx], pairs);
        for (tap, plane) in taps.chunks_exact(pairs).enumerate() {
            for (pair, &v) in plane.iter().enumerate() {
                gw[pair * KERNEL * KERNEL + tap] = v as f32;
            }
        }
    });
}

/// The inverse of [`channels_last`]: `y[f][oy][ox]` for `f < filters`,
/// `oy < oh`, `ox < ow` from `yt`, `hy × wy` pixels of `fs` values.
pub(super) fn planes(yt: &[f32], [hy, wy, fs]: [usize; 3], [filters, oh, ow]: [usize; 3], tmp: &mut Vec<f32>, y: &mut [f32]) {
    assert!(
        oh <= hy && ow <= wy && filters <= fs && y.len() >= filters * oh * ow,
        "planes: {filters} × {oh} × {ow} from {hy} × {wy} × {fs}"
    );
    if (hy, wy, fs) == (oh, ow, filters) {
        return transpose(&yt[..hy * wy * fs], hy * wy, fs, y);
    }
    let t = grown(tmp, hy * wy * fs);
    transpose(&yt[..hy * wy * fs], hy * wy, fs, t);
    for (f, plane) in y[..filters * oh * ow].chunks_exact_mut(oh * ow).enumerate() {
        for (oy, row) in plane.chunks_exact_mut(ow).enumerate() {
            row.copy_from_slice(&t[(f * hy + oy) * wy..][..ow]);
        }
    }
}

/// `Bᵀ d` for a column `d` of eight vectors: [`BT`]'s rows, written out —
/// each pair of rows for the points ±p as the sum and the difference of
/// its even and odd terms, no zero terms.
#[inline(always)]
pub(super) fn bt<S: Simd>(s: S, d: &[S::F32; ALPHA]) -> [S::F32; ALPHA] {
    // ±1: (d2 + d6 − 4.25 d4) ± (d1 + d5 − 4.25 d3)
    let (e1, o1) = (s.fma(s.splat(-4.25), d[4], s.add(d[2], d[6])), s.fma(s.splat(-4.25), d[3], s.add(d[1], d[5])));
    // ±1/2: (0.25 d2 − 1.25 d4 + d6) ± (0.5 d1 − 2.5 d3 + 2 d5)
    let (e2, o2) = (
        s.fma(s.splat(-1.25), d[4], s.fma(s.splat(0.25), d[2], d[6])),
        s.fma(s.splat(2.0), d[5], s.fma(s.splat(-2.5), d[3], s.mul(s.splat(0.5), d[1]))),
    );
    // ±2: (4 d2 − 5 d4 + d6) ± (2 d1 − 2.5 d3 + 0.5 d5)
    let (e3, o3) = (
        s.fma(s.splat(-5.0), d[4], s.fma(s.splat(4.0), d[2], d[6])),
        s.fma(s.splat(0.5), d[5], s.fma(s.splat(-2.5), d[3], s.mul(s.splat(2.0), d[1]))),
    );
    [
        s.fma(s.splat(5.25), s.sub(d[2], d[4]), s.sub(d[6], d[0])),
        s.add(e1, o1),
        s.sub(e1, o1),
        s.add(e2, o2),
        s.sub(e2, o2),
        s.add(e3, o3),
        s.sub(e3, o3),
        s.fma(s.splat(5.25), s.sub(d[3], d[5]), s.sub(d[7], d[1])),
    ]
}

/// `Bᵀ d` of F(2, 5) for a column `d` of six vectors: `4 d0 − 5 d2 + d4`,
/// `(d4 − 4 d2) ± (d3 − 4 d1)`, `(d4 − d2) ± 2 (d3 − d1)`, `4 d1 − 5 d3 +
/// d5` (checked against the definition by the tests of its callers).
#[inline(always)]
pub(super) fn bt2<S: Simd>(s: S, d: &[S::F32; ALPHA2]) -> [S::F32; ALPHA2] {
    let (e1, o1) = (s.fma(s.splat(-4.0), d[2], d[4]), s.fma(s.splat(-4.0), d[1], d[3]));
    let (e2, o2) = (s.sub(d[4], d[2]), s.mul(s.splat(2.0), s.sub(d[3], d[1])));
    [
        s.fma(s.splat(4.0), d[0], s.fma(s.splat(-5.0), d[2], d[4])),
        s.add(e1, o1),
        s.sub(e1, o1),
        s.add(e2, o2),
        s.sub(e2, o2),
        s.fma(s.splat(4.0), d[1], s.fma(s.splat(-5.0), d[3], d[5])),
    ]
}

/// `Aᵀ m` for a column `m` of eight vectors: [`AT`]'s rows, written out
/// over the sums and differences of the ± pairs.
#[inline(always)]
pub(super) fn at<S: Simd>(s: S, m: &[S::F32; ALPHA]) -> [S::F32; TILE] {
    let (s1, d1) = (s.add(m[1], m[2]), s.sub(m[1], m[2]));
    let (s2, d2) = (s.add(m[3], m[4]), s.sub(m[3], m[4]));
    let (s3, d3) = (s.add(m[5], m[6]), s.sub(m[5], m[6]));
    [
        s.add(s.add(m[0], s1), s.add(s2, s3)),
        s.fma(s.splat(0.5), d3, s.fma(s.splat(2.0), d2, d1)),
        s.fma(s.splat(0.25), s3, s.fma(s.splat(4.0), s2, s1)),
        s.add(s.fma(s.splat(0.125), d3, s.fma(s.splat(8.0), d2, d1)), m[7]),
    ]
}

/// `Aᵀ m` of F(2, 5): `m0 + m1 + m2 + m3 + m4` and `(m1 − m2) + 2 (m3 −
/// m4) + m5`.
#[inline(always)]
pub(super) fn at2<S: Simd>(s: S, m: &[S::F32; ALPHA2]) -> [S::F32; PAIR] {
    [s.add(s.add(m[0], s.add(m[1], m[2])), s.add(m[3], m[4])), s.add(s.fma(s.splat(2.0), s.sub(m[3], m[4]), s.sub(m[1], m[2])), m[5])]
}

/// `A y` for four outputs `y`: the transpose of [`AT`], from a tile's
/// outputs to the eight points.
#[inline(always)]
fn a<S: Simd>(s: S, y: [S::F32; TILE]) -> [S::F32; ALPHA] {
    let (e1, o1) = (s.add(y[0], y[2]), s.add(y[1], y[3]));
    let (e2, o2) = (s.fma(s.splat(4.0), y[2], y[0]), s.fma(s.splat(8.0), y[3], s.mul(s.splat(2.0), y[1])));
    let (e3, o3) = (s.fma(s.splat(0.25), y[2], y[0]), s.fma(s.splat(0.125), y[3], s.mul(s.splat(0.5), y[1])));
    [y[0], s.add(e1, o1), s.sub(e1, o1), s.add(e2, o2), s.sub(e2, o2), s.add(e3, o3), s.sub(e3, o3), y[3]]
}

/// `a` as an array of the same length `B` (`P` and a transform's size in
/// generic code).
#[inline(always)]
pub(super) fn convert<T: Copy, const A: usize, const B: usize>(a: &[T; A]) -> [T; B] {
    a[..].try_into().expect("arrays of one length")
}

/// `t[(ci·P + ξ)·row + x] = (Bᵀ d)[ξ]` for the `P` rows `d` from row `s0`
/// of each of `c` channels of the image `x` (`h × w` each) as if
/// zero-padded by `top` rows and `left` columns (and on the right and
/// bottom as far as read), columns `0..width` of the padded rows: the
/// columns transform of the convs by Winograd down the columns, whole
/// vectors of a row at a time, the padding as masked-off lanes and zero
/// rows (no padded copy). `P` = 8: F(4, 5) ([`bt`]); 6: F(2, 5) ([`bt2`]).
///
/// # Safety
/// `x` holds `c × h × w` values, `t` `c × P` rows of `row` ≥ `width`
/// values rounded up to whole vectors.
#[allow(clippy::too_many_arguments)] // a kernel's operands
#[inline(always)]
pub(super) unsafe fn columns_transform<S: Simd, const P: usize>(
    s: S,
    x: &[f32],
    c: usize,
    [h, w]: [usize; 2],
    [top, left]: [usize; 2],
    width: usize,
    s0: usize,
    row: usize,
    t: &mut [f32],
) {
    let l = S::LANES;
    let zero = s.zero();
    for at in (0..width).step_by(l) {
        // Lane i holds input column at + i − left: the lanes in 0..w.
        let (first, end) = (left.saturating_sub(at).min(l), (w + left).saturating_sub(at).min(l));
        let mask = s.and_not(s.first(end), s.first(first));
        let empty = s.is_empty(mask);
        for ci in 0..c {
            let mut column = [zero; P];
            if !empty {
                for (r, v) in column.iter_mut().enumerate() {
                    let y = (s0 + r).wrapping_sub(top);
                    if y < h {
                        // SAFETY: the unmasked lanes read columns at + i −
                        // left in 0..w of row y < h of channel ci (the
                        // pointer itself may point before the row: only
                        // those lanes are read).
                        *v = unsafe { s.load_masked(mask, x.as_ptr().add((ci * h + y) * w).wrapping_add(at).wrapping_sub(left)) };
                    }
                }
            }
            let v: [S::F32; P] = if P == ALPHA { convert(&bt(s, &convert(&column))) } else { convert(&bt2(s, &convert(&column))) };
            for (xi, v) in v.into_iter().enumerate() {
                // SAFETY: row (ci, ξ) of `t`, a whole vector at `at` < row.
                unsafe { s.store(t.as_mut_ptr().add((ci * P + xi) * row + at), v) };
            }
        }
    }
}

/// `V[ξ][t][ci] = (Bᵀ d B)[ξ]` for the window `d` of every tile `t`,
/// channels-last: a vector holds a block of channels, so a window is 64
/// whole vectors (no permutes), `Bᵀ d` down its columns and then `· B`
/// across. `xt` holds `padded()` pixels of `cs` values ([`channels_last`]),
/// `cs` a multiple of [`CHANNELS`]; `v` 64 × tiles × `cs`.
#[inline(always)]
fn input_transform<S: Simd>(s: S, d: &Winograd, xt: &[f32], cs: usize, v: &mut [f32]) {
    let ((hp, wp), (ty_n, tx_n)) = (d.padded(), d.tiles());
    let tiles = ty_n * tx_n;
    let vs = point_stride(tiles, cs);
    assert!(cs.is_multiple_of(CHANNELS) && xt.len() >= hp * wp * cs && v.len() >= ALPHA * ALPHA * vs);
    let (xp, vp) = (xt.as_ptr(), v.as_mut_ptr());
    for ty in 0..ty_n {
        for tx in 0..tx_n {
            let t = ty * tx_n + tx;
            for q in (0..cs).step_by(S::LANES) {
                let corner = (TILE * ty * wp + TILE * tx) * cs + q;
                // Bᵀ d down each window column j into td[·][j] (a loop over
                // j: built with array maps instead, the column copies made
                // this transform 5% slower; uninitialised, not zeroed: the
                // 4 KB memset per tile was 0.5% of a training step).
                let mut td = [[MaybeUninit::<S::F32>::uninit(); ALPHA]; ALPHA];
                #[allow(clippy::needless_range_loop)]
                for j in 0..ALPHA {
                    let mut col = [s.zero(); ALPHA];
                    for (i, c) in col.iter_mut().enumerate() {
                        // SAFETY: window (i, j) of the tile is pixel (4ty + i, 4tx + j) < padded(), channels q..q + LANES ≤ cs.
                        *c = unsafe { s.load(xp.add(corner + (i * wp + j) * cs)) };
                    }
                    for (a, x) in bt(s, &col).into_iter().enumerate() {
                        td[a][j].write(x);
                    }
                }
                for (a, row) in td.iter().enumerate() {
                    let mut values = [s.zero(); ALPHA];
                    for (v, x) in values.iter_mut().zip(row) {
                        // SAFETY: the loop above wrote every td[a][j].
                        *v = unsafe { x.assume_init() };
                    }
                    let row = values;
                    for (b, x) in bt(s, &row).into_iter().enumerate() {
                        // SAFETY: point a·8 + b, tile t, channels q.. of `v` (asserted).
                        unsafe { s.store(vp.add((a * ALPHA + b) * vs + t * cs + q), x) };
                    }
                }
            }
        }
    }
}

/// Row `a` of `dM = A dY Aᵀ` for the 4 × 4 block `dY` of the output
/// gradient under every tile, written as the weight gradient GEMM's packed
/// panels: `m[((b·P + p)·tiles + t)·8 + r] = dM[a][b]` for filter `8p + r`
/// (`P = fs / 8`). `zt` holds `4·ty × 4·tx` pixels of `fs` values, zero
/// past `oh`, `ow` and the filters ([`channels_last`]), `fs` a multiple of
/// [`CHANNELS`]; `m` holds 8 × `fs` × tiles.
#[inline(always)]
fn gradient_row<S: Simd>(s: S, a: usize, d: &Winograd, zt: &[f32], fs: usize, m: &mut [f32]) {
    // SAFETY: `dm_row` is safe (it checks its buffers).
    unsafe {
        match a {
            0 => s.call(DmRow::<0>((d, zt, fs, m))),
            1 => s.call(DmRow::<1>((d, zt, fs, m))),
            2 => s.call(DmRow::<2>((d, zt, fs, m))),
            3 => s.call(DmRow::<3>((d, zt, fs, m))),
            4 => s.call(DmRow::<4>((d, zt, fs, m))),
            5 => s.call(DmRow::<5>((d, zt, fs, m))),
            6 => s.call(DmRow::<6>((d, zt, fs, m))),
            _ => s.call(DmRow::<7>((d, zt, fs, m))),
        }
    }
}

block! {
    /// [`dm_row`] as a [`Kernel`](super::simd::Kernel).
    DmRow<'a, const A: usize>((&'a Winograd, &'a [f32], usize, &'a mut [f32])) = dm_row
}

/// [`gradient_row`] for the row `A` (the other rows are never computed).
#[inline(always)]
fn dm_row<S: Simd, const A: usize>(s: S, (d, zt, fs, m): (&Winograd, &[f32], usize, &mut [f32])) {
    let (ty_n, tx_n) = d.tiles();
    let (tiles, wz) = (ty_n * tx_n, TILE * tx_n);
    let ms = point_stride(tiles, fs);
    assert!(fs.is_multiple_of(CHANNELS) && zt.len() >= TILE * ty_n * wz * fs && m.len() >= ALPHA * ms);
    let (zp, mp) = (zt.as_ptr(), m.as_mut_ptr());
    for ty in 0..ty_n {
        for tx in 0..tx_n {
            let t = ty * tx_n + tx;
            for q in (0..fs).step_by(S::LANES) {
                let corner = (TILE * ty * wz + TILE * tx) * fs + q;
                // (A dY)[A][j] for each column j, then · Aᵀ (loops, not
                // array closures: see output_transform).
                let mut row = [s.zero(); TILE];
                for (j, r) in row.iter_mut().enumerate() {
                    let mut col = [s.zero(); TILE];
                    for (i, c) in col.iter_mut().enumerate() {
                        // SAFETY: the tile's output (4ty + i, 4tx + j) is a pixel of `zt`, filters q..q + LANES ≤ fs.
                        *c = unsafe { s.load(zp.add(corner + (i * wz + j) * fs)) };
                    }
                    *r = a(s, col)[A];
                }
                for (b, x) in a(s, row).into_iter().enumerate() {
                    // SAFETY: panels q/8.. < P of point b, step t, 8 lanes each (asserted);
                    // fewer than 8 lanes fill a panel's step from lane q % 8.
                    unsafe { s.store_octs(mp.add(b * ms + ((q / 8) * tiles + t) * 8 + q % 8), tiles * 8, x) };
                }
            }
        }
    }
}

/// `yt[(4ty + i)·wy + 4tx + j][f] = act(bias[f] + (Aᵀ M A)[i][j])` for
/// every tile, channels-last (`wy = 4·tx`): per tile and vector of filters,
/// the 64 points as whole vectors of `m[ξ][t][f]`. `m` holds 64 × tiles ×
/// `fs` values, `fs` a multiple of [`CHANNELS`]; `yt` holds `4·ty × 4·tx ×
/// fs`; `bias` is empty or one per filter.
#[inline(always)]
fn output_transform<S: Simd>(s: S, d: &Winograd, m: &[f32], fs: usize, bias: &[f32], relu: bool, yt: &mut [f32]) {
    let (ty_n, tx_n) = d.tiles();
    let (tiles, wy) = (ty_n * tx_n, TILE * tx_n);
    let ms = point_stride(tiles, fs);
    assert!(fs.is_multiple_of(CHANNELS) && m.len() >= ALPHA * ALPHA * ms && yt.len() >= TILE * ty_n * wy * fs);
    assert!(bias.is_empty() || bias.len() == d.filters);
    let (mp, yp) = (m.as_ptr(), yt.as_mut_ptr());
    for q in (0..fs).step_by(S::LANES) {
        // SAFETY: lanes up to the bias's length (masked).
        let b = unsafe { s.load_masked(s.first(bias.len().saturating_sub(q)), bias.as_ptr().wrapping_add(q)) };
        for ty in 0..ty_n {
            for tx in 0..tx_n {
                let t = ty * tx_n + tx;
                // (M A)[a][j] per row a of the transform domain, kept by
                // column: ma[j][a]. (Loops: built by array closures, the
                // compiler left `at` out of line in them — a quarter of
                // the forward's time.)
                let mut ma = [[s.zero(); ALPHA]; TILE];
                #[allow(clippy::needless_range_loop)]
                for a in 0..ALPHA {
                    let mut row = [s.zero(); ALPHA];
                    for (b, x) in row.iter_mut().enumerate() {
                        // SAFETY: point a·8 + b, tile t, filters q..q + LANES ≤ fs of `m`.
                        *x = unsafe { s.load(mp.add((a * ALPHA + b) * ms + t * fs + q)) };
                    }
                    for (j, x) in at(s, &row).into_iter().enumerate() {
                        ma[j][a] = x;
                    }
                }
                for (j, col) in ma.iter().enumerate() {
                    for (i, o) in at(s, col).into_iter().enumerate() {
                        let o = s.add(o, b);
                        let o = if relu { s.max(o, s.zero()) } else { o };
                        // SAFETY: pixel (4ty + i, 4tx + j) of `yt`, filters q..q + LANES ≤ fs.
                        unsafe { s.store(yp.add(((TILE * ty + i) * wy + TILE * tx + j) * fs + q), o) };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::testing::{AtEveryLevel, for_each_simd, lanes};
    use crate::rng::Rng;

    fn uniform(rng: &mut Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.symmetric(1.0)).collect()
    }

    /// Every term of the conv's definition, `x[ci][iy][ix] · w[f][ci][ky][kx]`
    /// into output `(f, oy, ox)`, with `iy = oy + ky − p`, `ix = ox + kx − p`
    /// inside the image: `term(f, ci, (oy, ox), (ky, kx), (iy, ix))`.
    fn for_each_term(d: &Winograd, mut term: impl FnMut(usize, usize, [usize; 2], [usize; 2], [usize; 2])) {
        for f in 0..d.filters {
            for ci in 0..d.c {
                for oy in 0..d.oh {
                    for ox in 0..d.ow {
                        for ky in 0..KERNEL {
                            for kx in 0..KERNEL {
                                let (iy, ix) = ((oy + ky).wrapping_sub(d.pad[0]), (ox + kx).wrapping_sub(d.pad[1]));
                                if iy < d.h && ix < d.w {
                                    term(f, ci, [oy, ox], [ky, kx], [iy, ix]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `got` against the f64 sum `want` of terms whose magnitudes sum to `scale`.
    fn close(got: f32, want: f64, scale: f64) -> bool {
        (f64::from(got) - want).abs() <= 1e-5 * (scale + 1.0)
    }

    /// The definition, in f64: `y[f][oy][ox] = bias[f] + Σ x[ci][oy+ky−p][ox+kx−p]·w[f][ci][ky][kx]`,
    /// and the scale of each output's terms, `Σ |x·w|`.
    fn direct(d: &Winograd, x: &[f32], w: &[f32], bias: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let plane = d.oh * d.ow;
        let mut y: Vec<f64> = (0..d.filters * plane).map(|o| f64::from(bias.get(o / plane).copied().unwrap_or(0.0))).collect();
        let mut scale = vec![0.0; d.filters * plane];
        for_each_term(d, |f, ci, [oy, ox], [ky, kx], [iy, ix]| {
            let t = f64::from(x[(ci * d.h + iy) * d.w + ix]) * f64::from(w[((f * d.c + ci) * KERNEL + ky) * KERNEL + kx]);
            y[(f * d.oh + oy) * d.ow + ox] += t;
            scale[(f * d.oh + oy) * d.ow + ox] += t.abs();
        });
        (y, scale)
    }

    /// The written-out transforms are the matrices: on each unit vector.
    struct Transforms;

    impl AtEveryLevel for Transforms {
        fn at<S: Simd>(&mut self, s: S) {
            let lane0 = |v: S::F32| lanes(s, v)[0];
            let unit = |k: usize, i: usize| s.splat(if i == k { 1.0 } else { 0.0 });
            for k in 0..ALPHA {
                let e: [S::F32; ALPHA] = std::array::from_fn(|i| unit(k, i));
                let (b, a_t) = (bt(s, &e), at(s, &e));
                // A = (Aᵀ)ᵀ: column i of `a` is row i of Aᵀ.
                if k < TILE {
                    let col = a(s, std::array::from_fn(|i| unit(k, i)));
                    for (xi, v) in col.into_iter().enumerate() {
                        assert_eq!(lane0(v), AT[k][xi], "{}: A row {xi}", S::NAME);
                    }
                }
                for (row, v) in BT.iter().zip(b) {
                    assert_eq!(lane0(v), row[k], "{}: Bᵀ column {k}", S::NAME);
                }
                for (row, v) in AT.iter().zip(a_t) {
                    assert_eq!(lane0(v), row[k], "{}: Aᵀ column {k}", S::NAME);
                }
            }
        }
    }

    #[test]
    fn written_transforms_are_the_matrices() {
        for_each_simd(&mut Transforms);
    }

    fn geometry(c: usize, h: usize, w: usize, pad: usize, filters: usize) -> Winograd {
        Winograd { c, h, w, pad: [pad, pad], filters, oh: h + 2 * pad - 4, ow: w + 2 * pad - 4 }
    }

    /// Shapes with even and odd outputs (partial last tiles), rows of up to
    /// 8 tiles (two per vector, an odd number of tile rows), of 9–14 (one)
    /// and past 14 (two steps per row), every padding, filter counts not a
    /// multiple of the panel height.
    const SHAPES: [(usize, usize, usize, usize, usize); 7] = [
        (16, 14, 14, 2, 16),
        (32, 14, 14, 2, 64),
        (17, 9, 12, 0, 19),
        (16, 7, 7, 4, 21),
        (20, 28, 27, 1, 16),
        (16, 5, 5, 0, 16),
        (16, 32, 35, 2, 16),
    ];

    /// The forward, the weight gradient and the input gradient (the
    /// adjoint conv) against their definitions, with the transforms at
    /// `s`'s level.
    struct Convs;

    impl AtEveryLevel for Convs {
        fn at<S: Simd>(&mut self, s: S) {
            matches_the_definition_on_every_shape(s);
            weight_gradient_matches_the_definition(s);
            adjoint_is_the_input_gradient(s);
        }
    }

    #[test]
    fn forward_and_gradients_match_their_definitions_at_every_level() {
        for_each_simd(&mut Convs);
    }

    fn matches_the_definition_on_every_shape<S: Simd>(s: S) {
        let mut rng = Rng::new(3);
        for &(c, h, w, pad, filters) in &SHAPES {
            let d = geometry(c, h, w, pad, filters);
            let (x, wt, bias) = (uniform(&mut rng, c * h * w), uniform(&mut rng, filters * c * 25), uniform(&mut rng, filters));
            let mut u = PackedA::default();
            pack_filters(&d, &wt, false, &mut u);
            for relu in [false, true] {
                // Garbage in `y` must be overwritten everywhere.
                let mut y = vec![f32::NAN; filters * d.oh * d.ow];
                conv_with(s, &d, &x, &u, &bias, relu, &mut y);
                let (want, scale) = direct(&d, &x, &wt, &bias);
                for (i, (&got, (&want, &scale))) in y.iter().zip(want.iter().zip(&scale)).enumerate() {
                    let want = if relu { want.max(0.0) } else { want };
                    assert!(close(got, want, scale), "{}: {d:?} relu {relu}: output {i}: {got} vs {want} (scale {scale})", S::NAME);
                }
            }
        }
    }

    /// `weight_grad_acc` over several images, then `weight_grad_finish`, is
    /// the weight gradient by its definition:
    /// `dW[f][ci][ky][kx] = Σ_images Σ_(oy, ox) dz[f][oy][ox]·x[ci][oy+ky−p][ox+kx−p]`.
    fn weight_gradient_matches_the_definition<S: Simd>(s: S) {
        let mut rng = Rng::new(9);
        for &(c, h, w, pad, filters) in &SHAPES {
            let d = geometry(c, h, w, pad, filters);
            let images = 3;
            let (x, dz) = (uniform(&mut rng, images * c * h * w), uniform(&mut rng, images * filters * d.oh * d.ow));
            let mut acc = vec![0.0; d.grad_len()];
            for n in 0..images {
                weight_grad_with(
                    s,
                    &d,
                    &x[n * c * h * w..][..c * h * w],
                    &dz[n * filters * d.oh * d.ow..][..filters * d.oh * d.ow],
                    &mut acc,
                );
            }
            let mut gw = vec![f32::NAN; filters * c * 25];
            weight_grad_finish(&d, &acc, &mut gw);
            let (mut want, mut scale) = (vec![0.0f64; gw.len()], vec![0.0f64; gw.len()]);
            for n in 0..images {
                for_each_term(&d, |f, ci, [oy, ox], [ky, kx], [iy, ix]| {
                    let t = f64::from(dz[((n * filters + f) * d.oh + oy) * d.ow + ox]) * f64::from(x[((n * c + ci) * h + iy) * w + ix]);
                    want[((f * c + ci) * KERNEL + ky) * KERNEL + kx] += t;
                    scale[((f * c + ci) * KERNEL + ky) * KERNEL + kx] += t.abs();
                });
            }
            for (i, (&got, (&want, &scale))) in gw.iter().zip(want.iter().zip(&scale)).enumerate() {
                assert!(close(got, want, scale), "{}: {d:?}: dW {i}: {got} vs {want}", S::NAME);
            }
        }
    }

    /// Which convs run as Winograd: fashion_tf's conv2 and the test cases'
    /// (`tests/common/macro_cases.rs`, the JIT's `winograd_convs_…`), not
    /// LeNet-5's conv2 (6 channels) nor a 7×7 output (16 tiles).
    #[test]
    fn applies_to_wide_convs_with_enough_tiles() {
        let wide = [geometry(32, 14, 14, 2, 64), geometry(16, 11, 12, 2, 17), geometry(17, 11, 12, 1, 16)];
        assert!(wide.iter().all(|d| applies([5, 5], [1, 1], d)));
        for narrow in [geometry(6, 14, 14, 0, 16), geometry(64, 7, 7, 2, 64), geometry(16, 14, 14, 2, 8)] {
            assert!(!applies([5, 5], [1, 1], &narrow), "{narrow:?}");
        }
        assert!(!applies([5, 5], [2, 2], &wide[0]) && !applies([3, 3], [1, 1], &wide[0]));
    }

    /// The adjoint conv with the flipped filters is the input gradient, as
    /// defined by the forward sum (`⟨conv(x), dy⟩ = ⟨x, adjoint(dy)⟩`).
    fn adjoint_is_the_input_gradient<S: Simd>(s: S) {
        let mut rng = Rng::new(5);
        for &(c, h, w, pad, filters) in &SHAPES {
            let d = geometry(c, h, w, pad, filters);
            let adj = d.adjoint();
            let (wt, dy) = (uniform(&mut rng, filters * c * 25), uniform(&mut rng, filters * d.oh * d.ow));
            let mut u = PackedA::default();
            pack_filters(&adj, &wt, true, &mut u);
            let mut dx = vec![f32::NAN; c * h * w];
            conv_with(s, &adj, &dy, &u, &[], false, &mut dx);
            // dx[ci][iy][ix] = Σ dy[f][oy][ox]·w[f][ci][iy−oy+p][ix−ox+p], by the definition.
            let (mut want, mut scale) = (vec![0.0f64; c * h * w], vec![0.0f64; c * h * w]);
            for_each_term(&d, |f, ci, [oy, ox], [ky, kx], [iy, ix]| {
                let t = f64::from(dy[(f * d.oh + oy) * d.ow + ox]) * f64::from(wt[((f * c + ci) * KERNEL + ky) * KERNEL + kx]);
                want[(ci * h + iy) * w + ix] += t;
                scale[(ci * h + iy) * w + ix] += t.abs();
            });
            for (i, (&got, (&want, &scale))) in dx.iter().zip(want.iter().zip(&scale)).enumerate() {
                assert!(close(got, want, scale), "{}: {adj:?}: dx {i}: {got} vs {want}", S::NAME);
            }
        }
    }
}

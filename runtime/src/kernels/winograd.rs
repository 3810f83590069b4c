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
//! 16-channel vectors, so a tile's window is 64 whole vectors (no permutes
//! or gathers), `V` comes out tile-major — the left operand of the GEMMs,
//! read in place by the microkernel — and the output transform works on
//! vectors of 16 filters before the result is transposed back to planes.
//! Each point's block of `V` and `M` is a cache line longer than its
//! tiles' values ([`point_stride`]): 16 tiles × 64 floats is 4 KB, and 64
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
//! [`weight_grad_finish`]). On CPUs without AVX-512 convs keep the im2col
//! path.

use std::cell::RefCell;

use super::{CpuLevel, cpu_level};
use crate::gemm::{MR, PackedA, Panels, gemm_block, gemm_block_acc, transpose};

/// Outputs per tile side (`m`) and the kernel size (`r`).
pub const TILE: usize = 4;
pub const KERNEL: usize = 5;
/// The transform's size, `m + r − 1`, and its points.
pub(super) const ALPHA: usize = TILE + KERNEL - 1;
const POINTS: usize = ALPHA * ALPHA;

/// `Bᵀ`: the input transform (as written out in `x86::bt`, checked by a test).
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

/// `Aᵀ`: the output transform (`x86::at`).
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
/// channels and filters, [`MIN_OUTPUTS`] outputs, and AVX-512 on this CPU.
pub fn applies(kernel: [usize; 2], stride: [usize; 2], d: &Winograd) -> bool {
    kernel == [KERNEL; 2]
        && stride == [1, 1]
        && d.pad.iter().all(|&p| p < KERNEL)
        && d.c >= MIN_CHANNELS
        && d.filters >= MIN_CHANNELS
        && d.oh * d.ow >= MIN_OUTPUTS
        && cpu_level() == CpuLevel::Avx512
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
        (self.c.next_multiple_of(LANES), self.filters.next_multiple_of(LANES))
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
/// and the filter transform (`x86::bt2` and `x86::at2` write out its `Bᵀ`
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
/// and out): each tile's window is 64 whole vectors of 16 channels, and
/// point ξ's GEMM is `Mᵀ[ξ] (tiles × filters) = Vᵀ[ξ] (tiles × c) ·
/// Uᵀ[ξ] (c × filters)` with `Vᵀ` read in place by the microkernel.
///
/// # Panics
/// When the geometry is not a 5×5 stride-1 conv, a buffer is shorter than
/// it, `u` was packed for another, or the CPU lacks AVX-512 (see [`applies`]).
pub fn conv(d: &Winograd, x: &[f32], u: &PackedA, bias: &[f32], relu: bool, y: &mut [f32]) {
    d.check();
    assert!(x.len() >= d.c * d.h * d.w && y.len() >= d.filters * d.oh * d.ow, "winograd::conv: buffers shorter than {d:?}");
    assert!(bias.is_empty() || bias.len() == d.filters, "winograd::conv: {} biases for {} filters", bias.len(), d.filters);
    assert!((u.rows(), u.depth()) == d.u_shape(), "winograd::conv: filters packed for another geometry");
    assert!(cpu_level() == CpuLevel::Avx512, "winograd::conv needs AVX-512");
    BUFFERS.with_borrow_mut(|b| {
        let (tiles, (ty, tx), (cs, fs)) = (d.tile_count(), d.tiles(), d.lanes());
        let Buffers { xt, v, m, zt, tmp } = b;
        let xt = channels_last(&x[..d.c * d.h * d.w], [d.c, d.h, d.w], d.pad, d.padded().into(), cs, tmp, xt);
        let (vs, ms) = (point_stride(tiles, cs), point_stride(tiles, fs));
        let (v, m) = (grown(v, POINTS * vs), grown(m, POINTS * ms));
        let ut = u.values();
        // SAFETY: AVX-512 asserted; `xt` holds padded() pixels of `cs`
        // values, `v` 64 points of every tile.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86::input_transform(d, xt, cs, v)
        };
        for xi in 0..POINTS {
            let vt = Panels::in_place(&v[xi * vs..][..tiles * cs], tiles, cs, cs);
            gemm_block(vt, &ut[xi * cs * fs..][..cs * fs], fs, d.filters, &mut m[xi * ms..][..tiles * fs], fs);
        }
        let (hy, wy) = (TILE * ty, TILE * tx);
        let yt = grown(zt, hy * wy * fs);
        // SAFETY: AVX-512 asserted; `m` holds 64 points of every tile's
        // `fs` values, `yt` the tiles' 4 × 4 outputs of `fs`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86::output_transform(d, m, fs, bias, relu, yt)
        };
        planes(yt, [hy, wy, fs], [d.filters, d.oh, d.ow], tmp, y);
    });
}

/// `acc[ξ][f][ci] += Σ_t dM[ξ][f][t] · V[ξ][ci][t]` for one image: the
/// weight gradient in the transform domain (`dM = A dY Aᵀ` per tile of the
/// output gradient `dz`, `filters × oh × ow`; `V` of the input `x`), by 64
/// accumulating GEMMs. [`weight_grad_finish`] takes it back to the filters.
///
/// The GEMMs' depth is the tiles, so both transforms run channels-last
/// (16 channels a vector, a tile's window read as whole vectors): `V`
/// comes out tile-major as the GEMM's right operand, `dM` straight in its
/// packed panels — no per-image packing or transposing of either.
///
/// # Panics
/// As [`conv`]; and when `acc` is not [`Winograd::grad_len`] long.
pub fn weight_grad_acc(d: &Winograd, x: &[f32], dz: &[f32], acc: &mut [f32]) {
    d.check();
    assert!(
        x.len() >= d.c * d.h * d.w && dz.len() >= d.filters * d.oh * d.ow && acc.len() == d.grad_len(),
        "winograd::weight_grad_acc: buffers do not fit {d:?}"
    );
    assert!(cpu_level() == CpuLevel::Avx512, "winograd::weight_grad_acc needs AVX-512");
    BUFFERS.with_borrow_mut(|b| {
        let (tiles, (ty, tx)) = (d.tile_count(), d.tiles());
        let (cs, fs) = d.lanes();
        let Buffers { v, m, xt, zt, tmp, .. } = b;
        let xt = channels_last(&x[..d.c * d.h * d.w], [d.c, d.h, d.w], d.pad, d.padded().into(), cs, tmp, xt);
        // Tiles past oh, ow read zeros.
        let zt = channels_last(&dz[..d.filters * d.oh * d.ow], [d.filters, d.oh, d.ow], [0, 0], [TILE * ty, TILE * tx], fs, tmp, zt);
        // `V` for every point, `dM` a row of eight points at a time (its
        // stores are scattered over the panels: an eighth of them is still in
        // cache when the row's GEMMs read it).
        let (vs, ms) = (point_stride(tiles, cs), point_stride(tiles, fs));
        let (v, m) = (grown(v, POINTS * vs), grown(m, ALPHA * ms));
        let (fc, panels) = (d.filters * d.c, fs / MR);
        // SAFETY: AVX-512 asserted; `xt` holds padded() pixels of `cs`
        // values, `v` 64 points of every tile.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86::input_transform(d, xt, cs, v)
        };
        for a in 0..ALPHA {
            // SAFETY: AVX-512 asserted; `zt` holds the tiles' 4 × 4 blocks
            // of `fs` values, `m` eight points of every tile.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                x86::gradient_row(a, d, zt, fs, m)
            };
            for b in 0..ALPHA {
                let xi = a * ALPHA + b;
                let dm = Panels::packed(&m[b * ms..][..panels * tiles * MR], d.filters, tiles);
                let acc = &mut acc[xi * fc..][..fc];
                gemm_block_acc(dm, &v[xi * vs..][..tiles * cs], cs, d.c, acc, d.c);
            }
        }
    });
}

/// Values from one point's block of `V` or `M` to the next: its tiles'
/// `lanes` values and a cache line more — with 16 tiles of 64 values the
/// blocks would be 4 KB apart, and a tile's 64 loads (or stores) across
/// them would all fall in one set of the L1 cache.
const fn point_stride(tiles: usize, lanes: usize) -> usize {
    tiles * lanes + LANES
}

/// Lanes of a vector: channels-last buffers hold a multiple per pixel.
const LANES: usize = 16;

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

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use super::{ALPHA, ALPHA2, PAIR, TILE, Winograd};
    use crate::gemm::x86::lanes;

    /// `Bᵀ d` for a column `d` of eight vectors: [`BT`](super::BT)'s rows,
    /// written out — each pair of rows for the points ±p as the sum and the
    /// difference of its even and odd terms, no zero terms.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    pub(in crate::compiled) fn bt(d: &[__m512; ALPHA]) -> [__m512; ALPHA] {
        let c = _mm512_set1_ps;
        let (fma, add, sub, mul) = (_mm512_fmadd_ps, _mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps);
        // ±1: (d2 + d6 − 4.25 d4) ± (d1 + d5 − 4.25 d3)
        let (e1, o1) = (fma(c(-4.25), d[4], add(d[2], d[6])), fma(c(-4.25), d[3], add(d[1], d[5])));
        // ±1/2: (0.25 d2 − 1.25 d4 + d6) ± (0.5 d1 − 2.5 d3 + 2 d5)
        let (e2, o2) = (fma(c(-1.25), d[4], fma(c(0.25), d[2], d[6])), fma(c(2.0), d[5], fma(c(-2.5), d[3], mul(c(0.5), d[1]))));
        // ±2: (4 d2 − 5 d4 + d6) ± (2 d1 − 2.5 d3 + 0.5 d5)
        let (e3, o3) = (fma(c(-5.0), d[4], fma(c(4.0), d[2], d[6])), fma(c(0.5), d[5], fma(c(-2.5), d[3], mul(c(2.0), d[1]))));
        [
            fma(c(5.25), sub(d[2], d[4]), sub(d[6], d[0])),
            add(e1, o1),
            sub(e1, o1),
            add(e2, o2),
            sub(e2, o2),
            add(e3, o3),
            sub(e3, o3),
            fma(c(5.25), sub(d[3], d[5]), sub(d[7], d[1])),
        ]
    }

    /// `t[(ci·P + ξ)·row + x] = (Bᵀ d)[ξ]` for the `P` rows `d` from row
    /// `s` of each of `c` channels of the image `x` (`h × w` each) as if
    /// zero-padded by `top` rows and `left` columns (and on the right and
    /// bottom as far as read), columns `0..width` of the padded rows: the
    /// columns transform of the convs by Winograd down the columns, whole
    /// vectors of a row at a time, the padding as masked-off lanes and
    /// zero rows (no padded copy). `P` = 8: F(4, 5) ([`bt`]); 6: F(2, 5)
    /// ([`bt2`]).
    ///
    /// # Safety
    /// The CPU has AVX-512F; `x` holds `c × h × w` values, `t` `c × P`
    /// rows of `row` ≥ `width` values rounded up to whole vectors.
    #[allow(clippy::too_many_arguments)] // a kernel's operands
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(in crate::compiled) unsafe fn columns_transform<const P: usize>(
        x: &[f32],
        c: usize,
        [h, w]: [usize; 2],
        [top, left]: [usize; 2],
        width: usize,
        s: usize,
        row: usize,
        t: &mut [f32],
    ) {
        let zero = _mm512_setzero_ps();
        for at in (0..width).step_by(16) {
            // Lane l holds input column at + l − left: the lanes in 0..w.
            let (first, end) = (left.saturating_sub(at).min(16), (w + left).saturating_sub(at).min(16));
            let mask = lanes(end) & !lanes(first);
            for ci in 0..c {
                let column: [__m512; P] = std::array::from_fn(|r| {
                    let y = (s + r).wrapping_sub(top);
                    if y >= h || mask == 0 {
                        return zero;
                    }
                    // SAFETY: the unmasked lanes read columns at + l − left
                    // in 0..w of row y < h of channel ci (the pointer itself
                    // may point before the row: only those lanes are read).
                    unsafe { _mm512_maskz_loadu_ps(mask, x.as_ptr().add((ci * h + y) * w).wrapping_add(at).wrapping_sub(left)) }
                });
                let v: [__m512; P] = if P == ALPHA { convert(&bt(&convert(&column))) } else { convert(&bt2(&convert(&column))) };
                for (xi, v) in v.into_iter().enumerate() {
                    // SAFETY: row (ci, ξ) of `t`, a whole vector at `at` < row.
                    unsafe { _mm512_storeu_ps(t.as_mut_ptr().add((ci * P + xi) * row + at), v) };
                }
            }
        }
    }

    /// `a` as an array of the same length `B` (`P` and a transform's size
    /// in generic code).
    #[inline(always)]
    pub(in crate::compiled) fn convert<const A: usize, const B: usize>(a: &[__m512; A]) -> [__m512; B] {
        a[..].try_into().expect("arrays of one length")
    }

    /// `Bᵀ d` of F(2, 5) for a column `d` of six vectors: `4 d0 − 5 d2 +
    /// d4`, `(d4 − 4 d2) ± (d3 − 4 d1)`, `(d4 − d2) ± 2 (d3 − d1)`, `4 d1 −
    /// 5 d3 + d5` (checked against the definition by the tests of its
    /// callers).
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    pub(in crate::compiled) fn bt2(d: &[__m512; ALPHA2]) -> [__m512; ALPHA2] {
        let c = _mm512_set1_ps;
        let (fma, add, sub) = (_mm512_fmadd_ps, _mm512_add_ps, _mm512_sub_ps);
        let (e1, o1) = (fma(c(-4.0), d[2], d[4]), fma(c(-4.0), d[1], d[3]));
        let (e2, o2) = (sub(d[4], d[2]), _mm512_mul_ps(c(2.0), sub(d[3], d[1])));
        [
            fma(c(4.0), d[0], fma(c(-5.0), d[2], d[4])),
            add(e1, o1),
            sub(e1, o1),
            add(e2, o2),
            sub(e2, o2),
            fma(c(4.0), d[1], fma(c(-5.0), d[3], d[5])),
        ]
    }

    /// `Aᵀ m` of F(2, 5): `m0 + m1 + m2 + m3 + m4` and `(m1 − m2) + 2 (m3 −
    /// m4) + m5`.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    pub(in crate::compiled) fn at2(m: &[__m512; ALPHA2]) -> [__m512; PAIR] {
        let (add, sub) = (_mm512_add_ps, _mm512_sub_ps);
        [
            add(add(m[0], add(m[1], m[2])), add(m[3], m[4])),
            add(_mm512_fmadd_ps(_mm512_set1_ps(2.0), sub(m[3], m[4]), sub(m[1], m[2])), m[5]),
        ]
    }

    /// `Aᵀ m` for a column `m` of eight vectors: [`AT`](super::AT)'s rows,
    /// written out over the sums and differences of the ± pairs.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    pub(in crate::compiled) fn at(m: &[__m512; ALPHA]) -> [__m512; TILE] {
        let c = _mm512_set1_ps;
        let (fma, add, sub) = (_mm512_fmadd_ps, _mm512_add_ps, _mm512_sub_ps);
        let (s1, d1) = (add(m[1], m[2]), sub(m[1], m[2]));
        let (s2, d2) = (add(m[3], m[4]), sub(m[3], m[4]));
        let (s3, d3) = (add(m[5], m[6]), sub(m[5], m[6]));
        [
            add(add(m[0], s1), add(s2, s3)),
            fma(c(0.5), d3, fma(c(2.0), d2, d1)),
            fma(c(0.25), s3, fma(c(4.0), s2, s1)),
            add(fma(c(0.125), d3, fma(c(8.0), d2, d1)), m[7]),
        ]
    }

    /// `A y` for four outputs `y`: the transpose of [`AT`](super::AT), from
    /// a tile's outputs to the eight points.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    pub(super) fn a(y: [__m512; TILE]) -> [__m512; ALPHA] {
        let c = _mm512_set1_ps;
        let (fma, add, sub, mul) = (_mm512_fmadd_ps, _mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps);
        let (e1, o1) = (add(y[0], y[2]), add(y[1], y[3]));
        let (e2, o2) = (fma(c(4.0), y[2], y[0]), fma(c(8.0), y[3], mul(c(2.0), y[1])));
        let (e3, o3) = (fma(c(0.25), y[2], y[0]), fma(c(0.125), y[3], mul(c(0.5), y[1])));
        [y[0], add(e1, o1), sub(e1, o1), add(e2, o2), sub(e2, o2), add(e3, o3), sub(e3, o3), y[3]]
    }

    /// Row `a` of `dM = A dY Aᵀ` for the 4 × 4 block `dY` of the output
    /// gradient under every tile, written as the weight gradient GEMM's
    /// packed panels: `m[((b·P + p)·tiles + t)·8 + r] = dM[a][b]` for
    /// filter `8p + r` (`P = fs / 8`), 16 filters a vector.
    ///
    /// # Safety
    /// AVX-512F; `a < 8`; `zt` holds `4·ty × 4·tx` pixels of `fs` values,
    /// zero past `oh`, `ow` and the filters ([`super::channels_last`]), `fs`
    /// a multiple of 16; `m` holds 8 × `fs` × tiles.
    pub(super) unsafe fn gradient_row(a: usize, d: &Winograd, zt: &[f32], fs: usize, m: &mut [f32]) {
        // SAFETY: the caller's contract; each instance has its row a constant.
        unsafe {
            match a {
                0 => dm_row::<0>(d, zt, fs, m),
                1 => dm_row::<1>(d, zt, fs, m),
                2 => dm_row::<2>(d, zt, fs, m),
                3 => dm_row::<3>(d, zt, fs, m),
                4 => dm_row::<4>(d, zt, fs, m),
                5 => dm_row::<5>(d, zt, fs, m),
                6 => dm_row::<6>(d, zt, fs, m),
                _ => dm_row::<7>(d, zt, fs, m),
            }
        }
    }

    /// `V[ξ][t][ci] = (Bᵀ d B)[ξ]` for the window `d` of every tile `t`,
    /// channels-last: a vector holds 16 channels, so a window is 64 whole
    /// vectors (no permutes), `Bᵀ d` down its columns and then `· B` across.
    ///
    /// # Safety
    /// AVX-512F; `xt` holds `padded()` pixels of `cs` values
    /// ([`super::channels_last`]), `cs` a multiple of 16; `v` holds 64 ×
    /// tiles × `cs`.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn input_transform(d: &Winograd, xt: &[f32], cs: usize, v: &mut [f32]) {
        let ((hp, wp), (ty_n, tx_n)) = (d.padded(), d.tiles());
        let tiles = ty_n * tx_n;
        let vs = super::point_stride(tiles, cs);
        assert!(cs.is_multiple_of(16) && xt.len() >= hp * wp * cs && v.len() >= ALPHA * ALPHA * vs);
        let (xp, vp) = (xt.as_ptr(), v.as_mut_ptr());
        for ty in 0..ty_n {
            for tx in 0..tx_n {
                let t = ty * tx_n + tx;
                for q in (0..cs).step_by(16) {
                    let corner = (TILE * ty * wp + TILE * tx) * cs + q;
                    // Bᵀ d down each window column j into td[·][j] (a loop over
                    // j: built with array maps instead, the column copies made
                    // this transform 5% slower; uninitialised, not zeroed: the
                    // 4 KB memset per tile was 0.5% of a training step).
                    let mut td = [[MaybeUninit::<__m512>::uninit(); ALPHA]; ALPHA];
                    #[allow(clippy::needless_range_loop)]
                    for j in 0..ALPHA {
                        // SAFETY: window (i, j) of the tile is pixel (4ty + i, 4tx + j) < padded(), channels q..q + 16 ≤ cs.
                        let col: [__m512; ALPHA] = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(xp.add(corner + (i * wp + j) * cs)) });
                        for (a, x) in bt(&col).into_iter().enumerate() {
                            td[a][j].write(x);
                        }
                    }
                    for (a, row) in td.iter().enumerate() {
                        // SAFETY: the loop above wrote every td[a][j].
                        let row = row.map(|x| unsafe { x.assume_init() });
                        for (b, x) in bt(&row).into_iter().enumerate() {
                            // SAFETY: point a·8 + b, tile t, channels q.. of `v`.
                            unsafe { _mm512_storeu_ps(vp.add((a * ALPHA + b) * vs + t * cs + q), x) };
                        }
                    }
                }
            }
        }
    }

    /// [`gradient_row`] for the row `A` (the other rows are never computed).
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn dm_row<const A: usize>(d: &Winograd, zt: &[f32], fs: usize, m: &mut [f32]) {
        let (ty_n, tx_n) = d.tiles();
        let (tiles, wz) = (ty_n * tx_n, TILE * tx_n);
        let ms = super::point_stride(tiles, fs);
        assert!(fs.is_multiple_of(16) && zt.len() >= TILE * ty_n * wz * fs && m.len() >= ALPHA * ms);
        let (zp, mp) = (zt.as_ptr(), m.as_mut_ptr());
        for ty in 0..ty_n {
            for tx in 0..tx_n {
                let t = ty * tx_n + tx;
                for q in (0..fs).step_by(16) {
                    let corner = (TILE * ty * wz + TILE * tx) * fs + q;
                    // (A dY)[A][j] for each column j, then · Aᵀ (loops, not
                    // array closures: see output_transform).
                    let mut row = [_mm512_setzero_ps(); TILE];
                    for (j, r) in row.iter_mut().enumerate() {
                        let mut col = [_mm512_setzero_ps(); TILE];
                        for (i, c) in col.iter_mut().enumerate() {
                            // SAFETY: the tile's output (4ty + i, 4tx + j) is a pixel of `zt`, filters q..q + 16 ≤ fs.
                            *c = unsafe { _mm512_loadu_ps(zp.add(corner + (i * wz + j) * fs)) };
                        }
                        *r = a(col)[A];
                    }
                    for (b, x) in a(row).into_iter().enumerate() {
                        let (lo, hi) = (_mm512_castps512_ps256(x), _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(x))));
                        let panel = q / 8;
                        // SAFETY: panels q/8 and q/8 + 1 < P of point b, step t, 8 lanes each.
                        unsafe {
                            _mm256_storeu_ps(mp.add(b * ms + (panel * tiles + t) * 8), lo);
                            _mm256_storeu_ps(mp.add(b * ms + ((panel + 1) * tiles + t) * 8), hi);
                        }
                    }
                }
            }
        }
    }

    /// `yt[(4ty + i)·wy + 4tx + j][f] = act(bias[f] + (Aᵀ M A)[i][j])` for
    /// every tile, channels-last (`wy = 4·tx`): per tile and 16 filters,
    /// the 64 points as whole vectors of `m[ξ][t][f]`.
    ///
    /// # Safety
    /// AVX-512F; `m` holds 64 × tiles × `fs` values, `fs` a multiple of
    /// 16; `yt` holds `4·ty × 4·tx × fs`; `bias` is empty or one per filter.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn output_transform(d: &Winograd, m: &[f32], fs: usize, bias: &[f32], relu: bool, yt: &mut [f32]) {
        let (ty_n, tx_n) = d.tiles();
        let (tiles, wy) = (ty_n * tx_n, TILE * tx_n);
        let ms = super::point_stride(tiles, fs);
        assert!(fs.is_multiple_of(16) && m.len() >= ALPHA * ALPHA * ms && yt.len() >= TILE * ty_n * wy * fs);
        assert!(bias.is_empty() || bias.len() == d.filters);
        let (mp, yp) = (m.as_ptr(), yt.as_mut_ptr());
        for q in (0..fs).step_by(16) {
            // SAFETY: lanes up to the bias's length (masked).
            let b = unsafe { _mm512_maskz_loadu_ps(lanes(bias.len().saturating_sub(q)), bias.as_ptr().wrapping_add(q)) };
            for ty in 0..ty_n {
                for tx in 0..tx_n {
                    let t = ty * tx_n + tx;
                    // (M A)[a][j] per row a of the transform domain, kept by
                    // column: ma[j][a]. (Loops: built by array closures, the
                    // compiler left `at` out of line in them — a quarter of
                    // the forward's time.)
                    let mut ma = [[_mm512_setzero_ps(); ALPHA]; TILE];
                    #[allow(clippy::needless_range_loop)]
                    for a in 0..ALPHA {
                        let mut row = [_mm512_setzero_ps(); ALPHA];
                        for (b, x) in row.iter_mut().enumerate() {
                            // SAFETY: point a·8 + b, tile t, filters q..q + 16 ≤ fs of `m`.
                            *x = unsafe { _mm512_loadu_ps(mp.add((a * ALPHA + b) * ms + t * fs + q)) };
                        }
                        for (j, x) in at(&row).into_iter().enumerate() {
                            ma[j][a] = x;
                        }
                    }
                    for (j, col) in ma.iter().enumerate() {
                        for (i, o) in at(col).into_iter().enumerate() {
                            let o = _mm512_add_ps(o, b);
                            let o = if relu { _mm512_max_ps(o, _mm512_setzero_ps()) } else { o };
                            // SAFETY: pixel (4ty + i, 4tx + j) of `yt`, filters q..q + 16 ≤ fs.
                            unsafe { _mm512_storeu_ps(yp.add(((TILE * ty + i) * wy + TILE * tx + j) * fs + q), o) };
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn written_transforms_are_the_matrices() {
        use std::arch::x86_64::*;
        if cpu_level() != CpuLevel::Avx512 {
            return;
        }
        let lane0 = |v: __m512| {
            let mut out = [0.0f32; 16];
            // SAFETY: AVX-512 checked above; 16 floats.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) };
            out[0]
        };
        for k in 0..ALPHA {
            // SAFETY: AVX-512 checked above.
            let (b, a) = unsafe {
                let e: [__m512; ALPHA] = std::array::from_fn(|i| _mm512_set1_ps(if i == k { 1.0 } else { 0.0 }));
                (x86::bt(&e), x86::at(&e))
            };
            // A = (Aᵀ)ᵀ: column i of `x86::a` is row i of Aᵀ.
            if k < TILE {
                // SAFETY: AVX-512 checked above.
                let col = unsafe {
                    let e: [__m512; TILE] = std::array::from_fn(|i| _mm512_set1_ps(if i == k { 1.0 } else { 0.0 }));
                    x86::a(e)
                };
                for (xi, v) in col.into_iter().enumerate() {
                    assert_eq!(lane0(v), AT[k][xi], "A row {xi}");
                }
            }
            for (row, v) in BT.iter().zip(b) {
                assert_eq!(lane0(v), row[k], "Bᵀ column {k}");
            }
            for (row, v) in AT.iter().zip(a) {
                assert_eq!(lane0(v), row[k], "Aᵀ column {k}");
            }
        }
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

    #[test]
    fn matches_the_definition_on_every_shape() {
        if cpu_level() != CpuLevel::Avx512 {
            return;
        }
        let mut rng = Rng::new(3);
        for &(c, h, w, pad, filters) in &SHAPES {
            let d = geometry(c, h, w, pad, filters);
            let (x, wt, bias) = (uniform(&mut rng, c * h * w), uniform(&mut rng, filters * c * 25), uniform(&mut rng, filters));
            let mut u = PackedA::default();
            pack_filters(&d, &wt, false, &mut u);
            for relu in [false, true] {
                // Garbage in `y` must be overwritten everywhere.
                let mut y = vec![f32::NAN; filters * d.oh * d.ow];
                conv(&d, &x, &u, &bias, relu, &mut y);
                let (want, scale) = direct(&d, &x, &wt, &bias);
                for (i, (&got, (&want, &scale))) in y.iter().zip(want.iter().zip(&scale)).enumerate() {
                    let want = if relu { want.max(0.0) } else { want };
                    assert!(close(got, want, scale), "{d:?} relu {relu}: output {i}: {got} vs {want} (scale {scale})");
                }
            }
        }
    }

    /// `weight_grad_acc` over several images, then `weight_grad_finish`, is
    /// the weight gradient by its definition:
    /// `dW[f][ci][ky][kx] = Σ_images Σ_(oy, ox) dz[f][oy][ox]·x[ci][oy+ky−p][ox+kx−p]`.
    #[test]
    fn weight_gradient_matches_the_definition() {
        if cpu_level() != CpuLevel::Avx512 {
            return;
        }
        let mut rng = Rng::new(9);
        for &(c, h, w, pad, filters) in &SHAPES {
            let d = geometry(c, h, w, pad, filters);
            let images = 3;
            let (x, dz) = (uniform(&mut rng, images * c * h * w), uniform(&mut rng, images * filters * d.oh * d.ow));
            let mut acc = vec![0.0; d.grad_len()];
            for n in 0..images {
                weight_grad_acc(&d, &x[n * c * h * w..][..c * h * w], &dz[n * filters * d.oh * d.ow..][..filters * d.oh * d.ow], &mut acc);
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
                assert!(close(got, want, scale), "{d:?}: dW {i}: {got} vs {want}");
            }
        }
    }

    /// Which convs run as Winograd: fashion_tf's conv2 and the test cases'
    /// (`tests/common/macro_cases.rs`, the JIT's `winograd_convs_…`), not
    /// LeNet-5's conv2 (6 channels) nor a 7×7 output (16 tiles).
    #[test]
    fn applies_to_wide_convs_with_enough_tiles() {
        if cpu_level() != CpuLevel::Avx512 {
            return;
        }
        let wide = [geometry(32, 14, 14, 2, 64), geometry(16, 11, 12, 2, 17), geometry(17, 11, 12, 1, 16)];
        assert!(wide.iter().all(|d| applies([5, 5], [1, 1], d)));
        for narrow in [geometry(6, 14, 14, 0, 16), geometry(64, 7, 7, 2, 64), geometry(16, 14, 14, 2, 8)] {
            assert!(!applies([5, 5], [1, 1], &narrow), "{narrow:?}");
        }
        assert!(!applies([5, 5], [2, 2], &wide[0]) && !applies([3, 3], [1, 1], &wide[0]));
    }

    /// The adjoint conv with the flipped filters is the input gradient, as
    /// defined by the forward sum (`⟨conv(x), dy⟩ = ⟨x, adjoint(dy)⟩`).
    #[test]
    fn adjoint_is_the_input_gradient() {
        if cpu_level() != CpuLevel::Avx512 {
            return;
        }
        let mut rng = Rng::new(5);
        for &(c, h, w, pad, filters) in &SHAPES {
            let d = geometry(c, h, w, pad, filters);
            let adj = d.adjoint();
            let (wt, dy) = (uniform(&mut rng, filters * c * 25), uniform(&mut rng, filters * d.oh * d.ow));
            let mut u = PackedA::default();
            pack_filters(&adj, &wt, true, &mut u);
            let mut dx = vec![f32::NAN; c * h * w];
            conv(&adj, &dy, &u, &[], false, &mut dx);
            // dx[ci][iy][ix] = Σ dy[f][oy][ox]·w[f][ci][iy−oy+p][ix−ox+p], by the definition.
            let (mut want, mut scale) = (vec![0.0f64; c * h * w], vec![0.0f64; c * h * w]);
            for_each_term(&d, |f, ci, [oy, ox], [ky, kx], [iy, ix]| {
                let t = f64::from(dy[(f * d.oh + oy) * d.ow + ox]) * f64::from(wt[((f * c + ci) * KERNEL + ky) * KERNEL + kx]);
                want[(ci * h + iy) * w + ix] += t;
                scale[(ci * h + iy) * w + ix] += t.abs();
            });
            for (i, (&got, (&want, &scale))) in dx.iter().zip(want.iter().zip(&scale)).enumerate() {
                assert!(close(got, want, scale), "{adj:?}: dx {i}: {got} vs {want}");
            }
        }
    }
}

//! Direct convolution for convs over few input channels — a network's
//! first layer, reading the image itself: LeNet-5's and fashion_tf's
//! conv1 (one channel, 5 × 5, 28 × 28 outputs).
//!
//! There, im2col is as costly as the GEMM it feeds: each output position
//! is gathered `c·kh·kw` times and multiplied by only a few filters (six
//! for LeNet-5's conv1, where it took a fifth of an image's inference).
//! Here no matrix is built: an output row is one to three vectors of 16
//! positions, and for each tap `(ci, ky, kx)` the input row `oy + ky` of
//! channel `ci`, shifted by `kx`, is loaded once and multiplied into a
//! panel's eight filters (their weights broadcast from the same packed
//! panels the GEMM reads), up to 24 accumulators in registers. The weight
//! gradient is the same loop turned around: for each tap and filter, the
//! sum over output rows of `dz` times the shifted input row, reduced
//! across lanes once per image — a block of filters' `dz` row loaded once
//! for every shift `kx` of the kernel's row.
//!
//! 5 × 5 kernels with four or more output rows run by Winograd's F(4, 5)
//! down the columns instead ([`columns_winograd`]): each tile of four
//! output rows comes from its eight input rows transformed, `T = Bᵀ d`
//! (whole-row vector arithmetic), and for each of the eight points ξ the
//! transformed rows, shifted by `kx`, are multiplied into a block of
//! filters' column transforms `U = G g` — 8 × 5 multiply-adds per channel
//! for four output rows instead of 4 × 25, 2.5× fewer — before `Aᵀ` takes
//! the points back to the four rows (as `filter_lanes` runs LeNet-5's conv2,
//! there with the filters in the lanes). Its weight is packed for it
//! ([`pack_forward`]); the weight gradient stays direct.
//!
//! Lanes past the output width compute on real inputs but are not stored
//! (forward) or are zeroed before they multiply (weight gradient), so
//! rows wider than the output only cost lanes: the path is taken where at
//! least three quarters of the lanes are outputs.

use std::cell::RefCell;

use super::rows::{Bordered, Im2col};
use super::winograd::{ALPHA, G, KERNEL, TILE, column_point, grown};
use super::{CpuLevel, cpu_level};
use crate::gemm::{MR, PackedA};

/// Input channels up to which a conv runs direct (an image's: grey, RGB).
pub const MAX_CHANNELS: usize = 3;

/// Vectors of 16 outputs per row: up to 48 wide.
const MAX_VECTORS: usize = 3;

/// Widest kernel (the weight gradient keeps filters × kernel width sums in registers).
const MAX_KERNEL: usize = 7;

/// Filters per block of the weight gradient for a kernel `kw` wide: at
/// most 24 accumulators.
const fn grad_rows(kw: usize) -> usize {
    if kw <= 5 { 4 } else { 3 }
}

/// Whether [`conv`] and [`weight_grad`] run `d` (and so its stage packs
/// its weight for them — as for the GEMM, which they share it with):
/// stride 1, not 1 × 1, at most [`MAX_KERNEL`] wide, at most [`MAX_CHANNELS`] input channels, rows of
/// at most 48 outputs filling ≥ 3/4 of their vectors, on AVX-512.
pub fn applies(d: &Im2col) -> bool {
    let vectors = d.ow.div_ceil(16);
    d.stride == [1, 1]
        && d.kernel != [1, 1]
        && d.kernel[1] <= MAX_KERNEL
        && (1..=MAX_CHANNELS).contains(&d.c)
        && (1..=MAX_VECTORS).contains(&vectors)
        && 4 * d.ow >= 3 * 16 * vectors
        && d.oh > 0
        && cpu_level() == CpuLevel::Avx512
}

/// The zero-bordered copy the kernels read: `c × hp × width`, each row
/// wide enough for a full vector at every tap's shift.
struct Padded {
    hp: usize,
    width: usize,
}

impl Padded {
    fn of(d: &Im2col) -> Self {
        Self { hp: d.h + 2 * d.pad[0], width: 16 * d.ow.div_ceil(16) + d.kernel[1] - 1 }
    }

    /// `x` copied into the interior of a buffer of `buf`'s, every other value zero.
    fn fill<'a>(&self, d: &Im2col, x: &[f32], buf: &'a mut Bordered) -> &'a [f32] {
        buf.copy(x, [d.c, d.h, d.w], d.pad, [self.hp, self.width])
    }
}

thread_local! {
    static XPAD: RefCell<Bordered> = RefCell::default();
    /// [`columns_winograd`]'s scratch: a tile's transformed rows, and a
    /// block's products at the eight points.
    static COLUMNS: RefCell<(Vec<f32>, Vec<f32>)> = RefCell::default();
}

/// Whether [`conv`] and [`conv_max_pool`] run `d` by Winograd's F(4, 5)
/// down the columns (see the module's notes), its weight packed by
/// [`pack_forward`]: a 5 × 5 kernel and at least four rows of outputs.
pub fn columns_winograd(d: &Im2col) -> bool {
    applies(d) && d.kernel == [KERNEL, KERNEL] && d.oh >= TILE
}

/// Values per filter of the weight as [`pack_forward`] packs it.
const fn per_filter(d: &Im2col) -> usize {
    d.c * KERNEL * ALPHA
}

/// The length of the forward's packed weight: as the GEMM's
/// (`filters × taps`), or for [`columns_winograd`] [`pack_forward`]'s.
pub fn forward_len(d: &Im2col, filters: usize) -> usize {
    if columns_winograd(d) { filters * per_filter(d) } else { filters * d.c * d.kernel[0] * d.kernel[1] }
}

/// The weight (`filters × c × 5 × 5`) as the forward of a
/// [`columns_winograd`] conv reads it — each filter column's transform
/// `Σ_dy G[ξ][dy] · w[f][ci][dy][dx]` (in f64, rounded once), a block of
/// up to [`MR`] filters `f0..f0 + r` at `f0·c·40 + ((ξ·c + ci)·5 + dx)·r`
/// (`rows()` the filters, as the GEMM's packing).
pub fn pack_forward(d: &Im2col, filters: usize, weight: &[f32], packed: &mut PackedA) {
    assert!(columns_winograd(d), "direct::pack_forward: {d:?} does not run by Winograd down the columns");
    let (per, taps) = (per_filter(d), d.c * KERNEL * KERNEL);
    assert!(weight.len() >= filters * taps, "direct::pack_forward: the weight is shorter than {filters} × {taps}");
    packed.store_rows(filters, per, |u| {
        for f0 in (0..filters).step_by(MR) {
            let r = MR.min(filters - f0);
            let block = &mut u[f0 * per..][..r * per];
            for (xi, gx) in G.iter().enumerate() {
                for ci in 0..d.c {
                    for dx in 0..KERNEL {
                        for fi in 0..r {
                            let g = &weight[(f0 + fi) * taps + ci * KERNEL * KERNEL..];
                            block[((xi * d.c + ci) * KERNEL + dx) * r + fi] = column_point(gx, g, dx);
                        }
                    }
                }
            }
        }
    });
}

/// [`conv`] (`pool` false: `out` the planes) or [`conv_max_pool`] (`out`
/// the pooled planes) of a [`columns_winograd`] conv, over `u` as
/// [`pack_forward`] packs it.
fn columns(d: &Im2col, x: &[f32], u: &PackedA, bias: &[f32], relu: bool, pool: bool, out: &mut [f32]) {
    let filters = u.rows();
    let per = if pool { (d.oh / 2) * (d.ow / 2) } else { d.oh * d.ow };
    check(d, x, out, filters * per);
    assert!(
        columns_winograd(d) && u.depth() == per_filter(d) && (bias.is_empty() || bias.len() == filters),
        "direct conv: the packed weight is not {filters} × {} (`pack_forward`), or not one bias per filter",
        per_filter(d)
    );
    // The tiles read the image itself, its padding as zeros (no padded copy).
    let pad = Padded::of(d);
    COLUMNS.with_borrow_mut(|(t, m)| {
        let row = pad.width.next_multiple_of(16);
        let t = grown(t, d.c * ALPHA * row);
        let m = grown(m, ALPHA * MR * d.ow.div_ceil(16) * 16);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `applies` (asserted in `check`) found AVX-512; `x` holds
        // the image, `t` a tile's `c × 8` transformed rows of `row` ≥
        // `pad.width` values, `m` a block's products, `u` `filters ×
        // per_filter` values, `out` every filter's planes (pooled with `pool`).
        unsafe {
            x86::columns(d, pad.width, x, u.values(), filters, bias, relu, pool, row, t, m, out)
        };
    });
}

/// The geometry fits: stride 1 and outputs inside the padded input.
/// (`out` holds at least `out_len` values.)
fn check(d: &Im2col, x: &[f32], out: &[f32], out_len: usize) {
    assert!(applies(d), "direct conv: {d:?} is not a geometry it runs (see `applies`)");
    assert!(d.fits(), "direct conv: the output does not fit the padded input");
    assert!(x.len() >= d.c * d.h * d.w && out.len() >= out_len, "direct conv: buffers shorter than the geometry");
}

/// `z[f] = act(bias[f] + Σ_ci x[ci] ⋆ w[f][ci])` for one image: `x` is
/// `c × h × w`, `z` `filters × oh × ow` (written in full), `packed` the
/// weight (`filters × c·kh·kw`) as [`PackedA::pack`] packs it for the
/// GEMM — or for [`columns_winograd`] as [`pack_forward`] does; `bias`
/// empty or one per filter; `relu` applies max(0, ·) before the store.
///
/// # Panics
/// When [`applies`] does not hold for `d`, or a buffer is shorter than it.
pub fn conv(d: &Im2col, x: &[f32], packed: &PackedA, bias: &[f32], relu: bool, z: &mut [f32]) {
    if columns_winograd(d) {
        return columns(d, x, packed, bias, relu, false, z);
    }
    by_panels(d, x, packed, bias, z, d.oh * d.ow, |pad, xpad, panel, bias, z| {
        // SAFETY: `applies` (asserted in `check`) found AVX-512; the
        // padded copy holds every row and shifted vector the kernel
        // loads (`Padded`), `z` the panel's planes, the panel `taps × MR`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86::conv_panel(d, pad, xpad, panel, bias, relu, z)
        };
    });
}

/// The checks, the padded copy of `x`, then `kernel(pad, xpad, panel,
/// bias, out)` for each panel of filters: its packed weights, its biases
/// (or none) and its `per_filter` values of `out` each.
fn by_panels(
    d: &Im2col,
    x: &[f32],
    packed: &PackedA,
    bias: &[f32],
    out: &mut [f32],
    per_filter: usize,
    kernel: impl Fn(&Padded, &[f32], &[f32], &[f32], &mut [f32]),
) {
    let filters = packed.rows();
    check(d, x, out, filters * per_filter);
    let taps = d.c * d.kernel[0] * d.kernel[1];
    assert_eq!(packed.depth(), taps, "direct conv: the packed weight is not {filters} × {taps}");
    assert!(bias.is_empty() || bias.len() == filters, "direct conv: one bias per filter");
    let pad = Padded::of(d);
    XPAD.with_borrow_mut(|buf| {
        let xpad = pad.fill(d, x, buf);
        let panels = packed.panels();
        for p in 0..filters.div_ceil(MR) {
            let f0 = p * MR;
            let rows = MR.min(filters - f0);
            let bias = if bias.is_empty() { &[][..] } else { &bias[f0..f0 + rows] };
            kernel(&pad, xpad, panels.panel(p), bias, &mut out[f0 * per_filter..][..rows * per_filter]);
        }
    });
}

/// [`conv`] followed by a 2×2 max pool of stride 2, in registers:
/// `y[f]` (`filters × oh/2 × ow/2`, written in full) is the pool of
/// `act(bias[f] + Σ_ci x[ci] ⋆ w[f][ci])`. Each step computes two output
/// rows of a block of filters, takes their maximum, then the maximum of
/// each pair of columns, and stores the pooled row: the conv plane is
/// never written. Inference only (training records each maximum's
/// position: [`super::rows::max_pool_2x2`]). ReLU is applied before the
/// pool, in registers (other activations, monotone, are the caller's, after
/// it); a NaN in a window is its maximum, as in the interpreter.
///
/// # Panics
/// As [`conv`].
pub fn conv_max_pool(d: &Im2col, x: &[f32], packed: &PackedA, bias: &[f32], relu: bool, y: &mut [f32]) {
    if columns_winograd(d) {
        return columns(d, x, packed, bias, relu, true, y);
    }
    by_panels(d, x, packed, bias, y, (d.oh / 2) * (d.ow / 2), |pad, xpad, panel, bias, y| {
        // SAFETY: as in `conv`; `y` holds the panel's pooled planes.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86::conv_pool_panel(d, pad, xpad, panel, bias, relu, y)
        };
    });
}

/// `gw += ` one image's weight gradient (`filters × c·kh·kw`) from the
/// gradient at its conv output (`dz`, `filters × oh·ow`).
///
/// # Panics
/// When [`applies`] does not hold for `d`, or a buffer is shorter than it.
pub fn weight_grad(d: &Im2col, x: &[f32], dz: &[f32], filters: usize, gw: &mut [f32]) {
    check(d, x, dz, filters * d.oh * d.ow);
    let taps = d.c * d.kernel[0] * d.kernel[1];
    assert!(gw.len() >= filters * taps, "direct conv: the weight gradient is shorter than {filters} × {taps}");
    let pad = Padded::of(d);
    let plane = d.oh * d.ow;
    XPAD.with_borrow_mut(|buf| {
        let xpad = pad.fill(d, x, buf);
        for f0 in (0..filters).step_by(MR) {
            let rows = MR.min(filters - f0);
            // SAFETY: as in `conv`; `dz` holds the block's planes, `gw` its rows.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                x86::grad_panel(d, &pad, xpad, &dz[f0 * plane..][..rows * plane], &mut gw[f0 * taps..][..rows * taps])
            };
        }
    });
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{ALPHA, Im2col, KERNEL, MAX_KERNEL, MR, Padded, TILE, grad_rows};
    use crate::compiled::winograd::column_tiles;
    use crate::compiled::winograd::x86::{at as a_t, columns_transform};
    use crate::gemm::x86::lanes;

    /// Monomorphise `$f::<R, V>` for the panel's live rows `R` (1..=8) and
    /// the row's vectors `V` (1..=3), so that the accumulators are arrays
    /// of constant size (registers).
    macro_rules! dispatch {
        ($f:ident, $rows:expr, $vectors:expr, ($($arg:expr),*)) => {
            match ($rows, $vectors) {
                (1, 1) => $f::<1, 1>($($arg),*), (1, 2) => $f::<1, 2>($($arg),*), (1, 3) => $f::<1, 3>($($arg),*),
                (2, 1) => $f::<2, 1>($($arg),*), (2, 2) => $f::<2, 2>($($arg),*), (2, 3) => $f::<2, 3>($($arg),*),
                (3, 1) => $f::<3, 1>($($arg),*), (3, 2) => $f::<3, 2>($($arg),*), (3, 3) => $f::<3, 3>($($arg),*),
                (4, 1) => $f::<4, 1>($($arg),*), (4, 2) => $f::<4, 2>($($arg),*), (4, 3) => $f::<4, 3>($($arg),*),
                (5, 1) => $f::<5, 1>($($arg),*), (5, 2) => $f::<5, 2>($($arg),*), (5, 3) => $f::<5, 3>($($arg),*),
                (6, 1) => $f::<6, 1>($($arg),*), (6, 2) => $f::<6, 2>($($arg),*), (6, 3) => $f::<6, 3>($($arg),*),
                (7, 1) => $f::<7, 1>($($arg),*), (7, 2) => $f::<7, 2>($($arg),*), (7, 3) => $f::<7, 3>($($arg),*),
                (8, 1) => $f::<8, 1>($($arg),*), (8, 2) => $f::<8, 2>($($arg),*), (8, 3) => $f::<8, 3>($($arg),*),
                _ => unreachable!("a panel has 1..={MR} rows, a row 1..=3 vectors"),
            }
        };
    }

    /// One panel of [`super::conv`]: `rows` filters (`z.len() / plane`).
    ///
    /// # Safety
    /// The CPU has AVX-512F; `xpad` is `pad`'s copy of the image, `panel`
    /// `taps × MR` values, `z` the panel's planes.
    pub(super) unsafe fn conv_panel(d: &Im2col, pad: &Padded, xpad: &[f32], panel: &[f32], bias: &[f32], relu: bool, z: &mut [f32]) {
        let rows = z.len() / (d.oh * d.ow);
        // SAFETY: the caller's contract.
        unsafe { dispatch!(conv_rows, rows, d.ow.div_ceil(16), (d, pad, xpad, panel, bias, relu, z)) }
    }

    /// # Safety
    /// As [`conv_panel`], with `R` its rows and `V` vectors per output row.
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    unsafe fn conv_rows<const R: usize, const V: usize>(
        d: &Im2col,
        pad: &Padded,
        xpad: &[f32],
        panel: &[f32],
        bias: &[f32],
        relu: bool,
        z: &mut [f32],
    ) {
        let [kh, kw] = d.kernel;
        let (ow, plane) = (d.ow, d.oh * d.ow);
        let last = lanes(ow - 16 * (V - 1));
        let (xp, wp, zp) = (xpad.as_ptr(), panel.as_ptr(), z.as_mut_ptr());
        let start: [__m512; R] = std::array::from_fn(|r| if bias.is_empty() { _mm512_setzero_ps() } else { _mm512_set1_ps(bias[r]) });
        let zero = _mm512_setzero_ps();
        for oy in 0..d.oh {
            let mut acc = [[zero; V]; R];
            for (r, acc) in acc.iter_mut().enumerate() {
                *acc = [start[r]; V];
            }
            let mut w = wp;
            for ci in 0..d.c {
                for ky in 0..kh {
                    // SAFETY (this block): row oy + ky < hp of channel ci,
                    // and kx + 16·V ≤ width: inside `xpad`; `w` steps
                    // through the panel's taps × MR values.
                    unsafe {
                        let row = xp.add((ci * pad.hp + oy + ky) * pad.width);
                        for kx in 0..kw {
                            let xv: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(row.add(kx + 16 * v)));
                            for (r, acc) in acc.iter_mut().enumerate() {
                                let b = _mm512_set1_ps(*w.add(r));
                                for v in 0..V {
                                    acc[v] = _mm512_fmadd_ps(b, xv[v], acc[v]);
                                }
                            }
                            w = w.add(MR);
                        }
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                for (v, &a) in acc.iter().enumerate() {
                    let a = if relu { _mm512_max_ps(a, zero) } else { a };
                    // SAFETY: output row oy of filter r, columns 16v.. of
                    // `ow` (the last vector masked): inside `z`.
                    unsafe {
                        let out = zp.add(r * plane + oy * ow + 16 * v);
                        if v + 1 < V {
                            _mm512_storeu_ps(out, a);
                        } else {
                            _mm512_mask_storeu_ps(out, last, a);
                        }
                    }
                }
            }
        }
    }

    /// One panel of [`super::conv_max_pool`]: `rows` filters
    /// (`y.len()` / the pooled plane), in blocks that keep two output rows'
    /// accumulators in registers.
    ///
    /// # Safety
    /// As [`conv_panel`], with `y` the panel's pooled planes.
    pub(super) unsafe fn conv_pool_panel(d: &Im2col, pad: &Padded, xpad: &[f32], panel: &[f32], bias: &[f32], relu: bool, y: &mut [f32]) {
        let pooled = (d.oh / 2) * (d.ow / 2);
        if pooled == 0 {
            return;
        }
        let rows = y.len() / pooled;
        let vectors = d.ow.div_ceil(16);
        // 2 · R · V accumulators, V · 2 input vectors and a broadcast: ≤ 32 registers.
        let block = match vectors {
            1 => 8,
            2 => 4,
            _ => 3,
        };
        for r0 in (0..rows).step_by(block) {
            let n = block.min(rows - r0);
            let bias = if bias.is_empty() { &[][..] } else { &bias[r0..r0 + n] };
            let (panel, y) = (&panel[r0..], &mut y[r0 * pooled..][..n * pooled]);
            // SAFETY: the caller's contract, for filters r0 .. r0 + n of the panel.
            unsafe {
                match (n, vectors) {
                    (1, 1) => conv_pool_rows::<1, 1>(d, pad, xpad, panel, bias, relu, y),
                    (2, 1) => conv_pool_rows::<2, 1>(d, pad, xpad, panel, bias, relu, y),
                    (3, 1) => conv_pool_rows::<3, 1>(d, pad, xpad, panel, bias, relu, y),
                    (4, 1) => conv_pool_rows::<4, 1>(d, pad, xpad, panel, bias, relu, y),
                    (5, 1) => conv_pool_rows::<5, 1>(d, pad, xpad, panel, bias, relu, y),
                    (6, 1) => conv_pool_rows::<6, 1>(d, pad, xpad, panel, bias, relu, y),
                    (7, 1) => conv_pool_rows::<7, 1>(d, pad, xpad, panel, bias, relu, y),
                    (8, 1) => conv_pool_rows::<8, 1>(d, pad, xpad, panel, bias, relu, y),
                    (1, 2) => conv_pool_rows::<1, 2>(d, pad, xpad, panel, bias, relu, y),
                    (2, 2) => conv_pool_rows::<2, 2>(d, pad, xpad, panel, bias, relu, y),
                    (3, 2) => conv_pool_rows::<3, 2>(d, pad, xpad, panel, bias, relu, y),
                    (4, 2) => conv_pool_rows::<4, 2>(d, pad, xpad, panel, bias, relu, y),
                    (1, 3) => conv_pool_rows::<1, 3>(d, pad, xpad, panel, bias, relu, y),
                    (2, 3) => conv_pool_rows::<2, 3>(d, pad, xpad, panel, bias, relu, y),
                    (3, 3) => conv_pool_rows::<3, 3>(d, pad, xpad, panel, bias, relu, y),
                    _ => unreachable!("blocks of up to 8, 4, 3 filters for 1, 2, 3 vectors a row"),
                }
            }
        }
    }

    /// The maximum of `a` and `b`, NaN when either is.
    #[target_feature(enable = "avx512f")]
    fn max_nan(a: __m512, b: __m512) -> __m512 {
        _mm512_mask_mov_ps(_mm512_max_ps(a, b), _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a), a)
    }

    /// Two output rows of a filter (`V` vectors each), activated, pooled
    /// 2 × 2 into the `pw` values of a pooled row at `y`: the rows'
    /// maximum, then each column pair's — 32 columns (two vectors) give 16
    /// outputs. ReLU first, as the interpreter (a NaN becomes 0 before the pool).
    ///
    /// # Safety
    /// The CPU has AVX-512F; `y` holds `pw` values.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn pool_rows<const V: usize>(top: &[__m512; V], bottom: &[__m512; V], relu: bool, y: *mut f32, pw: usize) {
        let zero = _mm512_setzero_ps();
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
        // After ReLU no value is NaN: plain maxima.
        let max = |a: __m512, b: __m512| if relu { _mm512_max_ps(a, b) } else { max_nan(a, b) };
        let act = |v: __m512| if relu { _mm512_max_ps(v, zero) } else { v };
        let m: [__m512; V] = std::array::from_fn(|v| max(act(top[v]), act(bottom[v])));
        for g in 0..V.div_ceil(2) {
            let (lo, hi) = (m[2 * g], if 2 * g + 1 < V { m[2 * g + 1] } else { zero });
            let out = max(_mm512_permutex2var_ps(lo, even, hi), _mm512_permutex2var_ps(lo, odd, hi));
            let n = pw.saturating_sub(16 * g).min(16);
            // SAFETY: outputs 16g .. 16g + n of the pooled row.
            unsafe { _mm512_mask_storeu_ps(y.add(16 * g), lanes(n), out) };
        }
    }

    /// [`super::columns`]: for each tile of four output rows
    /// ([`column_tiles`]), its `c × 8` transformed rows `Bᵀ d` into `t`
    /// (`row` values each), then each block of up to [`MR`] filters'
    /// products and outputs ([`products`]).
    ///
    /// # Safety
    /// The CPU has AVX-512F; `x` is the image (`c × h × w`; the padded
    /// rows' transforms are `width` = `Padded::width` wide), `u` `filters`
    /// × `c·40` values as `pack_forward` packs them, `bias` none or
    /// `filters`, `t` `c × 8 × row` values (`row` ≥ `width`, a multiple of
    /// 16), `m` `8 × MR × 16·V`, `out` the filters' planes.
    #[allow(clippy::too_many_arguments)] // a kernel's operands
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    pub(super) unsafe fn columns(
        d: &Im2col,
        width: usize,
        x: &[f32],
        u: &[f32],
        filters: usize,
        bias: &[f32],
        relu: bool,
        pool: bool,
        row: usize,
        t: &mut [f32],
        m: &mut [f32],
        out: &mut [f32],
    ) {
        let per = super::per_filter(d);
        let vectors = d.ow.div_ceil(16);
        let b = Tile { c: d.c, row, relu, pool, oh: d.oh, ow: d.ow, s: 0, skip: 0 };
        for (s, skip, _) in column_tiles(d.oh, pool, false) {
            let b = Tile { s, skip, ..b };
            // SAFETY: `x` holds the image; `t` c × 8 rows of `row` ≥ width values.
            unsafe { columns_transform::<ALPHA>(x, d.c, [d.h, d.w], d.pad, width, s, row, t) };
            for f0 in (0..filters).step_by(MR) {
                let r = MR.min(filters - f0);
                let bias = if bias.is_empty() { &[][..] } else { &bias[f0..f0 + r] };
                let plane = if pool { (d.oh / 2) * (d.ow / 2) } else { d.oh * d.ow };
                // SAFETY: the block's weights and planes, and the scratch, as above.
                unsafe {
                    let (u, out) = (u.as_ptr().add(f0 * per), out.as_mut_ptr().add(f0 * plane));
                    macro_rules! go {
                        ($(($r:literal, $v:literal))*) => {
                            match (r, vectors) {
                                $(($r, $v) => products::<$r, $v>(&b, t.as_ptr(), u, bias, m.as_mut_ptr(), out),)*
                                _ => unreachable!("blocks of 1..={MR} filters, rows of 1..=3 vectors"),
                            }
                        };
                    }
                    go!((1, 1)(2, 1)(3, 1)(4, 1)(5, 1)(6, 1)(7, 1)(8, 1)(1, 2)(2, 2)(3, 2)(4, 2)(5, 2)(6, 2)(7, 2)(8, 2)(1, 3)(2, 3)(3, 3)(
                        4, 3
                    )(5, 3)(6, 3)(7, 3)(8, 3))
                }
            }
        }
    }

    /// A tile of [`columns`]: its first output row `s`, of which the
    /// first `skip` rows are not stored.
    #[derive(Clone, Copy)]
    struct Tile {
        c: usize,
        /// Values per transformed row.
        row: usize,
        relu: bool,
        pool: bool,
        oh: usize,
        ow: usize,
        s: usize,
        skip: usize,
    }

    /// For each point ξ, `R × V` accumulators `Σ_{ci, dx} U[ξ][ci][dx][r] ·
    /// T[ci][ξ][16v + dx ..]` — `V` shifted vectors of the transformed row
    /// loaded once for the block's `R` filters (the bias enters at ξ = 1,
    /// the point 1, whose output weights `Aᵀ[·][1]` are all 1) — into `m`;
    /// then `Aᵀ` down each filter's columns, activated, stored or pooled.
    ///
    /// # Safety
    /// As [`columns`], for the block's `R` filters (`u`, `out` at their
    /// first; `bias` none or `R`) and `V` vectors a row.
    #[allow(clippy::needless_range_loop)] // constant indices keep the accumulators in registers
    #[inline(never)]
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    unsafe fn products<const R: usize, const V: usize>(b: &Tile, t: *const f32, u: *const f32, bias: &[f32], m: *mut f32, out: *mut f32) {
        let zero = _mm512_setzero_ps();
        for xi in 0..ALPHA {
            let mut acc = [[zero; V]; R];
            if xi == 1 && !bias.is_empty() {
                for r in 0..R {
                    acc[r] = [_mm512_set1_ps(bias[r]); V];
                }
            }
            for ci in 0..b.c {
                // SAFETY (this block): the transformed row (ci, ξ), read at
                // shifts dx + 16·V ≤ 16V + 4 ≤ row; the weights of (ξ, ci).
                unsafe {
                    let line = t.add((ci * ALPHA + xi) * b.row);
                    let w = u.add((xi * b.c + ci) * KERNEL * R);
                    for dx in 0..KERNEL {
                        let tv: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(line.add(16 * v + dx)));
                        for r in 0..R {
                            let wv = _mm512_set1_ps(*w.add(dx * R + r));
                            for v in 0..V {
                                acc[r][v] = _mm512_fmadd_ps(wv, tv[v], acc[r][v]);
                            }
                        }
                    }
                }
            }
            for r in 0..R {
                for v in 0..V {
                    // SAFETY: `m` holds 8 × R × V vectors.
                    unsafe { _mm512_storeu_ps(m.add(((xi * R + r) * V + v) * 16), acc[r][v]) };
                }
            }
        }
        let (ow, last) = (b.ow, lanes(b.ow - 16 * (V - 1)));
        let (ph, pw) = (b.oh / 2, b.ow / 2);
        for r in 0..R {
            let mut rows = [[zero; V]; TILE];
            for v in 0..V {
                // SAFETY: as above.
                let column: [__m512; ALPHA] = std::array::from_fn(|xi| unsafe { _mm512_loadu_ps(m.add(((xi * R + r) * V + v) * 16)) });
                for (i, y) in a_t(&column).into_iter().enumerate() {
                    rows[i][v] = y;
                }
            }
            if b.pool {
                for p in b.skip / 2..TILE / 2 {
                    // SAFETY: pooled row s/2 + p < ph of filter r.
                    unsafe { pool_rows(&rows[2 * p], &rows[2 * p + 1], b.relu, out.add((r * ph + b.s / 2 + p) * pw), pw) };
                }
                continue;
            }
            for i in b.skip..TILE {
                for v in 0..V {
                    let y = if b.relu { _mm512_max_ps(rows[i][v], zero) } else { rows[i][v] };
                    // SAFETY: output row s + i < oh of filter r, columns 16v..
                    // of `ow` (the last vector masked).
                    unsafe {
                        let at = out.add((r * b.oh + b.s + i) * ow + 16 * v);
                        if v + 1 < V {
                            _mm512_storeu_ps(at, y);
                        } else {
                            _mm512_mask_storeu_ps(at, last, y);
                        }
                    }
                }
            }
        }
    }

    /// # Safety
    /// As [`conv_pool_panel`], with `R` filters (the panel's first, at
    /// stride [`MR`] per tap) and `V` vectors per output row.
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    unsafe fn conv_pool_rows<const R: usize, const V: usize>(
        d: &Im2col,
        pad: &Padded,
        xpad: &[f32],
        panel: &[f32],
        bias: &[f32],
        relu: bool,
        y: &mut [f32],
    ) {
        let [kh, kw] = d.kernel;
        let (ph, pw) = (d.oh / 2, d.ow / 2);
        let (xp, wp, yp) = (xpad.as_ptr(), panel.as_ptr(), y.as_mut_ptr());
        let start: [__m512; R] = std::array::from_fn(|r| if bias.is_empty() { _mm512_setzero_ps() } else { _mm512_set1_ps(bias[r]) });
        let zero = _mm512_setzero_ps();
        for py in 0..ph {
            let oy = 2 * py;
            let mut top = [[zero; V]; R];
            let mut bottom = [[zero; V]; R];
            for r in 0..R {
                top[r] = [start[r]; V];
                bottom[r] = [start[r]; V];
            }
            let mut w = wp;
            for ci in 0..d.c {
                for ky in 0..kh {
                    // SAFETY (this block): rows oy + ky and oy + 1 + ky < hp
                    // of channel ci, shifts kx + 16·V ≤ width: inside
                    // `xpad`; `w` steps through the panel's taps × MR values.
                    unsafe {
                        let row = xp.add((ci * pad.hp + oy + ky) * pad.width);
                        let next = row.add(pad.width);
                        for kx in 0..kw {
                            let x0: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(row.add(kx + 16 * v)));
                            let x1: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(next.add(kx + 16 * v)));
                            for r in 0..R {
                                let b = _mm512_set1_ps(*w.add(r));
                                for v in 0..V {
                                    top[r][v] = _mm512_fmadd_ps(b, x0[v], top[r][v]);
                                    bottom[r][v] = _mm512_fmadd_ps(b, x1[v], bottom[r][v]);
                                }
                            }
                            w = w.add(MR);
                        }
                    }
                }
            }
            for r in 0..R {
                // SAFETY: pooled row py of filter r.
                unsafe { pool_rows(&top[r], &bottom[r], relu, yp.add((r * ph + py) * pw), pw) };
            }
        }
    }

    /// One block of [`super::weight_grad`]: `rows` filters (`dz.len() / plane`),
    /// taken [`GRAD_ROWS`] at a time.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `xpad` is `pad`'s copy of the image, `dz` the
    /// block's planes and `gw` its rows of taps.
    pub(super) unsafe fn grad_panel(d: &Im2col, pad: &Padded, xpad: &[f32], dz: &[f32], gw: &mut [f32]) {
        let plane = d.oh * d.ow;
        let taps = d.c * d.kernel[0] * d.kernel[1];
        let rows = dz.len() / plane;
        let block = grad_rows(d.kernel[1]);
        for r0 in (0..rows).step_by(block) {
            let n = block.min(rows - r0);
            let (dz, gw) = (&dz[r0 * plane..][..n * plane], &mut gw[r0 * taps..][..n * taps]);
            // SAFETY: the caller's contract, for rows r0 .. r0 + n.
            unsafe {
                match (n, d.kernel[1]) {
                    (1, 1) => grad_block::<1, 1>(d, pad, xpad, dz, gw),
                    (2, 1) => grad_block::<2, 1>(d, pad, xpad, dz, gw),
                    (3, 1) => grad_block::<3, 1>(d, pad, xpad, dz, gw),
                    (4, 1) => grad_block::<4, 1>(d, pad, xpad, dz, gw),
                    (1, 2) => grad_block::<1, 2>(d, pad, xpad, dz, gw),
                    (2, 2) => grad_block::<2, 2>(d, pad, xpad, dz, gw),
                    (3, 2) => grad_block::<3, 2>(d, pad, xpad, dz, gw),
                    (4, 2) => grad_block::<4, 2>(d, pad, xpad, dz, gw),
                    (1, 3) => grad_block::<1, 3>(d, pad, xpad, dz, gw),
                    (2, 3) => grad_block::<2, 3>(d, pad, xpad, dz, gw),
                    (3, 3) => grad_block::<3, 3>(d, pad, xpad, dz, gw),
                    (4, 3) => grad_block::<4, 3>(d, pad, xpad, dz, gw),
                    (1, 4) => grad_block::<1, 4>(d, pad, xpad, dz, gw),
                    (2, 4) => grad_block::<2, 4>(d, pad, xpad, dz, gw),
                    (3, 4) => grad_block::<3, 4>(d, pad, xpad, dz, gw),
                    (4, 4) => grad_block::<4, 4>(d, pad, xpad, dz, gw),
                    (1, 5) => grad_block::<1, 5>(d, pad, xpad, dz, gw),
                    (2, 5) => grad_block::<2, 5>(d, pad, xpad, dz, gw),
                    (3, 5) => grad_block::<3, 5>(d, pad, xpad, dz, gw),
                    (4, 5) => grad_block::<4, 5>(d, pad, xpad, dz, gw),
                    (1, 6) => grad_block::<1, 6>(d, pad, xpad, dz, gw),
                    (2, 6) => grad_block::<2, 6>(d, pad, xpad, dz, gw),
                    (3, 6) => grad_block::<3, 6>(d, pad, xpad, dz, gw),
                    (1, 7) => grad_block::<1, 7>(d, pad, xpad, dz, gw),
                    (2, 7) => grad_block::<2, 7>(d, pad, xpad, dz, gw),
                    (3, 7) => grad_block::<3, 7>(d, pad, xpad, dz, gw),
                    _ => unreachable!("kernels up to {MAX_KERNEL} wide, blocks of `grad_rows` filters"),
                }
            }
        }
    }

    /// For one input row of taps `(ci, ky)`, the `R × KW` sums over the
    /// output rows: each output row's `dz` of the `R` filters is loaded
    /// once and multiplied by the input row at each of the `KW` shifts
    /// (`R + KW` loads for `R·KW` multiply-adds).
    ///
    /// # Safety
    /// As [`grad_panel`], with `R` filters and `KW` the kernel width.
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    unsafe fn grad_block<const R: usize, const KW: usize>(d: &Im2col, pad: &Padded, xpad: &[f32], dz: &[f32], gw: &mut [f32]) {
        let kh = d.kernel[0];
        let (ow, plane, taps) = (d.ow, d.oh * d.ow, d.c * kh * KW);
        let vectors = ow.div_ceil(16);
        let (xp, dp) = (xpad.as_ptr(), dz.as_ptr());
        for ci in 0..d.c {
            for ky in 0..kh {
                let mut acc = [[_mm512_setzero_ps(); KW]; R];
                for oy in 0..d.oh {
                    // SAFETY (this block): input row oy + ky < hp of channel
                    // ci, shifts kx + 16v + 16 ≤ width: inside `xpad`; row
                    // oy of each filter's `dz`, lanes past `ow` masked
                    // (they would be the next row's, and inputs outside the
                    // output): inside `dz`. Masked lanes are zero in both.
                    unsafe {
                        let (row, grad) = (xp.add((ci * pad.hp + oy + ky) * pad.width), dp.add(oy * ow));
                        for v in 0..vectors {
                            let m = lanes(ow - 16 * v);
                            let g: [__m512; R] = std::array::from_fn(|r| _mm512_maskz_loadu_ps(m, grad.add(r * plane + 16 * v)));
                            for kx in 0..KW {
                                let xv = _mm512_maskz_loadu_ps(m, row.add(kx + 16 * v));
                                for (acc, &g) in acc.iter_mut().zip(&g) {
                                    acc[kx] = _mm512_fmadd_ps(xv, g, acc[kx]);
                                }
                            }
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    for (kx, &a) in acc.iter().enumerate() {
                        gw[r * taps + (ci * kh + ky) * KW + kx] += _mm512_reduce_add_ps(a);
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

    fn geometry(c: usize, h: usize, w: usize, k: usize, p: usize) -> Im2col {
        Im2col { c, h, w, kernel: [k, k], stride: [1, 1], pad: [p, p], oh: h + 2 * p - k + 1, ow: w + 2 * p - k + 1 }
    }

    fn values(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.symmetric(1.0)).collect()
    }

    /// The input at `(ci, y − p, x − p)`, zero in the padding.
    fn at(d: &Im2col, x: &[f32], ci: usize, y: usize, xx: usize) -> f64 {
        let (y, xx) = (y.wrapping_sub(d.pad[0]), xx.wrapping_sub(d.pad[1]));
        if y < d.h && xx < d.w { f64::from(x[(ci * d.h + y) * d.w + xx]) } else { 0.0 }
    }

    /// Shapes: one, two and three vectors a row, partial last vectors,
    /// 3 × 3, 5 × 5 and 7 × 7, every panel height (filters 1..=8 and past
    /// a panel) and so every block of the weight gradient. The 5 × 5 ones
    /// run by Winograd down the columns: rows a multiple of its tiles (4)
    /// or not (the last tile overlapping by 2, and for 13 and 6 rows,
    /// unpooled, by 3 and 2 more), one to three channels.
    const SHAPES: [(usize, usize, usize, usize, usize, usize); 11] = [
        (1, 28, 28, 5, 2, 6),
        (1, 28, 28, 5, 2, 32),
        (3, 14, 16, 3, 1, 5),
        (2, 20, 18, 3, 0, 11),
        (1, 36, 40, 5, 2, 3),
        (1, 14, 14, 3, 0, 8),
        (3, 9, 48, 3, 1, 17),
        (2, 20, 30, 7, 3, 7),
        (3, 17, 20, 5, 0, 9),
        (2, 10, 46, 5, 1, 4),
        (1, 8, 16, 5, 1, 13),
    ];

    /// The weight packed as [`conv`] reads it.
    fn forward_packed(d: &Im2col, weight: &[f32], filters: usize) -> PackedA {
        let mut packed = PackedA::default();
        if columns_winograd(d) {
            pack_forward(d, filters, weight, &mut packed);
        } else {
            packed.pack(weight, filters, d.c * d.kernel[0] * d.kernel[1]);
        }
        packed
    }

    #[test]
    fn direct_conv_and_weight_gradient_match_their_definitions() {
        if cpu_level() != CpuLevel::Avx512 {
            return;
        }
        let mut rng = Rng::new(3);
        for &(c, h, w, k, p, filters) in &SHAPES {
            let d = geometry(c, h, w, k, p);
            assert!(applies(&d), "{d:?}");
            let taps = c * k * k;
            let (x, wt, bias, dz) = (
                values(&mut rng, c * h * w),
                values(&mut rng, filters * taps),
                values(&mut rng, filters),
                values(&mut rng, filters * d.oh * d.ow),
            );
            let packed = forward_packed(&d, &wt, filters);
            for relu in [false, true] {
                let mut z = vec![f32::NAN; filters * d.oh * d.ow];
                conv(&d, &x, &packed, &bias, relu, &mut z);
                for f in 0..filters {
                    for oy in 0..d.oh {
                        for ox in 0..d.ow {
                            let mut want = f64::from(bias[f]);
                            for ci in 0..c {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        want += f64::from(wt[f * taps + (ci * k + ky) * k + kx]) * at(&d, &x, ci, oy + ky, ox + kx);
                                    }
                                }
                            }
                            let want = if relu { want.max(0.0) } else { want };
                            let got = z[(f * d.oh + oy) * d.ow + ox];
                            assert!((f64::from(got) - want).abs() <= 1e-5 * (1.0 + want.abs()), "{d:?} f{f} ({oy},{ox}): {got} vs {want}");
                        }
                    }
                }
            }
            // Pooled in registers: the 2×2 maxima of the conv's plane.
            let (ph, pw) = (d.oh / 2, d.ow / 2);
            for relu in [false, true] {
                let mut z = vec![0.0; filters * d.oh * d.ow];
                conv(&d, &x, &packed, &bias, relu, &mut z);
                let mut y = vec![f32::NAN; filters * ph * pw];
                conv_max_pool(&d, &x, &packed, &bias, relu, &mut y);
                for f in 0..filters {
                    for (py, px) in (0..ph).flat_map(|py| (0..pw).map(move |px| (py, px))) {
                        let at = |dy: usize, dx: usize| z[(f * d.oh + 2 * py + dy) * d.ow + 2 * px + dx];
                        let want = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
                        assert_eq!(y[(f * ph + py) * pw + px], want, "{d:?} pooled f{f} ({py},{px})");
                    }
                }
            }
            // The gradient adds to what `gw` holds.
            let mut gw = vec![1.0f32; filters * taps];
            weight_grad(&d, &x, &dz, filters, &mut gw);
            for f in 0..filters {
                for ci in 0..c {
                    for ky in 0..k {
                        for kx in 0..k {
                            let mut want = 1.0f64;
                            for oy in 0..d.oh {
                                for ox in 0..d.ow {
                                    want += f64::from(dz[(f * d.oh + oy) * d.ow + ox]) * at(&d, &x, ci, oy + ky, ox + kx);
                                }
                            }
                            let got = gw[f * taps + (ci * k + ky) * k + kx];
                            assert!(
                                (f64::from(got) - want).abs() <= 1e-4 * (1.0 + want.abs()),
                                "{d:?} gw[{f}][{ci},{ky},{kx}]: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// A NaN input makes every pooled output whose windows read it NaN —
    /// only those when the conv is direct; with Winograd down the columns
    /// maybe also others in those columns of its tiles (the transform
    /// mixes their eight rows), and nothing further.
    #[test]
    fn a_nan_input_is_the_maximum_of_its_windows() {
        if cpu_level() != CpuLevel::Avx512 {
            return;
        }
        for k in [3, 5] {
            let d = geometry(1, 28, 28, k, k / 2);
            let taps = k * k;
            let mut rng = Rng::new(4);
            let mut x = values(&mut rng, 28 * 28);
            x[13 * 28 + 17] = f32::NAN;
            let packed = forward_packed(&d, &values(&mut rng, 6 * taps), 6);
            // The tiles of four output rows reading input row 13 (padded: 13 + pad).
            let tiles: Vec<usize> = (0..28).step_by(4).filter(|&s| (s..s + 8).contains(&(13 + k / 2))).collect();
            // Without an activation; with ReLU, which takes NaN to 0 first (as
            // the interpreter's does), so no output is NaN.
            for relu in [false, true] {
                let mut y = vec![0.0; 6 * 14 * 14];
                conv_max_pool(&d, &x, &packed, &[], relu, &mut y);
                for f in 0..6 {
                    for (py, px) in (0..14).flat_map(|py| (0..14).map(move |px| (py, px))) {
                        // Conv outputs (oy, ox) with |oy − 13| ≤ k/2, |ox − 17| ≤ k/2 read the NaN.
                        let reads = |o: usize, c: usize| (2 * o..2 * o + 2).any(|v: usize| v.abs_diff(c) <= k / 2);
                        let (must, may) = (reads(py, 13), columns_winograd(&d) && tiles.contains(&(2 * py / 4 * 4)));
                        let got = y[(f * 14 + py) * 14 + px].is_nan();
                        let want = !relu && (must || (may && got)) && reads(px, 17);
                        assert_eq!(got, want, "k {k} relu {relu}: f{f} ({py},{px})");
                    }
                }
            }
        }
    }

    #[test]
    fn applies_to_wide_rows_over_few_channels() {
        if cpu_level() != CpuLevel::Avx512 {
            return;
        }
        assert!(applies(&geometry(1, 28, 28, 5, 2)));
        // 10 outputs a row fill 10 of 16 lanes; 6 channels; 1 × 1; stride 2.
        assert!(!applies(&geometry(6, 14, 14, 5, 0)));
        assert!(!applies(&geometry(4, 28, 28, 5, 2)));
        assert!(!applies(&geometry(1, 28, 28, 1, 0)));
        assert!(!applies(&Im2col { stride: [2, 2], oh: 14, ow: 14, ..geometry(1, 28, 28, 2, 0) }));
        assert!(!applies(&geometry(1, 60, 60, 5, 2)));
    }
}

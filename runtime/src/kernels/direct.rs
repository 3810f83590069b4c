//! Direct convolution for convs over few input channels — a network's
//! first layer, reading the image itself: LeNet-5's and fashion_tf's
//! conv1 (one channel, 5 × 5, 28 × 28 outputs).
//!
//! There, im2col is as costly as the GEMM it feeds: each output position
//! is gathered `c·kh·kw` times and multiplied by only a few filters (six
//! for LeNet-5's conv1, where it took a fifth of an image's inference).
//! Here no matrix is built: an output row is a few vectors of positions,
//! and for each tap `(ci, ky, kx)` the input row `oy + ky` of channel
//! `ci`, shifted by `kx`, is loaded once and multiplied into a block of
//! filters (their weights broadcast from the same packed panels the GEMM
//! reads) — up to 24 accumulators in registers at AVX-512 (a panel's eight
//! filters × three vectors), 12 at AVX2 (blocks of fewer filters as rows
//! take more vectors: `Blocks`). The weight
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

use super::im2col::{Bordered, Im2col};
use super::winograd::{ALPHA, G, KERNEL, TILE, at as a_t, column_point, column_tiles, columns_transform, grown};
use crate::kernels::gemm::{MR, PackedA};
use crate::kernels::simd::{Simd, Vectors, block, multiversion};

/// Input channels up to which a conv runs direct (an image's: grey, RGB).
pub const MAX_CHANNELS: usize = 3;

/// Widest output row: 48 (three AVX-512 vectors, six AVX2 ones).
const MAX_OUTPUTS: usize = 48;

/// Widest kernel (the weight gradient keeps filters × kernel width sums in registers).
const MAX_KERNEL: usize = 7;

/// Whether [`conv`] and [`weight_grad`] run `d` at the level the kernels
/// run at here (and so its stage packs its weight for them — as for the
/// GEMM, which they share it with): see [`applies_for`].
pub fn applies(d: &Im2col) -> bool {
    applies_for(d, Vectors::here())
}

/// Whether the direct kernels run `d` with vectors `v`: stride 1, not 1 ×
/// 1, at most `MAX_KERNEL` wide, at most [`MAX_CHANNELS`] input channels,
/// rows of at most 48 outputs in at most `Blocks::max_vectors` vectors
/// that they fill to three quarters or more.
pub fn applies_for(d: &Im2col, v: Vectors) -> bool {
    let vectors = d.ow.div_ceil(v.lanes);
    d.stride == [1, 1]
        && d.kernel != [1, 1]
        && d.kernel[1] <= MAX_KERNEL
        && (1..=MAX_CHANNELS).contains(&d.c)
        && d.ow <= MAX_OUTPUTS
        && (1..=Blocks::max_vectors(v)).contains(&vectors)
        && 4 * d.ow >= 3 * v.lanes * vectors
        && d.oh > 0
}

/// How many filters a kernel takes at once for rows of `vectors` vectors,
/// so that its accumulators, the vectors it loads and a broadcast fit the
/// registers: at AVX-512 the blockings measured when these kernels were
/// written (a panel's 8 filters for the forward; 8, 4, 3 for one, two,
/// three vectors pooled; 4 filters × 5 taps of weight gradient); with 16
/// registers, as many as fit.
#[derive(Debug, Clone, Copy)]
struct Blocks;

impl Blocks {
    const fn max_vectors(v: Vectors) -> usize {
        if v.wide { 3 } else { 6 }
    }

    /// The forward, one output row: `R·V` accumulators, `V` loaded vectors.
    const fn forward(wide: bool, vectors: usize) -> usize {
        if wide { MR } else { min(MR, max(1, (16 - vectors - 2) / vectors)) }
    }

    /// The forward pooled: two output rows' `2·R·V` accumulators, `2·V` loads.
    const fn pooled(wide: bool, vectors: usize) -> usize {
        if wide { [8, 4, 3][vectors - 1] } else { min(MR, max(1, (16 - 2 * vectors - 1) / (2 * vectors))) }
    }

    /// The weight gradient: `R·kw` sums, `R` gradient vectors and an input.
    const fn grad(wide: bool, kw: usize) -> usize {
        if wide { if kw <= 5 { 4 } else { 3 } } else { min(4, max(1, 15 / (kw + 1))) }
    }
}

const fn min(a: usize, b: usize) -> usize {
    if a < b { a } else { b }
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// The zero-bordered copy the kernels read: `c × hp × width`, each row
/// wide enough for a full vector at every tap's shift.
struct Padded {
    hp: usize,
    width: usize,
}

impl Padded {
    fn of(d: &Im2col, lanes: usize) -> Self {
        Self { hp: d.h + 2 * d.pad[0], width: lanes * d.ow.div_ceil(lanes) + d.kernel[1] - 1 }
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
    applies(d) && columns_shape(d)
}

/// A 5 × 5 kernel and at least four output rows (the geometry Winograd
/// down the columns needs).
fn columns_shape(d: &Im2col) -> bool {
    d.kernel == [KERNEL, KERNEL] && d.oh >= TILE
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
    assert!(columns_shape(d), "direct::pack_forward: {d:?} does not run by Winograd down the columns");
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

/// The geometry fits at `S`'s vectors: stride 1 and outputs inside the
/// padded input. (`out` holds at least `out_len` values.)
fn check<S: Simd>(d: &Im2col, x: &[f32], out: &[f32], out_len: usize) {
    assert!(applies_for(d, Vectors::of::<S>()), "direct conv: {d:?} is not a geometry it runs at {} (see `applies`)", S::NAME);
    assert!(d.fits(), "direct conv: the output does not fit the padded input");
    assert!(x.len() >= d.c * d.h * d.w && out.len() >= out_len, "direct conv: buffers shorter than the geometry");
}

multiversion! {
    /// `z[f] = act(bias[f] + Σ_ci x[ci] ⋆ w[f][ci])` for one image: `x` is
    /// `c × h × w`, `z` `filters × oh × ow` (written in full), `packed` the
    /// weight (`filters × c·kh·kw`) as [`PackedA::pack`] packs it for the
    /// GEMM — or for [`columns_winograd`] as [`pack_forward`] does; `bias`
    /// empty or one per filter; `relu` applies max(0, ·) before the store.
    ///
    /// # Panics
    /// When [`applies`] does not hold for `d`, or a buffer is shorter than it.
    pub fn conv(d: &Im2col, x: &[f32], packed: &PackedA, bias: &[f32], relu: bool, z: &mut [f32])
        => |s| conv_with(s, d, x, packed, bias, relu, false, z)
}

multiversion! {
    /// [`conv`] followed by a 2×2 max pool of stride 2, in registers:
    /// `y[f]` (`filters × oh/2 × ow/2`, written in full) is the pool of
    /// `act(bias[f] + Σ_ci x[ci] ⋆ w[f][ci])`. Each step computes two output
    /// rows of a block of filters, takes their maximum, then the maximum of
    /// each pair of columns, and stores the pooled row: the conv plane is
    /// never written. Inference only (training records each maximum's
    /// position: [`super::pool::max_pool_2x2`]). ReLU is applied before the
    /// pool, in registers (other activations, monotone, are the caller's, after
    /// it); a NaN in a window is its maximum, as in the interpreter.
    ///
    /// # Panics
    /// As [`conv`].
    pub fn conv_max_pool(d: &Im2col, x: &[f32], packed: &PackedA, bias: &[f32], relu: bool, y: &mut [f32])
        => |s| conv_with(s, d, x, packed, bias, relu, true, y)
}

/// [`conv`] (`pool` false: `out` the planes) or [`conv_max_pool`] at `s`'s level.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn conv_with<S: Simd>(s: S, d: &Im2col, x: &[f32], packed: &PackedA, bias: &[f32], relu: bool, pool: bool, out: &mut [f32]) {
    let filters = packed.rows();
    let per = if pool { (d.oh / 2) * (d.ow / 2) } else { d.oh * d.ow };
    check::<S>(d, x, out, filters * per);
    assert!(bias.is_empty() || bias.len() == filters, "direct conv: one bias per filter");
    if columns_shape(d) {
        assert!(packed.depth() == per_filter(d), "direct conv: the packed weight is not {filters} × {} (`pack_forward`)", per_filter(d));
        // The tiles read the image itself, its padding as zeros (no padded copy).
        let pad = Padded::of(d, S::LANES);
        // (Thread-local scratch taken out and put back, not borrowed in a
        // closure: a closure is compiled without the level's target
        // features, and the kernel inside it would be too.)
        let (mut t, mut m) = COLUMNS.take();
        let row = pad.width.next_multiple_of(S::LANES);
        let t_rows = grown(&mut t, d.c * ALPHA * row);
        let products = grown(&mut m, ALPHA * MR * d.ow.div_ceil(S::LANES) * S::LANES);
        // SAFETY: `check` holds; `x` holds the image, `t` a tile's `c × 8`
        // transformed rows of `row` ≥ `pad.width` values, `m` a block's
        // products, `u` `filters × per_filter` values, `out` every filter's
        // planes (pooled with `pool`).
        unsafe { columns(s, d, pad.width, x, packed.values(), filters, bias, relu, pool, row, t_rows, products, out) };
        COLUMNS.set((t, m));
        return;
    }
    let taps = d.c * d.kernel[0] * d.kernel[1];
    assert_eq!(packed.depth(), taps, "direct conv: the packed weight is not {filters} × {taps}");
    if pool && per == 0 {
        return;
    }
    let pad = Padded::of(d, S::LANES);
    let vectors = d.ow.div_ceil(S::LANES);
    let block = if pool { Blocks::pooled(S::WIDE, vectors) } else { Blocks::forward(S::WIDE, vectors) };
    let mut buf = XPAD.take();
    let xpad = pad.fill(d, x, &mut buf);
    let panels = packed.panels();
    for p in 0..filters.div_ceil(MR) {
        let live = MR.min(filters - p * MR);
        for r0 in (0..live).step_by(block) {
            let (f0, n) = (p * MR + r0, block.min(live - r0));
            let bias = if bias.is_empty() { &[][..] } else { &bias[f0..f0 + n] };
            let (w, out) = (&panels.panel(p)[r0..], &mut out[f0 * per..][..n * per]);
            let args = (d, &pad, xpad, w, bias, relu, out);
            macro_rules! go {
                ($f:ident: $(($r:literal, $v:literal))*) => {
                    match (n, vectors) {
                        $(($r, $v) => s.call($f::<$r, $v>(args)),)*
                        _ => unreachable!("blocks of {n} filters × {vectors} vectors"),
                    }
                };
            }
            // SAFETY: `check` holds; the padded copy holds every row and
            // shifted vector the kernels load (`Padded`), the panel's
            // block `taps × MR` values from `r0`, `out` the block's planes.
            // (Only this level's blockings are instantiated.)
            unsafe {
                match (pool, S::WIDE) {
                    (false, true) => {
                        go!(ConvRows: (1, 1)(2, 1)(3, 1)(4, 1)(5, 1)(6, 1)(7, 1)(8, 1)(1, 2)(2, 2)(3, 2)(4, 2)(5, 2)(6, 2)(7, 2)(8, 2)(1, 3)(2, 3)(3, 3)(4, 3)(5, 3)(6, 3)(7, 3)(8, 3))
                    }
                    (false, false) => {
                        go!(ConvRows: (1, 1)(2, 1)(3, 1)(4, 1)(5, 1)(6, 1)(7, 1)(8, 1)(1, 2)(2, 2)(3, 2)(4, 2)(5, 2)(6, 2)(1, 3)(2, 3)(3, 3)(1, 4)(2, 4)(1, 5)(1, 6))
                    }
                    (true, true) => {
                        go!(ConvPoolRows: (1, 1)(2, 1)(3, 1)(4, 1)(5, 1)(6, 1)(7, 1)(8, 1)(1, 2)(2, 2)(3, 2)(4, 2)(1, 3)(2, 3)(3, 3))
                    }
                    (true, false) => go!(ConvPoolRows: (1, 1)(2, 1)(3, 1)(4, 1)(5, 1)(6, 1)(1, 2)(2, 2)(1, 3)(1, 4)(1, 5)(1, 6)),
                }
            }
        }
    }
    XPAD.set(buf);
}

multiversion! {
    /// `gw += ` one image's weight gradient (`filters × c·kh·kw`) from the
    /// gradient at its conv output (`dz`, `filters × oh·ow`).
    ///
    /// # Panics
    /// When [`applies`] does not hold for `d`, or a buffer is shorter than it.
    pub fn weight_grad(d: &Im2col, x: &[f32], dz: &[f32], filters: usize, gw: &mut [f32]) => |s| weight_grad_with(s, d, x, dz, filters, gw)
}

#[inline(always)]
fn weight_grad_with<S: Simd>(s: S, d: &Im2col, x: &[f32], dz: &[f32], filters: usize, gw: &mut [f32]) {
    check::<S>(d, x, dz, filters * d.oh * d.ow);
    let taps = d.c * d.kernel[0] * d.kernel[1];
    assert!(gw.len() >= filters * taps, "direct conv: the weight gradient is shorter than {filters} × {taps}");
    let pad = Padded::of(d, S::LANES);
    let plane = d.oh * d.ow;
    let block = Blocks::grad(S::WIDE, d.kernel[1]);
    let mut buf = XPAD.take();
    let xpad = pad.fill(d, x, &mut buf);
    for f0 in (0..filters).step_by(block) {
        let n = block.min(filters - f0);
        let (dz, gw) = (&dz[f0 * plane..][..n * plane], &mut gw[f0 * taps..][..n * taps]);
        let args = (d, &pad, xpad, dz, gw);
        macro_rules! go {
            ($(($r:literal, $k:literal))*) => {
                match (n, d.kernel[1]) {
                    $(($r, $k) => s.call(GradBlock::<$r, $k>(args)),)*
                    _ => unreachable!("blocks of {n} filters, kernels up to {MAX_KERNEL} wide"),
                }
            };
        }
        // SAFETY: `check` holds; `xpad` is `pad`'s copy of the image,
        // `dz` the block's planes and `gw` its rows of taps.
        unsafe {
            if S::WIDE {
                go!((1, 1)(2, 1)(3, 1)(4, 1)(1, 2)(2, 2)(3, 2)(4, 2)(1, 3)(2, 3)(3, 3)(4, 3)(1, 4)(2, 4)(3, 4)(4, 4)(1, 5)(2, 5)(3, 5)(
                    4, 5
                )(1, 6)(2, 6)(3, 6)(1, 7)(2, 7)(3, 7))
            } else {
                go!((1, 1)(2, 1)(3, 1)(4, 1)(1, 2)(2, 2)(3, 2)(4, 2)(1, 3)(2, 3)(3, 3)(1, 4)(2, 4)(3, 4)(1, 5)(2, 5)(1, 6)(2, 6)(1, 7))
            }
        }
    }
    XPAD.set(buf);
}

/// The operands of a block of the direct forward: the geometry, its padded
/// copy, the block's weights (taps at a stride of [`MR`]), biases and
/// output planes.
type Block<'a> = (&'a Im2col, &'a Padded, &'a [f32], &'a [f32], &'a [f32], bool, &'a mut [f32]);

block! {
    /// [`conv_rows`] as a [`Kernel`](super::simd::Kernel).
    ConvRows<'a, const R: usize, const V: usize>(Block<'a>) = conv_rows
}

block! {
    /// [`conv_pool_rows`] as a [`Kernel`](super::simd::Kernel).
    ConvPoolRows<'a, const R: usize, const V: usize>(Block<'a>) = conv_pool_rows
}

/// The operands of a block of the direct weight gradient: the geometry, the
/// padded copy, the block's `dz` planes and rows of taps.
type GradOperands<'a> = (&'a Im2col, &'a Padded, &'a [f32], &'a [f32], &'a mut [f32]);

block! {
    /// [`grad_block`] as a [`Kernel`](super::simd::Kernel).
    GradBlock<'a, const R: usize, const KW: usize>(GradOperands<'a>) = grad_block
}

/// The operands of [`products`]: a tile, the transformed rows, the block's
/// weights, biases, product scratch and output.
type Products<'a> = (&'a Tile, *const f32, *const f32, &'a [f32], *mut f32, *mut f32);

block! {
    /// [`products`] as a [`Kernel`](super::simd::Kernel).
    ProductsBlock<'a, const R: usize, const V: usize>(Products<'a>) = products
}

/// `R` filters (the panel's, from `w`) × `V` vectors per output row, one
/// output row at a time.
///
/// # Safety
/// As [`conv_with`]'s call: the padded copy holds every shifted vector.
#[inline(always)]
unsafe fn conv_rows<S: Simd, const R: usize, const V: usize>(s: S, (d, pad, xpad, w, bias, relu, z): Block<'_>) {
    let l = S::LANES;
    let [kh, kw] = d.kernel;
    let (ow, plane) = (d.ow, d.oh * d.ow);
    let last = s.first(ow - l * (V - 1));
    let (xp, wp, zp) = (xpad.as_ptr(), w.as_ptr(), z.as_mut_ptr());
    let start = starts::<S, R>(s, bias);
    let zero = s.zero();
    for oy in 0..d.oh {
        let mut acc = [[zero; V]; R];
        for (r, acc) in acc.iter_mut().enumerate() {
            *acc = [start[r]; V];
        }
        let mut w = wp;
        for ci in 0..d.c {
            for ky in 0..kh {
                // SAFETY (this block): row oy + ky < hp of channel ci, and
                // kx + l·V ≤ width: inside `xpad`; `w` steps through the
                // panel's taps, MR values each.
                unsafe {
                    let row = xp.add((ci * pad.hp + oy + ky) * pad.width);
                    for kx in 0..kw {
                        let xv = loads::<S, V>(s, row.add(kx), l);
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let b = s.splat(*w.add(r));
                            for v in 0..V {
                                acc[v] = s.fma(b, xv[v], acc[v]);
                            }
                        }
                        w = w.add(MR);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, &a) in acc.iter().enumerate() {
                let a = if relu { s.max(a, zero) } else { a };
                // SAFETY: output row oy of filter r, columns l·v.. of `ow`
                // (the last vector masked): inside `z`.
                unsafe {
                    let out = zp.add(r * plane + oy * ow + l * v);
                    if v + 1 < V {
                        s.store(out, a);
                    } else {
                        s.store_masked(last, out, a);
                    }
                }
            }
        }
    }
}

/// Each filter's bias as a vector (zero without bias).
#[inline(always)]
fn starts<S: Simd, const R: usize>(s: S, bias: &[f32]) -> [S::F32; R] {
    let mut start = [s.zero(); R];
    if !bias.is_empty() {
        for (r, v) in start.iter_mut().enumerate() {
            *v = s.splat(bias[r]);
        }
    }
    start
}

/// `N` vectors from `p`, `step` values apart.
///
/// # Safety
/// The vectors are readable.
#[inline(always)]
unsafe fn loads<S: Simd, const N: usize>(s: S, p: *const f32, step: usize) -> [S::F32; N] {
    let mut v = [s.zero(); N];
    for (i, v) in v.iter_mut().enumerate() {
        // SAFETY: the caller's contract.
        *v = unsafe { s.load(p.add(i * step)) };
    }
    v
}

/// The maximum of `a` and `b`, NaN when either is.
#[inline(always)]
fn max_nan<S: Simd>(s: S, a: S::F32, b: S::F32) -> S::F32 {
    s.select(s.is_nan(a), a, s.max(a, b))
}

/// Two output rows of a filter (`V` vectors each), activated, pooled 2 × 2
/// into the `pw` values of a pooled row at `y`: the rows' maximum, then
/// each column pair's — two vectors of columns give a vector of outputs.
/// ReLU first, as the interpreter (a NaN becomes 0 before the pool).
///
/// # Safety
/// `y` holds `pw` values.
#[inline(always)]
unsafe fn pool_rows<S: Simd, const V: usize>(s: S, top: &[S::F32; V], bottom: &[S::F32; V], relu: bool, y: *mut f32, pw: usize) {
    let l = S::LANES;
    let zero = s.zero();
    // After ReLU no value is NaN: plain maxima.
    // (Loops and branches, not closures: see `simd`'s notes.)
    let mut m = [zero; V];
    for v in 0..V {
        m[v] = if relu { s.max(s.max(top[v], zero), s.max(bottom[v], zero)) } else { max_nan(s, top[v], bottom[v]) };
    }
    for g in 0..V.div_ceil(2) {
        let (lo, hi) = (m[2 * g], if 2 * g + 1 < V { m[2 * g + 1] } else { zero });
        let (even, odd) = s.deinterleave(lo, hi);
        let best = if relu { s.max(even, odd) } else { max_nan(s, even, odd) };
        let n = pw.saturating_sub(l * g).min(l);
        // SAFETY: outputs l·g .. l·g + n of the pooled row.
        unsafe { s.store_masked(s.first(n), y.add(l * g), best) };
    }
}

/// The pooled forward of `R` filters × `V` vectors per output row: two
/// output rows at a time.
///
/// # Safety
/// As [`conv_rows`], `y` the block's pooled planes.
#[inline(always)]
unsafe fn conv_pool_rows<S: Simd, const R: usize, const V: usize>(s: S, (d, pad, xpad, w, bias, relu, y): Block<'_>) {
    let l = S::LANES;
    let [kh, kw] = d.kernel;
    let (ph, pw) = (d.oh / 2, d.ow / 2);
    let (xp, wp, yp) = (xpad.as_ptr(), w.as_ptr(), y.as_mut_ptr());
    let start = starts::<S, R>(s, bias);
    let zero = s.zero();
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
                // SAFETY (this block): rows oy + ky and oy + 1 + ky < hp of
                // channel ci, shifts kx + l·V ≤ width: inside `xpad`; `w`
                // steps through the panel's taps, MR values each.
                unsafe {
                    let row = xp.add((ci * pad.hp + oy + ky) * pad.width);
                    let next = row.add(pad.width);
                    for kx in 0..kw {
                        let (x0, x1) = (loads::<S, V>(s, row.add(kx), l), loads::<S, V>(s, next.add(kx), l));
                        for r in 0..R {
                            let b = s.splat(*w.add(r));
                            for v in 0..V {
                                top[r][v] = s.fma(b, x0[v], top[r][v]);
                                bottom[r][v] = s.fma(b, x1[v], bottom[r][v]);
                            }
                        }
                        w = w.add(MR);
                    }
                }
            }
        }
        for r in 0..R {
            // SAFETY: pooled row py of filter r.
            unsafe { pool_rows(s, &top[r], &bottom[r], relu, yp.add((r * ph + py) * pw), pw) };
        }
    }
}

/// [`conv_with`] by Winograd down the columns: for each tile of four output
/// rows ([`column_tiles`]), its `c × 8` transformed rows `Bᵀ d` into `t`
/// (`row` values each), then each block of filters' products and outputs
/// ([`products`]).
///
/// # Safety
/// `x` is the image (`c × h × w`; the padded rows' transforms are `width`
/// = `Padded::width` wide), `u` `filters` × `c·40` values as
/// `pack_forward` packs them, `bias` none or `filters`, `t` `c × 8 × row`
/// values (`row` ≥ `width`, a multiple of the lanes), `m` `8 × MR ×
/// lanes·V`, `out` the filters' planes.
#[allow(clippy::too_many_arguments)] // a kernel's operands
#[inline(always)]
unsafe fn columns<S: Simd>(
    s: S,
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
    let per = per_filter(d);
    let vectors = d.ow.div_ceil(S::LANES);
    let block = Blocks::forward(S::WIDE, vectors);
    let b = Tile { c: d.c, row, relu, pool, oh: d.oh, ow: d.ow, s: 0, skip: 0, stride: 0 };
    for (s0, skip, _) in column_tiles(d.oh, pool, false) {
        // SAFETY: `x` holds the image; `t` c × 8 rows of `row` ≥ width values.
        unsafe { columns_transform::<S, ALPHA>(s, x, d.c, [d.h, d.w], d.pad, width, s0, row, t) };
        for f0 in (0..filters).step_by(MR) {
            let r = MR.min(filters - f0);
            let plane = if pool { (d.oh / 2) * (d.ow / 2) } else { d.oh * d.ow };
            for r0 in (0..r).step_by(block) {
                let n = block.min(r - r0);
                let b = Tile { s: s0, skip, stride: r, ..b };
                let bias = if bias.is_empty() { &[][..] } else { &bias[f0 + r0..f0 + r0 + n] };
                // SAFETY: the block's weights (from filter r0 of the panel at
                // f0, `r` apart) and planes, and the scratch, as above.
                unsafe {
                    let (u, out) = (u.as_ptr().add(f0 * per + r0), out.as_mut_ptr().add((f0 + r0) * plane));
                    let args = (&b, t.as_ptr(), u, bias, m.as_mut_ptr(), out);
                    macro_rules! go {
                        ($(($r:literal, $v:literal))*) => {
                            match (n, vectors) {
                                $(($r, $v) => s.call(ProductsBlock::<$r, $v>(args)),)*
                                _ => unreachable!("blocks of {n} filters × {vectors} vectors"),
                            }
                        };
                    }
                    // (Only this level's blockings are instantiated.)
                    if S::WIDE {
                        go!((1, 1)(2, 1)(3, 1)(4, 1)(5, 1)(6, 1)(7, 1)(8, 1)(1, 2)(2, 2)(3, 2)(4, 2)(5, 2)(6, 2)(7, 2)(8, 2)(1, 3)(2, 3)(
                            3, 3
                        )(4, 3)(5, 3)(6, 3)(7, 3)(8, 3))
                    } else {
                        go!((1, 1)(2, 1)(3, 1)(4, 1)(5, 1)(6, 1)(7, 1)(8, 1)(1, 2)(2, 2)(3, 2)(4, 2)(5, 2)(6, 2)(1, 3)(2, 3)(3, 3)(1, 4)(
                            2, 4
                        )(1, 5)(1, 6))
                    }
                }
            }
        }
    }
}

/// A tile of [`columns`]: its first output row `s`, of which the first
/// `skip` rows are not stored; `stride` filters between a tap's weights
/// (the panel's live rows, as `pack_forward` packs them).
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
    stride: usize,
}

/// For each point ξ, `R × V` accumulators `Σ_{ci, dx} U[ξ][ci][dx][r] ·
/// T[ci][ξ][l·v + dx ..]` — `V` shifted vectors of the transformed row
/// loaded once for the block's `R` filters (the bias enters at ξ = 1, the
/// point 1, whose output weights `Aᵀ[·][1]` are all 1) — into `m`; then
/// `Aᵀ` down each filter's columns, activated, stored or pooled.
///
/// # Safety
/// As [`columns`], for the block's `R` filters (`u`, `out` at their first;
/// `bias` none or `R`) and `V` vectors a row.
#[allow(clippy::needless_range_loop)] // constant indices keep the accumulators in registers
#[inline(always)]
unsafe fn products<S: Simd, const R: usize, const V: usize>(s: S, (b, t, u, bias, m, out): Products<'_>) {
    let l = S::LANES;
    let zero = s.zero();
    for xi in 0..ALPHA {
        let mut acc = [[zero; V]; R];
        if xi == 1 && !bias.is_empty() {
            for r in 0..R {
                acc[r] = [s.splat(bias[r]); V];
            }
        }
        for ci in 0..b.c {
            // SAFETY (this block): the transformed row (ci, ξ), read at
            // shifts dx + l·V ≤ l·V + 4 ≤ row; the weights of (ξ, ci).
            unsafe {
                let line = t.add((ci * ALPHA + xi) * b.row);
                let w = u.add((xi * b.c + ci) * KERNEL * b.stride);
                for dx in 0..KERNEL {
                    let tv = loads::<S, V>(s, line.add(dx), l);
                    for r in 0..R {
                        let wv = s.splat(*w.add(dx * b.stride + r));
                        for v in 0..V {
                            acc[r][v] = s.fma(wv, tv[v], acc[r][v]);
                        }
                    }
                }
            }
        }
        for r in 0..R {
            for v in 0..V {
                // SAFETY: `m` holds 8 × R × V vectors.
                unsafe { s.store(m.add(((xi * R + r) * V + v) * l), acc[r][v]) };
            }
        }
    }
    let (ow, last) = (b.ow, s.first(b.ow - l * (V - 1)));
    let (ph, pw) = (b.oh / 2, b.ow / 2);
    for r in 0..R {
        let mut rows = [[zero; V]; TILE];
        for v in 0..V {
            // SAFETY: as above.
            let column = unsafe { loads::<S, ALPHA>(s, m.add((r * V + v) * l), R * V * l) };
            for (i, y) in a_t(s, &column).into_iter().enumerate() {
                rows[i][v] = y;
            }
        }
        if b.pool {
            for p in b.skip / 2..TILE / 2 {
                // SAFETY: pooled row s/2 + p < ph of filter r.
                unsafe { pool_rows(s, &rows[2 * p], &rows[2 * p + 1], b.relu, out.add((r * ph + b.s / 2 + p) * pw), pw) };
            }
            continue;
        }
        for i in b.skip..TILE {
            for v in 0..V {
                let y = if b.relu { s.max(rows[i][v], zero) } else { rows[i][v] };
                // SAFETY: output row s + i < oh of filter r, columns l·v..
                // of `ow` (the last vector masked).
                unsafe {
                    let at = out.add((r * b.oh + b.s + i) * ow + l * v);
                    if v + 1 < V {
                        s.store(at, y);
                    } else {
                        s.store_masked(last, at, y);
                    }
                }
            }
        }
    }
}

/// For one input row of taps `(ci, ky)`, the `R × KW` sums over the output
/// rows: each output row's `dz` of the `R` filters is loaded once and
/// multiplied by the input row at each of the `KW` shifts (`R + KW` loads
/// for `R·KW` multiply-adds), each sum reduced across lanes once per image.
///
/// # Safety
/// `xpad` is `pad`'s copy of the image, `dz` the block's `R` planes and
/// `gw` its rows of taps.
#[inline(always)]
unsafe fn grad_block<S: Simd, const R: usize, const KW: usize>(s: S, (d, pad, xpad, dz, gw): GradOperands<'_>) {
    let l = S::LANES;
    let kh = d.kernel[0];
    let (ow, plane, taps) = (d.ow, d.oh * d.ow, d.c * kh * KW);
    let vectors = ow.div_ceil(l);
    let (xp, dp) = (xpad.as_ptr(), dz.as_ptr());
    for ci in 0..d.c {
        for ky in 0..kh {
            let mut acc = [[s.zero(); KW]; R];
            for oy in 0..d.oh {
                // SAFETY (this block): input row oy + ky < hp of channel ci,
                // shifts kx + l·v + l ≤ width: inside `xpad`; row oy of each
                // filter's `dz`, lanes past `ow` masked (they would be the
                // next row's, and inputs outside the output): inside `dz`.
                // Masked lanes are zero in both.
                unsafe {
                    let (row, grad) = (xp.add((ci * pad.hp + oy + ky) * pad.width), dp.add(oy * ow));
                    for v in 0..vectors {
                        // Only the last vector is partial.
                        let (full, m) = (v + 1 < vectors || ow % l == 0, s.first(ow - l * v));
                        let mut g = [s.zero(); R];
                        for (r, g) in g.iter_mut().enumerate() {
                            let p = grad.add(r * plane + l * v);
                            *g = if full { s.load(p) } else { s.load_masked(m, p) };
                        }
                        for kx in 0..KW {
                            let p = row.add(kx + l * v);
                            let xv = if full { s.load(p) } else { s.load_masked(m, p) };
                            for (acc, &g) in acc.iter_mut().zip(&g) {
                                acc[kx] = s.fma(xv, g, acc[kx]);
                            }
                        }
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                for (kx, &a) in acc.iter().enumerate() {
                    gw[r * taps + (ci * kh + ky) * KW + kx] += s.reduce_add(a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::testing::{AtEveryLevel, for_each_simd};
    use crate::rng::Rng;

    fn geometry(c: usize, h: usize, w: usize, [kh, kw]: [usize; 2], p: usize) -> Im2col {
        Im2col { c, h, w, kernel: [kh, kw], stride: [1, 1], pad: [p, p], oh: h + 2 * p - kh + 1, ow: w + 2 * p - kw + 1 }
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
    /// 3 × 3, 5 × 5 and 7 × 7 and kernels one wide or one high, every
    /// panel height (filters 1..=8 and past a panel) and so every block of
    /// the weight gradient. The 5 × 5 ones run by Winograd down the
    /// columns: rows a multiple of its tiles (4) or not (the last tile
    /// overlapping by 2, and for 13 and 6 rows, unpooled, by 3 and 2
    /// more), one to three channels.
    const SHAPES: [(usize, usize, usize, [usize; 2], usize, usize); 13] = [
        (1, 28, 28, [5, 5], 2, 6),
        (1, 28, 28, [5, 5], 2, 32),
        (3, 14, 16, [3, 3], 1, 5),
        (2, 20, 18, [3, 3], 0, 11),
        (1, 36, 40, [5, 5], 2, 3),
        (1, 14, 14, [3, 3], 0, 8),
        (3, 9, 48, [3, 3], 1, 17),
        (2, 20, 30, [7, 7], 3, 7),
        (3, 17, 20, [5, 5], 0, 9),
        (2, 10, 46, [5, 5], 1, 4),
        (1, 8, 16, [5, 5], 1, 13),
        (2, 12, 24, [3, 1], 0, 9),
        (1, 14, 27, [1, 4], 0, 5),
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

    struct Definitions;

    impl AtEveryLevel for Definitions {
        fn at<S: Simd>(&mut self, s: S) {
            direct_conv_and_weight_gradient_match_their_definitions(s);
            a_nan_input_is_the_maximum_of_its_windows(s);
        }
    }

    #[test]
    fn kernels_match_their_definitions_at_every_level() {
        for_each_simd(&mut Definitions);
    }

    fn direct_conv_and_weight_gradient_match_their_definitions<S: Simd>(s: S) {
        let v = Vectors::of::<S>();
        let mut rng = Rng::new(3);
        let mut ran = 0;
        for &(c, h, w, k, p, filters) in &SHAPES {
            let d = geometry(c, h, w, k, p);
            let [kh, kw] = k;
            if !applies_for(&d, v) {
                // Rows of more than six vectors (the baseline's lanes).
                assert!(!v.wide && d.ow.div_ceil(v.lanes) > 6, "{}: {d:?}", S::NAME);
                continue;
            }
            ran += 1;
            let taps = c * kh * kw;
            let (x, wt, bias, dz) = (
                values(&mut rng, c * h * w),
                values(&mut rng, filters * taps),
                values(&mut rng, filters),
                values(&mut rng, filters * d.oh * d.ow),
            );
            let packed = forward_packed(&d, &wt, filters);
            for relu in [false, true] {
                let mut z = vec![f32::NAN; filters * d.oh * d.ow];
                conv_with(s, &d, &x, &packed, &bias, relu, false, &mut z);
                for f in 0..filters {
                    for oy in 0..d.oh {
                        for ox in 0..d.ow {
                            let mut want = f64::from(bias[f]);
                            for ci in 0..c {
                                for ky in 0..kh {
                                    for kx in 0..kw {
                                        want += f64::from(wt[f * taps + (ci * kh + ky) * kw + kx]) * at(&d, &x, ci, oy + ky, ox + kx);
                                    }
                                }
                            }
                            let want = if relu { want.max(0.0) } else { want };
                            let got = z[(f * d.oh + oy) * d.ow + ox];
                            assert!(
                                (f64::from(got) - want).abs() <= 1e-5 * (1.0 + want.abs()),
                                "{}: {d:?} f{f} ({oy},{ox}): {got} vs {want}",
                                S::NAME
                            );
                        }
                    }
                }
            }
            // Pooled in registers: the 2×2 maxima of the conv's plane.
            let (ph, pw) = (d.oh / 2, d.ow / 2);
            for relu in [false, true] {
                let mut z = vec![0.0; filters * d.oh * d.ow];
                conv_with(s, &d, &x, &packed, &bias, relu, false, &mut z);
                let mut y = vec![f32::NAN; filters * ph * pw];
                conv_with(s, &d, &x, &packed, &bias, relu, true, &mut y);
                for f in 0..filters {
                    for (py, px) in (0..ph).flat_map(|py| (0..pw).map(move |px| (py, px))) {
                        let at = |dy: usize, dx: usize| z[(f * d.oh + 2 * py + dy) * d.ow + 2 * px + dx];
                        let want = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
                        assert_eq!(y[(f * ph + py) * pw + px], want, "{}: {d:?} pooled f{f} ({py},{px})", S::NAME);
                    }
                }
            }
            // The gradient adds to what `gw` holds.
            let mut gw = vec![1.0f32; filters * taps];
            weight_grad_with(s, &d, &x, &dz, filters, &mut gw);
            for f in 0..filters {
                for ci in 0..c {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let mut want = 1.0f64;
                            for oy in 0..d.oh {
                                for ox in 0..d.ow {
                                    want += f64::from(dz[(f * d.oh + oy) * d.ow + ox]) * at(&d, &x, ci, oy + ky, ox + kx);
                                }
                            }
                            let got = gw[f * taps + (ci * kh + ky) * kw + kx];
                            assert!(
                                (f64::from(got) - want).abs() <= 1e-4 * (1.0 + want.abs()),
                                "{}: {d:?} gw[{f}][{ci},{ky},{kx}]: {got} vs {want}",
                                S::NAME
                            );
                        }
                    }
                }
            }
        }
        // All of them at 8 and 16 lanes; at 4, the rows of up to 24.
        let want = if v.lanes >= 8 { SHAPES.len() } else { 7 };
        assert_eq!(ran, want, "{}: {ran} of the shapes ran direct", S::NAME);
    }

    /// A NaN input makes every pooled output whose windows read it NaN —
    /// only those when the conv is direct; with Winograd down the columns
    /// maybe also others in those columns of its tiles (the transform
    /// mixes their eight rows), and nothing further.
    fn a_nan_input_is_the_maximum_of_its_windows<S: Simd>(s: S) {
        for k in [3, 5] {
            let d = geometry(1, 28, 28, [k, k], k / 2);
            if !applies_for(&d, Vectors::of::<S>()) {
                continue;
            }
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
                conv_with(s, &d, &x, &packed, &[], relu, true, &mut y);
                for f in 0..6 {
                    for (py, px) in (0..14).flat_map(|py| (0..14).map(move |px| (py, px))) {
                        // Conv outputs (oy, ox) with |oy − 13| ≤ k/2, |ox − 17| ≤ k/2 read the NaN.
                        let reads = |o: usize, c: usize| (2 * o..2 * o + 2).any(|v: usize| v.abs_diff(c) <= k / 2);
                        let (must, may) = (reads(py, 13), columns_winograd(&d) && tiles.contains(&(2 * py / 4 * 4)));
                        let got = y[(f * 14 + py) * 14 + px].is_nan();
                        let want = !relu && (must || (may && got)) && reads(px, 17);
                        assert_eq!(got, want, "{}: k {k} relu {relu}: f{f} ({py},{px})", S::NAME);
                    }
                }
            }
        }
    }

    #[test]
    fn applies_to_wide_rows_over_few_channels() {
        use crate::cpu::CpuLevel;
        for level in CpuLevel::ALL {
            let v = Vectors::at(level);
            let applies = |d: &Im2col| applies_for(d, v);
            // Rows of 28 fill 28 of 32 lanes at 16 and at 8, not at 4 (7 vectors).
            assert_eq!(applies(&geometry(1, 28, 28, [5, 5], 2)), level != CpuLevel::Baseline, "{level:?}");
            // 6 channels; 1 × 1; stride 2; rows of 56.
            assert!(!applies(&geometry(6, 14, 14, [5, 5], 0)));
            assert!(!applies(&geometry(4, 28, 28, [5, 5], 2)));
            assert!(!applies(&geometry(1, 28, 28, [1, 1], 0)));
            assert!(!applies(&Im2col { stride: [2, 2], oh: 14, ow: 14, ..geometry(1, 28, 28, [2, 2], 0) }));
            assert!(!applies(&geometry(1, 60, 60, [5, 5], 2)));
        }
        // 10 outputs a row fill 10 of 16 lanes: not at AVX-512; at AVX2 10 of 16, neither.
        assert!(!applies_for(&geometry(6, 10, 10, [5, 5], 2), Vectors::at(CpuLevel::Avx512)));
        // 20 fill 20 of 32 at 16 lanes, 20 of 24 at 8.
        assert!(!applies_for(&geometry(1, 20, 20, [5, 5], 2), Vectors::at(CpuLevel::Avx512)));
        assert!(applies_for(&geometry(1, 20, 20, [5, 5], 2), Vectors::at(CpuLevel::Avx2)));
    }
}

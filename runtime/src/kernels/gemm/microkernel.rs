//! The packed GEMM's microkernels, written once over [`Simd`]: a tile of
//! `R` rows × `V` vectors of columns in registers, bias and ReLU applied
//! before the store; a ragged right edge of up to eight columns as column
//! accumulators over a panel's eight rows.
//!
//! The blocking follows the register count. AVX-512 (32 registers): tiles
//! of a whole panel's 8 rows × 2 vectors (16 accumulators, 2 loaded
//! vectors, a broadcast: 19). AVX2 (16 registers): 4 rows × 3 vectors,
//! each panel's two halves in turn (12 + 3 + 1 = 16; 8 × 1 would broadcast
//! once per FMA, 4 × 2 load two vectors for every eight).

use super::Start;
use super::pack::{MR, Panels, Rows};
use crate::kernels::simd::{Simd, block};

/// Rows and vectors of a full tile at this level.
const fn tile<S: Simd>() -> (usize, usize) {
    if S::WIDE { (MR, 2) } else { (MR / 2, 3) }
}

/// `c = act(start + a·b)` over columns `0..n`: every panel of `a`, its
/// columns by tiles of whole vectors, then the tail (see [`step_width`]).
///
/// # Safety
/// The views are in bounds: `b` holds `a.depth` rows of `n` values `ldb`
/// apart, `c` `a.rows` rows of `n` values `ldc` apart (the caller's asserts).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm<S: Simd>(
    s: S,
    a: Panels<'_>,
    b: &[f32],
    ldb: usize,
    n: usize,
    start: Start<'_>,
    relu: bool,
    c: &mut [f32],
    ldc: usize,
) {
    let k = Kernel { a, b: b.as_ptr(), ldb, start, relu, c: c.as_mut_ptr(), ldc };
    for p in 0..a.rows.div_ceil(MR) {
        let mut j = 0;
        while j < n {
            let (w, columns) = step_width::<S>(n - j);
            // SAFETY: forwarded from this function's contract.
            unsafe {
                if a.lda == 0 {
                    panel_step::<S, false>(s, &k, p, j, w, columns);
                } else {
                    panel_step::<S, true>(s, &k, p, j, w, columns);
                }
            }
            j += w;
        }
    }
}

/// The next step's width for `rest` columns left, and whether it runs as
/// column accumulators: a full tile; or for a tail shorter than a tile,
/// whole vectors with a tail of 1–8 columns taken next as columns (at
/// AVX-512, 17–24 left: 16 + 8 columns — a Winograd GEMM's 49 tiles are
/// 32 + 16 + 1 — not a second zmm per row with 1–8 of its 16 lanes used),
/// or else one masked tile.
#[inline(always)]
fn step_width<S: Simd>(rest: usize) -> (usize, bool) {
    let (_, v) = tile::<S>();
    let l = S::LANES;
    if rest >= v * l {
        return (v * l, false);
    }
    let tail = rest % l;
    match (rest / l, tail) {
        (0, 1..=8) => (rest, true),
        (whole, 1..=8) => (whole * l, false),
        _ => (rest, false),
    }
}

/// The operands of one GEMM.
struct Kernel<'a> {
    a: Panels<'a>,
    b: *const f32,
    ldb: usize,
    start: Start<'a>,
    relu: bool,
    c: *mut f32,
    ldc: usize,
}

/// Rows `p·MR..` × columns `j..j + w` by the tile or the column kernel.
///
/// # Safety
/// As for [`gemm`].
#[inline(always)]
unsafe fn panel_step<S: Simd, const IN_PLACE: bool>(s: S, k: &Kernel<'_>, p: usize, j: usize, w: usize, columns: bool) {
    let live = MR.min(k.a.rows - p * MR);
    let panel = Rows::<IN_PLACE>::of(&k.a, p);
    let (rows, _) = tile::<S>();
    let vectors = w.div_ceil(S::LANES);
    // SAFETY (all below): forwarded from this function's contract.
    unsafe {
        if columns {
            return by_columns(s.oct(), k, &panel, p, j, w);
        }
        // Blocks of `rows` rows, then of 4, 2, 1 for a partial panel
        // (49 Winograd tiles = 6 panels + 1 row, 10 units = 8 + 2): not
        // FMAs for all eight rows.
        let mut r0 = 0;
        while r0 < live {
            let block = [rows, 4, 2, 1].into_iter().find(|&r| r <= live - r0 && r <= rows).expect("1 row fits");
            macro_rules! go {
                ($(($r:literal, $v:literal))*) => {
                    match (block, vectors) {
                        $(($r, $v) => s.call(TileRows::<$r, $v, IN_PLACE>((k, &panel, [p * MR + r0, r0, j, w]))),)*
                        _ => unreachable!("a tile of {block} rows × {vectors} vectors"),
                    }
                };
            }
            // Only this level's blocking is instantiated (see `Simd::WIDE`).
            if S::WIDE {
                go!((8, 1)(8, 2)(4, 1)(4, 2)(2, 1)(2, 2)(1, 1)(1, 2));
            } else {
                go!((4, 1)(4, 2)(4, 3)(2, 1)(2, 2)(2, 3)(1, 1)(1, 2)(1, 3));
            }
            r0 += block;
        }
    }
}

/// `R` rows from `first` (row `r0` of the panel) × columns `j..j + w`
/// (`w ≤ V` vectors, the last one masked) in `R × V` accumulators.
///
/// # Safety
/// As for [`gemm`]; rows `r0..r0 + R` of the panel are real.
#[inline(always)]
unsafe fn tile_rows<S: Simd, const R: usize, const V: usize, const IN_PLACE: bool>(
    s: S,
    (k, panel, [first, r0, j, w]): (&Kernel<'_>, &Rows<IN_PLACE>, [usize; 4]),
) {
    let l = S::LANES;
    let (mut masks, mut live) = ([s.first(0); V], [false; V]);
    for v in 0..V {
        (masks[v], live[v]) = (s.first(w.saturating_sub(l * v)), w > l * v);
    }
    let mut acc = [[s.zero(); V]; R];
    for (r, vs) in acc.iter_mut().enumerate() {
        match k.start.bias(first + r) {
            Some(x) => *vs = [s.splat(x); V],
            None => {
                for (v, x) in vs.iter_mut().enumerate() {
                    if live[v] {
                        // SAFETY: row first + r, columns j..j+w of c are in
                        // bounds; masked-off lanes are not read.
                        *x = unsafe { s.load_masked(masks[v], k.c.wrapping_add((first + r) * k.ldc + j + l * v)) };
                    }
                }
            }
        }
    }
    for d in 0..k.a.depth {
        let mut bv = [s.zero(); V];
        for (v, x) in bv.iter_mut().enumerate() {
            if live[v] {
                // SAFETY: the unmasked lanes, row d, columns j..j+w of b,
                // are in bounds; masked-off lanes are not accessed.
                *x = unsafe { s.load_masked(masks[v], k.b.wrapping_add(d * k.ldb + j + l * v)) };
            }
        }
        for (r, vs) in acc.iter_mut().enumerate() {
            // SAFETY: r0 + r < MR, d < depth.
            let av = s.splat(unsafe { panel.at(r0 + r, d) });
            for (acc, &x) in vs.iter_mut().zip(&bv) {
                *acc = s.fma(av, x, *acc);
            }
        }
    }
    for (r, vs) in acc.iter().enumerate() {
        for (v, &x) in vs.iter().enumerate() {
            if !live[v] {
                continue;
            }
            let x = if k.relu { s.max(x, s.zero()) } else { x };
            // SAFETY: row first + r, columns j..j+w of c are in bounds;
            // masked-off lanes are not written.
            unsafe { s.store_masked(masks[v], k.c.wrapping_add((first + r) * k.ldc + j + l * v), x) };
        }
    }
}

block! {
    /// [`tile_rows`] as a [`Kernel`](crate::kernels::simd::Kernel): rows
    /// `first` (`r0` of the panel) on × `w` columns from `j`.
    TileRows<'a, const R: usize, const V: usize, const IN_PLACE: bool>((&'a Kernel<'a>, &'a Rows<IN_PLACE>, [usize; 4])) = tile_rows
}

block! {
    /// [`columns`] as a [`Kernel`](crate::kernels::simd::Kernel).
    Columns<'a, const W: usize, const IN_PLACE: bool>((&'a Kernel<'a>, &'a Rows<IN_PLACE>, usize, usize)) = columns
}

/// Rows `p·MR..` (one panel) × the last `w ≤ 8` columns from `j`: a ragged
/// right edge (a 14 × 14 plane has 196 = 12·16 + 4 columns). A row-wise
/// tile would spend a full vector FMA per row on a few lanes; here each
/// column is one eight-lane accumulator over the panel's 8 rows (one load
/// per depth step, the `b` values broadcast).
///
/// # Safety
/// As for [`gemm`].
#[inline(always)]
unsafe fn by_columns<O: Simd, const IN_PLACE: bool>(o: O, k: &Kernel<'_>, panel: &Rows<IN_PLACE>, p: usize, j: usize, w: usize) {
    // SAFETY: forwarded.
    unsafe {
        match w {
            8 => o.call(Columns::<8, IN_PLACE>((k, panel, p, j))),
            7 => o.call(Columns::<7, IN_PLACE>((k, panel, p, j))),
            6 => o.call(Columns::<6, IN_PLACE>((k, panel, p, j))),
            5 => o.call(Columns::<5, IN_PLACE>((k, panel, p, j))),
            4 => o.call(Columns::<4, IN_PLACE>((k, panel, p, j))),
            3 => o.call(Columns::<3, IN_PLACE>((k, panel, p, j))),
            2 => o.call(Columns::<2, IN_PLACE>((k, panel, p, j))),
            _ => o.call(Columns::<1, IN_PLACE>((k, panel, p, j))),
        }
    }
}

/// [`by_columns`] for `W` columns: with 32 registers (or few columns), two
/// sets of accumulators for even and odd depths to hide the FMA latency;
/// with 16 and more than 6 columns, one set (the columns' chains are
/// already enough, and two would spill).
///
/// # Safety
/// As for [`gemm`].
#[inline(always)]
unsafe fn columns<O: Simd, const W: usize, const IN_PLACE: bool>(o: O, (k, panel, p, j): (&Kernel<'_>, &Rows<IN_PLACE>, usize, usize)) {
    const { assert!(MR == 8 && W <= 8) };
    debug_assert_eq!(O::LANES, MR);
    let rows = MR.min(k.a.rows - p * MR);
    let two = O::WIDE || W <= 6;
    let mut acc = [[o.zero(); W]; 2];
    for (col, x) in acc[0].iter_mut().enumerate() {
        let mut init = [0.0f32; MR];
        for (r, v) in init.iter_mut().enumerate().take(rows) {
            // SAFETY: row p·MR + r, column j + col of c is in bounds.
            *v = k.start.bias(p * MR + r).unwrap_or_else(|| unsafe { *k.c.add((p * MR + r) * k.ldc + j + col) });
        }
        // SAFETY: `init` holds 8 values.
        *x = unsafe { o.load(init.as_ptr()) };
    }
    let depth = k.a.depth;
    let mut d = 0;
    // SAFETY (the steps): the panel holds depth × MR values; columns
    // j..j+W of rows d < depth of b are in bounds (the caller's assert).
    if two {
        // Even and odd depths into their own accumulators.
        while d + 2 <= depth {
            let [even, odd] = &mut acc;
            unsafe {
                column_step(o, even, k, panel, j, d);
                column_step(o, odd, k, panel, j, d + 1);
            }
            d += 2;
        }
    }
    while d < depth {
        unsafe { column_step(o, &mut acc[0], k, panel, j, d) };
        d += 1;
    }
    for (col, (&even, &odd)) in acc[0].iter().zip(&acc[1]).enumerate() {
        let mut x = if two { o.add(even, odd) } else { even };
        if k.relu {
            x = o.max(x, o.zero());
        }
        let mut out = [0.0f32; MR];
        // SAFETY: `out` holds 8 values.
        unsafe { o.store(out.as_mut_ptr(), x) };
        for (r, v) in out.iter().enumerate().take(rows) {
            // SAFETY: row p·MR + r, column j + col of c is in bounds.
            unsafe { *k.c.add((p * MR + r) * k.ldc + j + col) = *v };
        }
    }
}

/// Depth `d` of [`columns`]: the panel's eight rows times each column's `b`.
///
/// # Safety
/// `d` < the depth; columns `j..j + W` of row `d` of `b` are in bounds.
#[inline(always)]
unsafe fn column_step<O: Simd, const W: usize, const IN_PLACE: bool>(
    o: O,
    acc: &mut [O::F32; W],
    k: &Kernel<'_>,
    panel: &Rows<IN_PLACE>,
    j: usize,
    d: usize,
) {
    // SAFETY: the caller's contract.
    let av = unsafe { panel.step(o, d) };
    for (col, x) in acc.iter_mut().enumerate() {
        // SAFETY: the caller's contract.
        *x = o.fma(av, o.splat(unsafe { *k.b.add(d * k.ldb + j + col) }), *x);
    }
}

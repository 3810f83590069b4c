//! Dense layers of a few images: each weight read once and multiplied into
//! every image. Over the weight packed 16 rows to a block ([`super::pack_gemv`]):
//! one sequential stream, each input broadcast, no lane sums; over the
//! row-major weight in place: dot products, reduced across lanes.

use crate::kernels::simd::{Simd, block};

/// Rows of a block of [`super::pack_gemv`]'s layout (whatever the level:
/// one AVX-512 vector, two AVX2 ones).
pub(super) const BLOCK: usize = 16;

/// `y[n·rows + r] += w[r] · x[n]` for `N` images over the packed blocks.
///
/// # Safety
/// `wp` holds `rows.div_ceil(16) × depth` blocks of 16 as `pack_gemv`
/// stores them, `x` `N` images of `depth` values, `y` `N × rows`.
#[inline(always)]
pub(super) unsafe fn packed<S: Simd, const N: usize>(s: S, wp: &[f32], rows: usize, depth: usize, x: &[f32], y: &mut [f32]) {
    // Blocks at a time and sets of accumulators (even and odd depths):
    // up to 16 accumulators with 32 registers, 8 with 16.
    let per_block = BLOCK / S::LANES;
    let budget = if S::WIDE { 16 } else { 8 };
    let blocks = rows.div_ceil(BLOCK);
    let mut b = 0;
    while b < blocks {
        let two = blocks - b >= 2 && N * 2 * per_block <= budget;
        let count = if two { 2 } else { 1 };
        let even_odd = N * count * per_block * 2 <= budget;
        let args = (wp, depth, x, &mut *y, rows, b);
        macro_rules! go {
            ($vb:literal) => {
                match (count, even_odd) {
                    (2, true) => s.call(BlocksOf::<N, 2, $vb, true>(args)),
                    (2, false) => s.call(BlocksOf::<N, 2, $vb, false>(args)),
                    (_, true) => s.call(BlocksOf::<N, 1, $vb, true>(args)),
                    (_, false) => s.call(BlocksOf::<N, 1, $vb, false>(args)),
                }
            };
        }
        // SAFETY: forwarded; the blocks b..b + count exist. (Only this
        // level's vectors per block are instantiated.)
        unsafe {
            match S::LANES {
                16 => go!(1),
                8 => go!(2),
                _ => go!(4),
            }
        }
        b += count;
    }
}

block! {
    /// [`blocks_of`] as a [`Kernel`](crate::kernels::simd::Kernel): the
    /// packed weights, the depth, the images, the outputs, the rows and
    /// the first block.
    BlocksOf<'a, const N: usize, const B: usize, const VB: usize, const EVEN_ODD: bool>((&'a [f32], usize, &'a [f32], &'a mut [f32], usize, usize)) = blocks_of
}

/// `B` consecutive blocks from block `b`, each `VB` vectors, against `N`
/// images; with `EVEN_ODD` two accumulators per vector (even and odd
/// depths) to hide the FMA latency.
///
/// # Safety
/// As [`packed`], for the blocks `b..b + B`.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // constant indices keep the accumulators in registers
unsafe fn blocks_of<S: Simd, const N: usize, const B: usize, const VB: usize, const EVEN_ODD: bool>(
    s: S,
    (wp, depth, x, y, rows, b): (&[f32], usize, &[f32], &mut [f32], usize, usize),
) {
    let l = S::LANES;
    let base = wp.as_ptr().wrapping_add(b * depth * BLOCK);
    let xp = x.as_ptr();
    let zero = s.zero();
    let (mut even, mut odd) = ([[[zero; VB]; B]; N], [[[zero; VB]; B]; N]);
    let mut k = 0;
    // SAFETY (the steps): depths k < depth of every block and image.
    if EVEN_ODD {
        // Even and odd depths into their own accumulators.
        while k + 2 <= depth {
            unsafe {
                gemv_step::<S, N, B, VB>(s, &mut even, base, xp, depth, k);
                gemv_step::<S, N, B, VB>(s, &mut odd, base, xp, depth, k + 1);
            }
            k += 2;
        }
    }
    while k < depth {
        unsafe { gemv_step::<S, N, B, VB>(s, &mut even, base, xp, depth, k) };
        k += 1;
    }
    for n in 0..N {
        for j in 0..B {
            for v in 0..VB {
                let r0 = (b + j) * BLOCK + v * l;
                if r0 >= rows {
                    continue;
                }
                let sum = if EVEN_ODD { s.add(even[n][j][v], odd[n][j][v]) } else { even[n][j][v] };
                let m = s.first(rows - r0);
                // SAFETY: rows r0.. < rows of image n (masked).
                unsafe {
                    let at = y.as_mut_ptr().add(n * rows + r0);
                    s.store_masked(m, at, s.add(s.load_masked(m, at), sum));
                }
            }
        }
    }
}

/// Depth `k` of [`blocks_of`]: each image's input at `k` times the blocks'
/// weights at `k`.
///
/// # Safety
/// `k` < the depth of the blocks at `base` and of the `N` images at `xp`.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // constant indices keep the accumulators in registers
unsafe fn gemv_step<S: Simd, const N: usize, const B: usize, const VB: usize>(
    s: S,
    acc: &mut [[[S::F32; VB]; B]; N],
    base: *const f32,
    xp: *const f32,
    depth: usize,
    k: usize,
) {
    let mut xs = [s.zero(); N];
    for (n, x) in xs.iter_mut().enumerate() {
        // SAFETY: the caller's contract.
        *x = s.splat(unsafe { *xp.add(n * depth + k) });
    }
    for j in 0..B {
        for v in 0..VB {
            // SAFETY: vector v of block j at depth k (the caller's contract).
            let w = unsafe { s.load(base.add((j * depth + k) * BLOCK + v * S::LANES)) };
            for n in 0..N {
                acc[n][j][v] = s.fma(w, xs[n], acc[n][j][v]);
            }
        }
    }
}

/// `y[n·rows + r] += w[r] · x[n]` over the row-major weight: each row's
/// dot product with each image in four accumulators, the tail masked.
///
/// # Safety
/// `w`, `x` and `y` hold `rows × depth`, `images × depth` and `images ×
/// rows` values.
#[inline(always)]
pub(super) unsafe fn rows<S: Simd>(s: S, w: &[f32], rows: usize, depth: usize, x: &[f32], images: usize, y: &mut [f32]) {
    let l = S::LANES;
    for r in 0..rows {
        // SAFETY: row r of w has `depth` values (the caller's contract).
        let wr = unsafe { w.as_ptr().add(r * depth) };
        for n in 0..images {
            // SAFETY: image n of x likewise.
            let xn = unsafe { x.as_ptr().add(n * depth) };
            let mut acc = [s.zero(); 4];
            let mut k = 0;
            while k + 4 * l <= depth {
                for (v, a) in acc.iter_mut().enumerate() {
                    // SAFETY: k + l·v + l ≤ depth.
                    *a = unsafe { s.fma(s.load(wr.add(k + l * v)), s.load(xn.add(k + l * v)), *a) };
                }
                k += 4 * l;
            }
            while k < depth {
                let m = s.first(depth - k);
                // SAFETY: the unmasked lanes k.. < depth are in bounds.
                acc[0] = unsafe { s.fma(s.load_masked(m, wr.add(k)), s.load_masked(m, xn.add(k)), acc[0]) };
                k += l;
            }
            let sum = s.add(s.add(acc[0], acc[1]), s.add(acc[2], acc[3]));
            y[n * rows + r] += s.reduce_add(sum);
        }
    }
}

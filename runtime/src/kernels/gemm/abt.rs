//! `C += A·Bᵀ` with both operands read along the depth in place: blocks
//! of dot products in vector accumulators (4 × 4 with 32 registers, 3 × 3
//! with 16), the last partial vector masked, each reduced across its lanes
//! once at the end.

use crate::kernels::simd::{Simd, block};

/// The side of a block at this level.
const fn block<S: Simd>() -> usize {
    if S::WIDE { 4 } else { 3 }
}

/// See [`super::gemm_abt`].
///
/// # Safety
/// `a` holds `m` rows of `k` values `lda` apart, `b` `n` rows `ldb` apart,
/// `c` `m` rows of `n` values `ldc` apart (the caller's asserts).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn abt<S: Simd>(
    s: S,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    m: usize,
    n: usize,
    k: usize,
    c: &mut [f32],
    ldc: usize,
) {
    let size = block::<S>();
    let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    for i0 in (0..m).step_by(size) {
        for j0 in (0..n).step_by(size) {
            let (a, b, c) = (ap.wrapping_add(i0 * lda), bp.wrapping_add(j0 * ldb), cp.wrapping_add(i0 * ldc + j0));
            let args = (a, lda, b, ldb, k, c, ldc);
            let (mi, nj) = ((m - i0).min(size), (n - j0).min(size));
            macro_rules! go {
                ($(($i:literal, $j:literal))*) => {
                    match (mi, nj) {
                        $(($i, $j) => s.call(Dots::<$i, $j>(args)),)*
                        _ => unreachable!("blocks of up to {size} × {size}"),
                    }
                };
            }
            // SAFETY: the block's rows and columns are within m × n.
            // (Only this level's block sizes are instantiated.)
            unsafe {
                if S::WIDE {
                    go!((4, 4)(4, 3)(4, 2)(4, 1)(3, 4)(3, 3)(3, 2)(3, 1)(2, 4)(2, 3)(2, 2)(2, 1)(1, 4)(1, 3)(1, 2)(1, 1))
                } else {
                    go!((3, 3)(3, 2)(3, 1)(2, 3)(2, 2)(2, 1)(1, 3)(1, 2)(1, 1))
                }
            }
        }
    }
}

/// The operands of [`dots`]: `a` and its row stride, `b` and its, the
/// depth, `c` and its row stride.
type DotsOperands = (*const f32, usize, *const f32, usize, usize, *mut f32, usize);

block! {
    /// [`dots`] as a [`Kernel`](crate::kernels::simd::Kernel).
    Dots<const MI: usize, const NJ: usize>(DotsOperands) = dots
}

/// `MI × NJ` dot products over the depth at once, one accumulator each.
///
/// # Safety
/// Rows `0..MI` of `a`, `0..NJ` of `b` (`k` values each) and the block of
/// `c` are in bounds.
#[inline(always)]
unsafe fn dots<S: Simd, const MI: usize, const NJ: usize>(s: S, (a, lda, b, ldb, k, c, ldc): DotsOperands) {
    let mut acc = [[s.zero(); NJ]; MI];
    let full = k / S::LANES * S::LANES;
    let mut p = 0;
    while p < k {
        // The last partial vector masked (the others read whole).
        let (whole, mask) = (p < full, s.first(k - p));
        let (mut av, mut bv) = ([s.zero(); MI], [s.zero(); NJ]);
        // SAFETY: lanes p..min(p + LANES, k) of each row are in bounds; the
        // masked-off lanes are not accessed.
        unsafe {
            for (i, v) in av.iter_mut().enumerate() {
                let row = a.wrapping_add(i * lda + p);
                *v = if whole { s.load(row) } else { s.load_masked(mask, row) };
            }
            for (j, v) in bv.iter_mut().enumerate() {
                let row = b.wrapping_add(j * ldb + p);
                *v = if whole { s.load(row) } else { s.load_masked(mask, row) };
            }
        }
        for (accs, &x) in acc.iter_mut().zip(&av) {
            for (sum, &y) in accs.iter_mut().zip(&bv) {
                *sum = s.fma(x, y, *sum);
            }
        }
        p += S::LANES;
    }
    for (i, accs) in acc.iter().enumerate() {
        for (j, &sum) in accs.iter().enumerate() {
            // SAFETY: c[i][j] of the block is in bounds.
            unsafe { *c.add(i * ldc + j) += s.reduce_add(sum) };
        }
    }
}

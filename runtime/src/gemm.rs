//! Matrix multiplication for compiled stages: `C = α·A·B + β·C` on slices,
//! bounds checked once per call, computed by `matrixmultiply` (packed
//! panels, register-blocked microkernels for AVX-512, AVX2+FMA or SSE,
//! chosen at run time, so a user's default build flags get the wide ones).
//!
//! Conv stages lower to it per image (im2col): forward `Z = W·cols`,
//! weight gradient `dW += dZ·colsᵀ`, input gradient `dcols = Wᵀ·dZ`; dense
//! stages per batch chunk. Transposes are strides, never copies.

/// Where a `rows × cols` matrix lives in a slice: element `(i, j)` at
/// `i·row_stride + j·col_stride`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl Layout {
    /// A row-major `rows × cols` matrix.
    pub const fn rows(rows: usize, cols: usize) -> Self {
        Self { rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose of a row-major `cols × rows` matrix, read in place.
    pub const fn transposed(rows: usize, cols: usize) -> Self {
        Self { rows, cols, row_stride: 1, col_stride: rows }
    }

    /// Elements the view spans (0 for an empty matrix).
    pub const fn span(self) -> usize {
        if self.rows == 0 || self.cols == 0 { 0 } else { (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1 }
    }
}

/// `c = alpha·a·b + beta·c`. With `beta = 0`, `c` is only written (NaNs in
/// it do not propagate).
///
/// # Panics
/// When the shapes do not chain (`a: m×k`, `b: k×n`, `c: m×n`), a view
/// runs past its slice, or `c`'s layout maps two elements to one place.
/// Compiled stages compute these from constants, so a panic here is a bug
/// in code generation, not a user error.
#[inline]
#[allow(clippy::too_many_arguments)] // BLAS's shape: α, A, B, β, C with their layouts
pub fn gemm(alpha: f32, a: &[f32], la: Layout, b: &[f32], lb: Layout, beta: f32, c: &mut [f32], lc: Layout) {
    assert!(la.cols == lb.rows && lc.rows == la.rows && lc.cols == lb.cols, "gemm shapes: {la:?} · {lb:?} → {lc:?}");
    assert!(la.span() <= a.len() && lb.span() <= b.len() && lc.span() <= c.len(), "gemm view out of bounds");
    let distinct = lc.rows <= 1 || lc.cols <= 1 || lc.row_stride >= lc.cols * lc.col_stride || lc.col_stride >= lc.rows * lc.row_stride;
    assert!(distinct && (lc.rows <= 1 || lc.row_stride > 0) && (lc.cols <= 1 || lc.col_stride > 0), "gemm output aliases itself");
    let (m, k, n) = (la.rows, la.cols, lb.cols);
    if m == 0 || n == 0 {
        return;
    }
    let s = |x: usize| x as isize;
    // SAFETY: the asserts above keep every element of the three views inside
    // their slices, and `c`'s elements are pairwise distinct; `a`, `b` are
    // shared borrows and `c` an exclusive one, so `c` overlaps neither.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            s(la.row_stride),
            s(la.col_stride),
            b.as_ptr(),
            s(lb.row_stride),
            s(lb.col_stride),
            beta,
            c.as_mut_ptr(),
            s(lc.row_stride),
            s(lc.col_stride),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], la: Layout, b: &[f32], lb: Layout) -> Vec<f32> {
        let mut c = vec![0.0; la.rows * lb.cols];
        for i in 0..la.rows {
            for j in 0..lb.cols {
                for p in 0..la.cols {
                    c[i * lb.cols + j] += a[i * la.row_stride + p * la.col_stride] * b[p * lb.row_stride + j * lb.col_stride];
                }
            }
        }
        c
    }

    #[test]
    fn matches_the_definition_for_plain_and_transposed_views() {
        let (m, k, n) = (7, 13, 5);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        for (la, lb) in [
            (Layout::rows(m, k), Layout::rows(k, n)),
            (Layout::transposed(m, k), Layout::rows(k, n)),
            (Layout::rows(m, k), Layout::transposed(k, n)),
        ] {
            let want = naive(&a, la, &b, lb);
            let mut c = vec![1.0; m * n];
            gemm(1.0, &a, la, &b, lb, 0.0, &mut c, Layout::rows(m, n));
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
            // beta = 1 accumulates.
            gemm(1.0, &a, la, &b, lb, 1.0, &mut c, Layout::rows(m, n));
            for (x, y) in c.iter().zip(&want) {
                assert!((x - 2.0 * y).abs() < 1e-4);
            }
        }
    }

    #[test]
    #[should_panic(expected = "gemm shapes")]
    fn shapes_that_do_not_chain_panic() {
        let mut c = vec![0.0; 4];
        gemm(1.0, &[0.0; 6], Layout::rows(2, 3), &[0.0; 4], Layout::rows(2, 2), 0.0, &mut c, Layout::rows(2, 2));
    }
}

//! Matrix multiplication for compiled stages, written once over
//! [`Simd`] and run at the level
//! [`cpu_level`](crate::cpu::cpu_level) allows.
//!
//! - [`gemm_packed`]: `C = act(bias + A·B)` with `A` a weight matrix packed
//!   once ([`PackedA`]) — our own microkernels (`microkernel`: tiles of
//!   rows × vectors sized by the register count), bias and ReLU applied in
//!   registers before the store; a ragged right edge of up to 8 columns as
//!   column accumulators over the panel's rows. Conv and dense forwards,
//!   and the input gradients `dcols = Wᵀ·dZ` over the packed transpose.
//!   [`gemm_packed_acc`] adds into `C` instead: conv weight gradients
//!   `dW += dZ·im2row(x)`, `dZ` packed per image (it is small; see
//!   `kernels::im2col::weight_grad`). [`gemm_rows`] reads a row-major `A`
//!   in place (a dense layer's weight, which then needs no repacking
//!   after every optimizer step).
//! - [`gemm_abt`]: `C += A·Bᵀ` with both operands read along the depth in
//!   place, blocks of dot products in vector accumulators (`abt`).
//!   Pointwise convs' weight gradients, whose input is its own im2col
//!   matrix. (For other convs it measured 63% of peak against the packed
//!   GEMM's 91%: every output is reduced across lanes.)
//! - [`gemm`]: `C = α·A·B + β·C` on any strided views, by `matrixmultiply`
//!   (it packs both operands per call, with AVX-512/AVX2+FMA microkernels
//!   chosen at run time). Dense weight gradients, once per batch, each
//!   thread a slice of the units. Transposes are strides, not copies.
//! - [`gemv_on`]: dense layers of a few images ([`gemv`]); [`transpose`]: a
//!   dense layer's chunk in and out of its GEMM.

mod abt;
mod gemv;
mod microkernel;
mod pack;

pub(crate) use pack::Panels;
pub use pack::{MR, PackedA};

use crate::kernels::simd::{Simd, multiversion};

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

/// `c[i][j] = act(bias[i] + Σₖ a[i][k]·b[k][j])` for `i < a.rows()`,
/// `j < n`: `b` is `a.depth() × n` with row stride `ldb`, `c` has row
/// stride `ldc`; `bias` is empty or one per row; `relu` applies max(0, ·)
/// in registers before the store (other activations are the caller's).
/// `c` is only written.
///
/// # Panics
/// When a view runs past its slice or `bias` has the wrong length.
#[allow(clippy::too_many_arguments)] // BLAS's shape, plus bias and ReLU
pub fn gemm_packed(a: &PackedA, b: &[f32], ldb: usize, n: usize, bias: &[f32], relu: bool, c: &mut [f32], ldc: usize) {
    packed(a.panels(), b, ldb, n, Start::Bias(bias), relu, c, ldc);
}

/// Whether [`gemm_rows`] runs here — at every level: a dense layer's
/// forward then reads its weight in place, and needs no packed copy
/// (fashion_tf's dense1 is 12.8 MB, repacked after every step otherwise).
pub fn reads_rows_in_place() -> bool {
    true
}

/// [`gemm_packed`] with `a` (`rows × depth`, row-major) read in place:
/// each depth step broadcasts one value from each of a block's rows
/// (a row's sequential stream each; the packed copy is one).
///
/// # Panics
/// As [`gemm_packed`].
#[allow(clippy::too_many_arguments)] // gemm_packed's, with a's shape
pub fn gemm_rows(
    a: &[f32],
    rows: usize,
    depth: usize,
    b: &[f32],
    ldb: usize,
    n: usize,
    bias: &[f32],
    relu: bool,
    c: &mut [f32],
    ldc: usize,
) {
    let a = in_place(a, rows, depth);
    packed(a, b, ldb, n, Start::Bias(bias), relu, c, ldc);
}

/// `a` (`rows × depth`, row-major) as panels read in place.
fn in_place(a: &[f32], rows: usize, depth: usize) -> Panels<'_> {
    assert!(a.len() >= rows * depth, "gemm_rows: a is shorter than {rows} × {depth}");
    // (depth 0: a packed view of nothing, which the kernels handle.)
    Panels { data: a, rows, depth, lda: if depth == 0 { 0 } else { depth } }
}

/// `c[i][j] += Σₖ a[i][k]·b[k][j]`: [`gemm_packed`] accumulating into `c`
/// (a weight gradient summed over images).
pub fn gemm_packed_acc(a: &PackedA, b: &[f32], ldb: usize, n: usize, c: &mut [f32], ldc: usize) {
    packed(a.panels(), b, ldb, n, Start::C, false, c, ldc);
}

/// `c = a · b` for panels `a` ([`Panels::packed`], [`Panels::in_place`]):
/// the operands as in [`gemm_packed`], without bias or activation.
pub(crate) fn gemm_block(a: Panels<'_>, b: &[f32], ldb: usize, n: usize, c: &mut [f32], ldc: usize) {
    packed(a, b, ldb, n, Start::Bias(&[]), false, c, ldc);
}

/// `c += a · b` for panels `a` ([`Panels::packed`]): [`gemm_packed_acc`]'s sum.
pub(crate) fn gemm_block_acc(a: Panels<'_>, b: &[f32], ldb: usize, n: usize, c: &mut [f32], ldc: usize) {
    packed(a, b, ldb, n, Start::C, false, c, ldc);
}

/// What the accumulators of [`gemm_packed`] start from.
#[derive(Debug, Clone, Copy)]
enum Start<'a> {
    /// Each row's bias (zero when empty): `c` is only written.
    Bias(&'a [f32]),
    /// `c` itself: the product is added to it.
    C,
}

impl Start<'_> {
    /// Row `i`'s bias, or `None` to start from `c`.
    #[inline(always)]
    fn bias(self, i: usize) -> Option<f32> {
        match self {
            Start::Bias(bias) => Some(bias.get(i).copied().unwrap_or(0.0)),
            Start::C => None,
        }
    }
}

multiversion! {
    /// The packed GEMM at the level [`cpu_level`](crate::cpu::cpu_level) allows: the one place the
    /// microkernels are instantiated for each level.
    fn packed(a: Panels<'_>, b: &[f32], ldb: usize, n: usize, start: Start<'_>, relu: bool, c: &mut [f32], ldc: usize)
        => |s| packed_with(s, a, b, ldb, n, start, relu, c, ldc)
}

/// The packed GEMM at `s`'s level, after checking every view.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn packed_with<S: Simd>(s: S, a: Panels<'_>, b: &[f32], ldb: usize, n: usize, start: Start<'_>, relu: bool, c: &mut [f32], ldc: usize) {
    let (rows, depth) = (a.rows, a.depth);
    if rows == 0 || n == 0 {
        return;
    }
    if let Start::Bias(bias) = start {
        assert!(bias.is_empty() || bias.len() == rows, "gemm_packed: {} biases for {rows} rows", bias.len());
    }
    assert!(depth == 0 || (ldb >= n && b.len() >= (depth - 1) * ldb + n), "gemm_packed: b view out of bounds");
    assert!(ldc >= n && c.len() >= (rows - 1) * ldc + n, "gemm_packed: c view out of bounds");
    // SAFETY: the asserts above bound every access the kernel makes.
    unsafe { microkernel::gemm(s, a, b, ldb, n, start, relu, c, ldc) }
}

multiversion! {
/// `c[i][j] += Σₚ a[i·lda + p] · b[j·ldb + p]` for `i < m`, `j < n`,
/// `p < k`: `C += A·Bᵀ` with both operands read along the depth, in place.
/// That is a conv's weight gradient, `dz · colsᵀ`: the depth (output
/// pixels) is long and contiguous in both, `m` (filters) and `n` (taps)
/// are short — a shape a packing GEMM spends most of its time packing for.
/// Blocks of outputs are kept as vector accumulators along the depth and
/// reduced at the end (at a depth of a few hundred, those reductions cost
/// a third of the time: other convs' weight gradients use
/// [`gemm_packed_acc`]).
///
/// # Panics
/// When a view runs past its slice.
pub fn gemm_abt(a: &[f32], lda: usize, b: &[f32], ldb: usize, m: usize, n: usize, k: usize, c: &mut [f32], ldc: usize)
    => |s| abt_with(s, a, lda, b, ldb, m, n, k, c, ldc)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn abt_with<S: Simd>(s: S, a: &[f32], lda: usize, b: &[f32], ldb: usize, m: usize, n: usize, k: usize, c: &mut [f32], ldc: usize) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(lda >= k && a.len() >= (m - 1) * lda + k, "gemm_abt: a view out of bounds");
    assert!(ldb >= k && b.len() >= (n - 1) * ldb + k, "gemm_abt: b view out of bounds");
    assert!(ldc >= n && c.len() >= (m - 1) * ldc + n, "gemm_abt: c view out of bounds");
    // SAFETY: the asserts above bound every access the kernel makes.
    unsafe { abt::abt(s, a, lda, b, ldb, m, n, k, c, ldc) }
}

multiversion! {
/// `dst[c·rows + r] = src[r·cols + c]`: the transpose of a row-major
/// `rows × cols` matrix, by 8 × 8 blocks transposed in registers (reads
/// and writes both run along cache lines; a dense layer's chunk is
/// transposed in and out of its GEMM), the ragged edges one by one.
///
/// # Panics
/// When a buffer is shorter than `rows × cols`.
pub fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) => |s| transpose_with(s, src, rows, cols, dst)
}

#[inline(always)]
fn transpose_with<S: Simd>(s: S, src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let (src, dst) = (&src[..rows * cols], &mut dst[..rows * cols]);
    let (full_r, full_c) = (rows / 8 * 8, cols / 8 * 8);
    for r0 in (0..full_r).step_by(8) {
        for c0 in (0..full_c).step_by(8) {
            // SAFETY: rows r0..r0 + 8 ≤ rows and columns c0..c0 + 8 ≤ cols
            // of `src`; rows c0..c0 + 8 and columns r0..r0 + 8 of `dst`.
            unsafe { s.transpose8(src[r0 * cols + c0..].as_ptr(), cols, dst[c0 * rows + r0..].as_mut_ptr(), rows) };
        }
    }
    // The ragged edges: rows below full_r only in the columns past full_c.
    for r in 0..rows {
        let from = if r < full_r { full_c } else { 0 };
        for c in from..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

multiversion! {
/// `y[n·rows + r] += Σₖ w[r·depth + k] · x[n·depth + k]` for `r < rows`,
/// `n < images`: a few images through a row-major weight matrix, each row
/// read once and dotted with every image. Dense layers at small batches,
/// where the weights' memory traffic is the cost and a GEMM's packing or
/// panel-wide tiles would only add to it. (Auto-vectorised dot products
/// measured slower: one accumulator chain, latency-bound, or spilled
/// accumulators with more.)
///
/// # Panics
/// When a buffer is shorter than the sizes say.
pub fn gemv(w: &[f32], rows: usize, depth: usize, x: &[f32], images: usize, y: &mut [f32]) => |s| gemv_with(s, w, rows, depth, x, images, y)
}

#[inline(always)]
fn gemv_with<S: Simd>(s: S, w: &[f32], rows: usize, depth: usize, x: &[f32], images: usize, y: &mut [f32]) {
    assert!(w.len() >= rows * depth && x.len() >= images * depth && y.len() >= images * rows, "gemv: buffers shorter than the sizes");
    if depth == 0 {
        return;
    }
    // SAFETY: the assert above bounds every row the kernel reads and writes.
    unsafe { gemv::rows(s, w, rows, depth, x, images, y) }
}

/// A dense weight (`rows × depth`, row-major) as [`gemv_on`] reads it:
/// blocks of 16 rows, each `depth` runs of the block's 16 weights at one
/// depth (`[block][k][row]`, rows past `rows` zero) — one AVX-512 vector,
/// two AVX2 ones. One sequential stream and no lane sums: LeNet-5's dense
/// layers at batch 1, which read their 236 KB from L2, took 2.42 µs
/// against 2.64 over the rows (AVX-512: eight rows' streams, then their
/// lanes summed).
pub fn pack_gemv(w: &[f32], rows: usize, depth: usize, packed: &mut PackedA) {
    assert!(w.len() >= rows * depth, "pack_gemv: the weight is shorter than {rows} × {depth}");
    packed.store_rows(gemv_packed_rows(rows, depth), gemv::BLOCK, |p| {
        for r in 0..rows {
            let block = &mut p[(r / gemv::BLOCK) * depth * gemv::BLOCK..];
            for (k, &v) in w[r * depth..][..depth].iter().enumerate() {
                block[k * gemv::BLOCK + r % gemv::BLOCK] = v;
            }
        }
    });
}

/// Rows of [`pack_gemv`]'s `PackedA` (of 16 values each).
const fn gemv_packed_rows(rows: usize, depth: usize) -> usize {
    rows.div_ceil(gemv::BLOCK) * depth
}

/// The values [`pack_gemv`] stores for a `rows × depth` weight.
pub const fn gemv_packed_len(rows: usize, depth: usize) -> usize {
    gemv_packed_rows(rows, depth) * gemv::BLOCK
}

multiversion! {
/// [`gemv`] over `packed` when [`pack_gemv`] filled it for this weight
/// (else — empty — over `w`'s rows).
pub fn gemv_on(w: &[f32], packed: &PackedA, rows: usize, depth: usize, x: &[f32], images: usize, y: &mut [f32])
    => |s| gemv_on_with(s, w, packed, rows, depth, x, images, y)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gemv_on_with<S: Simd>(s: S, w: &[f32], packed: &PackedA, rows: usize, depth: usize, x: &[f32], images: usize, y: &mut [f32]) {
    if packed.rows() == 0 || depth == 0 {
        return gemv_with(s, w, rows, depth, x, images, y);
    }
    assert!(
        packed.rows() == gemv_packed_rows(rows, depth)
            && packed.depth() == gemv::BLOCK
            && x.len() >= images * depth
            && y.len() >= images * rows,
        "gemv_on: the packed weight is not {rows} × {depth} as pack_gemv stores it, or the buffers are short"
    );
    for n in (0..images).step_by(4) {
        let (xn, yn) = (&x[n * depth..], &mut y[n * rows..]);
        // SAFETY: the packed blocks hold `depth` runs of 16 each; images
        // n.. of `x` and `y` `depth` and `rows` values each (asserted above).
        unsafe {
            match images - n {
                1 => gemv::packed::<_, 1>(s, packed.values(), rows, depth, xn, yn),
                2 => gemv::packed::<_, 2>(s, packed.values(), rows, depth, xn, yn),
                3 => gemv::packed::<_, 3>(s, packed.values(), rows, depth, xn, yn),
                _ => gemv::packed::<_, 4>(s, packed.values(), rows, depth, xn, yn),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kernels::simd::testing::{AtEveryLevel, for_each_simd};

    struct Transposes;

    impl AtEveryLevel for Transposes {
        fn at<S: Simd>(&mut self, s: S) {
            // Whole 8 × 8 blocks only, ragged in rows, columns or both.
            for (rows, cols) in [(1, 1), (3, 70), (64, 3136), (17, 33), (1024, 5), (24, 40), (9, 8), (8, 19)] {
                let src: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
                let mut dst = vec![f32::NAN; rows * cols];
                transpose_with(s, &src, rows, cols, &mut dst);
                for r in 0..rows {
                    for c in 0..cols {
                        assert_eq!(dst[c * rows + r], src[r * cols + c], "{}: {rows}×{cols} at ({r}, {c})", S::NAME);
                    }
                }
            }
        }
    }

    #[test]
    fn transpose_moves_every_element_once() {
        for_each_simd(&mut Transposes);
    }

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

    /// The packed GEMM, plain, with bias and ReLU, accumulating, and over
    /// `a` read in place (the same operations as packed: the same bits).
    struct Packed;

    impl AtEveryLevel for Packed {
        fn at<S: Simd>(&mut self, s: S) {
            let name = S::NAME;
            for (rows, depth, n, pad) in
                [(1, 1, 1, 0), (6, 25, 784, 0), (8, 3, 33, 5), (16, 150, 100, 0), (13, 7, 47, 3), (64, 40, 196, 1), (9, 0, 5, 0)]
                    .into_iter()
                    // Every ragged right edge of one to eight columns, after
                    // whole vectors of every width or none.
                    .chain([(5, 9, 40, 0), (12, 4, 7, 2), (3, 5, 35, 0), (8, 2, 34, 1), (10, 11, 38, 0), (8, 3, 29, 0), (9, 2, 61, 0)])
                    // A tile's worth and less left: whole vectors and columns,
                    // or a masked tile (17–24 at 16 lanes: 16 + columns).
                    .chain([(11, 6, 49, 2), (9, 5, 20, 0), (8, 3, 56, 1), (8, 4, 45, 0), (8, 4, 16, 0), (8, 4, 24, 0), (16, 3, 13, 0)])
                    // Partial panels of every height under a tile (blocks of 4, 2, 1 rows).
                    .chain([(15, 4, 64, 1), (7, 5, 20, 0), (2, 3, 17, 0), (4, 6, 12, 0), (6, 5, 50, 0), (3, 3, 48, 0)])
            {
                let (ldb, ldc) = (n + pad, n + 2 * pad);
                let a: Vec<f32> = (0..rows * depth).map(|i| (i as f32 * 0.37).sin()).collect();
                let b: Vec<f32> = (0..depth * ldb).map(|i| (i as f32 * 0.11).cos()).collect();
                let bias: Vec<f32> = (0..rows).map(|i| i as f32 * 0.1 - 0.3).collect();
                let mut packed = PackedA::default();
                packed.pack(&a, rows, depth);
                // Packing the transpose of aᵀ gives the same panels.
                let at: Vec<f32> = (0..depth * rows).map(|t| a[(t % rows) * depth + t / rows]).collect();
                let mut from_t = PackedA::default();
                from_t.pack_transposed(&at, depth, rows);
                assert_eq!((from_t.data.as_slice(), from_t.rows, from_t.depth), (packed.data.as_slice(), rows, depth));
                for (bias, relu) in [(&bias[..], false), (&[][..], true), (&bias[..], true)] {
                    let mut c = vec![f32::NAN; rows * ldc];
                    packed_with(s, packed.panels(), &b, ldb, n, Start::Bias(bias), relu, &mut c, ldc);
                    let mut rows_in_place = vec![f32::NAN; rows * ldc];
                    packed_with(s, in_place(&a, rows, depth), &b, ldb, n, Start::Bias(bias), relu, &mut rows_in_place, ldc);
                    let same = c.iter().zip(&rows_in_place).all(|(p, q)| p.to_bits() == q.to_bits());
                    assert!(same, "{name}: in place {rows}×{depth}×{n}");
                    for i in 0..rows {
                        for j in 0..ldc {
                            let got = c[i * ldc + j];
                            if j >= n {
                                assert!(got.is_nan(), "{name}: wrote past column {n}");
                                continue;
                            }
                            let mut want = bias.get(i).copied().unwrap_or(0.0);
                            for k in 0..depth {
                                want += a[i * depth + k] * b[k * ldb + j];
                            }
                            if relu {
                                want = want.max(0.0);
                            }
                            assert!(
                                (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                                "{name} {rows}×{depth}×{n} [{i}][{j}]: {got} vs {want}"
                            );
                        }
                    }
                }
                // Accumulating: c += a·b, columns past n untouched.
                let before: Vec<f32> = (0..rows * ldc).map(|t| if t % ldc < n { (t as f32 * 0.7).sin() } else { f32::NAN }).collect();
                let mut c = before.clone();
                packed_with(s, packed.panels(), &b, ldb, n, Start::C, false, &mut c, ldc);
                for i in 0..rows {
                    for j in 0..ldc {
                        let got = c[i * ldc + j];
                        if j >= n {
                            assert!(got.is_nan(), "{name}: accumulated past column {n}");
                            continue;
                        }
                        let want = before[i * ldc + j] + (0..depth).map(|k| a[i * depth + k] * b[k * ldb + j]).sum::<f32>();
                        assert!(
                            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "{name} acc {rows}×{depth}×{n} [{i}][{j}]: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn packed_kernels_match_the_definition_at_every_level() {
        for_each_simd(&mut Packed);
    }

    struct Abt;

    impl AtEveryLevel for Abt {
        fn at<S: Simd>(&mut self, s: S) {
            let name = S::NAME;
            for (m, n, k, pad) in
                [(1, 1, 1, 0), (6, 25, 784, 0), (16, 150, 100, 3), (5, 7, 13, 1), (9, 10, 33, 0), (4, 4, 16, 0), (3, 2, 7, 2), (7, 5, 8, 0)]
            {
                let (lda, ldb, ldc) = (k + pad, k + 2 * pad, n + pad);
                let a: Vec<f32> = (0..m * lda).map(|i| (i as f32 * 0.37).sin()).collect();
                let b: Vec<f32> = (0..n * ldb).map(|i| (i as f32 * 0.11).cos()).collect();
                let mut c: Vec<f32> = (0..m * ldc).map(|i| i as f32).collect();
                abt_with(s, &a, lda, &b, ldb, m, n, k, &mut c, ldc);
                for i in 0..m {
                    for j in 0..ldc {
                        let got = c[i * ldc + j];
                        let start = (i * ldc + j) as f32;
                        if j >= n {
                            assert_eq!(got, start, "{name}: wrote past column {n}");
                            continue;
                        }
                        let want = start + (0..k).map(|p| a[i * lda + p] * b[j * ldb + p]).sum::<f32>();
                        assert!((got - want).abs() <= 1e-3 * (1.0 + want.abs()), "{name} {m}×{n}×{k} [{i}][{j}]: {got} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn abt_kernels_match_the_definition_at_every_level() {
        for_each_simd(&mut Abt);
    }

    struct Gemv;

    impl AtEveryLevel for Gemv {
        fn at<S: Simd>(&mut self, s: S) {
            let name = S::NAME;
            // Rows in one, two, three blocks of 16 and parts of one; odd and
            // even depths; 1 to 6 images (the packed path takes four at a time).
            let shapes = [(1, 1, 1), (120, 400, 1), (10, 84, 3), (7, 3136, 2), (5, 33, 4), (9, 17, 1), (3, 0, 2), (33, 40, 5), (48, 7, 6)];
            for (rows, depth, images) in shapes {
                let w: Vec<f32> = (0..rows * depth).map(|i| (i as f32 * 0.37).sin()).collect();
                let x: Vec<f32> = (0..images * depth).map(|i| (i as f32 * 0.11).cos()).collect();
                let mut packed = PackedA::default();
                pack_gemv(&w, rows, depth, &mut packed);
                for over_packed in [false, true] {
                    let mut y: Vec<f32> = (0..images * rows).map(|i| i as f32).collect();
                    if over_packed {
                        gemv_on_with(s, &w, &packed, rows, depth, &x, images, &mut y);
                    } else {
                        gemv_with(s, &w, rows, depth, &x, images, &mut y);
                    }
                    for n in 0..images {
                        for r in 0..rows {
                            let want = (n * rows + r) as f32 + (0..depth).map(|k| w[r * depth + k] * x[n * depth + k]).sum::<f32>();
                            let got = y[n * rows + r];
                            assert!(
                                (got - want).abs() <= 1e-3 * (1.0 + want.abs()),
                                "{name} (packed: {over_packed}) {rows}×{depth}, image {n} row {r}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn gemv_matches_the_definition_at_every_level() {
        for_each_simd(&mut Gemv);
    }

    #[test]
    #[should_panic(expected = "gemm shapes")]
    fn shapes_that_do_not_chain_panic() {
        let mut c = vec![0.0; 4];
        gemm(1.0, &[0.0; 6], Layout::rows(2, 3), &[0.0; 4], Layout::rows(2, 2), 0.0, &mut c, Layout::rows(2, 2));
    }
}

//! Matrix multiplication for compiled stages.
//!
//! - [`gemm_packed`]: `C = act(bias + A·B)` with `A` a weight matrix packed
//!   once ([`PackedA`]) — our own microkernels (AVX-512 8 × 32, AVX2+FMA
//!   4 × 16, portable Rust), chosen at run time, bias and ReLU applied in
//!   registers before the store; a ragged right edge of up to 8 columns as
//!   column accumulators over the panel's rows. Conv and dense forwards,
//!   and the input gradients `dcols = Wᵀ·dZ` over the packed transpose.
//!   [`gemm_packed_acc`] adds into `C` instead: conv weight gradients
//!   `dW += dZ·im2row(x)`, `dZ` packed per image (it is small; see
//!   `compiled::rows::weight_grad`).
//! - [`gemm_abt`]: `C += A·Bᵀ` with both operands read along the depth in
//!   place, blocks of dot products in vector accumulators (AVX-512 4 × 4,
//!   AVX2+FMA 3 × 3). Pointwise convs' weight gradients, whose input is its
//!   own im2col matrix. (For other convs it measured 63% of peak against
//!   the packed GEMM's 91%: every output is reduced across lanes.)
//! - [`gemm`]: `C = α·A·B + β·C` on any strided views, by `matrixmultiply`
//!   (it packs both operands per call, with AVX-512/AVX2+FMA microkernels
//!   chosen at run time). Dense weight gradients, once per batch, each
//!   thread a slice of the units. Transposes are strides, not copies.
//! - [`gemv`]: dense layers of a few images; [`transpose`]: a dense layer's
//!   chunk in and out of its GEMM.

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

/// Rows of a packed panel: the microkernels compute `MR` rows of the
/// output at a time.
pub const MR: usize = 8;

/// A weight matrix (`rows × depth`, row-major) packed once into panels of
/// [`MR`] rows, each stored depth-major (`panel[k][r]`), zero-padded to a
/// whole panel: the layout the microkernels read with one broadcast per
/// row and step. Conv stages pack their weights when they change (at load,
/// after an optimizer step), not per image.
#[derive(Debug, Clone, Default)]
pub struct PackedA {
    data: Vec<f32>,
    rows: usize,
    depth: usize,
}

impl PackedA {
    /// Pack `a` (`rows × depth`, row-major), reusing this allocation.
    pub fn pack(&mut self, a: &[f32], rows: usize, depth: usize) {
        self.pack_on(a, rows, depth, 1);
    }

    /// [`PackedA::pack`] on up to `threads` threads (large matrices only).
    pub fn pack_on(&mut self, a: &[f32], rows: usize, depth: usize, threads: usize) {
        assert_eq!(a.len(), rows * depth, "PackedA::pack: {rows}×{depth} matrix expected");
        self.fill(rows, depth, threads, |p, live, panel| {
            let src = |r: usize| &a[(p * MR + r) * depth..][..depth];
            if live < MR {
                for r in 0..live {
                    for (k, &v) in src(r).iter().enumerate() {
                        panel[k * MR + r] = v;
                    }
                }
                return;
            }
            // 8 × 8 blocks: eight rows' runs in, one contiguous run out.
            let rows: [&[f32]; MR] = std::array::from_fn(src);
            #[allow(unused_mut)] // assigned on x86-64
            let mut k0 = 0;
            #[cfg(target_arch = "x86_64")]
            if crate::compiled::cpu_level() >= crate::compiled::CpuLevel::Avx2 {
                // SAFETY: `cpu_level` found AVX2; each row holds `depth`
                // values and the panel depth × MR.
                k0 = unsafe { x86::pack_blocks_avx2(&rows, depth, panel) };
            }
            while k0 < depth {
                let width = MR.min(depth - k0);
                let out = &mut panel[k0 * MR..][..width * MR];
                for (r, row) in rows.iter().enumerate() {
                    for (kk, &v) in row[k0..k0 + width].iter().enumerate() {
                        out[kk * MR + r] = v;
                    }
                }
                k0 += width;
            }
        });
    }

    /// Pack the transpose of `a` (`a_rows × a_cols`, row-major): the packed
    /// matrix is `a_cols × a_rows`.
    pub fn pack_transposed(&mut self, a: &[f32], a_rows: usize, a_cols: usize) {
        self.pack_transposed_on(a, a_rows, a_cols, 1);
    }

    /// [`PackedA::pack_transposed`] on up to `threads` threads (large matrices only).
    pub fn pack_transposed_on(&mut self, a: &[f32], a_rows: usize, a_cols: usize, threads: usize) {
        assert_eq!(a.len(), a_rows * a_cols, "PackedA::pack_transposed: {a_rows}×{a_cols} matrix expected");
        // Packed element (i, k) is a[k][i]: each depth step's MR values are
        // adjacent in a row of `a`.
        self.fill(a_cols, a_rows, threads, |p, live, panel| {
            for (k, lanes) in panel.chunks_exact_mut(MR).enumerate() {
                let src = &a[k * a_cols + p * MR..];
                if live == MR {
                    // A constant length: a move, not a call to memmove.
                    lanes.copy_from_slice(&src[..MR]);
                } else {
                    lanes[..live].copy_from_slice(&src[..live]);
                }
            }
        });
    }

    /// Size for a packed `rows × depth` matrix and let `panel(p, live,
    /// values)` write panel `p` (`live` of its `MR` rows real): each panel
    /// written in order (a weight matrix of megabytes is repacked after
    /// every optimizer step: scattered writes cost several times more),
    /// large matrices' panels split over `threads`. The padding rows of the
    /// last panel are zeroed when the shape changes and never written.
    #[inline(always)]
    fn fill(&mut self, rows: usize, depth: usize, threads: usize, panel: impl Fn(usize, usize, &mut [f32]) + Sync) {
        let len = rows.div_ceil(MR) * depth * MR;
        if (rows, depth, len) != (self.rows, self.depth, self.data.len()) {
            self.data.clear();
            self.data.resize(len, 0.0);
            self.rows = rows;
            self.depth = depth;
        }
        if depth == 0 || rows == 0 {
            return;
        }
        let panels = rows.div_ceil(MR);
        let fill = |first: usize, chunk: &mut [f32]| {
            for (q, values) in chunk.chunks_exact_mut(depth * MR).enumerate() {
                let p = first + q;
                panel(p, MR.min(rows - p * MR), values);
            }
        };
        if threads <= 1 || self.data.len() < crate::compiled::PARALLEL_MIN {
            fill(0, &mut self.data);
            return;
        }
        let per = panels.div_ceil(threads);
        let fill = &fill;
        rayon::scope(|s| {
            for (t, chunk) in self.data.chunks_mut(per * depth * MR).enumerate() {
                s.spawn(move |_| fill(t * per, chunk));
            }
        });
    }

    /// Keep a `rows × cols` matrix as it is, row-major (`depth()` is then
    /// `cols`): an operand read by rows, such as the right-hand side of
    /// [`gemm_block`]. The values are zeroed, then `fill` writes them (the
    /// allocation is reused).
    pub fn store_rows(&mut self, rows: usize, cols: usize, fill: impl FnOnce(&mut [f32])) {
        self.data.clear();
        self.data.resize(rows * cols, 0.0);
        (self.rows, self.depth) = (rows, cols);
        fill(&mut self.data);
    }

    /// The values as stored: panels, or the rows of [`PackedA::store_rows`].
    pub(crate) fn values(&self) -> &[f32] {
        &self.data
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The whole matrix, as the microkernels read it.
    pub(crate) fn panels(&self) -> Panels<'_> {
        Panels { data: &self.data, rows: self.rows, depth: self.depth, lda: 0 }
    }
}

/// A view of whole panels of a [`PackedA`] — or, with `lda` non-zero, of
/// a row-major matrix read in place (rows `lda` apart; AVX-512 only, see
/// [`gemm_rows`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Panels<'a> {
    data: &'a [f32],
    rows: usize,
    depth: usize,
    lda: usize,
}

impl<'a> Panels<'a> {
    /// `rows × depth` already in [`PackedA`]'s layout (`data[p][k][r]`,
    /// whole panels): an operand a transform wrote packed.
    pub(crate) fn packed(data: &'a [f32], rows: usize, depth: usize) -> Self {
        assert!(data.len() >= rows.div_ceil(MR) * MR * depth, "Panels::packed: {rows} × {depth} do not fit {} values", data.len());
        Self { data, rows, depth, lda: 0 }
    }

    /// `rows × depth` row-major with rows `lda` apart, read in place by
    /// the AVX-512 microkernel (see [`gemm_rows`]).
    pub(crate) fn in_place(data: &'a [f32], rows: usize, depth: usize, lda: usize) -> Self {
        assert!(
            depth > 0 && lda >= depth && data.len() >= (rows - 1) * lda + depth,
            "Panels::in_place: {rows} × {depth} rows {lda} apart do not fit"
        );
        Self { data, rows, depth, lda }
    }

    pub(crate) fn panel(&self, p: usize) -> &[f32] {
        &self.data[p * self.depth * MR..][..self.depth * MR]
    }
}

/// `c[i][j] = act(bias[i] + Σₖ a[i][k]·b[k][j])` for `i < a.rows()`,
/// `j < n`: `b` is `a.depth() × n` with row stride `ldb`, `c` has row
/// stride `ldc`; `bias` is empty or one per row; `relu` applies max(0, ·)
/// in registers before the store (other activations are the caller's).
/// `c` is only written. Runs the AVX-512 or AVX2+FMA microkernel when
/// [`cpu_level`](crate::compiled::cpu_level) allows.
///
/// # Panics
/// When a view runs past its slice or `bias` has the wrong length.
#[allow(clippy::too_many_arguments)] // BLAS's shape, plus bias and ReLU
pub fn gemm_packed(a: &PackedA, b: &[f32], ldb: usize, n: usize, bias: &[f32], relu: bool, c: &mut [f32], ldc: usize) {
    gemm_packed_at(crate::compiled::cpu_level(), a, b, ldb, n, bias, relu, c, ldc);
}

/// [`gemm_packed`] at a given level (tests run every level the CPU has).
#[allow(clippy::too_many_arguments)] // gemm_packed's, plus the level
pub fn gemm_packed_at(
    level: crate::compiled::CpuLevel,
    a: &PackedA,
    b: &[f32],
    ldb: usize,
    n: usize,
    bias: &[f32],
    relu: bool,
    c: &mut [f32],
    ldc: usize,
) {
    packed_at(level, a.panels(), b, ldb, n, Start::Bias(bias), relu, c, ldc);
}

/// Whether [`gemm_rows`] runs here: the AVX-512 microkernel reads a
/// row-major weight in place (a dense layer's forward then needs no packed
/// copy; dense1 of fashion_tf is 12.8 MB, repacked after every step).
pub fn reads_rows_in_place() -> bool {
    crate::compiled::cpu_level() == crate::compiled::CpuLevel::Avx512
}

/// [`gemm_packed`] with `a` (`rows × depth`, row-major) read in place:
/// each depth step broadcasts one value from each of a panel's eight rows
/// (eight sequential streams; the packed copy is one).
///
/// # Panics
/// When [`reads_rows_in_place`] is false, or as [`gemm_packed`].
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
    assert!(reads_rows_in_place(), "gemm_rows needs AVX-512");
    assert!(a.len() >= rows * depth, "gemm_rows: a is shorter than {rows} × {depth}");
    // (depth 0: a packed view of nothing, which the kernels handle.)
    let lda = if depth == 0 { 0 } else { depth };
    let a = Panels { data: a, rows, depth, lda };
    packed_at(crate::compiled::CpuLevel::Avx512, a, b, ldb, n, Start::Bias(bias), relu, c, ldc);
}

/// `c[i][j] += Σₖ a[i][k]·b[k][j]`: [`gemm_packed`] accumulating into `c`
/// (a weight gradient summed over images).
pub fn gemm_packed_acc(a: &PackedA, b: &[f32], ldb: usize, n: usize, c: &mut [f32], ldc: usize) {
    gemm_packed_acc_at(crate::compiled::cpu_level(), a, b, ldb, n, c, ldc);
}

/// [`gemm_packed_acc`] at a given level.
pub fn gemm_packed_acc_at(level: crate::compiled::CpuLevel, a: &PackedA, b: &[f32], ldb: usize, n: usize, c: &mut [f32], ldc: usize) {
    packed_at(level, a.panels(), b, ldb, n, Start::C, false, c, ldc);
}

/// `c = a · b` for a block of a packed matrix ([`PackedA::block`]): the
/// operands as in [`gemm_packed`], without bias or activation.
pub(crate) fn gemm_block(a: Panels<'_>, b: &[f32], ldb: usize, n: usize, c: &mut [f32], ldc: usize) {
    packed_at(crate::compiled::cpu_level(), a, b, ldb, n, Start::Bias(&[]), false, c, ldc);
}

/// `c += a · b` for panels `a` ([`Panels::packed`]): [`gemm_packed_acc`]'s sum.
pub(crate) fn gemm_block_acc(a: Panels<'_>, b: &[f32], ldb: usize, n: usize, c: &mut [f32], ldc: usize) {
    packed_at(crate::compiled::cpu_level(), a, b, ldb, n, Start::C, false, c, ldc);
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

#[allow(clippy::too_many_arguments)]
fn packed_at(
    level: crate::compiled::CpuLevel,
    a: Panels<'_>,
    b: &[f32],
    ldb: usize,
    n: usize,
    start: Start<'_>,
    relu: bool,
    c: &mut [f32],
    ldc: usize,
) {
    let (rows, depth) = (a.rows, a.depth);
    if rows == 0 || n == 0 {
        return;
    }
    assert!(a.lda == 0 || level == crate::compiled::CpuLevel::Avx512, "a row-major operand in place needs the AVX-512 kernel");
    if let Start::Bias(bias) = start {
        assert!(bias.is_empty() || bias.len() == rows, "gemm_packed: {} biases for {rows} rows", bias.len());
    }
    assert!(depth == 0 || (ldb >= n && b.len() >= (depth - 1) * ldb + n), "gemm_packed: b view out of bounds");
    assert!(ldc >= n && c.len() >= (rows - 1) * ldc + n, "gemm_packed: c view out of bounds");
    #[cfg(target_arch = "x86_64")]
    {
        use crate::compiled::CpuLevel;
        match level {
            // SAFETY: `cpu_level` (or the test, from it) found AVX-512F on
            // this CPU; the asserts above bound every access the kernel makes.
            CpuLevel::Avx512 => return unsafe { x86::gemm_avx512(a, b, ldb, n, start, relu, c, ldc) },
            // SAFETY: as above, for AVX2 and FMA.
            CpuLevel::Avx2 => return unsafe { x86::gemm_avx2(a, b, ldb, n, start, relu, c, ldc) },
            CpuLevel::Baseline => {}
        }
    }
    let _ = level;
    gemm_portable(a, b, ldb, 0, n, start, relu, c, ldc);
}

/// Columns `j0..n` of [`gemm_packed`] in plain Rust (the baseline, and the
/// AVX2 kernel's ragged right edge).
#[allow(clippy::too_many_arguments)]
fn gemm_portable(a: Panels<'_>, b: &[f32], ldb: usize, j0: usize, n: usize, start: Start<'_>, relu: bool, c: &mut [f32], ldc: usize) {
    for i in 0..a.rows {
        let panel = a.panel(i / MR);
        let out = &mut c[i * ldc + j0..i * ldc + n];
        if let Some(bias) = start.bias(i) {
            out.fill(bias);
        }
        for k in 0..a.depth {
            let av = panel[k * MR + i % MR];
            for (o, bv) in out.iter_mut().zip(&b[k * ldb + j0..k * ldb + n]) {
                *o += av * bv;
            }
        }
        if relu {
            out.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}

/// `c[i][j] += Σₚ a[i·lda + p] · b[j·ldb + p]` for `i < m`, `j < n`,
/// `p < k`: `C += A·Bᵀ` with both operands read along the depth, in place.
/// That is a conv's weight gradient, `dz · colsᵀ`: the depth (output
/// pixels) is long and contiguous in both, `m` (filters) and `n` (taps)
/// are short — a shape a packing GEMM spends most of its time packing for.
/// Blocks of outputs are kept as vector accumulators along the depth and
/// reduced at the end (at a depth of a few hundred, those reductions cost
/// a third of the time: other convs' weight gradients use
/// [`gemm_packed_acc`]). Runs the AVX-512 or AVX2+FMA version when
/// [`cpu_level`](crate::compiled::cpu_level) allows.
///
/// # Panics
/// When a view runs past its slice.
#[allow(clippy::too_many_arguments)] // BLAS's shape
pub fn gemm_abt(a: &[f32], lda: usize, b: &[f32], ldb: usize, m: usize, n: usize, k: usize, c: &mut [f32], ldc: usize) {
    gemm_abt_at(crate::compiled::cpu_level(), a, lda, b, ldb, m, n, k, c, ldc);
}

/// [`gemm_abt`] at a given level (tests run every level the CPU has).
#[allow(clippy::too_many_arguments)]
pub fn gemm_abt_at(
    level: crate::compiled::CpuLevel,
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
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(lda >= k && a.len() >= (m - 1) * lda + k, "gemm_abt: a view out of bounds");
    assert!(ldb >= k && b.len() >= (n - 1) * ldb + k, "gemm_abt: b view out of bounds");
    assert!(ldc >= n && c.len() >= (m - 1) * ldc + n, "gemm_abt: c view out of bounds");
    #[cfg(target_arch = "x86_64")]
    {
        use crate::compiled::CpuLevel;
        match level {
            // SAFETY: `cpu_level` (or the test, from it) found AVX-512F on
            // this CPU; the asserts above bound every access the kernel makes.
            CpuLevel::Avx512 => return unsafe { x86::abt_avx512(a, lda, b, ldb, m, n, k, c, ldc) },
            // SAFETY: as above, for AVX2 and FMA.
            CpuLevel::Avx2 => return unsafe { x86::abt_avx2(a, lda, b, ldb, m, n, k, c, ldc) },
            CpuLevel::Baseline => {}
        }
    }
    let _ = level;
    for i in 0..m {
        let ar = &a[i * lda..][..k];
        for j in 0..n {
            let br = &b[j * ldb..][..k];
            c[i * ldc + j] += ar.iter().zip(br).map(|(x, y)| x * y).sum::<f32>();
        }
    }
}

/// `dst[c·rows + r] = src[r·cols + c]`: the transpose of a row-major
/// `rows × cols` matrix, in 16 × 16 blocks so that reads and writes both
/// run along cache lines (a dense layer's chunk is transposed in and out of
/// its GEMM).
///
/// # Panics
/// When a buffer is shorter than `rows × cols`.
pub fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const B: usize = 16;
    let (src, dst) = (&src[..rows * cols], &mut dst[..rows * cols]);
    #[allow(unused_mut)] // assigned on x86-64
    let mut done = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if crate::compiled::cpu_level() >= crate::compiled::CpuLevel::Avx2 {
        // SAFETY: `cpu_level` found AVX2; both buffers hold rows × cols.
        done = unsafe { x86::transpose_avx2(src, rows, cols, dst) };
    }
    // The rest, in blocks: rows below done.0 only in the columns past done.1.
    let block = |dst: &mut [f32], r0: usize, c0: usize| {
        for c in c0..(c0 + B).min(cols) {
            let out = &mut dst[c * rows..][r0..(r0 + B).min(rows)];
            for (r, o) in out.iter_mut().enumerate() {
                *o = src[(r0 + r) * cols + c];
            }
        }
    };
    let (full_r, full_c) = done;
    for r0 in (0..full_r).step_by(B) {
        for c0 in (full_c..cols).step_by(B) {
            block(dst, r0, c0);
        }
    }
    for r0 in (full_r..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            block(dst, r0, c0);
        }
    }
}

/// `y[n·rows + r] += Σₖ w[r·depth + k] · x[n·depth + k]` for `r < rows`,
/// `n < images`: a few images through a row-major weight matrix, each row
/// read once and dotted with every image. Dense layers at small batches,
/// where the weights' memory traffic is the cost and a GEMM's packing or
/// panel-wide tiles would only add to it. Compiled for AVX-512, AVX2+FMA
/// and the baseline; runs the best [`cpu_level`](crate::compiled::cpu_level) allows.
/// (Auto-vectorised dot products measured slower: one accumulator chain,
/// latency-bound, or spilled accumulators with more.)
///
/// # Panics
/// When a buffer is shorter than the sizes say.
pub fn gemv(w: &[f32], rows: usize, depth: usize, x: &[f32], images: usize, y: &mut [f32]) {
    gemv_at(crate::compiled::cpu_level(), w, rows, depth, x, images, y);
}

/// Rows of a block of [`pack_gemv`]'s layout: one vector.
const GEMV_LANES: usize = 16;

/// A dense weight (`rows × depth`, row-major) as [`gemv_on`] reads it where
/// [`reads_rows_in_place`]: blocks of 16 rows, each `depth` vectors of the
/// block's 16 weights at one depth (`[block][k][row]`, rows past `rows`
/// zero). One sequential stream and no lane sums: LeNet-5's dense layers at
/// batch 1, which read their 236 KB from L2, took 2.42 µs against 2.64 over
/// the rows (eight rows' streams, then their lanes summed).
pub fn pack_gemv(w: &[f32], rows: usize, depth: usize, packed: &mut PackedA) {
    assert!(w.len() >= rows * depth, "pack_gemv: the weight is shorter than {rows} × {depth}");
    packed.store_rows(gemv_packed_rows(rows, depth), GEMV_LANES, |p| {
        for r in 0..rows {
            let block = &mut p[(r / GEMV_LANES) * depth * GEMV_LANES..];
            for (k, &v) in w[r * depth..][..depth].iter().enumerate() {
                block[k * GEMV_LANES + r % GEMV_LANES] = v;
            }
        }
    });
}

/// Rows of [`pack_gemv`]'s `PackedA` (of [`GEMV_LANES`] values each).
const fn gemv_packed_rows(rows: usize, depth: usize) -> usize {
    rows.div_ceil(GEMV_LANES) * depth
}

/// The values [`pack_gemv`] stores for a `rows × depth` weight.
pub const fn gemv_packed_len(rows: usize, depth: usize) -> usize {
    gemv_packed_rows(rows, depth) * GEMV_LANES
}

/// [`gemv`] over `packed` when [`pack_gemv`] filled it for this weight
/// (else — empty, or the GEMM's packed copy where it does not read rows
/// in place — over `w`'s rows).
pub fn gemv_on(w: &[f32], packed: &PackedA, rows: usize, depth: usize, x: &[f32], images: usize, y: &mut [f32]) {
    if packed.rows() == 0 || depth == 0 || !reads_rows_in_place() {
        return gemv(w, rows, depth, x, images, y);
    }
    assert!(
        packed.rows() == gemv_packed_rows(rows, depth)
            && packed.depth() == GEMV_LANES
            && x.len() >= images * depth
            && y.len() >= images * rows,
        "gemv_on: the packed weight is not {rows} × {depth} as pack_gemv stores it, or the buffers are short"
    );
    #[cfg(target_arch = "x86_64")]
    for n in (0..images).step_by(4) {
        let (xn, yn) = (&x[n * depth..], &mut y[n * rows..]);
        // SAFETY: `reads_rows_in_place` found AVX-512; the packed blocks
        // hold `depth` vectors each, images n.. of `x` and `y` `depth` and
        // `rows` values each (asserted above).
        unsafe {
            match images - n {
                1 => x86::gemv_lanes::<1>(packed.values(), rows, depth, xn, yn),
                2 => x86::gemv_lanes::<2>(packed.values(), rows, depth, xn, yn),
                3 => x86::gemv_lanes::<3>(packed.values(), rows, depth, xn, yn),
                _ => x86::gemv_lanes::<4>(packed.values(), rows, depth, xn, yn),
            }
        }
    }
}

/// [`gemv`] at a given level (tests run every level the CPU has).
pub fn gemv_at(level: crate::compiled::CpuLevel, w: &[f32], rows: usize, depth: usize, x: &[f32], images: usize, y: &mut [f32]) {
    assert!(w.len() >= rows * depth && x.len() >= images * depth && y.len() >= images * rows, "gemv: buffers shorter than the sizes");
    if depth == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use crate::compiled::CpuLevel;
        match level {
            // SAFETY: `cpu_level` (or the test, from it) found AVX-512F on
            // this CPU; the assert above bounds every row the kernel reads and writes.
            CpuLevel::Avx512 => return unsafe { x86::gemv_avx512(w, rows, depth, x, images, y) },
            // SAFETY: as above, for AVX2 and FMA.
            CpuLevel::Avx2 => return unsafe { x86::gemv_avx2(w, rows, depth, x, images, y) },
            CpuLevel::Baseline => {}
        }
    }
    for (r, wr) in w.chunks_exact(depth).enumerate().take(rows) {
        for (n, xn) in x.chunks_exact(depth).enumerate().take(images) {
            y[n * rows + r] += wr.iter().zip(xn).map(|(a, b)| a * b).sum::<f32>();
        }
    }
}

/// `$block::<MI, NJ>(args)` for the run-time block size `($mi, $nj)`, each
/// at most 4.
#[cfg(target_arch = "x86_64")]
macro_rules! abt_blocks {
    ($block:ident, $mi:expr, $nj:expr, $($arg:expr),*) => {
        match ($mi, $nj) {
            (4, 4) => $block::<4, 4>($($arg),*),
            (4, 3) => $block::<4, 3>($($arg),*),
            (4, 2) => $block::<4, 2>($($arg),*),
            (4, _) => $block::<4, 1>($($arg),*),
            (3, 4) => $block::<3, 4>($($arg),*),
            (3, 3) => $block::<3, 3>($($arg),*),
            (3, 2) => $block::<3, 2>($($arg),*),
            (3, _) => $block::<3, 1>($($arg),*),
            (2, 4) => $block::<2, 4>($($arg),*),
            (2, 3) => $block::<2, 3>($($arg),*),
            (2, 2) => $block::<2, 2>($($arg),*),
            (2, _) => $block::<2, 1>($($arg),*),
            (_, 4) => $block::<1, 4>($($arg),*),
            (_, 3) => $block::<1, 3>($($arg),*),
            (_, 2) => $block::<1, 2>($($arg),*),
            _ => $block::<1, 1>($($arg),*),
        }
    };
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    use super::{MR, Panels, Start, gemm_portable};

    /// The whole 8 × 8 blocks of a full panel of [`super::PackedA::pack`]:
    /// each an in-register transpose of eight rows' runs of 8 into one
    /// contiguous run of 64 (the scalar loop moved one value per load and
    /// store: a dense layer's 12.8 MB are repacked after every step).
    /// Returns the depth done (a multiple of 8).
    ///
    /// # Safety
    /// The CPU has AVX2; each row holds `depth` values and `panel` depth × MR.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pack_blocks_avx2(rows: &[&[f32]; MR], depth: usize, panel: &mut [f32]) -> usize {
        const { assert!(MR == 8) };
        let full = depth / 8 * 8;
        assert!(rows.iter().all(|r| r.len() >= depth) && panel.len() >= depth * MR);
        let out = panel.as_mut_ptr();
        for k0 in (0..full).step_by(8) {
            // SAFETY: k0 + 8 ≤ depth ≤ each row's length (asserted).
            let r: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(rows[i].as_ptr().add(k0)) });
            let columns = transpose_8x8(r);
            for (k, &col) in columns.iter().enumerate() {
                // SAFETY: step k0 + k < depth of the panel (asserted).
                unsafe { _mm256_storeu_ps(out.add((k0 + k) * MR), col) };
            }
        }
        full
    }

    /// The columns of the 8 × 8 block whose rows are `r`.
    #[target_feature(enable = "avx2")]
    fn transpose_8x8(r: [__m256; 8]) -> [__m256; 8] {
        let t = [
            _mm256_unpacklo_ps(r[0], r[1]),
            _mm256_unpackhi_ps(r[0], r[1]),
            _mm256_unpacklo_ps(r[2], r[3]),
            _mm256_unpackhi_ps(r[2], r[3]),
            _mm256_unpacklo_ps(r[4], r[5]),
            _mm256_unpackhi_ps(r[4], r[5]),
            _mm256_unpacklo_ps(r[6], r[7]),
            _mm256_unpackhi_ps(r[6], r[7]),
        ];
        let q = [
            _mm256_shuffle_ps::<0x44>(t[0], t[2]),
            _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
            _mm256_shuffle_ps::<0x44>(t[1], t[3]),
            _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
            _mm256_shuffle_ps::<0x44>(t[4], t[6]),
            _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
            _mm256_shuffle_ps::<0x44>(t[5], t[7]),
            _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
        ];
        // Column k: rows 0–3 from q[k % 4], rows 4–7 from q[4 + k % 4].
        std::array::from_fn(|k| {
            if k < 4 { _mm256_permute2f128_ps::<0x20>(q[k], q[4 + k]) } else { _mm256_permute2f128_ps::<0x31>(q[k - 4], q[k]) }
        })
    }

    /// The whole 8 × 8 blocks of [`super::transpose`], each transposed in
    /// registers; returns the rows and columns done (multiples of 8).
    ///
    /// # Safety
    /// The CPU has AVX2; `src` and `dst` hold `rows × cols` values.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transpose_avx2(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) -> (usize, usize) {
        assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
        let (full_r, full_c) = (rows / 8 * 8, cols / 8 * 8);
        let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
        for r0 in (0..full_r).step_by(8) {
            for c0 in (0..full_c).step_by(8) {
                // SAFETY: rows r0 .. r0 + 8 ≤ rows, columns c0 .. c0 + 8 ≤ cols.
                let r: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(sp.add((r0 + i) * cols + c0)) });
                for (k, &col) in transpose_8x8(r).iter().enumerate() {
                    // SAFETY: row c0 + k < cols of `dst`, columns r0 .. r0 + 8 ≤ rows.
                    unsafe { _mm256_storeu_ps(dp.add((c0 + k) * rows + r0), col) };
                }
            }
        }
        (full_r, full_c)
    }

    /// The mask of the first `min(n, 16)` lanes.
    #[inline(always)]
    pub(crate) fn lanes(n: usize) -> __mmask16 {
        if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as __mmask16 }
    }

    /// `pub(super) unsafe fn $name(a, lda, b, ldb, m, n, k, c, ldc)`: the
    /// blocks of [`super::gemm_abt`], `$size × $size` where they fit, each
    /// computed by `$block`.
    macro_rules! abt_driver {
        ($(#[$doc:meta])* $name:ident: $block:ident, $size:literal, $features:literal) => {
            $(#[$doc])*
            ///
            /// # Safety
            /// The CPU has the features; the views are in bounds (checked by the caller).
            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            pub(super) unsafe fn $name(a: &[f32], lda: usize, b: &[f32], ldb: usize, m: usize, n: usize, k: usize, c: &mut [f32], ldc: usize) {
                let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
                for i0 in (0..m).step_by($size) {
                    for j0 in (0..n).step_by($size) {
                        let (a, b, c) = (ap.wrapping_add(i0 * lda), bp.wrapping_add(j0 * ldb), cp.wrapping_add(i0 * ldc + j0));
                        // SAFETY: the block's rows and columns are within m × n.
                        unsafe { abt_blocks!($block, (m - i0).min($size), (n - j0).min($size), a, lda, b, ldb, k, c, ldc) };
                    }
                }
            }
        };
    }

    abt_driver!(
        /// AVX-512: 4 × 4 blocks.
        abt_avx512: abt_block_avx512, 4, "avx512f"
    );
    abt_driver!(
        /// AVX2+FMA: 3 × 3 blocks (16 ymm registers).
        abt_avx2: abt_block_avx2, 3, "avx2,fma"
    );

    /// 8 rows × 32 columns per tile (16 zmm accumulators); a ragged right
    /// edge of up to 16 columns takes a one-vector tile, and masked loads
    /// and stores cover the last partial vector.
    ///
    /// # Safety
    /// The CPU has AVX-512F; the views are in bounds (checked by the caller).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn gemm_avx512(
        a: Panels<'_>,
        b: &[f32],
        ldb: usize,
        n: usize,
        start: Start<'_>,
        relu: bool,
        c: &mut [f32],
        ldc: usize,
    ) {
        for p in 0..a.rows.div_ceil(MR) {
            let mut j = 0;
            while j < n {
                // 17–24 columns left: one zmm per row and the rest as column
                // accumulators (a Winograd GEMM's 49 tiles = 32 + 16 + 1),
                // not a second zmm per row with 1–8 of its 16 lanes used.
                let w = match n - j {
                    17..=24 => 16,
                    rest => rest.min(32),
                };
                // SAFETY: forwarded from this function's contract.
                unsafe {
                    if a.lda == 0 {
                        panel_tile::<false>(a, p, b, ldb, j, w, start, relu, c, ldc);
                    } else {
                        panel_tile::<true>(a, p, b, ldb, j, w, start, relu, c, ldc);
                    }
                }
                j += w;
            }
        }
    }

    /// Rows `p·MR..` × columns `j..j + w` (`w ≤ 32`) by the tile or
    /// column kernel, `IN_PLACE` for a row-major `a` (see [`Rows`]).
    ///
    /// # Safety
    /// As for [`gemm_avx512`].
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn panel_tile<const IN_PLACE: bool>(
        a: Panels<'_>,
        p: usize,
        b: &[f32],
        ldb: usize,
        j: usize,
        w: usize,
        start: Start<'_>,
        relu: bool,
        c: &mut [f32],
        ldc: usize,
    ) {
        let live = MR.min(a.rows - p * MR);
        // SAFETY: forwarded from this function's contract.
        unsafe {
            match w {
                9.. if live < MR => {
                    // A partial panel (49 Winograd tiles = 6 panels + 1 row,
                    // 10 units = 8 + 2): blocks of 4, 2, 1 of its live rows,
                    // not FMAs for all eight.
                    let mut r0 = 0;
                    for rows in [4, 2, 1] {
                        if live - r0 >= rows {
                            let args = (a, p, r0, b, ldb, j, w, start, relu);
                            match (rows, w) {
                                (4, 17..) => tile_avx512::<2, 4, IN_PLACE>(args, c, ldc),
                                (4, _) => tile_avx512::<1, 4, IN_PLACE>(args, c, ldc),
                                (2, 17..) => tile_avx512::<2, 2, IN_PLACE>(args, c, ldc),
                                (2, _) => tile_avx512::<1, 2, IN_PLACE>(args, c, ldc),
                                (_, 17..) => tile_avx512::<2, 1, IN_PLACE>(args, c, ldc),
                                _ => tile_avx512::<1, 1, IN_PLACE>(args, c, ldc),
                            }
                            r0 += rows;
                        }
                    }
                }
                17.. => tile_avx512::<2, MR, IN_PLACE>((a, p, 0, b, ldb, j, w, start, relu), c, ldc),
                9.. => tile_avx512::<1, MR, IN_PLACE>((a, p, 0, b, ldb, j, w, start, relu), c, ldc),
                8 => columns_avx512::<8, IN_PLACE>(a, p, b, ldb, j, start, relu, c, ldc),
                7 => columns_avx512::<7, IN_PLACE>(a, p, b, ldb, j, start, relu, c, ldc),
                6 => columns_avx512::<6, IN_PLACE>(a, p, b, ldb, j, start, relu, c, ldc),
                5 => columns_avx512::<5, IN_PLACE>(a, p, b, ldb, j, start, relu, c, ldc),
                4 => columns_avx512::<4, IN_PLACE>(a, p, b, ldb, j, start, relu, c, ldc),
                3 => columns_avx512::<3, IN_PLACE>(a, p, b, ldb, j, start, relu, c, ldc),
                2 => columns_avx512::<2, IN_PLACE>(a, p, b, ldb, j, start, relu, c, ldc),
                _ => columns_avx512::<1, IN_PLACE>(a, p, b, ldb, j, start, relu, c, ldc),
            }
        }
    }

    /// Where a panel's values are: a packed panel (`panel[k][r]`), or
    /// `IN_PLACE` the rows of a row-major matrix, the last real row standing
    /// in for the padding rows of a partial panel (their products are not
    /// stored).
    #[derive(Clone, Copy)]
    struct Rows<const IN_PLACE: bool> {
        panel: *const f32,
        rows: [*const f32; MR],
    }

    impl<const IN_PLACE: bool> Rows<IN_PLACE> {
        fn of(a: &Panels<'_>, p: usize) -> Self {
            if IN_PLACE {
                let live = MR.min(a.rows - p * MR);
                let rows = std::array::from_fn(|r| a.data[(p * MR + r.min(live - 1)) * a.lda..].as_ptr());
                Self { panel: std::ptr::null(), rows }
            } else {
                Self { panel: a.panel(p).as_ptr(), rows: [std::ptr::null(); MR] }
            }
        }

        /// Value (r, k) of the panel.
        ///
        /// # Safety
        /// `r < MR`, `k <` the depth.
        #[inline(always)]
        unsafe fn at(&self, r: usize, k: usize) -> f32 {
            // SAFETY: the caller's bounds; a packed panel holds depth × MR
            // values, each in-place row `depth`.
            unsafe { if IN_PLACE { *self.rows[r].add(k) } else { *self.panel.add(k * MR + r) } }
        }

        /// Depth step k of the panel's eight rows.
        ///
        /// # Safety
        /// As [`Rows::at`]; the CPU has AVX.
        #[inline(always)]
        unsafe fn step(&self, k: usize) -> __m256 {
            // SAFETY: as in `at`.
            unsafe {
                if IN_PLACE {
                    let v: [f32; MR] = std::array::from_fn(|r| self.at(r, k));
                    _mm256_loadu_ps(v.as_ptr())
                } else {
                    _mm256_loadu_ps(self.panel.add(k * MR))
                }
            }
        }
    }

    /// `R` rows from `p·MR + r0` (of one panel) × columns `j..j + w`
    /// (`w ≤ 16·V`) with `V` zmm vectors per row.
    ///
    /// # Safety
    /// As for [`gemm_avx512`]; `r0 + R` rows of the panel are real.
    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(clippy::type_complexity)] // the GEMM's operands, as a tuple to pass on
    unsafe fn tile_avx512<const V: usize, const R: usize, const IN_PLACE: bool>(
        (a, p, r0, b, ldb, j, w, start, relu): (Panels<'_>, usize, usize, &[f32], usize, usize, usize, Start<'_>, bool),
        c: &mut [f32],
        ldc: usize,
    ) {
        let (bp, cp, panel) = (b.as_ptr(), c.as_mut_ptr(), Rows::<IN_PLACE>::of(&a, p));
        debug_assert!(r0 + R <= MR.min(a.rows - p * MR));
        let first = p * MR + r0;
        let mut masks = [0u16; V];
        for (v, m) in masks.iter_mut().enumerate() {
            *m = lanes(w.saturating_sub(16 * v));
        }
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for (r, vs) in acc.iter_mut().enumerate() {
            match start.bias(first + r) {
                Some(v) => *vs = [_mm512_set1_ps(v); V],
                None => {
                    for (v, x) in vs.iter_mut().enumerate() {
                        // SAFETY: row first + r, columns j..j+w of c are in
                        // bounds; masked-off lanes are not read.
                        *x = unsafe { _mm512_maskz_loadu_ps(masks[v], cp.wrapping_add((first + r) * ldc + j + 16 * v)) };
                    }
                }
            }
        }
        for k in 0..a.depth {
            let mut bv = [_mm512_setzero_ps(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                if masks[v] != 0 {
                    // SAFETY: the unmasked lanes, row k, columns j..j+w of
                    // b, are in bounds (the caller's assert); masked-off
                    // lanes are not accessed.
                    *x = unsafe { _mm512_maskz_loadu_ps(masks[v], bp.wrapping_add(k * ldb + j + 16 * v)) };
                }
            }
            for (r, vs) in acc.iter_mut().enumerate() {
                // SAFETY: r0 + r < MR, k < depth.
                let av = _mm512_set1_ps(unsafe { panel.at(r0 + r, k) });
                for (acc, x) in vs.iter_mut().zip(&bv) {
                    *acc = _mm512_fmadd_ps(av, *x, *acc);
                }
            }
        }
        for (r, vs) in acc.iter().enumerate() {
            for (v, &x) in vs.iter().enumerate() {
                if masks[v] == 0 {
                    continue;
                }
                let x = if relu { _mm512_max_ps(x, _mm512_setzero_ps()) } else { x };
                // SAFETY: row first + r, columns j..j+w of c are in bounds;
                // masked-off lanes are not written.
                unsafe { _mm512_mask_storeu_ps(cp.wrapping_add((first + r) * ldc + j + 16 * v), masks[v], x) };
            }
        }
    }

    /// Rows `p·MR..` (one panel) × the last `W ≤ 8` columns from `j`: a
    /// ragged right edge (a 14 × 14 plane has 196 = 12·16 + 4 columns). A
    /// row-wise tile would spend a full zmm FMA per row on a few lanes;
    /// here each column is one ymm accumulator over the panel's 8 rows (one
    /// load per depth step, the `b` values broadcast), with two sets of
    /// accumulators for even and odd depths to hide the FMA latency.
    ///
    /// # Safety
    /// As for [`gemm_avx512`].
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn columns_avx512<const W: usize, const IN_PLACE: bool>(
        a: Panels<'_>,
        p: usize,
        b: &[f32],
        ldb: usize,
        j: usize,
        start: Start<'_>,
        relu: bool,
        c: &mut [f32],
        ldc: usize,
    ) {
        const { assert!(MR == 8 && W <= 8) };
        let (bp, cp, panel) = (b.as_ptr(), c.as_mut_ptr(), Rows::<IN_PLACE>::of(&a, p));
        let rows = MR.min(a.rows - p * MR);
        let mut acc = [[_mm256_setzero_ps(); W], [_mm256_setzero_ps(); W]];
        for (col, x) in acc[0].iter_mut().enumerate() {
            let mut init = [0.0f32; MR];
            for (r, v) in init.iter_mut().enumerate().take(rows) {
                // SAFETY: row p·MR + r, column j + col of c is in bounds.
                *v = start.bias(p * MR + r).unwrap_or_else(|| unsafe { *cp.add((p * MR + r) * ldc + j + col) });
            }
            // SAFETY: `init` holds 8 values.
            *x = unsafe { _mm256_loadu_ps(init.as_ptr()) };
        }
        let step = |acc: &mut [__m256; W], k: usize| {
            // SAFETY: the panel holds depth × MR values; columns j..j+W of
            // row k of b are in bounds (the caller's assert).
            let av = unsafe { panel.step(k) };
            for (col, x) in acc.iter_mut().enumerate() {
                *x = _mm256_fmadd_ps(av, _mm256_set1_ps(unsafe { *bp.add(k * ldb + j + col) }), *x);
            }
        };
        let mut k = 0;
        while k + 2 <= a.depth {
            step(&mut acc[0], k);
            step(&mut acc[1], k + 1);
            k += 2;
        }
        if k < a.depth {
            step(&mut acc[0], k);
        }
        for (col, (&even, &odd)) in acc[0].iter().zip(&acc[1]).enumerate() {
            let mut x = _mm256_add_ps(even, odd);
            if relu {
                x = _mm256_max_ps(x, _mm256_setzero_ps());
            }
            let mut out = [0.0f32; MR];
            // SAFETY: `out` holds 8 values.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), x) };
            for (r, v) in out.iter().enumerate().take(rows) {
                // SAFETY: row p·MR + r, column j + col of c is in bounds.
                unsafe { *cp.add((p * MR + r) * ldc + j + col) = *v };
            }
        }
    }

    /// 4 rows × 16 columns per step (8 ymm accumulators: AVX2 has 16
    /// registers), two steps per panel; the ragged right edge in plain Rust.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; the views are in bounds (checked by the caller).
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn gemm_avx2(
        a: Panels<'_>,
        b: &[f32],
        ldb: usize,
        n: usize,
        start: Start<'_>,
        relu: bool,
        c: &mut [f32],
        ldc: usize,
    ) {
        const R: usize = 4;
        let (bp, cp) = (b.as_ptr(), c.as_mut_ptr());
        let full = n / 16 * 16;
        for p in 0..a.rows.div_ceil(MR) {
            let panel = a.panel(p).as_ptr();
            for half in 0..MR / R {
                let first = p * MR + half * R;
                if first >= a.rows {
                    break;
                }
                let rows = R.min(a.rows - first);
                for j in (0..full).step_by(16) {
                    let mut acc = [[_mm256_setzero_ps(); 2]; R];
                    for (r, pair) in acc.iter_mut().enumerate().take(rows) {
                        *pair = match start.bias(first + r) {
                            Some(v) => [_mm256_set1_ps(v); 2],
                            // SAFETY: row first + r, columns j..j+16 ≤ n of c are in bounds.
                            None => unsafe {
                                let row = cp.add((first + r) * ldc + j);
                                [_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8))]
                            },
                        };
                    }
                    for k in 0..a.depth {
                        // SAFETY: columns j..j+16 ≤ n of row k are in bounds.
                        let (b0, b1) = unsafe {
                            let row = bp.add(k * ldb + j);
                            (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)))
                        };
                        for (r, pair) in acc.iter_mut().enumerate() {
                            // SAFETY: the panel holds depth × MR values.
                            let av = _mm256_set1_ps(unsafe { *panel.add(k * MR + half * R + r) });
                            pair[0] = _mm256_fmadd_ps(av, b0, pair[0]);
                            pair[1] = _mm256_fmadd_ps(av, b1, pair[1]);
                        }
                    }
                    for (r, pair) in acc.iter().enumerate().take(rows) {
                        let (mut v0, mut v1) = (pair[0], pair[1]);
                        if relu {
                            v0 = _mm256_max_ps(v0, _mm256_setzero_ps());
                            v1 = _mm256_max_ps(v1, _mm256_setzero_ps());
                        }
                        // SAFETY: row first + r, columns j..j+16 ≤ n of c are in bounds.
                        unsafe {
                            let row = cp.add((first + r) * ldc + j);
                            _mm256_storeu_ps(row, v0);
                            _mm256_storeu_ps(row.add(8), v1);
                        }
                    }
                }
            }
        }
        if full < n {
            gemm_portable(a, b, ldb, full, n, start, relu, c, ldc);
        }
    }

    /// `MI × NJ` dot products over the depth at once, one zmm accumulator
    /// each (up to 4 × 4: 16 accumulators and 8 loaded vectors), the last
    /// partial vector masked.
    ///
    /// # Safety
    /// The CPU has AVX-512F; rows `i0..i0+MI` of `a`, `j0..j0+NJ` of `b`
    /// and the block of `c` are in bounds.
    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn abt_block_avx512<const MI: usize, const NJ: usize>(
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        k: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); NJ]; MI];
        let mut p = 0;
        while p < k {
            let mask = lanes(k - p);
            // SAFETY: lanes p..min(p+16, k) of each row are in bounds; the
            // masked-off lanes are not accessed.
            let (av, bv) = unsafe {
                (
                    std::array::from_fn::<_, MI, _>(|i| _mm512_maskz_loadu_ps(mask, a.add(i * lda + p))),
                    std::array::from_fn::<_, NJ, _>(|j| _mm512_maskz_loadu_ps(mask, b.add(j * ldb + p))),
                )
            };
            for (accs, &x) in acc.iter_mut().zip(&av) {
                for (s, &y) in accs.iter_mut().zip(&bv) {
                    *s = _mm512_fmadd_ps(x, y, *s);
                }
            }
            p += 16;
        }
        for (i, accs) in acc.iter().enumerate() {
            for (j, &s) in accs.iter().enumerate() {
                // SAFETY: c[i][j] of the block is in bounds.
                unsafe { *c.add(i * ldc + j) += _mm512_reduce_add_ps(s) };
            }
        }
    }

    /// As [`abt_block_avx512`] with ymm vectors, up to 3 × 3 (AVX2 has 16
    /// registers), the depth's tail in plain arithmetic.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; the block is in bounds.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn abt_block_avx2<const MI: usize, const NJ: usize>(
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        k: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); NJ]; MI];
        let full = k / 8 * 8;
        for p in (0..full).step_by(8) {
            // SAFETY: lanes p..p+8 ≤ k of each row are in bounds.
            let (av, bv) = unsafe {
                (
                    std::array::from_fn::<_, MI, _>(|i| _mm256_loadu_ps(a.add(i * lda + p))),
                    std::array::from_fn::<_, NJ, _>(|j| _mm256_loadu_ps(b.add(j * ldb + p))),
                )
            };
            for (accs, &x) in acc.iter_mut().zip(&av) {
                for (s, &y) in accs.iter_mut().zip(&bv) {
                    *s = _mm256_fmadd_ps(x, y, *s);
                }
            }
        }
        for (i, accs) in acc.iter().enumerate() {
            for (j, &s) in accs.iter().enumerate() {
                let mut lanes = [0.0f32; 8];
                // SAFETY: `lanes` holds 8 values.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), s) };
                let mut sum: f32 = lanes.iter().sum();
                for p in full..k {
                    // SAFETY: p < k: in bounds.
                    sum += unsafe { *a.add(i * lda + p) * *b.add(j * ldb + p) };
                }
                // SAFETY: c[i][j] of the block is in bounds.
                unsafe { *c.add(i * ldc + j) += sum };
            }
        }
    }

    /// [`super::gemv`]: eight rows at a time against each image (one zmm
    /// accumulator per row: eight independent FMA chains, and eight weight
    /// streams in flight — measured a little faster than four rows of two
    /// accumulators, as fast as eight of two), the leftover rows one at a
    /// time in four accumulators; the last partial vector masked.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `w`, `x` and `y` hold `rows × depth`,
    /// `images × depth` and `images × rows` values.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gemv_avx512(w: &[f32], rows: usize, depth: usize, x: &[f32], images: usize, y: &mut [f32]) {
        let mut r = 0;
        while r < rows {
            let block = if rows - r >= 8 { 8 } else { 1 };
            for n in 0..images {
                // SAFETY: rows r..r+block of w and image n of x hold
                // `depth` values each (the caller's contract).
                let (wr, xn) = unsafe { (w.as_ptr().add(r * depth), x.as_ptr().add(n * depth)) };
                // SAFETY: as above.
                let sums: [f32; 8] = unsafe {
                    if block == 8 {
                        let acc = gemv_block::<8, 1>(wr, xn, depth).map(|[a]| a);
                        let mut sums = [0.0f32; 8];
                        _mm256_storeu_ps(sums.as_mut_ptr(), sum_each(acc));
                        sums
                    } else {
                        let [acc] = gemv_block::<1, 4>(wr, xn, depth);
                        let s = _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, &v| _mm512_add_ps(s, v)));
                        [s, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
                    }
                };
                for (k, s) in sums.iter().enumerate().take(block) {
                    y[n * rows + r + k] += s;
                }
            }
            r += block;
        }
    }

    /// [`super::gemv_on`] for `N` (≤ 4) images: two blocks of 16 rows at a
    /// time, two accumulators (even and odd depths) per block and image —
    /// each weight vector loaded once for all `N`.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `wp` holds `rows.div_ceil(16) × depth` vectors
    /// as `pack_gemv` stores them, `x` and `y` `N` images of `depth` and
    /// `rows` values.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gemv_lanes<const N: usize>(wp: &[f32], rows: usize, depth: usize, x: &[f32], y: &mut [f32]) {
        let blocks = rows.div_ceil(16);
        let mut b = 0;
        while b < blocks {
            // SAFETY: blocks b.. hold `depth` vectors each; the images'
            // inputs `depth` values each.
            let (base, xp) = unsafe { (wp.as_ptr().add(b * depth * 16), x.as_ptr()) };
            let sums: [[__m512; 2]; N] = if blocks - b >= 2 {
                unsafe { lanes_blocks::<N, 2>(base, depth, xp) }
            } else {
                unsafe { lanes_blocks::<N, 1>(base, depth, xp) }.map(|[s]| [s, _mm512_setzero_ps()])
            };
            for (n, sums) in sums.iter().enumerate() {
                for (j, &sum) in sums.iter().enumerate().take(blocks - b) {
                    let r0 = (b + j) * 16;
                    let m = lanes(rows - r0);
                    // SAFETY: rows r0.. < rows of image n (masked).
                    unsafe {
                        let at = y.as_mut_ptr().add(n * rows + r0);
                        _mm512_mask_storeu_ps(at, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, at), sum));
                    }
                }
            }
            b += 2;
        }
    }

    /// `B` consecutive blocks of [`gemv_lanes`] against `N` images.
    ///
    /// # Safety
    /// As [`gemv_lanes`], for the blocks at `base`.
    #[allow(clippy::needless_range_loop)] // constant indices keep the accumulators in registers
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn lanes_blocks<const N: usize, const B: usize>(base: *const f32, depth: usize, x: *const f32) -> [[__m512; B]; N] {
        let zero = _mm512_setzero_ps();
        let (mut even, mut odd) = ([[zero; B]; N], [[zero; B]; N]);
        let mut k = 0;
        while k + 2 <= depth {
            for (dk, acc) in [(0, &mut even), (1, &mut odd)] {
                // SAFETY: depth k + dk < depth of each block and image.
                let xs: [__m512; N] = std::array::from_fn(|n| _mm512_set1_ps(unsafe { *x.add(n * depth + k + dk) }));
                for j in 0..B {
                    let w = unsafe { _mm512_loadu_ps(base.add((j * depth + k + dk) * 16)) };
                    for n in 0..N {
                        acc[n][j] = _mm512_fmadd_ps(w, xs[n], acc[n][j]);
                    }
                }
            }
            k += 2;
        }
        if k < depth {
            // SAFETY: as above, for the last depth.
            let xs: [__m512; N] = std::array::from_fn(|n| _mm512_set1_ps(unsafe { *x.add(n * depth + k) }));
            for j in 0..B {
                let w = unsafe { _mm512_loadu_ps(base.add((j * depth + k) * 16)) };
                for n in 0..N {
                    even[n][j] = _mm512_fmadd_ps(w, xs[n], even[n][j]);
                }
            }
        }
        std::array::from_fn(|n| std::array::from_fn(|j| _mm512_add_ps(even[n][j], odd[n][j])))
    }

    /// The dot products of `R` consecutive rows (`depth` apart from `w`)
    /// with `x`, `A` zmm accumulators per row.
    ///
    /// # Safety
    /// The CPU has AVX-512F; the rows and `x` hold `depth` values.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn gemv_block<const R: usize, const A: usize>(w: *const f32, x: *const f32, depth: usize) -> [[__m512; A]; R] {
        let mut acc = [[_mm512_setzero_ps(); A]; R];
        let step = 16 * A;
        let mut k = 0;
        while k + step <= depth {
            for a in 0..A {
                // SAFETY: k + 16·a + 16 ≤ depth.
                let xv = unsafe { _mm512_loadu_ps(x.add(k + 16 * a)) };
                for (row, accs) in acc.iter_mut().enumerate() {
                    // SAFETY: as above, in row `row`.
                    accs[a] = unsafe { _mm512_fmadd_ps(_mm512_loadu_ps(w.add(row * depth + k + 16 * a)), xv, accs[a]) };
                }
            }
            k += step;
        }
        while k < depth {
            let mask = lanes(depth - k);
            // SAFETY: the unmasked lanes k.. < depth are in bounds.
            let xv = unsafe { _mm512_maskz_loadu_ps(mask, x.add(k)) };
            for (row, accs) in acc.iter_mut().enumerate() {
                // SAFETY: as above, in row `row`.
                accs[0] = unsafe { _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, w.add(row * depth + k)), xv, accs[0]) };
            }
            k += 16;
        }
        acc
    }

    /// The lane sums of eight vectors, as one: halves added, then two
    /// rounds of pairwise horizontal adds and the 128-bit halves combined
    /// (about 25 instructions where eight separate reductions took about
    /// 80; LeNet-5 at batch 1 measured 0–4% faster — its dense layers are
    /// bound by reading their weights from L2).
    #[target_feature(enable = "avx512f")]
    fn sum_each(v: [__m512; 8]) -> __m256 {
        let high = |v: __m512| _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
        let h: [__m256; 8] = v.map(|v| _mm256_add_ps(_mm512_castps512_ps256(v), high(v)));
        let (a, b) = (_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
        let (c, d) = (_mm256_hadd_ps(h[4], h[5]), _mm256_hadd_ps(h[6], h[7]));
        // Each 128-bit half: [v0 v1 v2 v3] and [v4 v5 v6 v7], partial sums.
        let (lo, hi) = (_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
        _mm256_add_ps(_mm256_permute2f128_ps::<0x20>(lo, hi), _mm256_permute2f128_ps::<0x31>(lo, hi))
    }

    /// [`super::gemv`] with four ymm accumulators, the tail one by one.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; the buffers as for [`gemv_avx512`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gemv_avx2(w: &[f32], rows: usize, depth: usize, x: &[f32], images: usize, y: &mut [f32]) {
        for r in 0..rows {
            // SAFETY: row r of w has `depth` values (the caller's contract).
            let wr = unsafe { w.as_ptr().add(r * depth) };
            for n in 0..images {
                // SAFETY: image n of x likewise.
                let xn = unsafe { x.as_ptr().add(n * depth) };
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut k = 0;
                while k + 32 <= depth {
                    for (v, a) in acc.iter_mut().enumerate() {
                        // SAFETY: k + 8·v + 8 ≤ depth.
                        *a = unsafe { _mm256_fmadd_ps(_mm256_loadu_ps(wr.add(k + 8 * v)), _mm256_loadu_ps(xn.add(k + 8 * v)), *a) };
                    }
                    k += 32;
                }
                while k + 8 <= depth {
                    // SAFETY: k + 8 ≤ depth.
                    acc[0] = unsafe { _mm256_fmadd_ps(_mm256_loadu_ps(wr.add(k)), _mm256_loadu_ps(xn.add(k)), acc[0]) };
                    k += 8;
                }
                let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
                let mut lanes = [0.0f32; 8];
                // SAFETY: `lanes` holds 8 values.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
                let mut total: f32 = lanes.iter().sum();
                for j in k..depth {
                    // SAFETY: j < depth.
                    total += unsafe { *wr.add(j) * *xn.add(j) };
                }
                y[n * rows + r] += total;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_moves_every_element_once() {
        // Whole 8 × 8 blocks only, ragged in rows, columns or both.
        for (rows, cols) in [(1, 1), (3, 70), (64, 3136), (17, 33), (1024, 5), (24, 40), (9, 8), (8, 19)] {
            let src: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
            let mut dst = vec![f32::NAN; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dst[c * rows + r], src[r * cols + c], "{rows}×{cols} at ({r}, {c})");
                }
            }
        }
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

    #[test]
    fn packed_kernels_match_the_definition_at_every_level() {
        use crate::compiled::{CpuLevel, cpu_level};
        let levels: Vec<CpuLevel> =
            [CpuLevel::Baseline, CpuLevel::Avx2, CpuLevel::Avx512].into_iter().filter(|&l| l <= cpu_level()).collect();
        for (rows, depth, n, pad) in
            [(1, 1, 1, 0), (6, 25, 784, 0), (8, 3, 33, 5), (16, 150, 100, 0), (13, 7, 47, 3), (64, 40, 196, 1), (9, 0, 5, 0)]
                .into_iter()
                // Every ragged right edge of one to eight columns.
                .chain([(5, 9, 40, 0), (12, 4, 7, 2), (3, 5, 35, 0), (8, 2, 34, 1), (10, 11, 38, 0)])
                // 17–24 columns left: 16 in a tile, the rest as columns.
                .chain([(11, 6, 49, 2), (9, 5, 20, 0), (8, 3, 56, 1)])
                // Partial panels of every height under a tile (blocks of 4, 2, 1 rows).
                .chain([(15, 4, 64, 1), (7, 5, 20, 0), (2, 3, 17, 0), (4, 6, 12, 0)])
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
            for &level in &levels {
                for (bias, relu) in [(&bias[..], false), (&[][..], true), (&bias[..], true)] {
                    let mut c = vec![f32::NAN; rows * ldc];
                    gemm_packed_at(level, &packed, &b, ldb, n, bias, relu, &mut c, ldc);
                    if level == CpuLevel::Avx512 {
                        // `a` read in place: the same operations, so the same bits.
                        let mut in_place = vec![f32::NAN; rows * ldc];
                        gemm_rows(&a, rows, depth, &b, ldb, n, bias, relu, &mut in_place, ldc);
                        assert!(c.iter().zip(&in_place).all(|(p, q)| p.to_bits() == q.to_bits()), "gemm_rows {rows}×{depth}×{n}");
                    }
                    for i in 0..rows {
                        for j in 0..ldc {
                            let got = c[i * ldc + j];
                            if j >= n {
                                assert!(got.is_nan(), "{level:?}: wrote past column {n}");
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
                                "{level:?} {rows}×{depth}×{n} [{i}][{j}]: {got} vs {want}"
                            );
                        }
                    }
                }
                // Accumulating: c += a·b, columns past n untouched.
                let before: Vec<f32> = (0..rows * ldc).map(|t| if t % ldc < n { (t as f32 * 0.7).sin() } else { f32::NAN }).collect();
                let mut c = before.clone();
                gemm_packed_acc_at(level, &packed, &b, ldb, n, &mut c, ldc);
                for i in 0..rows {
                    for j in 0..ldc {
                        let got = c[i * ldc + j];
                        if j >= n {
                            assert!(got.is_nan(), "{level:?}: accumulated past column {n}");
                            continue;
                        }
                        let want = before[i * ldc + j] + (0..depth).map(|k| a[i * depth + k] * b[k * ldb + j]).sum::<f32>();
                        assert!(
                            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "{level:?} acc {rows}×{depth}×{n} [{i}][{j}]: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn abt_kernels_match_the_definition_at_every_level() {
        use crate::compiled::{CpuLevel, cpu_level};
        let levels: Vec<CpuLevel> =
            [CpuLevel::Baseline, CpuLevel::Avx2, CpuLevel::Avx512].into_iter().filter(|&l| l <= cpu_level()).collect();
        for (m, n, k, pad) in [(1, 1, 1, 0), (6, 25, 784, 0), (16, 150, 100, 3), (5, 7, 13, 1), (9, 10, 33, 0), (4, 4, 16, 0), (3, 2, 7, 2)]
        {
            let (lda, ldb, ldc) = (k + pad, k + 2 * pad, n + pad);
            let a: Vec<f32> = (0..m * lda).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n * ldb).map(|i| (i as f32 * 0.11).cos()).collect();
            for &level in &levels {
                let mut c: Vec<f32> = (0..m * ldc).map(|i| i as f32).collect();
                gemm_abt_at(level, &a, lda, &b, ldb, m, n, k, &mut c, ldc);
                for i in 0..m {
                    for j in 0..ldc {
                        let got = c[i * ldc + j];
                        let start = (i * ldc + j) as f32;
                        if j >= n {
                            assert_eq!(got, start, "{level:?}: wrote past column {n}");
                            continue;
                        }
                        let want = start + (0..k).map(|p| a[i * lda + p] * b[j * ldb + p]).sum::<f32>();
                        assert!((got - want).abs() <= 1e-3 * (1.0 + want.abs()), "{level:?} {m}×{n}×{k} [{i}][{j}]: {got} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn gemv_matches_the_definition_at_every_level() {
        use crate::compiled::{CpuLevel, cpu_level};
        let levels: Vec<CpuLevel> =
            [CpuLevel::Baseline, CpuLevel::Avx2, CpuLevel::Avx512].into_iter().filter(|&l| l <= cpu_level()).collect();
        // Rows in one, two, three blocks of 16 and parts of one; odd and
        // even depths; 1 to 6 images (the packed path takes four at a time).
        let shapes = [(1, 1, 1), (120, 400, 1), (10, 84, 3), (7, 3136, 2), (5, 33, 4), (9, 17, 1), (3, 0, 2), (33, 40, 5), (48, 7, 6)];
        for (rows, depth, images) in shapes {
            let w: Vec<f32> = (0..rows * depth).map(|i| (i as f32 * 0.37).sin()).collect();
            let x: Vec<f32> = (0..images * depth).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut packed = PackedA::default();
            if reads_rows_in_place() {
                pack_gemv(&w, rows, depth, &mut packed);
            }
            // `None`: over the packed weight, where it reads one.
            let runs = levels.iter().map(Some).chain(reads_rows_in_place().then_some(None));
            for level in runs {
                let mut y: Vec<f32> = (0..images * rows).map(|i| i as f32).collect();
                match level {
                    Some(&level) => gemv_at(level, &w, rows, depth, &x, images, &mut y),
                    None => gemv_on(&w, &packed, rows, depth, &x, images, &mut y),
                }
                for n in 0..images {
                    for r in 0..rows {
                        let want = (n * rows + r) as f32 + (0..depth).map(|k| w[r * depth + k] * x[n * depth + k]).sum::<f32>();
                        let got = y[n * rows + r];
                        assert!(
                            (got - want).abs() <= 1e-3 * (1.0 + want.abs()),
                            "{level:?} {rows}×{depth}, image {n} row {r}: {got} vs {want}"
                        );
                    }
                }
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

//! Weights packed once for the microkernels: [`PackedA`], panels of
//! [`MR`] rows stored depth-major, and [`Panels`], the view the
//! microkernels read (packed panels, or a row-major matrix in place).

use crate::cpu::PARALLEL_MIN;
use crate::kernels::simd::{Simd, multiversion};

/// Rows of a packed panel: the microkernels compute up to `MR` rows of
/// the output at a time (AVX-512: all eight; AVX2: two halves of four).
pub const MR: usize = 8;

/// A weight matrix (`rows × depth`, row-major) packed once into panels of
/// [`MR`] rows, each stored depth-major (`panel[k][r]`), zero-padded to a
/// whole panel: the layout the microkernels read with one broadcast per
/// row and step. Conv stages pack their weights when they change (at load,
/// after an optimizer step), not per image.
#[derive(Debug, Clone, Default)]
pub struct PackedA {
    pub(super) data: Vec<f32>,
    pub(super) rows: usize,
    pub(super) depth: usize,
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
            // 8 × 8 blocks, each an in-register transpose: eight rows' runs
            // in, one contiguous run out (moving one value per load and
            // store, repacking a dense layer's 12.8 MB after every step
            // took a tenth of it).
            pack_blocks(&a[p * MR * depth..][..MR * depth], depth, panel);
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
        if threads <= 1 || self.data.len() < PARALLEL_MIN {
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
    /// `gemm_block`. The values are zeroed, then `fill` writes
    /// them (the allocation is reused).
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

multiversion! {
    /// A full panel from its eight rows (`rows`, `depth` values each):
    /// 8 × 8 blocks transposed in registers, then the last depths one by one.
    fn pack_blocks(rows: &[f32], depth: usize, panel: &mut [f32]) => |s| {
        assert!(rows.len() >= MR * depth && panel.len() >= MR * depth);
        let full = depth / 8 * 8;
        for k0 in (0..full).step_by(8) {
            // SAFETY: the eight rows hold `depth` ≥ k0 + 8 values each, the
            // panel depth × MR (asserted).
            unsafe { s.transpose8(rows[k0..].as_ptr(), depth, panel[k0 * MR..].as_mut_ptr(), MR) };
        }
        for k in full..depth {
            for r in 0..MR {
                panel[k * MR + r] = rows[r * depth + k];
            }
        }
    }
}

/// A view of whole panels of a [`PackedA`] — or, with `lda` non-zero, of
/// a row-major matrix read in place (rows `lda` apart; see
/// [`super::gemm_rows`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Panels<'a> {
    pub(super) data: &'a [f32],
    pub(super) rows: usize,
    pub(super) depth: usize,
    pub(super) lda: usize,
}

impl<'a> Panels<'a> {
    /// `rows × depth` already in [`PackedA`]'s layout (`data[p][k][r]`,
    /// whole panels): an operand a transform wrote packed.
    pub(crate) fn packed(data: &'a [f32], rows: usize, depth: usize) -> Self {
        assert!(data.len() >= rows.div_ceil(MR) * MR * depth, "Panels::packed: {rows} × {depth} do not fit {} values", data.len());
        Self { data, rows, depth, lda: 0 }
    }

    /// `rows × depth` row-major with rows `lda` apart, read in place by
    /// the microkernel (see [`super::gemm_rows`]).
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

/// Where a panel's values are: a packed panel (`panel[k][r]`), or
/// `IN_PLACE` the rows of a row-major matrix, the last real row standing
/// in for the padding rows of a partial panel (their products are not
/// stored).
#[derive(Clone, Copy)]
pub(super) struct Rows<const IN_PLACE: bool> {
    panel: *const f32,
    rows: [*const f32; MR],
}

impl<const IN_PLACE: bool> Rows<IN_PLACE> {
    #[inline(always)]
    pub(super) fn of(a: &Panels<'_>, p: usize) -> Self {
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
    pub(super) unsafe fn at(&self, r: usize, k: usize) -> f32 {
        // SAFETY: the caller's bounds; a packed panel holds depth × MR
        // values, each in-place row `depth`.
        unsafe { if IN_PLACE { *self.rows[r].add(k) } else { *self.panel.add(k * MR + r) } }
    }

    /// Depth step k of the panel's eight rows, as one eight-lane vector.
    ///
    /// # Safety
    /// As [`Rows::at`].
    #[inline(always)]
    pub(super) unsafe fn step<O: Simd>(&self, o: O, k: usize) -> O::F32 {
        // SAFETY: as in `at`.
        unsafe {
            if IN_PLACE {
                let v: [f32; MR] = std::array::from_fn(|r| self.at(r, k));
                o.load(v.as_ptr())
            } else {
                o.load(self.panel.add(k * MR))
            }
        }
    }
}

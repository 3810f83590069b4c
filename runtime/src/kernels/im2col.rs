//! The data movement around a conv stage's GEMMs — the im2col gather, its
//! transpose im2row for the weight gradient ([`weight_grad`]), and the 2×2
//! max pool — written once for the `network!` code and the JIT (which calls
//! them: Cranelift's vectors are 128 bits wide), with an explicit AVX-512
//! path: a row of up to 16 values is one masked load and store, a 2×2 pool
//! takes 16 outputs per step.

use std::cell::RefCell;

use super::{CpuLevel, cpu_level};
use crate::gemm::{PackedA, gemm_packed_acc};
use crate::ops::Activation;

/// What im2col needs of a conv: input `c × h × w`, kernel, stride,
/// padding, output `oh × ow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Im2col {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub oh: usize,
    pub ow: usize,
}

impl Im2col {
    /// The zero-bordered image's height and width.
    pub const fn padded(&self) -> (usize, usize) {
        (self.h + 2 * self.pad[0], self.w + 2 * self.pad[1])
    }

    /// The zero-bordered copy's length (0 without padding: im2col reads the image).
    pub const fn xpad_len(&self) -> usize {
        if self.pad[0] == 0 && self.pad[1] == 0 {
            0
        } else {
            let (hp, wp) = self.padded();
            self.c * hp * wp
        }
    }

    /// Whether the output size fits the padded input: the last window of
    /// each axis ends inside it.
    pub fn fits(&self) -> bool {
        let (hp, wp) = self.padded();
        let fits = |o: usize, s: usize, k: usize, p: usize| o == 0 || (o - 1) * s + k <= p;
        fits(self.oh, self.stride[0], self.kernel[0], hp) && fits(self.ow, self.stride[1], self.kernel[1], wp)
    }

    /// The im2col matrix's length: taps × output positions.
    pub const fn cols_len(&self) -> usize {
        self.c * self.kernel[0] * self.kernel[1] * self.oh * self.ow
    }
}

/// `cols[(ci·kh + ky)·kw + kx][oy·ow + ox] = x[ci][oy·sh + ky − ph][ox·sw + kx − pw]`,
/// zero where that falls into the padding. The image is first copied into
/// the interior of `xpad` (`xpad_len()` values whose borders the caller
/// keeps zero: only the interior is written here), so that every row of
/// `cols` is one copy of `ow` values (stride 1).
pub fn im2col(d: &Im2col, x: &[f32], xpad: &mut [f32], cols: &mut [f32]) {
    check(d, x, xpad, cols);
    let (hp, wp) = d.padded();
    #[cfg(target_arch = "x86_64")]
    if cpu_level() == CpuLevel::Avx512 && d.stride[1] == 1 {
        // SAFETY: `cpu_level` found AVX-512 on this CPU; the asserts above
        // bound every row read and written.
        return unsafe { x86::im2col_avx512(d, x, xpad, cols) };
    }
    let padded = pad(d, x, xpad, |dst, src| dst.copy_from_slice(src));
    let [kh, kw] = d.kernel;
    let [sh, sw] = d.stride;
    let (plane, ow) = (d.oh * d.ow, d.ow);
    for ci in 0..d.c {
        for ky in 0..kh {
            for kx in 0..kw {
                let row = &mut cols[((ci * kh + ky) * kw + kx) * plane..][..plane];
                for (oy, out) in row.chunks_exact_mut(ow).enumerate() {
                    let src = &padded[(ci * hp + oy * sh + ky) * wp + kx..];
                    for (ox, o) in out.iter_mut().enumerate() {
                        *o = src[ox * sw];
                    }
                }
            }
        }
    }
}

/// The transpose of [`im2col`]: `rows[oy·ow + ox][(ci·kh + ky)·kw + kx]`,
/// one row of taps per output position — each `(ci, ky)` a run of `kw`
/// adjacent inputs. `rows` holds `cols_len()` values.
pub fn im2row(d: &Im2col, x: &[f32], xpad: &mut [f32], rows: &mut [f32]) {
    check(d, x, xpad, rows);
    #[cfg(target_arch = "x86_64")]
    if cpu_level() == CpuLevel::Avx512 {
        // SAFETY: `cpu_level` found AVX-512 on this CPU; `check` bounds every
        // run read and written.
        return unsafe { x86::im2row_avx512(d, x, xpad, rows) };
    }
    let padded = pad(d, x, xpad, |dst, src| dst.copy_from_slice(src));
    let [kh, kw] = d.kernel;
    let [sh, sw] = d.stride;
    let (hp, wp) = d.padded();
    let taps = d.c * kh * kw;
    for (q, row) in rows.chunks_exact_mut(taps).take(d.oh * d.ow).enumerate() {
        let (oy, ox) = (q / d.ow, q % d.ow);
        for (run, out) in row.chunks_exact_mut(kw).enumerate() {
            let (ci, ky) = (run / kh, run % kh);
            out.copy_from_slice(&padded[(ci * hp + oy * sh + ky) * wp + ox * sw..][..kw]);
        }
    }
}

/// The adjoint of [`im2col`], an input gradient from the gradient at the
/// columns: `dx` (`c × h × w`, written in full) is, at each input, the sum
/// of the entries of `cols` gathered from it. On AVX-512, for stride 1:
/// each vector of 16 inputs of a row sums the `kh × kw` column rows that
/// read it, shifted and masked at the output's edges, then is stored once
/// (adding into `dx` tap by tap would load and store each input `kh·kw`
/// times, each add waiting on the last one's store).
pub fn col2im(d: &Im2col, cols: &[f32], dx: &mut [f32]) {
    assert!(cols.len() >= d.cols_len() && dx.len() >= d.c * d.h * d.w, "col2im: buffers shorter than the geometry");
    assert!(d.fits(), "col2im: the output size does not fit the padded input");
    #[cfg(target_arch = "x86_64")]
    if cpu_level() == CpuLevel::Avx512 && d.stride == [1, 1] {
        // SAFETY: `cpu_level` found AVX-512 on this CPU; the asserts bound
        // every unmasked lane read and written.
        return unsafe { x86::col2im_avx512(d, cols, dx) };
    }
    let [kh, kw] = d.kernel;
    let [sh, sw] = d.stride;
    let [ph, pw] = d.pad;
    let (plane, ow) = (d.oh * d.ow, d.ow);
    dx[..d.c * d.h * d.w].fill(0.0);
    for ci in 0..d.c {
        let dxp = &mut dx[ci * d.h * d.w..][..d.h * d.w];
        for ky in 0..kh {
            let rows = crate::interp::conv::valid_outputs(d.oh, d.h, sh, ky, ph);
            for kx in 0..kw {
                let valid = crate::interp::conv::valid_outputs(ow, d.w, sw, kx, pw);
                let row = &cols[((ci * kh + ky) * kw + kx) * plane..][..plane];
                for oy in rows.clone() {
                    let src = &row[oy * ow..][..ow];
                    let dxrow = &mut dxp[(oy * sh + ky - ph) * d.w..][..d.w];
                    for ox in valid.clone() {
                        dxrow[ox * sw + kx - pw] += src[ox];
                    }
                }
            }
        }
    }
}

/// `gw += dz · im2row(x)`: one image's weight gradient (`filters × taps`)
/// from the gradient at its conv output (`dz`, `filters × oh·ow`), as a
/// packed GEMM — `dz` packed (it is small), the transposed gather read in
/// place. (A dot-product formulation, `dz · colsᵀ`, reduced every output
/// across vector lanes and reached about 60% of peak; this one 90%.)
/// `rows` is scratch for the gather (`cols_len()` values). Convs that
/// [`direct::applies`](super::direct::applies) to take their gradient
/// from the image in place instead ([`super::direct::weight_grad`]).
pub fn weight_grad(d: &Im2col, x: &[f32], xpad: &mut [f32], rows: &mut [f32], dz: &[f32], filters: usize, gw: &mut [f32]) {
    if super::direct::applies(d) {
        super::direct::weight_grad(d, x, dz, filters, gw);
        return;
    }
    thread_local! {
        // The packed dz, reused from image to image on each thread.
        static PACKED: RefCell<PackedA> = RefCell::new(PackedA::default());
    }
    let (plane, taps) = (d.oh * d.ow, d.c * d.kernel[0] * d.kernel[1]);
    im2row(d, x, xpad, rows);
    PACKED.with_borrow_mut(|packed| {
        packed.pack(&dz[..filters * plane], filters, plane);
        gemm_packed_acc(packed, rows, taps, taps, gw, taps);
    });
}

/// `out[r] += Σ x[r·len .. (r + 1)·len]` for each row `r < out.len()`: a
/// conv's bias gradient from its `dz`. The sum of each row runs in 64
/// independent lanes (four vectors of partial sums) added up as a tree,
/// not one chain of adds each waiting on the last — summing LeNet-5's conv1 planes one add at a time
/// took 4% of a training step.
pub fn add_row_sums(x: &[f32], len: usize, out: &mut [f32]) {
    assert!(x.len() >= out.len() * len, "add_row_sums: {} values for {} rows of {len}", x.len(), out.len());
    if len == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
        fn avx512(x: &[f32], len: usize, out: &mut [f32]) {
            row_sums(x, len, out)
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(x: &[f32], len: usize, out: &mut [f32]) {
            row_sums(x, len, out)
        }
        match cpu_level() {
            // SAFETY: `cpu_level` found the features each version enables.
            CpuLevel::Avx512 => return unsafe { avx512(x, len, out) },
            CpuLevel::Avx2 => return unsafe { avx2(x, len, out) },
            CpuLevel::Baseline => {}
        }
    }
    row_sums(x, len, out)
}

#[inline(always)]
fn row_sums(x: &[f32], len: usize, out: &mut [f32]) {
    const LANES: usize = 16;
    for (o, row) in out.iter_mut().zip(x.chunks_exact(len)) {
        // Four vectors of partial sums, folded into one…
        let mut part = [[0.0f32; LANES]; 4];
        let mut chunks = row.chunks_exact(4 * LANES);
        for chunk in &mut chunks {
            for (p, c) in part.iter_mut().zip(chunk.chunks_exact(LANES)) {
                for (p, &v) in p.iter_mut().zip(c) {
                    *p += v;
                }
            }
        }
        let mut v: [f32; LANES] = std::array::from_fn(|l| (part[0][l] + part[1][l]) + (part[2][l] + part[3][l]));
        let mut rest = chunks.remainder().chunks_exact(LANES);
        for c in &mut rest {
            for (p, &x) in v.iter_mut().zip(c) {
                *p += x;
            }
        }
        // …whose lanes are added pairwise: four steps, not sixteen.
        let mut width = LANES / 2;
        while width > 0 {
            for l in 0..width {
                v[l] += v[l + width];
            }
            width /= 2;
        }
        *o += v[0] + rest.remainder().iter().sum::<f32>();
    }
}

/// Zero-bordered copies of images, kept per thread by the kernels that
/// read one (the direct convs): a copy's border is zeroed when it is
/// made, and only its interior is written after that, so an image costs
/// its own size, not the padded one's zeroing (a copy per geometry, so
/// that convs of several geometries on one thread each keep theirs).
#[derive(Default)]
pub(crate) struct Bordered {
    /// `(c, h, w, top, left, height, width)` and the copy, most recent first.
    copies: Vec<([usize; 7], Vec<f32>)>,
}

impl Bordered {
    /// Copies kept: more geometries than a network has on one thread.
    const KEEP: usize = 8;

    /// `x` (`c × h × w`) copied into the interior of a `c × height ×
    /// width` buffer at row `top`, column `left`, zero elsewhere.
    pub(crate) fn copy(&mut self, x: &[f32], [c, h, w]: [usize; 3], [top, left]: [usize; 2], [height, width]: [usize; 2]) -> &[f32] {
        assert!(top + h <= height && left + w <= width && x.len() >= c * h * w, "Bordered::copy: the image does not fit");
        let key = [c, h, w, top, left, height, width];
        match self.copies.iter().position(|(k, _)| *k == key) {
            Some(i) => self.copies[..=i].rotate_right(1),
            None => {
                if self.copies.len() == Self::KEEP {
                    self.copies.pop();
                }
                self.copies.insert(0, (key, vec![0.0; c * height * width]));
            }
        }
        let buf = &mut self.copies[0].1;
        for (ci, plane) in x.chunks_exact(h * w).take(c).enumerate() {
            for (iy, row) in plane.chunks_exact(w).enumerate() {
                buf[(ci * height + iy + top) * width + left..][..w].copy_from_slice(row);
            }
        }
        buf
    }
}

/// The geometry fits the padded input and the buffers hold it.
fn check(d: &Im2col, x: &[f32], xpad: &[f32], out: &[f32]) {
    assert!(d.fits(), "im2col: the output size does not fit the padded input");
    assert!(
        x.len() >= d.c * d.h * d.w && xpad.len() >= d.xpad_len() && out.len() >= d.cols_len(),
        "im2col: buffers shorter than the geometry"
    );
}

/// The image im2col reads: `x`, or with padding `x` copied (row by row,
/// with `copy`) into the interior of `xpad`.
#[inline(always)]
fn pad<'a>(d: &Im2col, x: &'a [f32], xpad: &'a mut [f32], copy: impl Fn(&mut [f32], &[f32])) -> &'a [f32] {
    if d.xpad_len() == 0 {
        return x;
    }
    let (hp, wp) = d.padded();
    for (ci, xp) in x.chunks_exact(d.h * d.w).take(d.c).enumerate() {
        for (iy, row) in xp.chunks_exact(d.w).enumerate() {
            copy(&mut xpad[(ci * hp + iy + d.pad[0]) * wp + d.pad[1]..][..d.w], row);
        }
    }
    xpad
}

/// 2×2 max pooling with stride 2 over `planes` planes of `h × w` (`x`)
/// into `planes × (h/2) × (w/2)` (`y`); with `argmax` non-empty, each
/// output's maximum as an index into `x`. With argmax, the interpreter's
/// rule exactly: taps in row order, a later tap wins when greater or NaN.
/// Without, the same maximum, but of a zero's two signs either may win.
pub fn max_pool_2x2(x: &[f32], planes: usize, h: usize, w: usize, y: &mut [f32], argmax: &mut [u32]) {
    let (oh, ow) = (h / 2, w / 2);
    assert!(
        x.len() >= planes * h * w && y.len() >= planes * oh * ow && (argmax.is_empty() || argmax.len() >= planes * oh * ow),
        "max_pool_2x2: buffers shorter than the geometry"
    );
    #[cfg(target_arch = "x86_64")]
    if cpu_level() == CpuLevel::Avx512 {
        // SAFETY: `cpu_level` found AVX-512 on this CPU; the assert bounds
        // every row the kernel reads and writes.
        return unsafe { x86::max_pool_2x2_avx512(x, planes, h, w, y, argmax) };
    }
    max_pool_2x2_portable(x, planes, h, w, y, argmax);
}

/// The gradient through [`max_pool_2x2`] and the activation `a` before
/// it, for training: `dz` (`planes × h × w`, written in full) is zero but
/// at each output's maximum `argmax[o]` (as [`max_pool_2x2`] records it,
/// an index into the plane stack), where it is `dy[o]·a'(y[o])` — `y`
/// being the pooled, activated output: every activation is monotone, so
/// the activation of the maximum is the pooled value. On AVX-512 each
/// step takes 16 outputs and writes both input rows of their windows
/// (the outputs and indices spread to each window's two columns, a
/// compare against each column's index); no scatter, no zeroing pass.
#[allow(clippy::too_many_arguments)]
pub fn max_unpool_2x2(dy: &[f32], y: &[f32], argmax: &[u32], a: Activation, planes: usize, h: usize, w: usize, dz: &mut [f32]) {
    let outs = planes * (h / 2) * (w / 2);
    assert!(
        dy.len() >= outs && y.len() >= outs && argmax.len() >= outs && dz.len() >= planes * h * w,
        "max_unpool_2x2: buffers shorter than the geometry"
    );
    #[cfg(target_arch = "x86_64")]
    if cpu_level() == CpuLevel::Avx512 {
        // SAFETY: `cpu_level` found AVX-512 on this CPU; the assert bounds
        // every row the kernel reads and writes.
        return unsafe { x86::max_unpool_2x2_avx512(dy, y, argmax, a, planes, h, w, dz) };
    }
    let dz = &mut dz[..planes * h * w];
    dz.fill(0.0);
    for ((&at, &d), &out) in argmax[..outs].iter().zip(dy).zip(y) {
        dz[at as usize] += d * a.derivative_at_output(out);
    }
}

/// [`max_pool_2x2`] in plain Rust: each output reads two pairs of adjacent
/// inputs (LLVM vectorises it with deinterleaving shuffles where the
/// sizes are constants).
#[inline(always)]
pub(super) fn max_pool_2x2_portable(x: &[f32], planes: usize, h: usize, w: usize, y: &mut [f32], argmax: &mut [u32]) {
    let (oh, ow) = (h / 2, w / 2);
    let wins = |v: f32, best: f32| v > best || v.is_nan();
    for c in 0..planes {
        for oy in 0..oh {
            let first = (c * h + 2 * oy) * w;
            let (top, bottom) = (&x[first..][..2 * ow], &x[first + w..][..2 * ow]);
            let out = &mut y[(c * oh + oy) * ow..][..ow];
            if argmax.is_empty() {
                for ((o, t), b) in out.iter_mut().zip(top.chunks_exact(2)).zip(bottom.chunks_exact(2)) {
                    let mut best = t[0];
                    for v in [t[1], b[0], b[1]] {
                        if wins(v, best) {
                            best = v;
                        }
                    }
                    *o = best;
                }
                continue;
            }
            let at = &mut argmax[(c * oh + oy) * ow..][..ow];
            for (ox, ((o, t), b)) in out.iter_mut().zip(top.chunks_exact(2)).zip(bottom.chunks_exact(2)).enumerate() {
                let (mut best, mut best_at) = (t[0], 0);
                for (v, k) in [(t[1], 1), (b[0], w), (b[1], w + 1)] {
                    if wins(v, best) {
                        best = v;
                        best_at = k;
                    }
                }
                *o = best;
                at[ox] = (first + 2 * ox + best_at) as u32;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Im2col, pad};
    use crate::gemm::x86::lanes;
    use crate::ops::Activation;

    /// [`super::im2col`] for stride-1 rows: each row one [`copy`].
    ///
    /// # Safety
    /// The CPU has AVX-512F; the geometry fits the buffers (the caller's asserts).
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    pub(super) unsafe fn im2col_avx512(d: &Im2col, x: &[f32], xpad: &mut [f32], cols: &mut [f32]) {
        // SAFETY: the rows are slices of equal length.
        let padded = pad(d, x, xpad, |dst, src| unsafe { copy(dst.as_mut_ptr(), src.as_ptr(), dst.len()) });
        let [kh, kw] = d.kernel;
        let (hp, wp) = d.padded();
        let (plane, ow, step) = (d.oh * d.ow, d.ow, d.stride[0] * wp);
        let (cp, sp) = (cols.as_mut_ptr(), padded.as_ptr());
        for ci in 0..d.c {
            for ky in 0..kh {
                for kx in 0..kw {
                    // SAFETY: tap (ci, ky, kx)'s row of `cols` and its source
                    // rows, (oh − 1)·sh + ky < hp rows down from plane ci's,
                    // kx + ow ≤ wp columns in: inside both buffers.
                    unsafe {
                        let (mut dst, mut src) = (cp.add(((ci * kh + ky) * kw + kx) * plane), sp.add((ci * hp + ky) * wp + kx));
                        for _ in 0..d.oh {
                            copy(dst, src, ow);
                            dst = dst.add(ow);
                            src = src.add(step);
                        }
                    }
                }
            }
        }
    }

    /// [`super::im2row`]: each run of `kw` inputs one [`copy`].
    ///
    /// # Safety
    /// The CPU has AVX-512F; the geometry fits the buffers (the caller's `check`).
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    pub(super) unsafe fn im2row_avx512(d: &Im2col, x: &[f32], xpad: &mut [f32], rows: &mut [f32]) {
        // SAFETY: the rows are slices of equal length.
        let padded = pad(d, x, xpad, |dst, src| unsafe { copy(dst.as_mut_ptr(), src.as_ptr(), dst.len()) });
        let [kh, kw] = d.kernel;
        let [sh, sw] = d.stride;
        let (hp, wp) = d.padded();
        let (rp, sp) = (rows.as_mut_ptr(), padded.as_ptr());
        for oy in 0..d.oh {
            for ox in 0..d.ow {
                // SAFETY: output (oy, ox)'s row of taps, and its runs: rows
                // oy·sh + ky < hp and columns ox·sw .. ox·sw + kw ≤ wp of
                // each padded plane — inside both buffers.
                unsafe {
                    let mut dst = rp.add((oy * d.ow + ox) * d.c * kh * kw);
                    for ci in 0..d.c {
                        let mut src = sp.add((ci * hp + oy * sh) * wp + ox * sw);
                        for _ in 0..kh {
                            copy(dst, src, kw);
                            dst = dst.add(kw);
                            src = src.add(wp);
                        }
                    }
                }
            }
        }
    }

    /// Copy `n` values from `s` to `d`: 16 per move, the last move ending at
    /// the last value (overlapping the one before: masked stores cost more
    /// on some CPUs); one masked move for fewer than 16.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `n` values at `s` and at `d` are valid and
    /// do not overlap.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn copy(d: *mut f32, s: *const f32, n: usize) {
        if n < 16 {
            let m = lanes(n);
            // SAFETY: the unmasked lanes 0.. < n are inside both runs.
            unsafe { _mm512_mask_storeu_ps(d, m, _mm512_maskz_loadu_ps(m, s)) };
            return;
        }
        let mut i = 0;
        loop {
            // SAFETY: i + 16 ≤ n: inside both runs.
            unsafe { _mm512_storeu_ps(d.add(i), _mm512_loadu_ps(s.add(i))) };
            if i + 16 == n {
                return;
            }
            i = (i + 16).min(n - 16);
        }
    }

    /// [`super::max_pool_2x2`], 16 outputs per step: the even and odd
    /// columns of two input rows (one two-source permute each), then the
    /// taps in the scalar order with a mask per step — or, without argmax
    /// and NaNs, plain maxima in any order.
    ///
    /// # Safety
    /// The CPU has AVX-512F/BW; the buffers hold the planes (checked by the caller).
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    pub(super) unsafe fn max_pool_2x2_avx512(x: &[f32], planes: usize, h: usize, w: usize, y: &mut [f32], argmax: &mut [u32]) {
        let (oh, ow) = (h / 2, w / 2);
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
        let record = !argmax.is_empty();
        let (xp, yp, ap) = (x.as_ptr(), y.as_mut_ptr(), argmax.as_mut_ptr());
        for c in 0..planes {
            for oy in 0..oh {
                let first = (c * h + 2 * oy) * w;
                let out = (c * oh + oy) * ow;
                let mut ox = 0;
                while ox < ow {
                    let n = (ow - ox).min(16);
                    let (lo, hi) = (lanes(2 * n), lanes((2 * n).saturating_sub(16)));
                    // Columns 2·ox .. 2·(ox + n) of the pair's row r.
                    let load = |r: usize| {
                        // SAFETY: the unmasked lanes are columns < 2·ow ≤ w of
                        // row 2·oy + r < h of plane c.
                        unsafe {
                            let p = xp.add(first + r * w + 2 * ox);
                            (_mm512_maskz_loadu_ps(lo, p), _mm512_maskz_loadu_ps(hi, p.add(16)))
                        }
                    };
                    let m = lanes(n);
                    let (t, b) = (load(0), load(1));
                    if !record && (_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(t.0, b.0) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(t.1, b.1)) == 0 {
                        // Only the values, and no NaN: the maximum of the rows, then
                        // of the even and odd columns.
                        let (lo, hi) = (_mm512_max_ps(t.0, b.0), _mm512_max_ps(t.1, b.1));
                        let (e, o) = (_mm512_permutex2var_ps(lo, even, hi), _mm512_permutex2var_ps(lo, odd, hi));
                        // SAFETY: outputs out + ox .. out + ox + n are in plane c's row oy.
                        unsafe { _mm512_mask_storeu_ps(yp.add(out + ox), m, _mm512_max_ps(e, o)) };
                        ox += 16;
                        continue;
                    }
                    let deinterleave = |(a, b): (__m512, __m512)| (_mm512_permutex2var_ps(a, even, b), _mm512_permutex2var_ps(a, odd, b));
                    let ((t0, t1), (b0, b1)) = (deinterleave(t), deinterleave(b));
                    let mut best = t0;
                    let mut at = _mm512_setzero_si512();
                    for (v, k) in [(t1, 1), (b0, w as i32), (b1, w as i32 + 1)] {
                        let wins = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                        best = _mm512_mask_mov_ps(best, wins, v);
                        if record {
                            at = _mm512_mask_mov_epi32(at, wins, _mm512_set1_epi32(k));
                        }
                    }
                    // SAFETY: outputs out + ox .. out + ox + n are in plane c's row oy.
                    unsafe { _mm512_mask_storeu_ps(yp.add(out + ox), m, best) };
                    if record {
                        let base = _mm512_set1_epi32((first + 2 * ox) as i32);
                        let at = _mm512_add_epi32(_mm512_add_epi32(base, even), at);
                        // SAFETY: as above; `argmax` has an entry per output.
                        unsafe { _mm512_mask_storeu_epi32(ap.add(out + ox).cast(), m, at) };
                    }
                    ox += 16;
                }
            }
        }
    }

    /// [`super::col2im`] for stride 1.
    ///
    /// # Safety
    /// The CPU has AVX-512F; the buffers hold the geometry (the caller's asserts).
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    pub(super) unsafe fn col2im_avx512(d: &Im2col, cols: &[f32], dx: &mut [f32]) {
        let [kh, kw] = d.kernel;
        let [ph, pw] = d.pad;
        let (h, w, oh, ow) = (d.h as isize, d.w as isize, d.oh as isize, d.ow as isize);
        let plane = d.oh * d.ow;
        let (cp, dp) = (cols.as_ptr(), dx.as_mut_ptr());
        // Per vector of input columns: for each kx, the output column of
        // lane 0 and the lanes whose output column is inside 0..ow.
        let mut shifts: Vec<(isize, __mmask16)> = Vec::with_capacity(kw);
        for ix0 in (0..w).step_by(16) {
            shifts.clear();
            for kx in 0..kw {
                // Lane l is output column start + l, valid in 0..ow, and
                // input column ix0 + l, valid below w.
                let start = ix0 + pw as isize - kx as isize;
                let (lo, hi) = ((-start).clamp(0, 16), (ow - start).min(w - ix0).clamp(0, 16));
                shifts.push((start, if hi > lo { lanes(hi as usize) & !lanes(lo as usize) } else { 0 }));
            }
            let n = (w - ix0).min(16) as usize;
            for ci in 0..d.c {
                for iy in 0..h {
                    // Two sums, so that half the adds wait on the other half.
                    let (mut even, mut odd) = (_mm512_setzero_ps(), _mm512_setzero_ps());
                    for ky in 0..kh {
                        // The output row whose tap ky reads input row iy.
                        let oy = iy + ph as isize - ky as isize;
                        if !(0..oh).contains(&oy) {
                            continue;
                        }
                        let taps = ((ci * kh + ky) * kw) * plane + oy as usize * d.ow;
                        // The lanes outside `m` are masked: the address may
                        // point before the row (wrapping arithmetic), only
                        // lanes inside `cols` are read.
                        let load = |kx: usize| {
                            let (start, m) = shifts[kx];
                            // SAFETY: the lanes of `m` are output columns
                            // start + l in 0..ow of output row oy of tap
                            // (ci, ky, kx)'s row of `cols`.
                            unsafe { _mm512_maskz_loadu_ps(m, cp.wrapping_add(taps + kx * plane).wrapping_offset(start)) }
                        };
                        let mut kx = 0;
                        while kx + 1 < kw {
                            even = _mm512_add_ps(even, load(kx));
                            odd = _mm512_add_ps(odd, load(kx + 1));
                            kx += 2;
                        }
                        if kx < kw {
                            even = _mm512_add_ps(even, load(kx));
                        }
                    }
                    let acc = _mm512_add_ps(even, odd);
                    // SAFETY: columns ix0 .. ix0 + n of row iy of plane ci.
                    unsafe { _mm512_mask_storeu_ps(dp.add((ci * d.h + iy as usize) * d.w + ix0 as usize), lanes(n), acc) };
                }
            }
        }
    }

    /// `a'` at the activated output `y`, lane by lane, as
    /// [`Activation::derivative_at_output`] computes it (same operations,
    /// same rounding).
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    fn derivative(a: Activation, y: __m512) -> __m512 {
        let one = _mm512_set1_ps(1.0);
        let positive = || _mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, _mm512_setzero_ps());
        match a {
            Activation::None => one,
            Activation::Relu => _mm512_maskz_mov_ps(positive(), one),
            Activation::LeakyRelu { alpha } => _mm512_mask_mov_ps(_mm512_set1_ps(alpha), positive(), one),
            Activation::Elu { alpha } => _mm512_mask_mov_ps(_mm512_add_ps(y, _mm512_set1_ps(alpha)), positive(), one),
            Activation::Sigmoid => _mm512_mul_ps(y, _mm512_sub_ps(one, y)),
            Activation::Tanh => _mm512_sub_ps(one, _mm512_mul_ps(y, y)),
        }
    }

    /// [`super::max_unpool_2x2`], 16 outputs (two rows of 32 inputs) per step.
    ///
    /// # Safety
    /// The CPU has AVX-512F/BW; the buffers hold the planes (checked by the caller).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    pub(super) unsafe fn max_unpool_2x2_avx512(
        dy: &[f32],
        y: &[f32],
        argmax: &[u32],
        a: Activation,
        planes: usize,
        h: usize,
        w: usize,
        dz: &mut [f32],
    ) {
        let (oh, ow) = (h / 2, w / 2);
        // Lane j of a row's 32 inputs belongs to output j / 2.
        let spread_lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        let spread_hi = _mm512_add_epi32(spread_lo, _mm512_set1_epi32(8));
        let column = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let (gp, yp, ap, zp) = (dy.as_ptr(), y.as_ptr(), argmax.as_ptr(), dz.as_mut_ptr());
        for c in 0..planes {
            for oy in 0..oh {
                let first = (c * h + 2 * oy) * w;
                let out = (c * oh + oy) * ow;
                let mut ox = 0;
                while ox < ow {
                    let n = (ow - ox).min(16);
                    let m = lanes(n);
                    // SAFETY: outputs out + ox .. out + ox + n are in plane
                    // c's row oy of `dy`, `y` and `argmax`.
                    let (g, at) = unsafe {
                        let g = _mm512_maskz_loadu_ps(m, gp.add(out + ox));
                        let d = derivative(a, _mm512_maskz_loadu_ps(m, yp.add(out + ox)));
                        (_mm512_mul_ps(g, d), _mm512_maskz_loadu_epi32(m, ap.add(out + ox).cast()))
                    };
                    let (g_lo, g_hi) = (_mm512_permutexvar_ps(spread_lo, g), _mm512_permutexvar_ps(spread_hi, g));
                    let (at_lo, at_hi) = (_mm512_permutexvar_epi32(spread_lo, at), _mm512_permutexvar_epi32(spread_hi, at));
                    let (lo, hi) = (lanes(2 * n), lanes((2 * n).saturating_sub(16)));
                    for r in 0..2 {
                        let start = first + r * w + 2 * ox;
                        let here = _mm512_add_epi32(_mm512_set1_epi32(start as i32), column);
                        let there = _mm512_add_epi32(here, _mm512_set1_epi32(16));
                        let (keep_lo, keep_hi) = (_mm512_cmpeq_epi32_mask(at_lo, here), _mm512_cmpeq_epi32_mask(at_hi, there));
                        // SAFETY: inputs start .. start + 2n are columns < 2·ow ≤ w
                        // of row 2·oy + r < h of plane c.
                        unsafe {
                            _mm512_mask_storeu_ps(zp.add(start), lo, _mm512_maskz_mov_ps(keep_lo, g_lo));
                            _mm512_mask_storeu_ps(zp.add(start + 16), hi, _mm512_maskz_mov_ps(keep_hi, g_hi));
                        }
                    }
                    ox += 16;
                }
                if w % 2 == 1 {
                    // SAFETY: the last column of the two rows, inside plane c.
                    unsafe {
                        *zp.add(first + w - 1) = 0.0;
                        *zp.add(first + 2 * w - 1) = 0.0;
                    }
                }
            }
            if h % 2 == 1 {
                // SAFETY: the last row of plane c.
                unsafe { std::ptr::write_bytes(zp.add((c * h + h - 1) * w), 0, w) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Values with ties (few distinct values) and, with `nans`, some NaNs.
    fn values(rng: &mut Rng, len: usize, nans: bool) -> Vec<f32> {
        (0..len)
            .map(|_| match rng.below(10) {
                0 if nans => f32::NAN,
                k => (k % 4) as f32 - 1.5,
            })
            .collect()
    }

    #[test]
    fn max_pool_2x2_matches_the_scalar_rule_at_every_width() {
        let mut rng = Rng::new(7);
        for w in (2..=40).step_by(2) {
            for (h, planes) in [(2, 1), (6, 3)] {
                let x = values(&mut rng, planes * h * w, w % 4 == 0);
                let outs = planes * (h / 2) * (w / 2);
                let (mut y, mut at) = (vec![0.0; outs], vec![0; outs]);
                let (mut y_ref, mut at_ref) = (vec![0.0; outs], vec![0; outs]);
                max_pool_2x2(&x, planes, h, w, &mut y, &mut at);
                max_pool_2x2_portable(&x, planes, h, w, &mut y_ref, &mut at_ref);
                assert_eq!(at, at_ref, "argmax, width {w}");
                let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(same(&y, &y_ref), "values, width {w}");
                // Every recorded index points at its output's value.
                assert!(y.iter().zip(&at).all(|(v, &i)| v.to_bits() == x[i as usize].to_bits()));
                let mut y_only = vec![0.0; outs];
                max_pool_2x2(&x, planes, h, w, &mut y_only, &mut []);
                let equal = y_only.iter().zip(&y_ref).all(|(p, q)| p == q || (p.is_nan() && q.is_nan()));
                assert!(equal, "values without argmax, width {w}");
            }
        }
    }

    /// Every width and height, odd ones too (whose last column and row no
    /// window covers), every activation: the gradient lands at each
    /// window's recorded maximum, scaled by the derivative, and every
    /// other value of `dz` is written zero.
    #[test]
    fn max_unpool_2x2_routes_each_gradient_to_its_maximum() {
        let mut rng = Rng::new(8);
        let activations = [
            Activation::None,
            Activation::Relu,
            Activation::LeakyRelu { alpha: 0.1 },
            Activation::Elu { alpha: 0.7 },
            Activation::Sigmoid,
            Activation::Tanh,
        ];
        for w in 2..=41 {
            for (h, planes) in [(2, 1), (7, 3)] {
                let a = activations[w % activations.len()];
                let x = values(&mut rng, planes * h * w, false);
                let outs = planes * (h / 2) * (w / 2);
                let (mut y, mut at) = (vec![0.0; outs], vec![0; outs]);
                max_pool_2x2(&x, planes, h, w, &mut y, &mut at);
                let dy = values(&mut rng, outs, false);
                let mut dz = vec![f32::NAN; planes * h * w];
                max_unpool_2x2(&dy, &y, &at, a, planes, h, w, &mut dz);
                let mut want = vec![0.0f32; planes * h * w];
                for o in 0..outs {
                    want[at[o] as usize] = dy[o] * a.derivative_at_output(y[o]);
                }
                assert!(dz.iter().zip(&want).all(|(p, q)| p == q), "width {w}, height {h}, {a:?}");
            }
        }
    }

    #[test]
    fn im2row_is_the_transpose_of_im2col_and_weight_grad_the_product() {
        let mut rng = Rng::new(5);
        for (c, h, w, k, s, p, f) in
            [(1, 28, 28, 5, 1, 2, 6), (3, 9, 7, 3, 2, 1, 5), (32, 14, 14, 5, 1, 2, 9), (4, 5, 5, 1, 1, 0, 3), (2, 7, 9, 2, 3, 2, 8)]
        {
            let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
            let d = Im2col { c, h, w, kernel: [k, k], stride: [s, s], pad: [p, p], oh, ow };
            let (taps, plane) = (c * k * k, oh * ow);
            let x: Vec<f32> = (0..c * h * w).map(|_| rng.next_f32() - 0.5).collect();
            let mut xpad = vec![0.0; d.xpad_len()];
            let (mut cols, mut rows) = (vec![0.0; d.cols_len()], vec![f32::NAN; d.cols_len()]);
            im2col(&d, &x, &mut xpad, &mut cols);
            im2row(&d, &x, &mut xpad, &mut rows);
            for t in 0..taps {
                for q in 0..plane {
                    assert_eq!(rows[q * taps + t], cols[t * plane + q], "c{c} k{k} s{s} p{p}: tap {t}, position {q}");
                }
            }
            // gw += dz · colsᵀ, from a non-zero start.
            let dz: Vec<f32> = (0..f * plane).map(|_| rng.next_f32() - 0.5).collect();
            let start: Vec<f32> = (0..f * taps).map(|_| rng.next_f32()).collect();
            let mut gw = start.clone();
            weight_grad(&d, &x, &mut xpad, &mut rows, &dz, f, &mut gw);
            for i in 0..f {
                for t in 0..taps {
                    let want = start[i * taps + t] + (0..plane).map(|q| dz[i * plane + q] * cols[t * plane + q]).sum::<f32>();
                    let got = gw[i * taps + t];
                    assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "gw[{i}][{t}]: {got} vs {want}");
                }
            }
        }
    }

    /// Copies of several geometries, alternated, and more of them than are
    /// kept: each time the image's values in the interior, zero around it.
    #[test]
    fn bordered_copies_hold_the_image_and_zeros_around_it() {
        let mut rng = Rng::new(5);
        let mut copies = Bordered::default();
        let geometries: Vec<([usize; 3], [usize; 2], [usize; 2])> =
            (0..Bordered::KEEP + 3).map(|i| ([1 + i % 3, 3 + i, 4], [i % 2, 1 + i % 3], [5 + i + i % 2, 9])).collect();
        // All of them (the first ones evicted), then back and forth.
        let order = (0..geometries.len()).chain([0, 1, 0, 5, geometries.len() - 1, 1, 1]);
        for j in order {
            let ([c, h, w], [top, left], [height, width]) = geometries[j];
            let x = values(&mut rng, c * h * w, false);
            let buf = copies.copy(&x, [c, h, w], [top, left], [height, width]);
            assert_eq!(buf.len(), c * height * width);
            for ci in 0..c {
                for y in 0..height {
                    for xx in 0..width {
                        let inside = (top..top + h).contains(&y) && (left..left + w).contains(&xx);
                        let want = if inside { x[(ci * h + y - top) * w + xx - left] } else { 0.0 };
                        assert_eq!(buf[(ci * height + y) * width + xx], want, "geometry {j} at ({ci}, {y}, {xx})");
                    }
                }
            }
        }
    }

    #[test]
    fn col2im_sums_each_entry_at_its_input() {
        let mut rng = Rng::new(4);
        // Rows of one, two and three vectors; padding 0, 1, 2 and wider
        // than half the kernel; strides 1 to 3; inputs no window reaches.
        let shapes =
            [(1, 14, 14, 5, 1, 0), (6, 14, 14, 5, 1, 2), (2, 9, 37, 3, 1, 1), (3, 9, 7, 3, 2, 1), (2, 6, 20, 3, 1, 4), (2, 7, 9, 2, 3, 2)];
        for (c, h, w, k, s, p) in shapes {
            let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
            let d = Im2col { c, h, w, kernel: [k, k], stride: [s, s], pad: [p, p], oh, ow };
            let cols = values(&mut rng, d.cols_len(), false);
            let mut dx = vec![f32::NAN; c * h * w];
            col2im(&d, &cols, &mut dx);
            let mut want = vec![0.0f64; c * h * w];
            for ci in 0..c {
                for (ky, kx) in (0..k).flat_map(|ky| (0..k).map(move |kx| (ky, kx))) {
                    for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                        let (iy, ix) = ((oy * s + ky) as isize - p as isize, (ox * s + kx) as isize - p as isize);
                        if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                            want[(ci * h + iy as usize) * w + ix as usize] +=
                                f64::from(cols[((ci * k + ky) * k + kx) * oh * ow + oy * ow + ox]);
                        }
                    }
                }
            }
            for (i, (&got, &want)) in dx.iter().zip(&want).enumerate() {
                assert!((f64::from(got) - want).abs() <= 1e-5 * (1.0 + want.abs()), "c{c} {h}×{w} k{k} s{s} p{p}: dx[{i}] {got} vs {want}");
            }
        }
    }

    #[test]
    fn row_sums_add_each_row_to_its_output() {
        let mut rng = Rng::new(11);
        // Shorter than a vector, between the vector and the four-vector
        // steps, LeNet-5's conv2 and conv1 planes.
        for len in [1, 15, 16, 63, 64, 100, 130, 784] {
            let rows = 3;
            let x: Vec<f32> = (0..rows * len).map(|_| rng.symmetric(1.0)).collect();
            let mut out = vec![0.5f32; rows];
            add_row_sums(&x, len, &mut out);
            for (r, &got) in out.iter().enumerate() {
                let want = 0.5 + x[r * len..][..len].iter().map(|&v| f64::from(v)).sum::<f64>();
                assert!((f64::from(got) - want).abs() < 1e-5 * len as f64, "len {len} row {r}: {got}, want {want}");
            }
        }
    }

    #[test]
    fn im2col_gathers_each_tap_or_zero() {
        let mut rng = Rng::new(3);
        for (c, h, w, k, s, p) in [(1, 28, 28, 5, 1, 2), (3, 9, 7, 3, 2, 1), (2, 6, 20, 3, 1, 0), (4, 5, 5, 1, 1, 0), (2, 7, 9, 2, 3, 2)] {
            let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
            let d = Im2col { c, h, w, kernel: [k, k], stride: [s, s], pad: [p, p], oh, ow };
            let x: Vec<f32> = (0..c * h * w).map(|_| rng.next_f32()).collect();
            let (mut xpad, mut cols) = (vec![0.0; d.xpad_len()], vec![f32::NAN; d.cols_len()]);
            im2col(&d, &x, &mut xpad, &mut cols);
            for ci in 0..c {
                for (ky, kx) in (0..k).flat_map(|ky| (0..k).map(move |kx| (ky, kx))) {
                    for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                        let (iy, ix) = ((oy * s + ky) as isize - p as isize, (ox * s + kx) as isize - p as isize);
                        let inside = (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                        let want = if inside { x[(ci * h + iy as usize) * w + ix as usize] } else { 0.0 };
                        let got = cols[((ci * k + ky) * k + kx) * oh * ow + oy * ow + ox];
                        assert_eq!(got, want, "c{c} {h}×{w} k{k} s{s} p{p}: tap ({ci},{ky},{kx}) at ({oy},{ox})");
                    }
                }
            }
        }
    }
}

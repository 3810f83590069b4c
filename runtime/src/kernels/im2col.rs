//! The data movement around a conv stage's GEMMs — the im2col gather, its
//! transpose im2row for the weight gradient ([`weight_grad`]), its adjoint
//! col2im — and the conv's bias gradient (row sums), written once for the
//! `network!` code and the JIT (which calls them: Cranelift's vectors are
//! 128 bits wide) over [`Simd`]: a row of up to a vector's lanes is one
//! masked load and store.

use std::cell::RefCell;

use crate::kernels::gemm::{PackedA, gemm_packed_acc};
use crate::kernels::simd::{Simd, multiversion};

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

multiversion! {
    /// `cols[(ci·kh + ky)·kw + kx][oy·ow + ox] = x[ci][oy·sh + ky − ph][ox·sw + kx − pw]`,
    /// zero where that falls into the padding. The image is first copied into
    /// the interior of `xpad` (`xpad_len()` values whose borders the caller
    /// keeps zero: only the interior is written here), so that every row of
    /// `cols` is one copy of `ow` values (stride 1: a vector at a time, the
    /// last one ending at the row's last value).
    pub fn im2col(d: &Im2col, x: &[f32], xpad: &mut [f32], cols: &mut [f32]) => |s| im2col_with(s, d, x, xpad, cols)
}

#[inline(always)]
fn im2col_with<S: Simd>(s: S, d: &Im2col, x: &[f32], xpad: &mut [f32], cols: &mut [f32]) {
    check(d, x, xpad, cols);
    let padded = pad(s, d, x, xpad);
    let [kh, kw] = d.kernel;
    let [sh, sw] = d.stride;
    let (hp, wp) = d.padded();
    let (plane, ow, step) = (d.oh * d.ow, d.ow, sh * wp);
    for ci in 0..d.c {
        for ky in 0..kh {
            for kx in 0..kw {
                let row = &mut cols[((ci * kh + ky) * kw + kx) * plane..][..plane];
                if sw == 1 {
                    // SAFETY: tap (ci, ky, kx)'s row of `cols` and its source
                    // rows, (oh − 1)·sh + ky < hp rows down from plane ci's,
                    // kx + ow ≤ wp columns in: inside both buffers (`check`).
                    unsafe {
                        let (mut dst, mut src) = (row.as_mut_ptr(), padded.as_ptr().add((ci * hp + ky) * wp + kx));
                        for _ in 0..d.oh {
                            copy(s, dst, src, ow);
                            dst = dst.add(ow);
                            src = src.add(step);
                        }
                    }
                    continue;
                }
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

multiversion! {
    /// The transpose of [`im2col`]: `rows[oy·ow + ox][(ci·kh + ky)·kw + kx]`,
    /// one row of taps per output position — each `(ci, ky)` a run of `kw`
    /// adjacent inputs, one `copy`. `rows` holds `cols_len()` values.
    pub fn im2row(d: &Im2col, x: &[f32], xpad: &mut [f32], rows: &mut [f32]) => |s| im2row_with(s, d, x, xpad, rows)
}

#[inline(always)]
fn im2row_with<S: Simd>(s: S, d: &Im2col, x: &[f32], xpad: &mut [f32], rows: &mut [f32]) {
    check(d, x, xpad, rows);
    let padded = pad(s, d, x, xpad);
    let [kh, kw] = d.kernel;
    let [sh, sw] = d.stride;
    let (hp, wp) = d.padded();
    let (rp, sp) = (rows.as_mut_ptr(), padded.as_ptr());
    for oy in 0..d.oh {
        for ox in 0..d.ow {
            // SAFETY: output (oy, ox)'s row of taps, and its runs: rows
            // oy·sh + ky < hp and columns ox·sw .. ox·sw + kw ≤ wp of
            // each padded plane — inside both buffers (`check`).
            unsafe {
                let mut dst = rp.add((oy * d.ow + ox) * d.c * kh * kw);
                for ci in 0..d.c {
                    let mut src = sp.add((ci * hp + oy * sh) * wp + ox * sw);
                    for _ in 0..kh {
                        copy(s, dst, src, kw);
                        dst = dst.add(kw);
                        src = src.add(wp);
                    }
                }
            }
        }
    }
}

/// Copy `n` values from `src` to `dst`: a vector per move, the last move
/// ending at the last value (overlapping the one before: masked stores
/// cost more on some CPUs); one masked move for fewer than a vector.
///
/// # Safety
/// `n` values at `src` and at `dst` are valid and do not overlap.
#[inline(always)]
unsafe fn copy<S: Simd>(s: S, dst: *mut f32, src: *const f32, n: usize) {
    let l = S::LANES;
    if n < l {
        let m = s.first(n);
        // SAFETY: the unmasked lanes 0.. < n are inside both runs.
        unsafe { s.store_masked(m, dst, s.load_masked(m, src)) };
        return;
    }
    let mut i = 0;
    loop {
        // SAFETY: i + l ≤ n: inside both runs.
        unsafe { s.store(dst.add(i), s.load(src.add(i))) };
        if i + l == n {
            return;
        }
        i = (i + l).min(n - l);
    }
}

multiversion! {
    /// The adjoint of [`im2col`], an input gradient from the gradient at the
    /// columns: `dx` (`c × h × w`, written in full) is, at each input, the sum
    /// of the entries of `cols` gathered from it. For stride 1, each vector
    /// of inputs of a row sums the `kh × kw` column rows that read it, shifted
    /// and masked at the output's edges, then is stored once (adding into `dx`
    /// tap by tap would load and store each input `kh·kw` times, each add
    /// waiting on the last one's store).
    pub fn col2im(d: &Im2col, cols: &[f32], dx: &mut [f32]) => |s| col2im_with(s, d, cols, dx)
}

#[inline(always)]
fn col2im_with<S: Simd>(s: S, d: &Im2col, cols: &[f32], dx: &mut [f32]) {
    assert!(cols.len() >= d.cols_len() && dx.len() >= d.c * d.h * d.w, "col2im: buffers shorter than the geometry");
    assert!(d.fits(), "col2im: the output size does not fit the padded input");
    if d.stride == [1, 1] {
        // SAFETY: the asserts bound every unmasked lane read and written.
        return unsafe { col2im_rows(s, d, cols, dx) };
    }
    let [kh, kw] = d.kernel;
    let [sh, sw] = d.stride;
    let [ph, pw] = d.pad;
    let (plane, ow) = (d.oh * d.ow, d.ow);
    dx[..d.c * d.h * d.w].fill(0.0);
    for ci in 0..d.c {
        let dxp = &mut dx[ci * d.h * d.w..][..d.h * d.w];
        for ky in 0..kh {
            let rows = crate::layer::valid_outputs(d.oh, d.h, sh, ky, ph);
            for kx in 0..kw {
                let valid = crate::layer::valid_outputs(ow, d.w, sw, kx, pw);
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

/// [`col2im`] for stride 1, a vector of input columns at a time.
///
/// # Safety
/// The buffers hold the geometry (the caller's asserts).
#[inline(always)]
unsafe fn col2im_rows<S: Simd>(s: S, d: &Im2col, cols: &[f32], dx: &mut [f32]) {
    let l = S::LANES as isize;
    let [kh, kw] = d.kernel;
    let [ph, pw] = d.pad;
    let (h, w, oh, ow) = (d.h as isize, d.w as isize, d.oh as isize, d.ow as isize);
    let plane = d.oh * d.ow;
    let (cp, dp) = (cols.as_ptr(), dx.as_mut_ptr());
    // Per vector of input columns: for each kx, the output column of
    // lane 0 and the lanes whose output column is inside 0..ow.
    let mut shifts: Vec<(isize, S::Mask)> = Vec::with_capacity(kw);
    for ix0 in (0..w).step_by(S::LANES) {
        shifts.clear();
        for kx in 0..kw {
            // Lane i is output column start + i, valid in 0..ow, and
            // input column ix0 + i, valid below w.
            let start = ix0 + pw as isize - kx as isize;
            let (lo, hi) = ((-start).clamp(0, l), (ow - start).min(w - ix0).clamp(0, l));
            let m = if hi > lo { s.and_not(s.first(hi as usize), s.first(lo as usize)) } else { s.first(0) };
            shifts.push((start, m));
        }
        let n = (w - ix0).min(l) as usize;
        for ci in 0..d.c {
            for iy in 0..h {
                // Two sums, so that half the adds wait on the other half.
                let (mut even, mut odd) = (s.zero(), s.zero());
                for ky in 0..kh {
                    // The output row whose tap ky reads input row iy.
                    let oy = iy + ph as isize - ky as isize;
                    if !(0..oh).contains(&oy) {
                        continue;
                    }
                    let taps = ((ci * kh + ky) * kw) * plane + oy as usize * d.ow;
                    // The lanes outside the mask are not read: the address
                    // may point before the row (wrapping arithmetic).
                    for (kx, &(start, m)) in shifts.iter().enumerate() {
                        // SAFETY: the lanes of `m` are output columns start +
                        // i in 0..ow of output row oy of tap (ci, ky, kx)'s
                        // row of `cols`.
                        let v = unsafe { s.load_masked(m, cp.wrapping_add(taps + kx * plane).wrapping_offset(start)) };
                        if kx % 2 == 0 {
                            even = s.add(even, v);
                        } else {
                            odd = s.add(odd, v);
                        }
                    }
                }
                // SAFETY: columns ix0 .. ix0 + n of row iy of plane ci.
                unsafe { s.store_masked(s.first(n), dp.add((ci * d.h + iy as usize) * d.w + ix0 as usize), s.add(even, odd)) };
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

multiversion! {
    /// `out[r] += Σ x[r·len .. (r + 1)·len]` for each row `r < out.len()`: a
    /// conv's bias gradient from its `dz`. The sum of each row runs in four
    /// vectors of independent partial sums added up as a tree, not one chain
    /// of adds each waiting on the last — summing LeNet-5's conv1 planes one
    /// add at a time took 4% of a training step.
    pub fn add_row_sums(x: &[f32], len: usize, out: &mut [f32]) => |s| row_sums(s, x, len, out)
}

#[inline(always)]
fn row_sums<S: Simd>(s: S, x: &[f32], len: usize, out: &mut [f32]) {
    assert!(x.len() >= out.len() * len, "add_row_sums: {} values for {} rows of {len}", x.len(), out.len());
    let l = S::LANES;
    if len == 0 {
        return;
    }
    for (o, row) in out.iter_mut().zip(x.chunks_exact(len)) {
        let mut part = [s.zero(); 4];
        let mut chunks = row.chunks_exact(4 * l);
        for chunk in &mut chunks {
            for (v, p) in part.iter_mut().enumerate() {
                // SAFETY: the chunk holds 4·l values.
                *p = s.add(*p, unsafe { s.load(chunk.as_ptr().add(v * l)) });
            }
        }
        let mut v = s.add(s.add(part[0], part[1]), s.add(part[2], part[3]));
        let mut rest = chunks.remainder().chunks_exact(l);
        for c in &mut rest {
            // SAFETY: `c` holds l values.
            v = s.add(v, unsafe { s.load(c.as_ptr()) });
        }
        *o += s.reduce_add(v) + rest.remainder().iter().sum::<f32>();
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
/// a vector at a time) into the interior of `xpad`.
#[inline(always)]
fn pad<'a, S: Simd>(s: S, d: &Im2col, x: &'a [f32], xpad: &'a mut [f32]) -> &'a [f32] {
    if d.xpad_len() == 0 {
        return x;
    }
    let (hp, wp) = d.padded();
    for (ci, xp) in x.chunks_exact(d.h * d.w).take(d.c).enumerate() {
        for (iy, row) in xp.chunks_exact(d.w).enumerate() {
            let dst = &mut xpad[(ci * hp + iy + d.pad[0]) * wp + d.pad[1]..][..d.w];
            // SAFETY: `dst` and `row` are slices of `w` values each.
            unsafe { copy(s, dst.as_mut_ptr(), row.as_ptr(), d.w) };
        }
    }
    xpad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::testing::{AtEveryLevel, for_each_simd};
    use crate::rng::Rng;

    /// Values with ties (few distinct values).
    fn values(rng: &mut Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| (rng.below(10) % 4) as f32 - 1.5).collect()
    }

    struct Gathers;

    impl AtEveryLevel for Gathers {
        fn at<S: Simd>(&mut self, s: S) {
            im2col_gathers_each_tap_or_zero(s);
            im2row_is_the_transpose_of_im2col(s);
            col2im_sums_each_entry_at_its_input(s);
            row_sums_add_each_row_to_its_output(s);
        }
    }

    #[test]
    fn gathers_and_sums_match_their_definitions_at_every_level() {
        for_each_simd(&mut Gathers);
    }

    fn im2col_gathers_each_tap_or_zero<S: Simd>(s: S) {
        let mut rng = Rng::new(3);
        for (c, h, w, k, st, p) in [(1, 28, 28, 5, 1, 2), (3, 9, 7, 3, 2, 1), (2, 6, 20, 3, 1, 0), (4, 5, 5, 1, 1, 0), (2, 7, 9, 2, 3, 2)] {
            let (oh, ow) = ((h + 2 * p - k) / st + 1, (w + 2 * p - k) / st + 1);
            let d = Im2col { c, h, w, kernel: [k, k], stride: [st, st], pad: [p, p], oh, ow };
            let x: Vec<f32> = (0..c * h * w).map(|_| rng.next_f32()).collect();
            let (mut xpad, mut cols) = (vec![0.0; d.xpad_len()], vec![f32::NAN; d.cols_len()]);
            im2col_with(s, &d, &x, &mut xpad, &mut cols);
            for ci in 0..c {
                for (ky, kx) in (0..k).flat_map(|ky| (0..k).map(move |kx| (ky, kx))) {
                    for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                        let (iy, ix) = ((oy * st + ky) as isize - p as isize, (ox * st + kx) as isize - p as isize);
                        let inside = (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                        let want = if inside { x[(ci * h + iy as usize) * w + ix as usize] } else { 0.0 };
                        let got = cols[((ci * k + ky) * k + kx) * oh * ow + oy * ow + ox];
                        assert_eq!(got, want, "{}: c{c} {h}×{w} k{k} s{st} p{p}: tap ({ci},{ky},{kx}) at ({oy},{ox})", S::NAME);
                    }
                }
            }
        }
    }

    fn im2row_is_the_transpose_of_im2col<S: Simd>(s: S) {
        let mut rng = Rng::new(5);
        for (c, h, w, k, st, p, _) in
            [(1, 28, 28, 5, 1, 2, 6), (3, 9, 7, 3, 2, 1, 5), (32, 14, 14, 5, 1, 2, 9), (4, 5, 5, 1, 1, 0, 3), (2, 7, 9, 2, 3, 2, 8)]
        {
            let (oh, ow) = ((h + 2 * p - k) / st + 1, (w + 2 * p - k) / st + 1);
            let d = Im2col { c, h, w, kernel: [k, k], stride: [st, st], pad: [p, p], oh, ow };
            let (taps, plane) = (c * k * k, oh * ow);
            let x: Vec<f32> = (0..c * h * w).map(|_| rng.next_f32() - 0.5).collect();
            let mut xpad = vec![0.0; d.xpad_len()];
            let (mut cols, mut rows) = (vec![0.0; d.cols_len()], vec![f32::NAN; d.cols_len()]);
            im2col_with(s, &d, &x, &mut xpad, &mut cols);
            im2row_with(s, &d, &x, &mut xpad, &mut rows);
            for t in 0..taps {
                for q in 0..plane {
                    assert_eq!(rows[q * taps + t], cols[t * plane + q], "{}: c{c} k{k} s{st} p{p}: tap {t}, position {q}", S::NAME);
                }
            }
        }
    }

    fn col2im_sums_each_entry_at_its_input<S: Simd>(s: S) {
        let mut rng = Rng::new(4);
        // Rows of one, two and three vectors; padding 0, 1, 2 and wider
        // than half the kernel; strides 1 to 3; inputs no window reaches.
        let shapes =
            [(1, 14, 14, 5, 1, 0), (6, 14, 14, 5, 1, 2), (2, 9, 37, 3, 1, 1), (3, 9, 7, 3, 2, 1), (2, 6, 20, 3, 1, 4), (2, 7, 9, 2, 3, 2)];
        for (c, h, w, k, st, p) in shapes {
            let (oh, ow) = ((h + 2 * p - k) / st + 1, (w + 2 * p - k) / st + 1);
            let d = Im2col { c, h, w, kernel: [k, k], stride: [st, st], pad: [p, p], oh, ow };
            let cols = values(&mut rng, d.cols_len());
            let mut dx = vec![f32::NAN; c * h * w];
            col2im_with(s, &d, &cols, &mut dx);
            let mut want = vec![0.0f64; c * h * w];
            for ci in 0..c {
                for (ky, kx) in (0..k).flat_map(|ky| (0..k).map(move |kx| (ky, kx))) {
                    for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                        let (iy, ix) = ((oy * st + ky) as isize - p as isize, (ox * st + kx) as isize - p as isize);
                        if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                            want[(ci * h + iy as usize) * w + ix as usize] +=
                                f64::from(cols[((ci * k + ky) * k + kx) * oh * ow + oy * ow + ox]);
                        }
                    }
                }
            }
            for (i, (&got, &want)) in dx.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(got) - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{}: c{c} {h}×{w} k{k} s{st} p{p}: dx[{i}] {got} vs {want}",
                    S::NAME
                );
            }
        }
    }

    fn row_sums_add_each_row_to_its_output<S: Simd>(s: S) {
        let mut rng = Rng::new(11);
        // Shorter than a vector, between the vector and the four-vector
        // steps, LeNet-5's conv2 and conv1 planes.
        for len in [1, 15, 16, 63, 64, 100, 130, 784] {
            let rows = 3;
            let x: Vec<f32> = (0..rows * len).map(|_| rng.symmetric(1.0)).collect();
            let mut out = vec![0.5f32; rows];
            row_sums(s, &x, len, &mut out);
            for (r, &got) in out.iter().enumerate() {
                let want = 0.5 + x[r * len..][..len].iter().map(|&v| f64::from(v)).sum::<f64>();
                assert!((f64::from(got) - want).abs() < 1e-5 * len as f64, "{}: len {len} row {r}: {got}, want {want}", S::NAME);
            }
        }
    }

    /// `weight_grad` at the level `cpu_level` allows (its GEMM's levels are
    /// the GEMM's tests'): `gw += dz · colsᵀ`, from a non-zero start.
    #[test]
    fn weight_grad_is_the_product_of_dz_and_the_gathered_rows() {
        let mut rng = Rng::new(5);
        for (c, h, w, k, st, p, f) in
            [(1, 28, 28, 5, 1, 2, 6), (3, 9, 7, 3, 2, 1, 5), (32, 14, 14, 5, 1, 2, 9), (4, 5, 5, 1, 1, 0, 3), (2, 7, 9, 2, 3, 2, 8)]
        {
            let (oh, ow) = ((h + 2 * p - k) / st + 1, (w + 2 * p - k) / st + 1);
            let d = Im2col { c, h, w, kernel: [k, k], stride: [st, st], pad: [p, p], oh, ow };
            let (taps, plane) = (c * k * k, oh * ow);
            let x: Vec<f32> = (0..c * h * w).map(|_| rng.next_f32() - 0.5).collect();
            let mut xpad = vec![0.0; d.xpad_len()];
            let (mut cols, mut rows) = (vec![0.0; d.cols_len()], vec![f32::NAN; d.cols_len()]);
            im2col(&d, &x, &mut xpad, &mut cols);
            im2row(&d, &x, &mut xpad, &mut rows);
            for t in 0..taps {
                for q in 0..plane {
                    assert_eq!(rows[q * taps + t], cols[t * plane + q], "c{c} k{k} s{st} p{p}: tap {t}, position {q}");
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
            let x = values(&mut rng, c * h * w);
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
}

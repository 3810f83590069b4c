//! A conv's weight gradient with the filters in the vector lanes — for the
//! convs that run as im2col and a GEMM (LeNet-5's conv2: 6 → 16 channels,
//! 5 × 5, 10 × 10 outputs).
//!
//! There the GEMM `gw += dz · im2row(x)` is as short as its operands: 16
//! filters by 100 positions by 150 taps, after a gather that writes every
//! input 25 times (im2row took a quarter of the GEMM's time, the GEMM ran
//! at 58% of peak). Turned around, with the gradient at the output
//! channels-last — each position a vector of 16 filters' `dz` — the sum
//! `gw[·][tap] = Σ_p dz[·][p] · x[tap + p]` is, for each position, one
//! vector load and one FMA per tap, the input value broadcast straight
//! from the image: a block of taps (a channel's 5 × 5, three channels'
//! 3 × 3) keeps its sums in registers across all the positions. No
//! gather, and FMA-bound.
//!
//! The sums stay channels-last — `acc[tap][filter]` — from image to image
//! ([`weight_grad_acc`]) and are transposed into the filters' layout once
//! per batch ([`weight_grad_finish`]), as the Winograd conv's are.

use std::cell::RefCell;

use super::rows::{Bordered, Im2col};
use super::winograd::channels_last;
use super::{CpuLevel, cpu_level};

/// Lanes of a vector: filters per block.
const LANES: usize = 16;

/// Whether [`weight_grad_acc`] runs `d`'s weight gradient: a square kernel
/// 2 to 5 wide (a block of taps fits the registers), any stride and
/// padding, on AVX-512.
pub fn applies(d: &Im2col) -> bool {
    d.kernel[0] == d.kernel[1]
        && (2..=5).contains(&d.kernel[0])
        && d.c > 0
        && d.oh * d.ow > 0
        && d.fits()
        && cpu_level() == CpuLevel::Avx512
}

/// Filters rounded up to whole vectors.
const fn lanes(filters: usize) -> usize {
    filters.div_ceil(LANES) * LANES
}

/// The sums' length: taps × filters rounded up to whole vectors.
pub const fn grad_len(d: &Im2col, filters: usize) -> usize {
    d.c * d.kernel[0] * d.kernel[1] * lanes(filters)
}

struct Scratch {
    xpad: Bordered,
    /// `dz` channels-last, and the transpose on the way.
    dzt: Vec<f32>,
    tmp: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch { xpad: Bordered::default(), dzt: Vec::new(), tmp: Vec::new() });
}

/// `acc[tap][fi] += Σ_p dz[fi][p] · x[tap at p]` for one image `x`
/// (`c × h × w`) and its output gradient `dz` (`filters × oh·ow`); `acc`
/// holds [`grad_len`] values, zero before the first image.
pub fn weight_grad_acc(d: &Im2col, x: &[f32], dz: &[f32], filters: usize, acc: &mut [f32]) {
    let plane = d.oh * d.ow;
    assert!(
        applies(d) && x.len() >= d.c * d.h * d.w && dz.len() >= filters * plane && acc.len() >= grad_len(d, filters),
        "filter_lanes::weight_grad_acc: buffers do not fit {d:?} with {filters} filters"
    );
    let cs = lanes(filters);
    let (hp, wp) = d.padded();
    SCRATCH.with_borrow_mut(|s| {
        let xp: &[f32] = if d.xpad_len() == 0 { x } else { s.xpad.copy(x, [d.c, d.h, d.w], d.pad, [hp, wp]) };
        let dzt = channels_last(&dz[..filters * plane], [filters, d.oh, d.ow], [0, 0], [d.oh, d.ow], cs, &mut s.tmp, &mut s.dzt);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `applies` checked AVX-512; `xp` is the padded image, in
        // which every window fits (`fits`); `dzt` holds `oh·ow × cs` values
        // and `acc` `taps × cs`.
        unsafe {
            x86::accumulate(d, xp, dzt, cs, acc)
        };
    });
}

/// `gw[fi][tap] = acc[tap][fi]`: the weight gradient (`filters × taps`)
/// from [`weight_grad_acc`]'s sums.
pub fn weight_grad_finish(d: &Im2col, filters: usize, acc: &[f32], gw: &mut [f32]) {
    let (taps, cs) = (d.c * d.kernel[0] * d.kernel[1], lanes(filters));
    assert!(
        acc.len() >= taps * cs && gw.len() >= filters * taps,
        "filter_lanes::weight_grad_finish: buffers do not fit {d:?} with {filters} filters"
    );
    for (fi, row) in gw.chunks_exact_mut(taps).take(filters).enumerate() {
        for (t, g) in row.iter_mut().enumerate() {
            *g = acc[t * cs + fi];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Im2col, LANES};

    /// Every block of taps of every vector of filters.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `xp` is the `c × hp × wp` padded image in
    /// which `d`'s windows fit, `dzt` `oh·ow` pixels of `cs` values, `acc`
    /// `taps × cs` values.
    pub(super) unsafe fn accumulate(d: &Im2col, xp: &[f32], dzt: &[f32], cs: usize, acc: &mut [f32]) {
        let k = d.kernel[0];
        let (hp, wp) = d.padded();
        let g = Geometry { plane: hp * wp, wp, stride: d.stride, out: [d.oh, d.ow], cs };
        // Channels per block: as many kernels as fit 28 accumulators.
        let per_block = 28 / (k * k);
        for v in (0..cs).step_by(LANES) {
            let mut ci = 0;
            while ci < d.c {
                let block = per_block.min(d.c - ci);
                // SAFETY: the caller's contract; the block's channels are
                // in `xp`, its taps in `acc`.
                unsafe {
                    let x = xp.as_ptr().add(ci * g.plane);
                    let (dz, a) = (dzt.as_ptr().add(v), acc.as_mut_ptr().add(ci * k * k * cs + v));
                    match (k, block) {
                        (2, 7) => sums::<2, 7, 28>(&g, x, dz, a),
                        (2, 1) => sums::<2, 1, 4>(&g, x, dz, a),
                        (3, 3) => sums::<3, 3, 27>(&g, x, dz, a),
                        (3, 1) => sums::<3, 1, 9>(&g, x, dz, a),
                        (4, 1) => sums::<4, 1, 16>(&g, x, dz, a),
                        (5, 1) => sums::<5, 1, 25>(&g, x, dz, a),
                        // Fewer channels left than a block: one at a time.
                        (2, _) => sums::<2, 1, 4>(&g, x, dz, a),
                        (3, _) => sums::<3, 1, 9>(&g, x, dz, a),
                        _ => unreachable!("filter_lanes applies to kernels 2 to 5 wide"),
                    }
                }
                ci += if block == per_block { block } else { 1 };
            }
        }
    }

    struct Geometry {
        /// Values per channel of the padded image, per row.
        plane: usize,
        wp: usize,
        stride: [usize; 2],
        out: [usize; 2],
        /// Values per pixel of `dzt` and per tap of `acc`.
        cs: usize,
    }

    /// `acc[t] += Σ_p dz[p] · x[t at p]` for the `T = C·K·K` taps of `C`
    /// channels, in registers across the positions.
    ///
    /// # Safety
    /// As [`accumulate`], `x` at the block's first channel, `dz` and `acc`
    /// at the vector's first filter.
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    unsafe fn sums<const K: usize, const C: usize, const T: usize>(g: &Geometry, x: *const f32, dz: *const f32, acc: *mut f32) {
        debug_assert_eq!(T, C * K * K);
        let [sh, sw] = g.stride;
        let [oh, ow] = g.out;
        // SAFETY (all below): the offsets stay inside the buffers the
        // caller vouched for — windows fit the padded image, pixels and
        // taps the sums.
        let mut s: [__m512; T] = std::array::from_fn(|t| unsafe { _mm512_loadu_ps(acc.add(t * g.cs)) });
        for oy in 0..oh {
            let row = unsafe { x.add(oy * sh * g.wp) };
            let dz_row = unsafe { dz.add(oy * ow * g.cs) };
            for ox in 0..ow {
                let v = unsafe { _mm512_loadu_ps(dz_row.add(ox * g.cs)) };
                let at = unsafe { row.add(ox * sw) };
                for c in 0..C {
                    for ky in 0..K {
                        let line = unsafe { at.add(c * g.plane + ky * g.wp) };
                        for kx in 0..K {
                            let t = (c * K + ky) * K + kx;
                            s[t] = _mm512_fmadd_ps(_mm512_set1_ps(unsafe { *line.add(kx) }), v, s[t]);
                        }
                    }
                }
            }
        }
        for (t, s) in s.iter().enumerate() {
            unsafe { _mm512_storeu_ps(acc.add(t * g.cs), *s) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The GEMM's answer: `dz · im2row(x)`, in f64 via the definition.
    fn reference(d: &Im2col, x: &[f32], dz: &[f32], filters: usize) -> Vec<f64> {
        let [kh, kw] = d.kernel;
        let taps = d.c * kh * kw;
        let at = |ci: usize, iy: usize, ix: usize| -> f64 {
            match (iy.checked_sub(d.pad[0]), ix.checked_sub(d.pad[1])) {
                (Some(y), Some(x_)) if y < d.h && x_ < d.w => f64::from(x[(ci * d.h + y) * d.w + x_]),
                _ => 0.0,
            }
        };
        let mut gw = vec![0.0; filters * taps];
        for fi in 0..filters {
            for ci in 0..d.c {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let mut sum = 0.0;
                        for oy in 0..d.oh {
                            for ox in 0..d.ow {
                                let g = f64::from(dz[(fi * d.oh + oy) * d.ow + ox]);
                                sum += g * at(ci, oy * d.stride[0] + ky, ox * d.stride[1] + kx);
                            }
                        }
                        gw[fi * taps + (ci * kh + ky) * kw + kx] = sum;
                    }
                }
            }
        }
        gw
    }

    #[test]
    fn matches_the_definition_over_images() {
        if cpu_level() != CpuLevel::Avx512 {
            return;
        }
        let mut rng = Rng::new(7);
        // (c, h, w, k, stride, pad, filters): LeNet-5's conv2, the block
        // remainders of each kernel size, strides, padding, filters that
        // are not whole vectors or more than one.
        let cases = [
            (6, 14, 14, 5, 1, 0, 16),
            (7, 9, 11, 3, 1, 1, 20),
            (5, 8, 8, 3, 2, 1, 33),
            (9, 7, 6, 2, 1, 0, 3),
            (2, 10, 9, 4, 2, 2, 16),
            (1, 6, 6, 5, 1, 2, 1),
            (8, 5, 7, 2, 2, 1, 17),
        ];
        for (c, h, w, k, s, p, filters) in cases {
            let o = |n: usize| (n + 2 * p - k) / s + 1;
            let d = Im2col { c, h, w, kernel: [k, k], stride: [s, s], pad: [p, p], oh: o(h), ow: o(w) };
            assert!(applies(&d), "{d:?}");
            let plane = d.oh * d.ow;
            let mut acc = vec![0.0; grad_len(&d, filters)];
            let mut want = vec![0.0f64; filters * c * k * k];
            let mut scale = vec![0.0f64; want.len()];
            for _ in 0..2 {
                let x: Vec<f32> = (0..c * h * w).map(|_| rng.symmetric(1.0)).collect();
                let dz: Vec<f32> = (0..filters * plane).map(|_| rng.symmetric(1.0)).collect();
                weight_grad_acc(&d, &x, &dz, filters, &mut acc);
                for (w, r) in want.iter_mut().zip(reference(&d, &x, &dz, filters)) {
                    *w += r;
                }
                let ax: Vec<f32> = x.iter().map(|v| v.abs()).collect();
                let adz: Vec<f32> = dz.iter().map(|v| v.abs()).collect();
                for (s, r) in scale.iter_mut().zip(reference(&d, &ax, &adz, filters)) {
                    *s += r;
                }
            }
            let mut gw = vec![f32::NAN; filters * c * k * k];
            weight_grad_finish(&d, filters, &acc, &mut gw);
            for (i, ((&got, &want), &scale)) in gw.iter().zip(&want).zip(&scale).enumerate() {
                assert!((f64::from(got) - want).abs() <= 1e-5 * scale.max(1.0), "{d:?} filters {filters}: gw[{i}] = {got}, want {want}");
            }
        }
    }
}

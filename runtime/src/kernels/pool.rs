//! The 2×2, stride-2 max pool of compiled stages and its gradient, over
//! [`Simd`]: a vector of outputs per step — the even and odd columns of
//! two input rows deinterleaved, the taps compared in the interpreter's
//! order — and, backward, both input rows of their windows written at
//! once (no scatter, no zeroing pass). Shared by the `network!` code and
//! the JIT.

use crate::kernels::simd::{Simd, multiversion};
use crate::ops::Activation;

multiversion! {
    /// 2×2 max pooling with stride 2 over `planes` planes of `h × w` (`x`)
    /// into `planes × (h/2) × (w/2)` (`y`); with `argmax` non-empty, each
    /// output's maximum as an index into `x`. With argmax, the interpreter's
    /// rule exactly: taps in row order, a later tap wins when greater or NaN.
    /// Without, the same maximum, but of a zero's two signs either may win.
    pub fn max_pool_2x2(x: &[f32], planes: usize, h: usize, w: usize, y: &mut [f32], argmax: &mut [u32])
        => |s| max_pool_with(s, x, planes, h, w, y, argmax)
}

/// [`max_pool_2x2`] at `s`'s level: per step, a vector of outputs from two
/// vectors of each input row — their even and odd columns deinterleaved —
/// then the taps in the scalar order with a mask per step, or, without
/// argmax and NaNs, plain maxima in any order.
#[inline(always)]
pub(crate) fn max_pool_with<S: Simd>(s: S, x: &[f32], planes: usize, h: usize, w: usize, y: &mut [f32], argmax: &mut [u32]) {
    let (oh, ow) = (h / 2, w / 2);
    assert!(
        x.len() >= planes * h * w && y.len() >= planes * oh * ow && (argmax.is_empty() || argmax.len() >= planes * oh * ow),
        "max_pool_2x2: buffers shorter than the geometry"
    );
    let l = S::LANES;
    // Lane i of a step's outputs reads input column 2i (then 2i + 1).
    let even = s.add_i(s.index(), s.index());
    let record = !argmax.is_empty();
    let (xp, yp, ap) = (x.as_ptr(), y.as_mut_ptr(), argmax.as_mut_ptr());
    for c in 0..planes {
        for oy in 0..oh {
            let first = (c * h + 2 * oy) * w;
            let out = (c * oh + oy) * ow;
            let mut ox = 0;
            while ox < ow {
                let n = (ow - ox).min(l);
                let (lo, hi) = (s.first(2 * n), s.first((2 * n).saturating_sub(l)));
                // Columns 2·ox .. 2·(ox + n) of the pair's rows.
                // SAFETY: the unmasked lanes are columns < 2·ow ≤ w of rows
                // 2·oy and 2·oy + 1 < h of plane c (asserted above).
                let (t, b) = unsafe {
                    let (p, q) = (xp.add(first + 2 * ox), xp.add(first + w + 2 * ox));
                    (
                        (s.load_masked(lo, p), s.load_masked(hi, p.wrapping_add(l))),
                        (s.load_masked(lo, q), s.load_masked(hi, q.wrapping_add(l))),
                    )
                };
                let m = s.first(n);
                let nan = s.or(s.or(s.is_nan(t.0), s.is_nan(b.0)), s.or(s.is_nan(t.1), s.is_nan(b.1)));
                if !record && s.is_empty(nan) {
                    // Only the values, and no NaN: the maximum of the rows,
                    // then of the even and odd columns.
                    let (e, o) = s.deinterleave(s.max(t.0, b.0), s.max(t.1, b.1));
                    // SAFETY: outputs out + ox .. out + ox + n are in plane c's row oy.
                    unsafe { s.store_masked(m, yp.add(out + ox), s.max(e, o)) };
                    ox += l;
                    continue;
                }
                let ((t0, t1), (b0, b1)) = (s.deinterleave(t.0, t.1), s.deinterleave(b.0, b.1));
                let mut best = t0;
                let mut at = s.splat_i(0);
                for (v, k) in [(t1, 1), (b0, w as i32), (b1, w as i32 + 1)] {
                    let wins = s.or(s.gt(v, best), s.is_nan(v));
                    best = s.select(wins, v, best);
                    if record {
                        at = s.select_i(wins, s.splat_i(k), at);
                    }
                }
                // SAFETY: outputs out + ox .. out + ox + n are in plane c's row oy.
                unsafe { s.store_masked(m, yp.add(out + ox), best) };
                if record {
                    let at = s.add_i(s.add_i(s.splat_i((first + 2 * ox) as i32), even), at);
                    // SAFETY: as above; `argmax` has an entry per output.
                    unsafe { s.store_i_masked(m, ap.add(out + ox), at) };
                }
                ox += l;
            }
        }
    }
}

multiversion! {
    /// The gradient through [`max_pool_2x2`] and the activation `a` before
    /// it, for training: `dz` (`planes × h × w`, written in full) is zero but
    /// at each output's maximum `argmax[o]` (as [`max_pool_2x2`] records it,
    /// an index into the plane stack), where it is `dy[o]·a'(y[o])` — `y`
    /// being the pooled, activated output: every activation is monotone, so
    /// the activation of the maximum is the pooled value. Each step takes a
    /// vector of outputs and writes both input rows of their windows (the
    /// outputs and indices spread to each window's two columns, a compare
    /// against each column's index).
    pub fn max_unpool_2x2(dy: &[f32], y: &[f32], argmax: &[u32], a: Activation, planes: usize, h: usize, w: usize, dz: &mut [f32])
        => |s| max_unpool_with(s, dy, y, argmax, a, planes, h, w, dz)
}

/// [`max_unpool_2x2`] at `s`'s level.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn max_unpool_with<S: Simd>(
    s: S,
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
    let outs = planes * oh * ow;
    assert!(
        dy.len() >= outs && y.len() >= outs && argmax.len() >= outs && dz.len() >= planes * h * w,
        "max_unpool_2x2: buffers shorter than the geometry"
    );
    let l = S::LANES;
    let column = s.index();
    let (gp, yp, ap, zp) = (dy.as_ptr(), y.as_ptr(), argmax.as_ptr(), dz.as_mut_ptr());
    for c in 0..planes {
        for oy in 0..oh {
            let first = (c * h + 2 * oy) * w;
            let out = (c * oh + oy) * ow;
            let mut ox = 0;
            while ox < ow {
                let n = (ow - ox).min(l);
                let m = s.first(n);
                // SAFETY: outputs out + ox .. out + ox + n are in plane c's
                // row oy of `dy`, `y` and `argmax` (asserted above).
                let (g, at) = unsafe {
                    let d = derivative(s, a, s.load_masked(m, yp.add(out + ox)));
                    (s.mul(s.load_masked(m, gp.add(out + ox)), d), s.load_i_masked(m, ap.add(out + ox)))
                };
                // Input lane j of a row's 2n belongs to output j / 2.
                let (g_lo, g_hi) = s.spread(g);
                let (at_lo, at_hi) = s.spread_i(at);
                let (lo, hi) = (s.first(2 * n), s.first((2 * n).saturating_sub(l)));
                for r in 0..2 {
                    let start = first + r * w + 2 * ox;
                    let here = s.add_i(s.splat_i(start as i32), column);
                    let there = s.add_i(here, s.splat_i(l as i32));
                    let (keep_lo, keep_hi) = (s.eq_i(at_lo, here), s.eq_i(at_hi, there));
                    // SAFETY: inputs start .. start + 2n are columns < 2·ow ≤ w
                    // of row 2·oy + r < h of plane c.
                    unsafe {
                        s.store_masked(lo, zp.add(start), s.select(keep_lo, g_lo, s.zero()));
                        s.store_masked(hi, zp.add(start).wrapping_add(l), s.select(keep_hi, g_hi, s.zero()));
                    }
                }
                ox += l;
            }
            if w % 2 == 1 {
                // The last column of the two rows, which no window reads.
                dz[first + w - 1] = 0.0;
                dz[first + 2 * w - 1] = 0.0;
            }
        }
        if h % 2 == 1 {
            // The last row of plane c.
            dz[(c * h + h - 1) * w..][..w].fill(0.0);
        }
    }
}

/// `a'` at the activated output `y`, lane by lane, as
/// [`Activation::derivative_at_output`] computes it (same operations,
/// same rounding).
#[inline(always)]
pub(crate) fn derivative<S: Simd>(s: S, a: Activation, y: S::F32) -> S::F32 {
    let one = s.splat(1.0);
    match a {
        Activation::None => one,
        Activation::Relu => s.select(s.gt(y, s.zero()), one, s.zero()),
        Activation::LeakyRelu { alpha } => s.select(s.gt(y, s.zero()), one, s.splat(alpha)),
        Activation::Elu { alpha } => s.select(s.gt(y, s.zero()), one, s.add(y, s.splat(alpha))),
        Activation::Sigmoid => s.mul(y, s.sub(one, y)),
        Activation::Tanh => s.sub(one, s.mul(y, y)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernels::simd::testing::{AtEveryLevel, for_each_simd};
    use crate::rng::Rng;

    /// The definition, one output at a time: taps in row order, a later
    /// tap wins when greater or NaN.
    pub(crate) fn max_pool_reference(x: &[f32], planes: usize, h: usize, w: usize, y: &mut [f32], argmax: &mut [u32]) {
        let (oh, ow) = (h / 2, w / 2);
        for c in 0..planes {
            for oy in 0..oh {
                for ox in 0..ow {
                    let first = (c * h + 2 * oy) * w + 2 * ox;
                    let (mut best, mut best_at) = (x[first], first);
                    for at in [first + 1, first + w, first + w + 1] {
                        if x[at] > best || x[at].is_nan() {
                            (best, best_at) = (x[at], at);
                        }
                    }
                    let o = (c * oh + oy) * ow + ox;
                    y[o] = best;
                    if !argmax.is_empty() {
                        argmax[o] = best_at as u32;
                    }
                }
            }
        }
    }

    /// Values with ties (few distinct values) and, with `nans`, some NaNs.
    fn values(rng: &mut Rng, len: usize, nans: bool) -> Vec<f32> {
        (0..len)
            .map(|_| match rng.below(10) {
                0 if nans => f32::NAN,
                k => (k % 4) as f32 - 1.5,
            })
            .collect()
    }

    struct Pools;

    impl AtEveryLevel for Pools {
        fn at<S: Simd>(&mut self, s: S) {
            let mut rng = Rng::new(7);
            for w in (2..=40).step_by(2) {
                for (h, planes) in [(2, 1), (6, 3)] {
                    let x = values(&mut rng, planes * h * w, w % 4 == 0);
                    let outs = planes * (h / 2) * (w / 2);
                    let (mut y, mut at) = (vec![0.0; outs], vec![0; outs]);
                    let (mut y_ref, mut at_ref) = (vec![0.0; outs], vec![0; outs]);
                    max_pool_with(s, &x, planes, h, w, &mut y, &mut at);
                    max_pool_reference(&x, planes, h, w, &mut y_ref, &mut at_ref);
                    assert_eq!(at, at_ref, "{}: argmax, width {w}", S::NAME);
                    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
                    assert!(same(&y, &y_ref), "{}: values, width {w}", S::NAME);
                    // Every recorded index points at its output's value.
                    assert!(y.iter().zip(&at).all(|(v, &i)| v.to_bits() == x[i as usize].to_bits()));
                    let mut y_only = vec![0.0; outs];
                    max_pool_with(s, &x, planes, h, w, &mut y_only, &mut []);
                    let equal = y_only.iter().zip(&y_ref).all(|(p, q)| p == q || (p.is_nan() && q.is_nan()));
                    assert!(equal, "{}: values without argmax, width {w}", S::NAME);
                }
            }
        }
    }

    #[test]
    fn max_pool_2x2_matches_the_scalar_rule_at_every_width() {
        for_each_simd(&mut Pools);
    }

    struct Unpools;

    impl AtEveryLevel for Unpools {
        /// Every width and height, odd ones too (whose last column and row
        /// no window covers), every activation: the gradient lands at each
        /// window's recorded maximum, scaled by the derivative, and every
        /// other value of `dz` is written zero.
        fn at<S: Simd>(&mut self, s: S) {
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
                    max_pool_reference(&x, planes, h, w, &mut y, &mut at);
                    let dy = values(&mut rng, outs, false);
                    let mut dz = vec![f32::NAN; planes * h * w];
                    max_unpool_with(s, &dy, &y, &at, a, planes, h, w, &mut dz);
                    let mut want = vec![0.0f32; planes * h * w];
                    for o in 0..outs {
                        want[at[o] as usize] = dy[o] * a.derivative_at_output(y[o]);
                    }
                    assert!(dz.iter().zip(&want).all(|(p, q)| p == q), "{}: width {w}, height {h}, {a:?}", S::NAME);
                }
            }
        }
    }

    #[test]
    fn max_unpool_2x2_routes_each_gradient_to_its_maximum() {
        for_each_simd(&mut Unpools);
    }
}

//! max, average and L2 pooling, forward and backward, one image at a time.
//!
//! Padded positions: ignored by max pooling, zeros for average and L2
//! (average divides by the full window, as PyTorch's default
//! `count_include_pad = True`).

use crate::layer::Pool;
use crate::ops::PoolKind;

#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
}

/// For max pooling, `argmax` receives the input offset (within the image)
/// of each output's maximum, for backward.
pub fn forward(pool: &Pool, d: Dims, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    let [kh, kw] = pool.size;
    let [sh, sw] = pool.stride;
    let [ph, pw] = pool.pad;
    let window = (kh * kw) as f32;
    for c in 0..d.c {
        for oy in 0..d.oh {
            for ox in 0..d.ow {
                let (mut best, mut best_at, mut sum) = (f32::NEG_INFINITY, u32::MAX, 0.0f32);
                for ky in 0..kh {
                    let Some(iy) = (oy * sh + ky).checked_sub(ph).filter(|&iy| iy < d.h) else { continue };
                    for kx in 0..kw {
                        let Some(ix) = (ox * sw + kx).checked_sub(pw).filter(|&ix| ix < d.w) else { continue };
                        let at = (c * d.h + iy) * d.w + ix;
                        let v = x[at];
                        match pool.kind {
                            // A NaN wins, so it propagates (as in PyTorch).
                            PoolKind::Max if v > best || v.is_nan() || best_at == u32::MAX => {
                                best = v;
                                best_at = at as u32;
                            }
                            PoolKind::Max => {}
                            PoolKind::Avg => sum += v,
                            PoolKind::L2 => sum += v * v,
                        }
                    }
                }
                let o = (c * d.oh + oy) * d.ow + ox;
                y[o] = match pool.kind {
                    PoolKind::Max => {
                        argmax[o] = best_at;
                        best
                    }
                    PoolKind::Avg => sum / window,
                    PoolKind::L2 => sum.sqrt(),
                };
            }
        }
    }
}

/// Accumulates into `dx` (zeroed by the caller).
pub fn backward(pool: &Pool, d: Dims, x: &[f32], y: &[f32], argmax: &[u32], dy: &[f32], dx: &mut [f32]) {
    if pool.kind == PoolKind::Max {
        for (o, &g) in dy.iter().enumerate() {
            dx[argmax[o] as usize] += g;
        }
        return;
    }
    let [kh, kw] = pool.size;
    let [sh, sw] = pool.stride;
    let [ph, pw] = pool.pad;
    let window = (kh * kw) as f32;
    for c in 0..d.c {
        for oy in 0..d.oh {
            for ox in 0..d.ow {
                let o = (c * d.oh + oy) * d.ow + ox;
                // d sqrt(Σx²)/dx = x / y; a zero window has zero gradient.
                let scale = match pool.kind {
                    PoolKind::Avg => dy[o] / window,
                    _ if y[o] > 0.0 => dy[o] / y[o],
                    _ => 0.0,
                };
                for ky in 0..kh {
                    let Some(iy) = (oy * sh + ky).checked_sub(ph).filter(|&iy| iy < d.h) else { continue };
                    for kx in 0..kw {
                        let Some(ix) = (ox * sw + kx).checked_sub(pw).filter(|&ix| ix < d.w) else { continue };
                        let at = (c * d.h + iy) * d.w + ix;
                        dx[at] += if pool.kind == PoolKind::Avg { scale } else { scale * x[at] };
                    }
                }
            }
        }
    }
}

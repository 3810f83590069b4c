//! conv2d (shared weights) and local2d (one filter bank per output
//! position), forward and backward, one image at a time, activations NCHW.
//!
//! The loops run filter → input channel → kernel tap → output row → output
//! column, so the innermost loop walks contiguous rows of input and output.

use crate::layer::{Conv, valid_outputs};

/// Sizes of one conv/local layer application.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub f: usize,
    pub oh: usize,
    pub ow: usize,
}

/// The filter bank of filter `f` at output `(oy, ox)` of a local layer
/// (a shared-weight conv has one bank per filter: `f` itself).
#[inline]
fn local_bank(d: Dims, f: usize, oy: usize, ox: usize) -> usize {
    (f * d.oh + oy) * d.ow + ox
}

/// Offset of tap `(ci, ky, kx)` of filter bank `bank`.
#[inline]
fn weight_index(conv: &Conv, d: Dims, bank: usize, ci: usize, ky: usize, kx: usize) -> usize {
    let [kh, kw] = conv.kernel;
    ((bank * d.c + ci) * kh + ky) * kw + kx
}

/// `y = act(conv(x) + bias)` for one image.
pub fn forward(conv: &Conv, d: Dims, local: bool, weight: &[f32], bias: Option<&[f32]>, x: &[f32], y: &mut [f32]) {
    let [kh, kw] = conv.kernel;
    let [sh, sw] = conv.stride;
    let [ph, pw] = conv.pad;
    let plane = d.oh * d.ow;
    for f in 0..d.f {
        let yp = &mut y[f * plane..(f + 1) * plane];
        match bias {
            None => yp.fill(0.0),
            Some(b) if local => yp.copy_from_slice(&b[f * plane..(f + 1) * plane]),
            Some(b) => yp.fill(b[f]),
        }
        for ci in 0..d.c {
            let xp = &x[ci * d.h * d.w..(ci + 1) * d.h * d.w];
            for ky in 0..kh {
                let rows = valid_outputs(d.oh, d.h, sh, ky, ph);
                for kx in 0..kw {
                    let cols = valid_outputs(d.ow, d.w, sw, kx, pw);
                    let shared = weight[weight_index(conv, d, f, ci, ky, kx)];
                    for oy in rows.clone() {
                        let iy = oy * sh + ky - ph;
                        let xrow = &xp[iy * d.w..(iy + 1) * d.w];
                        let yrow = &mut yp[oy * d.ow..(oy + 1) * d.ow];
                        for ox in cols.clone() {
                            let wv = if local { weight[weight_index(conv, d, local_bank(d, f, oy, ox), ci, ky, kx)] } else { shared };
                            yrow[ox] += wv * xrow[ox * sw + kx - pw];
                        }
                    }
                }
            }
        }
        for v in yp.iter_mut() {
            *v = conv.activation.apply(*v);
        }
    }
}

/// Backward for one image. `dz` is the gradient at the pre-activation
/// output (the caller applied the activation's derivative). Accumulates
/// into `gw`, `gb` and `dx` (which the caller zeroed once per batch/image).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    conv: &Conv,
    d: Dims,
    local: bool,
    weight: &[f32],
    x: &[f32],
    dz: &[f32],
    gw: &mut [f32],
    gb: Option<&mut [f32]>,
    dx: &mut [f32],
) {
    let [kh, kw] = conv.kernel;
    let [sh, sw] = conv.stride;
    let [ph, pw] = conv.pad;
    let plane = d.oh * d.ow;
    if let Some(gb) = gb {
        for f in 0..d.f {
            let dzp = &dz[f * plane..(f + 1) * plane];
            if local {
                for (g, v) in gb[f * plane..(f + 1) * plane].iter_mut().zip(dzp) {
                    *g += v;
                }
            } else {
                gb[f] += dzp.iter().sum::<f32>();
            }
        }
    }
    for f in 0..d.f {
        let dzp = &dz[f * plane..(f + 1) * plane];
        for ci in 0..d.c {
            let xp = &x[ci * d.h * d.w..(ci + 1) * d.h * d.w];
            let dxp = &mut dx[ci * d.h * d.w..(ci + 1) * d.h * d.w];
            for ky in 0..kh {
                let rows = valid_outputs(d.oh, d.h, sh, ky, ph);
                for kx in 0..kw {
                    let cols = valid_outputs(d.ow, d.w, sw, kx, pw);
                    let shared = weight_index(conv, d, f, ci, ky, kx);
                    let mut acc = 0.0f32;
                    for oy in rows.clone() {
                        let iy = oy * sh + ky - ph;
                        let dzrow = &dzp[oy * d.ow..(oy + 1) * d.ow];
                        for ox in cols.clone() {
                            let ix = iy * d.w + ox * sw + kx - pw;
                            let g = dzrow[ox];
                            if local {
                                let wi = weight_index(conv, d, local_bank(d, f, oy, ox), ci, ky, kx);
                                gw[wi] += g * xp[ix];
                                dxp[ix] += weight[wi] * g;
                            } else {
                                acc += g * xp[ix];
                                dxp[ix] += weight[shared] * g;
                            }
                        }
                    }
                    if !local {
                        gw[shared] += acc;
                    }
                }
            }
        }
    }
}

//! Fully connected layers over a batch: `y = act(x Wᵀ + b)`, W `[out, in]`.

use crate::ops::Activation;

/// Dot product with eight independent partial sums, so that it vectorises
/// (a plain `sum` is a serial dependency chain in strict IEEE order).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += alpha · x`
#[inline]
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

pub fn forward(inputs: usize, units: usize, activation: Activation, weight: &[f32], bias: Option<&[f32]>, x: &[f32], y: &mut [f32]) {
    for (xb, yb) in x.chunks_exact(inputs).zip(y.chunks_exact_mut(units)) {
        for (u, out) in yb.iter_mut().enumerate() {
            let z = dot(&weight[u * inputs..(u + 1) * inputs], xb) + bias.map_or(0.0, |b| b[u]);
            *out = activation.apply(z);
        }
    }
}

/// `dz`: gradient at the pre-activation output. Accumulates `gw`, `gb`;
/// overwrites `dx`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    inputs: usize,
    units: usize,
    weight: &[f32],
    x: &[f32],
    dz: &[f32],
    gw: &mut [f32],
    mut gb: Option<&mut [f32]>,
    dx: &mut [f32],
) {
    dx.fill(0.0);
    for ((xb, dzb), dxb) in x.chunks_exact(inputs).zip(dz.chunks_exact(units)).zip(dx.chunks_exact_mut(inputs)) {
        for (u, &g) in dzb.iter().enumerate() {
            if g == 0.0 {
                continue;
            }
            axpy(g, xb, &mut gw[u * inputs..(u + 1) * inputs]);
            axpy(g, &weight[u * inputs..(u + 1) * inputs], dxb);
            if let Some(gb) = gb.as_deref_mut() {
                gb[u] += g;
            }
        }
    }
}

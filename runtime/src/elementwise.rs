//! Element-wise layers shared by every backend: activations and dropout.
//! The dropout mask is defined here, once, so that all backends draw the
//! same mask for the same seed and layer.

use crate::ops::Activation;
use crate::rng::Rng;

/// `y = a(x)`.
pub fn activation_forward(a: Activation, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = a.apply(*x);
    }
}

/// `dx = g · a'(x)`, written through the output `y`.
pub fn activation_backward(a: Activation, g: &[f32], y: &[f32], dx: &mut [f32]) {
    for ((dx, g), y) in dx.iter_mut().zip(g).zip(y) {
        *dx = g * a.derivative_at_output(*y);
    }
}

/// The training mask of dropout layer `layer` (its index in the network)
/// for step seed `seed`: 0 with probability `rate`, else 1/(1 − rate).
pub fn dropout_mask(seed: u64, layer: usize, rate: f32, len: usize, mask: &mut Vec<f32>) {
    let mut rng = Rng::derive(seed, layer as u64, 0);
    let keep = 1.0 / (1.0 - rate);
    mask.clear();
    mask.extend((0..len).map(|_| if rng.next_f32() < rate { 0.0 } else { keep }));
}

/// `out = a · mask` element-wise (dropout forward and backward alike).
pub fn apply_mask(a: &[f32], mask: &[f32], out: &mut [f32]) {
    for ((o, a), m) in out.iter_mut().zip(a).zip(mask) {
        *o = a * m;
    }
}

//! Initial parameter values, seeded and reproducible, shared by every
//! backend so that all of them start from bit-identical weights.
//!
//! Weights: He (Kaiming) uniform, bound `sqrt(6 / fan_in)`, for layers
//! followed by a ReLU-family activation; Glorot (Xavier) uniform, bound
//! `sqrt(6 / (fan_in + fan_out))`, otherwise — the defaults of PyTorch's
//! `kaiming_uniform_` and Keras' `glorot_uniform`. Biases start at zero.

use crate::layer::{LayerDef, Op};
use crate::ops::Activation;
use crate::rng::Rng;

/// One parameter's initial values.
pub struct InitialParam {
    pub name: String,
    pub shape: Vec<usize>,
    pub value: Vec<f32>,
}

/// Initial values for every parameter of `layers`, in layer order, weight
/// before bias. Each tensor draws from its own stream `(seed, index)`.
pub fn initial_params(layers: &[LayerDef], seed: u64) -> Vec<InitialParam> {
    let mut out = Vec::new();
    for def in layers {
        let (fan_in, fan_out, activation) = match &def.op {
            Op::Conv2d(c) | Op::Local2d(c) => {
                let taps = c.kernel[0] * c.kernel[1];
                (def.input.chw().0 * taps, c.filters * taps, c.activation)
            }
            Op::Dense { units, activation, .. } => (def.input.len(), *units, *activation),
            _ => continue,
        };
        let bound = match activation {
            Activation::Relu | Activation::LeakyRelu { .. } | Activation::Elu { .. } => (6.0 / fan_in as f64).sqrt(),
            _ => (6.0 / (fan_in + fan_out) as f64).sqrt(),
        } as f32;
        for shape in def.op.params(def.input, def.output) {
            let mut rng = Rng::derive(seed, out.len() as u64, 1);
            let value =
                if shape.name == "bias" { vec![0.0; shape.len()] } else { (0..shape.len()).map(|_| rng.symmetric(bound)).collect() };
            out.push(InitialParam { name: format!("{}.{}", def.name, shape.name), shape: shape.shape, value });
        }
    }
    out
}

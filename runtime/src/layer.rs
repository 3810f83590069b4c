//! The layer vocabulary shared by the compiler's graph, the interpreter and
//! every code generator: resolved geometry, shapes, parameter layouts.

use std::ops::Range;

use crate::ops::{Activation, PoolKind};

/// Per-axis (height, width) pair.
pub type Pair = [usize; 2];

/// The shape of one image's activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Channels × height × width, stored channel-major.
    Image { c: usize, h: usize, w: usize },
    /// A vector (after `flatten` or `dense`).
    Flat(usize),
}

impl Shape {
    pub fn len(self) -> usize {
        match self {
            Self::Image { c, h, w } => c * h * w,
            Self::Flat(n) => n,
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// `[c, h, w]` or `[n]`.
    pub fn dims(self) -> Vec<usize> {
        match self {
            Self::Image { c, h, w } => vec![c, h, w],
            Self::Flat(n) => vec![n],
        }
    }

    /// `(c, h, w)`, a vector counting as `n × 1 × 1`.
    pub fn chw(self) -> (usize, usize, usize) {
        match self {
            Self::Image { c, h, w } => (c, h, w),
            Self::Flat(n) => (n, 1, 1),
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Image { c, h, w } => write!(f, "{c}×{h}×{w}"),
            Self::Flat(n) => write!(f, "{n}"),
        }
    }
}

/// A convolution (shared weights) or local (unshared) layer, geometry resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conv {
    pub filters: usize,
    pub kernel: Pair,
    pub stride: Pair,
    /// Zero padding on each side, per axis ("same"/"valid" resolved).
    pub pad: Pair,
    pub activation: Activation,
    pub bias: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pool {
    pub kind: PoolKind,
    pub size: Pair,
    pub stride: Pair,
    pub pad: Pair,
}

impl Pool {
    /// 2×2 max pooling with stride 2 and no padding: the common pool,
    /// which compiled code runs on `kernels::pool::max_pool_2x2`.
    pub fn is_max_2x2(&self) -> bool {
        self.kind == PoolKind::Max && self.size == [2, 2] && self.stride == [2, 2] && self.pad == [0, 0]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Conv2d(Conv),
    Local2d(Conv),
    Pool(Pool),
    Flatten,
    Dense {
        units: usize,
        activation: Activation,
        bias: bool,
    },
    Dropout {
        rate: f32,
    },
    Activation(Activation),
    /// Marks the outputs as probabilities; models return the logits before it.
    Softmax,
}

/// A learnable tensor of a layer, in the PyTorch layout it is saved in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamShape {
    /// `weight` or `bias`; the tensor is named `<layer>.<name>`.
    pub name: &'static str,
    pub shape: Vec<usize>,
}

impl ParamShape {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Op {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Conv2d(_) => "conv2d",
            Self::Local2d(_) => "local2d",
            Self::Pool(p) => p.kind.layer_type(),
            Self::Flatten => "flatten",
            Self::Dense { .. } => "dense",
            Self::Dropout { .. } => "dropout",
            Self::Activation(a) => a.name(),
            Self::Softmax => "softmax",
        }
    }

    /// The parameter tensors of this op between `input` and `output`:
    /// conv `[out, in, kh, kw]`, local `[out, oh, ow, in, kh, kw]` with bias
    /// `[out, oh, ow]`, dense `[out, in]`.
    pub fn params(&self, input: Shape, output: Shape) -> Vec<ParamShape> {
        let (in_c, _, _) = input.chw();
        let (weight, bias) = match self {
            Self::Conv2d(c) => (vec![c.filters, in_c, c.kernel[0], c.kernel[1]], c.bias.then(|| vec![c.filters])),
            Self::Local2d(c) => {
                let (_, oh, ow) = output.chw();
                (vec![c.filters, oh, ow, in_c, c.kernel[0], c.kernel[1]], c.bias.then(|| vec![c.filters, oh, ow]))
            }
            Self::Dense { units, bias, .. } => (vec![*units, input.len()], bias.then(|| vec![*units])),
            _ => return Vec::new(),
        };
        let mut params = vec![ParamShape { name: "weight", shape: weight }];
        params.extend(bias.map(|shape| ParamShape { name: "bias", shape }));
        params
    }
}

/// One layer of a network as the runtime needs it: what it computes and
/// between which shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerDef {
    pub name: String,
    pub op: Op,
    pub input: Shape,
    pub output: Shape,
}

/// The outputs `o` whose tap `k` lands inside the input: `0 ≤ o·s + k − p < n`.
#[inline]
pub fn valid_outputs(out: usize, n: usize, stride: usize, k: usize, pad: usize) -> Range<usize> {
    let lo = pad.saturating_sub(k).div_ceil(stride);
    let hi = if n + pad > k { ((n + pad - k - 1) / stride + 1).min(out) } else { 0 };
    lo..hi.max(lo)
}

#[cfg(test)]
mod tests {
    use super::valid_outputs;

    #[test]
    fn valid_outputs_matches_brute_force() {
        for n in 1..12 {
            for k in 0..6 {
                for pad in 0..4 {
                    for stride in 1..4 {
                        for out in 1..12 {
                            let brute: Vec<usize> = (0..out)
                                .filter(|&o| {
                                    let i = (o * stride + k) as i64 - pad as i64;
                                    i >= 0 && i < n as i64
                                })
                                .collect();
                            let r: Vec<usize> = valid_outputs(out, n, stride, k, pad).collect();
                            assert_eq!(r, brute, "out {out} n {n} stride {stride} k {k} pad {pad}");
                        }
                    }
                }
            }
        }
    }
}

//! The checked network: layers with resolved geometry, their inputs (a DAG,
//! though specs are sequential for now), and every output shape, parameter
//! and cost. Backends read shapes from here and never re-derive them.

pub mod geometry;
mod infer;

pub use infer::{check, check_source, from_spec};

use convc_runtime::{Activation, PoolKind};
use serde::Serialize;

use crate::diag::Span;
use crate::spec::{Pair, TrainingSpec};

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
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    pub filters: usize,
    pub kernel: Pair,
    pub stride: Pair,
    /// Zero padding on each side, per axis ("same"/"valid" resolved).
    pub pad: Pair,
    pub activation: Activation,
    pub bias: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub kind: PoolKind,
    pub size: Pair,
    pub stride: Pair,
    pub pad: Pair,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Conv2d(Conv),
    Local2d(Conv),
    Pool(Pool),
    Flatten,
    Dense { units: usize, activation: Activation, bias: bool },
    Dropout { rate: f32 },
    Activation(Activation),
    Softmax,
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
}

/// Where a node reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The network's input.
    Input,
    /// The output of the node with this index.
    Node(usize),
}

/// A learnable tensor of a node, in the PyTorch layout it is saved in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Param {
    /// `weight` or `bias`; the tensor is named `<layer>.<name>`.
    pub name: &'static str,
    pub shape: Vec<usize>,
}

impl Param {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<Source>,
    /// Shape of the (single, for now) input.
    pub input_shape: Shape,
    pub output: Shape,
    pub params: Vec<Param>,
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// The layer's table in the spec.
    pub span: Span,
}

impl Node {
    pub fn param_count(&self) -> u64 {
        self.params.iter().map(|p| p.len() as u64).sum()
    }
}

/// A checked network.
#[derive(Debug, Clone)]
pub struct Graph {
    pub name: String,
    pub input: Shape,
    /// In topological order; the last node is the output.
    pub nodes: Vec<Node>,
    pub training: TrainingSpec,
}

impl Graph {
    pub fn output(&self) -> Shape {
        self.nodes.last().map_or(self.input, |n| n.output)
    }

    /// Number of classes: the length of the output vector.
    pub fn classes(&self) -> usize {
        self.output().len()
    }

    pub fn param_count(&self) -> u64 {
        self.nodes.iter().map(Node::param_count).sum()
    }

    pub fn macs(&self) -> u64 {
        self.nodes.iter().map(|n| n.macs).sum()
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

//! The spec: what the user wrote, with the source span of every value that a
//! later check may need to point at. Nothing here knows shapes; shape
//! inference and the geometry checks live in [`crate::graph`].

mod fields;
mod parse;
pub mod training;

pub(crate) use parse::parse_lenient;
pub use parse::{LAYER_TYPES, parse};
pub use training::{Loss, OptimizerKind, OptimizerSpec, TrainingSpec};

use convc_runtime::{Activation, PoolKind};

use crate::diag::Span;

/// A value together with where it was written (or where it would have been:
/// defaults point at the layer).
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub span: Span,
}

impl<T> At<T> {
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

pub use convc_runtime::layer::Pair;

/// How a window layer treats an output size `(N − F + 2P)/S + 1` that is not
/// a whole number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rounding {
    /// Refuse: the last rows/columns would be silently dropped.
    #[default]
    Exact,
    /// Floor the size, as Keras and PyTorch (`ceil_mode = False`) do.
    Floor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Explicit zero padding per axis (top = bottom, left = right).
    Explicit(Pair),
    /// `P = (F − 1)/2`: keeps the size at stride 1. Needs an odd kernel.
    Same,
    /// No padding.
    Valid,
}

/// A parsed spec.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    /// Channels, height, width.
    pub input: At<[usize; 3]>,
    pub rounding: Rounding,
    pub layers: Vec<LayerSpec>,
    pub training: TrainingSpec,
}

/// One `[[layer]]` table.
#[derive(Debug, Clone)]
pub struct LayerSpec {
    pub name: At<String>,
    /// Span of the whole table (from `type = ...` to its last key).
    pub span: Span,
    pub kind: LayerKind,
}

/// Geometry of a sliding window: conv2d, local2d and pooling layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub kernel: At<Pair>,
    pub stride: At<Pair>,
    pub padding: At<Padding>,
    /// `None`: the network's rounding applies.
    pub rounding: Option<Rounding>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LayerKind {
    Conv2d {
        filters: At<usize>,
        window: Window,
        activation: Activation,
        bias: bool,
    },
    /// Conv geometry with one filter bank per output position.
    Local2d {
        filters: At<usize>,
        window: Window,
        activation: Activation,
        bias: bool,
    },
    Pool {
        kind: PoolKind,
        window: Window,
    },
    Flatten,
    Dense {
        units: At<usize>,
        activation: Activation,
        bias: bool,
    },
    Dropout {
        rate: f32,
    },
    Activation(Activation),
    Softmax,
    /// A layer whose fields had errors (already reported). Only the lenient
    /// parser used by the checker produces it; shape inference stops there.
    Invalid,
}

impl LayerKind {
    /// The `type = "..."` this kind is written as.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Conv2d { .. } => "conv2d",
            Self::Local2d { .. } => "local2d",
            Self::Pool { kind, .. } => kind.layer_type(),
            Self::Flatten => "flatten",
            Self::Dense { .. } => "dense",
            Self::Dropout { .. } => "dropout",
            Self::Activation(a) => a.name(),
            Self::Softmax => "softmax",
            Self::Invalid => "invalid",
        }
    }
}

//! Element-wise activation functions and pooling kinds: the vocabulary that
//! the spec language, the interpreter and every code generator share.

use serde::Serialize;

/// An element-wise activation function.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Activation {
    None,
    Relu,
    /// `x` for `x > 0`, `alpha · x` otherwise.
    LeakyRelu {
        alpha: f32,
    },
    /// `x` for `x > 0`, `alpha · (eˣ − 1)` otherwise.
    Elu {
        alpha: f32,
    },
    Sigmoid,
    Tanh,
}

impl Activation {
    /// Names as written in specs, in the order the spec reference lists them.
    pub const NAMES: [&'static str; 6] = ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "none"];
    pub const DEFAULT_LEAKY_ALPHA: f32 = 0.01;
    pub const DEFAULT_ELU_ALPHA: f32 = 1.0;

    /// The activation called `name` in a spec; `alpha` applies to
    /// `leaky_relu` and `elu` (their defaults otherwise).
    pub fn from_name(name: &str, alpha: Option<f32>) -> Option<Self> {
        Some(match name {
            "none" | "linear" => Self::None,
            "relu" => Self::Relu,
            "leaky_relu" => Self::LeakyRelu { alpha: alpha.unwrap_or(Self::DEFAULT_LEAKY_ALPHA) },
            "elu" => Self::Elu { alpha: alpha.unwrap_or(Self::DEFAULT_ELU_ALPHA) },
            "sigmoid" => Self::Sigmoid,
            "tanh" => Self::Tanh,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Relu => "relu",
            Self::LeakyRelu { .. } => "leaky_relu",
            Self::Elu { .. } => "elu",
            Self::Sigmoid => "sigmoid",
            Self::Tanh => "tanh",
        }
    }

    /// Whether the function takes an `alpha` parameter.
    pub fn takes_alpha(name: &str) -> bool {
        matches!(name, "leaky_relu" | "elu")
    }
}

/// How a pooling window is reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    Max,
    /// Mean over the window; padded positions count as zeros (PyTorch's
    /// `count_include_pad = True`), so the divisor is always the window size.
    Avg,
    /// `sqrt(Σ x²)` over the window.
    L2,
}

impl PoolKind {
    pub fn layer_type(self) -> &'static str {
        match self {
            Self::Max => "max_pool",
            Self::Avg => "avg_pool",
            Self::L2 => "l2_pool",
        }
    }
}

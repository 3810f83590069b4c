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

    /// `f(x)`.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::None => x,
            Self::Relu => x.max(0.0),
            Self::LeakyRelu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
            Self::Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * x.exp_m1()
                }
            }
            // Stable on both sides: never exp of a large positive number.
            Self::Sigmoid => {
                if x >= 0.0 {
                    1.0 / (1.0 + (-x).exp())
                } else {
                    let e = x.exp();
                    e / (1.0 + e)
                }
            }
            Self::Tanh => x.tanh(),
        }
    }

    /// `f'(x)` written in terms of the output `y = f(x)`, so that backward
    /// needs only the stored outputs. (Every function here is monotone with
    /// `y > 0 ⇔ x > 0` where it has a kink, which makes this exact.)
    #[inline]
    pub fn derivative_at_output(self, y: f32) -> f32 {
        match self {
            Self::None => 1.0,
            Self::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::LeakyRelu { alpha } => {
                if y > 0.0 {
                    1.0
                } else {
                    alpha
                }
            }
            Self::Elu { alpha } => {
                if y > 0.0 {
                    1.0
                } else {
                    y + alpha
                }
            }
            Self::Sigmoid => y * (1.0 - y),
            Self::Tanh => 1.0 - y * y,
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

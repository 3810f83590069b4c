//! The one trait every backend implements: the interpreter, JIT-compiled
//! networks and macro-generated networks. The trainer, the evaluator, the
//! CLI and the benchmarks are written once against it.

use std::fmt;

use crate::layer::Shape;

/// What a forward pass is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Dropout is the identity; nothing is kept for backward.
    Infer,
    /// Dropout is active, with masks drawn from `seed`; what backward needs
    /// is kept.
    Train { seed: u64 },
}

/// A parameter with its gradient, for optimizers.
pub struct ParamMut<'a> {
    /// `<layer>.weight` or `<layer>.bias`.
    pub name: &'a str,
    /// PyTorch layout (see [`crate::layer::Op::params`]).
    pub shape: &'a [usize],
    pub value: &'a mut [f32],
    pub grad: &'a [f32],
}

/// A parameter, read-only.
pub struct ParamRef<'a> {
    pub name: &'a str,
    pub shape: &'a [usize],
    pub value: &'a [f32],
}

#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    /// A buffer passed in has the wrong length.
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// `backward` without a preceding `forward` in training mode.
    NoTrainingForward,
    BatchZero,
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length { what, expected, got } => write!(f, "{what} has {got} values, expected {expected}"),
            Self::NoTrainingForward => write!(f, "backward needs a forward pass in training mode first"),
            Self::BatchZero => write!(f, "the batch is empty"),
        }
    }
}

impl std::error::Error for ModelError {}

pub trait Model {
    fn name(&self) -> &str;

    /// Shape of one input image.
    fn input_shape(&self) -> Shape;

    /// Length of the logits of one image.
    fn classes(&self) -> usize;

    /// Forward `batch` images (`batch × input_shape().len()` values,
    /// image-major, channel-major within an image) to logits
    /// (`batch × classes()`).
    fn forward(&mut self, input: &[f32], batch: usize, mode: Mode) -> Result<&[f32], ModelError>;

    /// Backward from the gradient of the loss with respect to the logits of
    /// the last training forward. Sets every parameter's gradient (summed
    /// over the batch, not accumulated across calls) and the input gradient.
    fn backward(&mut self, grad_logits: &[f32]) -> Result<(), ModelError>;

    /// Gradient of the loss with respect to the input of the last backward
    /// (empty if [`Model::want_input_grad`] turned it off).
    fn input_grad(&self) -> &[f32];

    /// Whether `backward` computes the input gradient (on by default).
    /// Training does not need it — the images are not learned — and a
    /// backend may then skip the first stage's input-gradient work.
    /// Backends that always compute it ignore this.
    fn want_input_grad(&mut self, _wanted: bool) {}

    fn params(&self) -> Vec<ParamRef<'_>>;

    fn params_mut(&mut self) -> Vec<ParamMut<'_>>;

    fn param_count(&self) -> usize {
        self.params().iter().map(|p| p.value.len()).sum()
    }
}

/// Check a buffer length at a model's boundary.
pub fn expect_len(what: &'static str, got: usize, expected: usize) -> Result<(), ModelError> {
    if got == expected { Ok(()) } else { Err(ModelError::Length { what, expected, got }) }
}

/// Check the arguments of `Model::forward`: a non-empty batch of inputs of
/// `shape`.
pub fn check_input(input: &[f32], batch: usize, shape: Shape) -> Result<(), ModelError> {
    if batch == 0 {
        return Err(ModelError::BatchZero);
    }
    expect_len("input", input.len(), batch * shape.len())
}

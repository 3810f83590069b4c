//! convc-runtime: what compiled networks link against.
//!
//! It holds the vocabulary shared by every backend (activation functions,
//! pooling kinds) and, as later issues land, the reference interpreter,
//! losses, optimizers, data loading and the trainer.

pub mod ops;

pub use ops::{Activation, PoolKind};

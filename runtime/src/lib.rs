//! convc-runtime: what compiled networks link against.
//!
//! - [`layer`], [`ops`]: the vocabulary every backend shares;
//! - [`model`]: the [`Model`] trait that every backend implements;
//! - [`interp`]: the reference interpreter;
//! - [`init`], [`loss`], [`optim`]: initialisation, softmax cross-entropy,
//!   SGD and Adam;
//! - [`compiled`], [`gemm`]: what macro-generated networks run on.

pub mod bench;
pub mod checkpoint;
pub mod compiled;
pub mod curve;
pub mod data;
pub mod elementwise;
pub mod gemm;
pub mod init;
pub mod interp;
pub mod layer;
pub mod loss;
pub mod model;
pub mod ops;
pub mod optim;
pub mod peak;
pub mod rng;
pub mod train;
pub mod weights;

pub use model::{Mode, Model, ModelError, ParamMut, ParamRef};
pub use ops::{Activation, PoolKind};

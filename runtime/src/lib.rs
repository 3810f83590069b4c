//! convc-runtime: what compiled networks link against, in tiers — each
//! imports only from the tiers above it in this list:
//!
//! 1. the ground floor: [`cpu`] (the instruction-set level kernels run
//!    at), [`rng`] (seeded, derivable random streams);
//! 2. the vocabulary every backend shares: [`layer`] and [`ops`] (layers,
//!    shapes, activations, pools, parameter layouts), [`model`] (the
//!    [`Model`] trait every backend implements), [`elementwise`] and
//!    [`init`] (activations, dropout, initialisation);
//! 3. the reference: [`interp`], plain layer-by-layer loops that every
//!    backend is tested against;
//! 4. the kernels: [`kernels`], each algorithm written once over vector
//!    instructions and compiled for every CPU level;
//! 5. the compiled executor: [`compiled`], the network that generated
//!    code and the JIT run — stages, buffers, packing, threads;
//! 6. the application: [`train`] — the trainer, optimizers, loss,
//!    checkpoints, weights files, IDX data, evaluation, history plots and
//!    benchmark timing.

pub mod compiled;
pub mod cpu;
pub mod elementwise;
pub mod init;
pub mod interp;
pub mod kernels;
pub mod layer;
pub mod model;
pub mod ops;
pub mod rng;
pub mod train;

pub use model::{Mode, Model, ModelError, ParamMut, ParamRef};
pub use ops::{Activation, PoolKind};

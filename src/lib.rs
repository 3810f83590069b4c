//! convc — an ahead-of-time compiler for convolutional neural networks.
//!
//! This crate is the one users depend on. It re-exports the pieces:
//! [`runtime`] (buffers, reference layers, training), [`compiler`] (spec
//! language, shape checking, planning, code generation).

pub use convc_compiler as compiler;
pub use convc_runtime as runtime;

/// The Cranelift JIT: `convc::jit::compile(&graph, seed)` gives a network
/// that implements `convc::runtime::Model`.
#[cfg(feature = "jit")]
pub use convc_compiler::codegen::cranelift as jit;

//! convc — an ahead-of-time compiler for convolutional neural networks.
//!
//! This crate is the one users depend on. It re-exports the pieces:
//! [`runtime`] (buffers, reference layers, training), [`compiler`] (spec
//! language, shape checking, planning, code generation), [`network!`]
//! (a spec compiled into a Rust type with your crate) and, with the default
//! `jit` feature, [`jit`] (a spec compiled to machine code at run time).
//!
//! A spec read at run time, compiled by the JIT and run:
//!
//! ```
//! # #[cfg(feature = "jit")] {
//! use convc::runtime::{Mode, Model};
//!
//! let graph = convc::compiler::check(std::path::Path::new("specs/lenet5.toml"))?;
//! let mut net = convc::jit::compile(&graph, /* seed */ 0)?;
//! let images = vec![0.5f32; 2 * 28 * 28];
//! let logits = net.forward(&images, 2, Mode::Infer)?;
//! assert_eq!(logits.len(), 2 * 10);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The design — the pipeline, the runtime's tiers and its kernels — is
//! described in `docs/design.md` in the repository.

pub use convc_compiler as compiler;
pub use convc_runtime as runtime;

/// The Cranelift JIT: `convc::jit::compile(&graph, seed)` gives a network
/// that implements `convc::runtime::Model`.
#[cfg(feature = "jit")]
pub use convc_compiler::codegen::cranelift as jit;

#[doc(hidden)]
pub use convc_macros as __macros;

/// Declare a network type from a TOML spec, compiled with your crate.
///
/// ```
/// convc::network!(pub Lenet5 = "specs/lenet5.toml"); // relative to Cargo.toml
///
/// let mut net = Lenet5::new(42);
/// let logits: [f32; Lenet5::CLASSES] = net.predict(&[0.0; Lenet5::INPUT_LEN]);
/// assert!(logits.iter().all(|v| v.is_finite()));
/// ```
///
/// A string with a line break is the spec itself. A bad spec stops the
/// build with the diagnostics `convc check` prints. The type has the
/// shapes as constants (`C`, `H`, `W`, `INPUT_LEN`, `CLASSES`, `PARAMS`),
/// `new(seed)`, `load`/`save` (safetensors, PyTorch layout), `predict`,
/// `predict_batch`, `train_step`, and implements
/// [`runtime::Model`](convc_runtime::Model), so the trainer and the
/// evaluator run it. `convc emit-rust SPEC` prints the same code.
#[macro_export]
macro_rules! network {
    ($($spec:tt)*) => {
        $crate::__macros::network! { @runtime $crate::runtime; $($spec)* }
    };
}

//! The convc compiler: a TOML spec becomes a checked graph, a plan, and
//! specialised code.
//!
//! ```text
//! spec.toml ─▶ spec::parse ─▶ Spec ─▶ graph::check ─▶ Graph ─▶ summary / backends
//! ```

pub mod codegen;
pub mod diag;
pub mod graph;
pub mod plan;
pub mod spec;
pub mod summary;

pub use diag::{Diagnostic, SourceFile, SpecError};
pub use graph::{Graph, check, check_source};

use convc_runtime::interp::Interpreter;

/// The reference interpreter for a checked graph, parameters initialised
/// from `seed`.
pub fn interpreter(graph: &Graph, seed: u64) -> Interpreter {
    Interpreter::new(graph.name.clone(), graph.input, &graph.layer_defs(), seed)
}

//! The convc compiler: a TOML spec becomes a checked graph, a plan, and
//! specialised code.
//!
//! ```text
//! spec.toml ─▶ spec::parse ─▶ Spec ─▶ graph::check ─▶ Graph ─▶ summary / backends
//! ```

pub mod diag;
pub mod graph;
pub mod spec;
pub mod summary;

pub use diag::{Diagnostic, SourceFile, SpecError};
pub use graph::{Graph, check, check_source};

//! convc's test harness, shared by the compiler's, the facade's and the
//! generated networks' tests (a dev-dependency each):
//!
//! - [`differential`]: a backend against the reference interpreter —
//!   logits, input and parameter gradients, with the same weights, input
//!   and dropout seed;
//! - [`random_spec`]: random valid specs (also used by a build script,
//!   with the default `differential` feature off);
//! - [`levels`]: a test run again at every lower instruction-set level
//!   (`CONVC_CPU`), saying which levels this CPU cannot run.

#[cfg(feature = "differential")]
pub mod differential;
pub mod levels;
pub mod random_spec;

//! Code generators. Each reads the [`crate::plan::Plan`] and never
//! re-derives a shape.

#[cfg(feature = "jit")]
pub mod cranelift;

pub mod rust;

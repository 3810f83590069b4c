//! The kernel tier: the algorithms compiled networks run on (GEMM and GEMV
//! over packed weights, im2col and its adjoints, pooling, direct convs,
//! Winograd, filters in the lanes), written once over the vector
//! instructions of [`simd`] and compiled for every [`CpuLevel`].
//!
//! [`CpuLevel`]: crate::cpu::CpuLevel

pub mod direct;
pub mod filter_lanes;
pub mod gemm;
pub mod im2col;
pub mod peak;
pub mod pool;
pub mod simd;
pub mod winograd;

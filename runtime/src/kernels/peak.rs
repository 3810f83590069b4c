//! The machine's peak FP32 rate, measured: a short loop of independent
//! FMAs at the widest vector width the CPU has (detected at run time, so a
//! default build still measures AVX-512 where it exists).

use std::time::Instant;

/// FLOP/s of one core and the vector width used.
#[derive(Debug, Clone, Copy)]
pub struct Peak {
    pub flops_per_core: f64,
    pub isa: &'static str,
}

/// Independent accumulators: FMA latency (4 cycles) × 2 units, with margin.
const ACCUMULATORS: usize = 16;
/// About 40 ms per run at AVX-512 peak.
const ITERATIONS: usize = 10_000_000;

/// Measure one core's peak: the best of three runs (about 0.1–0.5 s), so a
/// moment of contention does not lower it.
pub fn measure() -> Peak {
    (0..3).map(|_| measure_once()).max_by(|a, b| a.flops_per_core.total_cmp(&b.flops_per_core)).expect("three runs")
}

fn measure_once() -> Peak {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            let (flops, secs) = unsafe { x86::fma_avx512() };
            return Peak { flops_per_core: flops / secs, isa: "avx512" };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            let (flops, secs) = unsafe { x86::fma_avx2() };
            return Peak { flops_per_core: flops / secs, isa: "avx2+fma" };
        }
    }
    let (flops, secs) = scalar();
    Peak { flops_per_core: flops / secs, isa: "scalar" }
}

fn scalar() -> (f64, f64) {
    let mut acc = [1.0f32; ACCUMULATORS];
    let start = Instant::now();
    for _ in 0..ITERATIONS / 16 {
        for a in &mut acc {
            *a = *a * 0.999_999 + 1e-7;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(acc);
    ((ITERATIONS / 16 * ACCUMULATORS * 2) as f64, secs)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::time::Instant;

    use super::{ACCUMULATORS, ITERATIONS};

    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_avx512() -> (f64, f64) {
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); ACCUMULATORS];
        let start = Instant::now();
        for _ in 0..ITERATIONS {
            for x in &mut acc {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(acc);
        ((ITERATIONS * ACCUMULATORS * 16 * 2) as f64, secs)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_avx2() -> (f64, f64) {
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); ACCUMULATORS];
        let start = Instant::now();
        for _ in 0..ITERATIONS {
            for x in &mut acc {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(acc);
        ((ITERATIONS * ACCUMULATORS * 8 * 2) as f64, secs)
    }
}

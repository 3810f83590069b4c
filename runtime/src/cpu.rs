//! What this CPU offers the kernels: the ground floor of the runtime,
//! imported by every tier above and importing nothing.

use std::sync::OnceLock;

/// An instruction-set level the kernels are compiled for, in increasing
/// order of width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CpuLevel {
    /// Portable Rust only: the target's baseline (SSE2 on x86-64, NEON on
    /// aarch64), whatever LLVM vectorises.
    Baseline,
    /// AVX2 and FMA: 8 lanes of f32, 16 vector registers.
    Avx2,
    /// AVX-512 F/VL/BW/DQ with AVX2 and FMA: 16 lanes, 32 registers.
    Avx512,
}

impl CpuLevel {
    /// Every level, lowest first.
    pub const ALL: [CpuLevel; 3] = [CpuLevel::Baseline, CpuLevel::Avx2, CpuLevel::Avx512];

    pub fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }

    /// The level a `CONVC_CPU` value names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The best level this CPU runs.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            let avx512 = is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512dq");
            if avx2 && avx512 {
                return Self::Avx512;
            }
            if avx2 {
                return Self::Avx2;
            }
        }
        Self::Baseline
    }

    /// The levels this CPU runs, lowest first (tests run every kernel at
    /// each of them).
    pub fn supported() -> Vec<CpuLevel> {
        let best = Self::detect();
        Self::ALL.into_iter().filter(|&l| l <= best).collect()
    }
}

/// The level the kernels run at: the CPU's best, or lower when the
/// environment variable `CONVC_CPU` (`baseline`, `avx2`, `avx512`) asks for
/// it — to compare the versions, or test a lower one on a wider CPU. A
/// request above what the CPU has is ignored.
pub fn cpu_level() -> CpuLevel {
    static LEVEL: OnceLock<CpuLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let asked = std::env::var("CONVC_CPU").ok().and_then(|v| CpuLevel::parse(&v)).unwrap_or(CpuLevel::Avx512);
        CpuLevel::detect().min(asked)
    })
}

/// Buffers at least this long are reduced (and weights packed, optimizer
/// steps split) on every thread: below it, starting the threads costs more
/// than they save.
pub const PARALLEL_MIN: usize = 1 << 18;

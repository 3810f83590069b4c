//! Running a kernel's test at every level: the test is a type with a
//! generic method ([`AtEveryLevel`]), which [`for_each_simd`] calls with
//! every instruction set this CPU has.

use super::{MAX_LANES, Portable, Simd};
use crate::cpu::{CpuLevel, cpu_level};

/// A test body generic over the instruction set.
pub(crate) trait AtEveryLevel {
    fn at<S: Simd>(&mut self, s: S);
}

/// Run `t` at every instruction set: the portable lanes at 4 (the
/// baseline) and 16 (the AVX-512 shape: every kernel's 16-lane, 32-register
/// blocking, on any CPU — eight lanes and 16 registers are AVX2's, which
/// every CI machine has), then AVX2 and AVX-512 where [`cpu_level`]
/// allows them — saying on stderr which it cannot run here, so that a
/// pass on a narrower CPU does not read as a pass of those.
pub(crate) fn for_each_simd(t: &mut impl AtEveryLevel) {
    t.at(Portable::<4>);
    t.at(Portable::<16>);
    let level = cpu_level();
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2(t: &mut impl AtEveryLevel) {
            // SAFETY: called below only where `cpu_level` found AVX2 and FMA.
            t.at(unsafe { super::Avx2::new_unchecked() })
        }
        #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
        fn avx512(t: &mut impl AtEveryLevel) {
            // SAFETY: called below only where `cpu_level` found AVX-512.
            t.at(unsafe { super::Avx512::new_unchecked() })
        }
        if level >= CpuLevel::Avx2 {
            // SAFETY: `cpu_level` found AVX2 and FMA.
            unsafe { avx2(t) };
        }
        if level >= CpuLevel::Avx512 {
            // SAFETY: `cpu_level` found AVX-512.
            unsafe { avx512(t) };
        }
    }
    let missing: Vec<&str> = CpuLevel::ALL.into_iter().filter(|&l| l > level).map(CpuLevel::name).collect();
    if !missing.is_empty() {
        // Once per test binary, past the test harness's capture (which
        // takes only `print!`/`eprint!`), so that it shows in a passing run.
        static NOTE: std::sync::Once = std::sync::Once::new();
        NOTE.call_once(|| {
            use std::io::Write;
            let note = format!(
                "note: this CPU (or CONVC_CPU) does not run {}: those levels' kernels ran only in portable form here \
                 (their 16-lane blocking at Portable<16>), not with their own instructions\n",
                missing.join(", ")
            );
            let _ = std::io::stderr().write_all(note.as_bytes());
        });
    }
}

/// The lanes of `v`.
pub(crate) fn lanes<S: Simd>(s: S, v: S::F32) -> Vec<f32> {
    let mut out = [0.0f32; MAX_LANES];
    // SAFETY: `out` holds MAX_LANES ≥ LANES values.
    unsafe { s.store(out.as_mut_ptr(), v) };
    out[..S::LANES].to_vec()
}

/// A vector of `values` (at least `LANES` of them).
pub(crate) fn vector<S: Simd>(s: S, values: &[f32]) -> S::F32 {
    assert!(values.len() >= S::LANES);
    // SAFETY: `values` holds LANES values.
    unsafe { s.load(values.as_ptr()) }
}

/// The lanes of the index vector `v`.
pub(crate) fn lanes_i<S: Simd>(s: S, v: S::I32) -> Vec<i32> {
    let mut out = [0u32; MAX_LANES];
    // SAFETY: `out` holds MAX_LANES ≥ LANES values.
    unsafe { s.store_i_masked(s.first(S::LANES), out.as_mut_ptr(), v) };
    out[..S::LANES].iter().map(|&x| x as i32).collect()
}

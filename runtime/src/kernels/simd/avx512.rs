//! [`Simd`] on AVX-512 (F, VL, BW, DQ): 16 lanes of f32 in a zmm
//! register, 32 registers, masks in mask registers.

use std::arch::x86_64::*;

use super::{Avx2, Kernel, Simd};

/// The AVX-512 instructions (a token: see [`super`]).
#[derive(Debug, Clone, Copy)]
pub struct Avx512(());

impl Avx512 {
    /// The token, where the caller knows the features are there.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, VL, BW and DQ, AVX2 and FMA.
    #[inline(always)]
    pub(crate) unsafe fn new_unchecked() -> Self {
        Self(())
    }
}

/// `$e`, intrinsics that take no pointer, in an `Avx512` method.
macro_rules! op {
    ($e:expr) => {
        // SAFETY: an `Avx512` exists only where the CPU has AVX-512
        // F/VL/BW/DQ, AVX2 and FMA (made by `new_unchecked`, whose callers checked),
        // which is all these intrinsics need.
        unsafe { $e }
    };
}

impl Simd for Avx512 {
    const LANES: usize = 16;
    const REGISTERS: usize = 32;
    const NAME: &'static str = "avx512";

    type F32 = __m512;
    type I32 = __m512i;
    type Mask = __mmask16;
    type Oct = Avx2;

    #[inline(always)]
    fn oct(self) -> Avx2 {
        // SAFETY: AVX-512 here implies AVX2 and FMA (`new_unchecked`'s contract).
        unsafe { Avx2::new_unchecked() }
    }

    #[inline(always)]
    unsafe fn call<K: Kernel>(self, k: K) -> K::Output {
        #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
        #[inline(never)]
        unsafe fn outlined<K: Kernel>(s: Avx512, k: K) -> K::Output {
            // SAFETY: the caller's contract.
            unsafe { k.run(s) }
        }
        // SAFETY: an `Avx512` exists only where the CPU has these
        // features; the rest is the caller's contract.
        unsafe { outlined(self, k) }
    }

    #[inline(always)]
    fn zero(self) -> __m512 {
        op!(_mm512_setzero_ps())
    }

    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        op!(_mm512_set1_ps(x))
    }

    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m512 {
        // SAFETY: the caller's contract (16 readable values).
        unsafe { _mm512_loadu_ps(p) }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m512) {
        // SAFETY: the caller's contract (16 writable values).
        unsafe { _mm512_storeu_ps(p, v) }
    }

    #[inline(always)]
    unsafe fn load_masked(self, m: __mmask16, p: *const f32) -> __m512 {
        // SAFETY: a masked move touches only the lanes of `m`, which the
        // caller vouched for.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }

    #[inline(always)]
    unsafe fn store_masked(self, m: __mmask16, p: *mut f32, v: __m512) {
        // SAFETY: as in `load_masked`.
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }

    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        op!(_mm512_add_ps(a, b))
    }

    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        op!(_mm512_sub_ps(a, b))
    }

    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        op!(_mm512_mul_ps(a, b))
    }

    #[inline(always)]
    fn fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        op!(_mm512_fmadd_ps(a, b, c))
    }

    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        op!(_mm512_max_ps(a, b))
    }

    #[inline(always)]
    fn reduce_add(self, v: __m512) -> f32 {
        op!(_mm512_reduce_add_ps(v))
    }

    #[inline(always)]
    fn sum_lanes(self, s: &[__m512]) -> __m512 {
        let s: &[__m512; 16] = s.try_into().expect("sum_lanes takes LANES vectors");
        op!({
            // Pairs: in each 128-bit block, lanes 0 and 2 hold partial sums
            // of the first vector, 1 and 3 of the second.
            let t: [__m512; 8] = std::array::from_fn(|i| {
                let (a, b) = (s[2 * i], s[2 * i + 1]);
                _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))
            });
            // Quads: block k of u[i] holds the sums of block k of s[4i..4i + 4].
            let u: [__m512; 4] = std::array::from_fn(|i| {
                let (a, b) = (t[2 * i], t[2 * i + 1]);
                _mm512_add_ps(_mm512_shuffle_ps::<0x44>(a, b), _mm512_shuffle_ps::<0xEE>(a, b))
            });
            // Across blocks: pairs of blocks, then all four.
            let halves = |a: __m512, b: __m512| _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(a, b), _mm512_shuffle_f32x4::<0xDD>(a, b));
            halves(halves(u[0], u[1]), halves(u[2], u[3]))
        })
    }

    #[inline(always)]
    fn first(self, n: usize) -> __mmask16 {
        if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as __mmask16 }
    }

    #[inline(always)]
    fn and_not(self, a: __mmask16, b: __mmask16) -> __mmask16 {
        a & !b
    }

    #[inline(always)]
    fn or(self, a: __mmask16, b: __mmask16) -> __mmask16 {
        a | b
    }

    #[inline(always)]
    fn is_empty(self, m: __mmask16) -> bool {
        m == 0
    }

    #[inline(always)]
    fn gt(self, a: __m512, b: __m512) -> __mmask16 {
        op!(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b))
    }

    #[inline(always)]
    fn is_nan(self, a: __m512) -> __mmask16 {
        op!(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a))
    }

    #[inline(always)]
    fn select(self, m: __mmask16, yes: __m512, no: __m512) -> __m512 {
        op!(_mm512_mask_blend_ps(m, no, yes))
    }

    #[inline(always)]
    fn index(self) -> __m512i {
        op!(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
    }

    #[inline(always)]
    fn splat_i(self, x: i32) -> __m512i {
        op!(_mm512_set1_epi32(x))
    }

    #[inline(always)]
    fn add_i(self, a: __m512i, b: __m512i) -> __m512i {
        op!(_mm512_add_epi32(a, b))
    }

    #[inline(always)]
    fn mul_i(self, a: __m512i, b: __m512i) -> __m512i {
        op!(_mm512_mullo_epi32(a, b))
    }

    #[inline(always)]
    fn eq_i(self, a: __m512i, b: __m512i) -> __mmask16 {
        op!(_mm512_cmpeq_epi32_mask(a, b))
    }

    #[inline(always)]
    fn select_i(self, m: __mmask16, yes: __m512i, no: __m512i) -> __m512i {
        op!(_mm512_mask_blend_epi32(m, no, yes))
    }

    #[inline(always)]
    fn i_as_f(self, v: __m512i) -> __m512 {
        op!(_mm512_castsi512_ps(v))
    }

    #[inline(always)]
    unsafe fn load_i_masked(self, m: __mmask16, p: *const u32) -> __m512i {
        // SAFETY: as in `load_masked`.
        unsafe { _mm512_maskz_loadu_epi32(m, p.cast()) }
    }

    #[inline(always)]
    unsafe fn store_i_masked(self, m: __mmask16, p: *mut u32, v: __m512i) {
        // SAFETY: as in `load_masked`.
        unsafe { _mm512_mask_storeu_epi32(p.cast(), m, v) }
    }

    #[inline(always)]
    fn deinterleave(self, a: __m512, b: __m512) -> (__m512, __m512) {
        op!({
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
            (_mm512_permutex2var_ps(a, even, b), _mm512_permutex2var_ps(a, odd, b))
        })
    }

    #[inline(always)]
    fn spread(self, v: __m512) -> (__m512, __m512) {
        op!({
            let lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            let hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
            (_mm512_permutexvar_ps(lo, v), _mm512_permutexvar_ps(hi, v))
        })
    }

    #[inline(always)]
    fn spread_i(self, v: __m512i) -> (__m512i, __m512i) {
        op!({
            let lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            let hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
            (_mm512_permutexvar_epi32(lo, v), _mm512_permutexvar_epi32(hi, v))
        })
    }

    #[inline(always)]
    unsafe fn store_octs(self, p: *mut f32, stride: usize, v: __m512) {
        op!({
            let (lo, hi) = (_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))));
            // SAFETY: the caller's contract (two runs of 8, `stride` apart).
            _mm256_storeu_ps(p, lo);
            _mm256_storeu_ps(p.add(stride), hi);
        })
    }

    #[inline(always)]
    unsafe fn transpose8(self, src: *const f32, ld_src: usize, dst: *mut f32, ld_dst: usize) {
        // SAFETY: the caller's contract.
        unsafe { self.oct().transpose8(src, ld_src, dst, ld_dst) }
    }
}

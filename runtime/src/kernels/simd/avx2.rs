//! [`Simd`] on AVX2 and FMA: 8 lanes of f32 in a ymm register, 16
//! registers. Masks are vectors of all-ones or all-zero lanes (what
//! `vmaskmovps` and `vblendvps` read).

use std::arch::x86_64::*;

use super::{Kernel, Simd};

/// The AVX2 + FMA instructions (a token: see [`super`]).
#[derive(Debug, Clone, Copy)]
pub struct Avx2(());

impl Avx2 {
    /// The token, where the caller knows the features are there.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[inline(always)]
    pub(crate) unsafe fn new_unchecked() -> Self {
        Self(())
    }
}

/// `$e`, intrinsics that take no pointer, in an `Avx2` method.
macro_rules! op {
    ($e:expr) => {
        // SAFETY: an `Avx2` exists only where the CPU has AVX2 and FMA
        // (made by `new_unchecked`, whose callers checked), which
        // is all these intrinsics need.
        unsafe { $e }
    };
}

impl Simd for Avx2 {
    const LANES: usize = 8;
    const REGISTERS: usize = 16;
    const NAME: &'static str = "avx2";

    type F32 = __m256;
    type I32 = __m256i;
    type Mask = __m256;
    type Oct = Avx2;

    #[inline(always)]
    fn oct(self) -> Self {
        self
    }

    #[inline(always)]
    unsafe fn call<K: Kernel>(self, k: K) -> K::Output {
        #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
        #[inline(never)]
        unsafe fn outlined<K: Kernel>(s: Avx2, k: K) -> K::Output {
            // SAFETY: the caller's contract.
            unsafe { k.run(s) }
        }
        // SAFETY: an `Avx2` exists only where the CPU has AVX2 and FMA;
        // the rest is the caller's contract.
        unsafe { outlined(self, k) }
    }

    #[inline(always)]
    fn zero(self) -> __m256 {
        op!(_mm256_setzero_ps())
    }

    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        op!(_mm256_set1_ps(x))
    }

    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m256 {
        // SAFETY: the caller's contract (8 readable values).
        unsafe { _mm256_loadu_ps(p) }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m256) {
        // SAFETY: the caller's contract (8 writable values).
        unsafe { _mm256_storeu_ps(p, v) }
    }

    #[inline(always)]
    unsafe fn load_masked(self, m: __m256, p: *const f32) -> __m256 {
        // SAFETY: `vmaskmovps` touches only the lanes of `m`, which the
        // caller vouched for.
        unsafe { _mm256_maskload_ps(p, _mm256_castps_si256(m)) }
    }

    #[inline(always)]
    unsafe fn store_masked(self, m: __m256, p: *mut f32, v: __m256) {
        // SAFETY: as in `load_masked`.
        unsafe { _mm256_maskstore_ps(p, _mm256_castps_si256(m), v) }
    }

    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        op!(_mm256_add_ps(a, b))
    }

    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        op!(_mm256_sub_ps(a, b))
    }

    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        op!(_mm256_mul_ps(a, b))
    }

    #[inline(always)]
    fn fma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        op!(_mm256_fmadd_ps(a, b, c))
    }

    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        op!(_mm256_max_ps(a, b))
    }

    #[inline(always)]
    fn reduce_add(self, v: __m256) -> f32 {
        op!({
            let h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)))
        })
    }

    #[inline(always)]
    fn sum_lanes(self, v: &[__m256]) -> __m256 {
        let v: &[__m256; 8] = v.try_into().expect("sum_lanes takes LANES vectors");
        op!({
            // Pairwise horizontal adds: each 128-bit half ends with the
            // partial sums of v0..v3 and v4..v7, which the halves then add.
            let (a, b) = (_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
            let (c, d) = (_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
            let (lo, hi) = (_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
            _mm256_add_ps(_mm256_permute2f128_ps::<0x20>(lo, hi), _mm256_permute2f128_ps::<0x31>(lo, hi))
        })
    }

    #[inline(always)]
    fn first(self, n: usize) -> __m256 {
        op!(_mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), self.index())))
    }

    #[inline(always)]
    fn and_not(self, a: __m256, b: __m256) -> __m256 {
        op!(_mm256_andnot_ps(b, a))
    }

    #[inline(always)]
    fn or(self, a: __m256, b: __m256) -> __m256 {
        op!(_mm256_or_ps(a, b))
    }

    #[inline(always)]
    fn is_empty(self, m: __m256) -> bool {
        op!(_mm256_movemask_ps(m) == 0)
    }

    #[inline(always)]
    fn gt(self, a: __m256, b: __m256) -> __m256 {
        op!(_mm256_cmp_ps::<_CMP_GT_OQ>(a, b))
    }

    #[inline(always)]
    fn is_nan(self, a: __m256) -> __m256 {
        op!(_mm256_cmp_ps::<_CMP_UNORD_Q>(a, a))
    }

    #[inline(always)]
    fn select(self, m: __m256, yes: __m256, no: __m256) -> __m256 {
        op!(_mm256_blendv_ps(no, yes, m))
    }

    #[inline(always)]
    fn index(self) -> __m256i {
        op!(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }

    #[inline(always)]
    fn splat_i(self, x: i32) -> __m256i {
        op!(_mm256_set1_epi32(x))
    }

    #[inline(always)]
    fn add_i(self, a: __m256i, b: __m256i) -> __m256i {
        op!(_mm256_add_epi32(a, b))
    }

    #[inline(always)]
    fn mul_i(self, a: __m256i, b: __m256i) -> __m256i {
        op!(_mm256_mullo_epi32(a, b))
    }

    #[inline(always)]
    fn eq_i(self, a: __m256i, b: __m256i) -> __m256 {
        op!(_mm256_castsi256_ps(_mm256_cmpeq_epi32(a, b)))
    }

    #[inline(always)]
    fn select_i(self, m: __m256, yes: __m256i, no: __m256i) -> __m256i {
        op!(_mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(no), _mm256_castsi256_ps(yes), m)))
    }

    #[inline(always)]
    fn i_as_f(self, v: __m256i) -> __m256 {
        op!(_mm256_castsi256_ps(v))
    }

    #[inline(always)]
    unsafe fn load_i_masked(self, m: __m256, p: *const u32) -> __m256i {
        // SAFETY: as in `load_masked`.
        unsafe { _mm256_maskload_epi32(p.cast(), _mm256_castps_si256(m)) }
    }

    #[inline(always)]
    unsafe fn store_i_masked(self, m: __m256, p: *mut u32, v: __m256i) {
        // SAFETY: as in `load_masked`.
        unsafe { _mm256_maskstore_epi32(p.cast(), _mm256_castps_si256(m), v) }
    }

    #[inline(always)]
    fn deinterleave(self, a: __m256, b: __m256) -> (__m256, __m256) {
        op!({
            // Within each 128-bit half: a's evens then b's evens (and odds);
            // then the 64-bit quarters reordered to a's before b's.
            let even = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
            let odd = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
            let order = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)));
            (order(even), order(odd))
        })
    }

    #[inline(always)]
    fn spread(self, v: __m256) -> (__m256, __m256) {
        op!({
            // v0 v0 v1 v1 | v4 v4 v5 v5 and v2 v2 v3 v3 | v6 v6 v7 v7, then
            // the 128-bit halves regrouped.
            let (lo, hi) = (_mm256_unpacklo_ps(v, v), _mm256_unpackhi_ps(v, v));
            (_mm256_permute2f128_ps::<0x20>(lo, hi), _mm256_permute2f128_ps::<0x31>(lo, hi))
        })
    }

    #[inline(always)]
    fn spread_i(self, v: __m256i) -> (__m256i, __m256i) {
        let (lo, hi) = self.spread(self.i_as_f(v));
        op!((_mm256_castps_si256(lo), _mm256_castps_si256(hi)))
    }

    #[inline(always)]
    unsafe fn store_octs(self, p: *mut f32, _stride: usize, v: __m256) {
        // SAFETY: the caller's contract (one run of 8).
        unsafe { _mm256_storeu_ps(p, v) }
    }

    #[inline(always)]
    unsafe fn transpose8(self, src: *const f32, ld_src: usize, dst: *mut f32, ld_dst: usize) {
        // SAFETY: the caller's contract: eight rows of eight at each.
        let r: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src.add(i * ld_src)) });
        for (k, col) in transpose_8x8(self, r).into_iter().enumerate() {
            // SAFETY: as above.
            unsafe { _mm256_storeu_ps(dst.add(k * ld_dst), col) };
        }
    }
}

/// The columns of the 8 × 8 block whose rows are `r`: unpacks, shuffles,
/// then the 128-bit halves exchanged (24 instructions).
#[inline(always)]
fn transpose_8x8(_: Avx2, r: [__m256; 8]) -> [__m256; 8] {
    op!({
        let t = [
            _mm256_unpacklo_ps(r[0], r[1]),
            _mm256_unpackhi_ps(r[0], r[1]),
            _mm256_unpacklo_ps(r[2], r[3]),
            _mm256_unpackhi_ps(r[2], r[3]),
            _mm256_unpacklo_ps(r[4], r[5]),
            _mm256_unpackhi_ps(r[4], r[5]),
            _mm256_unpacklo_ps(r[6], r[7]),
            _mm256_unpackhi_ps(r[6], r[7]),
        ];
        let q = [
            _mm256_shuffle_ps::<0x44>(t[0], t[2]),
            _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
            _mm256_shuffle_ps::<0x44>(t[1], t[3]),
            _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
            _mm256_shuffle_ps::<0x44>(t[4], t[6]),
            _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
            _mm256_shuffle_ps::<0x44>(t[5], t[7]),
            _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
        ];
        // Column k: rows 0–3 from q[k % 4], rows 4–7 from q[4 + k % 4].
        std::array::from_fn(|k| {
            if k < 4 { _mm256_permute2f128_ps::<0x20>(q[k], q[4 + k]) } else { _mm256_permute2f128_ps::<0x31>(q[k - 4], q[k]) }
        })
    })
}

//! [`Simd`] in plain Rust: a vector is an array of `N` values, and every
//! operation a loop over its lanes that LLVM vectorises for the target's
//! baseline (SSE2 on x86-64, NEON on aarch64). `Portable<4>` is the
//! baseline level; the tests also run every kernel at `Portable<16>`, the
//! AVX-512 shape, on any CPU.

use super::{Kernel, Simd};

/// `[f(0), f(1), …, f(N − 1)]` as a plain loop over the lanes (less to
/// compile than `array::from_fn`, and LLVM vectorises either).
macro_rules! each {
    (|$l:ident| $e:expr) => {{
        let mut out = [Default::default(); N];
        for $l in 0..N {
            out[$l] = $e;
        }
        out
    }};
}

/// `N` lanes of plain Rust (any `N` from 1; the kernels assume at least 4).
#[derive(Debug, Clone, Copy, Default)]
pub struct Portable<const N: usize>;

impl<const N: usize> Portable<N> {
    pub const fn new() -> Self {
        Self
    }
}

impl<const N: usize> Simd for Portable<N> {
    const LANES: usize = N;
    const REGISTERS: usize = if N >= 16 { 32 } else { 16 };
    const NAME: &'static str = match N {
        4 => "portable×4",
        8 => "portable×8",
        16 => "portable×16",
        _ => "portable",
    };

    type F32 = [f32; N];
    type I32 = [i32; N];
    type Mask = [bool; N];
    type Oct = Portable<8>;

    #[inline(always)]
    fn oct(self) -> Portable<8> {
        Portable
    }

    #[inline(always)]
    unsafe fn call<K: Kernel>(self, k: K) -> K::Output {
        #[inline(never)]
        unsafe fn outlined<K: Kernel, const N: usize>(s: Portable<N>, k: K) -> K::Output {
            // SAFETY: the caller's contract.
            unsafe { k.run(s) }
        }
        // SAFETY: the caller's contract.
        unsafe { outlined(self, k) }
    }

    #[inline(always)]
    fn zero(self) -> [f32; N] {
        [0.0; N]
    }

    #[inline(always)]
    fn splat(self, x: f32) -> [f32; N] {
        [x; N]
    }

    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> [f32; N] {
        // SAFETY: the caller's contract (N readable values).
        unsafe { p.cast::<[f32; N]>().read_unaligned() }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: [f32; N]) {
        // SAFETY: the caller's contract (N writable values).
        unsafe { p.cast::<[f32; N]>().write_unaligned(v) }
    }

    #[inline(always)]
    unsafe fn load_masked(self, m: [bool; N], p: *const f32) -> [f32; N] {
        // SAFETY: only the lanes of `m` are read, which the caller vouched for.
        each!(|l| if m[l] { unsafe { p.wrapping_add(l).read() } } else { 0.0 })
    }

    #[inline(always)]
    unsafe fn store_masked(self, m: [bool; N], p: *mut f32, v: [f32; N]) {
        for l in 0..N {
            if m[l] {
                // SAFETY: as in `load_masked`.
                unsafe { p.wrapping_add(l).write(v[l]) };
            }
        }
    }

    #[inline(always)]
    fn add(self, a: [f32; N], b: [f32; N]) -> [f32; N] {
        each!(|l| a[l] + b[l])
    }

    #[inline(always)]
    fn sub(self, a: [f32; N], b: [f32; N]) -> [f32; N] {
        each!(|l| a[l] - b[l])
    }

    #[inline(always)]
    fn mul(self, a: [f32; N], b: [f32; N]) -> [f32; N] {
        each!(|l| a[l] * b[l])
    }

    #[inline(always)]
    fn fma(self, a: [f32; N], b: [f32; N], c: [f32; N]) -> [f32; N] {
        // Two roundings: `mul_add` without the FMA feature is a call to libm.
        each!(|l| a[l] * b[l] + c[l])
    }

    #[inline(always)]
    fn max(self, a: [f32; N], b: [f32; N]) -> [f32; N] {
        each!(|l| if a[l] > b[l] { a[l] } else { b[l] })
    }

    #[inline(always)]
    fn reduce_add(self, v: [f32; N]) -> f32 {
        // Pairwise, as the vector levels add halves.
        let mut v = v;
        let mut width = N / 2;
        while width > 0 {
            for l in 0..width {
                v[l] += v[l + width];
            }
            width /= 2;
        }
        v[0]
    }

    #[inline(always)]
    fn sum_lanes(self, v: &[[f32; N]]) -> [f32; N] {
        assert_eq!(v.len(), N, "sum_lanes takes LANES vectors");
        each!(|j| self.reduce_add(v[j]))
    }

    #[inline(always)]
    fn first(self, n: usize) -> [bool; N] {
        each!(|l| l < n)
    }

    #[inline(always)]
    fn and_not(self, a: [bool; N], b: [bool; N]) -> [bool; N] {
        each!(|l| a[l] && !b[l])
    }

    #[inline(always)]
    fn or(self, a: [bool; N], b: [bool; N]) -> [bool; N] {
        each!(|l| a[l] || b[l])
    }

    #[inline(always)]
    fn is_empty(self, m: [bool; N]) -> bool {
        !m.iter().any(|&b| b)
    }

    #[inline(always)]
    fn gt(self, a: [f32; N], b: [f32; N]) -> [bool; N] {
        each!(|l| a[l] > b[l])
    }

    #[inline(always)]
    fn is_nan(self, a: [f32; N]) -> [bool; N] {
        each!(|l| a[l].is_nan())
    }

    #[inline(always)]
    fn select(self, m: [bool; N], yes: [f32; N], no: [f32; N]) -> [f32; N] {
        each!(|l| if m[l] { yes[l] } else { no[l] })
    }

    #[inline(always)]
    fn index(self) -> [i32; N] {
        each!(|l| l as i32)
    }

    #[inline(always)]
    fn splat_i(self, x: i32) -> [i32; N] {
        [x; N]
    }

    #[inline(always)]
    fn add_i(self, a: [i32; N], b: [i32; N]) -> [i32; N] {
        each!(|l| a[l].wrapping_add(b[l]))
    }

    #[inline(always)]
    fn mul_i(self, a: [i32; N], b: [i32; N]) -> [i32; N] {
        each!(|l| a[l].wrapping_mul(b[l]))
    }

    #[inline(always)]
    fn eq_i(self, a: [i32; N], b: [i32; N]) -> [bool; N] {
        each!(|l| a[l] == b[l])
    }

    #[inline(always)]
    fn select_i(self, m: [bool; N], yes: [i32; N], no: [i32; N]) -> [i32; N] {
        each!(|l| if m[l] { yes[l] } else { no[l] })
    }

    #[inline(always)]
    fn i_as_f(self, v: [i32; N]) -> [f32; N] {
        each!(|l| f32::from_bits(v[l] as u32))
    }

    #[inline(always)]
    unsafe fn load_i_masked(self, m: [bool; N], p: *const u32) -> [i32; N] {
        // SAFETY: as in `load_masked`.
        each!(|l| if m[l] { unsafe { p.wrapping_add(l).read() as i32 } } else { 0 })
    }

    #[inline(always)]
    unsafe fn store_i_masked(self, m: [bool; N], p: *mut u32, v: [i32; N]) {
        for l in 0..N {
            if m[l] {
                // SAFETY: as in `load_masked`.
                unsafe { p.wrapping_add(l).write(v[l] as u32) };
            }
        }
    }

    #[inline(always)]
    fn deinterleave(self, a: [f32; N], b: [f32; N]) -> ([f32; N], [f32; N]) {
        let at = |i: usize| if i < N { a[i] } else { b[i - N] };
        (each!(|l| at(2 * l)), each!(|l| at(2 * l + 1)))
    }

    #[inline(always)]
    fn spread(self, v: [f32; N]) -> ([f32; N], [f32; N]) {
        (each!(|l| v[l / 2]), each!(|l| v[(N + l) / 2]))
    }

    #[inline(always)]
    fn spread_i(self, v: [i32; N]) -> ([i32; N], [i32; N]) {
        (each!(|l| v[l / 2]), each!(|l| v[(N + l) / 2]))
    }

    #[inline(always)]
    unsafe fn store_octs(self, p: *mut f32, stride: usize, v: [f32; N]) {
        for (i, x) in v.into_iter().enumerate() {
            // SAFETY: the caller's contract.
            unsafe { *p.add((i / 8) * stride + i % 8) = x };
        }
    }

    #[inline(always)]
    unsafe fn transpose8(self, src: *const f32, ld_src: usize, dst: *mut f32, ld_dst: usize) {
        for r in 0..8 {
            for c in 0..8 {
                // SAFETY: the caller's contract: eight rows of eight at each.
                unsafe { *dst.add(c * ld_dst + r) = *src.add(r * ld_src + c) };
            }
        }
    }
}

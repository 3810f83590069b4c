//! The vector instructions the kernels are written in: one small trait,
//! [`Simd`], with a type per instruction set — [`Avx512`] (16 lanes, 32
//! registers), [`Avx2`] (8 lanes, 16 registers) and [`Portable`] (plain
//! arrays of any width, which LLVM vectorises for the baseline: SSE2 on
//! x86-64, NEON on aarch64). A kernel is a generic function over `S:
//! Simd` that takes the token `s: S`; its entry point, declared with
//! `multiversion!`, runs it inside a function compiled for each level's
//! features, so that every method (all `#[inline(always)]`) becomes the
//! instruction itself.
//!
//! Why our own trait and not a crate: the kernels need masked loads and
//! stores of a row's first `n` lanes, compares into masks, lane
//! deinterleaves for pooling, sums across many vectors' lanes and the
//! register count as a constant to size their blocks — about forty
//! operations. `pulp` (faer's SIMD layer) offers a similar dispatch but
//! an API several times larger and its own naming for all of it; `gemm`
//! is a GEMM, not the vocabulary under ours; `multiversion` compiles a
//! function per target but leaves the vector width to LLVM's
//! auto-vectoriser, which is what this tier exists to avoid. The trait is
//! a few hundred lines and each level's implementation one file.
//!
//! A token exists only where its instructions do: [`Avx2`] and [`Avx512`]
//! are made by `multiversion!` after [`cpu_level`](crate::cpu::cpu_level)
//! (or [`CpuLevel::detect`]) found the features, which is what makes their
//! methods safe to call.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;

#[cfg(target_arch = "x86_64")]
pub use avx2::Avx2;
#[cfg(target_arch = "x86_64")]
pub use avx512::Avx512;
pub use portable::Portable;

use crate::cpu::CpuLevel;

/// The most lanes any level has: scratch arrays of lanes are this long.
pub const MAX_LANES: usize = 16;

/// A set of vector instructions, as a zero-sized token that exists only
/// on a CPU that has them.
///
/// Semantics every implementation keeps exactly (kernels at every level
/// must agree with each other and with the interpreter): `max(a, b)` is
/// `a > b ? a : b` lane by lane (as x86's `maxps`: a NaN in either gives
/// `b`); `fma` is fused where the level has FMA (`Portable` rounds twice);
/// masked loads read nothing outside the mask and give zero there.
pub trait Simd: Copy + Send + Sync + 'static {
    /// f32 lanes per vector.
    const LANES: usize;
    /// Vector registers: how large a block of accumulators a kernel keeps.
    const REGISTERS: usize;
    /// 32 registers or more. Kernels branch on it (`if S::WIDE`) where
    /// the two register counts take different blockings: the branch is
    /// decided when the kernel is instantiated, so each level compiles
    /// only its own blocking.
    const WIDE: bool = Self::REGISTERS >= 32;
    /// A name for tests and benchmarks.
    const NAME: &'static str;

    /// `LANES` f32 values.
    type F32: Copy;
    /// `LANES` i32 values (indices).
    type I32: Copy;
    /// A mask of lanes.
    type Mask: Copy;
    /// Eight lanes at this level (a kernel over a packed panel's eight rows).
    type Oct: Simd;

    /// The eight-lane instructions of this level.
    fn oct(self) -> Self::Oct;

    /// Run `k` as a function of its own, compiled with this level's
    /// features and not inlined into the caller: one function per kernel
    /// block and level, shared by every caller (see [`Kernel`]).
    ///
    /// # Safety
    /// `k`'s contract ([`Kernel::run`]).
    unsafe fn call<K: Kernel>(self, k: K) -> K::Output;

    fn zero(self) -> Self::F32;
    fn splat(self, x: f32) -> Self::F32;
    /// # Safety
    /// `LANES` values at `p` are readable.
    unsafe fn load(self, p: *const f32) -> Self::F32;
    /// # Safety
    /// `LANES` values at `p` are writable.
    unsafe fn store(self, p: *mut f32, v: Self::F32);
    /// # Safety
    /// The lanes of `m` at `p` are readable (the others are neither read
    /// nor may they be: the pointer may point before or past a buffer).
    unsafe fn load_masked(self, m: Self::Mask, p: *const f32) -> Self::F32;
    /// # Safety
    /// The lanes of `m` at `p` are writable; the others are not written.
    unsafe fn store_masked(self, m: Self::Mask, p: *mut f32, v: Self::F32);

    fn add(self, a: Self::F32, b: Self::F32) -> Self::F32;
    fn sub(self, a: Self::F32, b: Self::F32) -> Self::F32;
    fn mul(self, a: Self::F32, b: Self::F32) -> Self::F32;
    /// `a·b + c`.
    fn fma(self, a: Self::F32, b: Self::F32, c: Self::F32) -> Self::F32;
    /// `a > b ? a : b`, lane by lane.
    fn max(self, a: Self::F32, b: Self::F32) -> Self::F32;
    /// The sum of the lanes.
    fn reduce_add(self, v: Self::F32) -> f32;
    /// `out[j] = Σ_l v[j][l]` for `LANES` vectors `v`: a transpose-and-add
    /// tree, not `LANES` reductions.
    fn sum_lanes(self, v: &[Self::F32]) -> Self::F32;

    /// Lanes `0..min(n, LANES)`.
    fn first(self, n: usize) -> Self::Mask;
    /// `a` and not `b`.
    fn and_not(self, a: Self::Mask, b: Self::Mask) -> Self::Mask;
    fn or(self, a: Self::Mask, b: Self::Mask) -> Self::Mask;
    fn is_empty(self, m: Self::Mask) -> bool;
    /// `a > b` (false where either is NaN).
    fn gt(self, a: Self::F32, b: Self::F32) -> Self::Mask;
    fn is_nan(self, a: Self::F32) -> Self::Mask;
    /// `m ? yes : no`, lane by lane.
    fn select(self, m: Self::Mask, yes: Self::F32, no: Self::F32) -> Self::F32;

    /// `0, 1, 2, …`.
    fn index(self) -> Self::I32;
    fn splat_i(self, x: i32) -> Self::I32;
    fn add_i(self, a: Self::I32, b: Self::I32) -> Self::I32;
    fn mul_i(self, a: Self::I32, b: Self::I32) -> Self::I32;
    fn eq_i(self, a: Self::I32, b: Self::I32) -> Self::Mask;
    fn select_i(self, m: Self::Mask, yes: Self::I32, no: Self::I32) -> Self::I32;
    /// The same bits as f32 lanes.
    fn i_as_f(self, v: Self::I32) -> Self::F32;
    /// # Safety
    /// As [`Simd::load_masked`].
    unsafe fn load_i_masked(self, m: Self::Mask, p: *const u32) -> Self::I32;
    /// # Safety
    /// As [`Simd::store_masked`].
    unsafe fn store_i_masked(self, m: Self::Mask, p: *mut u32, v: Self::I32);

    /// The even and the odd lanes of `a` followed by `b`: `(a0 a2 … b0 b2
    /// …, a1 a3 … b1 b3 …)`.
    fn deinterleave(self, a: Self::F32, b: Self::F32) -> (Self::F32, Self::F32);
    /// Each lane twice: `(v0 v0 v1 v1 …, …)`, the first half's lanes in the
    /// first vector.
    fn spread(self, v: Self::F32) -> (Self::F32, Self::F32);
    fn spread_i(self, v: Self::I32) -> (Self::I32, Self::I32);

    /// Lane `i` of `v` to `p + (i / 8)·stride + i % 8`: a vector as runs
    /// of eight (the rows of a GEMM's packed panels), whatever its width.
    ///
    /// # Safety
    /// The runs (`min(LANES, 8)` values each) at `p`, `stride` apart, are writable.
    unsafe fn store_octs(self, p: *mut f32, stride: usize, v: Self::F32);

    /// `dst[c·ld_dst + r] = src[r·ld_src + c]` for an 8 × 8 block.
    ///
    /// # Safety
    /// Eight rows of eight values at `src` (`ld_src` apart) are readable,
    /// eight rows at `dst` (`ld_dst` apart) writable.
    unsafe fn transpose8(self, src: *const f32, ld_src: usize, dst: *mut f32, ld_dst: usize);
}

/// A block of a kernel — a register blocking, say — as a value: its
/// operands, and [`Kernel::run`] generic over the level. [`Simd::call`]
/// runs it in a function of its own, compiled for the level.
///
/// Why: a kernel picks one of many blockings (`conv_rows::<S, 3, 2>`, …)
/// at run time. Inlined, every blocking of every level would be compiled
/// into each entry point and each test — functions of tens of thousands of
/// instructions that LLVM optimises in time worse than linear in their
/// size. Called through a `Kernel`, each blocking is compiled once per
/// level, at that level's features, and a call per block costs nothing
/// beside the block's work.
pub trait Kernel {
    type Output;

    /// The block at `s`'s level (implementations are `#[inline(always)]`,
    /// so that the body is compiled into [`Simd::call`]'s function).
    ///
    /// # Safety
    /// As the implementing type documents.
    unsafe fn run<S: Simd>(self, s: S) -> Self::Output;
}

/// A [`Kernel`] that calls a generic function with its operands:
///
/// ```text
/// block! {
///     /// Docs.
///     ConvRows<'a, const R: usize, const V: usize>(Operands<'a>) = conv_rows
/// }
/// ```
///
/// defines `struct ConvRows<'a, R, V>(Operands<'a>)`, whose
/// [`Kernel::run`] is `conv_rows::<S, R, V>(s, operands)` (an `unsafe fn`,
/// whose contract becomes the struct's), so that
/// `s.call(ConvRows::<3, 2>(operands))` runs that blocking in its own
/// function at `s`'s level.
macro_rules! block {
    ($(#[$attr:meta])* $name:ident<$($lt:lifetime,)? $(const $c:ident: $t:ty),*>($args:ty) $(-> $out:ty)? = $f:ident) => {
        $(#[$attr])*
        struct $name<$($lt,)? $(const $c: $t),*>($args);

        impl<$($lt,)? $(const $c: $t),*> $crate::kernels::simd::Kernel for $name<$($lt,)? $($c),*> {
            type Output = $crate::kernels::simd::block!(@out $($out)?);

            #[inline(always)]
            #[allow(unused_unsafe)] // for a safe function
            unsafe fn run<S: $crate::kernels::simd::Simd>(self, s: S) -> Self::Output {
                // SAFETY: the caller's contract, which is the function's.
                unsafe { $f::<S $(, $c)*>(s, self.0) }
            }
        }
    };
    (@out) => { () };
    (@out $out:ty) => { $out };
}
pub(crate) use block;

/// The highest level this CPU runs (detected once): `multiversion!` never
/// makes a token above it, whatever level `CONVC_CPU` asks for.
pub fn usable(level: CpuLevel) -> CpuLevel {
    static BEST: std::sync::OnceLock<CpuLevel> = std::sync::OnceLock::new();
    level.min(*BEST.get_or_init(CpuLevel::detect))
}

/// What a level's vectors are: their lanes, and whether there are 32
/// registers ([`Simd::WIDE`]). Kernels whose layouts or applicability
/// depend on it (which convs run direct, how a row is cut into vectors)
/// ask it of the level they will run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vectors {
    pub lanes: usize,
    pub wide: bool,
}

impl Vectors {
    /// The vectors of `S`.
    pub const fn of<S: Simd>() -> Self {
        Self { lanes: S::LANES, wide: S::WIDE }
    }

    /// The vectors of `level`.
    pub const fn at(level: CpuLevel) -> Self {
        match level {
            CpuLevel::Avx512 => Self { lanes: 16, wide: true },
            CpuLevel::Avx2 => Self { lanes: 8, wide: false },
            CpuLevel::Baseline => Self { lanes: 4, wide: false },
        }
    }

    /// The vectors the kernels run with here (see [`crate::cpu::cpu_level`]).
    pub fn here() -> Self {
        Self::at(usable(crate::cpu::cpu_level()))
    }
}

/// The baseline: four lanes, as SSE2 and NEON registers hold.
pub type Baseline = Portable<4>;

/// A kernel's entry point, compiled once per level:
///
/// ```text
/// multiversion! {
///     /// Docs.
///     pub fn name(a: A, b: B) -> R => |s| kernel(s, a, b)
/// }
/// ```
///
/// defines `name`, which runs `|s| …` — `s` the [`Simd`] token — inside a
/// function compiled with the target features of the level
/// [`cpu_level`](crate::cpu::cpu_level) allows (one such function per
/// level). Every `#[inline(always)]` function the body calls, down to the
/// intrinsics, is then compiled into it for that level. (A closure passed
/// to a `#[target_feature]` function would not do: it is compiled on its
/// own, without the features, and its intrinsics stay calls.)
macro_rules! multiversion {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident $(<$($g:ident: $bound:path),*>)? ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        => |$s:ident| $body:expr
    ) => {
        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name $(<$($g: $bound),*>)? ($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
                #[allow(clippy::too_many_arguments)]
                fn avx512 $(<$($g: $bound),*>)? ($($arg: $ty),*) $(-> $ret)? {
                    // SAFETY: only called below, after `usable` found AVX-512 F/VL/BW/DQ, AVX2 and FMA.
                    let $s = unsafe { $crate::kernels::simd::Avx512::new_unchecked() };
                    $body
                }
                #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
                #[allow(clippy::too_many_arguments)]
                fn avx2 $(<$($g: $bound),*>)? ($($arg: $ty),*) $(-> $ret)? {
                    // SAFETY: only called below, after `usable` found AVX2 and FMA.
                    let $s = unsafe { $crate::kernels::simd::Avx2::new_unchecked() };
                    $body
                }
                match $crate::kernels::simd::usable($crate::cpu::cpu_level()) {
                    // SAFETY: `usable` found the features each version enables.
                    $crate::cpu::CpuLevel::Avx512 => return unsafe { avx512 $(::<$($g),*>)? ($($arg),*) },
                    // SAFETY: as above.
                    $crate::cpu::CpuLevel::Avx2 => return unsafe { avx2 $(::<$($g),*>)? ($($arg),*) },
                    $crate::cpu::CpuLevel::Baseline => {}
                }
            }
            let $s = $crate::kernels::simd::Baseline::new();
            $body
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::testing::{AtEveryLevel, for_each_simd, lanes, lanes_i, vector};
    use super::*;

    /// Every operation against its definition lane by lane, with NaNs,
    /// signed zeros and ties among the values.
    struct Semantics;

    impl AtEveryLevel for Semantics {
        fn at<S: Simd>(&mut self, s: S) {
            let n = S::LANES;
            let name = S::NAME;
            let a: Vec<f32> = (0..2 * n).map(|i| [1.5, -0.0, f32::NAN, 0.0, -2.25, 3.0, 1.5, -7.0][i % 8] * (1 + i / 8) as f32).collect();
            let b: Vec<f32> = (0..2 * n).map(|i| [0.5, 0.0, 1.0, f32::NAN, -2.25, 4.0, -1.0, 2.0][(i + 3) % 8]).collect();
            let (va, vb, vc) = (vector(s, &a), vector(s, &b), vector(s, &a[n..]));
            let same = |got: Vec<f32>, want: Vec<f32>, what: &str| {
                let eq = got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()));
                assert!(eq, "{name} {what}: {got:?} vs {want:?}");
            };
            let ab = |f: fn(f32, f32) -> f32| (0..n).map(|l| f(a[l], b[l])).collect::<Vec<_>>();
            same(lanes(s, s.add(va, vb)), ab(|x, y| x + y), "add");
            same(lanes(s, s.sub(va, vb)), ab(|x, y| x - y), "sub");
            same(lanes(s, s.mul(va, vb)), ab(|x, y| x * y), "mul");
            same(lanes(s, s.max(va, vb)), ab(|x, y| if x > y { x } else { y }), "max");
            let fma: Vec<f32> = lanes(s, s.fma(va, vb, vc));
            for l in 0..n {
                let want = a[l] * b[l] + a[n + l];
                assert!(
                    fma[l] == want || (fma[l] - want).abs() <= 1e-6 * want.abs() || (want.is_nan() && fma[l].is_nan()),
                    "{name} fma lane {l}"
                );
            }
            same(lanes(s, s.zero()), vec![0.0; n], "zero");
            same(lanes(s, s.splat(-3.5)), vec![-3.5; n], "splat");
            let finite: Vec<f32> = (0..n).map(|l| l as f32 * 0.25 - 1.0).collect();
            let sum: f32 = finite.iter().sum();
            assert!((s.reduce_add(vector(s, &finite)) - sum).abs() < 1e-5, "{name} reduce_add");
            // Masks: the first n lanes, a range, loads and stores that touch
            // only their lanes.
            for k in [0, 1, n / 2, n - 1, n, n + 5] {
                let mut buf = vec![f32::NAN; n];
                let src: Vec<f32> = (0..n).map(|l| l as f32 + 1.0).collect();
                let m = s.first(k);
                // SAFETY: both buffers hold LANES values.
                let v = unsafe { s.load_masked(m, src.as_ptr()) };
                unsafe { s.store_masked(m, buf.as_mut_ptr(), v) };
                let want: Vec<f32> = (0..n).map(|l| if l < k { l as f32 + 1.0 } else { f32::NAN }).collect();
                same(buf, want, &format!("masked move of {k}"));
                let loaded: Vec<f32> = (0..n).map(|l| if l < k { l as f32 + 1.0 } else { 0.0 }).collect();
                same(lanes(s, v), loaded, &format!("masked load of {k}"));
                assert_eq!(s.is_empty(m), k == 0, "{name} is_empty of {k}");
                let range = s.and_not(s.first(k), s.first(1));
                let picked = lanes(s, s.select(range, s.splat(1.0), s.zero()));
                same(picked, (0..n).map(|l| if (1..k).contains(&l) { 1.0 } else { 0.0 }).collect(), "and_not");
            }
            let pick = |m: S::Mask| lanes(s, s.select(m, s.splat(1.0), s.zero()));
            same(pick(s.gt(va, vb)), ab(|x, y| if x > y { 1.0 } else { 0.0 }), "gt");
            same(pick(s.is_nan(va)), (0..n).map(|l| if a[l].is_nan() { 1.0 } else { 0.0 }).collect(), "is_nan");
            same(pick(s.or(s.is_nan(va), s.is_nan(vb))), ab(|x, y| if x.is_nan() || y.is_nan() { 1.0 } else { 0.0 }), "or");
            // Indices.
            let idx = s.index();
            assert_eq!(lanes_i(s, idx), (0..n as i32).collect::<Vec<_>>(), "{name} index");
            let scaled = s.add_i(s.mul_i(idx, s.splat_i(7)), s.splat_i(3));
            assert_eq!(lanes_i(s, scaled), (0..n as i32).map(|l| 7 * l + 3).collect::<Vec<_>>(), "{name} mul_i, add_i");
            let m = s.eq_i(idx, s.splat_i(2));
            assert_eq!(
                lanes_i(s, s.select_i(m, s.splat_i(-1), idx)),
                (0..n as i32).map(|l| if l == 2 { -1 } else { l }).collect::<Vec<_>>()
            );
            let bits = lanes(s, s.i_as_f(s.splat_i(0x3f80_0000)));
            same(bits, vec![1.0; n], "i_as_f");
            let mut out = vec![9u32; n];
            let src: Vec<u32> = (0..n as u32).map(|l| 100 + l).collect();
            // SAFETY: both buffers hold LANES values.
            unsafe { s.store_i_masked(s.first(3), out.as_mut_ptr(), s.load_i_masked(s.first(3), src.as_ptr())) };
            assert_eq!(out, (0..n as u32).map(|l| if l < 3 { 100 + l } else { 9 }).collect::<Vec<_>>(), "{name} masked indices");
            // Shuffles.
            let two: Vec<f32> = (0..2 * n).map(|i| i as f32).collect();
            let (even, odd) = s.deinterleave(vector(s, &two), vector(s, &two[n..]));
            same(lanes(s, even), (0..n).map(|l| (2 * l) as f32).collect(), "deinterleave even");
            same(lanes(s, odd), (0..n).map(|l| (2 * l + 1) as f32).collect(), "deinterleave odd");
            let (lo, hi) = s.spread(vector(s, &two));
            let spread: Vec<f32> = (0..2 * n).map(|j| (j / 2) as f32).collect();
            same(lanes(s, lo), spread[..n].to_vec(), "spread low");
            same(lanes(s, hi), spread[n..].to_vec(), "spread high");
            let (lo, hi) = s.spread_i(idx);
            assert_eq!([lanes_i(s, lo), lanes_i(s, hi)].concat(), (0..2 * n as i32).map(|j| j / 2).collect::<Vec<_>>(), "{name} spread_i");
            // A sum of each of LANES vectors' lanes.
            let rows: Vec<Vec<f32>> = (0..n).map(|j| (0..n).map(|l| (j * n + l) as f32 * 0.5).collect()).collect();
            let vs: Vec<S::F32> = rows.iter().map(|r| vector(s, r)).collect();
            same(lanes(s, s.sum_lanes(&vs)), rows.iter().map(|r| r.iter().sum()).collect(), "sum_lanes");
            // Runs of eight, `stride` apart.
            let mut runs = vec![-1.0f32; 40];
            // SAFETY: at most two runs of eight, 13 apart: inside 40 values.
            unsafe { s.store_octs(runs.as_mut_ptr(), 13, vector(s, &two)) };
            for i in 0..n {
                assert_eq!(runs[(i / 8) * 13 + i % 8], i as f32, "{name} store_octs lane {i}");
            }
            assert_eq!(runs.iter().filter(|&&v| v != -1.0).count(), n, "{name} store_octs wrote past its runs");
            // An 8 × 8 transpose between strided rows.
            let src: Vec<f32> = (0..8 * 11).map(|i| i as f32).collect();
            let mut dst = vec![-1.0f32; 8 * 9];
            // SAFETY: 8 rows of 8 at strides 11 and 9 fit both buffers.
            unsafe { s.transpose8(src.as_ptr(), 11, dst.as_mut_ptr(), 9) };
            for r in 0..8 {
                for c in 0..8 {
                    assert_eq!(dst[c * 9 + r], src[r * 11 + c], "{name} transpose8 ({r}, {c})");
                }
                assert_eq!(dst[r * 9 + 8], -1.0, "{name} transpose8 wrote past a row");
            }
        }
    }

    #[test]
    fn every_level_keeps_the_semantics() {
        for_each_simd(&mut Semantics);
    }

    /// `Vectors::at` says what each level's token has.
    struct Describes;

    impl AtEveryLevel for Describes {
        fn at<S: Simd>(&mut self, _: S) {
            let level = match (S::LANES, S::WIDE) {
                (16, true) => CpuLevel::Avx512,
                (8, false) => CpuLevel::Avx2,
                _ => CpuLevel::Baseline,
            };
            if S::NAME.starts_with("avx") || S::LANES == 4 {
                assert_eq!(Vectors::at(level), Vectors::of::<S>(), "{}", S::NAME);
            }
        }
    }

    #[test]
    fn vectors_describe_each_level() {
        for_each_simd(&mut Describes);
        assert_eq!(Vectors::at(CpuLevel::Baseline), Vectors::of::<Baseline>());
    }

    #[test]
    fn usable_never_exceeds_the_cpu() {
        assert!(usable(CpuLevel::Avx512) <= CpuLevel::detect());
        assert_eq!(usable(CpuLevel::Baseline), CpuLevel::Baseline);
    }
}

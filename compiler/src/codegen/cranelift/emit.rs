//! A thin layer over Cranelift's `FunctionBuilder` for the shapes of code
//! our kernels need: counted loops, f32 and f32x4 loads and stores at
//! element offsets, FMAs, horizontal sums, activations.
//!
//! Every kernel has the signature `extern "C" fn(args: *const *mut u8,
//! batch: i64)`: `args` is a table of buffer pointers whose lengths the
//! caller checked against `batch`.

use convc_runtime::Activation;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{self, FuncRef, InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_frontend::{FunctionBuilder, Variable};

pub const F32: Type = types::F32;
pub const F32X4: Type = types::F32X4;
pub const I64: Type = types::I64;
pub const I32: Type = types::I32;
/// Lanes of the vectors we emit (Cranelift's x86-64 backend lowers 128-bit).
pub const LANES: usize = 4;

/// Runs of up to this many vectors are unrolled by [`Fx::for_vectors`].
const UNROLL_VECTORS: usize = 16;

/// An element of a run: a run-time index (if any) plus a constant.
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub index: Option<Value>,
    pub offset: i64,
}

impl At {
    /// `k` elements further.
    pub fn plus(self, k: i64) -> Self {
        Self { offset: self.offset + k, ..self }
    }
}

/// A function of the runtime that kernels call (wrapped in `super`):
/// transcendental math, the GEMMs, im2col and its adjoint, the 2×2 max pool and its
/// gradient, transposes,
/// conv weight gradients, direct and Winograd convs. Adding one: a variant here, its
/// symbol, address and parameters in `super::import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Import {
    Exp,
    Tanh,
    GemmPacked,
    GemmRows,
    GemmAbt,
    Gemv,
    Im2col,
    Col2im,
    MaxPool,
    MaxUnpool,
    Transpose,
    WeightGrad,
    DirectConv,
    Winograd,
    WinogradGrad,
    WinogradGradFinish,
    LanesBackward,
    LanesGradFinish,
    LanesConv,
    RowSums,
}

impl Import {
    pub const ALL: [Import; 20] = [
        Import::Exp,
        Import::Tanh,
        Import::GemmPacked,
        Import::GemmRows,
        Import::GemmAbt,
        Import::Gemv,
        Import::Im2col,
        Import::Col2im,
        Import::MaxPool,
        Import::MaxUnpool,
        Import::Transpose,
        Import::WeightGrad,
        Import::DirectConv,
        Import::Winograd,
        Import::WinogradGrad,
        Import::WinogradGradFinish,
        Import::LanesBackward,
        Import::LanesGradFinish,
        Import::LanesConv,
        Import::RowSums,
    ];
}

/// The imports as declared in the function being built, by [`Import`].
#[derive(Clone, Copy)]
pub struct RuntimeFns(pub [FuncRef; Import::ALL.len()]);

impl std::ops::Index<Import> for RuntimeFns {
    type Output = FuncRef;

    fn index(&self, i: Import) -> &FuncRef {
        &self.0[i as usize]
    }
}

pub struct Fx<'a> {
    pub b: FunctionBuilder<'a>,
    pub args: Value,
    pub batch: Value,
    pub runtime: RuntimeFns,
    /// Whether vectors may be loaded from any element. x86-64 without AVX
    /// says no: Cranelift folds loads into SSE instructions, whose memory
    /// operands must be 16-byte aligned, so [`Fx::for_vectors`] goes scalar.
    pub unaligned_vectors: bool,
}

/// Accesses that cannot trap (the callers checked every buffer) but are
/// not known to be aligned: vectors start at any element (an im2col row, a
/// plane of odd size). Marking them aligned would let Cranelift fold them
/// into SSE instructions that fault on unaligned addresses when the CPU
/// (or `host_features: false`) rules out AVX.
fn flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

impl<'a> Fx<'a> {
    pub fn int(&mut self, v: i64) -> Value {
        self.b.ins().iconst(I64, v)
    }

    pub fn f(&mut self, v: f32) -> Value {
        self.b.ins().f32const(v)
    }

    pub fn fv(&mut self, v: f32) -> Value {
        let s = self.f(v);
        self.b.ins().splat(F32X4, s)
    }

    /// The pointer in slot `k` of the argument table.
    pub fn arg(&mut self, k: usize) -> Value {
        self.b.ins().load(I64, flags(), self.args, (k * 8) as i32)
    }

    /// `base + 4·index` (+ 4·offset), for f32/u32 element indices.
    pub fn addr(&mut self, base: Value, index: Value, offset: i64) -> (Value, i32) {
        let bytes = self.b.ins().ishl_imm_u(index, 2);
        let a = self.b.ins().iadd(base, bytes);
        (a, (offset * 4) as i32)
    }

    pub fn load(&mut self, ty: Type, base: Value, index: Value, offset: i64) -> Value {
        let (a, o) = self.addr(base, index, offset);
        self.b.ins().load(ty, flags(), a, o)
    }

    pub fn store(&mut self, value: Value, base: Value, index: Value, offset: i64) {
        let (a, o) = self.addr(base, index, offset);
        self.b.ins().store(flags(), value, a, o);
    }

    /// `*p += v` at an element index.
    pub fn add_to(&mut self, ty: Type, base: Value, index: Value, offset: i64, v: Value) {
        let old = self.load(ty, base, index, offset);
        let new = self.b.ins().fadd(old, v);
        self.store(new, base, index, offset);
    }

    /// The address of element `index` (f32/u32) of `base`.
    pub fn ptr_at(&mut self, base: Value, index: Value) -> Value {
        let bytes = self.b.ins().ishl_imm_u(index, 2);
        self.b.ins().iadd(base, bytes)
    }

    /// `if ptr != null { body }`.
    pub fn if_nonnull(&mut self, ptr: Value, body: impl FnOnce(&mut Self)) {
        let then = self.b.create_block();
        let done = self.b.create_block();
        self.b.ins().brif(ptr, then, &[], done, &[]);
        self.b.switch_to_block(then);
        body(self);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }

    /// Whether a pooling window's later value `v` replaces the maximum so
    /// far `best` (scalars, or lane by lane): when greater, or NaN — the interpreter's rule,
    /// under which a NaN, once taken, stays.
    pub fn wins_max(&mut self, v: Value, best: Value) -> Value {
        let greater = self.b.ins().fcmp(FloatCC::GreaterThan, v, best);
        let nan = self.b.ins().fcmp(FloatCC::Unordered, v, v);
        self.b.ins().bor(greater, nan)
    }

    /// `if cond { then } else { otherwise }`.
    pub fn if_else(&mut self, cond: Value, then: impl FnOnce(&mut Self), otherwise: impl FnOnce(&mut Self)) {
        let (yes, no, done) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().brif(cond, yes, &[], no, &[]);
        self.b.switch_to_block(yes);
        then(self);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(no);
        otherwise(self);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }

    /// `y[n][r] += w[r]·x[n]` (`rows × depth` weights, `images` rows of
    /// `x` and `y`) on the runtime's dot products — over `packed` (the
    /// stage's `PackedA`) when it holds their copy of the weight.
    pub fn gemv(&mut self, [w, packed]: [Value; 2], [rows, depth]: [Value; 2], x: Value, images: Value, y: Value) {
        let f = self.runtime[Import::Gemv];
        self.b.ins().call(f, &[w, packed, rows, depth, x, images, y]);
    }

    /// `body(at, vector)` over the elements `0..len` of a run: f32x4 steps
    /// (`vector` true), then the scalar tail. Short runs are unrolled, and
    /// their element offsets are constants that loads and stores through
    /// [`Fx::load_at`] and [`Fx::store_at`] fold into their addressing.
    pub fn for_vectors(&mut self, len: usize, mut body: impl FnMut(&mut Self, At, bool)) {
        let constant = |offset: usize| At { index: None, offset: offset as i64 };
        if !self.unaligned_vectors {
            if len <= UNROLL_VECTORS {
                (0..len).for_each(|i| body(self, constant(i), false));
            } else {
                self.for_range(0, len as i64, 1, |fx, i| body(fx, At { index: Some(i), offset: 0 }, false));
            }
            return;
        }
        let whole = len / LANES * LANES;
        if whole / LANES <= UNROLL_VECTORS {
            (0..whole).step_by(LANES).for_each(|i| body(self, constant(i), true));
        } else {
            self.for_range(0, whole as i64, LANES as i64, |fx, i| body(fx, At { index: Some(i), offset: 0 }, true));
        }
        (whole..len).for_each(|i| body(self, constant(i), false));
    }

    /// Load a `ty` at element `at` from the pointer `ptr`.
    pub fn load_at(&mut self, ty: Type, ptr: Value, at: At) -> Value {
        let (p, o) = self.resolve(ptr, at);
        self.b.ins().load(ty, flags(), p, o)
    }

    pub fn store_at(&mut self, value: Value, ptr: Value, at: At) {
        let (p, o) = self.resolve(ptr, at);
        self.b.ins().store(flags(), value, p, o);
    }

    /// `*p += v` at element `at` of `ptr`.
    pub fn add_at(&mut self, ty: Type, ptr: Value, at: At, v: Value) {
        let (p, o) = self.resolve(ptr, at);
        let old = self.b.ins().load(ty, flags(), p, o);
        let new = self.b.ins().fadd(old, v);
        self.b.ins().store(flags(), new, p, o);
    }

    fn resolve(&mut self, ptr: Value, at: At) -> (Value, i32) {
        let p = match at.index {
            Some(i) => self.ptr_at(ptr, i),
            None => ptr,
        };
        (p, (at.offset * 4) as i32)
    }

    /// `c = act(bias + A·b)` on the runtime's packed microkernel (`a`: a
    /// `PackedA`; `bias` null for none; `relu` 0 or 1).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_packed(&mut self, a: Value, b: Value, ldb: Value, n: Value, bias: Value, relu: bool, c: Value, ldc: Value) {
        let relu = self.int(relu as i64);
        let f = self.runtime[Import::GemmPacked];
        self.b.ins().call(f, &[a, b, ldb, n, bias, relu, c, ldc]);
    }

    /// `c = act(bias + A·b)` with `a` (`rows × depth`, row-major) read in
    /// place (`gemm::gemm_rows`; AVX-512 only); `bias` null for none.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_rows(
        &mut self,
        a: Value,
        [rows, depth]: [Value; 2],
        b: Value,
        ldb: Value,
        n: Value,
        bias: Value,
        relu: bool,
        c: Value,
        ldc: Value,
    ) {
        let relu = self.int(relu as i64);
        let f = self.runtime[Import::GemmRows];
        self.b.ins().call(f, &[a, rows, depth, b, ldb, n, bias, relu, c, ldc]);
    }

    // The conv calls below take `stage`, the pointer to the stage's
    // `ConvGeom` from its argument table, and the image's buffers: the
    // runtime reads every size from the geometry it shares with generated code.

    /// im2col of the image at `x` into `cols` (through `xpad` when padded).
    pub fn im2col(&mut self, stage: Value, x: Value, xpad: Value, cols: Value) {
        self.call_runtime(Import::Im2col, &[stage, x, xpad, cols]);
    }

    /// `dx` (the image's input gradient, written in full) = col2im of `cols`.
    pub fn col2im(&mut self, stage: Value, cols: Value, dx: Value) {
        self.call_runtime(Import::Col2im, &[stage, cols, dx]);
    }

    /// `gw += dz · im2row(x)`: the weight gradient of the image at `x`,
    /// `rows` (and `xpad`) scratch.
    pub fn weight_grad(&mut self, stage: Value, [x, xpad, rows]: [Value; 3], dz: Value, gw: Value) {
        self.call_runtime(Import::WeightGrad, &[stage, x, xpad, rows, dz, gw]);
    }

    /// `acc += ` the weight gradient of the image at `x`, summed with the
    /// filters in the lanes, and unless `dx` is null its input gradient
    /// over `packed_t` (the runtime's `filter_lanes::backward`).
    pub fn lanes_backward(&mut self, stage: Value, [x, dz, packed_t, acc, dx]: [Value; 5]) {
        self.call_runtime(Import::LanesBackward, &[stage, x, dz, packed_t, acc, dx]);
    }

    /// `gw = ` the filters' gradient from `acc` (`filter_lanes::weight_grad_finish`).
    pub fn lanes_grad_finish(&mut self, stage: Value, [acc, gw]: [Value; 2]) {
        self.call_runtime(Import::LanesGradFinish, &[stage, acc, gw]);
    }

    /// `y = act(bias + conv(x))` for the image at `x` with the filters in
    /// the lanes (the runtime's `filter_lanes::forward`, ReLU applied in
    /// registers when it is the stage's activation) — with `pool`, its 2×2
    /// max pool, each maximum's index at `argmax` unless null; `bias` may be null.
    pub fn lanes_conv(&mut self, stage: Value, [x, packed, bias, y, argmax]: [Value; 5], pool: bool) {
        let pool = self.int(i64::from(pool));
        self.call_runtime(Import::LanesConv, &[stage, x, packed, bias, pool, y, argmax]);
    }

    /// `z = act(bias + conv(x))` for the image at `x` by the runtime's
    /// `direct::conv` — with `pool`, its 2×2 max pool
    /// (`direct::conv_max_pool`); `bias` may be null.
    pub fn direct_conv(&mut self, stage: Value, [x, packed, bias, z]: [Value; 4], pool: bool) {
        let pool = self.int(i64::from(pool));
        self.call_runtime(Import::DirectConv, &[stage, x, packed, bias, pool, z]);
    }

    /// `y = act(bias + conv(x))` for one image by the runtime's
    /// `winograd::conv` over the filters transformed into `u`; `bias` may
    /// be null. With `adjoint`, the input gradient: `x` the gradient at the
    /// conv output, `u` the adjoint's transforms, no bias or activation.
    pub fn winograd(&mut self, stage: Value, adjoint: bool, [x, u, bias, y]: [Value; 4]) {
        let adjoint = self.int(i64::from(adjoint));
        self.call_runtime(Import::Winograd, &[stage, adjoint, x, u, bias, y]);
    }

    /// `acc += ` one image's weight gradient in the transform domain
    /// (the runtime's `winograd::weight_grad_acc`).
    pub fn winograd_grad(&mut self, stage: Value, [x, dz, acc]: [Value; 3]) {
        self.call_runtime(Import::WinogradGrad, &[stage, x, dz, acc]);
    }

    /// `gw = ` the filters' gradient from `acc` (`winograd::weight_grad_finish`).
    pub fn winograd_grad_finish(&mut self, stage: Value, [acc, gw]: [Value; 2]) {
        self.call_runtime(Import::WinogradGradFinish, &[stage, acc, gw]);
    }

    fn call_runtime(&mut self, import: Import, args: &[Value]) {
        let f = self.runtime[import];
        self.b.ins().call(f, args);
    }

    /// 2×2 stride-2 max pooling of `planes` planes of `h × w` at `x` into
    /// `y`, with each maximum's index from `x` at `argmax` (null: none).
    pub fn max_pool_2x2(&mut self, x: Value, planes: Value, [h, w]: [usize; 2], y: Value, argmax: Value) {
        let [h, w] = [h, w].map(|v| self.int(v as i64));
        let f = self.runtime[Import::MaxPool];
        self.b.ins().call(f, &[x, planes, h, w, y, argmax]);
    }

    /// `dz` (`planes × h × w`, written in full) = the gradient through the
    /// 2×2 max pool of `planes` planes and the activation `a` before it:
    /// `dy·a'(y)` at each output's recorded maximum, zero elsewhere.
    #[allow(clippy::too_many_arguments)]
    pub fn max_unpool_2x2(&mut self, dy: Value, y: Value, argmax: Value, a: Activation, planes: Value, [h, w]: [usize; 2], dz: Value) {
        let [code, alpha] = super::imports::activation_words(a).map(|v| self.int(v as i64));
        let [h, w] = [h, w].map(|v| self.int(v as i64));
        let f = self.runtime[Import::MaxUnpool];
        self.b.ins().call(f, &[dy, y, argmax, code, alpha, planes, h, w, dz]);
    }

    /// `out[r] += Σ x[r·len ..][..len]` for `r < rows` (the runtime's `rows::add_row_sums`).
    pub fn add_row_sums(&mut self, x: Value, len: usize, rows: usize, out: Value) {
        let (len, rows) = (self.int(len as i64), self.int(rows as i64));
        let f = self.runtime[Import::RowSums];
        self.b.ins().call(f, &[x, len, rows, out]);
    }

    /// `dst` (`cols × rows`) = the transpose of `src` (`rows × cols`).
    pub fn transpose(&mut self, src: Value, rows: Value, cols: Value, dst: Value) {
        let f = self.runtime[Import::Transpose];
        self.b.ins().call(f, &[src, rows, cols, dst]);
    }

    /// `c += a·bᵀ` (`m × k` by `(n × k)ᵀ`, rows `lda`, `ldb`, `ldc` apart)
    /// on the runtime's dot-product blocks.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_abt(&mut self, a: Value, lda: Value, b: Value, ldb: Value, [m, n, k]: [Value; 3], c: Value, ldc: Value) {
        let f = self.runtime[Import::GemmAbt];
        self.b.ins().call(f, &[a, lda, b, ldb, m, n, k, c, ldc]);
    }

    pub fn mul_add(&mut self, index: Value, scale: i64, add: i64) -> Value {
        let m = self.b.ins().imul_imm_s(index, scale);
        self.b.ins().iadd_imm_s(m, add)
    }

    pub fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        self.b.ins().fma(a, b, c)
    }

    pub fn splat(&mut self, v: Value) -> Value {
        self.b.ins().splat(F32X4, v)
    }

    /// Sum of the four lanes.
    pub fn hsum(&mut self, v: Value) -> Value {
        let lanes: Vec<Value> = (0..LANES as u8).map(|l| self.b.ins().extractlane(v, l)).collect();
        let a = self.b.ins().fadd(lanes[0], lanes[1]);
        let c = self.b.ins().fadd(lanes[2], lanes[3]);
        self.b.ins().fadd(a, c)
    }

    pub fn var(&mut self, ty: Type, init: Value) -> Variable {
        let v = self.b.declare_var(ty);
        self.b.def_var(v, init);
        v
    }

    /// `for i in start..end step` with `end` a run-time value.
    pub fn for_to(&mut self, start: i64, end: Value, step: i64, body: impl FnMut(&mut Self, Value)) {
        let start = self.int(start);
        self.for_between(start, end, step, body);
    }

    /// `for i in start..end step` with both bounds run-time values.
    pub fn for_between(&mut self, start: Value, end: Value, step: i64, mut body: impl FnMut(&mut Self, Value)) {
        let counter = self.var(I64, start);
        let header = self.b.create_block();
        let body_block = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        let i = self.b.use_var(counter);
        let go = self.b.ins().icmp(IntCC::SignedLessThan, i, end);
        self.b.ins().brif(go, body_block, &[], exit, &[]);
        self.b.switch_to_block(body_block);
        body(self, i);
        let next = self.b.ins().iadd_imm_s(i, step);
        self.b.def_var(counter, next);
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(exit);
    }

    /// `for i in start..end step` with constant bounds; empty ranges emit nothing.
    pub fn for_range(&mut self, start: i64, end: i64, step: i64, body: impl FnMut(&mut Self, Value)) {
        if start >= end {
            return;
        }
        let end = self.int(end);
        self.for_to(start, end, step, body);
    }

    fn call1(&mut self, f: FuncRef, x: Value) -> Value {
        let call = self.b.ins().call(f, &[x]);
        self.b.inst_results(call)[0]
    }

    /// Apply `f` lane by lane (for calls into the runtime's math).
    fn per_lane(&mut self, x: Value, vector: bool, f: impl Fn(&mut Self, Value) -> Value) -> Value {
        if !vector {
            return f(self, x);
        }
        let mut out = x;
        for l in 0..LANES as u8 {
            let lane = self.b.ins().extractlane(x, l);
            let r = f(self, lane);
            out = self.b.ins().insertlane(out, r, l);
        }
        out
    }

    /// `x > 0 ? x : other` (scalar or vector).
    fn positive_or(&mut self, x: Value, other: Value, vector: bool) -> Value {
        let zero = if vector { self.fv(0.0) } else { self.f(0.0) };
        let gt = self.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
        let mask = if vector { self.b.ins().bitcast(F32X4, MemFlagsData::new().with_endianness(ir::Endianness::Little), gt) } else { gt };
        if vector { self.b.ins().bitselect(mask, x, other) } else { self.b.ins().select(gt, x, other) }
    }

    /// The activation `a` applied to `x`.
    pub fn activation(&mut self, a: Activation, x: Value, vector: bool) -> Value {
        let c = |fx: &mut Self, v: f32| if vector { fx.fv(v) } else { fx.f(v) };
        match a {
            Activation::None => x,
            Activation::Relu => {
                let zero = c(self, 0.0);
                self.positive_or(x, zero, vector)
            }
            Activation::LeakyRelu { alpha } => {
                let al = c(self, alpha);
                let scaled = self.b.ins().fmul(x, al);
                self.positive_or(x, scaled, vector)
            }
            Activation::Elu { alpha } => {
                let exp = self.runtime[Import::Exp];
                let e = self.per_lane(x, vector, |fx, v| fx.call1(exp, v));
                let one = c(self, 1.0);
                let em1 = self.b.ins().fsub(e, one);
                let al = c(self, alpha);
                let neg = self.b.ins().fmul(em1, al);
                self.positive_or(x, neg, vector)
            }
            Activation::Sigmoid => {
                // 1 / (1 + e^-x), with e^-x clamped to stay finite.
                let exp = self.runtime[Import::Exp];
                let nx = self.b.ins().fneg(x);
                let e = self.per_lane(nx, vector, |fx, v| fx.call1(exp, v));
                let one = c(self, 1.0);
                let d = self.b.ins().fadd(one, e);
                self.b.ins().fdiv(one, d)
            }
            Activation::Tanh => {
                let tanh = self.runtime[Import::Tanh];
                self.per_lane(x, vector, |fx, v| fx.call1(tanh, v))
            }
        }
    }

    /// The activation's derivative written in terms of its output `y`
    /// (see `Activation::derivative_at_output`).
    pub fn activation_derivative(&mut self, a: Activation, y: Value, vector: bool) -> Value {
        let c = |fx: &mut Self, v: f32| if vector { fx.fv(v) } else { fx.f(v) };
        match a {
            Activation::None => c(self, 1.0),
            Activation::Relu => {
                let (one, zero) = (c(self, 1.0), c(self, 0.0));
                self.select_positive(y, one, zero, vector)
            }
            Activation::LeakyRelu { alpha } => {
                let (one, al) = (c(self, 1.0), c(self, alpha));
                self.select_positive(y, one, al, vector)
            }
            Activation::Elu { alpha } => {
                let (one, al) = (c(self, 1.0), c(self, alpha));
                let ya = self.b.ins().fadd(y, al);
                self.select_positive(y, one, ya, vector)
            }
            Activation::Sigmoid => {
                let one = c(self, 1.0);
                let om = self.b.ins().fsub(one, y);
                self.b.ins().fmul(y, om)
            }
            Activation::Tanh => {
                let one = c(self, 1.0);
                let yy = self.b.ins().fmul(y, y);
                self.b.ins().fsub(one, yy)
            }
        }
    }

    /// `y > 0 ? a : b`.
    fn select_positive(&mut self, y: Value, a: Value, b: Value, vector: bool) -> Value {
        let zero = if vector { self.fv(0.0) } else { self.f(0.0) };
        let gt = self.b.ins().fcmp(FloatCC::GreaterThan, y, zero);
        if vector {
            let mask = self.b.ins().bitcast(F32X4, MemFlagsData::new().with_endianness(ir::Endianness::Little), gt);
            self.b.ins().bitselect(mask, a, b)
        } else {
            self.b.ins().select(gt, a, b)
        }
    }
}

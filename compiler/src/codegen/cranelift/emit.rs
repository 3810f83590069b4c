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

/// Functions of the runtime that kernels call for transcendental math.
#[derive(Clone, Copy)]
pub struct MathFns {
    pub exp: FuncRef,
    pub tanh: FuncRef,
}

pub struct Fx<'a> {
    pub b: FunctionBuilder<'a>,
    pub args: Value,
    pub batch: Value,
    pub math: MathFns,
}

fn flags() -> MemFlagsData {
    MemFlagsData::trusted()
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
                let exp = self.math.exp;
                let e = self.per_lane(x, vector, |fx, v| fx.call1(exp, v));
                let one = c(self, 1.0);
                let em1 = self.b.ins().fsub(e, one);
                let al = c(self, alpha);
                let neg = self.b.ins().fmul(em1, al);
                self.positive_or(x, neg, vector)
            }
            Activation::Sigmoid => {
                // 1 / (1 + e^-x), with e^-x clamped to stay finite.
                let exp = self.math.exp;
                let nx = self.b.ins().fneg(x);
                let e = self.per_lane(nx, vector, |fx, v| fx.call1(exp, v));
                let one = c(self, 1.0);
                let d = self.b.ins().fadd(one, e);
                self.b.ins().fdiv(one, d)
            }
            Activation::Tanh => {
                let tanh = self.math.tanh;
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

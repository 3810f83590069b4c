//! The JIT's own conv kernels (128-bit vectors): fused conv, activation
//! and pool stages, forward and backward, and the pooling windows every
//! JIT pool epilogue and pool stage emits. Conv stages run here for
//! `local2d` layers, whose weights differ per position and give the
//! runtime's GEMM nothing to pack, and with `JitOptions::microkernels` off
//! (benchmarked against the runtime's kernels in `benches/layers.rs`);
//! other conv stages call the runtime (`runtime_calls`).
//!
//! The input arrives zero-padded (`xpad`, `C × HP × WP` per image, see
//! [`PaddedConv`]), so no tap needs a bounds check. One filter's output plane
//! is computed into a scratch plane whose rows are padded to whole vectors
//! (`ow4`), then the epilogue — activation already applied — pools it (or
//! copies it) into the stage output. With stride 1 along the width and
//! shared weights, each output row is computed as up to eight f32x4
//! accumulators that share every broadcast weight.

use convc_runtime::Activation;
use convc_runtime::PoolKind;
use convc_runtime::layer::{Conv, Pool};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, Value};

use super::emit::{F32, F32X4, Fx, I32, LANES};

/// Most vector accumulators per row block (registers: 16 xmm; keep room
/// for the loaded inputs and the broadcast weight).
const MAX_ROW_VECTORS: usize = 8;

/// A conv stage as the JIT's own kernels lay it out: the stage's sizes
/// (the runtime's `compiled::ConvGeom` holds the same conv) plus the
/// layout of these 128-bit kernels — the input zero-padded in full, rows
/// padded to whole vectors.
#[derive(Debug, Clone, Copy)]
pub struct PaddedConv {
    pub c: usize,
    pub f: usize,
    pub oh: usize,
    pub ow: usize,
    /// Output row length rounded up to whole vectors.
    pub ow4: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    /// Padded input height and width (the width may be padded further so
    /// that vector loads of the last partial vector stay in bounds).
    pub hp: usize,
    pub wp: usize,
    pub local: bool,
    /// Input height, width and padding (rows/columns of zeros on each side).
    pub h: usize,
    pub w: usize,
    pub pad: [usize; 2],
}

impl PaddedConv {
    pub fn new(conv: &Conv, local: bool, c: usize, h: usize, w: usize, oh: usize, ow: usize) -> Self {
        let ow4 = ow.div_ceil(LANES) * LANES;
        let vector = Self::vector_path(conv, local);
        // The vector path loads whole vectors up to column ow4 + kw − 2 and
        // (backward) writes whole rows of input gradient: pad to vectors.
        let wp = if vector { (w + 2 * conv.pad[1]).max(ow4 + conv.kernel[1] - 1).div_ceil(LANES) * LANES } else { w + 2 * conv.pad[1] };
        Self {
            c,
            f: conv.filters,
            oh,
            ow,
            ow4,
            kh: conv.kernel[0],
            kw: conv.kernel[1],
            sh: conv.stride[0],
            sw: conv.stride[1],
            hp: h + 2 * conv.pad[0],
            wp,
            local,
            h,
            w,
            pad: conv.pad,
        }
    }

    fn vector_path(conv: &Conv, local: bool) -> bool {
        conv.stride[1] == 1 && !local
    }

    pub fn vector(&self) -> bool {
        self.sw == 1 && !self.local
    }

    pub fn padded_len(&self) -> usize {
        self.c * self.hp * self.wp
    }

    pub fn plane4(&self) -> usize {
        self.oh * self.ow4
    }

    fn x_index(&self, fx: &mut Fx, ci: Value, row: Value, col: Value) -> Value {
        // (ci·HP + row)·WP + col
        let a = fx.b.ins().imul_imm_s(ci, self.hp as i64);
        let a = fx.b.ins().iadd(a, row);
        let a = fx.b.ins().imul_imm_s(a, self.wp as i64);
        fx.b.ins().iadd(a, col)
    }

    /// A local layer's filter bank (and bias) for filter `f` at output
    /// (oy, ox): `(f·oh + oy)·ow + ox`.
    fn local_bank(&self, fx: &mut Fx, f: Value, oy: Value, ox: Value) -> Value {
        let a = fx.b.ins().imul_imm_s(f, self.oh as i64);
        let a = fx.b.ins().iadd(a, oy);
        let a = fx.b.ins().imul_imm_s(a, self.ow as i64);
        fx.b.ins().iadd(a, ox)
    }

    /// Index of weight tap (ci, ky, kx) of filter `f`, at output (oy, ox) for local layers.
    #[allow(clippy::too_many_arguments)]
    fn w_index(&self, fx: &mut Fx, f: Value, oy: Value, ox: Value, ci: Value, ky: usize, kx: usize) -> Value {
        let bank = if self.local { self.local_bank(fx, f, oy, ox) } else { f };
        let a = fx.b.ins().imul_imm_s(bank, self.c as i64);
        let a = fx.b.ins().iadd(a, ci);
        fx.mul_add(a, (self.kh * self.kw) as i64, (ky * self.kw + kx) as i64)
    }
}

/// A pooling window as the JIT emits it over one plane whose rows are
/// `row_stride` apart (a conv's scratch plane may pad its rows).
#[derive(Debug, Clone, Copy)]
pub struct PoolWindow {
    pub h: usize,
    pub w: usize,
    pub row_stride: usize,
    pub ph: usize,
    pub pw: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub pad_h: usize,
    pub pad_w: usize,
}

impl PoolWindow {
    pub fn new(pool: &Pool, h: usize, w: usize, row_stride: usize, ph: usize, pw: usize) -> Self {
        let [kh, kw] = pool.size;
        Self { h, w, row_stride, ph, pw, kh, kw, sh: pool.stride[0], sw: pool.stride[1], pad_h: pool.pad[0], pad_w: pool.pad[1] }
    }

    pub fn has_padding(&self) -> bool {
        self.pad_h > 0 || self.pad_w > 0
    }

    /// For pooled output (py, px) and tap (ty, tx): the plane index of the
    /// tap (clamped into the plane) and, with padding, whether it is inside.
    pub fn tap(&self, fx: &mut Fx, py: Value, px: Value, ty: usize, tx: usize) -> (Value, Option<Value>) {
        let iy = fx.mul_add(py, self.sh as i64, ty as i64 - self.pad_h as i64);
        let ix = fx.mul_add(px, self.sw as i64, tx as i64 - self.pad_w as i64);
        if !self.has_padding() {
            let at = fx.mul_add(iy, self.row_stride as i64, 0);
            return (fx.b.ins().iadd(at, ix), None);
        }
        let zero = fx.int(0);
        let (hmax, wmax) = (fx.int(self.h as i64 - 1), fx.int(self.w as i64 - 1));
        let (h, w) = (fx.int(self.h as i64), fx.int(self.w as i64));
        let in_y = fx.b.ins().icmp(IntCC::UnsignedLessThan, iy, h);
        let in_x = fx.b.ins().icmp(IntCC::UnsignedLessThan, ix, w);
        let inside = fx.b.ins().band(in_y, in_x);
        let cy = fx.b.ins().smax(iy, zero);
        let cy = fx.b.ins().smin(cy, hmax);
        let cx = fx.b.ins().smax(ix, zero);
        let cx = fx.b.ins().smin(cx, wmax);
        let at = fx.b.ins().imul_imm_s(cy, self.row_stride as i64);
        (fx.b.ins().iadd(at, cx), Some(inside))
    }
}

/// Pool one plane (`src` at element offset `src_off`) into `dst` (offset
/// `dst_off`, rows of `g.pw`). Max pooling also records the plane index of
/// each maximum into `argmax` (same offsets as `dst`) when given.
#[allow(clippy::too_many_arguments)]
pub fn emit_pool_plane(
    fx: &mut Fx,
    kind: PoolKind,
    g: PoolWindow,
    src: Value,
    src_off: Value,
    dst: Value,
    dst_off: Value,
    argmax: Option<Value>,
) {
    let window = (g.kh * g.kw) as f32;
    fx.for_range(0, g.ph as i64, 1, |fx, py| {
        fx.for_range(0, g.pw as i64, 1, |fx, px| {
            let mut best: Option<(Value, Value)> = None;
            let mut sum = fx.f(0.0);
            for ty in 0..g.kh {
                for tx in 0..g.kw {
                    let (at, inside) = g.tap(fx, py, px, ty, tx);
                    let idx = fx.b.ins().iadd(src_off, at);
                    let v = fx.load(F32, src, idx, 0);
                    match kind {
                        PoolKind::Max => {
                            let v = match inside {
                                Some(inside) => {
                                    let ninf = fx.f(f32::NEG_INFINITY);
                                    fx.b.ins().select(inside, v, ninf)
                                }
                                None => v,
                            };
                            best = Some(match best {
                                None => (v, at),
                                Some((bv, bi)) => {
                                    // Greater, or NaN: a NaN propagates.
                                    let gt = fx.wins_max(v, bv);
                                    (fx.b.ins().select(gt, v, bv), fx.b.ins().select(gt, at, bi))
                                }
                            });
                        }
                        PoolKind::Avg | PoolKind::L2 => {
                            let v = match inside {
                                Some(inside) => {
                                    let zero = fx.f(0.0);
                                    fx.b.ins().select(inside, v, zero)
                                }
                                None => v,
                            };
                            sum = if kind == PoolKind::Avg { fx.b.ins().fadd(sum, v) } else { fx.fma(v, v, sum) };
                        }
                    }
                }
            }
            let o = fx.mul_add(py, g.pw as i64, 0);
            let o = fx.b.ins().iadd(o, px);
            let o = fx.b.ins().iadd(o, dst_off);
            let out = match kind {
                PoolKind::Max => {
                    let (bv, bi) = best.expect("a window has at least one tap");
                    if let Some(argmax) = argmax {
                        let bi32 = fx.b.ins().ireduce(I32, bi);
                        fx.store(bi32, argmax, o, 0);
                    }
                    bv
                }
                PoolKind::Avg => {
                    let k = fx.f(window);
                    fx.b.ins().fdiv(sum, k)
                }
                PoolKind::L2 => fx.b.ins().sqrt(sum),
            };
            fx.store(out, dst, o, 0);
        });
    });
}

/// The value of the pooled plane's input at a plane index (L2 pooling's
/// backward needs it).
pub type InputAt<'f> = dyn Fn(&mut Fx, Value) -> Value + 'f;

/// Backward of pooling one plane: accumulate into `dsrc` (offset
/// `dsrc_off`, zeroed by the caller, rows of `g.row_stride`) from `dy`/`y`
/// (offset `dy_off`). Max pooling scatters through `argmax`; L2 pooling
/// reads its input through `input_at` (plane index, before `dsrc_off`).
#[allow(clippy::too_many_arguments)]
pub fn emit_pool_plane_backward(
    fx: &mut Fx,
    kind: PoolKind,
    g: PoolWindow,
    dy: Value,
    y: Value,
    argmax: Value,
    dy_off: Value,
    input_at: &InputAt,
    dsrc: Value,
    dsrc_off: Value,
) {
    let window = (g.kh * g.kw) as f32;
    fx.for_range(0, (g.ph * g.pw) as i64, 1, |fx, o| {
        let oi = fx.b.ins().iadd(o, dy_off);
        let grad = fx.load(F32, dy, oi, 0);
        match kind {
            PoolKind::Max => {
                let at = fx.load(I32, argmax, oi, 0);
                let at = fx.b.ins().uextend(super::emit::I64, at);
                let at = fx.b.ins().iadd(at, dsrc_off);
                fx.add_to(F32, dsrc, at, 0, grad);
            }
            PoolKind::Avg | PoolKind::L2 => {
                let scale = if kind == PoolKind::Avg {
                    let k = fx.f(window);
                    fx.b.ins().fdiv(grad, k)
                } else {
                    // d sqrt(Σx²)/dx = x / y, zero for an all-zero window.
                    let yv = fx.load(F32, y, oi, 0);
                    let zero = fx.f(0.0);
                    let q = fx.b.ins().fdiv(grad, yv);
                    let pos = fx.b.ins().fcmp(FloatCC::GreaterThan, yv, zero);
                    fx.b.ins().select(pos, q, zero)
                };
                let py = fx.b.ins().udiv_imm_u(o, g.pw as i64);
                let px = fx.b.ins().urem_imm_u(o, g.pw as i64);
                for ty in 0..g.kh {
                    for tx in 0..g.kw {
                        let (at, inside) = g.tap(fx, py, px, ty, tx);
                        let mut contribution = if kind == PoolKind::Avg {
                            scale
                        } else {
                            let xv = input_at(fx, at);
                            fx.b.ins().fmul(scale, xv)
                        };
                        if let Some(inside) = inside {
                            let zero = fx.f(0.0);
                            contribution = fx.b.ins().select(inside, contribution, zero);
                        }
                        let at = fx.b.ins().iadd(at, dsrc_off);
                        fx.add_to(F32, dsrc, at, 0, contribution);
                    }
                }
            }
        }
    });
}

/// `out[k, r, x] = Σ_ci Σ_ky Σ_kx w(k, ci, ky, kx) · in[ci, r·row_step + ky, x + kx]`
/// for `outs` output channels at once and whole output rows of `vectors`
/// f32x4, stride 1 along x. A row is cut into blocks of up to
/// `MAX_ROW_VECTORS`; the `outs × block` accumulators share every input
/// load and every broadcast weight. Used by the forward conv and, with the
/// kernel flipped, for the input gradient.
#[derive(Debug, Clone, Copy)]
struct RowCorrelation {
    in_channels: usize,
    in_plane: usize,
    in_row: usize,
    kh: usize,
    kw: usize,
    rows: usize,
    row_step: usize,
    vectors: usize,
    /// Input row of output row 0, and input column of output column 0.
    row_offset: usize,
    col_offset: usize,
}

/// Accumulators kept live at once: 16 xmm registers hold them, the
/// broadcast weights and the loaded input vector.
const ACCUMULATOR_BUDGET: usize = 10;

impl RowCorrelation {
    /// How many output channels to compute together.
    fn channel_block(&self) -> usize {
        (ACCUMULATOR_BUDGET / self.vectors.min(MAX_ROW_VECTORS)).max(1)
    }
}

/// `init(k)` gives the initial accumulator of output channel k of the
/// block, `weight(k, ci, ky, kx)` the index of its weight, and
/// `store(k, acc, row, col)` consumes the finished vector.
type InitFn<'f> = dyn Fn(&mut Fx, usize) -> Value + 'f;
type WeightFn<'f> = dyn Fn(&mut Fx, usize, Value, usize, usize) -> Value + 'f;
type StoreFn<'f> = dyn Fn(&mut Fx, usize, Value, Value, usize) + 'f;

#[allow(clippy::too_many_arguments)]
fn emit_row_correlation(
    fx: &mut Fx,
    rc: RowCorrelation,
    outs: usize,
    input: Value,
    in_base: Value,
    w: Value,
    init: &InitFn,
    weight: &WeightFn,
    store: &StoreFn,
) {
    fx.for_range(0, rc.rows as i64, 1, |fx, r| {
        let row = fx.mul_add(r, rc.row_step as i64, rc.row_offset as i64);
        let mut first = 0;
        while first < rc.vectors {
            let count = (rc.vectors - first).min(MAX_ROW_VECTORS);
            let mut accs = Vec::new();
            for k in 0..outs {
                let start = init(fx, k);
                accs.extend((0..count).map(|_| fx.var(F32X4, start)));
            }
            fx.for_range(0, rc.in_channels as i64, 1, |fx, ci| {
                let plane = fx.b.ins().imul_imm_s(ci, rc.in_plane as i64);
                let plane = fx.b.ins().iadd(plane, in_base);
                for ky in 0..rc.kh {
                    let rr = fx.mul_add(row, rc.in_row as i64, (ky * rc.in_row) as i64);
                    let base = fx.b.ins().iadd(plane, rr);
                    for kx in 0..rc.kw {
                        let ws: Vec<Value> = (0..outs)
                            .map(|k| {
                                let wi = weight(fx, k, ci, ky, kx);
                                let wv = fx.load(F32, w, wi, 0);
                                fx.splat(wv)
                            })
                            .collect();
                        for v in 0..count {
                            let xv = fx.load(F32X4, input, base, (rc.col_offset + (first + v) * LANES + kx) as i64);
                            for (k, wv) in ws.iter().enumerate() {
                                let acc = accs[k * count + v];
                                let a = fx.b.use_var(acc);
                                let a = fx.fma(xv, *wv, a);
                                fx.b.def_var(acc, a);
                            }
                        }
                    }
                }
            });
            for k in 0..outs {
                for v in 0..count {
                    let a = fx.b.use_var(accs[k * count + v]);
                    store(fx, k, a, r, (first + v) * LANES);
                }
            }
            first += count;
        }
    });
}

/// Run `body(first, count)` over `0..total` in blocks of `block`
/// (a run-time loop), then the rest one by one.
fn for_blocks(fx: &mut Fx, total: usize, block: usize, mut body: impl FnMut(&mut Fx, Value, usize)) {
    let main = total / block * block;
    if block > 1 {
        fx.for_range(0, main as i64, block as i64, |fx, first| body(fx, first, block));
        fx.for_range(main as i64, total as i64, 1, |fx, first| body(fx, first, 1));
    } else {
        fx.for_range(0, total as i64, 1, |fx, first| body(fx, first, 1));
    }
}

/// A fused pool's geometry over the conv output in the scratch plane (rows
/// of ow4); `ph`, `pw` come from the plan's stage output.
pub fn fused_pool_geom(g: &PaddedConv, pool: &Pool, ph: usize, pw: usize) -> PoolWindow {
    PoolWindow::new(pool, g.oh, g.ow, g.ow4, ph, pw)
}

/// Argument slots of the forward kernel.
pub mod fwd {
    pub const XPAD: usize = 0;
    pub const WEIGHT: usize = 1;
    pub const BIAS: usize = 2;
    pub const Y: usize = 3;
    /// Training, average/L2 pooling: the activated conv output.
    pub const KEEP: usize = 4;
    /// Training, max pooling: scratch-plane index of each maximum.
    pub const ARGMAX: usize = 5;
    pub const SCRATCH: usize = 6;
}

/// Forward of a conv stage over the batch.
/// `pool`: the fused pool and its geometry over the scratch plane (from
/// the plan's output shape; see [`fused_pool_geom`]).
pub fn emit_forward(fx: &mut Fx, g: PaddedConv, activation: Activation, bias: bool, pool: Option<(&Pool, PoolWindow)>, train: bool) {
    let (pool, pool_geom) = (pool.map(|p| p.0), pool.map(|p| p.1));
    let xpad = fx.arg(fwd::XPAD);
    let w = fx.arg(fwd::WEIGHT);
    let b = fx.arg(fwd::BIAS);
    let y = fx.arg(fwd::Y);
    let keep = fx.arg(fwd::KEEP);
    let argmax = fx.arg(fwd::ARGMAX);
    let scratch = fx.arg(fwd::SCRATCH);
    let batch = fx.batch;
    let out_plane = pool_geom.map_or(g.oh * g.ow, |p| p.ph * p.pw);
    let block = forward_channel_block(&g);
    fx.for_to(0, batch, 1, |fx, n| {
        let xbase = fx.mul_add(n, g.padded_len() as i64, 0);
        for_blocks(fx, g.f, block, |fx, f0, count| {
            emit_planes(fx, g, activation, bias, xpad, xbase, w, b, f0, count, scratch);
            for k in 0..count {
                // Epilogue: filter f0 + k's plane is at k·plane4 in `scratch` (rows of ow4).
                let f = fx.b.ins().iadd_imm_s(f0, k as i64);
                let src_off = fx.int((k * g.plane4()) as i64);
                let out_off = fx.b.ins().imul_imm_s(n, (g.f * out_plane) as i64);
                let fo = fx.b.ins().imul_imm_s(f, out_plane as i64);
                let out_off = fx.b.ins().iadd(out_off, fo);
                match (pool, pool_geom) {
                    (Some(p), Some(pg)) => {
                        emit_pool_plane(fx, p.kind, pg, scratch, src_off, y, out_off, (train && p.kind == PoolKind::Max).then_some(argmax));
                        if train && p.kind != PoolKind::Max {
                            let keep_off = fx.b.ins().imul_imm_s(n, (g.f * g.oh * g.ow) as i64);
                            let fk = fx.b.ins().imul_imm_s(f, (g.oh * g.ow) as i64);
                            let keep_off = fx.b.ins().iadd(keep_off, fk);
                            copy_plane(fx, g, scratch, src_off, keep, keep_off);
                        }
                    }
                    _ => copy_plane(fx, g, scratch, src_off, y, out_off),
                }
            }
        });
    });
}

/// Filters computed together by the forward kernel (1 off the vector path).
pub fn forward_channel_block(g: &PaddedConv) -> usize {
    if g.vector() { forward_correlation(g).channel_block().min(g.f) } else { 1 }
}

fn forward_correlation(g: &PaddedConv) -> RowCorrelation {
    RowCorrelation {
        in_channels: g.c,
        in_plane: g.hp * g.wp,
        in_row: g.wp,
        kh: g.kh,
        kw: g.kw,
        rows: g.oh,
        row_step: g.sh,
        vectors: g.ow4 / LANES,
        row_offset: 0,
        col_offset: 0,
    }
}

/// scratch (rows of ow4, from `src_off`) → dst (rows of ow) at `dst_off`.
fn copy_plane(fx: &mut Fx, g: PaddedConv, scratch: Value, src_off: Value, dst: Value, dst_off: Value) {
    fx.for_range(0, g.oh as i64, 1, |fx, oy| {
        let s = fx.mul_add(oy, g.ow4 as i64, 0);
        let s = fx.b.ins().iadd(s, src_off);
        let d = fx.mul_add(oy, g.ow as i64, 0);
        let d = fx.b.ins().iadd(d, dst_off);
        for ox in 0..g.ow {
            let v = fx.load(F32, scratch, s, ox as i64);
            fx.store(v, dst, d, ox as i64);
        }
    });
}

/// The activated output planes of filters `f0 .. f0 + count` into
/// `scratch` (plane k at k·plane4, rows of ow4; the columns past `ow` hold
/// values the epilogue never reads). Off the vector path `count` is 1.
#[allow(clippy::too_many_arguments)]
fn emit_planes(
    fx: &mut Fx,
    g: PaddedConv,
    activation: Activation,
    bias: bool,
    xpad: Value,
    xbase: Value,
    w: Value,
    b: Value,
    f0: Value,
    count: usize,
    scratch: Value,
) {
    if g.vector() {
        let init = |fx: &mut Fx, k: usize| {
            if bias {
                let bv = fx.load(F32, b, f0, k as i64);
                fx.splat(bv)
            } else {
                fx.fv(0.0)
            }
        };
        let weight = |fx: &mut Fx, k: usize, ci: Value, ky: usize, kx: usize| {
            let zero = fx.int(0);
            let f = fx.b.ins().iadd_imm_s(f0, k as i64);
            g.w_index(fx, f, zero, zero, ci, ky, kx)
        };
        let store = |fx: &mut Fx, k: usize, acc: Value, row: Value, col: usize| {
            let a = fx.activation(activation, acc, true);
            let out = fx.mul_add(row, g.ow4 as i64, (k * g.plane4()) as i64);
            fx.store(a, scratch, out, col as i64);
        };
        emit_row_correlation(fx, forward_correlation(&g), count, xpad, xbase, w, &init, &weight, &store);
        return;
    }
    let f = f0;
    // Strided or local: one scalar accumulator per output.
    fx.for_range(0, g.oh as i64, 1, |fx, oy| {
        fx.for_range(0, g.ow as i64, 1, |fx, ox| {
            let init = if bias {
                let bi = if g.local { g.local_bank(fx, f, oy, ox) } else { f };
                fx.load(F32, b, bi, 0)
            } else {
                fx.f(0.0)
            };
            let acc = fx.var(F32, init);
            let row = fx.b.ins().imul_imm_s(oy, g.sh as i64);
            let col = fx.b.ins().imul_imm_s(ox, g.sw as i64);
            fx.for_range(0, g.c as i64, 1, |fx, ci| {
                for ky in 0..g.kh {
                    let r = fx.b.ins().iadd_imm_s(row, ky as i64);
                    let base = g.x_index(fx, ci, r, col);
                    let base = fx.b.ins().iadd(base, xbase);
                    for kx in 0..g.kw {
                        let wi = g.w_index(fx, f, oy, ox, ci, ky, kx);
                        let wv = fx.load(F32, w, wi, 0);
                        let xv = fx.load(F32, xpad, base, kx as i64);
                        let a = fx.b.use_var(acc);
                        let a = fx.fma(xv, wv, a);
                        fx.b.def_var(acc, a);
                    }
                }
            });
            let a = fx.b.use_var(acc);
            let a = fx.activation(activation, a, false);
            let out = fx.mul_add(oy, g.ow4 as i64, 0);
            let out = fx.b.ins().iadd(out, ox);
            fx.store(a, scratch, out, 0);
        });
    });
}

/// Argument slots of the backward kernel.
pub mod bwd {
    pub const XPAD: usize = 0;
    pub const WEIGHT: usize = 1;
    pub const DY: usize = 2;
    pub const Y: usize = 3;
    pub const KEEP: usize = 4;
    pub const ARGMAX: usize = 5;
    /// `F × oh × ow4` gradient at the pre-activation conv output.
    pub const DZ: usize = 6;
    pub const GW: usize = 7;
    pub const GB: usize = 8;
    /// Gradient of the padded input (zeroed by the caller, cropped after).
    pub const DXPAD: usize = 9;
    /// One image's zero-padded dz for the stride-1 input gradient (see `dzpad_dims`).
    pub const DZPAD: usize = 10;
}

/// Backward of a conv stage over the batch: accumulates the weight and bias
/// gradients and the padded input gradient.
pub fn emit_backward(fx: &mut Fx, g: PaddedConv, activation: Activation, bias: bool, pool: Option<(&Pool, PoolWindow)>) {
    let (pool, pool_geom) = (pool.map(|p| p.0), pool.map(|p| p.1));
    let xpad = fx.arg(bwd::XPAD);
    let w = fx.arg(bwd::WEIGHT);
    let dy = fx.arg(bwd::DY);
    let y = fx.arg(bwd::Y);
    let keep = fx.arg(bwd::KEEP);
    let argmax = fx.arg(bwd::ARGMAX);
    let dz = fx.arg(bwd::DZ);
    let gw = fx.arg(bwd::GW);
    let gb = fx.arg(bwd::GB);
    let dxpad = fx.arg(bwd::DXPAD);
    let dzpad = fx.arg(bwd::DZPAD);
    let batch = fx.batch;
    let plane4 = g.plane4();
    let out_plane = pool_geom.map_or(g.oh * g.ow, |p| p.ph * p.pw);
    fx.for_to(0, batch, 1, |fx, n| {
        // dz ← 0 (the padded tail columns stay 0, so vector loops may read them).
        let zero_v = fx.fv(0.0);
        fx.for_range(0, (g.f * plane4 / LANES) as i64, 1, |fx, i| {
            let i4 = fx.b.ins().imul_imm_s(i, LANES as i64);
            fx.store(zero_v, dz, i4, 0);
        });
        // dz at the conv output (pre-activation).
        fx.for_range(0, g.f as i64, 1, |fx, f| {
            let dz_off = fx.b.ins().imul_imm_s(f, plane4 as i64);
            let o_off = fx.mul_add(n, (g.f * out_plane) as i64, 0);
            let fo = fx.b.ins().imul_imm_s(f, out_plane as i64);
            let o_off = fx.b.ins().iadd(o_off, fo);
            let k_off = fx.mul_add(n, (g.f * g.oh * g.ow) as i64, 0);
            let fk = fx.b.ins().imul_imm_s(f, (g.oh * g.ow) as i64);
            let k_off = fx.b.ins().iadd(k_off, fk);
            match (pool, pool_geom) {
                (Some(p), Some(pg)) if p.kind == PoolKind::Max => {
                    // The activation is monotone: its output at the maximum is the pooled value.
                    fx.for_range(0, out_plane as i64, 1, |fx, o| {
                        let oi = fx.b.ins().iadd(o, o_off);
                        let gy = fx.load(F32, dy, oi, 0);
                        let yv = fx.load(F32, y, oi, 0);
                        let d = fx.activation_derivative(activation, yv, false);
                        let gz = fx.b.ins().fmul(gy, d);
                        let at = fx.load(I32, argmax, oi, 0);
                        let at = fx.b.ins().uextend(super::emit::I64, at);
                        let at = fx.b.ins().iadd(at, dz_off);
                        fx.add_to(F32, dz, at, 0, gz);
                    });
                    let _ = pg;
                }
                (Some(p), Some(pg)) => {
                    // Through the pool into dz (rows of ow4), then the activation.
                    // The pool's input is the kept activation plane (rows of ow).
                    let input_at = |fx: &mut Fx, at4: Value| {
                        let row = fx.b.ins().udiv_imm_u(at4, g.ow4 as i64);
                        let col = fx.b.ins().urem_imm_u(at4, g.ow4 as i64);
                        let k = fx.mul_add(row, g.ow as i64, 0);
                        let k = fx.b.ins().iadd(k, col);
                        let k = fx.b.ins().iadd(k, k_off);
                        fx.load(F32, keep, k, 0)
                    };
                    emit_pool_plane_backward(fx, p.kind, pg, dy, y, argmax, o_off, &input_at, dz, dz_off);
                    fx.for_range(0, g.oh as i64, 1, |fx, oy| {
                        let r4 = fx.mul_add(oy, g.ow4 as i64, 0);
                        let r4 = fx.b.ins().iadd(r4, dz_off);
                        let r = fx.mul_add(oy, g.ow as i64, 0);
                        let r = fx.b.ins().iadd(r, k_off);
                        for ox in 0..g.ow {
                            let yv = fx.load(F32, keep, r, ox as i64);
                            let d = fx.activation_derivative(activation, yv, false);
                            let gz = fx.load(F32, dz, r4, ox as i64);
                            let v = fx.b.ins().fmul(gz, d);
                            fx.store(v, dz, r4, ox as i64);
                        }
                    });
                }
                _ => {
                    fx.for_range(0, g.oh as i64, 1, |fx, oy| {
                        let r4 = fx.mul_add(oy, g.ow4 as i64, 0);
                        let r4 = fx.b.ins().iadd(r4, dz_off);
                        let r = fx.mul_add(oy, g.ow as i64, 0);
                        let r = fx.b.ins().iadd(r, o_off);
                        for ox in 0..g.ow {
                            let gy = fx.load(F32, dy, r, ox as i64);
                            let yv = fx.load(F32, y, r, ox as i64);
                            let d = fx.activation_derivative(activation, yv, false);
                            let v = fx.b.ins().fmul(gy, d);
                            fx.store(v, dz, r4, ox as i64);
                        }
                    });
                }
            }
            if bias {
                emit_bias_grad(fx, g, dz, dz_off, gb, f);
            }
        });
        let xbase = fx.mul_add(n, g.padded_len() as i64, 0);
        emit_weight_and_input_grads(fx, g, xpad, xbase, w, dz, gw, dxpad, dzpad);
    });
}

fn emit_bias_grad(fx: &mut Fx, g: PaddedConv, dz: Value, dz_off: Value, gb: Value, f: Value) {
    if g.local {
        // One bias per filter and position: gb[f, oy, ox] += dz.
        let b_off = fx.b.ins().imul_imm_s(f, (g.oh * g.ow) as i64);
        fx.for_range(0, g.oh as i64, 1, |fx, oy| {
            let r4 = fx.mul_add(oy, g.ow4 as i64, 0);
            let r4 = fx.b.ins().iadd(r4, dz_off);
            let r = fx.mul_add(oy, g.ow as i64, 0);
            let r = fx.b.ins().iadd(r, b_off);
            for ox in 0..g.ow {
                let v = fx.load(F32, dz, r4, ox as i64);
                fx.add_to(F32, gb, r, ox as i64, v);
            }
        });
        return;
    }
    let zero = fx.fv(0.0);
    let acc = fx.var(F32X4, zero);
    fx.for_range(0, (g.plane4() / LANES) as i64, 1, |fx, i| {
        let i4 = fx.b.ins().imul_imm_s(i, LANES as i64);
        let i4 = fx.b.ins().iadd(i4, dz_off);
        let v = fx.load(F32X4, dz, i4, 0);
        let a = fx.b.use_var(acc);
        let a = fx.b.ins().fadd(a, v);
        fx.b.def_var(acc, a);
    });
    let a = fx.b.use_var(acc);
    let s = fx.hsum(a);
    fx.add_to(F32, gb, f, 0, s);
}

/// gw += dz ⋆ x and dxpad += wᵀ ⋆ dz for one image.
#[allow(clippy::too_many_arguments)]
fn emit_weight_and_input_grads(
    fx: &mut Fx,
    g: PaddedConv,
    xpad: Value,
    xbase: Value,
    w: Value,
    dz: Value,
    gw: Value,
    dxpad: Value,
    dzpad: Value,
) {
    let plane4 = g.plane4();
    if g.vector() {
        emit_weight_grads_vector(fx, g, xpad, xbase, dz, gw);
        if g.sh == 1 {
            emit_input_grads_transposed(fx, g, w, dz, dzpad, dxpad, xbase);
            return;
        }
        // Strided rows: scatter each dz row into the input gradient.
        let vectors = g.ow4 / LANES;
        fx.for_range(0, g.f as i64, 1, |fx, f| {
            let dz_off = fx.b.ins().imul_imm_s(f, plane4 as i64);
            fx.for_range(0, g.c as i64, 1, |fx, ci| {
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let zero = fx.int(0);
                        let wi = g.w_index(fx, f, zero, zero, ci, ky, kx);
                        let wv = fx.load(F32, w, wi, 0);
                        let wv = fx.splat(wv);
                        fx.for_range(0, g.oh as i64, 1, |fx, oy| {
                            let r4 = fx.mul_add(oy, g.ow4 as i64, 0);
                            let r4 = fx.b.ins().iadd(r4, dz_off);
                            let row = fx.mul_add(oy, g.sh as i64, ky as i64);
                            let zero = fx.int(0);
                            let xi = g.x_index(fx, ci, row, zero);
                            let xi = fx.b.ins().iadd(xi, xbase);
                            for v in 0..vectors {
                                let dzv = fx.load(F32X4, dz, r4, (v * LANES) as i64);
                                let dxv = fx.load(F32X4, dxpad, xi, (v * LANES + kx) as i64);
                                let dxv = fx.fma(dzv, wv, dxv);
                                fx.store(dxv, dxpad, xi, (v * LANES + kx) as i64);
                            }
                        });
                    }
                }
            });
        });
        return;
    }
    fx.for_range(0, g.f as i64, 1, |fx, f| {
        let dz_off = fx.b.ins().imul_imm_s(f, plane4 as i64);
        fx.for_range(0, g.oh as i64, 1, |fx, oy| {
            fx.for_range(0, g.ow as i64, 1, |fx, ox| {
                let zi = fx.mul_add(oy, g.ow4 as i64, 0);
                let zi = fx.b.ins().iadd(zi, ox);
                let zi = fx.b.ins().iadd(zi, dz_off);
                let gz = fx.load(F32, dz, zi, 0);
                let row = fx.b.ins().imul_imm_s(oy, g.sh as i64);
                let col = fx.b.ins().imul_imm_s(ox, g.sw as i64);
                fx.for_range(0, g.c as i64, 1, |fx, ci| {
                    for ky in 0..g.kh {
                        let r = fx.b.ins().iadd_imm_s(row, ky as i64);
                        let xi = g.x_index(fx, ci, r, col);
                        let xi = fx.b.ins().iadd(xi, xbase);
                        for kx in 0..g.kw {
                            let wi = g.w_index(fx, f, oy, ox, ci, ky, kx);
                            let xv = fx.load(F32, xpad, xi, kx as i64);
                            let gwv = fx.b.ins().fmul(gz, xv);
                            fx.add_to(F32, gw, wi, 0, gwv);
                            let wv = fx.load(F32, w, wi, 0);
                            let dxv = fx.b.ins().fmul(gz, wv);
                            fx.add_to(F32, dxpad, xi, kx as i64, dxv);
                        }
                    }
                });
            });
        });
    });
}

/// Most weight-gradient accumulators (one per kernel column) at a time.
const MAX_TAP_ACCUMULATORS: usize = 8;

/// gw[f, ci, ky, kx] += Σ_{oy, ox} dz[f, oy, ox] · x[ci, oy·sh + ky, ox + kx]:
/// a block of filters × kernel columns is accumulated at once, so each
/// loaded input vector serves every filter of the block and each loaded dz
/// vector every kernel column.
fn emit_weight_grads_vector(fx: &mut Fx, g: PaddedConv, xpad: Value, xbase: Value, dz: Value, gw: Value) {
    let vectors = g.ow4 / LANES;
    let taps = g.kw.min(MAX_TAP_ACCUMULATORS);
    let filters = (ACCUMULATOR_BUDGET / taps).max(1).min(g.f);
    for_blocks(fx, g.f, filters, |fx, f0, fcount| {
        fx.for_range(0, g.c as i64, 1, |fx, ci| {
            for ky in 0..g.kh {
                let mut first = 0;
                while first < g.kw {
                    let count = (g.kw - first).min(MAX_TAP_ACCUMULATORS);
                    let zero = fx.fv(0.0);
                    let accs: Vec<_> = (0..fcount * count).map(|_| fx.var(F32X4, zero)).collect();
                    fx.for_range(0, g.oh as i64, 1, |fx, oy| {
                        let r4 = fx.mul_add(oy, g.ow4 as i64, 0);
                        let dz_row = fx.mul_add(f0, g.plane4() as i64, 0);
                        let dz_row = fx.b.ins().iadd(dz_row, r4);
                        let row = fx.mul_add(oy, g.sh as i64, ky as i64);
                        let zero = fx.int(0);
                        let xi = g.x_index(fx, ci, row, zero);
                        let xi = fx.b.ins().iadd(xi, xbase);
                        for v in 0..vectors {
                            let dzs: Vec<Value> =
                                (0..fcount).map(|k| fx.load(F32X4, dz, dz_row, (k * g.plane4() + v * LANES) as i64)).collect();
                            for t in 0..count {
                                let xv = fx.load(F32X4, xpad, xi, (v * LANES + first + t) as i64);
                                for (k, dzv) in dzs.iter().enumerate() {
                                    let acc = accs[k * count + t];
                                    let a = fx.b.use_var(acc);
                                    let a = fx.fma(*dzv, xv, a);
                                    fx.b.def_var(acc, a);
                                }
                            }
                        }
                    });
                    for k in 0..fcount {
                        let f = fx.b.ins().iadd_imm_s(f0, k as i64);
                        for t in 0..count {
                            let zero = fx.int(0);
                            let wi = g.w_index(fx, f, zero, zero, ci, ky, first + t);
                            let a = fx.b.use_var(accs[k * count + t]);
                            let total = fx.hsum(a);
                            fx.add_to(F32, gw, wi, 0, total);
                        }
                    }
                    first += count;
                }
            }
        });
    });
}

/// Rows and row length of the zero-padded dz plane used for the input
/// gradient at stride 1: dz shifted by (kh − 1, kw − 1), zeros around.
pub fn dzpad_dims(g: &PaddedConv) -> (usize, usize) {
    (g.oh + 2 * (g.kh - 1), (g.wp + g.kw - 1).div_ceil(LANES) * LANES)
}

/// At stride 1 the input gradient is a forward correlation of the padded dz
/// with the kernel flipped and its channel axes swapped:
/// `dx[ci, r, x] = Σ_f Σ_ky Σ_kx w[f, ci, kh−1−ky, kw−1−kx] · dzpad[f, r + ky, x + kx]`.
/// It writes whole rows of the padded input gradient.
fn emit_input_grads_transposed(fx: &mut Fx, g: PaddedConv, w: Value, dz: Value, dzpad: Value, dxpad: Value, xbase: Value) {
    let (zh, zw) = dzpad_dims(&g);
    let zplane = zh * zw;
    // dzpad ← 0, then the valid dz values at (oy + kh − 1, ox + kw − 1).
    let zero = fx.fv(0.0);
    fx.for_range(0, (g.f * zplane / LANES) as i64, 1, |fx, i| {
        let i4 = fx.b.ins().imul_imm_s(i, LANES as i64);
        fx.store(zero, dzpad, i4, 0);
    });
    fx.for_range(0, g.f as i64, 1, |fx, f| {
        fx.for_range(0, g.oh as i64, 1, |fx, oy| {
            let src = fx.mul_add(f, g.plane4() as i64, 0);
            let src_row = fx.mul_add(oy, g.ow4 as i64, 0);
            let src = fx.b.ins().iadd(src, src_row);
            let dst = fx.mul_add(f, zplane as i64, ((g.kh - 1) * zw + g.kw - 1) as i64);
            let dst_row = fx.mul_add(oy, zw as i64, 0);
            let dst = fx.b.ins().iadd(dst, dst_row);
            for ox in 0..g.ow {
                let v = fx.load(F32, dz, src, ox as i64);
                fx.store(v, dzpad, dst, ox as i64);
            }
        });
    });
    // Only the rows and whole vectors of columns that the crop keeps.
    let first_col = g.pad[1] / LANES * LANES;
    let rc = RowCorrelation {
        in_channels: g.f,
        in_plane: zplane,
        in_row: zw,
        kh: g.kh,
        kw: g.kw,
        rows: g.h,
        row_step: 1,
        vectors: (g.pad[1] + g.w - first_col).div_ceil(LANES),
        row_offset: g.pad[0],
        col_offset: first_col,
    };
    // Input channels of the image are the output channels here.
    for_blocks(fx, g.c, rc.channel_block().min(g.c), |fx, c0, count| {
        let init = |fx: &mut Fx, _k: usize| fx.fv(0.0);
        let weight = |fx: &mut Fx, k: usize, f: Value, ky: usize, kx: usize| {
            let zero = fx.int(0);
            let ci = fx.b.ins().iadd_imm_s(c0, k as i64);
            g.w_index(fx, f, zero, zero, ci, g.kh - 1 - ky, g.kw - 1 - kx)
        };
        let store = |fx: &mut Fx, k: usize, acc: Value, r: Value, col: usize| {
            let zero = fx.int(0);
            let ci = fx.b.ins().iadd_imm_s(c0, k as i64);
            let row = fx.b.ins().iadd_imm_s(r, g.pad[0] as i64);
            let at = g.x_index(fx, ci, row, zero);
            let at = fx.b.ins().iadd(at, xbase);
            fx.store(acc, dxpad, at, (first_col + col) as i64);
        };
        let zero = fx.int(0);
        emit_row_correlation(fx, rc, count, dzpad, zero, w, &init, &weight, &store);
    });
}

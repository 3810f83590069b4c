//! Conv and dense stages as calls into the runtime's kernels: the GEMM
//! microkernels and the convs built on them.
//!
//! Cranelift's x86-64 backend emits 128-bit vectors only; the runtime's
//! microkernels, compiled by rustc for AVX-512 and AVX2+FMA and chosen at
//! run time, do 2–4× the work per instruction. So the GEMM at the heart of
//! each stage is a call into the runtime (`convc_gemm_packed` over weights
//! packed once per change; for conv weight gradients `convc_weight_grad`;
//! dense ones the executor forms over the whole batch), as are the data movements
//! that gain most from 512-bit vectors — im2col, the 2×2 max pool, the
//! dense layers' transposes (`kernels::im2col`, `kernels::pool`) — and, for the convs
//! `winograd::applies` to, the whole Winograd conv (`convc_winograd`, and
//! in backward `convc_winograd_grad` and its `_finish`); for the convs over
//! few channels `direct::applies` to, the direct conv (`convc_direct_conv`;
//! `convc_weight_grad` takes their gradient the same way); for the other
//! square 2–5 kernels `filter_lanes` takes (`ConvGeom::filter_lanes`), the
//! conv with the filters in the lanes (`convc_lanes_conv`, with its 2×2 max
//! pool; in backward `convc_lanes_backward` and `convc_lanes_grad_finish`);
//! and the bias gradient's sums (`convc_row_sums`). The JIT specialises
//! everything around them to the stage's constants: the loop over the
//! chunk's images, the epilogue — activations other than ReLU (which the
//! microkernel applies in registers), other pools with their argmax, what
//! training keeps — and in backward the pool's and activation's gradient.
//!
//! Layouts are the runtime's own ([`ConvGeom`]): a stage's kept state and
//! argmax are what the shared executor sizes, so the JIT's stages drop into
//! `convc_runtime::compiled::Network` beside generated ones.

use convc_runtime::compiled::{ConvGeom, DenseGeom, GEMV_MAX_BATCH};
use convc_runtime::kernels::filter_lanes;
use convc_runtime::kernels::gemm::reads_rows_in_place;
use convc_runtime::layer::Pool;
use convc_runtime::{Activation, PoolKind};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value};

use super::conv::{InputAt, PoolWindow, emit_pool_plane, emit_pool_plane_backward};
use super::emit::{At, F32, F32X4, Fx, I32, I64};

/// Argument slots of a conv stage's forward kernel.
pub mod conv_fwd {
    pub const X: usize = 0;
    /// The weight's `PackedA` (filters × taps).
    pub const PACKED: usize = 1;
    /// Null without a bias.
    pub const BIAS: usize = 2;
    pub const Y: usize = 3;
    pub const KEEP: usize = 4;
    pub const ARGMAX: usize = 5;
    /// Scratch: the zero-bordered image, the im2col matrix, the conv plane.
    pub const XPAD: usize = 6;
    pub const COLS: usize = 7;
    pub const PLANE: usize = 8;
    /// The stage's `ConvGeom`, which the runtime's conv kernels read.
    pub const GEOM: usize = 9;
    pub const SLOTS: usize = 10;
}

/// Argument slots of a conv stage's backward kernel.
pub mod conv_bwd {
    pub const X: usize = 0;
    pub const Y: usize = 1;
    pub const KEEP: usize = 2;
    pub const ARGMAX: usize = 3;
    /// The weight's transpose as a `PackedA` (taps × filters).
    pub const PACKED_T: usize = 4;
    pub const DY: usize = 5;
    /// Null when the input gradient is not wanted.
    pub const DX: usize = 6;
    pub const GW: usize = 7;
    /// Null without a bias.
    pub const GB: usize = 8;
    /// Scratch: as forward, plus the gradient at the conv output (`DZ`)
    /// and at the im2col matrix (`DCOLS`).
    pub const XPAD: usize = 9;
    pub const COLS: usize = 10;
    pub const DZ: usize = 11;
    pub const DCOLS: usize = 12;
    /// The stage's `ConvGeom`, which the runtime's conv kernels read.
    pub const GEOM: usize = 13;
    pub const SLOTS: usize = 14;
}

/// Argument slots of a dense stage's kernels.
pub mod dense_fwd {
    pub const X: usize = 0;
    pub const PACKED: usize = 1;
    pub const BIAS: usize = 2;
    pub const Y: usize = 3;
    /// Scratch: the chunk's inputs and outputs transposed (one column per image).
    pub const XT: usize = 4;
    pub const YT: usize = 5;
    /// The weight itself (row-major), for the dot products of small chunks.
    pub const WEIGHT: usize = 6;
    pub const SLOTS: usize = 7;
}

pub mod dense_bwd {
    pub const Y: usize = 0;
    pub const PACKED_T: usize = 1;
    pub const DY: usize = 2;
    /// Null when the input gradient is not wanted.
    pub const DX: usize = 3;
    /// Null without a bias.
    pub const GB: usize = 4;
    /// Written: dz (images × units), from which the executor forms the
    /// weight gradient over the whole batch.
    pub const DZ: usize = 5;
    /// Scratch: dz transposed and dx transposed.
    pub const DZT: usize = 6;
    pub const DXT: usize = 7;
    pub const SLOTS: usize = 8;
}

/// Scratch lengths of a conv stage: `[xpad, cols, plane, dcols]`.
pub fn conv_scratch(g: &ConvGeom) -> [usize; 4] {
    // A Winograd conv gathers nothing (the runtime keeps its own buffers);
    // its backward sums its weight gradient in `dcols`.
    if let Some(d) = g.winograd() {
        return [0, 0, g.conv_len(), d.grad_len()];
    }
    let xpad = g.im2col().xpad_len();
    let cols = if g.pointwise() { 0 } else { g.im2col().cols_len() };
    // A weight gradient summed with the filters in the lanes keeps its sums
    // in `cols` (which only the forward's im2col uses then).
    let sums = g.filter_lanes().map_or(0, |d| filter_lanes::grad_len(&d, g.conv.filters));
    [xpad, cols.max(sums), g.conv_len(), cols]
}

/// The fused pool over a conv plane (rows of `ow`).
fn pool_geom(g: &ConvGeom) -> Option<(Pool, PoolWindow)> {
    g.pool.map(|p| (p.pool, PoolWindow::new(&p.pool, p.h, p.w, p.w, p.oh, p.ow)))
}

/// `dst[j + dst_off] = src[j + src_off]` for `j < len` (pointers).
fn copy_run(fx: &mut Fx, src: Value, src_off: i64, dst: Value, dst_off: i64, len: usize) {
    fx.for_vectors(len, |fx, at, vector| {
        let v = fx.load_at(if vector { F32X4 } else { F32 }, src, at.plus(src_off));
        fx.store_at(v, dst, at.plus(dst_off));
    });
}

/// `ptr[j] = 0` for `j < len`.
fn zero_run(fx: &mut Fx, ptr: Value, len: usize) {
    let (zv, zs) = (fx.fv(0.0), fx.f(0.0));
    fx.for_vectors(len, |fx, at, vector| fx.store_at(if vector { zv } else { zs }, ptr, at));
}

/// The activation applied in place to `len` values at the pointer `ptr`.
fn activate_run(fx: &mut Fx, a: Activation, ptr: Value, len: usize) {
    fx.for_vectors(len, |fx, at, vector| {
        let v = fx.load_at(if vector { F32X4 } else { F32 }, ptr, at);
        let v = fx.activation(a, v, vector);
        fx.store_at(v, ptr, at);
    });
}

/// Whether the microkernel applies the activation itself.
fn in_registers(a: Activation) -> bool {
    matches!(a, Activation::Relu | Activation::None)
}

/// The im2col matrix of the image at the pointer `x`: the input itself for
/// a pointwise conv, else gathered into `cols` by the runtime's im2col
/// (16-wide masked row copies; Cranelift's vectors are 4 wide).
fn emit_cols(fx: &mut Fx, g: &ConvGeom, stage: Value, x: Value, xpad: Value, cols: Value) -> Value {
    if g.pointwise() {
        return x;
    }
    fx.im2col(stage, x, xpad, cols);
    cols
}

/// Whether a pool is the runtime's 2×2 max pool over the whole plane
/// stack, whose argmax indices count from the first plane (other pools are
/// emitted per plane, their indices counting from each plane).
pub(super) fn runtime_pool(pool: &Pool, pg: &PoolWindow) -> bool {
    pool.is_max_2x2() && pg.row_stride == pg.w
}

/// Pool the plane at the pointer `src` (rows of `pg.row_stride`) into the
/// pointer `dst` (rows of `pg.pw`), recording each maximum's plane index
/// at the pointer `argmax` when given. Without padding every tap is a
/// constant offset from its output row, and short rows are unrolled; with
/// padding, the general emitter ([`emit_pool_plane`]) checks each tap.
pub(super) fn emit_pool(fx: &mut Fx, kind: PoolKind, pg: PoolWindow, src: Value, dst: Value, argmax: Option<Value>) {
    if pg.has_padding() {
        let zero = fx.int(0);
        emit_pool_plane(fx, kind, pg, src, zero, dst, zero, argmax);
        return;
    }
    let rs = pg.row_stride;
    let window = (pg.kh * pg.kw) as f32;
    let row = |fx: &mut Fx, py: Value| {
        let first = fx.mul_add(py, (pg.sh * rs) as i64, 0);
        let s = fx.ptr_at(src, first);
        let o = fx.mul_add(py, pg.pw as i64, 0);
        (first, s, fx.ptr_at(dst, o), argmax.map(|a| fx.ptr_at(a, o)))
    };
    let output = |fx: &mut Fx, (first, s, d, a): (Value, Value, Value, Option<Value>), px: At| {
        // px.index (if any) is the output column; taps are constants from its first input.
        let base = px.index.map(|i| fx.mul_add(i, pg.sw as i64, 0));
        let x0 = px.offset * pg.sw as i64;
        let tap_at = At { index: base, offset: x0 };
        let mut best: Option<Value> = None;
        let mut best_at: Option<Value> = None;
        let mut sum = fx.f(0.0);
        for ty in 0..pg.kh {
            for tx in 0..pg.kw {
                let off = (ty * rs + tx) as i64;
                let v = fx.load_at(F32, s, tap_at.plus(off));
                match kind {
                    PoolKind::Max => match best {
                        None => {
                            best = Some(v);
                            best_at = a.map(|_| fx.int(off));
                        }
                        Some(bv) => {
                            // Greater, or NaN: a NaN propagates (the interpreter's rule).
                            let gt = fx.wins_max(v, bv);
                            best = Some(fx.b.ins().select(gt, v, bv));
                            if let Some(prev) = best_at {
                                let here = fx.int(off);
                                best_at = Some(fx.b.ins().select(gt, here, prev));
                            }
                        }
                    },
                    PoolKind::Avg => sum = fx.b.ins().fadd(sum, v),
                    PoolKind::L2 => sum = fx.fma(v, v, sum),
                }
            }
        }
        let out = match kind {
            PoolKind::Max => best.expect("a window has at least one tap"),
            PoolKind::Avg => {
                let k = fx.f(window);
                fx.b.ins().fdiv(sum, k)
            }
            PoolKind::L2 => fx.b.ins().sqrt(sum),
        };
        let o_at = At { index: px.index, offset: px.offset };
        fx.store_at(out, d, o_at);
        if let (Some(a), PoolKind::Max) = (a, kind) {
            // Plane index: the row's first input + the column + the tap.
            let tap = best_at.expect("recorded with the maximum");
            let at = fx.b.ins().iadd(first, tap);
            let at = fx.b.ins().iadd_imm_s(at, x0);
            let at = match base {
                Some(col) => fx.b.ins().iadd(at, col),
                None => at,
            };
            let at = fx.b.ins().ireduce(I32, at);
            fx.store_at(at, a, o_at);
        }
    };
    fx.for_range(0, pg.ph as i64, 1, |fx, py| {
        let r = row(fx, py);
        if pg.pw <= 16 {
            for px in 0..pg.pw {
                output(fx, r, At { index: None, offset: px as i64 });
            }
        } else {
            fx.for_range(0, pg.pw as i64, 1, |fx, px| output(fx, r, At { index: Some(px), offset: 0 }));
        }
    });
}

/// Forward of a (shared-weight) conv stage over the chunk's images.
pub fn emit_conv_forward(fx: &mut Fx, g: &ConvGeom, train: bool) {
    use conv_fwd::*;
    let [x, packed, bias, y, keep, argmax, xpad, cols, plane, stage] =
        [X, PACKED, BIAS, Y, KEEP, ARGMAX, XPAD, COLS, PLANE, GEOM].map(|k| fx.arg(k));
    let (in_len, out_len, conv_len, p, f) = (g.in_len(), g.out_len(), g.conv_len(), g.plane(), g.conv.filters);
    let pool = pool_geom(g);
    let relu = g.activation == Activation::Relu;
    // Decided here, at compile time on the machine that runs the code, as
    // the runtime decides how to pack the weights.
    let (wino, direct, lanes) = (g.winograd(), g.direct().is_some(), g.lanes_forward().is_some());
    let batch = fx.batch;
    fx.for_to(0, batch, 1, |fx, n| {
        let xn = fx.mul_add(n, in_len as i64, 0);
        let xn = fx.ptr_at(x, xn);
        let yn = fx.mul_add(n, out_len as i64, 0);
        let yn = fx.ptr_at(y, yn);
        // Inference through a direct conv and a 2×2 max pool: pooled in
        // registers, straight into the stage output.
        if direct && !train && pool.as_ref().is_some_and(|(pool, pg)| runtime_pool(pool, pg)) {
            fx.direct_conv(stage, [xn, packed, bias, yn], true);
            if !in_registers(g.activation) {
                activate_run(fx, g.activation, yn, out_len);
            }
            return;
        }
        // With the filters in the lanes and a 2×2 max pool: pooled in
        // registers, the maxima's indices alongside in training.
        let fused = in_registers(g.activation) && g.keep_len() == 0;
        if lanes && fused && pool.as_ref().is_some_and(|(pool, pg)| runtime_pool(pool, pg)) {
            let an = if train {
                let an = fx.mul_add(n, out_len as i64, 0);
                fx.ptr_at(argmax, an)
            } else {
                fx.int(0)
            };
            fx.lanes_conv(stage, [xn, packed, bias, yn, an], true);
            return;
        }
        // Without a pool the GEMM writes the stage output itself.
        let z = if pool.is_some() { plane } else { yn };
        if wino.is_some() {
            fx.winograd(stage, false, [xn, packed, bias, z]);
        } else if lanes {
            let null = fx.int(0);
            fx.lanes_conv(stage, [xn, packed, bias, z, null], false);
        } else if direct {
            fx.direct_conv(stage, [xn, packed, bias, z], false);
        } else {
            let b = emit_cols(fx, g, stage, xn, xpad, cols);
            let pv = fx.int(p as i64);
            fx.gemm_packed(packed, b, pv, pv, bias, relu, z, pv);
        }
        if !in_registers(g.activation) {
            activate_run(fx, g.activation, z, conv_len);
        }
        let Some((pool, pg)) = pool else { return };
        let record = train && pool.kind == PoolKind::Max;
        let an = record.then(|| {
            let an = fx.mul_add(n, out_len as i64, 0);
            fx.ptr_at(argmax, an)
        });
        if runtime_pool(&pool, &pg) {
            let an = an.unwrap_or_else(|| fx.int(0));
            let planes = fx.int(f as i64);
            fx.max_pool_2x2(plane, planes, [g.oh, g.ow], yn, an);
        } else {
            fx.for_range(0, f as i64, 1, |fx, fi| {
                let s = fx.mul_add(fi, p as i64, 0);
                let s = fx.ptr_at(plane, s);
                let o = fx.mul_add(fi, (pg.ph * pg.pw) as i64, 0);
                let d = fx.ptr_at(yn, o);
                let a = an.map(|an| fx.ptr_at(an, o));
                emit_pool(fx, pool.kind, pg, s, d, a);
            });
        }
        if train && g.keep_len() > 0 {
            let kn = fx.mul_add(n, conv_len as i64, 0);
            let kn = fx.ptr_at(keep, kn);
            copy_run(fx, plane, 0, kn, 0, conv_len);
        }
    });
}

/// Backward of a (shared-weight) conv stage over the chunk's images:
/// writes the parameter gradients (the chunk's sums) and the input gradient.
pub fn emit_conv_backward(fx: &mut Fx, g: &ConvGeom) {
    use conv_bwd::*;
    let slots = [X, Y, KEEP, ARGMAX, PACKED_T, DY, DX, GW, GB, XPAD, COLS, DZ, DCOLS, GEOM];
    let [x, y, keep, argmax, packed_t, dy, dx, gw, gb, xpad, cols, dz, dcols, stage] = slots.map(|k| fx.arg(k));
    let (in_len, out_len, conv_len, p, k, f) = (g.in_len(), g.out_len(), g.conv_len(), g.plane(), g.taps(), g.conv.filters);
    let a = g.activation;
    let pool = pool_geom(g);
    let batch = fx.batch;
    // The gradients are the chunk's sums: they start at zero here (a
    // Winograd conv's in the transform domain, in `dcols`; filter_lanes'
    // channels-last, in `cols`).
    let (wino, lanes) = (g.winograd(), g.filter_lanes());
    match (&wino, &lanes) {
        (Some(d), _) => zero_run(fx, dcols, d.grad_len()),
        (None, Some(d)) => zero_run(fx, cols, filter_lanes::grad_len(d, f)),
        (None, None) => zero_run(fx, gw, f * k),
    }
    fx.if_nonnull(gb, |fx| zero_run(fx, gb, f));
    fx.for_to(0, batch, 1, |fx, n| {
        let o_n = fx.mul_add(n, out_len as i64, 0);
        let (yn, dyn_, an) = (fx.ptr_at(y, o_n), fx.ptr_at(dy, o_n), fx.ptr_at(argmax, o_n));
        // dz: the gradient at the conv output before the activation.
        match pool {
            None => fx.for_vectors(conv_len, |fx, at, vector| {
                let ty = if vector { F32X4 } else { F32 };
                let (gy, yv) = (fx.load_at(ty, dyn_, at), fx.load_at(ty, yn, at));
                let d = fx.activation_derivative(a, yv, vector);
                let v = fx.b.ins().fmul(gy, d);
                fx.store_at(v, dz, at);
            }),
            Some((pool, pg)) if runtime_pool(&pool, &pg) => {
                // The runtime's, vectorised; its indices count from the first plane.
                let planes = fx.int(f as i64);
                fx.max_unpool_2x2(dyn_, yn, an, a, planes, [g.oh, g.ow], dz);
            }
            Some((pool, pg)) if pool.kind == PoolKind::Max => {
                // The activation is monotone: its output at the maximum is the pooled value.
                zero_run(fx, dz, conv_len);
                let pp = pg.ph * pg.pw;
                fx.for_range(0, f as i64, 1, |fx, fi| {
                    // The argmax indices count from this plane.
                    let off = fx.mul_add(fi, p as i64, 0);
                    let z_plane = fx.ptr_at(dz, off);
                    let o = fx.mul_add(fi, pp as i64, 0);
                    let (yf, dyf, af) = (fx.ptr_at(yn, o), fx.ptr_at(dyn_, o), fx.ptr_at(an, o));
                    // A scatter: one output at a time, unrolled by rows.
                    fx.for_range(0, pg.ph as i64, 1, |fx, py| {
                        let o = fx.mul_add(py, pg.pw as i64, 0);
                        for px in 0..pg.pw {
                            let at = At { index: Some(o), offset: px as i64 };
                            let (gy, yv) = (fx.load_at(F32, dyf, at), fx.load_at(F32, yf, at));
                            let d = fx.activation_derivative(a, yv, false);
                            let gz = fx.b.ins().fmul(gy, d);
                            let i = fx.load_at(I32, af, at);
                            let i = fx.b.ins().uextend(I64, i);
                            fx.add_to(F32, z_plane, i, 0, gz);
                        }
                    });
                });
            }
            Some((pool, pg)) => {
                // Through the pool into dz, then the activation; both read
                // the kept activated plane.
                zero_run(fx, dz, conv_len);
                let kbase = fx.mul_add(n, conv_len as i64, 0);
                fx.for_range(0, f as i64, 1, |fx, fi| {
                    let dz_off = fx.mul_add(fi, p as i64, 0);
                    let o_off = fx.mul_add(fi, (pg.ph * pg.pw) as i64, 0);
                    let o_off = fx.b.ins().iadd(o_off, o_n);
                    let k_off = fx.b.ins().iadd(dz_off, kbase);
                    let input_at: &InputAt = &|fx: &mut Fx, at: Value| {
                        let i = fx.b.ins().iadd(at, k_off);
                        fx.load(F32, keep, i, 0)
                    };
                    emit_pool_plane_backward(fx, pool.kind, pg, dy, y, argmax, o_off, input_at, dz, dz_off);
                });
                let kn = fx.ptr_at(keep, kbase);
                fx.for_vectors(conv_len, |fx, at, vector| {
                    let ty = if vector { F32X4 } else { F32 };
                    let zv = fx.load_at(ty, kn, at);
                    let d = fx.activation_derivative(a, zv, vector);
                    let gz = fx.load_at(ty, dz, at);
                    let v = fx.b.ins().fmul(gz, d);
                    fx.store_at(v, dz, at);
                });
            }
        }
        fx.if_nonnull(gb, |fx| fx.add_row_sums(dz, p, f, gb));
        // gw += dz · colsᵀ (filters × plane by (taps × plane)ᵀ): for a
        // pointwise conv the input is cols; else the runtime's packed GEMM
        // over the transposed gather.
        let xn = fx.mul_add(n, in_len as i64, 0);
        let xn = fx.ptr_at(x, xn);
        let [pv, kv, fv] = [p, k, f].map(|v| fx.int(v as i64));
        if g.pointwise() {
            fx.gemm_abt(dz, pv, xn, pv, [fv, kv, pv], gw, kv);
        } else if wino.is_some() {
            fx.winograd_grad(stage, [xn, dz, dcols]);
        } else if lanes.is_some() {
            // The input gradient too.
            let dxn = fx.mul_add(n, in_len as i64, 0);
            let dxn = fx.ptr_at(dx, dxn);
            let null = fx.int(0);
            let dxn = fx.b.ins().select(dx, dxn, null);
            fx.lanes_backward(stage, [xn, dz, packed_t, cols, dxn]);
            return;
        } else {
            fx.weight_grad(stage, [xn, xpad, cols], dz, gw);
        }
        // dx = col2im(Wᵀ · dz), over the packed transpose (or the adjoint Winograd conv).
        fx.if_nonnull(dx, |fx| {
            let null = fx.int(0);
            let dxn = fx.mul_add(n, in_len as i64, 0);
            let dxn = fx.ptr_at(dx, dxn);
            if g.pointwise() {
                fx.gemm_packed(packed_t, dz, pv, pv, null, false, dxn, pv);
                return;
            }
            if wino.is_some() {
                fx.winograd(stage, true, [dz, packed_t, null, dxn]);
                return;
            }
            fx.gemm_packed(packed_t, dz, pv, pv, null, false, dcols, pv);
            fx.col2im(stage, dcols, dxn);
        });
    });
    if wino.is_some() {
        fx.winograd_grad_finish(stage, [dcols, gw]);
    } else if lanes.is_some() {
        fx.lanes_grad_finish(stage, [cols, gw]);
    }
}

/// `y = a(x·Wᵀ + b)` for the chunk: `yᵀ = a(W·xᵀ + b)` on the microkernel
/// over the packed weight, the chunk transposed in and out — or, for up to
/// [`GEMV_MAX_BATCH`] images, dot products over the weight's rows.
pub fn emit_dense_forward(fx: &mut Fx, g: &DenseGeom) {
    use dense_fwd::*;
    let [x, packed, bias, y, xt, yt, w] = [X, PACKED, BIAS, Y, XT, YT, WEIGHT].map(|k| fx.arg(k));
    let batch = fx.batch;
    let (inputs, units) = (fx.int(g.inputs as i64), fx.int(g.units as i64));
    let few = fx.b.ins().icmp_imm_s(IntCC::SignedLessThanOrEqual, batch, GEMV_MAX_BATCH as i64);
    let relu = g.activation == Activation::Relu;
    fx.if_else(
        few,
        |fx| {
            fx.for_to(0, batch, 1, |fx, n| {
                let row = fx.mul_add(n, g.units as i64, 0);
                let row = fx.ptr_at(y, row);
                if g.bias {
                    copy_run(fx, bias, 0, row, 0, g.units);
                } else {
                    zero_run(fx, row, g.units);
                }
            });
            fx.gemv([w, packed], [units, inputs], x, batch, y);
            if relu {
                fx.for_to(0, batch, 1, |fx, n| {
                    let row = fx.mul_add(n, g.units as i64, 0);
                    let row = fx.ptr_at(y, row);
                    activate_run(fx, Activation::Relu, row, g.units);
                });
            }
        },
        |fx| {
            fx.transpose(x, batch, inputs, xt);
            // Decided here, as the runtime decides whether to pack the weight.
            if reads_rows_in_place() {
                fx.gemm_rows(w, [units, inputs], xt, batch, batch, bias, relu, yt, batch);
            } else {
                fx.gemm_packed(packed, xt, batch, batch, bias, relu, yt, batch);
            }
            fx.transpose(yt, units, batch, y);
        },
    );
    if !in_registers(g.activation) {
        fx.for_to(0, batch, 1, |fx, n| {
            let row = fx.mul_add(n, g.units as i64, 0);
            let row = fx.ptr_at(y, row);
            activate_run(fx, g.activation, row, g.units);
        });
    }
}

/// Backward of a dense stage: `dz = dy ⊙ a'(y)`, `gb = Σ dz`, `dx = dz·W`
/// (over the packed transpose). The weight gradient, `dzᵀ·x`, is the
/// executor's, over the whole batch.
pub fn emit_dense_backward(fx: &mut Fx, g: &DenseGeom) {
    use dense_bwd::*;
    let [y, packed_t, dy, dx, gb, dz, dzt, dxt] = [Y, PACKED_T, DY, DX, GB, DZ, DZT, DXT].map(|k| fx.arg(k));
    let batch = fx.batch;
    let u = g.units;
    let row_of = |fx: &mut Fx, n: Value| fx.mul_add(n, u as i64, 0);
    fx.for_to(0, batch, 1, |fx, n| {
        let row = row_of(fx, n);
        let (dyr, yr, dzr) = (fx.ptr_at(dy, row), fx.ptr_at(y, row), fx.ptr_at(dz, row));
        fx.for_vectors(u, |fx, at, vector| {
            let ty = if vector { F32X4 } else { F32 };
            let (gy, yv) = (fx.load_at(ty, dyr, at), fx.load_at(ty, yr, at));
            let d = fx.activation_derivative(g.activation, yv, vector);
            let v = fx.b.ins().fmul(gy, d);
            fx.store_at(v, dzr, at);
        });
    });
    fx.if_nonnull(gb, |fx| {
        zero_run(fx, gb, u);
        fx.for_to(0, batch, 1, |fx, n| {
            let row = row_of(fx, n);
            let dzr = fx.ptr_at(dz, row);
            fx.for_vectors(u, |fx, at, vector| {
                let ty = if vector { F32X4 } else { F32 };
                let v = fx.load_at(ty, dzr, at);
                fx.add_at(ty, gb, at, v);
            });
        });
    });
    let [iv, uv] = [g.inputs, u].map(|v| fx.int(v as i64));
    fx.if_nonnull(dx, |fx| {
        let null = fx.int(0);
        fx.transpose(dz, batch, uv, dzt);
        fx.gemm_packed(packed_t, dzt, batch, batch, null, false, dxt, batch);
        fx.transpose(dxt, iv, batch, dx);
    });
}

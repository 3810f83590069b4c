//! A JIT-compiled network: the runtime's executor
//! (`convc_runtime::compiled::Network`, which owns the parameters, the
//! buffers, the packed weights and the threads, exactly as for generated
//! Rust) running stage kernels that are closures over the JIT's machine
//! code. Each closure checks the lengths of the buffers it is handed before
//! it passes their pointers to the code, so a wrong call panics instead of
//! writing astray.
//!
//! Two kinds of code: conv and dense stages on the runtime's microkernels
//! ([`super::runtime_calls`], the default), and the direct kernels of
//! [`super::conv`] and [`super::dense`] — 128-bit vectors throughout, kept
//! for local layers (no shared weights to pack) and, with
//! `JitOptions::microkernels` off, for every layer, to measure one against
//! the other. Pool stages pool as fused ones do ([`runtime_calls::emit_pool`],
//! vectorised for 2×2 max pools); their backward is the direct kernels'.

use std::sync::Arc;
use std::time::Duration;

use convc_runtime::compiled::{
    self, ConvBackward, ConvForward, DenseBackward, DenseForward, PoolBackward, PoolForward, StageDef, StageKernels,
};
use convc_runtime::kernels::gemm::{gemv_packed_len, reads_rows_in_place};
use convc_runtime::layer::Shape;
use convc_runtime::model::{Mode, Model, ModelError, ParamMut, ParamRef};
use convc_runtime::{Activation, PoolKind};
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_jit::JITModule;

use super::KernelFn;
use super::conv::{self, PaddedConv, PoolWindow};
use super::dense;
use super::emit::{F32, Fx};
use super::runtime_calls;
use crate::graph::Graph;
use crate::plan::{Geometry, Plan, Stage, StageKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    Infer,
    Train,
    Backward,
}

/// The sizes a stage's kernels are specialised to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StageGeom {
    /// The conv and, when fused, its pool over the conv's output plane.
    Conv(PaddedConv, Option<PoolWindow>),
    Pool {
        c: usize,
        geom: PoolWindow,
    },
    Dense(compiled::DenseGeom),
    None,
}

impl StageGeom {
    pub(crate) fn of(stage: &Stage) -> Self {
        let (c, h, w) = stage.input.chw();
        match &stage.kind {
            StageKind::Conv { conv, local, conv_out, pool, .. } => {
                let (_, oh, ow) = conv_out.chw();
                let g = PaddedConv::new(conv, *local, c, h, w, oh, ow);
                let (_, ph, pw) = stage.output.chw();
                Self::Conv(g, pool.as_ref().map(|p| conv::fused_pool_geom(&g, p, ph, pw)))
            }
            StageKind::Pool(p) => {
                let (_, ph, pw) = stage.output.chw();
                Self::Pool { c, geom: PoolWindow::new(p, h, w, w, ph, pw) }
            }
            StageKind::Dense { units, activation, bias } => {
                Self::Dense(compiled::DenseGeom { inputs: stage.input.len(), units: *units, activation: *activation, bias: *bias })
            }
            _ => Self::None,
        }
    }
}

/// Argument slots of the standalone pool kernels.
mod pool_args {
    pub const X: usize = 0;
    pub const Y: usize = 1;
    pub const ARGMAX: usize = 2;
    pub const DY: usize = 3;
    pub const DX: usize = 4;
}

/// Whether a stage runs on the runtime's microkernels (else on the direct kernels).
pub(crate) fn on_microkernels(stage: &Stage, microkernels: bool) -> bool {
    microkernels
        && match stage.geometry() {
            Geometry::Conv(g) => !g.local,
            Geometry::Dense(_) => true,
            _ => false,
        }
}

pub(crate) fn emit_stage(fx: &mut Fx, stage: &Stage, geom: &StageGeom, pass: Pass, microkernels: bool) {
    if on_microkernels(stage, microkernels) {
        match (stage.geometry(), pass) {
            (Geometry::Conv(g), Pass::Backward) => runtime_calls::emit_conv_backward(fx, &g),
            (Geometry::Conv(g), _) => runtime_calls::emit_conv_forward(fx, &g, pass == Pass::Train),
            (Geometry::Dense(g), Pass::Backward) => runtime_calls::emit_dense_backward(fx, &g),
            (Geometry::Dense(g), _) => runtime_calls::emit_dense_forward(fx, &g),
            _ => unreachable!("only conv and dense stages run on microkernels"),
        }
        return;
    }
    match (&stage.kind, geom) {
        (StageKind::Conv { activation, pool, conv, .. }, StageGeom::Conv(g, pg)) => {
            let fused = pool.as_ref().zip(*pg);
            match pass {
                Pass::Infer => conv::emit_forward(fx, *g, *activation, conv.bias, fused, false),
                Pass::Train => conv::emit_forward(fx, *g, *activation, conv.bias, fused, true),
                Pass::Backward => conv::emit_backward(fx, *g, *activation, conv.bias, fused),
            }
        }
        (StageKind::Pool(p), StageGeom::Pool { c, geom: g }) => {
            let (x, y, argmax) = (fx.arg(pool_args::X), fx.arg(pool_args::Y), fx.arg(pool_args::ARGMAX));
            let (in_plane, out_plane) = ((g.h * g.w) as i64, (g.ph * g.pw) as i64);
            let planes = fx.b.ins().imul_imm_s(fx.batch, *c as i64);
            // The runtime's 2×2 max pool records indices from the chunk's first plane.
            let stack = runtime_calls::runtime_pool(p, g);
            if pass == Pass::Backward && stack {
                let (dy, dx) = (fx.arg(pool_args::DY), fx.arg(pool_args::DX));
                fx.max_unpool_2x2(dy, y, argmax, Activation::None, planes, [g.h, g.w], dx);
            } else if pass == Pass::Backward {
                let (dy, dx) = (fx.arg(pool_args::DY), fx.arg(pool_args::DX));
                fx.for_to(0, planes, 1, |fx, plane| {
                    let src_off = fx.b.ins().imul_imm_s(plane, in_plane);
                    let dst_off = fx.b.ins().imul_imm_s(plane, out_plane);
                    let input_at = |fx: &mut Fx, at: Value| {
                        let at = fx.b.ins().iadd(at, src_off);
                        fx.load(F32, x, at, 0)
                    };
                    let dx_off = if stack { fx.int(0) } else { src_off };
                    conv::emit_pool_plane_backward(fx, p.kind, *g, dy, y, argmax, dst_off, &input_at, dx, dx_off);
                });
            } else if stack {
                let argmax = if pass == Pass::Train { argmax } else { fx.int(0) };
                fx.max_pool_2x2(x, planes, [g.h, g.w], y, argmax);
            } else {
                let record = pass == Pass::Train && p.kind == PoolKind::Max;
                fx.for_to(0, planes, 1, |fx, plane| {
                    let src_off = fx.b.ins().imul_imm_s(plane, in_plane);
                    let dst_off = fx.b.ins().imul_imm_s(plane, out_plane);
                    let (src, dst) = (fx.ptr_at(x, src_off), fx.ptr_at(y, dst_off));
                    let argmax = record.then(|| fx.ptr_at(argmax, dst_off));
                    runtime_calls::emit_pool(fx, p.kind, *g, src, dst, argmax);
                });
            }
        }
        (StageKind::Dense { .. }, StageGeom::Dense(g)) => match pass {
            Pass::Infer | Pass::Train => dense::emit_forward(fx, *g),
            Pass::Backward => dense::emit_backward(fx, *g),
        },
        _ => {}
    }
}

/// The machine code of a network, kept alive by every closure that calls
/// into it and freed with the last of them.
pub(crate) struct Code(Option<JITModule>);

impl Code {
    pub(crate) fn new(module: JITModule) -> Arc<Self> {
        Arc::new(Self(Some(module)))
    }
}

// SAFETY: after `finalize_definitions` the module is never used again, only
// kept (its code is immutable and may run on any thread); `Drop` frees it
// once no closure can call into it.
unsafe impl Send for Code {}
// SAFETY: as above: no method of the module is called through a shared reference.
unsafe impl Sync for Code {}

impl Drop for Code {
    fn drop(&mut self) {
        if let Some(module) = self.0.take() {
            // SAFETY: the last `Arc<Code>` is gone, and with it every closure
            // holding a pointer into this module's code.
            unsafe { module.free_memory() };
        }
    }
}

/// A compiled stage's three kernels: `[infer, train, backward]`.
pub(crate) type Kernels = [KernelFn; 3];

/// Pointer of a buffer for an argument slot (dangling but never read when
/// the buffer is empty and the kernel does not use the slot).
fn ptr<T>(v: &[T]) -> *mut u8 {
    v.as_ptr() as *mut u8
}

/// Pointer of an optional buffer: null when empty (the kernels test it).
fn ptr_or_null<T>(v: &[T]) -> *mut u8 {
    if v.is_empty() { std::ptr::null_mut() } else { ptr(v) }
}

/// `buf` resized to `len`, contents unspecified (the kernels write before they read).
fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.resize(len, 0.0);
    buf
}

/// `buf` resized to `len` and zeroed.
fn zeroed(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.clear();
    buf.resize(len, 0.0);
    buf
}

/// `buf` resized to `len`, zeroed only when its length changes: a
/// zero-bordered image whose interior alone is ever written.
fn bordered(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() != len {
        zeroed(buf, len);
    }
    buf
}

/// The images in a chunk of `len` values, `per` per image; panics when the
/// executor hands a buffer of another size (a bug, never a stray write).
fn images_in(len: usize, per: usize) -> usize {
    assert!(per > 0 && len.is_multiple_of(per), "a chunk of {len} values is not whole images of {per}");
    len / per
}

fn expect(what: &str, len: usize, expected: usize) {
    assert_eq!(len, expected, "{what}: {len} values where the kernel needs {expected}");
}

/// Call `kernel` on `images` images with the argument table `args`.
///
/// # Safety
/// Every pointer in `args` must be valid for what the kernel reads and
/// writes for that many images (the callers check the lengths first).
unsafe fn call(kernel: KernelFn, args: &[*mut u8], images: usize) {
    // SAFETY: forwarded from the caller; the code lives while `Code` does.
    unsafe { kernel(args.as_ptr(), images as i64) }
}

/// The images of a conv stage's forward call, and whether it trains (keeps
/// state for backward), its buffers' lengths checked.
fn check_conv_forward(g: &compiled::ConvGeom, io: &ConvForward<'_>) -> (usize, bool) {
    let images = images_in(io.x.len(), g.in_len());
    let train = !io.keep.is_empty() || !io.argmax.is_empty();
    expect("conv output", io.y.len(), images * g.out_len());
    if train {
        expect("kept planes", io.keep.len(), images * g.keep_len());
        expect("argmax", io.argmax.len(), if max_pooled(g) { images * g.out_len() } else { 0 });
    }
    (images, train)
}

/// The images of a conv stage's backward call, its buffers' lengths checked.
fn check_conv_backward(g: &compiled::ConvGeom, io: &ConvBackward<'_>) -> usize {
    let images = images_in(io.x.len(), g.in_len());
    for (what, len, per) in
        [("output", io.y.len(), g.out_len()), ("output gradient", io.dy.len(), g.out_len()), ("kept planes", io.keep.len(), g.keep_len())]
    {
        expect(what, len, images * per);
    }
    expect("argmax", io.argmax.len(), if max_pooled(g) { images * g.out_len() } else { 0 });
    if !io.dx.is_empty() {
        expect("input gradient", io.dx.len(), images * g.in_len());
    }
    images
}

fn max_pooled(g: &compiled::ConvGeom) -> bool {
    g.pool.is_some_and(|p| p.pool.kind == PoolKind::Max)
}

/// A conv stage on the microkernels.
fn conv_on_microkernels(g: compiled::ConvGeom, k: Kernels, code: &Arc<Code>) -> StageKernels {
    let [xpad_len, cols_len, plane_len, dcols_len] = runtime_calls::conv_scratch(&g);
    // Decided by the geometry (and the CPU) once, not per call.
    let (packed_len, packed_t_len) = (g.packed_len(false), g.packed_len(true));
    let forward = {
        let code = Arc::clone(code);
        move |io: ConvForward<'_>| {
            let _ = &code;
            let (images, train) = check_conv_forward(&g, &io);
            expect("packed weight", io.packed.rows() * io.packed.depth(), packed_len);
            let s = io.scratch;
            let (xpad, cols, plane) =
                (ptr(bordered(&mut s.xpad, xpad_len)), ptr(sized(&mut s.cols, cols_len)), ptr(sized(&mut s.plane, plane_len)));
            let mut args = [std::ptr::null_mut(); runtime_calls::conv_fwd::SLOTS];
            {
                use runtime_calls::conv_fwd::*;
                args[X] = ptr(io.x);
                args[PACKED] = io.packed as *const _ as *mut u8;
                args[BIAS] = ptr_or_null(io.bias);
                args[Y] = ptr(io.y);
                args[KEEP] = ptr(io.keep);
                args[ARGMAX] = ptr(io.argmax);
                args[XPAD] = xpad;
                args[COLS] = cols;
                args[PLANE] = plane;
                // Held by this closure: alive while the kernel runs.
                args[GEOM] = &g as *const compiled::ConvGeom as *mut u8;
            }
            // SAFETY: every buffer was checked (or sized) above for `images`
            // images of this stage; the bias has `filters` values (the
            // executor's parameter of that shape) or none.
            unsafe { call(k[if train { 1 } else { 0 }], &args, images) };
        }
    };
    let backward = {
        let code = Arc::clone(code);
        move |io: ConvBackward<'_>| {
            let _ = &code;
            let images = check_conv_backward(&g, &io);
            expect("weight gradient", io.gw.len(), g.conv.filters * g.taps());
            expect("transposed weight", io.packed_t.rows() * io.packed_t.depth(), packed_t_len);
            let s = io.scratch;
            let xpad = ptr(bordered(&mut s.xpad, xpad_len));
            let (cols, dz, dcols) =
                (ptr(sized(&mut s.cols, cols_len)), ptr(sized(&mut s.plane, plane_len)), ptr(sized(&mut s.dcols, dcols_len)));
            let mut args = [std::ptr::null_mut(); runtime_calls::conv_bwd::SLOTS];
            {
                use runtime_calls::conv_bwd::*;
                args[X] = ptr(io.x);
                args[Y] = ptr(io.y);
                args[KEEP] = ptr(io.keep);
                args[ARGMAX] = ptr(io.argmax);
                args[PACKED_T] = io.packed_t as *const _ as *mut u8;
                args[DY] = ptr(io.dy);
                args[DX] = ptr_or_null(io.dx);
                args[GW] = ptr(io.gw);
                args[GB] = ptr_or_null(io.gb);
                args[XPAD] = xpad;
                args[COLS] = cols;
                args[DZ] = dz;
                args[DCOLS] = dcols;
                // Held by this closure: alive while the kernel runs.
                args[GEOM] = &g as *const compiled::ConvGeom as *mut u8;
            }
            // SAFETY: as in forward; `gb` has `filters` values or is null.
            unsafe { call(k[2], &args, images) };
        }
    };
    StageKernels::Conv { geom: g, forward: Arc::new(forward), backward: Arc::new(backward) }
}

/// The images of a dense stage's forward call, its buffers' lengths checked.
fn check_dense_forward(g: &compiled::DenseGeom, io: &DenseForward<'_>) -> usize {
    let images = images_in(io.x.len(), g.inputs);
    expect("dense output", io.y.len(), images * g.units);
    expect("weight", io.weight.len(), g.units * g.inputs);
    expect("bias", io.bias.len(), if g.bias { g.units } else { 0 });
    images
}

/// The images of a dense stage's backward call, its buffers' lengths checked.
fn check_dense_backward(g: &compiled::DenseGeom, io: &DenseBackward<'_>) -> usize {
    let images = images_in(io.x.len(), g.inputs);
    expect("dense output", io.y.len(), images * g.units);
    expect("output gradient", io.dy.len(), images * g.units);
    if !io.dx.is_empty() {
        expect("input gradient", io.dx.len(), images * g.inputs);
    }
    expect("weight", io.weight.len(), g.units * g.inputs);
    expect("pre-activation gradient", io.dz.len(), images * g.units);
    expect("bias gradient", io.gb.len(), if g.bias { g.units } else { 0 });
    images
}

/// A dense stage on the microkernels.
fn dense_on_microkernels(g: compiled::DenseGeom, k: Kernels, code: &Arc<Code>) -> StageKernels {
    let (i, u) = (g.inputs, g.units);
    // The weight is packed unless the microkernel reads it in place — then,
    // for the dot products of a few images, maybe as they read it.
    let (packed_len, gemv_len) = if reads_rows_in_place() { (0, Some(gemv_packed_len(u, i))) } else { (u * i, None) };
    let forward = {
        let code = Arc::clone(code);
        move |io: DenseForward<'_>| {
            let _ = &code;
            let images = check_dense_forward(&g, &io);
            let len = io.packed.rows() * io.packed.depth();
            if Some(len) != gemv_len {
                expect("packed weight", len, packed_len);
            }
            let s = io.scratch;
            let (xt, yt) = (ptr(sized(&mut s.cols, i * images)), ptr(sized(&mut s.plane, u * images)));
            let mut args = [std::ptr::null_mut(); runtime_calls::dense_fwd::SLOTS];
            {
                use runtime_calls::dense_fwd::*;
                args[X] = ptr(io.x);
                args[PACKED] = io.packed as *const _ as *mut u8;
                args[BIAS] = ptr_or_null(io.bias);
                args[Y] = ptr(io.y);
                args[XT] = xt;
                args[YT] = yt;
                args[WEIGHT] = ptr(io.weight);
            }
            // SAFETY: the buffers were checked or sized above for `images` images.
            unsafe { call(k[0], &args, images) };
        }
    };
    let backward = {
        let code = Arc::clone(code);
        move |io: DenseBackward<'_>| {
            let _ = &code;
            let images = check_dense_backward(&g, &io);
            expect("transposed weight", io.packed_t.rows() * io.packed_t.depth(), u * i);
            let s = io.scratch;
            let (dzt, dxt) = (ptr(sized(&mut s.cols, u * images)), ptr(sized(&mut s.dcols, i * images)));
            let mut args = [std::ptr::null_mut(); runtime_calls::dense_bwd::SLOTS];
            {
                use runtime_calls::dense_bwd::*;

                args[Y] = ptr(io.y);
                args[PACKED_T] = io.packed_t as *const _ as *mut u8;
                args[DY] = ptr(io.dy);
                args[DX] = ptr_or_null(io.dx);
                args[GB] = ptr_or_null(io.gb);
                args[DZ] = ptr(io.dz);
                args[DZT] = dzt;
                args[DXT] = dxt;
            }
            // SAFETY: as in forward; `gb` has `units` values or is null.
            unsafe { call(k[2], &args, images) };
        }
    };
    StageKernels::Dense { geom: g, forward: Arc::new(forward), backward: Arc::new(backward) }
}

/// Copy a chunk of `c × h × w` images into zero-padded `c × hp × wp` ones
/// (`out` zeroed first).
fn pad_into(x: &[f32], g: &PaddedConv, images: usize, out: &mut Vec<f32>) {
    let out = zeroed(out, images * g.padded_len());
    let (h, w, [ph, pw]) = (g.h, g.w, g.pad);
    for n in 0..images {
        for c in 0..g.c {
            for row in 0..h {
                let src = ((n * g.c + c) * h + row) * w;
                let dst = (n * g.c + c) * g.hp * g.wp + (row + ph) * g.wp + pw;
                out[dst..dst + w].copy_from_slice(&x[src..src + w]);
            }
        }
    }
}

/// The inverse: crop padded gradients back to `c × h × w`.
fn crop_from(padded: &[f32], g: &PaddedConv, images: usize, dx: &mut [f32]) {
    let (h, w, [ph, pw]) = (g.h, g.w, g.pad);
    for n in 0..images {
        for c in 0..g.c {
            for row in 0..h {
                let dst = ((n * g.c + c) * h + row) * w;
                let src = (n * g.c + c) * g.hp * g.wp + (row + ph) * g.wp + pw;
                dx[dst..dst + w].copy_from_slice(&padded[src..src + w]);
            }
        }
    }
}

/// A conv (or local) stage on the direct kernels, which read a padded copy
/// of the chunk and write a padded input gradient.
fn conv_direct(rg: compiled::ConvGeom, g: PaddedConv, k: Kernels, code: &Arc<Code>) -> StageKernels {
    let weight_len = if rg.local { rg.conv.filters * rg.plane() * rg.taps() } else { rg.conv.filters * rg.taps() };
    let bias_len = match (rg.conv.bias, rg.local) {
        (false, _) => 0,
        (true, false) => rg.conv.filters,
        (true, true) => rg.conv_len(),
    };
    let forward = {
        let code = Arc::clone(code);
        move |io: ConvForward<'_>| {
            let _ = &code;
            let (images, train) = check_conv_forward(&rg, &io);
            expect("weight", io.weight.len(), weight_len);
            expect("bias", io.bias.len(), bias_len);
            let s = io.scratch;
            pad_into(io.x, &g, images, &mut s.xpad);
            let scratch = ptr(sized(&mut s.plane, conv::forward_channel_block(&g) * g.plane4()));
            let mut args = [std::ptr::null_mut(); 7];
            args[conv::fwd::XPAD] = ptr(&s.xpad);
            args[conv::fwd::WEIGHT] = ptr(io.weight);
            args[conv::fwd::BIAS] = ptr(io.bias);
            args[conv::fwd::Y] = ptr(io.y);
            args[conv::fwd::KEEP] = ptr(io.keep);
            args[conv::fwd::ARGMAX] = ptr(io.argmax);
            args[conv::fwd::SCRATCH] = scratch;
            // SAFETY: the padded chunk, output, kept state and argmax were
            // checked or sized above for `images` images; the scratch holds
            // a block of planes; weight and bias have the layer's sizes.
            unsafe { call(k[if train { 1 } else { 0 }], &args, images) };
        }
    };
    let backward = {
        let code = Arc::clone(code);
        move |io: ConvBackward<'_>| {
            let _ = &code;
            let images = check_conv_backward(&rg, &io);
            expect("weight", io.weight.len(), weight_len);
            expect("weight gradient", io.gw.len(), weight_len);
            expect("bias gradient", io.gb.len(), bias_len);
            // The direct kernels accumulate: the chunk's sums start at zero.
            io.gw.fill(0.0);
            io.gb.fill(0.0);
            let s = io.scratch;
            pad_into(io.x, &g, images, &mut s.xpad);
            let (zh, zw) = conv::dzpad_dims(&g);
            // The kernel zeroes dz and dzpad per image before use.
            let dz = ptr(sized(&mut s.plane, g.f * g.plane4()));
            let dzpad = ptr(sized(&mut s.cols, g.f * zh * zw));
            let dxpad = ptr(zeroed(&mut s.dcols, images * g.padded_len()));
            let mut args = [std::ptr::null_mut(); 11];
            args[conv::bwd::XPAD] = ptr(&s.xpad);
            args[conv::bwd::WEIGHT] = ptr(io.weight);
            args[conv::bwd::DY] = ptr(io.dy);
            args[conv::bwd::Y] = ptr(io.y);
            args[conv::bwd::KEEP] = ptr(io.keep);
            args[conv::bwd::ARGMAX] = ptr(io.argmax);
            args[conv::bwd::DZ] = dz;
            args[conv::bwd::GW] = ptr(io.gw);
            args[conv::bwd::GB] = ptr(io.gb);
            args[conv::bwd::DXPAD] = dxpad;
            args[conv::bwd::DZPAD] = dzpad;
            // SAFETY: as in forward, plus the per-image dz and dzpad and the
            // chunk's padded input gradient sized above.
            unsafe { call(k[2], &args, images) };
            if !io.dx.is_empty() {
                crop_from(&s.dcols, &g, images, io.dx);
            }
        }
    };
    StageKernels::Conv { geom: rg, forward: Arc::new(forward), backward: Arc::new(backward) }
}

/// A dense stage on the direct kernels.
fn dense_direct(g: compiled::DenseGeom, k: Kernels, code: &Arc<Code>) -> StageKernels {
    let i = g.inputs;
    let forward = {
        let code = Arc::clone(code);
        move |io: DenseForward<'_>| {
            let _ = &code;
            let images = check_dense_forward(&g, &io);
            let mut args = [std::ptr::null_mut(); 4];
            args[dense::fwd::X] = ptr(io.x);
            args[dense::fwd::WEIGHT] = ptr(io.weight);
            args[dense::fwd::BIAS] = ptr(io.bias);
            args[dense::fwd::Y] = ptr(io.y);
            // SAFETY: the buffers were checked above for `images` images.
            unsafe { call(k[0], &args, images) };
        }
    };
    let backward = {
        let code = Arc::clone(code);
        move |io: DenseBackward<'_>| {
            let _ = &code;
            let images = check_dense_backward(&g, &io);
            // The direct kernels accumulate: the chunk's sums start at zero.
            io.gb.fill(0.0);
            // The kernel always writes an input gradient: a scratch stands in.
            let dx = if io.dx.is_empty() { ptr(sized(&mut io.scratch.dcols, images * i)) } else { ptr(io.dx) };
            let mut args = [std::ptr::null_mut(); dense::bwd::SLOTS];
            args[dense::bwd::WEIGHT] = ptr(io.weight);
            args[dense::bwd::DY] = ptr(io.dy);
            args[dense::bwd::Y] = ptr(io.y);
            args[dense::bwd::GB] = ptr(io.gb);
            args[dense::bwd::DX] = dx;
            args[dense::bwd::DZ] = ptr(io.dz);
            // SAFETY: as in forward, plus dz (checked) and dx sized for `images` images.
            unsafe { call(k[2], &args, images) };
        }
    };
    StageKernels::Dense { geom: g, forward: Arc::new(forward), backward: Arc::new(backward) }
}

/// A pool stage on the direct kernels.
fn pool_direct(g: compiled::PoolGeom, k: Kernels, code: &Arc<Code>) -> StageKernels {
    let (in_len, out_len) = (g.in_len(), g.out_len());
    let max = g.pool.kind == PoolKind::Max;
    let forward = {
        let code = Arc::clone(code);
        move |io: PoolForward<'_>| {
            let _ = &code;
            let images = images_in(io.x.len(), in_len);
            expect("pool output", io.y.len(), images * out_len);
            let train = !io.argmax.is_empty();
            if train {
                expect("argmax", io.argmax.len(), images * out_len);
            }
            let mut args = [std::ptr::null_mut(); 5];
            args[pool_args::X] = ptr(io.x);
            args[pool_args::Y] = ptr(io.y);
            args[pool_args::ARGMAX] = ptr(io.argmax);
            // SAFETY: the buffers were checked above for `images` images
            // (argmax only in training, the only time the kernel writes it).
            unsafe { call(k[if train { 1 } else { 0 }], &args, images) };
        }
    };
    let backward = {
        let code = Arc::clone(code);
        move |io: PoolBackward<'_>| {
            let _ = &code;
            if io.dx.is_empty() {
                return;
            }
            let images = images_in(io.x.len(), in_len);
            expect("input gradient", io.dx.len(), images * in_len);
            expect("pool output", io.y.len(), images * out_len);
            expect("output gradient", io.dy.len(), images * out_len);
            expect("argmax", io.argmax.len(), if max { images * out_len } else { 0 });
            io.dx.fill(0.0);
            let mut args = [std::ptr::null_mut(); 5];
            args[pool_args::X] = ptr(io.x);
            args[pool_args::Y] = ptr(io.y);
            args[pool_args::ARGMAX] = ptr(io.argmax);
            args[pool_args::DY] = ptr(io.dy);
            args[pool_args::DX] = ptr(io.dx);
            // SAFETY: as in forward; dx (zeroed) has the chunk's inputs.
            unsafe { call(k[2], &args, images) };
        }
    };
    StageKernels::Pool { geom: g, forward: Arc::new(forward), backward: Arc::new(backward) }
}

/// The runtime's description of a stage, its kernels closures over `code`.
pub(crate) fn stage_def(stage: &Stage, geom: &StageGeom, kernels: Option<Kernels>, microkernels: bool, code: &Arc<Code>) -> StageDef {
    let kernels = match (stage.geometry(), geom, kernels) {
        (Geometry::Conv(rg), _, Some(k)) if on_microkernels(stage, microkernels) => conv_on_microkernels(rg, k, code),
        (Geometry::Conv(rg), StageGeom::Conv(g, _), Some(k)) => conv_direct(rg, *g, k, code),
        (Geometry::Dense(g), _, Some(k)) if on_microkernels(stage, microkernels) => dense_on_microkernels(g, k, code),
        (Geometry::Dense(g), _, Some(k)) => dense_direct(g, k, code),
        (Geometry::Pool(g), _, Some(k)) => pool_direct(g, k, code),
        _ => match &stage.kind {
            StageKind::Activation(a) => StageKernels::Activation(*a),
            StageKind::Dropout { rate } => StageKernels::Dropout { rate: *rate },
            _ => StageKernels::Reshape,
        },
    };
    StageDef {
        name: stage.name.clone(),
        first_layer: stage.layers[0],
        param_layer: stage.param_layer,
        input_len: stage.input.len(),
        output_len: stage.output.len(),
        kernels,
    }
}

/// A network compiled by the JIT, behind the runtime's `Model` trait.
pub struct JitNetwork {
    net: compiled::Network,
    compile_time: Duration,
}

impl JitNetwork {
    pub(crate) fn new(graph: &Graph, plan: &Plan, stages: Vec<StageDef>, seed: u64, threads: usize, compile_time: Duration) -> Self {
        let net = compiled::Network::new(&graph.name, graph.input, &plan.layers, stages, seed, threads);
        Self { net, compile_time }
    }

    /// Time spent generating and compiling machine code.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// The stages, e.g. `conv1+pool1`, in order.
    pub fn stage_names(&self) -> Vec<&str> {
        self.net.stage_names()
    }

    /// Threads a batch is split over.
    pub fn threads(&self) -> usize {
        self.net.threads()
    }

    /// Split batches over `threads` (at least 1).
    pub fn set_threads(&mut self, threads: usize) {
        self.net.set_threads(threads);
    }
}

impl Model for JitNetwork {
    fn name(&self) -> &str {
        self.net.name()
    }

    fn input_shape(&self) -> Shape {
        self.net.input_shape()
    }

    fn classes(&self) -> usize {
        self.net.classes()
    }

    fn forward(&mut self, input: &[f32], batch: usize, mode: Mode) -> Result<&[f32], ModelError> {
        self.net.forward(input, batch, mode)
    }

    fn backward(&mut self, grad_logits: &[f32]) -> Result<(), ModelError> {
        self.net.backward(grad_logits)
    }

    fn input_grad(&self) -> &[f32] {
        self.net.input_grad()
    }

    fn want_input_grad(&mut self, wanted: bool) {
        self.net.want_input_grad(wanted);
    }

    fn params(&self) -> Vec<ParamRef<'_>> {
        self.net.params()
    }

    fn params_mut(&mut self) -> Vec<ParamMut<'_>> {
        self.net.params_mut()
    }
}

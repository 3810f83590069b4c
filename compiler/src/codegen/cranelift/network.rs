//! A JIT-compiled network: the plan's stages, their kernels and buffers,
//! behind the runtime's `Model` trait. Buffer lengths are checked at the
//! boundary (`forward`/`backward`); kernels are then called only with
//! buffers sized for the batch.
//!
//! Data-parallel over the batch: each thread runs a stage's kernel on a
//! contiguous chunk of images (pointers offset to the chunk), with its own
//! scratch and its own parameter-gradient buffers; the gradients are summed
//! in thread order, so the same seed and thread count give identical
//! weights.

use std::time::Duration;

use convc_runtime::PoolKind;
use convc_runtime::elementwise;
use convc_runtime::init;
use convc_runtime::layer::Shape;
use convc_runtime::model::{Mode, Model, ModelError, ParamMut, ParamRef, check_input, expect_len};
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_jit::JITModule;

use super::KernelFn;
use super::conv::{self, ConvGeom, PoolGeom};
use super::dense::{self, DenseGeom};
use super::emit::{F32, Fx};
use crate::graph::Graph;
use crate::plan::{Plan, Stage, StageKind};

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
    Conv(ConvGeom, Option<PoolGeom>),
    Pool {
        c: usize,
        geom: PoolGeom,
    },
    Dense(DenseGeom),
    None,
}

impl StageGeom {
    pub(crate) fn of(stage: &Stage) -> Self {
        let (c, h, w) = stage.input.chw();
        match &stage.kind {
            StageKind::Conv { conv, local, conv_out, pool, .. } => {
                let (_, oh, ow) = conv_out.chw();
                let g = ConvGeom::new(conv, *local, c, h, w, oh, ow);
                let (_, ph, pw) = stage.output.chw();
                Self::Conv(g, pool.as_ref().map(|p| conv::fused_pool_geom(&g, p, ph, pw)))
            }
            StageKind::Pool(p) => {
                let (_, ph, pw) = stage.output.chw();
                Self::Pool { c, geom: PoolGeom::new(p, h, w, w, ph, pw) }
            }
            StageKind::Dense { units, activation, bias } => {
                Self::Dense(DenseGeom { inputs: stage.input.len(), units: *units, activation: *activation, bias: *bias })
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

pub(crate) fn emit_stage(fx: &mut Fx, stage: &Stage, geom: &StageGeom, pass: Pass) {
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
            if pass == Pass::Backward {
                let (dy, dx) = (fx.arg(pool_args::DY), fx.arg(pool_args::DX));
                fx.for_to(0, planes, 1, |fx, plane| {
                    let src_off = fx.b.ins().imul_imm_s(plane, in_plane);
                    let dst_off = fx.b.ins().imul_imm_s(plane, out_plane);
                    let input_at = |fx: &mut Fx, at: Value| {
                        let at = fx.b.ins().iadd(at, src_off);
                        fx.load(F32, x, at, 0)
                    };
                    conv::emit_pool_plane_backward(fx, p.kind, *g, dy, y, argmax, dst_off, &input_at, dx, src_off);
                });
            } else {
                let record = pass == Pass::Train && p.kind == PoolKind::Max;
                fx.for_to(0, planes, 1, |fx, plane| {
                    let src_off = fx.b.ins().imul_imm_s(plane, in_plane);
                    let dst_off = fx.b.ins().imul_imm_s(plane, out_plane);
                    conv::emit_pool_plane(fx, p.kind, *g, x, src_off, y, dst_off, record.then_some(argmax));
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

/// A parameter and its gradient.
#[derive(Debug, Clone)]
struct Param {
    name: String,
    shape: Vec<usize>,
    value: Vec<f32>,
    grad: Vec<f32>,
}

/// What one thread owns while it runs a stage.
#[derive(Default)]
struct Worker {
    scratch: Vec<f32>,
    dz: Vec<f32>,
    dzpad: Vec<f32>,
    /// Parameter gradients of threads after the first (the first writes
    /// into the parameters' own gradients).
    gw: Vec<f32>,
    gb: Vec<f32>,
}

/// Per-stage run-time state: kernels and buffers sized for the batch.
struct StageState {
    stage: Stage,
    geom: StageGeom,
    kernels: Option<[KernelFn; 3]>,
    /// Indices into `params` of the weight and the bias.
    weight: Option<usize>,
    bias: Option<usize>,
    xpad: Vec<f32>,
    keep: Vec<f32>,
    argmax: Vec<u32>,
    dxpad: Vec<f32>,
    mask: Vec<f32>,
    workers: Vec<Worker>,
}

pub struct JitNetwork {
    name: String,
    input: Shape,
    stages: Vec<StageState>,
    params: Vec<Param>,
    threads: usize,
    batch: usize,
    /// `acts[0]` is the input, `acts[s + 1]` the output of stage `s`.
    acts: Vec<Vec<f32>>,
    input_grad: Vec<f32>,
    trained: bool,
    compile_time: Duration,
    /// Owns the machine code the kernels point into.
    _module: JITModule,
}

impl JitNetwork {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        graph: &Graph,
        plan: Plan,
        geoms: Vec<StageGeom>,
        kernels: Vec<Option<[KernelFn; 3]>>,
        module: JITModule,
        seed: u64,
        threads: usize,
        compile_time: Duration,
    ) -> Self {
        let params: Vec<Param> = init::initial_params(&plan.layers, seed)
            .into_iter()
            .map(|p| Param { grad: vec![0.0; p.value.len()], name: p.name, shape: p.shape, value: p.value })
            .collect();
        let threads = threads.max(1);
        let stages = plan
            .stages
            .iter()
            .zip(geoms)
            .zip(kernels)
            .map(|((stage, geom), kernels)| {
                let layer = stage.param_layer.map(|l| plan.layers[l].name.clone());
                let find = |suffix: &str| layer.as_ref().and_then(|l| params.iter().position(|p| p.name == format!("{l}.{suffix}")));
                StageState {
                    stage: stage.clone(),
                    geom,
                    kernels,
                    weight: find("weight"),
                    bias: find("bias"),
                    xpad: Vec::new(),
                    keep: Vec::new(),
                    argmax: Vec::new(),
                    dxpad: Vec::new(),
                    mask: Vec::new(),
                    workers: (0..threads).map(|_| Worker::default()).collect(),
                }
            })
            .collect::<Vec<_>>();
        let acts = vec![Vec::new(); stages.len() + 1];
        Self {
            name: graph.name.clone(),
            input: graph.input,
            stages,
            params,
            threads,
            batch: 0,
            acts,
            input_grad: Vec::new(),
            trained: false,
            compile_time,
            _module: module,
        }
    }

    /// Time spent generating and compiling machine code.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// The stages, e.g. `conv1+pool1`, in order.
    pub fn stage_names(&self) -> Vec<String> {
        self.stages.iter().map(|s| s.stage.name.clone()).collect()
    }

    /// Threads a batch is split over.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

/// A pointer for a table slot that the kernel does not read (e.g. the bias
/// of a layer without one): valid, never dereferenced.
fn unused() -> *mut u8 {
    std::ptr::NonNull::<f32>::dangling().as_ptr().cast()
}

/// Pointer to element `offset` of a buffer (f32 or u32).
fn at<T>(v: &[T], offset: usize) -> *mut u8 {
    v[offset..].as_ptr() as *mut u8
}

/// The contiguous chunks of a batch, one per thread (fewer if the batch is
/// smaller than the thread count): `(first image, images)`.
fn chunks(batch: usize, threads: usize) -> Vec<(usize, usize)> {
    let mut first = 0;
    convc_runtime::compiled::chunks(batch, threads)
        .into_iter()
        .map(|images| {
            first += images;
            (first - images, images)
        })
        .collect()
}

/// One kernel call: the argument table for a chunk of the batch.
struct Call {
    args: Vec<*mut u8>,
    images: usize,
}

// SAFETY: a `Call` only carries pointers; `run` below sends each call to one
// thread, and the callers build the tables so that the chunks write to
// disjoint regions (per-image buffers offset to the chunk, per-thread
// scratch and gradients) and share only read-only buffers.
unsafe impl Send for Call {}

/// Run `kernel` on every call, in parallel when there is more than one.
///
/// # Safety
/// Every pointer of every call must be valid for the reads and writes the
/// kernel does for `images` images, and the calls' writes must not overlap.
unsafe fn run(kernel: KernelFn, calls: Vec<Call>) {
    let go = |c: &Call| {
        // SAFETY: forwarded from `run`'s contract.
        unsafe { kernel(c.args.as_ptr(), c.images as i64) }
    };
    if calls.len() == 1 {
        go(&calls[0]);
        return;
    }
    std::thread::scope(|s| {
        for c in &calls {
            let c = SendRef(c);
            s.spawn(move || go(c.get()));
        }
    });
}

/// A shared reference to a `Call`, sent to one worker thread.
#[derive(Clone, Copy)]
struct SendRef<'a>(&'a Call);

impl<'a> SendRef<'a> {
    fn get(self) -> &'a Call {
        self.0
    }
}

// SAFETY: see `Call`; the reference lives for the thread scope only.
unsafe impl Send for SendRef<'_> {}

/// Copy a batch of `c × h × w` images into zero-padded `c × hp × wp` ones.
fn pad_into(x: &[f32], g: &ConvGeom, h: usize, w: usize, pad: [usize; 2], batch: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(batch * g.padded_len(), 0.0);
    for n in 0..batch {
        for c in 0..g.c {
            for row in 0..h {
                let src = ((n * g.c + c) * h + row) * w;
                let dst = (n * g.c + c) * g.hp * g.wp + (row + pad[0]) * g.wp + pad[1];
                out[dst..dst + w].copy_from_slice(&x[src..src + w]);
            }
        }
    }
}

/// The inverse: crop padded gradients back to `c × h × w`.
fn crop_from(padded: &[f32], g: &ConvGeom, h: usize, w: usize, pad: [usize; 2], batch: usize, dx: &mut [f32]) {
    for n in 0..batch {
        for c in 0..g.c {
            for row in 0..h {
                let dst = ((n * g.c + c) * h + row) * w;
                let src = (n * g.c + c) * g.hp * g.wp + (row + pad[0]) * g.wp + pad[1];
                dx[dst..dst + w].copy_from_slice(&padded[src..src + w]);
            }
        }
    }
}

/// Resize a per-thread buffer and zero it.
fn zeroed(v: &mut Vec<f32>, len: usize) {
    v.clear();
    v.resize(len, 0.0);
}

impl Model for JitNetwork {
    fn name(&self) -> &str {
        &self.name
    }

    fn input_shape(&self) -> Shape {
        self.input
    }

    fn classes(&self) -> usize {
        self.stages.last().map_or(self.input.len(), |s| s.stage.output.len())
    }

    fn forward(&mut self, input: &[f32], batch: usize, mode: Mode) -> Result<&[f32], ModelError> {
        check_input(input, batch, self.input)?;
        self.batch = batch;
        self.acts[0].clear();
        self.acts[0].extend_from_slice(input);
        let train = matches!(mode, Mode::Train { .. });
        let parts = chunks(batch, self.threads);
        for index in 0..self.stages.len() {
            let (before, after) = self.acts.split_at_mut(index + 1);
            let x = &before[index];
            let y = &mut after[0];
            let s = &mut self.stages[index];
            let (in_len, out_len) = (s.stage.input.len(), s.stage.output.len());
            y.clear();
            y.resize(batch * out_len, 0.0);
            let weight = s.weight.map_or_else(unused, |i| at(&self.params[i].value, 0));
            let bias = s.bias.map_or_else(unused, |i| at(&self.params[i].value, 0));
            let kernel = s.kernels.map(|k| if train { k[1] } else { k[0] });
            match (&s.stage.kind, s.geom) {
                (StageKind::Conv { conv, pool, .. }, StageGeom::Conv(g, _)) => {
                    let (_, h, w) = s.stage.input.chw();
                    pad_into(x, &g, h, w, conv.pad, batch, &mut s.xpad);
                    s.argmax.resize(batch * out_len, 0);
                    let keeps = train && pool.as_ref().is_some_and(|p| p.kind != PoolKind::Max);
                    let keep_len = g.f * g.oh * g.ow;
                    s.keep.resize(if keeps { batch * keep_len } else { 0 }, 0.0);
                    let calls = parts
                        .iter()
                        .zip(&mut s.workers)
                        .map(|(&(first, images), worker)| {
                            worker.scratch.resize(conv::forward_channel_block(&g) * g.plane4(), 0.0);
                            let mut args = vec![unused(); 7];
                            args[conv::fwd::XPAD] = at(&s.xpad, first * g.padded_len());
                            args[conv::fwd::WEIGHT] = weight;
                            args[conv::fwd::BIAS] = bias;
                            args[conv::fwd::Y] = at(y, first * out_len);
                            args[conv::fwd::KEEP] = if keeps { at(&s.keep, first * keep_len) } else { unused() };
                            args[conv::fwd::ARGMAX] = at(&s.argmax, first * out_len);
                            args[conv::fwd::SCRATCH] = at(&worker.scratch, 0);
                            Call { args, images }
                        })
                        .collect();
                    // SAFETY: each call covers its chunk of xpad (padded
                    // images), y and argmax (one slot per output), keep (conv
                    // planes, when kept) and owns a scratch of one plane of
                    // oh × ow4 per filter of a block; weight and bias are the
                    // layer's parameters, read only.
                    unsafe { run(kernel.expect("conv stages are compiled"), calls) };
                }
                (StageKind::Pool(_), StageGeom::Pool { .. }) => {
                    s.argmax.resize(y.len(), 0);
                    let calls = parts
                        .iter()
                        .map(|&(first, images)| {
                            let mut args = vec![unused(); 5];
                            args[pool_args::X] = at(x, first * in_len);
                            args[pool_args::Y] = at(y, first * out_len);
                            args[pool_args::ARGMAX] = at(&s.argmax, first * out_len);
                            Call { args, images }
                        })
                        .collect();
                    // SAFETY: each call reads its chunk of x and writes its
                    // chunk of y and argmax.
                    unsafe { run(kernel.expect("pool stages are compiled"), calls) };
                }
                (StageKind::Dense { .. }, StageGeom::Dense(_)) => {
                    let calls = parts
                        .iter()
                        .map(|&(first, images)| {
                            let mut args = vec![unused(); 4];
                            args[dense::fwd::X] = at(x, first * in_len);
                            args[dense::fwd::WEIGHT] = weight;
                            args[dense::fwd::BIAS] = bias;
                            args[dense::fwd::Y] = at(y, first * out_len);
                            Call { args, images }
                        })
                        .collect();
                    // SAFETY: each call reads its chunk of x (images × inputs)
                    // and the shared weight (units × inputs) and bias, and
                    // writes its chunk of y (images × units).
                    unsafe { run(kernel.expect("dense stages are compiled"), calls) };
                }
                (StageKind::Activation(a), _) => elementwise::activation_forward(*a, x, y),
                (StageKind::Dropout { rate }, _) => match mode {
                    Mode::Infer => y.copy_from_slice(x),
                    Mode::Train { seed } => {
                        elementwise::dropout_mask(seed, s.stage.layers[0], *rate, x.len(), &mut s.mask);
                        elementwise::apply_mask(x, &s.mask, y);
                    }
                },
                _ => y.copy_from_slice(x),
            }
        }
        self.trained = train;
        Ok(self.acts.last().expect("acts has the input at least"))
    }

    fn backward(&mut self, grad_logits: &[f32]) -> Result<(), ModelError> {
        if !self.trained {
            return Err(ModelError::NoTrainingForward);
        }
        let batch = self.batch;
        expect_len("grad_logits", grad_logits.len(), batch * self.classes())?;
        for p in &mut self.params {
            p.grad.fill(0.0);
        }
        let parts = chunks(batch, self.threads);
        let mut g = grad_logits.to_vec();
        for index in (0..self.stages.len()).rev() {
            let x = &self.acts[index];
            let y = &self.acts[index + 1];
            let s = &mut self.stages[index];
            let (in_len, out_len) = (s.stage.input.len(), s.stage.output.len());
            let mut dx = vec![0.0; batch * in_len];
            let kernel = s.kernels.map(|k| k[2]);
            // Thread 0 accumulates into the parameters' gradients, the others
            // into their own buffers, summed below in thread order.
            let (wi, bi) = (s.weight, s.bias);
            let grad_ptrs = |params: &mut Vec<Param>, worker: &mut Worker, thread: usize| -> (*mut u8, *mut u8) {
                let Some(wi) = wi else { return (unused(), unused()) };
                if thread == 0 {
                    let gw = at(&params[wi].grad, 0);
                    let gb = bi.map_or_else(unused, |b| at(&params[b].grad, 0));
                    return (gw, gb);
                }
                zeroed(&mut worker.gw, params[wi].grad.len());
                zeroed(&mut worker.gb, bi.map_or(0, |b| params[b].grad.len()));
                (at(&worker.gw, 0), if bi.is_some() { at(&worker.gb, 0) } else { unused() })
            };
            match (&s.stage.kind, s.geom) {
                (StageKind::Conv { conv, .. }, StageGeom::Conv(geom, _)) => {
                    let (_, h, w) = s.stage.input.chw();
                    zeroed(&mut s.dxpad, batch * geom.padded_len());
                    let (zh, zw) = conv::dzpad_dims(&geom);
                    let keep_len = geom.f * geom.oh * geom.ow;
                    let weight = at(&self.params[wi.expect("conv has a weight")].value, 0);
                    let mut calls = Vec::new();
                    for (thread, (&(first, images), worker)) in parts.iter().zip(&mut s.workers).enumerate() {
                        // The kernel zeroes both per image before use.
                        worker.dz.resize(geom.f * geom.plane4(), 0.0);
                        worker.dzpad.resize(geom.f * zh * zw, 0.0);
                        let (gw, gb) = grad_ptrs(&mut self.params, worker, thread);
                        let mut args = vec![unused(); 11];
                        args[conv::bwd::XPAD] = at(&s.xpad, first * geom.padded_len());
                        args[conv::bwd::WEIGHT] = weight;
                        args[conv::bwd::DY] = at(&g, first * out_len);
                        args[conv::bwd::Y] = at(y, first * out_len);
                        args[conv::bwd::KEEP] = if s.keep.is_empty() { unused() } else { at(&s.keep, first * keep_len) };
                        args[conv::bwd::ARGMAX] = at(&s.argmax, first * out_len);
                        args[conv::bwd::DZ] = at(&worker.dz, 0);
                        args[conv::bwd::GW] = gw;
                        args[conv::bwd::GB] = gb;
                        args[conv::bwd::DXPAD] = at(&s.dxpad, first * geom.padded_len());
                        args[conv::bwd::DZPAD] = at(&worker.dzpad, 0);
                        calls.push(Call { args, images });
                    }
                    // SAFETY: per call: its chunk of the training forward's
                    // buffers (xpad, y, keep, argmax), of g (outputs) and of
                    // dxpad (padded images); its own dz (one plane of oh × ow4
                    // per filter), dzpad (one image's padded dz) and gradient
                    // buffers (thread 0: the parameters'); the weight is read only.
                    unsafe { run(kernel.expect("conv stages are compiled"), calls) };
                    crop_from(&s.dxpad, &geom, h, w, conv.pad, batch, &mut dx);
                }
                (StageKind::Pool(_), StageGeom::Pool { .. }) => {
                    let calls = parts
                        .iter()
                        .map(|&(first, images)| {
                            let mut args = vec![unused(); 5];
                            args[pool_args::X] = at(x, first * in_len);
                            args[pool_args::Y] = at(y, first * out_len);
                            args[pool_args::ARGMAX] = at(&s.argmax, first * out_len);
                            args[pool_args::DY] = at(&g, first * out_len);
                            args[pool_args::DX] = at(&dx, first * in_len);
                            Call { args, images }
                        })
                        .collect();
                    // SAFETY: each call reads its chunk of x, y, argmax and g
                    // and accumulates into its chunk of the zeroed dx.
                    unsafe { run(kernel.expect("pool stages are compiled"), calls) };
                }
                (StageKind::Dense { units, .. }, StageGeom::Dense(_)) => {
                    let weight = at(&self.params[wi.expect("dense has a weight")].value, 0);
                    let mut calls = Vec::new();
                    for (thread, (&(first, images), worker)) in parts.iter().zip(&mut s.workers).enumerate() {
                        // The kernel writes every value of dz.
                        worker.dz.resize(images * units, 0.0);
                        let (gw, gb) = grad_ptrs(&mut self.params, worker, thread);
                        let mut args = vec![unused(); 8];
                        args[dense::bwd::X] = at(x, first * in_len);
                        args[dense::bwd::WEIGHT] = weight;
                        args[dense::bwd::DY] = at(&g, first * out_len);
                        args[dense::bwd::Y] = at(y, first * out_len);
                        args[dense::bwd::GW] = gw;
                        args[dense::bwd::GB] = gb;
                        args[dense::bwd::DX] = at(&dx, first * in_len);
                        args[dense::bwd::DZ] = at(&worker.dz, 0);
                        calls.push(Call { args, images });
                    }
                    // SAFETY: per call: its chunk of x, y, g (reads) and dx
                    // (writes), its own dz (images × units) and gradient
                    // buffers (thread 0: the parameters'); the weight is read only.
                    unsafe { run(kernel.expect("dense stages are compiled"), calls) };
                }
                (StageKind::Activation(a), _) => elementwise::activation_backward(*a, &g, y, &mut dx),
                (StageKind::Dropout { .. }, _) => elementwise::apply_mask(&g, &s.mask, &mut dx),
                _ => dx.copy_from_slice(&g),
            }
            // Sum the other threads' parameter gradients, in thread order.
            if let Some(wi) = wi {
                for worker in s.workers.iter().take(parts.len()).skip(1) {
                    for (g, t) in self.params[wi].grad.iter_mut().zip(&worker.gw) {
                        *g += t;
                    }
                    if let Some(bi) = bi {
                        for (g, t) in self.params[bi].grad.iter_mut().zip(&worker.gb) {
                            *g += t;
                        }
                    }
                }
            }
            g = dx;
        }
        self.input_grad = g;
        Ok(())
    }

    fn input_grad(&self) -> &[f32] {
        &self.input_grad
    }

    fn params(&self) -> Vec<ParamRef<'_>> {
        self.params.iter().map(|p| ParamRef { name: &p.name, shape: &p.shape, value: &p.value }).collect()
    }

    fn params_mut(&mut self) -> Vec<ParamMut<'_>> {
        self.params.iter_mut().map(|p| ParamMut { name: &p.name, shape: &p.shape, value: &mut p.value, grad: &p.grad }).collect()
    }
}

//! A JIT-compiled network: the plan's stages, their kernels and buffers,
//! behind the runtime's `Model` trait. Buffer lengths are checked at the
//! boundary (`forward`/`backward`); kernels are then called only with
//! buffers sized for the batch.

use std::time::Duration;

use convc_runtime::PoolKind;
use convc_runtime::init;
use convc_runtime::layer::Shape;
use convc_runtime::model::{Mode, Model, ModelError, ParamMut, ParamRef, expect_len};
use convc_runtime::rng::Rng;
use cranelift_codegen::ir::InstBuilder;
use cranelift_jit::JITModule;

use super::conv::{self, ConvGeom, PoolGeom};
use super::dense::{self, DenseGeom};
use super::emit::Fx;
use super::{KernelFn, chw};
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
    Conv(ConvGeom),
    Pool { c: usize, geom: PoolGeom },
    Dense(DenseGeom),
    None,
}

impl StageGeom {
    pub(crate) fn of(stage: &Stage) -> Self {
        let (c, h, w) = chw(stage.input);
        match &stage.kind {
            StageKind::Conv { conv, local, conv_out, .. } => {
                let (_, oh, ow) = conv_out.chw();
                Self::Conv(ConvGeom::new(conv, *local, c, h, w, oh, ow))
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
        (StageKind::Conv { activation, pool, conv, .. }, StageGeom::Conv(g)) => match pass {
            Pass::Infer => conv::emit_forward(fx, *g, *activation, conv.bias, pool.as_ref(), false),
            Pass::Train => conv::emit_forward(fx, *g, *activation, conv.bias, pool.as_ref(), true),
            Pass::Backward => conv::emit_backward(fx, *g, *activation, conv.bias, pool.as_ref()),
        },
        (StageKind::Pool(p), StageGeom::Pool { c, geom: g }) => {
            let (x, y, argmax) = (fx.arg(pool_args::X), fx.arg(pool_args::Y), fx.arg(pool_args::ARGMAX));
            let (in_plane, out_plane) = ((g.h * g.w) as i64, (g.ph * g.pw) as i64);
            let planes = fx.b.ins().imul_imm_s(fx.batch, *c as i64);
            if pass == Pass::Backward {
                let (dy, dx) = (fx.arg(pool_args::DY), fx.arg(pool_args::DX));
                fx.for_to(0, planes, 1, |fx, plane| {
                    let src_off = fx.b.ins().imul_imm_s(plane, in_plane);
                    let dst_off = fx.b.ins().imul_imm_s(plane, out_plane);
                    conv::emit_pool_plane_backward(fx, p.kind, *g, dy, y, argmax, dst_off, x, dx, src_off);
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

#[derive(Debug, Clone)]
struct Param {
    name: String,
    shape: Vec<usize>,
    value: Vec<f32>,
    grad: Vec<f32>,
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
    scratch: Vec<f32>,
    dxpad: Vec<f32>,
    mask: Vec<f32>,
}

pub struct JitNetwork {
    name: String,
    input: Shape,
    stages: Vec<StageState>,
    params: Vec<Param>,
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
    pub(crate) fn new(
        graph: &Graph,
        plan: Plan,
        geoms: Vec<StageGeom>,
        kernels: Vec<Option<[KernelFn; 3]>>,
        module: JITModule,
        seed: u64,
        compile_time: Duration,
    ) -> Self {
        let params: Vec<Param> = init::initial_params(&plan.layers, seed)
            .into_iter()
            .map(|p| Param { grad: vec![0.0; p.value.len()], name: p.name, shape: p.shape, value: p.value })
            .collect();
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
                    scratch: Vec::new(),
                    dxpad: Vec::new(),
                    mask: Vec::new(),
                }
            })
            .collect::<Vec<_>>();
        let acts = vec![Vec::new(); stages.len() + 1];
        Self {
            name: graph.name.clone(),
            input: graph.input,
            stages,
            params,
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
}

/// A pointer for a table slot that the kernel does not read (e.g. the bias
/// of a layer without one): valid, never dereferenced.
fn unused() -> *mut u8 {
    std::ptr::NonNull::<f32>::dangling().as_ptr().cast()
}

fn ptr(v: &[f32]) -> *mut u8 {
    v.as_ptr() as *mut u8
}

fn ptr_mut(v: &mut [f32]) -> *mut u8 {
    v.as_mut_ptr().cast()
}

/// Call a kernel.
///
/// # Safety
/// Every pointer of `args` must be valid for the reads and writes the
/// kernel does for `batch` images: the callers size each buffer from the
/// stage's geometry and `batch` right before the call.
unsafe fn call(kernel: KernelFn, args: &[*mut u8], batch: usize) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { kernel(args.as_ptr(), batch as i64) }
}

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
        if batch == 0 {
            return Err(ModelError::BatchZero);
        }
        expect_len("input", input.len(), batch * self.input.len())?;
        self.batch = batch;
        self.acts[0].clear();
        self.acts[0].extend_from_slice(input);
        let train = matches!(mode, Mode::Train { .. });
        for index in 0..self.stages.len() {
            let (before, after) = self.acts.split_at_mut(index + 1);
            let x = &before[index];
            let y = &mut after[0];
            let s = &mut self.stages[index];
            y.clear();
            y.resize(batch * s.stage.output.len(), 0.0);
            let weight = s.weight.map(|i| ptr(&self.params[i].value));
            let bias = s.bias.map_or_else(unused, |i| ptr(&self.params[i].value));
            let kernel = s.kernels.map(|k| if train { k[1] } else { k[0] });
            match (&s.stage.kind, s.geom) {
                (StageKind::Conv { conv, pool, .. }, StageGeom::Conv(g)) => {
                    let (_, h, w) = chw(s.stage.input);
                    pad_into(x, &g, h, w, conv.pad, batch, &mut s.xpad);
                    s.scratch.resize(conv::forward_channel_block(&g) * g.plane4(), 0.0);
                    let out_len = s.stage.output.len();
                    s.argmax.resize(batch * out_len, 0);
                    let keeps = train && pool.as_ref().is_some_and(|p| p.kind != PoolKind::Max);
                    s.keep.resize(if keeps { batch * g.f * g.oh * g.ow } else { 0 }, 0.0);
                    let mut args = [unused(); 7];
                    args[conv::fwd::XPAD] = ptr(&s.xpad);
                    args[conv::fwd::WEIGHT] = weight.expect("conv stages have a weight");
                    args[conv::fwd::BIAS] = bias;
                    args[conv::fwd::Y] = ptr_mut(y);
                    args[conv::fwd::KEEP] = if keeps { ptr_mut(&mut s.keep) } else { unused() };
                    args[conv::fwd::ARGMAX] = s.argmax.as_mut_ptr().cast();
                    args[conv::fwd::SCRATCH] = ptr_mut(&mut s.scratch);
                    // SAFETY: xpad holds batch padded images, y batch outputs,
                    // argmax one slot per output, keep batch conv planes when
                    // kept, scratch one plane of oh × ow4 per filter of a block; weight and bias are
                    // the layer's parameters with the shapes the plan gives.
                    unsafe { call(kernel.expect("conv stages are compiled"), &args, batch) };
                }
                (StageKind::Pool(_), StageGeom::Pool { .. }) => {
                    s.argmax.resize(y.len(), 0);
                    let mut args = [unused(); 5];
                    args[pool_args::X] = ptr(x);
                    args[pool_args::Y] = ptr_mut(y);
                    args[pool_args::ARGMAX] = s.argmax.as_mut_ptr().cast();
                    // SAFETY: x and y hold batch inputs and outputs of the
                    // stage's shapes; argmax one slot per output.
                    unsafe { call(kernel.expect("pool stages are compiled"), &args, batch) };
                }
                (StageKind::Dense { .. }, StageGeom::Dense(_)) => {
                    let mut args = [unused(); 4];
                    args[dense::fwd::X] = ptr(x);
                    args[dense::fwd::WEIGHT] = weight.expect("dense stages have a weight");
                    args[dense::fwd::BIAS] = bias;
                    args[dense::fwd::Y] = ptr_mut(y);
                    // SAFETY: x holds batch × inputs values, y batch × units,
                    // the weight units × inputs, the bias units.
                    unsafe { call(kernel.expect("dense stages are compiled"), &args, batch) };
                }
                (StageKind::Activation(a), _) => {
                    for (y, x) in y.iter_mut().zip(x) {
                        *y = a.apply(*x);
                    }
                }
                (StageKind::Dropout { rate }, _) => match mode {
                    Mode::Infer => y.copy_from_slice(x),
                    Mode::Train { seed } => {
                        // The interpreter's masks: same stream per layer index.
                        let mut rng = Rng::derive(seed, s.stage.layers[0] as u64, 0);
                        let keep = 1.0 / (1.0 - rate);
                        s.mask.clear();
                        s.mask.extend((0..x.len()).map(|_| if rng.next_f32() < *rate { 0.0 } else { keep }));
                        for ((y, x), m) in y.iter_mut().zip(x).zip(&s.mask) {
                            *y = x * m;
                        }
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
        let mut g = grad_logits.to_vec();
        for index in (0..self.stages.len()).rev() {
            let x = &self.acts[index];
            let y = &self.acts[index + 1];
            let s = &mut self.stages[index];
            let mut dx = vec![0.0; batch * s.stage.input.len()];
            let kernel = s.kernels.map(|k| k[2]);
            match (&s.stage.kind, s.geom) {
                (StageKind::Conv { conv, .. }, StageGeom::Conv(geom)) => {
                    let (_, h, w) = chw(s.stage.input);
                    s.dxpad.clear();
                    s.dxpad.resize(batch * geom.padded_len(), 0.0);
                    let mut dz = vec![0.0f32; geom.f * geom.plane4()];
                    let (wi, bi) = (s.weight.expect("conv has a weight"), s.bias);
                    let (zh, zw) = conv::dzpad_dims(&geom);
                    let mut dzpad = vec![0.0f32; geom.f * zh * zw];
                    let mut args = [unused(); 11];
                    args[conv::bwd::DZPAD] = ptr_mut(&mut dzpad);
                    args[conv::bwd::XPAD] = ptr(&s.xpad);
                    args[conv::bwd::WEIGHT] = ptr(&self.params[wi].value);
                    args[conv::bwd::DY] = ptr(&g);
                    args[conv::bwd::Y] = ptr(y);
                    args[conv::bwd::KEEP] = if s.keep.is_empty() { unused() } else { ptr(&s.keep) };
                    args[conv::bwd::ARGMAX] = s.argmax.as_mut_ptr().cast();
                    args[conv::bwd::DZ] = ptr_mut(&mut dz);
                    args[conv::bwd::GW] = ptr_mut(&mut self.params[wi].grad);
                    args[conv::bwd::GB] = bi.map_or_else(unused, |i| ptr_mut(&mut self.params[i].grad));
                    args[conv::bwd::DXPAD] = ptr_mut(&mut s.dxpad);
                    // SAFETY: the buffers are those of the last training
                    // forward for this batch (xpad, y, keep, argmax), g has
                    // dzpad one image's padded dz planes,
                    // the stage's output size, dz one scratch per filter, the
                    // gradients the parameters' sizes, dxpad batch padded images.
                    unsafe { call(kernel.expect("conv stages are compiled"), &args, batch) };
                    crop_from(&s.dxpad, &geom, h, w, conv.pad, batch, &mut dx);
                }
                (StageKind::Pool(_), StageGeom::Pool { .. }) => {
                    let mut args = [unused(); 5];
                    args[pool_args::X] = ptr(x);
                    args[pool_args::Y] = ptr(y);
                    args[pool_args::ARGMAX] = s.argmax.as_mut_ptr().cast();
                    args[pool_args::DY] = ptr(&g);
                    args[pool_args::DX] = ptr_mut(&mut dx);
                    // SAFETY: x, y, argmax from the training forward of this
                    // batch; g and dx have the stage's output and input sizes.
                    unsafe { call(kernel.expect("pool stages are compiled"), &args, batch) };
                }
                (StageKind::Dense { units, .. }, StageGeom::Dense(_)) => {
                    let (wi, bi) = (s.weight.expect("dense has a weight"), s.bias);
                    let mut dz = vec![0.0f32; batch * units];
                    let mut args = [unused(); 8];
                    args[dense::bwd::X] = ptr(x);
                    args[dense::bwd::WEIGHT] = ptr(&self.params[wi].value);
                    args[dense::bwd::DY] = ptr(&g);
                    args[dense::bwd::Y] = ptr(y);
                    args[dense::bwd::GW] = ptr_mut(&mut self.params[wi].grad);
                    args[dense::bwd::GB] = bi.map_or_else(unused, |i| ptr_mut(&mut self.params[i].grad));
                    args[dense::bwd::DX] = ptr_mut(&mut dx);
                    args[dense::bwd::DZ] = ptr_mut(&mut dz);
                    // SAFETY: x, y from the training forward (batch × inputs,
                    // batch × units); g, dz batch × units; dx batch × inputs;
                    // the gradients the parameters' sizes.
                    unsafe { call(kernel.expect("dense stages are compiled"), &args, batch) };
                }
                (StageKind::Activation(a), _) => {
                    for ((dx, g), y) in dx.iter_mut().zip(&g).zip(y) {
                        *dx = g * a.derivative_at_output(*y);
                    }
                }
                (StageKind::Dropout { .. }, _) => {
                    for ((dx, g), m) in dx.iter_mut().zip(&g).zip(&s.mask) {
                        *dx = g * m;
                    }
                }
                _ => dx.copy_from_slice(&g),
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

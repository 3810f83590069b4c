//! The Cranelift JIT: every conv, pool and dense stage of the plan becomes
//! machine code specialised to its shapes (all sizes are constants, kernel
//! taps unrolled, loops kept), compiled at run time for the host CPU.
//!
//! Settings (measured; see docs/design.md): `opt_level = "none"` — "speed" spills
//! the many live accumulators and ran slower — and the host ISA from
//! `cranelift-native`, so `fma` becomes `vfmadd`. The verifier is on in
//! debug builds and tests.

mod conv;
mod dense;
mod emit;
mod imports;
mod network;
mod runtime_calls;

pub use network::JitNetwork;

use std::fmt;
use std::time::Instant;

use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature, UserFuncName, types};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module};

use crate::graph::Graph;
use crate::plan::{Plan, StageKind};
use emit::{Fx, Import, RuntimeFns};
use imports::{Params, convc_fmaf, import};

/// A compiled kernel: `args` is a table of buffer pointers whose lengths
/// the caller checked against `batch`.
pub(crate) type KernelFn = unsafe extern "C" fn(args: *const *mut u8, batch: i64);

#[derive(Debug, Clone)]
pub struct JitError(pub String);

impl fmt::Display for JitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JIT compilation failed: {}", self.0)
    }
}

impl std::error::Error for JitError {}

/// Options of [`compile_with`].
#[derive(Debug, Clone, Copy)]
pub struct JitOptions {
    /// Fuse conv + activation + pool into one stage (see [`crate::plan`]).
    pub fuse: bool,
    /// Seed of the initial parameters (the same values as the interpreter's).
    pub seed: u64,
    /// Threads a batch is split over (data-parallel); results depend on it
    /// only through the order of the gradient sums.
    pub threads: usize,
    /// Use the host's AVX/FMA/AVX-512 (the default). Off, the code targets
    /// baseline x86-64 with SSE4.2 and `fma` becomes a call to `fmaf` — how
    /// the JIT behaves on a CPU without FMA; the tests run it this way too.
    pub host_features: bool,
    /// Run conv and dense stages on the runtime's GEMM microkernels (the
    /// default; see `runtime_calls`). Off, every stage runs the JIT's own
    /// direct kernels (128-bit vectors) — to compare the two.
    pub microkernels: bool,
}

impl Default for JitOptions {
    fn default() -> Self {
        Self { fuse: true, seed: 0, threads: 1, host_features: true, microkernels: true }
    }
}

/// Compile a checked graph with default options and the given seed.
pub fn compile(graph: &Graph, seed: u64) -> Result<JitNetwork, JitError> {
    compile_with(graph, JitOptions { seed, ..JitOptions::default() })
}

pub fn compile_with(graph: &Graph, options: JitOptions) -> Result<JitNetwork, JitError> {
    let start = Instant::now();
    let plan = Plan::new(graph, options.fuse);
    let mut jit = Jit::new(options.host_features)?;
    let mut kernels = Vec::new();
    for (index, stage) in plan.stages.iter().enumerate() {
        let k = match &stage.kind {
            StageKind::Conv { .. } | StageKind::Pool(_) | StageKind::Dense { .. } => Some([
                jit.declare(&format!("s{index}_infer"))?,
                jit.declare(&format!("s{index}_train"))?,
                jit.declare(&format!("s{index}_backward"))?,
            ]),
            _ => None,
        };
        kernels.push(k);
    }
    let geoms: Vec<network::StageGeom> = plan.stages.iter().map(network::StageGeom::of).collect();
    let micro = options.microkernels;
    for ((stage, ids), geom) in plan.stages.iter().zip(&kernels).zip(&geoms) {
        let Some([infer, train, backward]) = ids else { continue };
        jit.define(*infer, |fx| network::emit_stage(fx, stage, geom, network::Pass::Infer, micro))?;
        jit.define(*train, |fx| network::emit_stage(fx, stage, geom, network::Pass::Train, micro))?;
        jit.define(*backward, |fx| network::emit_stage(fx, stage, geom, network::Pass::Backward, micro))?;
    }
    jit.module.finalize_definitions().map_err(|e| JitError(e.to_string()))?;
    let compiled: Vec<Option<[KernelFn; 3]>> = kernels
        .iter()
        .map(|ids| {
            ids.map(|ids| {
                ids.map(|id| {
                    let code = jit.module.get_finalized_function(id);
                    // SAFETY: `code` is a function we defined above with the
                    // signature `(ptr, i64) -> ()` (see `Jit::signature`),
                    // which is `KernelFn`'s C ABI, and the module that owns
                    // the code is kept alive by the network (`_module`).
                    unsafe { std::mem::transmute::<*const u8, KernelFn>(code) }
                })
            })
        })
        .collect();
    let code = network::Code::new(jit.module);
    let stages = plan.stages.iter().zip(&geoms).zip(compiled).map(|((s, g), k)| network::stage_def(s, g, k, micro, &code)).collect();
    let compile_time = start.elapsed();
    Ok(JitNetwork::new(graph, &plan, stages, options.seed, options.threads, compile_time))
}

struct Jit {
    module: JITModule,
    ctx: cranelift_codegen::Context,
    fctx: FunctionBuilderContext,
    /// The runtime's functions, by [`Import`].
    imports: [FuncId; Import::ALL.len()],
    /// See `Fx::unaligned_vectors`.
    unaligned_vectors: bool,
}

impl Jit {
    fn new(host_features: bool) -> Result<Self, JitError> {
        let err = |e: &dyn fmt::Display| JitError(e.to_string());
        let mut flags = settings::builder();
        flags.set("is_pic", "false").map_err(|e| err(&e))?;
        flags.set("opt_level", "none").map_err(|e| err(&e))?;
        flags.set("enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" }).map_err(|e| err(&e))?;
        let mut isa = cranelift_native::builder().map_err(|e| err(&e))?;
        if !host_features {
            for flag in
                ["has_fma", "has_avx", "has_avx2", "has_avx512f", "has_avx512vl", "has_avx512dq", "has_avx512bitalg", "has_avx512vbmi"]
            {
                // A flag this Cranelift does not know is simply not in use.
                let _ = isa.set(flag, "false");
            }
        }
        let isa = isa.finish(settings::Flags::new(flags)).map_err(|e| err(&e))?;
        let mut builder = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
        builder.symbol("fmaf", convc_fmaf as *const u8);
        for i in Import::ALL {
            let (name, address, _) = import(i);
            builder.symbol(name, address);
        }
        let mut module = JITModule::new(builder);
        let mut imports = Vec::new();
        for i in Import::ALL {
            let (name, _, params) = import(i);
            let mut sig = module.make_signature();
            match params {
                Params::Unary => {
                    sig.params.push(AbiParam::new(types::F32));
                    sig.returns.push(AbiParam::new(types::F32));
                }
                Params::Words(count) => sig.params.extend((0..count).map(|_| AbiParam::new(types::I64))),
            }
            imports.push(module.declare_function(name, Linkage::Import, &sig).map_err(|e| err(&e))?);
        }
        let imports = imports.try_into().expect("one FuncId per import");
        let ctx = module.make_context();
        #[cfg(target_arch = "x86_64")]
        let unaligned_vectors = host_features && std::arch::is_x86_feature_detected!("avx");
        #[cfg(not(target_arch = "x86_64"))]
        let unaligned_vectors = true;
        Ok(Self { module, ctx, fctx: FunctionBuilderContext::new(), imports, unaligned_vectors })
    }

    fn signature(&self) -> Signature {
        let mut sig = self.module.make_signature();
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I64));
        sig
    }

    fn declare(&mut self, name: &str) -> Result<FuncId, JitError> {
        let sig = self.signature();
        self.module.declare_function(name, Linkage::Local, &sig).map_err(|e| JitError(e.to_string()))
    }

    fn define(&mut self, id: FuncId, body: impl FnOnce(&mut Fx)) -> Result<(), JitError> {
        self.ctx.func.signature = self.signature();
        self.ctx.func.name = UserFuncName::user(0, id.as_u32());
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let runtime = RuntimeFns(self.imports.map(|id| self.module.declare_func_in_func(id, b.func)));
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let (args, batch) = (b.block_params(entry)[0], b.block_params(entry)[1]);
            let mut fx = Fx { b, args, batch, runtime, unaligned_vectors: self.unaligned_vectors };
            body(&mut fx);
            fx.b.ins().return_(&[]);
            fx.b.seal_all_blocks();
            fx.b.finalize(self.module.target_config());
        }
        let result = self.module.define_function(id, &mut self.ctx).map_err(|e| JitError(format!("{e:?}")));
        self.module.clear_context(&mut self.ctx);
        result
    }
}

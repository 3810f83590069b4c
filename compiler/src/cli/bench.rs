//! `convc bench`: how fast a backend runs a spec on this machine.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use convc_compiler::spec::OptimizerKind;
use convc_runtime::kernels::peak;
use convc_runtime::train::bench::{BenchMode, time_model};
use serde::Serialize;

use super::{Backend, CliError, build_model, load_graph};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Infer,
    Train,
}

#[derive(Args)]
pub struct BenchArgs {
    spec: PathBuf,
    /// Backends to measure (repeatable; default: jit and interp).
    #[arg(long, value_enum)]
    backend: Vec<Backend>,
    /// Images per batch.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// JIT threads (default: every core; the interpreter uses one).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
    /// What to time (repeatable; default: both).
    #[arg(long, value_enum)]
    mode: Vec<ModeArg>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// JIT: no conv + activation + pool fusion.
    #[arg(long)]
    no_fusion: bool,
    /// One JSON object per measurement, one per line.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Measurement {
    network: String,
    backend: &'static str,
    mode: &'static str,
    batch: usize,
    threads: usize,
    fused: bool,
    images_per_s: f64,
    /// Per batch.
    latency_us: f64,
    gflops: f64,
    /// Of the measured peak of the cores used.
    peak_fraction: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    compile_ms: Option<f64>,
}

pub fn run(args: BenchArgs) -> Result<(), CliError> {
    let graph = load_graph(&args.spec)?;
    let backends = if args.backend.is_empty() { vec![Backend::Jit, Backend::Interp] } else { args.backend.clone() };
    let modes = if args.mode.is_empty() { vec![ModeArg::Infer, ModeArg::Train] } else { args.mode.clone() };
    // `time_model` trains with SGD.
    super::memory::check(&graph, args.batch as usize, modes.contains(&ModeArg::Train).then_some(OptimizerKind::Sgd))?;
    let peak = peak::measure();
    if !args.json {
        println!("peak: {:.1} GFLOP/s per core ({}, measured)", peak.flops_per_core / 1e9, peak.isa);
    }
    let batch = args.batch as usize;
    // FLOPs: 2 per multiply-accumulate; a training step counts forward,
    // input gradient and weight gradient: three times the forward.
    let forward_flops = 2.0 * graph.macs() as f64;
    for &backend in &backends {
        let threads = if backend == Backend::Jit { args.threads.map_or_else(super::all_cores, |t| t as usize) } else { 1 };
        let (mut model, compile_time) = build_model(&graph, backend, 0, !args.no_fusion, threads)?;
        // Code generation and compilation only (not parameter initialisation).
        let compile_ms = compile_time.map(|t| t.as_secs_f64() * 1e3);
        for &mode in &modes {
            let (bench_mode, name, flops) = match mode {
                ModeArg::Infer => (BenchMode::Infer, "infer", forward_flops),
                ModeArg::Train => (BenchMode::Train, "train", 3.0 * forward_flops),
            };
            let timing = time_model(model.as_mut(), threads, batch, bench_mode, Duration::from_secs_f64(args.seconds))?;
            let secs = timing.per_batch.as_secs_f64();
            let gflops = flops * batch as f64 / secs / 1e9;
            let m = Measurement {
                network: graph.name.clone(),
                backend: backend.name(),
                mode: name,
                batch,
                threads,
                fused: backend == Backend::Jit && !args.no_fusion,
                images_per_s: batch as f64 / secs,
                latency_us: secs * 1e6,
                gflops,
                peak_fraction: gflops * 1e9 / (peak.flops_per_core * threads as f64),
                compile_ms,
            };
            if args.json {
                println!("{}", serde_json::to_string(&m).expect("plain data"));
            } else {
                println!(
                    "{:<6} {:<5} batch {:>3}  threads {}  {:>9.0} img/s  {:>9.1} ms/batch  {:>6.1} GFLOP/s  {:>5.1}% of peak{}",
                    m.backend,
                    m.mode,
                    batch,
                    threads,
                    m.images_per_s,
                    secs * 1e3,
                    gflops,
                    100.0 * m.peak_fraction,
                    compile_ms.map_or(String::new(), |c| format!("  compile {c:.1} ms"))
                );
            }
        }
    }
    Ok(())
}

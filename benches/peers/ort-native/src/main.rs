//! `ort-native MODEL.onnx LIBONNXRUNTIME C,H,W BATCH THREADS SECONDS`:
//! the mean time of `Session::run` on a batch of `BATCH` images (one
//! input named `x`), after two warm-up runs, printed as one JSON object
//! (`latency_us`, `images_per_s`, as `peers.py` prints its rows).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, lib, shape, batch, threads, seconds] = &args[..] else {
        eprintln!("usage: ort-native MODEL.onnx LIBONNXRUNTIME C,H,W BATCH THREADS SECONDS");
        return ExitCode::from(2);
    };
    match run(model, lib, shape, batch, threads, seconds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ort-native: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(model: &str, lib: &str, shape: &str, batch: &str, threads: &str, seconds: &str) -> Result<(), String> {
    let number = |what: &str, v: &str| v.parse::<usize>().map_err(|_| format!("{what} `{v}` is not a whole number"));
    let chw: Vec<usize> = shape.split(',').map(|v| number("the shape's size", v)).collect::<Result<_, _>>()?;
    let (batch, threads) = (number("BATCH", batch)?, number("THREADS", threads)?);
    let seconds: f64 = seconds.parse().map_err(|_| format!("SECONDS `{seconds}` is not a number"))?;
    let env = ort::init_from(lib).map_err(|e| format!("{lib}: {e}"))?.build().map_err(|e| e.to_string())?;
    let fail = |e: &dyn std::fmt::Display| format!("{model}: {e}");
    let builder = Session::builder(&env).map_err(|e| fail(&e))?;
    // As Python's default session options: every graph optimization.
    let builder = builder.with_optimization_level(GraphOptimizationLevel::All).map_err(|e| fail(&e))?;
    let builder = builder.with_intra_threads(threads).map_err(|e| fail(&e))?;
    let mut builder = builder.with_inter_threads(1).map_err(|e| fail(&e))?;
    let mut session = builder.commit_from_file(model).map_err(|e| fail(&e))?;
    let dims: Vec<usize> = std::iter::once(batch).chain(chw).collect();
    let values: Vec<f32> = (0..dims.iter().product::<usize>()).map(|i| (i % 251) as f32 / 251.0).collect();
    let input = Tensor::from_array((dims, values)).map_err(|e| e.to_string())?;
    let mut step = || -> Result<(), String> {
        let outputs = session.run(ort::inputs!["x" => &input]).map_err(|e| e.to_string())?;
        std::hint::black_box(&outputs);
        Ok(())
    };
    step()?;
    step()?;
    let (start, mut runs) = (Instant::now(), 0u32);
    while runs < 3 || start.elapsed() < Duration::from_secs_f64(seconds) {
        step()?;
        runs += 1;
    }
    let per_run = start.elapsed().as_secs_f64() / f64::from(runs);
    println!("{{\"latency_us\": {}, \"images_per_s\": {}}}", per_run * 1e6, batch as f64 / per_run);
    Ok(())
}

//! The differential harness: run a spec through a backend and through the
//! interpreter with the same weights, input and dropout seed, and compare
//! logits (inference and training mode), the input gradient and every
//! parameter gradient. Written once; every backend adds a constructor.
//!
//! Tolerances, relative to the largest magnitude in the reference tensor:
//! 1e-4 for logits, 1e-3 for gradients (the backends sum in other orders,
//! and gradients sum over batch and positions).

use convc_compiler::{Graph, SourceFile, check_source};
use convc_runtime::rng::Rng;
use convc_runtime::{Mode, Model};

pub const FORWARD_TOLERANCE: f32 = 1e-4;
pub const GRADIENT_TOLERANCE: f32 = 1e-3;

pub type Build = dyn Fn(&Graph, u64) -> Box<dyn Model>;

fn compare(what: &str, got: &[f32], want: &[f32], tolerance: f32) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: {} values, the interpreter has {}", got.len(), want.len()));
    }
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        // Written so that a NaN on either side fails.
        let close = (a - b).abs() <= tolerance * scale;
        if !close {
            return Err(format!("{what}[{i}]: {a} vs the interpreter's {b} (scale {scale})"));
        }
    }
    Ok(())
}

/// Compare `build`'s network against the interpreter on `graph`.
pub fn check_against_interpreter(graph: &Graph, batch: usize, seed: u64, build: &Build) -> Result<(), String> {
    compare_with_interpreter(graph, batch, seed, build, true)
}

/// Inference logits only: for very deep networks, where a max-pool near-tie
/// that rounds the other way moves a gradient to a neighbouring position.
pub fn check_forward_against_interpreter(graph: &Graph, batch: usize, seed: u64, build: &Build) -> Result<(), String> {
    compare_with_interpreter(graph, batch, seed, build, false)
}

fn compare_with_interpreter(graph: &Graph, batch: usize, seed: u64, build: &Build, gradients: bool) -> Result<(), String> {
    let mut reference = convc_compiler::interpreter(graph, seed);
    let mut backend = build(graph, seed);
    let mut rng = Rng::new(seed ^ 0x5eed);
    // Weights: the shared initialisation, plus non-zero biases.
    for (r, b) in reference.params_mut().into_iter().zip(backend.params_mut()) {
        if r.name != b.name || r.shape != b.shape {
            return Err(format!("parameter {} {:?} vs the interpreter's {} {:?}", b.name, b.shape, r.name, r.shape));
        }
        if r.name.ends_with(".bias") {
            for v in r.value.iter_mut() {
                *v = rng.symmetric(0.2);
            }
        }
        b.value.copy_from_slice(r.value);
    }
    let x: Vec<f32> = (0..batch * graph.input.len()).map(|_| rng.next_f32()).collect();

    let want = reference.forward(&x, batch, Mode::Infer).map_err(|e| e.to_string())?.to_vec();
    let got = backend.forward(&x, batch, Mode::Infer).map_err(|e| e.to_string())?.to_vec();
    compare("inference logits", &got, &want, FORWARD_TOLERANCE)?;
    if !gradients {
        return Ok(());
    }

    // Twice: a backend whose second backward still holds something of the
    // first (gradients summed into instead of written) fails the second.
    for round in 0..2 {
        let mode = Mode::Train { seed: seed + 1 + round };
        let want = reference.forward(&x, batch, mode).map_err(|e| e.to_string())?.to_vec();
        let got = backend.forward(&x, batch, mode).map_err(|e| e.to_string())?.to_vec();
        compare("training logits", &got, &want, FORWARD_TOLERANCE)?;

        let dy: Vec<f32> = (0..want.len()).map(|_| rng.symmetric(1.0)).collect();
        reference.backward(&dy).map_err(|e| e.to_string())?;
        backend.backward(&dy).map_err(|e| e.to_string())?;
        let pass = if round == 0 { "" } else { " (second pass)" };
        compare(&format!("input gradient{pass}"), backend.input_grad(), reference.input_grad(), GRADIENT_TOLERANCE)?;
        for (r, b) in reference.params_mut().into_iter().zip(backend.params_mut()) {
            compare(&format!("gradient of {}{pass}", r.name), b.grad, r.grad, GRADIENT_TOLERANCE)?;
        }
    }
    Ok(())
}

pub fn graph(text: &str) -> Graph {
    check_source(&SourceFile::new("random.toml", text)).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

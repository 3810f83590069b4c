//! The differential harness: run a spec through a backend and through the
//! interpreter with the same weights, input and dropout seed, and compare
//! logits (inference — again after the weights change — and training
//! mode), the input gradient and every parameter gradient. Written once;
//! every backend adds a constructor.
//!
//! Tolerances, relative to the largest magnitude in the reference tensor:
//! 1e-4 for logits, 1e-3 for gradients (the backends sum in other orders,
//! and gradients sum over batch and positions).
//!
//! Gradients are discontinuous where the two largest values of a max-pool
//! window tie, or where a ReLU's input is 0: a backend that rounds
//! differently (Winograd's transforms above all, ~1e-6 of a sum's terms)
//! may take the other side of a near-tie, and the gradient of that
//! position moves — a compact patch of one image differs. So when the
//! logits match but a gradient does not, the comparison is repeated on a
//! fresh input, up to [`DRAWS`] in all: a bug fails every draw, a near-tie
//! almost never repeats. Logits must match on every draw.

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

/// Inputs a gradient comparison may be tried on (see the module doc).
pub const DRAWS: u64 = 3;

/// Where a comparison failed.
enum Mismatch {
    /// Parameters or logits: fails the check at once.
    Forward(String),
    /// A gradient, with the logits matching: tried on another input.
    Gradient(String),
}

/// Compare `build`'s network against the interpreter on `graph`.
pub fn check_against_interpreter(graph: &Graph, batch: usize, seed: u64, build: &Build) -> Result<(), String> {
    let mut first = None;
    for draw in 0..DRAWS {
        match compare_with_interpreter(graph, batch, seed, draw, build, true) {
            Ok(()) => {
                if let Some(e) = first {
                    eprintln!("{}: a gradient differed on the first input (a near-tie), matched on draw {draw}: {e}", graph.name);
                }
                return Ok(());
            }
            Err(Mismatch::Forward(e)) => return Err(e),
            Err(Mismatch::Gradient(e)) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(format!("{} (and on {} more inputs)", first.unwrap_or_default(), DRAWS - 1))
}

/// Inference logits only: for very deep networks, where near-ties are
/// likely on any input.
pub fn check_forward_against_interpreter(graph: &Graph, batch: usize, seed: u64, build: &Build) -> Result<(), String> {
    compare_with_interpreter(graph, batch, seed, 0, build, false).map_err(|(Mismatch::Forward(e) | Mismatch::Gradient(e))| e)
}

/// One comparison, on input number `draw` of the seed's.
fn compare_with_interpreter(graph: &Graph, batch: usize, seed: u64, draw: u64, build: &Build, gradients: bool) -> Result<(), Mismatch> {
    let forward = |r: Result<(), String>| r.map_err(Mismatch::Forward);
    let gradient = |r: Result<(), String>| r.map_err(Mismatch::Gradient);
    let mut reference = convc_compiler::interpreter(graph, seed);
    let mut backend = build(graph, seed);
    let mut rng = Rng::new(seed ^ 0x5eed);
    // Weights: the shared initialisation, plus non-zero biases.
    for (r, b) in reference.params_mut().into_iter().zip(backend.params_mut()) {
        if r.name != b.name || r.shape != b.shape {
            return Err(Mismatch::Forward(format!("parameter {} {:?} vs the interpreter's {} {:?}", b.name, b.shape, r.name, r.shape)));
        }
        if r.name.ends_with(".bias") {
            for v in r.value.iter_mut() {
                *v = rng.symmetric(0.2);
            }
        }
        b.value.copy_from_slice(r.value);
    }
    if draw > 0 {
        // Another input (and output gradient) from the same weights.
        rng = Rng::new((seed ^ 0x5eed).wrapping_add(draw.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    }
    let x: Vec<f32> = (0..batch * graph.input.len()).map(|_| rng.next_f32()).collect();

    let err = |e: convc_runtime::ModelError| Mismatch::Forward(e.to_string());
    let want = reference.forward(&x, batch, Mode::Infer).map_err(err)?.to_vec();
    let got = backend.forward(&x, batch, Mode::Infer).map_err(err)?.to_vec();
    forward(compare("inference logits", &got, &want, FORWARD_TOLERANCE))?;
    // New weights, as an optimizer step or a loaded checkpoint sets them: a
    // backend still reading a copy packed from the old ones fails here.
    // (Then back, for the gradients below.)
    for scale in [-0.5, -2.0] {
        for (r, b) in reference.params_mut().into_iter().zip(backend.params_mut()) {
            for (rv, bv) in r.value.iter_mut().zip(b.value.iter_mut()) {
                *rv *= scale;
                *bv = *rv;
            }
        }
        let want = reference.forward(&x, batch, Mode::Infer).map_err(err)?.to_vec();
        let got = backend.forward(&x, batch, Mode::Infer).map_err(err)?.to_vec();
        forward(compare(&format!("inference logits with the weights × {scale}"), &got, &want, FORWARD_TOLERANCE))?;
    }
    if !gradients {
        return Ok(());
    }

    // Twice: a backend whose second backward still holds something of the
    // first (gradients summed into instead of written) fails the second.
    for round in 0..2 {
        let mode = Mode::Train { seed: seed + 1 + round };
        let want = reference.forward(&x, batch, mode).map_err(err)?.to_vec();
        let got = backend.forward(&x, batch, mode).map_err(err)?.to_vec();
        forward(compare("training logits", &got, &want, FORWARD_TOLERANCE))?;

        let dy: Vec<f32> = (0..want.len()).map(|_| rng.symmetric(1.0)).collect();
        reference.backward(&dy).map_err(err)?;
        backend.backward(&dy).map_err(err)?;
        let pass = if round == 0 { "" } else { " (second pass)" };
        gradient(compare(&format!("input gradient{pass}"), backend.input_grad(), reference.input_grad(), GRADIENT_TOLERANCE))?;
        for (r, b) in reference.params_mut().into_iter().zip(backend.params_mut()) {
            gradient(compare(&format!("gradient of {}{pass}", r.name), b.grad, r.grad, GRADIENT_TOLERANCE))?;
        }
    }
    Ok(())
}

pub fn graph(text: &str) -> Graph {
    check_source(&SourceFile::new("random.toml", text)).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

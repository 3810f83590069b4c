//! Shared by the benchmarks: building each backend for a spec, and one
//! timed iteration per mode. (Each benchmark binary uses part of it.)
#![allow(dead_code)]

use convc::compiler::{Graph, SourceFile, check_source};
use convc::jit::{JitOptions, compile_with};
use convc::runtime::train::optim::{Optimizer, OptimizerConfig};
use convc::runtime::{Mode, Model};

pub fn spec_file(name: &str) -> Graph {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("specs").join(format!("{name}.toml"));
    convc::compiler::check(&path).unwrap_or_else(|e| panic!("{e}"))
}

pub fn spec_text(text: &str) -> Graph {
    check_source(&SourceFile::new("bench.toml", text)).unwrap_or_else(|e| panic!("{e}"))
}

// The macro backend: the shipped specs compiled with this benchmark.
convc::network!(pub Lenet5 = "specs/lenet5.toml");
convc::network!(pub FashionTf = "specs/fashion_tf.toml");

/// A `network!` type's network (weights from seed 0, as the other
/// backends draw them) on `threads` threads, as a `Model`.
macro_rules! declared_on {
    ($ty:ty, $threads:expr) => {{
        let mut net = <$ty>::new(0);
        net.set_threads($threads);
        Box::new(net) as Box<dyn convc::runtime::Model>
    }};
}
#[allow(unused_imports)] // used by layers.rs, not by networks.rs
pub(crate) use declared_on;

/// The `network!` type for a shipped spec, on `threads` threads.
pub fn declared(name: &str, threads: usize) -> Option<Box<dyn Model>> {
    match name {
        "lenet5" => Some(declared_on!(Lenet5, threads)),
        "fashion_tf" => Some(declared_on!(FashionTf, threads)),
        _ => None,
    }
}

/// The backends compared side by side: name and constructor. The macro
/// backend is there for the shipped specs it was compiled with.
pub fn backends(graph: &Graph) -> Vec<(&'static str, Box<dyn Model>)> {
    let jit = |fuse: bool, threads: usize| -> Box<dyn Model> {
        Box::new(compile_with(graph, JitOptions { fuse, threads, ..JitOptions::default() }).expect("compiles"))
    };
    vec![
        ("interp", Box::new(convc::compiler::interpreter(graph, 0)) as Box<dyn Model>),
        ("jit_1thread", jit(true, 1)),
        ("jit_2threads", jit(true, 2)),
    ]
    .into_iter()
    .chain(declared(&graph.name, 1).map(|m| ("macro_1thread", m)))
    .chain(declared(&graph.name, 2).map(|m| ("macro_2threads", m)))
    .collect()
}

pub fn input(model: &dyn Model, batch: usize) -> Vec<f32> {
    (0..batch * model.input_shape().len()).map(|i| (i % 255) as f32 / 255.0).collect()
}

/// The optimizer of the timed training steps: plain SGD, as the peers'
/// script gives PyTorch.
pub fn sgd() -> Optimizer {
    Optimizer::new(OptimizerConfig::Sgd { lr: 1e-3, momentum: 0.0, weight_decay: 0.0 })
}

/// One training step as training runs it — forward, loss, backward and
/// the SGD update (after which compiled backends repack their weights) —
/// with the input gradient not wanted, as in training.
pub fn train_step(model: &mut dyn Model, optimizer: &mut Optimizer, x: &[f32], labels: &[u8]) {
    model.want_input_grad(false);
    let out = convc::runtime::train::step(model, optimizer, x, labels, 1).expect("training step");
    assert!(out.loss.is_finite(), "the benchmark's training diverged");
}

pub fn infer(model: &mut dyn Model, x: &[f32], batch: usize) {
    std::hint::black_box(model.forward(x, batch, Mode::Infer).expect("forward"));
}

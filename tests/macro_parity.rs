//! `network!` networks against the interpreter: logits (inference and
//! training mode), input gradients and every parameter gradient, for every
//! case of `common/macro_cases.rs`, on one thread and split over several,
//! at batch sizes from 1 to 12 (dense layers switch from dot products to a
//! GEMM above 4 images per thread). Tolerances are the harness's: 1e-4
//! (logits) and 1e-3 (gradients) relative to the largest reference
//! magnitude. AlexNet and VGG-16 run once, at batch 1, as in the JIT's
//! tests (VGG-16 logits only: see `compiler/tests/jit.rs`).

mod common {
    pub mod macro_cases;
}

use common::macro_cases::{CASES, FashionTf, Lenet5};
use convc_testing::{differential, levels};

#[test]
fn every_declared_network_matches_the_interpreter() {
    // Run again below with CONVC_CPU forcing each lower instruction set.
    levels::running_level();
    let mut failures = Vec::new();
    for &(name, spec, build) in CASES.iter().filter(|c| !BIG.contains(&c.0)) {
        let graph = differential::graph(spec);
        for (threads, batch) in [(1, 1), (1, 3), (2, 3), (1, 8), (3, 8), (2, 12)] {
            let seed = 11 + batch as u64;
            let make = move |_: &convc::compiler::Graph, seed: u64| build(seed, threads);
            if let Err(e) = differential::check_against_interpreter(&graph, batch, seed, &make) {
                failures.push(format!("{name} (threads {threads}, batch {batch}): {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Networks too big to run through the interpreter more than once.
const BIG: [&str; 2] = ["AlexNet", "Vgg16"];

#[test]
fn alexnet_and_vgg16_match_the_interpreter() {
    for &(name, spec, build) in CASES.iter().filter(|c| BIG.contains(&c.0)) {
        let graph = differential::graph(spec);
        let make = move |_: &convc::compiler::Graph, seed: u64| build(seed, 2);
        let result = if name == "Vgg16" {
            differential::check_forward_against_interpreter(&graph, 1, 7, &make)
        } else {
            differential::check_against_interpreter(&graph, 1, 7, &make)
        };
        result.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn declared_types_have_the_spec_shapes() {
    assert_eq!((Lenet5::C, Lenet5::H, Lenet5::W), (1, 28, 28));
    assert_eq!(Lenet5::CLASSES, 10);
    assert_eq!(FashionTf::PARAMS, 3_274_634);
    for &(name, spec, build) in CASES {
        let graph = differential::graph(spec);
        let net = build(0, 1);
        assert_eq!(net.param_count() as u64, graph.param_count(), "{name}");
        assert_eq!(net.input_shape(), graph.input, "{name}");
    }
}

#[test]
fn skipping_the_input_gradient_changes_no_parameter_gradient() {
    use convc::runtime::Mode;
    for &(name, _, build) in CASES.iter().filter(|c| !BIG.contains(&c.0)) {
        let (mut full, mut lean) = (build(5, 2), build(5, 2));
        lean.want_input_grad(false);
        let x: Vec<f32> = (0..6 * full.input_shape().len()).map(|i| (i % 13) as f32 / 13.0).collect();
        for net in [&mut full, &mut lean] {
            let logits = net.forward(&x, 6, Mode::Train { seed: 3 }).unwrap().to_vec();
            let dy: Vec<f32> = logits.iter().map(|v| v.sin()).collect();
            net.backward(&dy).unwrap();
        }
        assert_eq!(full.input_grad().len(), x.len(), "{name}");
        assert!(lean.input_grad().is_empty(), "{name}");
        for (a, b) in full.params_mut().into_iter().zip(lean.params_mut()) {
            assert_eq!(a.grad, b.grad, "{name}: {}", a.name);
        }
    }
}

/// The lower levels' versions of every kernel (the CPU's best runs in the
/// test above): that test again, in this test binary with `CONVC_CPU` set.
#[test]
fn lower_instruction_set_versions_match_too() {
    levels::at_lower_levels("every_declared_network_matches_the_interpreter");
}

//! The Cranelift JIT against the interpreter: every shipped spec and 200
//! random specs, forward and backward, fused and unfused, on one thread
//! and split over several, on the runtime's microkernels and on the JIT's
//! direct kernels.

use std::path::Path;

use convc_compiler::Graph;
use convc_compiler::codegen::cranelift::{JitOptions, compile_with};
use convc_runtime::Model;
use convc_testing::differential::{check_against_interpreter, check_forward_against_interpreter, graph};
use convc_testing::levels;
use convc_testing::random_spec::random_spec;

fn jit(fuse: bool, threads: usize) -> impl Fn(&Graph, u64) -> Box<dyn Model> {
    jit_with(JitOptions { fuse, threads, ..JitOptions::default() })
}

fn jit_with(options: JitOptions) -> impl Fn(&Graph, u64) -> Box<dyn Model> {
    move |g: &Graph, seed: u64| {
        Box::new(compile_with(g, JitOptions { seed, ..options }).unwrap_or_else(|e| panic!("{e}"))) as Box<dyn Model>
    }
}

/// A CPU without FMA or AVX: `fma` becomes a call to `fmaf`.
#[test]
fn baseline_isa_matches_the_interpreter() {
    for seed in 1000..1020 {
        let (text, batch) = random_spec(seed);
        let options = JitOptions { host_features: false, threads: 2, ..JitOptions::default() };
        check_against_interpreter(&graph(&text), batch, seed, &jit_with(options)).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
    }
}

#[test]
fn random_specs_match_the_interpreter() {
    levels::running_level();
    let mut failures = Vec::new();
    for seed in 0..200 {
        let (text, batch) = random_spec(seed);
        let g = graph(&text);
        // Fused on one thread, unfused split over two (three for odd seeds),
        // and fused on the direct kernels.
        for (fuse, threads, microkernels) in [(true, 1, true), (false, 2 + (seed % 2) as usize, true), (true, 2, false)] {
            let options = JitOptions { fuse, threads, microkernels, ..JitOptions::default() };
            if let Err(e) = check_against_interpreter(&g, batch, seed, &jit_with(options)) {
                failures
                    .push(format!("seed {seed}, batch {batch}, fuse {fuse}, threads {threads}, microkernels {microkernels}: {e}\n{text}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches; first:\n{}", failures.len(), failures.first().map_or("", String::as_str));
}

#[test]
fn shipped_specs_match_the_interpreter() {
    let load = |name: &str| convc_compiler::check(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../specs/{name}.toml"))).unwrap();
    for (name, batch) in [("lenet5", 3), ("fashion_tf", 2), ("alexnet", 1)] {
        check_against_interpreter(&load(name), batch, 7, &jit(true, 2)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // VGG-16: 15 GMACs per image through 13 ReLU convs and 5 max pools. Its
    // logits are compared; its gradients are not, because a max-pool
    // near-tie that rounds the other way in one backend moves a gradient to
    // the neighbouring position (seen: one input-gradient value 1.7% off),
    // and because the interpreter's backward takes over a minute.
    check_forward_against_interpreter(&load("vgg16"), 1, 7, &jit(true, 2)).unwrap_or_else(|e| panic!("vgg16: {e}"));
}

/// Convs that run as Winograd F(4×4, 5×5) on AVX-512 (see the runtime's
/// `winograd::applies`): partial last tiles, padding 2 and 1, 17 filters,
/// tanh after the transform, an average pool and a stage without pool —
/// forward and backward (the input gradient by the adjoint Winograd conv),
/// fused and not, on one and two threads.
#[test]
fn winograd_convs_match_the_interpreter() {
    levels::running_level();
    let text = "[network]\ninput = [16, 11, 12]\nrounding = \"floor\"\n[[layer]]\ntype = \"conv2d\"\nfilters = 17\nkernel = 5\npadding = \"same\"\nactivation = \"tanh\"\n[[layer]]\ntype = \"conv2d\"\nfilters = 16\nkernel = 5\npadding = 1\nactivation = \"relu\"\n[[layer]]\ntype = \"avg_pool\"\nsize = 2\n[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"dense\"\nunits = 5\n";
    for (fused, threads, batch) in [(true, 1, 1), (true, 2, 5), (false, 2, 3)] {
        check_against_interpreter(&graph(text), batch, 9, &jit(fused, threads))
            .unwrap_or_else(|e| panic!("fused {fused}, {threads} threads, batch {batch}: {e}"));
    }
}

/// Convs over few channels that run direct (as `direct::applies` on
/// AVX-512): three vectors a row, the last partial; panels of three, eight
/// and one filters; a second conv over three channels whose input
/// gradient is wanted — forward and backward, fused and not, one and two
/// threads.
#[test]
fn direct_convs_match_the_interpreter() {
    levels::running_level();
    let text = "[network]\ninput = [1, 6, 40]\n[[layer]]\ntype = \"conv2d\"\nfilters = 3\nkernel = 3\npadding = \"same\"\nactivation = \"relu\"\n[[layer]]\ntype = \"conv2d\"\nfilters = 9\nkernel = 5\npadding = 2\nactivation = \"tanh\"\n[[layer]]\ntype = \"max_pool\"\nsize = 2\n[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"dense\"\nunits = 4\n";
    for (fused, threads, batch) in [(true, 1, 1), (true, 2, 5), (false, 2, 3)] {
        check_against_interpreter(&graph(text), batch, 11, &jit(fused, threads))
            .unwrap_or_else(|e| panic!("fused {fused}, {threads} threads, batch {batch}: {e}"));
    }
}

/// The runtime's vectorised 2×2 max pool (16 outputs per step, the last
/// step masked), fused into conv stages and as a stage of its own, with
/// and without an activation, at every output width from 4 to 9 (input
/// widths 8 to 18): logits, and in training the gradients routed through
/// each window's maximum.
#[test]
fn fused_max_pools_of_every_width_match_the_interpreter() {
    levels::running_level();
    for width in (8..20).step_by(2) {
        for activation in ["relu", "none"] {
            let text = format!(
                "[network]\ninput = [2, 6, {width}]\n[[layer]]\ntype = \"conv2d\"\nfilters = 3\nkernel = 3\npadding = \"same\"\nactivation = \"{activation}\"\n[[layer]]\ntype = \"max_pool\"\nsize = 2\n[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"dense\"\nunits = 4\n"
            );
            check_against_interpreter(&graph(&text), 3, width as u64, &jit(true, 1))
                .unwrap_or_else(|e| panic!("width {width}, {activation}: {e}"));
            // The pool as a stage of its own, over a chunk of several images.
            check_against_interpreter(&graph(&text), 5, width as u64, &jit(false, 2))
                .unwrap_or_else(|e| panic!("width {width}, {activation}, unfused: {e}"));
        }
    }
}

/// The kernels' lower-level versions (the tests above run the CPU's best):
/// the tests that reach every kernel — random specs, Winograd, direct and
/// pooled convs — again in this test binary with `CONVC_CPU` set to each
/// level below it.
#[test]
fn lower_instruction_set_levels_match_too() {
    for test in [
        "random_specs_match_the_interpreter",
        "winograd_convs_match_the_interpreter",
        "direct_convs_match_the_interpreter",
        "fused_max_pools_of_every_width_match_the_interpreter",
    ] {
        levels::at_lower_levels(test);
    }
}

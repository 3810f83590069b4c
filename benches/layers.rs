//! Single layers (each as a one-layer network), forward at batch 64:
//! conv, the fused conv+ReLU+pool stage against the same three layers
//! unfused, dense, and each pooling type — interpreter and JIT (one thread;
//! on the runtime's microkernels, and for conv and dense also on the JIT's
//! direct kernels), and the `network!` code on one thread for conv, the fused stage and dense
//! (fashion_tf's conv1 and conv2 stages are 80.3 MFLOP and 1.28 GFLOP per
//! batch of 64: divide by the time for GFLOP/s, and by `convc bench`'s peak
//! for the fraction). `winograd/…`: fashion_tf's conv2 kernels per image;
//! `filter_lanes/…`: LeNet-5's conv2 and two wider 3 × 3 convs per image,
//! against the im2col + GEMM path.

mod common;

use std::time::Duration;

use common::{infer, input, spec_text};
use convc::jit::{JitOptions, compile_with};
use convc::runtime::Model;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 64;

// The same layers declared with the macro (specs must be literals here).
convc::network!(
    MacroConv = r#"
    [network]
    input = [32, 14, 14]
    [[layer]]
    type = "conv2d"
    filters = 64
    kernel = 5
    padding = "same"
"#
);
convc::network!(
    MacroConvReluMaxpool = r#"
    [network]
    input = [32, 14, 14]
    [[layer]]
    type = "conv2d"
    filters = 64
    kernel = 5
    padding = "same"
    [[layer]]
    type = "relu"
    [[layer]]
    type = "max_pool"
    size = 2
"#
);
convc::network!(
    MacroConv1ReluMaxpool = r#"
    [network]
    input = [1, 28, 28]
    [[layer]]
    type = "conv2d"
    filters = 32
    kernel = 5
    padding = "same"
    [[layer]]
    type = "relu"
    [[layer]]
    type = "max_pool"
    size = 2
"#
);
convc::network!(
    MacroDense = r#"
    [network]
    input = [64, 7, 7]
    [[layer]]
    type = "flatten"
    [[layer]]
    type = "dense"
    units = 1024
"#
);

/// The macro-declared version of a case, on one thread.
fn declared(name: &str) -> Option<Box<dyn Model>> {
    match name {
        "conv5x5_32to64" => Some(common::declared_on!(MacroConv, 1)),
        "conv_relu_maxpool" => Some(common::declared_on!(MacroConvReluMaxpool, 1)),
        "conv1_relu_maxpool" => Some(common::declared_on!(MacroConv1ReluMaxpool, 1)),
        "dense_3136to1024" => Some(common::declared_on!(MacroDense, 1)),
        _ => None,
    }
}

/// fashion_tf's second conv: 32×14×14 → 64×14×14, 5×5, same padding.
const CONV: &str = "[network]\ninput = [32, 14, 14]\n[[layer]]\ntype = \"conv2d\"\nfilters = 64\nkernel = 5\npadding = \"same\"\n";

fn layers(c: &mut Criterion) {
    let fused_stage = format!("{CONV}[[layer]]\ntype = \"relu\"\n[[layer]]\ntype = \"max_pool\"\nsize = 2\n");
    let cases: Vec<(&str, String)> = vec![
        ("conv5x5_32to64", CONV.to_string()),
        ("conv_relu_maxpool", fused_stage),
        (
            "conv1_relu_maxpool",
            "[network]\ninput = [1, 28, 28]\n[[layer]]\ntype = \"conv2d\"\nfilters = 32\nkernel = 5\npadding = \"same\"\n[[layer]]\ntype = \"relu\"\n[[layer]]\ntype = \"max_pool\"\nsize = 2\n".into(),
        ),
        (
            "dense_3136to1024",
            "[network]\ninput = [64, 7, 7]\n[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"dense\"\nunits = 1024\n".into(),
        ),
        ("max_pool", "[network]\ninput = [32, 28, 28]\n[[layer]]\ntype = \"max_pool\"\nsize = 2\n".into()),
        ("avg_pool", "[network]\ninput = [32, 28, 28]\n[[layer]]\ntype = \"avg_pool\"\nsize = 2\n".into()),
        ("l2_pool", "[network]\ninput = [32, 28, 28]\n[[layer]]\ntype = \"l2_pool\"\nsize = 2\n".into()),
    ];
    for (name, text) in cases {
        let graph = spec_text(&text);
        let mut group = c.benchmark_group(format!("layer/{name}"));
        group.throughput(Throughput::Elements(BATCH as u64));
        group.measurement_time(Duration::from_secs(3)).sample_size(10);
        let mut models: Vec<(&str, Box<dyn Model>)> = vec![
            ("interp", Box::new(convc::compiler::interpreter(&graph, 0))),
            ("jit", Box::new(compile_with(&graph, JitOptions::default()).expect("compiles"))),
        ];
        if name.contains("relu_maxpool") {
            // The same three layers, one stage each: what fusion buys.
            models.push((
                "jit_unfused",
                Box::new(compile_with(&graph, JitOptions { fuse: false, ..JitOptions::default() }).expect("compiles")),
            ));
        }
        if name.starts_with("conv") || name.starts_with("dense") {
            // The JIT's own 128-bit kernels instead of the runtime's microkernels.
            models.push((
                "jit_direct",
                Box::new(compile_with(&graph, JitOptions { microkernels: false, ..JitOptions::default() }).expect("compiles")),
            ));
        }
        models.extend(declared(name).map(|m| ("macro_1thread", m)));
        for (backend, mut model) in models {
            let x = input(model.as_ref(), BATCH);
            group.bench_function(BenchmarkId::from_parameter(backend), |b| b.iter(|| infer(model.as_mut(), &x, BATCH)));
        }
        group.finish();
    }
}

/// fashion_tf's conv2 as Winograd F(4×4, 5×5) kernels, per image (the
/// runtime's entry points that the JIT and the macro's code call): the
/// forward transform-GEMMs-transform, the input gradient (the adjoint conv)
/// and the weight gradient's accumulation — and the forward as im2col +
/// GEMM, the path Winograd replaces (`winograd::applies`). At the CPU's
/// level; `CONVC_CPU` lowers it.
fn winograd(c: &mut Criterion) {
    use convc::runtime::kernels::gemm::{PackedA, gemm_packed};
    use convc::runtime::kernels::im2col::{self as rows, Im2col};
    use convc::runtime::kernels::winograd::{self, Winograd};
    use convc::runtime::rng::Rng;
    let d = Winograd { c: 32, h: 14, w: 14, pad: [2, 2], filters: 64, oh: 14, ow: 14 };
    let adjoint = d.adjoint();
    let mut rng = Rng::new(1);
    let mut draw = |n: usize, scale: f32| -> Vec<f32> { (0..n).map(|_| rng.symmetric(scale)).collect() };
    let (x, dz, weight) = (draw(32 * 196, 1.0), draw(64 * 196, 1.0), draw(64 * 32 * 25, 0.1));
    let (mut u, mut ut) = (PackedA::default(), PackedA::default());
    winograd::pack_filters(&d, &weight, false, &mut u);
    winograd::pack_filters(&adjoint, &weight, true, &mut ut);
    let (mut y, mut dx, mut acc) = (vec![0.0; 64 * 196], vec![0.0; 32 * 196], vec![0.0; d.grad_len()]);
    let mut group = c.benchmark_group("winograd/conv5x5_32to64_14x14");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3)).sample_size(20);
    group.bench_function("forward", |b| b.iter(|| winograd::conv(&d, &x, &u, &[], true, &mut y)));
    group.bench_function("input_gradient", |b| b.iter(|| winograd::conv(&adjoint, &dz, &ut, &[], false, &mut dx)));
    group.bench_function("weight_gradient", |b| b.iter(|| winograd::weight_grad_acc(&d, &x, &dz, &mut acc)));
    let g = Im2col { c: 32, h: 14, w: 14, kernel: [5, 5], stride: [1, 1], pad: [2, 2], oh: 14, ow: 14 };
    let mut packed = PackedA::default();
    packed.pack(&weight, 64, 32 * 25);
    let (mut cols, mut xpad) = (vec![0.0; g.cols_len()], vec![0.0; g.xpad_len()]);
    group.bench_function("forward/im2col_gemm", |b| {
        b.iter(|| {
            rows::im2col(&g, &x, &mut xpad, &mut cols);
            gemm_packed(&packed, &cols, 196, 196, &[], true, &mut y, 196);
        })
    });
    group.finish();
}

/// Convs with the filters in the lanes per image, against the im2col +
/// GEMM path they replace — forward (+ ReLU + 2×2 max pool with indices),
/// and the backward's weight and input gradients together: LeNet-5's conv2
/// (6 → 16 channels, 5 × 5, 14 × 14 → 10 × 10, whose forward runs by
/// Winograd down the columns) and two wider 3 × 3 convs (64 → 64 channels
/// on 28 × 28 and 256 → 256 on 14 × 14, padded). At the CPU's level;
/// `CONVC_CPU` lowers it.
fn filter_lanes(c: &mut Criterion) {
    use convc::runtime::kernels::filter_lanes::{self as lanes, Output};
    use convc::runtime::kernels::gemm::{PackedA, gemm_packed};
    use convc::runtime::kernels::im2col::{self as rows, Im2col};
    use convc::runtime::rng::Rng;
    let shapes = [
        ("conv5x5_6to16_14x14", Im2col { c: 6, h: 14, w: 14, kernel: [5, 5], stride: [1, 1], pad: [0, 0], oh: 10, ow: 10 }, 16),
        ("conv3x3_64to64_28x28", Im2col { c: 64, h: 28, w: 28, kernel: [3, 3], stride: [1, 1], pad: [1, 1], oh: 28, ow: 28 }, 64),
        ("conv3x3_256to256_14x14", Im2col { c: 256, h: 14, w: 14, kernel: [3, 3], stride: [1, 1], pad: [1, 1], oh: 14, ow: 14 }, 256),
    ];
    for (name, d, f) in shapes {
        let (taps, plane, inputs) = (d.c * d.kernel[0] * d.kernel[1], d.oh * d.ow, d.c * d.h * d.w);
        let pooled = f * (d.oh / 2) * (d.ow / 2);
        let mut rng = Rng::new(2);
        let mut draw = |n: usize, scale: f32| -> Vec<f32> { (0..n).map(|_| rng.symmetric(scale)).collect() };
        let (x, dz, weight, bias) = (draw(inputs, 1.0), draw(f * plane, 1.0), draw(f * taps, 0.1), draw(f, 0.1));
        let (mut wf, mut wt) = (PackedA::default(), PackedA::default());
        let (mut packed, mut packed_t) = (PackedA::default(), PackedA::default());
        lanes::pack_forward(&d, f, &weight, &mut wf);
        lanes::pack_weights(&d, f, &weight, &mut wt);
        packed.pack(&weight, f, taps);
        packed_t.pack_transposed(&weight, f, taps);
        let (mut z, mut y, mut argmax) = (vec![0.0; f * plane], vec![0.0; pooled], vec![0u32; pooled]);
        let (mut cols, mut xpad) = (vec![0.0; d.cols_len()], vec![0.0; d.xpad_len()]);
        let (mut acc, mut gw, mut dx) = (vec![0.0; lanes::grad_len(&d, f)], vec![0.0; f * taps], vec![0.0; inputs]);
        let mut group = c.benchmark_group(format!("filter_lanes/{name}"));
        group.throughput(Throughput::Elements(1));
        group.measurement_time(Duration::from_secs(3)).sample_size(20);
        group.bench_function("forward_pool/lanes", |b| {
            b.iter(|| lanes::forward(&d, &x, &wf, &bias, true, f, Output::MaxPool { y: &mut y, argmax: &mut argmax }))
        });
        group.bench_function("forward_pool/im2col_gemm", |b| {
            b.iter(|| {
                rows::im2col(&d, &x, &mut xpad, &mut cols);
                gemm_packed(&packed, &cols, plane, plane, &bias, true, &mut z, plane);
                convc::runtime::kernels::pool::max_pool_2x2(&z, f, d.oh, d.ow, &mut y, &mut argmax);
            })
        });
        group.bench_function("backward/lanes", |b| b.iter(|| lanes::backward(&d, &x, &dz, f, &wt, &mut acc, &mut dx)));
        group.bench_function("backward/im2row_gemm_col2im", |b| {
            b.iter(|| {
                rows::weight_grad(&d, &x, &mut xpad, &mut cols, &dz, f, &mut gw);
                gemm_packed(&packed_t, &dz, plane, plane, &[], false, &mut cols, plane);
                rows::col2im(&d, &cols, &mut dx);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, layers, winograd, filter_lanes);
criterion_main!(benches);

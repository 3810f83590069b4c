//! Single layers (each as a one-layer network), forward at batch 64:
//! conv, the fused conv+ReLU+pool stage against the same three layers
//! unfused, dense, and each pooling type.

mod common;

use std::time::Duration;

use common::{infer, input, spec_text};
use convc::jit::{JitOptions, compile_with};
use convc::runtime::Model;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 64;

/// fashion_tf's second conv: 32×14×14 → 64×14×14, 5×5, same padding.
const CONV: &str = "[network]\ninput = [32, 14, 14]\n[[layer]]\ntype = \"conv2d\"\nfilters = 64\nkernel = 5\npadding = \"same\"\n";

fn layers(c: &mut Criterion) {
    let fused_stage = format!("{CONV}activation = \"relu\"\n[[layer]]\ntype = \"max_pool\"\nsize = 2\n");
    let cases: Vec<(&str, String)> = vec![
        ("conv5x5_32to64", CONV.to_string()),
        ("conv_relu_maxpool", fused_stage),
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
        if name == "conv_relu_maxpool" {
            // The same three layers, one stage each: what fusion buys.
            models.push((
                "jit_unfused",
                Box::new(compile_with(&graph, JitOptions { fuse: false, ..JitOptions::default() }).expect("compiles")),
            ));
        }
        for (backend, mut model) in models {
            let x = input(model.as_ref(), BATCH);
            group.bench_function(BenchmarkId::from_parameter(backend), |b| b.iter(|| infer(model.as_mut(), &x, BATCH)));
        }
        group.finish();
    }
}

criterion_group!(benches, layers);
criterion_main!(benches);

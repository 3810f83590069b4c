//! Whole networks: forward at batch 1 and 64 and a training step (forward,
//! loss, backward, SGD update) at batch 64, on the interpreter, the JIT and
//! the `network!` macro, side by side per group; and `check` on specs of
//! 10,000 and 100,000 layers, whose time per layer stays flat when every
//! step of checking is linear in the spec's size.

mod common;

use std::time::Duration;

use common::{backends, infer, input, sgd, spec_file, train_step};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn networks(c: &mut Criterion) {
    for name in ["lenet5", "fashion_tf"] {
        let graph = spec_file(name);
        for (what, batch) in [("forward_b1", 1), ("forward_b64", 64), ("train_b64", 64)] {
            let mut group = c.benchmark_group(format!("{name}/{what}"));
            group.throughput(Throughput::Elements(batch as u64));
            group.measurement_time(Duration::from_secs(4)).sample_size(10);
            for (backend, mut model) in backends(&graph) {
                let x = input(model.as_ref(), batch);
                let labels: Vec<u8> = (0..batch).map(|i| (i % 10) as u8).collect();
                let mut optimizer = sgd();
                group.bench_function(BenchmarkId::from_parameter(backend), |b| {
                    b.iter(|| {
                        if what == "train_b64" {
                            train_step(model.as_mut(), &mut optimizer, &x, &labels)
                        } else {
                            infer(model.as_mut(), &x, batch)
                        }
                    })
                });
            }
            group.finish();
        }
    }
}

fn spec_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("spec_check");
    group.measurement_time(Duration::from_secs(4)).sample_size(10);
    for layers in [10_000u64, 100_000] {
        let mut text = String::from("[network]\ninput = [1, 4, 4]\n\n[[layer]]\ntype = \"flatten\"\n");
        for i in 0..layers {
            text.push_str(if i % 2 == 0 { "\n[[layer]]\ntype = \"relu\"\n" } else { "\n[[layer]]\ntype = \"dense\"\nunits = 4\n" });
        }
        let file = convc_compiler::SourceFile::new("long.toml", text);
        group.throughput(Throughput::Elements(layers));
        group
            .bench_function(BenchmarkId::from_parameter(layers), |b| b.iter(|| convc_compiler::check_source(&file).expect("a valid spec")));
    }
    group.finish();
}

criterion_group!(benches, networks, spec_check);
criterion_main!(benches);

//! Whole networks: forward at batch 1 and 64 and a training step (forward,
//! loss, backward, SGD update) at batch 64, on the interpreter, the JIT and
//! the `network!` macro, side by side per group.

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

criterion_group!(benches, networks);
criterion_main!(benches);

//! Every generated network (random layer sequences: conv2d, local2d, the
//! three pools with random kernels, strides and paddings, activations,
//! dropout, dense; batch 1 to 8) against the interpreter: logits, input and
//! parameter gradients within the harness's tolerances, on 1 and 2 threads.

use convc_random_networks::NETWORKS;
use convc_testing::differential;

#[test]
fn generated_networks_match_the_interpreter() {
    assert_eq!(NETWORKS.len(), 40);
    let mut failures = Vec::new();
    for &(seed, spec, batch, build) in NETWORKS {
        let graph = differential::graph(spec);
        for threads in [1, 2] {
            let make = move |_: &convc_compiler::Graph, seed: u64| build(seed, threads);
            if let Err(e) = differential::check_against_interpreter(&graph, batch, seed, &make) {
                failures.push(format!("seed {seed} (threads {threads}, batch {batch}): {e}\n{spec}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

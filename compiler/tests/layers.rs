//! Semantics of the spec language beyond the shipped specs: defaults,
//! rounding, local layers, activations, the DAG structure.

use convc_compiler::graph::{Op, Shape, Source};
use convc_compiler::{SourceFile, check_source};
use convc_runtime::{Activation, PoolKind};

fn check(text: &str) -> convc_compiler::Graph {
    check_source(&SourceFile::new("test.toml", text)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn floor_rounding_is_an_explicit_opt_in() {
    let layer = "[[layer]]\ntype = \"conv2d\"\nfilters = 64\nkernel = 11\nstride = 4\npadding = 2\n";
    let refused = check_source(&SourceFile::new("t.toml", format!("[network]\ninput = [3, 224, 224]\n{layer}")));
    assert!(refused.is_err());
    let per_network = check(&format!("[network]\ninput = [3, 224, 224]\nrounding = \"floor\"\n{layer}"));
    assert_eq!(per_network.output(), Shape::Image { c: 64, h: 55, w: 55 });
    let per_layer = check(&format!("[network]\ninput = [3, 224, 224]\n{layer}rounding = \"floor\"\n"));
    assert_eq!(per_layer.output(), Shape::Image { c: 64, h: 55, w: 55 });
}

#[test]
fn defaults_names_and_pairs() {
    let g = check(
        r#"
        [network]
        input = [3, 32, 24]
        [[layer]]
        type = "conv2d"
        filters = 8
        kernel = [3, 5]
        padding = "same"
        activation = "leaky_relu"
        alpha = 0.2
        bias = false
        [[layer]]
        type = "l2_pool"
        size = [2, 3]
        [[layer]]
        name = "conv1_extra"
        type = "conv2d"
        filters = 4
        kernel = 1
        stride = [3, 1]
        [[layer]]
        type = "tanh"
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        units = 5
        activation = "elu"
        [[layer]]
        type = "softmax"
        "#,
    );
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["conv1", "pool1", "conv1_extra", "act1", "flatten1", "dense1", "softmax1"]);
    let Op::Conv2d(conv) = &g.nodes[0].op else { panic!() };
    assert_eq!((conv.kernel, conv.stride, conv.pad, conv.bias), ([3, 5], [1, 1], [1, 2], false));
    assert_eq!(conv.activation, Activation::LeakyRelu { alpha: 0.2 });
    assert_eq!(g.nodes[0].param_count(), 8 * 3 * 5 * 3);
    let Op::Pool(pool) = &g.nodes[1].op else { panic!() };
    assert_eq!((pool.kind, pool.size, pool.stride), (PoolKind::L2, [2, 3], [2, 3]));
    assert_eq!(g.nodes[1].output, Shape::Image { c: 8, h: 16, w: 8 });
    assert_eq!(g.nodes[2].output, Shape::Image { c: 4, h: 6, w: 8 });
    assert_eq!(g.nodes[4].output, Shape::Flat(192));
    assert_eq!(g.nodes[5].op, Op::Dense { units: 5, activation: Activation::Elu { alpha: 1.0 }, bias: true });
    assert_eq!(g.classes(), 5);
    // Each node reads the one before it: the graph is a DAG of sources.
    assert_eq!(g.nodes[0].inputs, [Source::Input]);
    assert_eq!(g.nodes[3].inputs, [Source::Node(2)]);
}

#[test]
fn local_layers_have_one_filter_bank_per_position() {
    let g = check("[network]\ninput = [2, 9, 9]\n[[layer]]\ntype = \"local2d\"\nfilters = 3\nkernel = 3\nstride = 2\n");
    let node = &g.nodes[0];
    assert_eq!(node.output, Shape::Image { c: 3, h: 4, w: 4 });
    let shapes: Vec<Vec<usize>> = node.params.iter().map(|p| p.shape.clone()).collect();
    assert_eq!(shapes, [vec![3, 4, 4, 2, 3, 3], vec![3, 4, 4]]);
    assert_eq!(node.param_count(), 3 * 4 * 4 * (3 * 3 * 2 + 1));
    assert_eq!(node.macs, 3 * 4 * 4 * 3 * 3 * 2);
}

#[test]
fn training_table_is_read() {
    let g = check(
        "[network]\ninput = [1, 4, 4]\n[[layer]]\ntype = \"flatten\"\n[training]\nbatch = 32\nepochs = 2\nseed = 7\noptimizer = { kind = \"sgd\", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 }\n",
    );
    let t = &g.training;
    assert_eq!((t.batch, t.epochs, t.seed), (Some(32), Some(2), Some(7)));
    let o = t.optimizer.as_ref().unwrap();
    assert_eq!((o.lr, o.momentum, o.weight_decay), (Some(0.05), Some(0.9), Some(5e-4)));
}

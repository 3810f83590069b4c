//! The shipped specs check, and their shapes and parameter counts are the
//! published ones.

use std::path::Path;

use convc_compiler::graph::{Graph, Shape};

fn load(name: &str) -> Graph {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs").join(name);
    convc_compiler::check(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn shapes(graph: &Graph) -> Vec<(String, Vec<usize>)> {
    graph.nodes.iter().map(|n| (n.name.clone(), n.output.dims())).collect()
}

fn named(pairs: &[(&str, &[usize])]) -> Vec<(String, Vec<usize>)> {
    pairs.iter().map(|(n, d)| (n.to_string(), d.to_vec())).collect()
}

#[test]
fn alexnet_has_the_torchvision_parameter_count() {
    let g = load("alexnet.toml");
    assert_eq!(g.param_count(), 61_100_840);
    let convs: Vec<_> = shapes(&g).into_iter().filter(|(n, _)| n.starts_with("conv") || n.starts_with("pool")).collect();
    assert_eq!(
        convs,
        named(&[
            ("conv1", &[64, 55, 55]),
            ("pool1", &[64, 27, 27]),
            ("conv2", &[192, 27, 27]),
            ("pool2", &[192, 13, 13]),
            ("conv3", &[384, 13, 13]),
            ("conv4", &[256, 13, 13]),
            ("conv5", &[256, 13, 13]),
            ("pool3", &[256, 6, 6]),
        ])
    );
    assert_eq!(g.node("fc6").unwrap().input_shape, Shape::Flat(9216));
    assert_eq!(g.classes(), 1000);
}

#[test]
fn vgg16_has_the_published_parameter_count() {
    let g = load("vgg16.toml");
    assert_eq!(g.param_count(), 138_357_544);
    let sizes: Vec<usize> = g.nodes.iter().filter(|n| n.name.starts_with("pool")).map(|n| n.output.dims()[1]).collect();
    assert_eq!(sizes, [112, 56, 28, 14, 7]);
    assert_eq!(g.node("conv5_3").unwrap().output, Shape::Image { c: 512, h: 14, w: 14 });
    assert_eq!(g.node("fc6").unwrap().input_shape, Shape::Flat(25088));
}

#[test]
fn fashion_tf_is_the_tensorflow_tutorial_convnet() {
    let g = load("fashion_tf.toml");
    assert_eq!(
        shapes(&g),
        named(&[
            ("conv1", &[32, 28, 28]),
            ("pool1", &[32, 14, 14]),
            ("conv2", &[64, 14, 14]),
            ("pool2", &[64, 7, 7]),
            ("flatten1", &[3136]),
            ("dense1", &[1024]),
            ("dropout1", &[1024]),
            ("dense2", &[10]),
        ])
    );
    // 32·(25+1) + 64·(800+1) + 1024·(3136+1) + 10·(1024+1)
    assert_eq!(g.param_count(), 832 + 51_264 + 3_212_288 + 10_250);
    // Multiply-accumulates: 28·28·32·25 + 14·14·64·800 + 3136·1024 + 1024·10
    assert_eq!(g.macs(), 627_200 + 10_035_200 + 3_211_264 + 10_240);
}

#[test]
fn lenet5_shapes_and_parameters() {
    let g = load("lenet5.toml");
    assert_eq!(
        shapes(&g),
        named(&[
            ("conv1", &[6, 28, 28]),
            ("pool1", &[6, 14, 14]),
            ("conv2", &[16, 10, 10]),
            ("pool2", &[16, 5, 5]),
            ("flatten1", &[400]),
            ("dense1", &[120]),
            ("dense2", &[84]),
            ("dense3", &[10]),
        ])
    );
    assert_eq!(g.param_count(), 61_706);
    let conv1 = g.node("conv1").unwrap();
    assert_eq!(
        conv1.params.iter().map(|p| (p.name, p.shape.clone())).collect::<Vec<_>>(),
        [("weight", vec![6, 1, 5, 5]), ("bias", vec![6])]
    );
}

#[test]
fn every_shipped_spec_checks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            convc_compiler::check(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 4);
}

/// Default names (`act1`, `dense1`, …) skip names given explicitly, in a
/// spec large enough that a quadratic search for free names would show
/// (its speed is measured by the `spec_check` benchmark).
#[test]
fn default_names_skip_explicit_ones_in_a_long_spec() {
    let n = 20_000;
    let mut text = String::from("[network]\ninput = [1, 2, 2]\n\n[[layer]]\ntype = \"flatten\"\n");
    for i in 0..n {
        // Every third activation takes the name the default numbering would give the next-but-one.
        let name = if i % 3 == 0 { format!("name = \"act{}\"\n", i + 3) } else { String::new() };
        text.push_str(&format!("\n[[layer]]\ntype = \"relu\"\n{name}"));
    }
    let graph = convc_compiler::check_source(&convc_compiler::SourceFile::new("long.toml", text)).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = graph.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names.len(), n + 1);
    let unique: std::collections::HashSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "every name is unique");
    // Numbered per family, counting every activation; act3 and act6 are taken, so act4 and act7 step past them.
    assert_eq!(&names[..7], ["flatten1", "act3", "act2", "act4", "act6", "act7", "act8"]);
}

/// Layer names may be PyTorch module paths, so weight files carry a
/// `state_dict`'s tensor names; the generated Rust stays valid. Empty
/// words, stray dots and other characters are refused.
#[test]
fn layer_names_may_be_pytorch_module_paths() {
    let spec = |names: [&str; 3]| {
        format!(
            "[network]\ninput = [1, 8, 8]\n\n[[layer]]\nname = \"{}\"\ntype = \"conv2d\"\nfilters = 2\nkernel = 3\n\n[[layer]]\ntype = \"flatten\"\n\n[[layer]]\nname = \"{}\"\ntype = \"dense\"\nunits = 4\n\n[[layer]]\nname = \"{}\"\ntype = \"dense\"\nunits = 3\n",
            names[0], names[1], names[2]
        )
    };
    let check = |names| convc_compiler::check_source(&convc_compiler::SourceFile::new("paths.toml", spec(names)));
    let graph = check(["features.0", "layer2.0.downsample.1", "0"]).unwrap_or_else(|e| panic!("{e}"));
    let net = convc_compiler::interpreter(&graph, 0);
    let tensors: Vec<String> = convc_runtime::Model::params(&net).iter().map(|p| p.name.to_string()).collect();
    assert_eq!(
        tensors,
        ["features.0.weight", "features.0.bias", "layer2.0.downsample.1.weight", "layer2.0.downsample.1.bias", "0.weight", "0.bias"]
    );
    let plan = convc_compiler::plan::Plan::new(&graph, true);
    let opts = convc_compiler::codegen::rust::RustOptions::for_graph(&graph, "paths.toml");
    let tokens = convc_compiler::codegen::rust::network(&graph, &plan, &opts);
    syn::parse2::<syn::File>(tokens).expect("the generated Rust parses");

    for bad in ["fc-1", "a..b", ".a", "a.", "conv 1"] {
        let err = check([bad, "d1", "d2"]).expect_err(bad);
        assert!(err.to_string().contains(&format!("invalid layer name \"{bad}\"")), "{bad}: {err}");
    }
    // Checkpoints keep optimizer state under `optimizer.`: a layer may not take it.
    for reserved in ["optimizer", "optimizer.m"] {
        let err = check([reserved, "d1", "d2"]).expect_err(reserved);
        assert!(err.to_string().contains(&format!("layer name \"{reserved}\" is reserved")), "{reserved}: {err}");
    }
}

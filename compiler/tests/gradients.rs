//! The interpreter's gradients — of the input and of every parameter —
//! against central finite differences, for every layer type alone and for
//! small networks chaining them.

use convc_compiler::{SourceFile, check_source, interpreter};
use convc_runtime::rng::Rng;
use convc_runtime::{Mode, Model};

/// `L = Σ r·logits` for a fixed random `r`, evaluated in f64.
fn loss(model: &mut dyn Model, x: &[f32], batch: usize, r: &[f32]) -> f64 {
    let y = model.forward(x, batch, Mode::Train { seed: 5 }).unwrap();
    y.iter().zip(r).map(|(&y, &r)| y as f64 * r as f64).sum()
}

fn close(analytic: f64, numeric: f64) -> bool {
    (analytic - numeric).abs() <= 2e-3 + 2e-2 * analytic.abs().max(numeric.abs())
}

/// Checks up to `samples` coordinates of the input and of each parameter.
fn check_gradients(spec: &str, batch: usize) {
    let graph = check_source(&SourceFile::new("grad.toml", spec)).unwrap_or_else(|e| panic!("{e}"));
    let mut model = interpreter(&graph, 3);
    let mut rng = Rng::new(11);
    let x: Vec<f32> = (0..batch * graph.input.len()).map(|_| rng.symmetric(1.0)).collect();
    let r: Vec<f32> = (0..batch * graph.classes()).map(|_| rng.symmetric(1.0)).collect();
    // Biases start at zero; make them non-trivial so their gradients matter.
    for p in model.params_mut() {
        if p.name.ends_with(".bias") {
            for v in p.value.iter_mut() {
                *v = rng.symmetric(0.3);
            }
        }
    }
    loss(&mut model, &x, batch, &r);
    model.backward(&r).unwrap();
    let input_grad = model.input_grad().to_vec();
    let param_grads: Vec<(String, Vec<f32>)> = model.params().iter().map(|p| (p.name.to_string(), p.value.to_vec())).collect();
    let param_grads: Vec<(String, Vec<f32>)> = {
        let mut grads = Vec::new();
        for p in model.params_mut() {
            grads.push((p.name.to_string(), p.grad.to_vec()));
        }
        assert_eq!(grads.len(), param_grads.len());
        grads
    };
    let eps = 1e-3f32;
    let samples = 40;
    let mut failures = Vec::new();

    let mut x_probe = x.clone();
    for i in pick(x.len(), samples, &mut rng) {
        let orig = x_probe[i];
        x_probe[i] = orig + eps;
        let plus = loss(&mut model, &x_probe, batch, &r);
        x_probe[i] = orig - eps;
        let minus = loss(&mut model, &x_probe, batch, &r);
        x_probe[i] = orig;
        let numeric = (plus - minus) / (2.0 * eps as f64);
        if !close(input_grad[i] as f64, numeric) {
            failures.push(format!("input[{i}]: analytic {} numeric {numeric}", input_grad[i]));
        }
    }
    for (p_index, (name, grad)) in param_grads.iter().enumerate() {
        for i in pick(grad.len(), samples, &mut rng) {
            let mut eval = |delta: f32| {
                let orig = model.params_mut()[p_index].value[i];
                model.params_mut()[p_index].value[i] = orig + delta;
                let l = loss(&mut model, &x, batch, &r);
                model.params_mut()[p_index].value[i] = orig;
                l
            };
            let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps as f64);
            if !close(grad[i] as f64, numeric) {
                failures.push(format!("{name}[{i}]: analytic {} numeric {numeric}", grad[i]));
            }
        }
    }
    assert!(failures.is_empty(), "gradient mismatches for\n{spec}\n{}", failures.join("\n"));
}

fn pick(len: usize, samples: usize, rng: &mut Rng) -> Vec<usize> {
    if len <= samples { (0..len).collect() } else { (0..samples).map(|_| rng.below(len)).collect() }
}

fn net(input: &str, layers: &str) -> String {
    format!("[network]\ninput = {input}\n{layers}")
}

#[test]
fn conv2d_gradients() {
    check_gradients(&net("[2, 6, 5]", "[[layer]]\ntype = \"conv2d\"\nfilters = 3\nkernel = 3\npadding = 1\nactivation = \"tanh\"\n"), 2);
    check_gradients(
        &net(
            "[2, 7, 7]",
            "[[layer]]\ntype = \"conv2d\"\nfilters = 2\nkernel = [2, 3]\nstride = [1, 3]\npadding = [0, 1]\nactivation = \"elu\"\nbias = false\n",
        ),
        3,
    );
    check_gradients(&net("[1, 9, 9]", "[[layer]]\ntype = \"conv2d\"\nfilters = 2\nkernel = 3\nstride = 2\nactivation = \"sigmoid\"\n"), 1);
}

#[test]
fn local2d_gradients() {
    check_gradients(&net("[2, 7, 7]", "[[layer]]\ntype = \"local2d\"\nfilters = 2\nkernel = 3\nstride = 2\nactivation = \"tanh\"\n"), 2);
    check_gradients(&net("[1, 5, 4]", "[[layer]]\ntype = \"local2d\"\nfilters = 3\nkernel = [2, 3]\npadding = [1, 1]\n"), 1);
}

#[test]
fn pooling_gradients() {
    for (kind, extra) in [("max_pool", ""), ("avg_pool", "padding = 1\n"), ("l2_pool", ""), ("max_pool", "stride = 1\npadding = 1\n")] {
        check_gradients(&net("[2, 6, 6]", &format!("[[layer]]\ntype = \"{kind}\"\nsize = 2\n{extra}")), 2);
    }
    check_gradients(&net("[1, 7, 7]", "[[layer]]\ntype = \"avg_pool\"\nsize = 3\nstride = 2\n"), 1);
}

#[test]
fn dense_and_activation_gradients() {
    for act in ["none", "relu", "leaky_relu", "elu", "sigmoid", "tanh"] {
        let standalone = if act == "none" { "relu" } else { act };
        check_gradients(
            &net("[3, 2, 2]", &format!("[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"dense\"\nunits = 5\nactivation = \"{act}\"\n")),
            3,
        );
        check_gradients(&net("[2, 3, 3]", &format!("[[layer]]\ntype = \"{standalone}\"\n")), 2);
    }
}

#[test]
fn dropout_gradients_use_the_training_mask() {
    check_gradients(
        &net(
            "[1, 4, 4]",
            "[[layer]]\ntype = \"flatten\"\n[[layer]]\ntype = \"dropout\"\nrate = 0.5\n[[layer]]\ntype = \"dense\"\nunits = 3\n",
        ),
        4,
    );
}

#[test]
fn chained_network_gradients() {
    check_gradients(
        &net(
            "[2, 12, 12]",
            r#"
[[layer]]
type = "conv2d"
filters = 4
kernel = 3
padding = "same"
activation = "tanh"
[[layer]]
type = "max_pool"
size = 2
[[layer]]
type = "local2d"
filters = 3
kernel = 3
activation = "elu"
[[layer]]
type = "avg_pool"
size = 2
[[layer]]
type = "flatten"
[[layer]]
type = "dense"
units = 6
activation = "sigmoid"
[[layer]]
type = "dropout"
rate = 0.25
[[layer]]
type = "dense"
units = 4
[[layer]]
type = "softmax"
"#,
        ),
        3,
    );
}

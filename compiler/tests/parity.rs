//! Parity with PyTorch, on fixtures made by `tests/fixtures/parity/make_fixtures.py`:
//! with the same weights and batch, `convc predict` logits, the weights
//! after one SGD step and after two Adam steps agree with PyTorch's to
//! 1e-4 relative, on the interpreter and on the JIT.

use std::path::{Path, PathBuf};
use std::process::Command;

use convc_runtime::train::weights::{self, Tensor};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

fn convc(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_convc")).args(args).output().expect("run convc");
    assert!(
        out.status.success(),
        "convc {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(path: &Path) -> Vec<Tensor> {
    weights::read(path).unwrap_or_else(|e| panic!("{e}")).0
}

/// Every tensor of `expected` is in `got` with the same shape and values
/// within 1e-4 relative (1e-6 absolute near zero).
fn assert_close(got: &[Tensor], expected: &[Tensor], what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: tensor count");
    for e in expected {
        let g = got.iter().find(|g| g.name == e.name).unwrap_or_else(|| panic!("{what}: no tensor {}", e.name));
        assert_eq!(g.shape, e.shape, "{what}: shape of {}", e.name);
        for (i, (a, b)) in g.data.iter().zip(&e.data).enumerate() {
            assert!((a - b).abs() <= 1e-4 * a.abs().max(b.abs()) + 1e-6, "{what}: {}[{i}] is {a}, PyTorch has {b}", e.name);
        }
    }
}

fn check_net(net: &str) {
    for backend in ["interp", "jit"] {
        check_net_with(net, backend);
    }
}

fn check_net_with(net: &str, backend: &str) {
    let dir = fixtures().join(net);
    let spec = fixtures().join(format!("{net}.toml"));
    let tmp = std::env::temp_dir().join(format!("convc-parity-{net}-{backend}-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let init = s(&dir.join("init.safetensors"));

    let logits = tmp.join("logits.safetensors");
    convc(&[
        "predict",
        &s(&spec),
        "--weights",
        &init,
        "--images",
        &s(&dir.join("train-images-idx3-ubyte")),
        "--labels",
        &s(&dir.join("train-labels-idx1-ubyte")),
        "--logits",
        &s(&logits),
        "--backend",
        backend,
    ]);
    assert_close(&read(&logits), &read(&dir.join("logits.safetensors")), &format!("{net} logits ({backend})"));

    let sgd = tmp.join("sgd.safetensors");
    convc(&[
        "train",
        &s(&spec),
        "--data",
        &s(&dir),
        "--init",
        &init,
        "--epochs",
        "1",
        "--batch",
        "8",
        "--no-shuffle",
        "--optimizer",
        "sgd",
        "--lr",
        "0.1",
        "--momentum",
        "0.9",
        "--weight-decay",
        "0.01",
        "--save",
        &s(&sgd),
        "--quiet",
    ]);
    assert_close(&read(&sgd), &read(&dir.join("sgd.safetensors")), &format!("{net} after one SGD step ({backend})"));

    let adam = tmp.join("adam.safetensors");
    convc(&[
        "train",
        &s(&spec),
        "--data",
        &s(&dir.join("two_steps")),
        "--init",
        &init,
        "--epochs",
        "1",
        "--batch",
        "8",
        "--no-shuffle",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--weight-decay",
        "0.001",
        "--save",
        &s(&adam),
        "--quiet",
    ]);
    assert_close(&read(&adam), &read(&dir.join("adam.safetensors")), &format!("{net} after two Adam steps ({backend})"));
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn conv_maxpool_relu_tanh_dense_match_pytorch() {
    check_net("net_a");
}

#[test]
fn avgpool_l2pool_leaky_elu_sigmoid_match_pytorch() {
    check_net("net_b");
}

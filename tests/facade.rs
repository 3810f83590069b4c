//! What README.md shows a user writing, through the one `convc` dependency.

use convc::runtime::{Mode, Model};

#[test]
fn readme_jit_example_runs() -> Result<(), Box<dyn std::error::Error>> {
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/lenet5.toml");
    let graph = convc::compiler::check(&spec)?;
    let mut net = convc::jit::compile(&graph, 0)?;
    let (batch, images) = (2, vec![0.5f32; 2 * 28 * 28]);
    let logits = net.forward(&images, batch, Mode::Infer)?.to_vec();
    assert_eq!(logits.len(), batch * 10);
    // The interpreter built from the same graph and seed agrees.
    let mut reference = convc::compiler::interpreter(&graph, 0);
    let want = reference.forward(&images, batch, Mode::Infer)?;
    for (a, b) in logits.iter().zip(want) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    Ok(())
}

convc::network!(pub Lenet5 = "specs/lenet5.toml");
convc::network!(
    Tiny = r#"
    [network]
    input = [1, 8, 8]
    [[layer]]
    type = "flatten"
    [[layer]]
    type = "dense"
    units = 3
"#
);

#[test]
fn readme_macro_example_runs() -> Result<(), Box<dyn std::error::Error>> {
    use convc::runtime::train::optim::{Optimizer, OptimizerConfig};
    assert_eq!((Tiny::C, Tiny::H, Tiny::W, Tiny::CLASSES, Tiny::PARAMS), (1, 8, 8, 3, 64 * 3 + 3));
    let mut net = Lenet5::new(42);
    let image = [0.25f32; Lenet5::INPUT_LEN];
    let logits: [f32; Lenet5::CLASSES] = net.predict(&image);
    // One image alone and in a batch give the same logits.
    let batch = net.predict_batch(&[image, [0.5; Lenet5::INPUT_LEN]]);
    assert_eq!(batch.len(), 2);
    for (a, b) in logits.iter().zip(&batch[0]) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    // Training steps lower the loss on a fixed batch.
    let images: Vec<[f32; Lenet5::INPUT_LEN]> = (0..8).map(|i| [i as f32 / 8.0; Lenet5::INPUT_LEN]).collect();
    let labels: Vec<u8> = (0..8).map(|i| (i % 2) as u8).collect();
    let mut optimizer = Optimizer::new(OptimizerConfig::Adam { lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weight_decay: 0.0 });
    let first = net.train_step(&images, &labels, &mut optimizer, 1)?;
    let mut last = first;
    for seed in 2..20 {
        last = net.train_step(&images, &labels, &mut optimizer, seed)?;
    }
    assert!(last.loss < first.loss, "loss {} → {}", first.loss, last.loss);
    // Saved weights load into a fresh network with the same logits.
    let path = std::env::temp_dir().join(format!("convc-facade-{}.safetensors", std::process::id()));
    net.save(&path)?;
    let mut loaded = Lenet5::load(&path)?;
    std::fs::remove_file(&path).ok();
    assert_eq!(loaded.predict(&image), net.predict(&image));
    // A file for another network is refused with a message, not a panic.
    let mut tiny = Tiny::new(0);
    let tiny_path = std::env::temp_dir().join(format!("convc-facade-tiny-{}.safetensors", std::process::id()));
    tiny.save(&tiny_path)?;
    let err = Lenet5::load(&tiny_path).err().expect("wrong weights are an error").to_string();
    std::fs::remove_file(&tiny_path).ok();
    assert!(err.contains("conv1.weight"), "{err}");
    let _ = tiny.predict(&[0.0; Tiny::INPUT_LEN]);
    Ok(())
}

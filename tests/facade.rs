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

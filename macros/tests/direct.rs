//! `convc-macros` used directly, with `convc-runtime` beside it (the two
//! dependencies, no facade): the generated code finds the runtime as
//! `::convc_runtime`.

use convc_runtime::{Mode, Model};

convc_macros::network!(pub Tiny = r#"
    [network]
    name = "tiny"
    input = [1, 6, 6]
    [[layer]]
    type = "conv2d"
    filters = 2
    kernel = 3
    activation = "relu"
    [[layer]]
    type = "max_pool"
    size = 2
    [[layer]]
    type = "flatten"
    [[layer]]
    type = "dense"
    units = 3
"#);

#[test]
fn a_network_declared_without_the_facade_runs() {
    assert_eq!((Tiny::NAME, Tiny::C, Tiny::H, Tiny::W, Tiny::CLASSES), ("tiny", 1, 6, 6, 3));
    assert_eq!(Tiny::PARAMS, 2 * 9 + 2 + 8 * 3 + 3);
    let mut net = Tiny::new(1);
    assert_eq!(net.stages(), ["conv1+pool1", "flatten1", "dense1"]);
    let image = [0.5f32; Tiny::INPUT_LEN];
    let one = net.predict(&image);
    let batch = net.forward(&[image, image].concat(), 2, Mode::Infer).unwrap().to_vec();
    assert_eq!(&batch[..3], &one[..]);
    assert_eq!(&batch[3..], &one[..]);
}

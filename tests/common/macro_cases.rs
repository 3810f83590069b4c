//! Networks declared with `convc::network!` for the differential tests:
//! the shipped specs, and specs that together cover every layer type,
//! stride/padding combination (asymmetric, "same", padding wider than half
//! the kernel), every activation (as a layer option and as a layer of its
//! own), every pooling kind fused and stand-alone (with padding and
//! overlap), 1×1 convs (strided or not), biasless layers and dropout.

use convc::runtime::Model;

/// A declared network: its type name, the spec text it was declared from,
/// and a constructor `(seed, threads)`.
pub type Case = (&'static str, &'static str, fn(u64, usize) -> Box<dyn Model>);

macro_rules! cases {
    ($($kind:ident $ty:ident = $spec:literal;)*) => {
        $(convc::network!(pub $ty = $spec);)*
        pub const CASES: &[Case] = &[$((
            stringify!($ty),
            cases!(@text $kind $spec),
            |seed, threads| {
                let mut net = $ty::new(seed);
                net.set_threads(threads);
                Box::new(net)
            },
        )),*];
    };
    (@text file $spec:literal) => { include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $spec)) };
    (@text inline $spec:literal) => { $spec };
}

cases! {
    file Lenet5 = "specs/lenet5.toml";
    file FashionTf = "specs/fashion_tf.toml";
    file AlexNet = "specs/alexnet.toml";
    file Vgg16 = "specs/vgg16.toml";
    inline SameOverlappingMax = r#"
        [network]
        input = [2, 9, 7]
        [[layer]]
        type = "conv2d"
        filters = 3
        kernel = 3
        padding = "same"
        activation = "relu"
        [[layer]]
        type = "max_pool"
        size = 2
        stride = 1
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        units = 4
    "#;
    inline StridedAsymmetricAvg = r#"
        [network]
        input = [3, 11, 10]
        rounding = "floor"
        [[layer]]
        type = "conv2d"
        filters = 4
        kernel = [3, 2]
        stride = [2, 1]
        padding = [1, 0]
        activation = "leaky_relu"
        alpha = 0.2
        [[layer]]
        type = "avg_pool"
        size = 2
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        units = 5
        activation = "tanh"
        [[layer]]
        type = "dense"
        units = 3
    "#;
    inline EluL2PaddedPool = r#"
        [network]
        input = [1, 12, 12]
        rounding = "floor"
        [[layer]]
        type = "conv2d"
        filters = 2
        kernel = 2
        stride = 2
        padding = 1
        activation = "elu"
        alpha = 0.5
        [[layer]]
        type = "l2_pool"
        size = [2, 3]
        stride = [1, 2]
        padding = [1, 1]
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        units = 3
    "#;
    inline LocalMax = r#"
        [network]
        input = [2, 8, 8]
        [[layer]]
        type = "local2d"
        filters = 3
        kernel = 3
        padding = 1
        activation = "sigmoid"
        [[layer]]
        type = "max_pool"
        size = 2
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        units = 3
    "#;
    inline LocalStridedThenReluLayer = r#"
        [network]
        input = [1, 9, 11]
        rounding = "floor"
        [[layer]]
        type = "local2d"
        filters = 2
        kernel = [2, 3]
        stride = 2
        bias = false
        [[layer]]
        type = "relu"
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        units = 4
    "#;
    inline ActivationLayerFused = r#"
        [network]
        input = [2, 10, 10]
        [[layer]]
        type = "conv2d"
        filters = 5
        kernel = 3
        [[layer]]
        type = "tanh"
        [[layer]]
        type = "avg_pool"
        size = 2
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        units = 3
    "#;
    inline StandalonePools = r#"
        [network]
        input = [1, 16, 16]
        rounding = "floor"
        [[layer]]
        type = "conv2d"
        filters = 3
        kernel = 3
        activation = "relu"
        [[layer]]
        type = "max_pool"
        size = 2
        [[layer]]
        type = "avg_pool"
        size = 3
        stride = 2
        padding = 1
        [[layer]]
        type = "l2_pool"
        size = 2
        stride = 1
        [[layer]]
        type = "max_pool"
        size = 2
        padding = 1
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        units = 2
    "#;
    inline Pointwise = r#"
        [network]
        input = [3, 7, 7]
        rounding = "floor"
        [[layer]]
        type = "conv2d"
        filters = 4
        kernel = 1
        activation = "sigmoid"
        [[layer]]
        type = "conv2d"
        filters = 2
        kernel = 1
        stride = 2
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        units = 3
    "#;
    inline WidePaddingStride3 = r#"
        [network]
        input = [2, 10, 9]
        rounding = "floor"
        [[layer]]
        type = "conv2d"
        filters = 3
        kernel = 3
        stride = 3
        padding = 2
        activation = "leaky_relu"
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        units = 3
    "#;
    inline RowKernel = r#"
        [network]
        input = [1, 5, 13]
        [[layer]]
        type = "conv2d"
        filters = 3
        kernel = [1, 5]
        padding = [0, 2]
        activation = "elu"
        [[layer]]
        type = "max_pool"
        size = [1, 2]
        stride = [1, 2]
        rounding = "floor"
        [[layer]]
        type = "sigmoid"
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        units = 2
    "#;
    inline BiaslessDropoutDense = r#"
        [network]
        input = [1, 6, 6]
        [[layer]]
        type = "conv2d"
        filters = 2
        kernel = 3
        bias = false
        activation = "relu"
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        units = 9
        activation = "elu"
        [[layer]]
        type = "dropout"
        rate = 0.5
        [[layer]]
        type = "dense"
        units = 7
        activation = "sigmoid"
        bias = false
        [[layer]]
        type = "dense"
        units = 6
        activation = "leaky_relu"
        [[layer]]
        type = "dense"
        units = 5
        activation = "tanh"
        [[layer]]
        type = "softmax"
    "#;
    inline WinogradShapes = r#"
        # Convs that run as Winograd F(4x4, 5x5) on AVX-512: partial last
        # tiles (odd outputs), padding 2 and 1, a filter count off the panel
        # height, tanh after the transform, an average pool (kept plane)
        # and a stage without pool.
        [network]
        input = [16, 11, 12]
        rounding = "floor"
        [[layer]]
        type = "conv2d"
        filters = 17
        kernel = 5
        padding = "same"
        activation = "tanh"
        [[layer]]
        type = "conv2d"
        filters = 16
        kernel = 5
        padding = 1
        activation = "relu"
        [[layer]]
        type = "avg_pool"
        size = 2
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        units = 5
    "#;
    inline DirectShapes = r#"
        # Convs that run direct on AVX-512 (few input channels, wide rows):
        # three vectors a row, the last partial; a panel of three filters
        # and one of eight plus one; a second conv over three channels,
        # whose input gradient is wanted; tanh and a max pool after it.
        [network]
        input = [1, 6, 40]
        [[layer]]
        type = "conv2d"
        filters = 3
        kernel = 3
        padding = "same"
        activation = "relu"
        [[layer]]
        type = "conv2d"
        filters = 9
        kernel = 5
        padding = 2
        activation = "tanh"
        [[layer]]
        type = "max_pool"
        size = 2
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        units = 4
    "#;
    inline DenseOnly = r#"
        [network]
        input = [1, 4, 4]
        [[layer]]
        type = "flatten"
        [[layer]]
        type = "dense"
        units = 3
    "#;
}

//! The sliding-window trick and pictures: `convc convolutionize` (the
//! converted network scores every window of a larger image in one pass,
//! each window's scores those of the original network on that crop; sizes
//! that do not step evenly, and networks that cannot be converted, are
//! refused with the reason), `predict` on score maps and PNG pictures,
//! `scan`, and `show`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use convc_runtime::train::weights;
use convc_runtime::{Mode, Model};

fn convc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convc")).args(args).output().expect("run convc")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convc-windows-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn spec(name: &str) -> String {
    s(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs").join(name))
}

/// No padding anywhere: every window's scores equal the crop's.
const UNPADDED: &str = r#"
[network]
name = "unpadded"
input = [2, 12, 12]

[[layer]]
type = "conv2d"
filters = 4
kernel = 3
activation = "relu"

[[layer]]
type = "max_pool"
size = 2

[[layer]]
type = "conv2d"
filters = 5
kernel = 2
activation = "tanh"

[[layer]]
type = "flatten"

[[layer]]
type = "dropout"
rate = 0.5

[[layer]]
type = "dense"
units = 8
activation = "relu"

[[layer]]
type = "dense"
units = 3

[[layer]]
type = "softmax"
"#;

/// The unpadded network with `channels` input channels, written to
/// `dir/net.toml` with weights drawn from `seed` in `dir/w.safetensors`:
/// `(spec, weights, graph, the interpreter holding those weights)`.
fn unpadded_net(dir: &Path, channels: usize, seed: u64) -> (PathBuf, PathBuf, convc_compiler::Graph, convc_runtime::interp::Interpreter) {
    let (spec_path, w) = (dir.join("net.toml"), dir.join("w.safetensors"));
    std::fs::write(&spec_path, UNPADDED.replace("input = [2, 12, 12]", &format!("input = [{channels}, 12, 12]"))).unwrap();
    let graph = convc_compiler::check(&spec_path).unwrap_or_else(|e| panic!("{e}"));
    let net = convc_compiler::interpreter(&graph, seed);
    weights::save_model(&net, &w).unwrap();
    (spec_path, w, graph, net)
}

#[test]
fn each_window_scores_as_its_crop() {
    let dir = tmp("windows");
    let (spec_path, w, graph, mut small) = unpadded_net(&dir, 2, 7);
    let (w2, out) = (dir.join("w2.safetensors"), dir.join("big.toml"));

    // 16×16: conv 14, pool 7, conv 6, then the dense layers as a 4×4 and a
    // 1×1 conv: a 3×3 map of windows 2 pixels apart.
    let run = convc(&["convolutionize", &s(&spec_path), "--input", "16x16", "--weights", &s(&w), "--weights-out", &s(&w2), "-o", &s(&out)]);
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{stderr}");
    assert!(stdout.contains("unpadded over 2×16×16 → 3×3×3 scores: 9 windows of 12×12, 2 pixels apart"), "{stdout}");
    assert!(!stderr.contains("warning"), "no padding, no warning: {stderr}");

    let big_graph = convc_compiler::check(&out).unwrap_or_else(|e| panic!("{e}"));
    let names = |g: &convc_compiler::Graph| g.nodes.iter().filter(|n| !n.params.is_empty()).map(|n| n.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&big_graph), names(&graph), "layer names, so tensor names, stay");
    let (tensors, _) = weights::read(&w2).unwrap();
    let shape = |name: &str| tensors.iter().find(|t| t.name == name).unwrap().shape.clone();
    assert_eq!(shape("dense1.weight"), [8, 5, 4, 4]);
    assert_eq!(shape("dense2.weight"), [3, 8, 1, 1]);
    let mut big = convc_compiler::interpreter(&big_graph, 0);
    weights::load_model(&mut big, &w2).unwrap();

    let image: Vec<f32> = (0..2 * 16 * 16).map(|i| ((i * 7919 % 1013) as f32 / 1013.0) - 0.5).collect();
    let map = big.forward(&image, 1, Mode::Infer).unwrap().to_vec();
    assert_eq!(map.len(), 3 * 3 * 3);
    for (i, j) in (0..3).flat_map(|i| (0..3).map(move |j| (i, j))) {
        let crop: Vec<f32> = (0..2)
            .flat_map(|c| (0..12).flat_map(move |y| (0..12).map(move |x| (c, y + 2 * i, x + 2 * j))))
            .map(|(c, y, x)| image[(c * 16 + y) * 16 + x])
            .collect();
        let scores = small.forward(&crop, 1, Mode::Infer).unwrap();
        for (k, &expected) in scores.iter().enumerate() {
            let got = map[(k * 3 + i) * 3 + j];
            assert!((got - expected).abs() <= 1e-5 * (1.0 + expected.abs()), "window ({i}, {j}) class {k}: {got} vs the crop's {expected}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// AlexNet at 227 over 387×387: a 1000×6×6 map; its padded convs are
/// named in a warning. 384×384 does not step evenly: refused, with the
/// sizes near it that do.
#[test]
fn alexnet_scores_a_six_by_six_map_and_refuses_sizes_that_do_not_step() {
    let dir = tmp("alexnet");
    let out = dir.join("alexnet387.toml");
    let run = convc(&["convolutionize", &spec("alexnet.toml"), "--input", "387x387", "-o", &s(&out)]);
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{stderr}");
    assert!(stdout.contains("→ 1000×6×6 scores: 36 windows of 227×227, 32 pixels apart"), "{stdout}");
    assert!(stderr.contains("warning: conv2, conv3, conv4, conv5 pad the input"), "{stderr}");
    let graph = convc_compiler::check(&out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(graph.output().dims(), [1000, 6, 6]);
    assert_eq!(graph.param_count(), 61_100_840, "the same parameters");

    let bad = dir.join("alexnet384.toml");
    let run = convc(&["convolutionize", &spec("alexnet.toml"), "--input", "384x384", "-o", &s(&bad)]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("layer `conv1` (conv2d): the output height and width are not whole numbers"), "{stderr}");
    assert!(stderr.contains("input sizes that work near 384×384: 355×355 (5×5 scores), 387×387 (6×6 scores)"), "{stderr}");
    assert!(!bad.exists(), "nothing written");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Networks the trick does not apply to are refused with the reason.
#[test]
fn networks_that_cannot_slide_are_refused() {
    let dir = tmp("refused");
    let local = UNPADDED.replacen("type = \"conv2d\"\nfilters = 5", "type = \"local2d\"\nfilters = 5", 1);
    let conv_only =
        "[network]\ninput = [1, 8, 8]\n\n[[layer]]\ntype = \"conv2d\"\nfilters = 3\nkernel = 3\n\n[[layer]]\ntype = \"flatten\"\n";
    for (name, text, why) in [
        ("local.toml", local.as_str(), "layer `local1` is local2d: its weights depend on the position"),
        ("conv_only.toml", conv_only, "it has no dense layer after its flatten"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let run = convc(&["convolutionize", &s(&path), "--input", "20x20", "-o", &s(&dir.join("out.toml"))]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("cannot convolutionize") && stderr.contains(why), "{name}: {stderr}");
    }
    // Weights of another network.
    let run = convc(&[
        "convolutionize",
        &spec("lenet5.toml"),
        "--input",
        "32x32",
        "--weights",
        &s(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/net_a/init.safetensors")),
        "--weights-out",
        &s(&dir.join("w.safetensors")),
        "-o",
        &s(&dir.join("lenet.toml")),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`dense1.weight` has shape [16, 108], the spec needs [120, 400] (the weights of another network?)"),
        "{stderr}"
    );
    assert!(!dir.join("lenet.toml").exists() && !dir.join("w.safetensors").exists(), "nothing written");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `predict` on a convolutionized network: each window's best class as a
/// grid, the logits as `[N, C, H, W]` equal to the network's own forward;
/// `--labels` refused (a map has no single score per class).
#[test]
fn predict_prints_and_writes_score_maps() {
    let dir = tmp("predict");
    let (spec_path, w, _, _) = unpadded_net(&dir, 1, 3);
    let (w2, out) = (dir.join("w2.safetensors"), dir.join("big.toml"));
    let run = convc(&["convolutionize", &s(&spec_path), "--input", "16x16", "--weights", &s(&w), "--weights-out", &s(&w2), "-o", &s(&out)]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    // Three 16×16 images in IDX.
    let pixels: Vec<u8> = (0..3 * 16 * 16).map(|i| (i * 37 % 251) as u8).collect();
    let mut idx = vec![0u8, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 16, 0, 0, 0, 16];
    idx.extend(&pixels);
    let images = dir.join("images-idx3-ubyte");
    std::fs::write(&images, idx).unwrap();
    let logits = dir.join("logits.safetensors");
    let run = convc(&["predict", &s(&out), "--weights", &s(&w2), "--images", &s(&images), "--logits", &s(&logits)]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("3 images, each scored at 3×3 windows over 3 classes"), "{stdout}");
    assert!(stdout.contains("image 2: best class (probability) per window"), "{stdout}");

    let (tensors, _) = weights::read(&logits).unwrap();
    assert_eq!(tensors[0].shape, [3, 3, 3, 3]);
    let big_graph = convc_compiler::check(&out).unwrap();
    let mut big = convc_compiler::interpreter(&big_graph, 0);
    weights::load_model(&mut big, &w2).unwrap();
    let x: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
    let expected = big.forward(&x, 3, Mode::Infer).unwrap();
    // The JIT ran predict; the interpreter is the reference.
    for (got, want) in tensors[0].data.iter().zip(expected) {
        assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "{got} vs {want}");
    }

    let run = convc(&["predict", &s(&out), "--weights", &s(&w2), "--images", &s(&images), "--labels", &s(&images)]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the network scores a 3×3×3 map of windows, not one score per class"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A `height × width` RGB PNG of `rgb` bytes.
fn write_png(path: &Path, width: u32, height: u32, rgb: &[u8]) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header().unwrap().write_image_data(rgb).unwrap();
}

/// `scan` at a stride finer than the network's (2 → 1: four shifted
/// passes interleaved) gives at every window the network's scores on that
/// crop of the picture — an RGB PNG read as grey by its luminance, as a
/// one-channel network takes it; its heat map is a PNG of the picture's
/// size; pictures too small, strides that do not divide and files that are
/// not PNG are refused.
#[test]
fn scan_scores_every_window_at_a_finer_stride() {
    let dir = tmp("scan");
    let (spec_path, w, _, mut small) = unpadded_net(&dir, 1, 5);

    let (height, width) = (16usize, 17usize);
    let rgb: Vec<u8> = (0..height * width * 3).map(|i| (i * 53 % 256) as u8).collect();
    let picture = dir.join("picture.png");
    write_png(&picture, width as u32, height as u32, &rgb);
    let grey: Vec<f32> =
        rgb.chunks(3).map(|p| 0.299 * p[0] as f32 / 255.0 + 0.587 * p[1] as f32 / 255.0 + 0.114 * p[2] as f32 / 255.0).collect();

    let (scores, heat) = (dir.join("scores.safetensors"), dir.join("heat.png"));
    let run = convc(&[
        "scan",
        &s(&spec_path),
        "--weights",
        &s(&w),
        "--image",
        &s(&picture),
        "--stride",
        "1",
        "--scores",
        &s(&scores),
        "--out",
        &s(&heat),
        "--compare",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    // Each pass reads 14×16 (12 + whole strides of 2 in what the shift of 1
    // leaves): 2×3 windows; four passes interleave to 4×6.
    assert!(stdout.contains("scanned 16×17 (15×17 covered): 4×6 windows of 12×12, 1 pixels apart, in 4 passes"), "{stdout}");
    assert!(stdout.contains("the 24 crops one by one"), "{stdout}");

    let (tensors, _) = weights::read(&scores).unwrap();
    assert_eq!(tensors[0].shape, [3, 4, 6]);
    for (a, b) in (0..4).flat_map(|a| (0..6).map(move |b| (a, b))) {
        let crop: Vec<f32> = (0..12).flat_map(|y| (0..12).map(move |x| (y + a, x + b))).map(|(y, x)| grey[y * width + x]).collect();
        let own = small.forward(&crop, 1, Mode::Infer).unwrap();
        for (q, &want) in own.iter().enumerate() {
            let got = tensors[0].data[(q * 4 + a) * 6 + b];
            assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "window ({a}, {b}) class {q}: {got} vs the crop's {want}");
        }
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&heat).unwrap()));
    let info = decoder.read_info().unwrap().info().clone();
    assert_eq!((info.width, info.height, info.color_type), (width as u32, height as u32, png::ColorType::Rgb));

    let tiny = dir.join("tiny.png");
    write_png(&tiny, 10, 10, &[0; 300]);
    let (tiny, picture, not_png) = (s(&tiny), s(&picture), s(&spec_path));
    let cases: [(&[&str], &str); 3] = [
        (&["--image", &tiny], "the picture is 10×10, smaller than the network's input 12×12; scan takes pictures at least that large"),
        (
            &["--image", &picture, "--stride", "3"],
            "--stride 3: the network's windows step 2 pixels down; a finer stride must divide it (e.g. 1, 2)",
        ),
        (&["--image", &not_png], "not a PNG picture convc can read"),
    ];
    let (spec_arg, w_arg) = (s(&spec_path), s(&w));
    for (args, why) in cases {
        let mut all = vec!["scan", spec_arg.as_str(), "--weights", w_arg.as_str()];
        all.extend(args);
        let run = convc(&all);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `predict --images` takes a PNG picture as one image in the network's
/// channels; a picture of another size names the expected one, and for a
/// larger one points to `scan`.
#[test]
fn predict_reads_a_png_picture() {
    let dir = tmp("predict-png");
    let (spec_path, w, _, mut net) = unpadded_net(&dir, 1, 11);

    let rgb: Vec<u8> = (0..12 * 12 * 3).map(|i| (i * 29 % 256) as u8).collect();
    let picture = dir.join("one.png");
    write_png(&picture, 12, 12, &rgb);
    let logits = dir.join("logits.safetensors");
    let run = convc(&["predict", &s(&spec_path), "--weights", &s(&w), "--images", &s(&picture), "--logits", &s(&logits)]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let grey: Vec<f32> =
        rgb.chunks(3).map(|p| 0.299 * p[0] as f32 / 255.0 + 0.587 * p[1] as f32 / 255.0 + 0.114 * p[2] as f32 / 255.0).collect();
    let want = net.forward(&grey, 1, Mode::Infer).unwrap();
    let (tensors, _) = weights::read(&logits).unwrap();
    assert_eq!(tensors[0].shape, [1, 3]);
    for (got, want) in tensors[0].data.iter().zip(want) {
        assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "{got} vs {want}");
    }

    let big = dir.join("big.png");
    write_png(&big, 20, 16, &vec![9; 20 * 16 * 3]);
    let run = convc(&["predict", &s(&spec_path), "--weights", &s(&w), "--images", &s(&big)]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("big.png: images are 1×16×20, but the network's input is 1×12×12"), "{stderr}");
    assert!(stderr.contains("`convc scan`"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A grey PNG of `height × width` bytes.
fn write_grey_png(path: &Path, width: u32, height: u32, grey: &[u8]) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header().unwrap().write_image_data(grey).unwrap();
}

/// The RGB bytes and size of a PNG.
fn read_rgb(path: &Path) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// `show` writes the pictures it promises — input, first-layer filters,
/// one grid per conv and pool layer, index.html in that order — and a
/// known small case pixel for pixel: a 1×1 conv of weight 2 over a 2×2
/// grey picture, its map normalised to [0, 1] and drawn 24 pixels per value.
#[test]
fn show_draws_filters_and_feature_maps() {
    let dir = tmp("show");
    let spec_path = dir.join("tiny.toml");
    std::fs::write(
        &spec_path,
        "[network]\ninput = [1, 2, 2]\n\n[[layer]]\ntype = \"conv2d\"\nfilters = 1\nkernel = 1\n\n[[layer]]\ntype = \"max_pool\"\nsize = 2\n\n[[layer]]\ntype = \"flatten\"\n\n[[layer]]\ntype = \"dense\"\nunits = 2\n",
    )
    .unwrap();
    let t = |name: &str, shape: &[usize], data: &[f32]| weights::Tensor { name: name.into(), shape: shape.to_vec(), data: data.to_vec() };
    let w = dir.join("w.safetensors");
    weights::save(
        &w,
        &[
            t("conv1.weight", &[1, 1, 1, 1], &[2.0]),
            t("conv1.bias", &[1], &[0.0]),
            t("dense1.weight", &[2, 1], &[1.0, -1.0]),
            t("dense1.bias", &[2], &[0.0, 0.0]),
        ],
        Default::default(),
    )
    .unwrap();
    let picture = dir.join("p.png");
    write_grey_png(&picture, 2, 2, &[0, 51, 102, 255]);
    let out = dir.join("shown");
    let run = convc(&["show", &s(&spec_path), "--weights", &s(&w), "--image", &s(&picture), "-o", &s(&out)]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    let mut files: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files, ["01-conv1-1x2x2.png", "02-pool1-1x1x1.png", "conv1-filters-1x1x1x1.png", "index.html", "input.png"]);
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let order: Vec<usize> = ["input.png", "conv1-filters", "01-conv1", "02-pool1"].iter().map(|f| html.find(f).expect(f)).collect();
    assert!(order.windows(2).all(|p| p[0] < p[1]), "in order: {html}");

    // One 2×2 map at 24 pixels per value, a 24-pixel grey border: 96×96.
    let (width, height, rgb) = read_rgb(&out.join("01-conv1-1x2x2.png"));
    assert_eq!((width, height), (96, 96));
    let pixel = |x: usize, y: usize| rgb[(y * 96 + x) * 3];
    assert_eq!(pixel(0, 0), 96, "the border");
    for (x, y, want) in [(24, 24, 0), (48, 24, 51), (24, 48, 102), (71, 71, 255)] {
        assert_eq!(pixel(x, y), want, "({x}, {y})");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Against PyTorch (fixture by `fixtures/windows/make_fixture.py`): its
/// dense layers run as convolutions with the reshaped weights give the
/// score map that convc's converted network and weights give (1e-4).
#[test]
fn converted_weights_score_as_pytorch() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/windows");
    let dir = tmp("pytorch");
    let (w2, out, logits) = (dir.join("w2.safetensors"), dir.join("big.toml"), dir.join("logits.safetensors"));
    let run = convc(&[
        "convolutionize",
        &s(&fixture.join("net.toml")),
        "--input",
        "16x16",
        "--weights",
        &s(&fixture.join("init.safetensors")),
        "--weights-out",
        &s(&w2),
        "-o",
        &s(&out),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    for backend in ["jit", "interp"] {
        let run = convc(&[
            "predict",
            &s(&out),
            "--weights",
            &s(&w2),
            "--images",
            &s(&fixture.join("images-idx3-ubyte")),
            "--logits",
            &s(&logits),
            "--backend",
            backend,
        ]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let (ours, _) = weights::read(&logits).unwrap();
        let (theirs, _) = weights::read(&fixture.join("map.safetensors")).unwrap();
        assert_eq!(ours[0].shape, theirs[0].shape);
        for (got, want) in ours[0].data.iter().zip(&theirs[0].data) {
            assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "{backend}: {got} vs PyTorch's {want}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// JPEG pictures (`fixtures/pictures/make_pictures.py`) read in the
/// network's channels: a network that averages its input (one dense unit
/// of equal weights) sees RGB (200, 100, 50) as their mean in three
/// channels, as their luminance in one, and a grey JPEG as its grey in
/// three (JPEG is lossy: within 2/255).
#[test]
fn predict_reads_jpeg_pictures_in_the_networks_channels() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pictures");
    let dir = tmp("jpeg");
    for (channels, picture, want) in [
        (3, "uniform.jpg", (200.0 + 100.0 + 50.0) / 3.0 / 255.0),
        (1, "uniform.jpg", (0.299 * 200.0 + 0.587 * 100.0 + 0.114 * 50.0) / 255.0),
        (3, "grey.jpg", 77.0 / 255.0),
    ] {
        let spec = dir.join(format!("mean{channels}.toml"));
        std::fs::write(
            &spec,
            format!("[network]\ninput = [{channels}, 12, 16]\n\n[[layer]]\ntype = \"flatten\"\n\n[[layer]]\ntype = \"dense\"\nunits = 1\n"),
        )
        .unwrap();
        let n = channels * 12 * 16;
        let w = dir.join(format!("mean{channels}.safetensors"));
        let tensor = |name: &str, shape: &[usize], data: Vec<f32>| weights::Tensor { name: name.into(), shape: shape.to_vec(), data };
        weights::save(
            &w,
            &[tensor("dense1.weight", &[1, n], vec![1.0 / n as f32; n]), tensor("dense1.bias", &[1], vec![0.0])],
            Default::default(),
        )
        .unwrap();
        let logits = dir.join("logits.safetensors");
        let run = convc(&["predict", &s(&spec), "--weights", &s(&w), "--images", &s(&fixtures.join(picture)), "--logits", &s(&logits)]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let (t, _) = weights::read(&logits).unwrap();
        let got = t[0].data[0];
        assert!((got - want as f32).abs() <= 2.0 / 255.0, "{picture} in {channels} channels: mean {got}, want {want}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

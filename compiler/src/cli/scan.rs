//! `convc scan`: the sliding-window trick in one command. A picture larger
//! than the network's input is scored at every window in one pass of the
//! convolutionized network (`convolutionize`); with `--stride S` finer than
//! the network's own stride `T` (and dividing it), `(T/S)²` passes over the
//! picture shifted by multiples of `S` are interleaved into one finer map.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use convc_compiler::check_source;
use convc_compiler::graph::{Graph, Op, read_source};
use convc_runtime::Mode;
use convc_runtime::train::loss::{argmax, softmax};
use convc_runtime::train::weights::{self, Tensor};

use super::convolutionize::{conversion, convert_weights, converted, pads};
use super::picture::{read_picture, write_png_rgb};
use super::{Backend, CliError, build_model};

#[derive(Args)]
pub struct ScanArgs {
    /// The trained network's spec (as trained: dense layers and all).
    spec: PathBuf,
    /// Its weights.
    #[arg(long, value_name = "W.safetensors")]
    weights: PathBuf,
    /// The picture to scan (PNG or JPEG), at least the network's input size.
    #[arg(long, value_name = "PICTURE.png")]
    image: PathBuf,
    /// Pixels between windows (default: the network's own stride, one pass).
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u32).range(1..))]
    stride: Option<u32>,
    /// Draw the winning class's probability per window over the picture (PNG).
    #[arg(long, value_name = "SCORES.png")]
    out: Option<PathBuf>,
    /// Write the score map as tensor `scores` [C, H, W] (safetensors).
    #[arg(long, value_name = "SCORES.safetensors")]
    scores: Option<PathBuf>,
    /// Also run the network on every window's crop: the time that takes,
    /// and the largest difference from the scan's scores.
    #[arg(long)]
    compare: bool,
    #[arg(long, value_enum, default_value_t = Backend::Jit)]
    backend: Backend,
}

/// The product of the conv and pool strides along each axis.
fn total_stride(graph: &Graph) -> [usize; 2] {
    graph.nodes.iter().fold([1, 1], |[h, w], n| match &n.op {
        Op::Conv2d(c) | Op::Local2d(c) => [h * c.stride[0], w * c.stride[1]],
        Op::Pool(p) => [h * p.stride[0], w * p.stride[1]],
        _ => [h, w],
    })
}

/// `c × h × w` values of `pixels` (`c × height × width`) from (`y`, `x`).
fn crop(pixels: &[f32], (c, height, width): (usize, usize, usize), (y, x): (usize, usize), (h, w): (usize, usize)) -> Vec<f32> {
    let mut out = Vec::with_capacity(c * h * w);
    for ci in 0..c {
        for row in y..y + h {
            let at = (ci * height + row) * width + x;
            out.extend_from_slice(&pixels[at..at + w]);
        }
    }
    out
}

pub fn run(args: ScanArgs) -> Result<(), CliError> {
    let file = read_source(&args.spec).map_err(CliError::Spec)?;
    let graph = check_source(&file).map_err(CliError::Spec)?;
    let conv = conversion(&graph, &args.spec)?;
    let (c, oh, ow) = graph.input.chw();
    let picture = read_picture(&args.image, c)?;
    let (height, width) = (picture.height, picture.width);
    if height < oh || width < ow {
        return Err(CliError::msg(format!(
            "{}: the picture is {height}×{width}, smaller than the network's input {oh}×{ow}; scan takes pictures at least that large",
            args.image.display()
        )));
    }
    let t = total_stride(&graph);
    let s = args.stride.map_or(t, |s| [s as usize; 2]);
    if let Some(axis) = (0..2).find(|&a| s[a] > t[a] || !t[a].is_multiple_of(s[a])) {
        return Err(CliError::msg(format!(
            "--stride {}: the network's windows step {} pixels {}; a finer stride must divide it (e.g. {})",
            s[axis],
            t[axis],
            ["down", "across"][axis],
            (1..=t[axis]).filter(|&d| t[axis].is_multiple_of(d)).map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    let k = [t[0] / s[0], t[1] / s[1]];
    // Each shifted pass reads the same size: the network's input plus
    // whole strides, within what the last shift leaves.
    let usable = |full: usize, own: usize, a: usize| {
        let room = full.checked_sub((k[a] - 1) * s[a]).filter(|&r| r >= own)?;
        Some(own + (room - own) / t[a] * t[a])
    };
    let (Some(h0), Some(w0)) = (usable(height, oh, 0), usable(width, ow, 1)) else {
        return Err(CliError::msg(format!(
            "{}: at --stride {} the shifted passes need a picture of at least {}×{}",
            args.image.display(),
            s[0],
            oh + (k[0] - 1) * s[0],
            ow + (k[1] - 1) * s[1]
        )));
    };
    let (_, big) = converted(&file.text, &args.spec, &graph, &conv, (h0, w0))?;
    let (classes, mh, mw) = big.output().chw();
    let (mut tensors, _) = weights::read(&args.weights)?;
    convert_weights(&mut tensors, &graph, &conv, &args.weights)?;
    let (mut model, _) = build_model(&big, args.backend, 0, true, super::all_cores())?;
    weights::assign(model.as_mut(), &args.weights, &tensors, &[])?;

    // The passes, interleaved: window (a, b) of the fine map starts at
    // pixel (a·S, b·S).
    let (fh, fw) = (mh * k[0], mw * k[1]);
    let mut scores = vec![0.0f32; classes * fh * fw];
    // A first pass packs the weights and starts the threads: not timed.
    model.forward(&crop(&picture.pixels, (c, height, width), (0, 0), (h0, w0)), 1, Mode::Infer)?;
    let start = Instant::now();
    for (dy, dx) in (0..k[0]).flat_map(|dy| (0..k[1]).map(move |dx| (dy, dx))) {
        let input = crop(&picture.pixels, (c, height, width), (dy * s[0], dx * s[1]), (h0, w0));
        let map = model.forward(&input, 1, Mode::Infer)?;
        for (class, i, j) in (0..classes).flat_map(|q| (0..mh).flat_map(move |i| (0..mw).map(move |j| (q, i, j)))) {
            scores[(class * fh + i * k[0] + dy) * fw + j * k[1] + dx] = map[(class * mh + i) * mw + j];
        }
    }
    let scan_time = start.elapsed();
    let covered = (oh + (fh - 1) * s[0], ow + (fw - 1) * s[1]);
    println!(
        "scanned {height}×{width} ({}×{} covered): {fh}×{fw} windows of {oh}×{ow}, {} pixels apart, in {} pass{} of {:.1} ms",
        covered.0,
        covered.1,
        s[0],
        k[0] * k[1],
        if k[0] * k[1] == 1 { "" } else { "es" },
        scan_time.as_secs_f64() * 1e3
    );

    let probabilities = window_probabilities(&scores, classes);
    let best = best_per_window(&probabilities, classes);
    let mut order: Vec<usize> = (0..best.len()).collect();
    order.sort_by(|&a, &b| best[b].1.total_cmp(&best[a].1).then(a.cmp(&b)));
    println!("most confident windows (class, probability, top-left pixel):");
    for &at in order.iter().take(5) {
        let (q, p) = best[at];
        println!("  class {q:>3}  {p:.3}  at ({}, {})", at / fw * s[0], at % fw * s[1]);
    }
    let mut votes = vec![0usize; classes];
    best.iter().for_each(|&(q, _)| votes[q] += 1);
    let mut ranked: Vec<usize> = (0..classes).filter(|&q| votes[q] > 0).collect();
    ranked.sort_by_key(|&q| std::cmp::Reverse(votes[q]));
    let shares: Vec<String> = ranked.iter().take(5).map(|&q| format!("class {q}: {}", votes[q])).collect();
    println!("windows won per class: {}", shares.join(", "));

    if args.compare {
        let (mut small, _) = build_model(&graph, args.backend, 0, true, super::all_cores())?;
        weights::load_model(small.as_mut(), &args.weights)?;
        small.forward(&crop(&picture.pixels, (c, height, width), (0, 0), (oh, ow)), 1, Mode::Infer)?;
        let start = Instant::now();
        let mut worst = 0.0f32;
        for at in 0..fh * fw {
            let window = crop(&picture.pixels, (c, height, width), (at / fw * s[0], at % fw * s[1]), (oh, ow));
            let own = small.forward(&window, 1, Mode::Infer)?;
            for (q, &v) in own.iter().enumerate() {
                worst = worst.max((v - scores[q * fh * fw + at]).abs());
            }
        }
        let pads = graph.nodes.iter().any(|n| pads(&n.op));
        println!(
            "the {} crops one by one: {:.1} ms ({:.1}× the scan); largest difference from the scan's scores {worst:.2e}{}",
            fh * fw,
            start.elapsed().as_secs_f64() * 1e3,
            start.elapsed().as_secs_f64() / scan_time.as_secs_f64(),
            if pads { " (the network pads: a crop sees zeros at its border where the scan sees the neighbouring pixels)" } else { "" }
        );
    }

    if let Some(path) = &args.scores {
        weights::save(path, &[Tensor { name: "scores".into(), shape: vec![classes, fh, fw], data: scores }], Default::default())?;
        println!("scores: {} [{classes}, {fh}, {fw}]", path.display());
    }
    if let Some(path) = &args.out {
        let winner = best[order[0]].0;
        let heat: Vec<f32> = probabilities.chunks_exact(classes).map(|p| p[winner]).collect();
        write_png_rgb(path, width, height, &heat_map(&picture.pixels, (c, height, width), &heat, (fh, fw), (oh, ow), s))?;
        println!("heat map of class {winner}: {}", path.display());
    }
    Ok(())
}

/// For each window of a `classes × windows` score map, the softmax over
/// its classes: a row of `classes` probabilities per window.
pub(super) fn window_probabilities(map: &[f32], classes: usize) -> Vec<f32> {
    let windows = map.len() / classes;
    let rows: Vec<f32> = (0..windows).flat_map(|at| (0..classes).map(move |q| map[q * windows + at])).collect();
    softmax(&rows, classes)
}

/// Each window's best class and its probability, from
/// [`window_probabilities`].
pub(super) fn best_per_window(probabilities: &[f32], classes: usize) -> Vec<(usize, f32)> {
    probabilities
        .chunks_exact(classes)
        .map(|p| {
            let q = argmax(p);
            (q, p[q])
        })
        .collect()
}

/// The picture in grey, tinted red by `heat` (a value in [0, 1] per window
/// of the `fh × fw` map) at the window whose centre is nearest each pixel.
fn heat_map(
    pixels: &[f32],
    (c, height, width): (usize, usize, usize),
    heat: &[f32],
    (fh, fw): (usize, usize),
    (oh, ow): (usize, usize),
    s: [usize; 2],
) -> Vec<u8> {
    let nearest = |p: usize, own: usize, step: usize| (p.saturating_sub(own / 2) + step / 2) / step.max(1);
    let plane = height * width;
    let mut rgb = Vec::with_capacity(plane * 3);
    for y in 0..height {
        for x in 0..width {
            let grey = (0..c).map(|ci| pixels[ci * plane + y * width + x]).sum::<f32>() / c as f32;
            let (a, b) = (nearest(y, oh, s[0]).min(fh - 1), nearest(x, ow, s[1]).min(fw - 1));
            let h = heat[a * fw + b];
            let base = 0.6 * grey;
            let to_byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            rgb.extend([to_byte(base * (1.0 - h) + h), to_byte(base * (1.0 - h)), to_byte(base * (1.0 - h))]);
        }
    }
    rgb
}

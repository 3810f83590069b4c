//! `convc show`: what a conv network computes, as pictures — the first conv
//! layer's filters, and every conv and pool layer's feature maps for one
//! image (each map normalised on its own), with an index.html that shows
//! them in order.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use convc_compiler::graph::{Op, Shape};
use convc_runtime::Mode;
use convc_runtime::Model;
use convc_runtime::train::{files, weights};

use super::picture::{grid, images, normalised, write_png_rgb};
use super::{CliError, load_graph};

#[derive(Args)]
pub struct ShowArgs {
    spec: PathBuf,
    /// Trained weights.
    #[arg(long, value_name = "W.safetensors")]
    weights: PathBuf,
    /// A PNG or JPEG picture, or IDX images (with --index).
    #[arg(long, value_name = "FILE")]
    image: PathBuf,
    /// Which image of an IDX file.
    #[arg(long, default_value_t = 0)]
    index: usize,
    /// The directory the pictures and index.html go to (made if missing).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
}

/// Smallest side, in pixels, a drawn map or filter gets.
const MIN_SIDE: usize = 48;

pub fn run(args: ShowArgs) -> Result<(), CliError> {
    let graph = load_graph(&args.spec)?;
    let (c, h, w) = graph.input.chw();
    let set = images(&args.image, c)?;
    if args.index >= set.len() {
        return Err(CliError::msg(format!("--index {}: {} holds {} images", args.index, args.image.display(), set.len())));
    }
    set.check_fits(&args.image, &args.image, graph.input, graph.classes())?;
    let image = set.image(args.index);
    if args.output.exists() && !args.output.is_dir() {
        return Err(CliError::msg(format!("-o {}: not a directory", args.output.display())));
    }
    std::fs::create_dir_all(&args.output).map_err(|e| CliError::msg(format!("-o {}: cannot make it: {e}", args.output.display())))?;

    let mut net = convc_compiler::interpreter(&graph, 0);
    weights::load_model(&mut net, &args.weights)?;
    net.forward(image, 1, Mode::Infer)?;

    let mut pictures: Vec<(String, String)> = Vec::new();
    let mut save = |file: String, caption: String, (gw, gh, rgb): (usize, usize, Vec<u8>)| -> Result<(), CliError> {
        write_png_rgb(&args.output.join(&file), gw, gh, &rgb)?;
        pictures.push((file, caption));
        Ok(())
    };
    let scale = |side: usize| MIN_SIDE.div_ceil(side.max(1)).max(1);
    let tiles_of = |values: &[f32], maps: usize| -> Vec<Vec<f32>> { values.chunks(values.len() / maps.max(1)).map(normalised).collect() };

    let shown_input = if c == 3 { vec![normalised(image)] } else { tiles_of(image, c) };
    save("input.png".into(), format!("input {c}×{h}×{w}"), grid(&shown_input, (if c == 3 { 3 } else { 1 }, h, w), scale(h.min(w))))?;

    if let Some(first) = graph.nodes.iter().find(|n| matches!(n.op, Op::Conv2d(_))) {
        let weight = net.params().into_iter().find(|p| p.name == format!("{}.weight", first.name)).expect("a conv has a weight");
        let [f, fc, kh, kw] = weight.shape[..] else { unreachable!("conv weights are [out, in, kh, kw]") };
        // RGB filters in colour; others as the mean over their input channels.
        let tiles: Vec<Vec<f32>> = weight
            .value
            .chunks(fc * kh * kw)
            .map(|filter| {
                if fc == 3 {
                    normalised(filter)
                } else {
                    let mean: Vec<f32> =
                        (0..kh * kw).map(|t| (0..fc).map(|ci| filter[ci * kh * kw + t]).sum::<f32>() / fc as f32).collect();
                    normalised(&mean)
                }
            })
            .collect();
        let file = format!("{}-filters-{f}x{fc}x{kh}x{kw}.png", first.name);
        save(
            file,
            format!("{}: {f} filters of {fc}×{kh}×{kw}", first.name),
            grid(&tiles, (if fc == 3 { 3 } else { 1 }, kh, kw), scale(kh.min(kw))),
        )?;
    }

    for (i, (node, output)) in graph.nodes.iter().zip(net.outputs()).enumerate() {
        if !matches!(node.op, Op::Conv2d(_) | Op::Local2d(_) | Op::Pool(_)) {
            continue;
        }
        let Shape::Image { c: maps, h: mh, w: mw } = node.output else { continue };
        let file = format!("{:02}-{}-{maps}x{mh}x{mw}.png", i + 1, node.name);
        save(
            file,
            format!("{} ({}): {maps}×{mh}×{mw}", node.name, node.op.type_name()),
            grid(&tiles_of(output, maps), (1, mh, mw), scale(mh.min(mw))),
        )?;
    }

    let mut html = format!(
        "<!doctype html>\n<meta charset=\"utf-8\">\n<title>{0}: feature maps</title>\n<style>body{{font-family:sans-serif}} img{{image-rendering:pixelated;display:block;margin-bottom:1.5em}}</style>\n<h1>{0}</h1>\n<p>{1}, each map normalised on its own (black its minimum, white its maximum).</p>\n",
        graph.name,
        if set.len() == 1 { args.image.display().to_string() } else { format!("image {} of {}", args.index, args.image.display()) }
    );
    for (file, caption) in &pictures {
        let _ = writeln!(html, "<h2>{caption}</h2>\n<img src=\"{file}\" alt=\"{caption}\">");
    }
    files::write_atomic(&args.output.join("index.html"), html.as_bytes())
        .map_err(|e| CliError::msg(format!("{}: cannot write: {e}", args.output.join("index.html").display())))?;
    println!("{} pictures and index.html in {}", pictures.len(), args.output.display());
    Ok(())
}

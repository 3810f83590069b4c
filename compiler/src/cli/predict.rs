//! `convc predict`: run trained weights over IDX images.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;
use convc_compiler::graph::Shape;
use convc_runtime::train::data::{self, Dataset};
use convc_runtime::train::eval::{confusion_matrix, evaluate};
use convc_runtime::train::loss::argmax;
use convc_runtime::train::weights::{self, Tensor};
use convc_runtime::{Mode, Model};

use super::picture::images;
use super::scan::{best_per_window, window_probabilities};
use super::{Backend, CliError, build_model, load_graph};

#[derive(Args)]
pub struct PredictArgs {
    spec: PathBuf,
    /// Trained weights (safetensors, PyTorch names and layouts).
    #[arg(long, value_name = "W.safetensors")]
    weights: PathBuf,
    /// Images in IDX format (idx3, .gz or raw), or one PNG or JPEG picture.
    #[arg(long, value_name = "FILE")]
    images: PathBuf,
    /// Labels in IDX format (idx1): prints accuracy and a confusion matrix.
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// Write the logits as tensor `logits` [N, classes] to a safetensors file
    /// ([N, C, H, W] for a network that scores a map of windows).
    #[arg(long, value_name = "OUT.safetensors")]
    logits: Option<PathBuf>,
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    #[arg(long, value_enum, default_value_t = Backend::Jit)]
    backend: Backend,
}

pub fn run(args: PredictArgs) -> Result<(), CliError> {
    let graph = load_graph(&args.spec)?;
    let map = match graph.output() {
        Shape::Image { c, h, w } if h * w > 1 => Some((c, h, w)),
        _ => None,
    };
    if let (Some((c, h, w)), Some(labels)) = (map, &args.labels) {
        return Err(CliError::msg(format!(
            "--labels {}: the network scores a {c}×{h}×{w} map of windows, not one score per class for each image; \
             accuracy needs the network it was convolutionized from (or drop --labels to see each window's best class)",
            labels.display()
        )));
    }
    super::memory::check(&graph, args.batch as usize, None)?;
    let (mut model, _) = build_model(&graph, args.backend, 0, true, super::all_cores())?;
    weights::load_model(model.as_mut(), &args.weights)?;
    let has_labels = args.labels.is_some();
    let set = match &args.labels {
        Some(labels) => data::load_files(&args.images, labels)?,
        // No labels: the evaluation's are zeros and only the logits count.
        None => images(&args.images, graph.input.chw().0)?,
    };
    let n = set.len();
    if n == 0 {
        return Err(CliError::msg(format!("{}: holds no images: nothing to predict", args.images.display())));
    }
    let classes = map.map_or(graph.classes(), |(c, _, _)| c);
    set.check_fits(&args.images, args.labels.as_deref().unwrap_or(&args.images), graph.input, classes)?;
    if let Some(map) = map {
        return predict_map(model.as_mut(), &set, map, &args);
    }
    let eval = evaluate(model.as_mut(), &set, args.batch as usize)?;
    if has_labels {
        println!("accuracy {:.4} ({} of {n} images), loss {:.4}", eval.accuracy, (eval.accuracy * n as f32).round() as usize, eval.loss);
        println!("confusion matrix (rows: true class, columns: predicted):");
        let m = confusion_matrix(&set.labels, &eval.predictions, classes);
        let width = m.iter().flatten().max().map_or(1, |v| v.to_string().len()).max(3);
        print!("{:>5}", "");
        for c in 0..classes {
            print!(" {c:>width$}");
        }
        println!();
        for (t, row) in m.iter().enumerate() {
            print!("{t:>5}");
            for v in row {
                print!(" {v:>width$}");
            }
            println!();
        }
    } else {
        let mut counts = vec![0usize; classes];
        for &p in &eval.predictions {
            counts[p] += 1;
        }
        println!("predicted {n} images; images per class: {counts:?}");
    }
    if let Some(path) = &args.logits {
        let tensor = Tensor { name: "logits".into(), shape: vec![n, classes], data: eval.logits };
        weights::save(path, &[tensor], HashMap::new())?;
        println!("logits: {}", path.display());
    }
    Ok(())
}

/// A network whose output is a map of windows (`convc convolutionize`):
/// per image, each window's best class and its probability (softmax over
/// the classes at that window) — as a grid for small maps, else the best
/// window and the class most windows pick; `--logits` as `[N, C, H, W]`.
fn predict_map(model: &mut dyn Model, set: &Dataset, (c, h, w): (usize, usize, usize), args: &PredictArgs) -> Result<(), CliError> {
    let n = set.len();
    let per_image = c * h * w;
    let mut logits = Vec::with_capacity(n * per_image);
    let mut input = Vec::new();
    let indices: Vec<usize> = (0..n).collect();
    for chunk in indices.chunks(args.batch as usize) {
        set.gather(chunk, &mut input);
        logits.extend_from_slice(model.forward(&input, chunk.len(), Mode::Infer)?);
    }
    println!("{n} images, each scored at {h}×{w} windows over {c} classes");
    const GRID: usize = 8;
    const IMAGES: usize = 16;
    for (i, image) in logits.chunks_exact(per_image).enumerate().take(IMAGES) {
        let best = best_per_window(&window_probabilities(image, c), c);
        if h <= GRID && w <= GRID {
            println!("image {i}: best class (probability) per window, rows top to bottom:");
            for row in best.chunks(w) {
                let cells: Vec<String> = row.iter().map(|(k, p)| format!("{k:>3} ({p:.2})")).collect();
                println!("  {}", cells.join(" "));
            }
        } else {
            let (at, &(k, p)) = best.iter().enumerate().max_by(|a, b| a.1.1.total_cmp(&b.1.1)).expect("a map has windows");
            let mut votes = vec![0usize; c];
            for &(k, _) in &best {
                votes[k] += 1;
            }
            let common = argmax(&votes.iter().map(|&v| v as f32).collect::<Vec<_>>());
            println!(
                "image {i}: most confident window ({}, {}) class {k} ({p:.2}); class {common} is best at {} of {} windows",
                at / w,
                at % w,
                votes[common],
                h * w
            );
        }
    }
    if n > IMAGES {
        println!("({} more images; --logits writes every score)", n - IMAGES);
    }
    if let Some(path) = &args.logits {
        let tensor = Tensor { name: "logits".into(), shape: vec![n, c, h, w], data: logits };
        weights::save(path, &[tensor], HashMap::new())?;
        println!("logits: {} [{n}, {c}, {h}, {w}]", path.display());
    }
    Ok(())
}

//! `convc predict`: run trained weights over IDX images.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;
use convc_runtime::train::data::{self, Dataset};
use convc_runtime::train::eval::{confusion_matrix, evaluate};
use convc_runtime::train::weights::{self, Tensor};

use super::{Backend, CliError, build_model, load_graph};

#[derive(Args)]
pub struct PredictArgs {
    spec: PathBuf,
    /// Trained weights (safetensors, PyTorch names and layouts).
    #[arg(long, value_name = "W.safetensors")]
    weights: PathBuf,
    /// Images in IDX format (idx3, .gz or raw).
    #[arg(long, value_name = "FILE")]
    images: PathBuf,
    /// Labels in IDX format (idx1): prints accuracy and a confusion matrix.
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// Write the logits as tensor `logits` [N, classes] to a safetensors file.
    #[arg(long, value_name = "OUT.safetensors")]
    logits: Option<PathBuf>,
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    #[arg(long, value_enum, default_value_t = Backend::Jit)]
    backend: Backend,
}

pub fn run(args: PredictArgs) -> Result<(), CliError> {
    let graph = load_graph(&args.spec)?;
    super::memory::check(&graph, args.batch as usize, None)?;
    let (mut model, _) = build_model(&graph, args.backend, 0, true, super::all_cores())?;
    weights::load_model(model.as_mut(), &args.weights)?;
    let has_labels = args.labels.is_some();
    let set = match &args.labels {
        Some(labels) => data::load_files(&args.images, labels)?,
        None => {
            // No labels: the evaluation's are zeros and only the logits count.
            let (pixels, n, height, width) = data::read_images(&args.images)?;
            Dataset { images: pixels.iter().map(|&p| p as f32 / 255.0).collect(), labels: vec![0; n], height, width }
        }
    };
    let n = set.len();
    if n == 0 {
        return Err(CliError::msg(format!("{}: holds no images: nothing to predict", args.images.display())));
    }
    set.check_fits(&args.images, args.labels.as_deref().unwrap_or(&args.images), graph.input, graph.classes())?;
    let eval = evaluate(model.as_mut(), &set, args.batch as usize)?;
    let classes = graph.classes();
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

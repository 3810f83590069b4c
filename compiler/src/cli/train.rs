//! `convc train`: flags, then the spec's `[training]` table, then defaults.

use std::path::{Path, PathBuf};

use clap::Args;
use convc_compiler::Graph;
use convc_compiler::spec::{OptimizerKind, OptimizerSpec};
use convc_runtime::train::checkpoint::{self, Checkpoint};
use convc_runtime::train::data::{self, Dataset, Split};
use convc_runtime::train::history::{self as curve, EpochStats};
use convc_runtime::train::optim::{self, Bounds, Optimizer, OptimizerConfig};
use convc_runtime::train::{self, TrainOptions};
use convc_runtime::train::{files, weights};

use super::{Backend, CliError, OptimizerArg, build_model, load_graph};

#[derive(Args)]
pub struct TrainArgs {
    /// The network's spec (TOML).
    spec: PathBuf,
    /// Directory with train-/t10k- images and labels in IDX format (.gz or raw).
    #[arg(long, default_value = data::FASHION_MNIST_DIR)]
    data: PathBuf,
    /// Total epochs (default: the spec's, else 5).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: Option<u32>,
    /// Images per step (default: the spec's, else 64).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    batch: Option<u32>,
    /// Optimizer (default: the spec's, else adam).
    #[arg(long)]
    optimizer: Option<OptimizerArg>,
    /// Learning rate, 0 to 10 (default: the spec's, else 1e-3 for adam, 0.01 for sgd).
    #[arg(long, value_parser = number_in(optim::LR))]
    lr: Option<f32>,
    /// SGD momentum, 0 to 1 (default: the spec's, else 0.9).
    #[arg(long, value_parser = number_in(optim::MOMENTUM))]
    momentum: Option<f32>,
    /// L2 weight decay, 0 to 1 (default: the spec's, else 0).
    #[arg(long, value_parser = number_in(optim::WEIGHT_DECAY))]
    weight_decay: Option<f32>,
    /// Seed of initialisation, shuffling and dropout (default: the spec's, else 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Keep the data set's order.
    #[arg(long)]
    no_shuffle: bool,
    /// Start from these weights (safetensors) instead of a random initialisation.
    #[arg(long, value_name = "W.safetensors")]
    init: Option<PathBuf>,
    /// Write the weights here after every epoch, and a checkpoint beside them
    /// (W.ckpt.safetensors) for --resume.
    #[arg(long, value_name = "W.safetensors")]
    save: Option<PathBuf>,
    /// Continue from a checkpoint written by --save.
    #[arg(long, value_name = "CKPT")]
    resume: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Backend::Jit)]
    backend: Backend,
    /// Train on the first N training images only.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long, value_name = "N")]
    test_limit: Option<usize>,
    /// Write the learning curve as CSV.
    #[arg(long, value_name = "FILE.csv")]
    curve: Option<PathBuf>,
    /// Draw the learning curve as an SVG chart.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// JIT: run conv, activation and pool as separate stages (to measure fusion).
    #[arg(long)]
    no_fusion: bool,
    /// JIT: threads each batch is split over (default: every core). The
    /// same seed and thread count give identical weights.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
}

/// A flag's value under the rule a spec's `[training]` table applies to the
/// same key. NaN, infinities and values that overflow f32 are refused here,
/// before any training.
fn number_in(range: Bounds) -> impl Fn(&str) -> Result<f32, String> + Clone + Send + Sync + 'static {
    move |text| match text.trim().parse::<f64>() {
        Ok(x) if range.contains(x) && range.contains(f64::from(x as f32)) => Ok(x as f32),
        Ok(_) => Err(format!("expected {range}, as in a spec's [training] table")),
        Err(_) => Err(format!("expected {range}")),
    }
}

/// The optimizer from flags, then the spec, then defaults.
fn optimizer_config(args: &TrainArgs, spec: Option<&OptimizerSpec>) -> OptimizerConfig {
    let kind = match args.optimizer {
        Some(OptimizerArg::Sgd) => OptimizerKind::Sgd,
        Some(OptimizerArg::Adam) => OptimizerKind::Adam,
        None => spec.map_or(OptimizerKind::Adam, |s| s.kind),
    };
    // Spec values only apply to the optimizer the spec names.
    let spec = spec.filter(|s| s.kind == kind);
    let pick = |flag: Option<f32>, from_spec: Option<f64>, default: f32| flag.or(from_spec.map(|v| v as f32)).unwrap_or(default);
    let weight_decay = pick(args.weight_decay, spec.and_then(|s| s.weight_decay), 0.0);
    match kind {
        OptimizerKind::Sgd => OptimizerConfig::Sgd {
            lr: pick(args.lr, spec.and_then(|s| s.lr), 0.01),
            momentum: pick(args.momentum, spec.and_then(|s| s.momentum), 0.9),
            weight_decay,
        },
        OptimizerKind::Adam => OptimizerConfig::Adam {
            lr: pick(args.lr, spec.and_then(|s| s.lr), 1e-3),
            beta1: pick(None, spec.and_then(|s| s.beta1), 0.9),
            beta2: pick(None, spec.and_then(|s| s.beta2), 0.999),
            epsilon: pick(None, spec.and_then(|s| s.epsilon), 1e-8),
            weight_decay,
        },
    }
}

fn load_data(dir: &Path, split: Split, graph: &Graph, limit: Option<usize>) -> Result<Dataset, CliError> {
    let (images, labels) = data::split_files(dir, split)?;
    let mut set = data::load_files(&images, &labels)?;
    set.check_fits(&images, &labels, graph.input, graph.classes())?;
    if let Some(n) = limit {
        set.truncate(n);
    }
    Ok(set)
}

pub fn run(args: TrainArgs) -> Result<(), CliError> {
    let graph = load_graph(&args.spec)?;
    if args.resume.is_some() {
        check_resume_flags(&args)?;
    }
    // Output paths are checked now, not after the epochs they would record.
    if let Some(path) = &args.save {
        check_output("--save", path)?;
        check_output("--save", &checkpoint::path_for(path))?;
    }
    for (flag, path) in [("--curve", &args.curve), ("--plot", &args.plot)] {
        if let Some(path) = path {
            check_output(flag, path)?;
        }
    }
    let training = &graph.training;
    let epochs = args.epochs.map(|e| e as usize).or(training.epochs).unwrap_or(5);
    let batch = args.batch.map(|b| b as usize).or(training.batch).unwrap_or(64);
    let mut seed = args.seed.or(training.seed).unwrap_or(0);
    let config = optimizer_config(&args, training.optimizer.as_ref());
    // The spec checked its numbers as f64; one may round to a bad f32 (β 0.999999999 to 1).
    config.check().map_err(|e| CliError::msg(format!("{}: the optimizer's {e}", args.spec.display())))?;
    let mut optimizer = Optimizer::new(config);
    let threads = args.threads.map_or_else(super::all_cores, |t| t as usize);

    let mut history = Vec::new();
    let checkpoint = match &args.resume {
        Some(path) => {
            let path = resolve_checkpoint(path);
            let ckpt = Checkpoint::load(&path)?;
            optimizer = ckpt.optimizer.clone();
            Some((path, ckpt))
        }
        None => None,
    };
    let kind = OptimizerKind::from_name(optimizer.config.kind()).expect("the optimizers a spec names");
    super::memory::check(&graph, batch, Some(kind))?;

    let train_set = load_data(&args.data, Split::Train, &graph, args.limit)?;
    let test_set = load_data(&args.data, Split::Test, &graph, args.test_limit)?;
    if train_set.is_empty() {
        return Err(CliError::msg("the training set is empty (check --limit)"));
    }
    if test_set.is_empty() {
        return Err(CliError::msg(format!(
            "the test set is empty: nothing to test each epoch against (check --test-limit, or the t10k files in {})",
            args.data.display()
        )));
    }

    let (mut model, _) = build_model(&graph, args.backend, seed, !args.no_fusion, threads)?;
    if let Some(path) = &args.init {
        weights::load_model(model.as_mut(), path)?;
    }
    if let Some((path, ckpt)) = checkpoint {
        optimizer = ckpt.restore(model.as_mut(), &path)?;
        seed = ckpt.seed;
        history = ckpt.history;
        println!("resuming {} from {} after epoch {}", graph.name, path.display(), ckpt.epochs_done);
        if ckpt.epochs_done >= epochs {
            println!("nothing to do: {} of {epochs} epochs are done (raise --epochs)", ckpt.epochs_done);
            return Ok(());
        }
    }

    println!(
        "training {} ({} parameters) on {} images, testing on {}: {} epochs, batch {batch}, {} lr {}, seed {seed}, backend {}{}",
        graph.name,
        convc_compiler::summary::group(model.param_count() as u64),
        train_set.len(),
        test_set.len(),
        epochs,
        optimizer.config.kind(),
        optimizer.config.lr(),
        args.backend.name(),
        if args.backend == Backend::Jit { format!(" ({threads} threads)") } else { String::new() },
    );
    // The update of large parameters on the model's threads (the interpreter's: one).
    optimizer.set_threads(if args.backend == Backend::Jit { threads } else { 1 });
    let opts = TrainOptions { epochs, batch, shuffle: !args.no_shuffle, seed, save: args.save.clone(), progress: !args.quiet };
    let mut print = |s: &EpochStats| {
        println!(
            "epoch {}/{epochs}  loss {:.4}  train accuracy {:.4}  test accuracy {:.4}  {:.1} s  {:.0} img/s",
            s.epoch, s.train_loss, s.train_accuracy, s.test_accuracy, s.seconds, s.images_per_s
        )
    };
    let history = train::train(model.as_mut(), &mut optimizer, &train_set, &test_set, &opts, history, &mut print)?;

    if let Some(path) = &args.curve {
        files::write_atomic(path, curve::to_csv(&history).as_bytes())
            .map_err(|e| CliError::msg(format!("{}: cannot write: {e}", path.display())))?;
    }
    if let Some(path) = &args.plot {
        files::write_atomic(path, curve::to_svg(&graph.name, &history).as_bytes())
            .map_err(|e| CliError::msg(format!("{}: cannot write: {e}", path.display())))?;
    }
    report(&history, &args);
    Ok(())
}

/// That a file can be written at `path` (given by `flag`): a regular file
/// or a new one (through a symlink, its target), in a directory that exists
/// and takes a new file (a probe file is made and removed beside it).
fn check_output(flag: &str, path: &Path) -> Result<(), CliError> {
    let fail = |why: String| Err(CliError::msg(format!("{flag} {}: {why}", path.display())));
    let target = match files::writable_target(path) {
        Ok(target) => target,
        Err(e) => return fail(e.to_string()),
    };
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return fail(format!("the directory {} does not exist", dir.display()));
    }
    let name = target.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let probe = dir.join(format!(".{name}.probe-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => fail(format!("cannot write in {}: {e}", dir.display())),
    }
}

/// A resumed run continues the checkpoint's run: its optimizer state only
/// means something under its optimizer, and exact resume needs its seed.
/// Flags that would set them otherwise are refused, not silently ignored.
fn check_resume_flags(args: &TrainArgs) -> Result<(), CliError> {
    let given = [
        ("--optimizer", args.optimizer.is_some()),
        ("--lr", args.lr.is_some()),
        ("--momentum", args.momentum.is_some()),
        ("--weight-decay", args.weight_decay.is_some()),
        ("--seed", args.seed.is_some()),
        ("--init", args.init.is_some()),
    ];
    let flags: Vec<&str> = given.iter().filter(|(_, set)| *set).map(|(flag, _)| *flag).collect();
    if flags.is_empty() {
        return Ok(());
    }
    Err(CliError::msg(format!(
        "{} cannot be combined with --resume: a resumed run continues with the checkpoint's weights, optimizer, \
         learning rate and seed. Drop {}, or start a new run from the checkpoint's weights with --init W.safetensors",
        flags.join(", "),
        if flags.len() == 1 { "it" } else { "them" }
    )))
}

/// `--resume w.safetensors` means the checkpoint written beside it.
fn resolve_checkpoint(path: &Path) -> PathBuf {
    let beside = checkpoint::path_for(path);
    if !path.to_string_lossy().ends_with(".ckpt.safetensors") && beside.is_file() { beside } else { path.to_path_buf() }
}

fn report(history: &[EpochStats], args: &TrainArgs) {
    let Some(last) = history.last() else { return };
    let best = history.iter().max_by(|a, b| a.test_accuracy.total_cmp(&b.test_accuracy)).expect("non-empty");
    let seconds: f64 = history.iter().map(|s| s.seconds).sum();
    println!(
        "done: test accuracy {:.4} after epoch {} (best {:.4} at epoch {}); {:.1} s of training, {:.0} img/s",
        last.test_accuracy,
        last.epoch,
        best.test_accuracy,
        best.epoch,
        seconds,
        history.iter().map(|s| s.images_per_s).sum::<f64>() / history.len() as f64
    );
    if let Some(path) = &args.save {
        println!("weights: {} (checkpoint: {})", path.display(), checkpoint::path_for(path).display());
    }
    for (what, path) in [("curve", &args.curve), ("plot", &args.plot)] {
        if let Some(p) = path {
            println!("{what}: {}", p.display());
        }
    }
}

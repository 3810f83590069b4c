//! The TensorFlow tutorial convnet (conv5×5×32 same, pool, conv5×5×64 same,
//! pool, dense 1024, dropout 0.4, dense 10) declared with `convc::network!`,
//! trained on Fashion-MNIST with Adam, then evaluated on the test set.
//!
//! ```text
//! cargo run --release -p convc-example-fashion -- [--epochs N] [--data DIR] [--threads N] [--save W.safetensors]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use convc::runtime::train::data::{self, FASHION_MNIST_DIR, Split};
use convc::runtime::train::optim::{Optimizer, OptimizerConfig};
use convc::runtime::train::{self, TrainOptions};

convc::network!(pub FashionTf = "../../specs/fashion_tf.toml");

struct Args {
    epochs: usize,
    data: PathBuf,
    threads: Option<usize>,
    save: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { epochs: 2, data: PathBuf::from(FASHION_MNIST_DIR), threads: None, save: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--epochs" => args.epochs = value()?.parse().map_err(|_| "--epochs takes a whole number, e.g. --epochs 6".to_string())?,
            "--data" => args.data = PathBuf::from(value()?),
            "--threads" => {
                args.threads = Some(value()?.parse().map_err(|_| "--threads takes a whole number, e.g. --threads 2".to_string())?)
            }
            "--save" => args.save = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument `{other}`; expected --epochs N, --data DIR, --threads N or --save FILE")),
        }
    }
    Ok(args)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let train_set = data::load_split(&args.data, Split::Train)?;
    let test_set = data::load_split(&args.data, Split::Test)?;
    let mut net = FashionTf::new(42);
    if let Some(t) = args.threads {
        net.set_threads(t);
    }
    println!(
        "{}: {}×{}×{} → {} classes, {} parameters; stages: {}",
        FashionTf::NAME,
        FashionTf::C,
        FashionTf::H,
        FashionTf::W,
        FashionTf::CLASSES,
        FashionTf::PARAMS,
        net.stages().join(", ")
    );
    let mut optimizer = Optimizer::new(OptimizerConfig::Adam { lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weight_decay: 0.0 });
    optimizer.set_threads(net.threads());
    let opts = TrainOptions { epochs: args.epochs, batch: 64, shuffle: true, seed: 42, save: args.save, progress: true };
    let history = train::train(&mut net, &mut optimizer, &train_set, &test_set, &opts, Vec::new(), &mut |s| {
        println!(
            "epoch {}/{}: train loss {:.4} acc {:.4} | test loss {:.4} acc {:.4} | {:.1} s, {:.0} img/s",
            s.epoch, args.epochs, s.train_loss, s.train_accuracy, s.test_loss, s.test_accuracy, s.seconds, s.images_per_s
        );
    })?;
    if let Some(last) = history.last() {
        println!("test accuracy {:.4}", last.test_accuracy);
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

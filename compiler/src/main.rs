//! The `convc` command-line tool.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::OptimizerArg;
use convc_compiler::spec::OptimizerKind;
use convc_compiler::summary::Summary;

#[derive(Parser)]
#[command(name = "convc", version, about = "An ahead-of-time compiler for convolutional neural networks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check specs: syntax, fields and the geometry of every layer. Exits
    /// non-zero if any spec has an error.
    Check {
        #[arg(required = true)]
        specs: Vec<PathBuf>,
    },
    /// Print a Keras-style summary: shapes, parameters, MACs, memory.
    Summary {
        spec: PathBuf,
        /// Batch size for the training-memory estimate.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
        batch: u32,
        /// Optimizer for the training-memory estimate (default: the spec's, else adam).
        #[arg(long)]
        optimizer: Option<OptimizerArg>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Train a network on MNIST-format data (Fashion-MNIST by default).
    Train(cli::train::TrainArgs),
    /// Run trained weights over images; with labels, print accuracy and a confusion matrix.
    Predict(cli::predict::PredictArgs),
    /// Measure images/s, GFLOP/s and the fraction of this machine's peak.
    Bench(cli::bench::BenchArgs),
    /// Print the Rust code `convc::network!` expands a spec to.
    EmitRust(cli::emit::EmitArgs),
    /// Rewrite a network's dense layers as convolutions for a larger input:
    /// one pass scores every window (the sliding-window trick).
    Convolutionize(cli::convolutionize::ConvolutionizeArgs),
    /// Score every window of a larger picture (PNG) in one pass, and draw
    /// where the winning class is.
    Scan(cli::scan::ScanArgs),
    /// Draw the first conv layer's filters and every conv and pool layer's
    /// feature maps for one image, as PNG pictures with an index.html.
    Show(cli::show::ShowArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { specs } => check(&specs),
        Command::Summary { spec, batch, optimizer, json } => summary(&spec, batch as usize, optimizer, json),
        Command::Train(args) => cli::report(cli::train::run(args)),
        Command::Predict(args) => cli::report(cli::predict::run(args)),
        Command::Bench(args) => cli::report(cli::bench::run(args)),
        Command::EmitRust(args) => cli::report(cli::emit::run(args)),
        Command::Convolutionize(args) => cli::report(cli::convolutionize::run(args)),
        Command::Scan(args) => cli::report(cli::scan::run(args)),
        Command::Show(args) => cli::report(cli::show::run(args)),
    }
}

fn check(specs: &[PathBuf]) -> ExitCode {
    let mut failed = 0;
    for path in specs {
        match convc_compiler::check(path) {
            Ok(graph) => {
                eprintln!(
                    "{}: ok ({} layers, {} parameters)",
                    path.display(),
                    graph.nodes.len(),
                    convc_compiler::summary::group(graph.param_count())
                );
            }
            Err(e) => {
                e.emit_stderr();
                let n = e.error_count();
                eprintln!("{}: {n} error{}", path.display(), if n == 1 { "" } else { "s" });
                failed += 1;
            }
        }
    }
    if failed > 0 {
        if specs.len() > 1 {
            eprintln!("{failed} of {} specs have errors", specs.len());
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn summary(path: &std::path::Path, batch: usize, optimizer: Option<OptimizerArg>, json: bool) -> ExitCode {
    let graph = match convc_compiler::check(path) {
        Ok(graph) => graph,
        Err(e) => {
            e.emit_stderr();
            return ExitCode::FAILURE;
        }
    };
    let optimizer = match optimizer {
        Some(OptimizerArg::Sgd) => OptimizerKind::Sgd,
        Some(OptimizerArg::Adam) => OptimizerKind::Adam,
        None => graph.training.optimizer.as_ref().map_or(OptimizerKind::Adam, |o| o.kind),
    };
    let summary = Summary::new(&graph, batch, optimizer);
    if json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.render());
    }
    ExitCode::SUCCESS
}

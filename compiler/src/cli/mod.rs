//! Pieces shared by the subcommands of `convc`.

pub mod bench;
pub mod convolutionize;
pub mod emit;
pub mod memory;
pub mod picture;
pub mod predict;
pub mod scan;
pub mod show;
pub mod train;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;
use convc_compiler::{Graph, SpecError};
use convc_runtime::Model;
use convc_runtime::model::ModelError;
use convc_runtime::train::TrainError;
use convc_runtime::train::data::DataError;
use convc_runtime::train::weights::WeightsError;

#[derive(Clone, Copy, ValueEnum)]
pub enum OptimizerArg {
    Sgd,
    Adam,
}

/// Which code runs the network.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Backend {
    /// Machine code compiled at run time by Cranelift.
    Jit,
    /// The reference interpreter.
    Interp,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Jit => "jit",
            Self::Interp => "interp",
        }
    }
}

/// The default thread count: every core.
pub fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `fuse`: let the JIT fuse conv + activation + pool (off only to measure
/// what fusion buys).
/// `threads`: the JIT splits each batch over this many threads (the
/// interpreter, the reference, stays single-threaded).
/// Returns the model and, for the JIT, the time code generation and
/// compilation took.
pub fn build_model(
    graph: &Graph,
    backend: Backend,
    seed: u64,
    fuse: bool,
    threads: usize,
) -> Result<(Box<dyn Model>, Option<Duration>), CliError> {
    use convc_compiler::codegen::cranelift::{JitOptions, compile_with};
    Ok(match backend {
        Backend::Interp => (Box::new(convc_compiler::interpreter(graph, seed)) as Box<dyn Model>, None),
        Backend::Jit => {
            let net = compile_with(graph, JitOptions { fuse, seed, threads, ..JitOptions::default() })
                .map_err(|e| CliError::msg(e.to_string()))?;
            eprintln!(
                "compiled {} stages ({}) in {:.2} ms",
                net.stage_names().len(),
                net.stage_names().join(", "),
                net.compile_time().as_secs_f64() * 1e3
            );
            let compile_time = net.compile_time();
            (Box::new(net) as Box<dyn Model>, Some(compile_time))
        }
    })
}

/// Every way a command can fail; each prints as a complete message.
pub enum CliError {
    Spec(SpecError),
    Other(String),
}

impl CliError {
    pub fn msg(m: impl Into<String>) -> Self {
        Self::Other(m.into())
    }
}

macro_rules! from_display {
    ($($t:ty),*) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                Self::Other(e.to_string())
            }
        }
    )*};
}
from_display!(DataError, WeightsError, TrainError, ModelError);

pub fn load_graph(path: &Path) -> Result<Graph, CliError> {
    convc_compiler::check(path).map_err(CliError::Spec)
}

/// Print an error (if any) and turn it into the exit code.
pub fn report(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Spec(e)) => {
            e.emit_stderr();
            ExitCode::FAILURE
        }
        Err(CliError::Other(m)) => {
            eprintln!("error: {m}");
            ExitCode::FAILURE
        }
    }
}

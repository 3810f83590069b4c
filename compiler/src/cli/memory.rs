//! Whether a run fits in memory, asked before it allocates: a network of a
//! billion parameters is refused with the numbers, not killed by the
//! allocator halfway through building the model.

use convc_compiler::Graph;
use convc_compiler::spec::OptimizerKind;
use convc_compiler::summary::{Summary, bytes};

use super::CliError;

/// What a run holds, as `convc summary` computes it: for training the
/// parameters, gradients, optimizer state and the activations kept for the
/// backward pass; for inference the parameters and one batch's activations.
pub fn needed(graph: &Graph, batch: usize, training: Option<OptimizerKind>) -> u64 {
    let memory = Summary::new(graph, batch, training.unwrap_or(OptimizerKind::Sgd)).training;
    match training {
        Some(_) => memory.total_bytes,
        None => memory.parameter_bytes + memory.activation_bytes,
    }
}

/// Refuse a run that needs more memory than the machine has available
/// (`MemAvailable`, and a cgroup's limit where one applies). Where neither
/// can be read, nothing is refused.
pub fn check(graph: &Graph, batch: usize, training: Option<OptimizerKind>) -> Result<(), CliError> {
    let need = needed(graph, batch, training);
    let Some(available) = available() else { return Ok(()) };
    if need <= available {
        return Ok(());
    }
    let what = match training {
        Some(kind) => format!("training at batch {batch} with {}", kind.name()),
        None => format!("inference at batch {batch}"),
    };
    Err(CliError::msg(format!(
        "{}: {what} needs about {} ({} parameters), but this machine has {} available. \
         `convc summary` shows where the memory goes; a smaller --batch or a smaller network would fit",
        graph.name,
        bytes(need),
        convc_compiler::summary::group(graph.param_count()),
        bytes(available),
    )))
}

/// Bytes this process can still allocate without swapping: the kernel's
/// estimate of available memory, capped by a cgroup v2 limit.
fn available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    let mut available = kib * 1024;
    let cgroup = |file: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{file}")).ok().and_then(|s| s.trim().parse::<u64>().ok());
    if let (Some(max), Some(current)) = (cgroup("memory.max"), cgroup("memory.current")) {
        available = available.min(max.saturating_sub(current));
    }
    Some(available)
}

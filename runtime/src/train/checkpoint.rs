//! Checkpoints: the weights plus what resuming needs — optimizer state,
//! epochs done, seed, history — in one safetensors file, written atomically.
//!
//! Optimizer state tensors are named `optimizer.<state>.<parameter>`; the
//! rest goes into the file's string metadata.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::model::Model;
use crate::train::history::EpochStats;
use crate::train::optim::{Optimizer, OptimizerConfig};
use crate::train::weights::{self, STATE_PREFIX, Tensor, WeightsError};

#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub network: String,
    pub epochs_done: usize,
    pub seed: u64,
    pub optimizer: Optimizer,
    pub params: Vec<Tensor>,
    pub history: Vec<EpochStats>,
}

/// `w.safetensors` → `w.ckpt.safetensors`: where `--save` puts the
/// checkpoint beside the weights.
pub fn path_for(weights: &Path) -> PathBuf {
    let stem = weights.file_stem().map_or_else(|| "weights".into(), |s| s.to_string_lossy().into_owned());
    weights.with_file_name(format!("{stem}.ckpt.safetensors"))
}

impl Checkpoint {
    pub fn capture(model: &dyn Model, optimizer: &Optimizer, epochs_done: usize, seed: u64, history: &[EpochStats]) -> Self {
        Self {
            network: model.name().to_string(),
            epochs_done,
            seed,
            optimizer: optimizer.clone(),
            params: weights::from_model(model),
            history: history.to_vec(),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), WeightsError> {
        let mut tensors = self.params.clone();
        for (param, states) in self.params.iter().zip(&self.optimizer.state) {
            for (state_name, data) in self.optimizer.config.state_names().iter().zip(states) {
                tensors.push(Tensor {
                    name: format!("{STATE_PREFIX}{state_name}.{}", param.name),
                    shape: param.shape.clone(),
                    data: data.clone(),
                });
            }
        }
        let metadata = HashMap::from([
            ("format".to_string(), "pt".to_string()),
            ("convc_checkpoint".to_string(), "1".to_string()),
            ("convc_network".to_string(), self.network.clone()),
            ("epochs_done".to_string(), self.epochs_done.to_string()),
            ("seed".to_string(), self.seed.to_string()),
            ("optimizer".to_string(), serde_json::to_string(&self.optimizer.config).expect("plain data")),
            ("optimizer_steps".to_string(), self.optimizer.steps.to_string()),
            ("history".to_string(), serde_json::to_string(&self.history).expect("plain data")),
        ]);
        weights::save(path, &tensors, metadata)
    }

    /// Read a checkpoint and check that it is whole: an optimizer within
    /// its bounds, a state tensor of its parameter's shape for every
    /// parameter (finite; Adam's second moment not negative), a step count
    /// a run can reach, and a history of exactly `epochs_done` epochs. A
    /// checkpoint that fails names each problem; none is trained from.
    pub fn load(path: &Path) -> Result<Self, WeightsError> {
        let (tensors, metadata) = weights::read(path)?;
        Self::from_parts(path, tensors, &metadata)
    }

    /// A checkpoint from a file's tensors and metadata, checked as
    /// [`Checkpoint::load`] checks it; `path` names the file in errors.
    pub fn from_parts(path: &Path, tensors: Vec<Tensor>, metadata: &HashMap<String, String>) -> Result<Self, WeightsError> {
        let bad = |what: &str| WeightsError {
            path: path.to_path_buf(),
            problems: vec![format!("not a convc checkpoint: {what}")],
            help: Some("--resume takes the .ckpt.safetensors file that `convc train --save` writes beside the weights".into()),
        };
        if metadata.get("convc_checkpoint").map(String::as_str) != Some("1") {
            return Err(bad("no `convc_checkpoint` metadata"));
        }
        let field = |key: &str| metadata.get(key).ok_or_else(|| bad(&format!("no `{key}` metadata")));
        let config: OptimizerConfig =
            serde_json::from_str(field("optimizer")?).map_err(|e| bad(&format!("bad optimizer metadata: {e}")))?;
        let steps: u64 = field("optimizer_steps")?.parse().map_err(|_| bad("bad optimizer_steps"))?;
        let epochs_done = field("epochs_done")?.parse().map_err(|_| bad("bad epochs_done"))?;
        let seed = field("seed")?.parse().map_err(|_| bad("bad seed"))?;
        let history: Vec<EpochStats> = serde_json::from_str(field("history")?).map_err(|e| bad(&format!("bad history: {e}")))?;
        let (state, params): (Vec<Tensor>, Vec<Tensor>) = tensors.into_iter().partition(|t| t.name.starts_with(STATE_PREFIX));

        let mut problems = Vec::new();
        if let Err(e) = config.check() {
            problems.push(format!("optimizer metadata: {e}"));
        }
        // Adam's bias correction raises β to the step count as an i32.
        if steps > i32::MAX as u64 {
            problems.push(format!("optimizer_steps {steps} is more than a run takes (at most {})", i32::MAX));
        }
        if history.len() != epochs_done {
            problems.push(format!("epochs_done is {epochs_done} but the history has {} epochs", history.len()));
        } else if let Some((i, s)) = history.iter().enumerate().find(|(i, s)| s.epoch != i + 1) {
            problems.push(format!("history entry {} is for epoch {}, not {}", i + 1, s.epoch, i + 1));
        }
        let mut by_name: HashMap<&str, &Tensor> = state.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut per_param = Vec::new();
        for p in &params {
            let mut buffers = Vec::new();
            for &state_name in config.state_names() {
                let key = format!("{STATE_PREFIX}{state_name}.{}", p.name);
                let Some(t) = by_name.remove(key.as_str()) else {
                    if steps > 0 {
                        problems.push(format!("missing optimizer state `{key}`"));
                    }
                    continue;
                };
                if t.shape != p.shape {
                    problems.push(format!("optimizer state `{key}` has shape {:?}, but its parameter has {:?}", t.shape, p.shape));
                } else if let Some(i) = t.data.iter().position(|x| !x.is_finite()) {
                    problems.push(format!("optimizer state `{key}` holds {} at index {i}", t.data[i]));
                } else if state_name == "v"
                    && let Some(i) = t.data.iter().position(|&x| x < 0.0)
                {
                    problems.push(format!("optimizer state `{key}` (a mean of squares) holds {} at index {i}", t.data[i]));
                }
                buffers.push(t.data.clone());
            }
            per_param.push(buffers);
        }
        let mut strays: Vec<&str> = by_name.into_keys().collect();
        strays.sort_unstable();
        problems.extend(
            strays.iter().map(|name| format!("optimizer state `{name}` belongs to no parameter of this {} optimizer", config.kind())),
        );
        if steps == 0 && !state.is_empty() {
            problems.push("optimizer state is present but optimizer_steps is 0".into());
        }
        if !problems.is_empty() {
            return Err(WeightsError {
                path: path.to_path_buf(),
                problems: problems.into_iter().map(|p| format!("damaged checkpoint: {p}")).collect(),
                help: Some("resume from another checkpoint, or start a new run from these weights with --init".into()),
            });
        }
        let mut optimizer = Optimizer::new(config);
        optimizer.steps = steps;
        if steps > 0 {
            optimizer.state = per_param;
        }
        Ok(Self { network: field("convc_network")?.clone(), epochs_done, seed, optimizer, params, history })
    }

    /// Put the checkpoint's weights into `model`. The optimizer state is
    /// stored in the file's order (sorted by name) and is re-ordered here to
    /// the model's parameter order.
    pub fn restore(&self, model: &mut dyn Model, path: &Path) -> Result<Optimizer, WeightsError> {
        weights::assign(model, path, &self.params, &[])?;
        let mut optimizer = self.optimizer.clone();
        if !optimizer.state.is_empty() {
            let order: Vec<usize> = model
                .params()
                .iter()
                .map(|p| self.params.iter().position(|t| t.name == p.name).expect("assign checked every name"))
                .collect();
            optimizer.state = order.iter().map(|&i| self.optimizer.state[i].clone()).collect();
        }
        Ok(optimizer)
    }
}

//! Timing a model the way `convc bench` reports it: warm-up, then repeated
//! inference forwards or training steps for a fixed minimum time.

use std::time::{Duration, Instant};

use crate::model::{Mode, Model, ModelError};
use crate::rng::Rng;
use crate::train::optim::{Optimizer, OptimizerConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchMode {
    /// Forward in inference mode.
    Infer,
    /// Forward, loss, backward and an SGD step.
    Train,
}

#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub batches: usize,
    /// Mean time per batch.
    pub per_batch: Duration,
}

/// Run `mode` on random inputs of `batch` images until `min_time` has
/// passed (after one untimed warm-up batch); a training step's optimizer
/// update on the model's `threads`.
pub fn time_model(model: &mut dyn Model, threads: usize, batch: usize, mode: BenchMode, min_time: Duration) -> Result<Timing, ModelError> {
    let mut rng = Rng::new(1);
    let input: Vec<f32> = (0..batch * model.input_shape().len()).map(|_| rng.next_f32()).collect();
    let classes = model.classes();
    let labels: Vec<u8> = (0..batch).map(|_| (rng.below(classes.min(256))) as u8).collect();
    let mut optimizer = Optimizer::new(OptimizerConfig::Sgd { lr: 1e-4, momentum: 0.9, weight_decay: 0.0 });
    optimizer.set_threads(threads);
    let mut step = |model: &mut dyn Model, i: usize| -> Result<(), ModelError> {
        match mode {
            BenchMode::Infer => {
                std::hint::black_box(model.forward(&input, batch, Mode::Infer)?);
            }
            BenchMode::Train => {
                crate::train::step(model, &mut optimizer, &input, &labels, i as u64)?;
            }
        }
        Ok(())
    };
    // As in training: the input gradient is not wanted.
    model.want_input_grad(mode == BenchMode::Infer);
    step(model, 0)?;
    let start = Instant::now();
    let mut batches = 0;
    while batches == 0 || start.elapsed() < min_time {
        step(model, batches + 1)?;
        batches += 1;
    }
    let per_batch = start.elapsed() / batches as u32;
    model.want_input_grad(true);
    Ok(Timing { batches, per_batch })
}

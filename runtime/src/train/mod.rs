//! The training loop, written once against [`Model`]: shuffled mini-batches,
//! softmax cross-entropy, an optimizer step, per-epoch evaluation,
//! checkpoints, and a stop with a message when training diverges.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod eval;
pub mod files;
pub mod history;
pub mod loss;
pub mod optim;
pub mod weights;

use checkpoint::Checkpoint;
use data::Dataset;
use eval::evaluate;
use history::EpochStats;
use loss::softmax_cross_entropy;
use optim::Optimizer;
use weights::WeightsError;

use crate::model::{Mode, Model, ModelError};
use crate::rng::Rng;

#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Total epochs, counting those already done when resuming.
    pub epochs: usize,
    pub batch: usize,
    pub shuffle: bool,
    pub seed: u64,
    /// Write the weights here (and the checkpoint beside them) after every epoch.
    pub save: Option<PathBuf>,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

#[derive(Debug)]
pub enum TrainError {
    /// The loss became NaN or infinite, or exploded past [`exploded`].
    Diverged {
        epoch: usize,
        step: usize,
        loss: f32,
        lr: f32,
    },
    /// A parameter became NaN or infinite.
    NonFiniteWeights {
        epoch: usize,
        param: String,
        lr: f32,
    },
    Weights(WeightsError),
    Model(ModelError),
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Diverged { epoch, step, loss, lr } => {
                let what = if loss.is_finite() {
                    format!("the loss exploded to {loss:.3e} (over 100 × a uniform guess's)")
                } else {
                    format!("the loss is {loss}")
                };
                write!(
                    f,
                    "training diverged: {what} at epoch {epoch}, step {step}\n  help: lower the learning rate (now {lr}), e.g. --lr {}",
                    lr / 10.0
                )
            }
            Self::NonFiniteWeights { epoch, param, lr } => write!(
                f,
                "training diverged: `{param}` holds NaN or infinite values after epoch {epoch}\n  help: lower the learning rate (now {lr}), e.g. --lr {}",
                lr / 10.0
            ),
            Self::Weights(e) => write!(f, "{e}"),
            Self::Model(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TrainError {}

impl From<ModelError> for TrainError {
    fn from(e: ModelError) -> Self {
        Self::Model(e)
    }
}

impl From<WeightsError> for TrainError {
    fn from(e: WeightsError) -> Self {
        Self::Weights(e)
    }
}

/// What one training step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Mean softmax cross-entropy over the batch.
    pub loss: f32,
    /// Images whose largest logit was their label's.
    pub correct: usize,
}

/// One training step: forward `input` (`labels.len()` images, dropout drawn
/// from `seed`), softmax cross-entropy, backward and `optimizer`'s update.
/// When the loss is not finite nothing is updated; the caller decides what
/// that means (the trainer stops with [`TrainError::Diverged`]).
pub fn step(model: &mut dyn Model, optimizer: &mut Optimizer, input: &[f32], labels: &[u8], seed: u64) -> Result<Step, ModelError> {
    let classes = model.classes();
    let logits = model.forward(input, labels.len(), Mode::Train { seed })?;
    let out = softmax_cross_entropy(logits, labels, classes);
    if out.loss.is_finite() {
        model.backward(&out.grad)?;
        optimizer.step(model.params_mut());
    }
    Ok(Step { loss: out.loss, correct: out.correct })
}

/// The loss past which training has diverged though it is finite: 100 ×
/// ln(classes), a hundred times what a network that guesses uniformly scores
/// (230 for ten classes: the right class's logit 230 below the others').
pub fn exploded(classes: usize) -> f32 {
    100.0 * (classes.max(2) as f32).ln()
}

/// Train from `history.len()` epochs done up to `opts.epochs`. Calls
/// `on_epoch` after each epoch (after the checkpoint is written) and returns
/// the full history.
pub fn train(
    model: &mut dyn Model,
    optimizer: &mut Optimizer,
    train_set: &Dataset,
    test_set: &Dataset,
    opts: &TrainOptions,
    history: Vec<EpochStats>,
    on_epoch: &mut dyn FnMut(&EpochStats),
) -> Result<Vec<EpochStats>, TrainError> {
    // The images are not learned: their gradient need not be computed.
    model.want_input_grad(false);
    let result = train_epochs(model, optimizer, train_set, test_set, opts, history, on_epoch);
    model.want_input_grad(true);
    result
}

fn train_epochs(
    model: &mut dyn Model,
    optimizer: &mut Optimizer,
    train_set: &Dataset,
    test_set: &Dataset,
    opts: &TrainOptions,
    mut history: Vec<EpochStats>,
    on_epoch: &mut dyn FnMut(&EpochStats),
) -> Result<Vec<EpochStats>, TrainError> {
    let steps = train_set.len().div_ceil(opts.batch);
    let limit = exploded(model.classes());
    let mut order: Vec<usize> = (0..train_set.len()).collect();
    let mut input = Vec::new();
    for epoch in history.len() + 1..=opts.epochs {
        order.iter_mut().enumerate().for_each(|(i, o)| *o = i);
        if opts.shuffle {
            Rng::derive(opts.seed, epoch as u64, u64::MAX).shuffle(&mut order);
        }
        let bar = progress_bar(opts.progress, steps, epoch, opts.epochs);
        let start = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        // The last partial batch is used too.
        for (step, indices) in order.chunks(opts.batch).enumerate() {
            train_set.gather(indices, &mut input);
            let labels: Vec<u8> = indices.iter().map(|&i| train_set.labels[i]).collect();
            let seed = Rng::derive(opts.seed, epoch as u64, step as u64).next_u64();
            let out = self::step(model, optimizer, &input, &labels, seed)?;
            if !out.loss.is_finite() || out.loss > limit {
                bar.abandon();
                return Err(TrainError::Diverged { epoch, step: step + 1, loss: out.loss, lr: optimizer.config.lr() });
            }
            loss_sum += out.loss as f64 * indices.len() as f64;
            correct += out.correct;
            seen += indices.len();
            if step % 16 == 0 || step + 1 == steps {
                let rate = seen as f64 / start.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!("loss {:.4}  acc {:.4}  {rate:.0} img/s", loss_sum / seen as f64, correct as f32 / seen as f32));
            }
            bar.inc(1);
        }
        let seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        if let Some(p) = model.params().iter().find(|p| p.value.iter().any(|v| !v.is_finite())) {
            return Err(TrainError::NonFiniteWeights { epoch, param: p.name.to_string(), lr: optimizer.config.lr() });
        }
        let eval = evaluate(model, test_set, opts.batch.max(256))?;
        let stats = EpochStats {
            epoch,
            train_loss: (loss_sum / seen as f64) as f32,
            train_accuracy: correct as f32 / seen as f32,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
            seconds,
            images_per_s: seen as f64 / seconds,
        };
        history.push(stats.clone());
        if let Some(path) = &opts.save {
            weights::save_model(model, path)?;
            Checkpoint::capture(model, optimizer, epoch, opts.seed, &history).save(&checkpoint::path_for(path))?;
        }
        on_epoch(&stats);
    }
    Ok(history)
}

fn progress_bar(enabled: bool, steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len}  {msg}  ETA {eta}").expect("valid template").progress_chars("=> "),
    );
    bar.set_prefix(format!("epoch {epoch}/{epochs}"));
    bar
}

//! Optimizers with PyTorch's update rules, so a step here matches a step of
//! `torch.optim.SGD` / `torch.optim.Adam` (L2 weight decay added to the
//! gradient, as both do).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::ParamMut;

/// The values a hyperparameter may take: a finite number between `lo` and
/// `hi`, each end included unless it is open. One rule for a spec's
/// `[training]` table, the command line and a checkpoint's metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub lo: f64,
    pub hi: f64,
    pub lo_open: bool,
    pub hi_open: bool,
}

impl Bounds {
    /// Both ends included.
    pub const fn closed(lo: f64, hi: f64) -> Self {
        Self { lo, hi, lo_open: false, hi_open: false }
    }

    pub fn contains(&self, x: f64) -> bool {
        let above = if self.lo_open { x > self.lo } else { x >= self.lo };
        let below = if self.hi_open { x < self.hi } else { x <= self.hi };
        x.is_finite() && above && below
    }
}

/// "a number from 0 to 1", "a number from 0 to 1, 1 excluded", …
impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { lo, hi, .. } = self;
        match (self.lo_open, self.hi_open) {
            (false, false) => write!(f, "a number from {lo} to {hi}"),
            (false, true) => write!(f, "a number from {lo} to {hi}, {hi} excluded"),
            (true, false) => write!(f, "a number from {lo} to {hi}, {lo} excluded"),
            (true, true) => write!(f, "a number between {lo} and {hi}, both excluded"),
        }
    }
}

/// Learning rate.
pub const LR: Bounds = Bounds::closed(0.0, 10.0);
/// SGD momentum.
pub const MOMENTUM: Bounds = Bounds::closed(0.0, 1.0);
/// L2 weight decay.
pub const WEIGHT_DECAY: Bounds = Bounds::closed(0.0, 1.0);
/// Adam's β₁ and β₂: at 1 the bias correction divides by zero.
pub const BETA: Bounds = Bounds { hi_open: true, ..Bounds::closed(0.0, 1.0) };
/// Adam's ε: at 0 a parameter whose gradient has always been 0 divides 0 by 0.
pub const EPSILON: Bounds = Bounds { lo_open: true, ..Bounds::closed(0.0, 1.0) };

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// `v ← μ·v + (g + λ·w)`, `w ← w − lr·v`
    Sgd { lr: f32, momentum: f32, weight_decay: f32 },
    /// Adam with bias correction.
    Adam { lr: f32, beta1: f32, beta2: f32, epsilon: f32, weight_decay: f32 },
}

impl OptimizerConfig {
    pub fn lr(&self) -> f32 {
        match *self {
            Self::Sgd { lr, .. } | Self::Adam { lr, .. } => lr,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sgd { .. } => "sgd",
            Self::Adam { .. } => "adam",
        }
    }

    /// Every hyperparameter within its [`Bounds`]; else the first that is
    /// not, as `lr NaN is not a number from 0 to 10`.
    pub fn check(&self) -> Result<(), String> {
        let values: &[(&str, f32, Bounds)] = match *self {
            Self::Sgd { lr, momentum, weight_decay } => {
                &[("lr", lr, LR), ("momentum", momentum, MOMENTUM), ("weight_decay", weight_decay, WEIGHT_DECAY)]
            }
            Self::Adam { lr, beta1, beta2, epsilon, weight_decay } => &[
                ("lr", lr, LR),
                ("beta1", beta1, BETA),
                ("beta2", beta2, BETA),
                ("epsilon", epsilon, EPSILON),
                ("weight_decay", weight_decay, WEIGHT_DECAY),
            ],
        };
        match values.iter().find(|(_, x, bounds)| !bounds.contains(f64::from(*x))) {
            Some((name, x, bounds)) => Err(format!("{name} {x} is not {bounds}")),
            None => Ok(()),
        }
    }

    /// Names of the per-parameter state tensors (for checkpoints).
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            Self::Sgd { .. } => &["momentum"],
            Self::Adam { .. } => &["m", "v"],
        }
    }
}

#[derive(Debug, Clone)]
pub struct Optimizer {
    pub config: OptimizerConfig,
    /// Steps taken so far.
    pub steps: u64,
    /// Per parameter, per state name: a buffer the parameter's size. Empty
    /// until the first step.
    pub state: Vec<Vec<Vec<f32>>>,
    /// Threads a large parameter's update is split over (see [`Optimizer::set_threads`]).
    threads: usize,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig) -> Self {
        Self { config, steps: 0, state: Vec::new(), threads: 1 }
    }

    /// Split the update of large parameters (dense1 of fashion_tf: 3.2 M
    /// weights) over up to `threads` threads — the model's count, so that
    /// training on one thread stays on one. Each value's update is its
    /// own, so the result does not depend on the split.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    pub fn step(&mut self, params: Vec<ParamMut<'_>>) {
        if self.state.is_empty() {
            let copies = self.config.state_names().len();
            self.state = params.iter().map(|p| vec![vec![0.0; p.value.len()]; copies]).collect();
        }
        self.steps += 1;
        let update = Update::new(self.config, self.steps as i32);
        for (p, state) in params.into_iter().zip(&mut self.state) {
            let n = p.value.len();
            if self.threads <= 1 || n < crate::cpu::PARALLEL_MIN {
                update.run(p.value, p.grad, state);
                continue;
            }
            let per = n.div_ceil(self.threads);
            let mut states: Vec<_> = state.iter_mut().map(|s| s.chunks_mut(per)).collect();
            rayon::scope(|scope| {
                for (value, grad) in p.value.chunks_mut(per).zip(p.grad.chunks(per)) {
                    let mut part: Vec<&mut [f32]> = states.iter_mut().map(|s| s.next().expect("as many chunks as the value")).collect();
                    scope.spawn(move |_| update.run(value, grad, &mut part));
                }
            });
        }
    }
}

/// One step's update rule, with its step-dependent constants.
#[derive(Debug, Clone, Copy)]
enum Update {
    Sgd { lr: f32, momentum: f32, weight_decay: f32 },
    Adam { beta1: f32, beta2: f32, epsilon: f32, weight_decay: f32, step: f32, c2_sqrt: f32 },
}

impl Update {
    fn new(config: OptimizerConfig, t: i32) -> Self {
        match config {
            OptimizerConfig::Sgd { lr, momentum, weight_decay } => Self::Sgd { lr, momentum, weight_decay },
            OptimizerConfig::Adam { lr, beta1, beta2, epsilon, weight_decay } => {
                let c1 = 1.0 - beta1.powi(t);
                let c2_sqrt = (1.0 - beta2.powi(t)).sqrt();
                Self::Adam { beta1, beta2, epsilon, weight_decay, step: lr / c1, c2_sqrt }
            }
        }
    }

    /// Update `value` from `grad` and the state buffers (as many as the
    /// rule keeps, each as long as `value`).
    fn run<S: AsMut<[f32]>>(self, value: &mut [f32], grad: &[f32], state: &mut [S]) {
        match self {
            Self::Sgd { lr, momentum, weight_decay } => {
                let v = state[0].as_mut();
                for ((w, &g), v) in value.iter_mut().zip(grad).zip(v.iter_mut()) {
                    let g = g + weight_decay * *w;
                    *v = momentum * *v + g;
                    *w -= lr * *v;
                }
            }
            Self::Adam { beta1, beta2, epsilon, weight_decay, step, c2_sqrt } => {
                let [m, v] = state else { unreachable!("adam keeps two moments") };
                for (((w, &g), m), v) in value.iter_mut().zip(grad).zip(m.as_mut().iter_mut()).zip(v.as_mut().iter_mut()) {
                    let g = g + weight_decay * *w;
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    *w -= step * *m / (v.sqrt() / c2_sqrt + epsilon);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// A parameter large enough to be split, updated on one thread and on
    /// three: the same bits, step after step, for both rules; and each
    /// value as the rule's formula gives it.
    #[test]
    fn a_split_update_is_the_same_update() {
        let n = crate::cpu::PARALLEL_MIN + 1001;
        let mut rng = Rng::new(9);
        let mut draw = || (0..n).map(|_| rng.symmetric(1.0)).collect::<Vec<f32>>();
        let (w0, g) = (draw(), draw());
        let configs = [
            OptimizerConfig::Sgd { lr: 0.1, momentum: 0.9, weight_decay: 0.01 },
            OptimizerConfig::Adam { lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weight_decay: 0.01 },
        ];
        for config in configs {
            let mut weights = [w0.clone(), w0.clone()];
            for (threads, w) in [1, 3].into_iter().zip(&mut weights) {
                let mut opt = Optimizer::new(config);
                opt.set_threads(threads);
                for _ in 0..3 {
                    opt.step(vec![ParamMut { name: "dense.weight", shape: &[n], value: w, grad: &g }]);
                }
            }
            let [one, three] = &weights;
            assert!(one.iter().zip(three).all(|(a, b)| a.to_bits() == b.to_bits()), "{config:?}");
            // The first value after three steps, by the formula.
            let (mut w, mut m, mut v) = (w0[0], 0.0f32, 0.0f32);
            for t in 1..=3 {
                match config {
                    OptimizerConfig::Sgd { lr, momentum, weight_decay } => {
                        m = momentum * m + (g[0] + weight_decay * w);
                        w -= lr * m;
                    }
                    OptimizerConfig::Adam { lr, beta1, beta2, epsilon, weight_decay } => {
                        let gw = g[0] + weight_decay * w;
                        m = beta1 * m + (1.0 - beta1) * gw;
                        v = beta2 * v + (1.0 - beta2) * gw * gw;
                        let (mh, vh) = (m / (1.0 - beta1.powi(t)), v / (1.0 - beta2.powi(t)));
                        w -= lr * mh / (vh.sqrt() + epsilon);
                    }
                }
            }
            assert!((one[0] - w).abs() <= 1e-6 * (1.0 + w.abs()), "{config:?}: {} vs {w}", one[0]);
        }
    }
}

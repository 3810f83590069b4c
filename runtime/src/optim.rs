//! Optimizers with PyTorch's update rules, so a step here matches a step of
//! `torch.optim.SGD` / `torch.optim.Adam` (L2 weight decay added to the
//! gradient, as both do).

use serde::{Deserialize, Serialize};

use crate::model::ParamMut;

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
}

impl Optimizer {
    pub fn new(config: OptimizerConfig) -> Self {
        Self { config, steps: 0, state: Vec::new() }
    }

    pub fn step(&mut self, params: Vec<ParamMut<'_>>) {
        if self.state.is_empty() {
            let copies = self.config.state_names().len();
            self.state = params.iter().map(|p| vec![vec![0.0; p.value.len()]; copies]).collect();
        }
        self.steps += 1;
        let t = self.steps as i32;
        for (p, state) in params.into_iter().zip(&mut self.state) {
            match self.config {
                OptimizerConfig::Sgd { lr, momentum, weight_decay } => {
                    let v = &mut state[0];
                    for ((w, &g), v) in p.value.iter_mut().zip(p.grad).zip(v.iter_mut()) {
                        let g = g + weight_decay * *w;
                        *v = momentum * *v + g;
                        *w -= lr * *v;
                    }
                }
                OptimizerConfig::Adam { lr, beta1, beta2, epsilon, weight_decay } => {
                    let c1 = 1.0 - beta1.powi(t);
                    let c2_sqrt = (1.0 - beta2.powi(t)).sqrt();
                    let step = lr / c1;
                    let [m, v] = &mut state[..] else { unreachable!("adam keeps two moments") };
                    for (((w, &g), m), v) in p.value.iter_mut().zip(p.grad).zip(m.iter_mut()).zip(v.iter_mut()) {
                        let g = g + weight_decay * *w;
                        *m = beta1 * *m + (1.0 - beta1) * g;
                        *v = beta2 * *v + (1.0 - beta2) * g * g;
                        *w -= step * *m / (v.sqrt() / c2_sqrt + epsilon);
                    }
                }
            }
        }
    }
}

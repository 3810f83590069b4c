//! The optional `[training]` table: defaults for `convc train`. Every field
//! stays optional here; the CLI layers its flags over these, then built-in
//! defaults.

use convc_runtime::train::optim::{BETA, Bounds, EPSILON, LR, MOMENTUM, WEIGHT_DECAY};
use toml::de::DeValue;

use super::fields::Table;
use crate::diag::Diagnostic;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Loss {
    /// Softmax over the logits, then cross-entropy (computed as one stable op).
    #[default]
    SoftmaxCrossEntropy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    Sgd,
    Adam,
}

impl OptimizerKind {
    pub const NAMES: [&'static str; 2] = ["sgd", "adam"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sgd" => Some(Self::Sgd),
            "adam" => Some(Self::Adam),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerSpec {
    pub kind: OptimizerKind,
    pub lr: Option<f64>,
    pub momentum: Option<f64>,
    pub weight_decay: Option<f64>,
    pub beta1: Option<f64>,
    pub beta2: Option<f64>,
    pub epsilon: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingSpec {
    pub loss: Loss,
    pub optimizer: Option<OptimizerSpec>,
    pub batch: Option<usize>,
    pub epochs: Option<usize>,
    pub seed: Option<u64>,
}

const TRAINING_KEYS: [&str; 5] = ["loss", "optimizer", "batch", "epochs", "seed"];
const OPTIMIZER_KEYS: [&str; 7] = ["kind", "lr", "momentum", "weight_decay", "beta1", "beta2", "epsilon"];

pub(super) fn parse_training(t: &Table<'_, '_>, errs: &mut Vec<Diagnostic>) -> TrainingSpec {
    t.reject_unknown_keys(&TRAINING_KEYS, errs);
    let _ = t.choice("loss", &["softmax_cross_entropy"], errs);
    let optimizer = match t.get("optimizer").map(|v| v.get_ref()) {
        None => None,
        Some(DeValue::String(_)) => t.choice("optimizer", &OptimizerKind::NAMES, errs).map(|k| OptimizerSpec {
            kind: OptimizerKind::from_name(k.value).expect("choice is one of NAMES"),
            lr: None,
            momentum: None,
            weight_decay: None,
            beta1: None,
            beta2: None,
            epsilon: None,
        }),
        Some(_) => t.table("optimizer", errs).and_then(|(span, table)| {
            let o = Table::new("the optimizer of [training]", span, table);
            parse_optimizer(&o, errs)
        }),
    };
    TrainingSpec {
        loss: Loss::SoftmaxCrossEntropy,
        optimizer,
        batch: t.optional_size("batch", 1, errs),
        epochs: t.optional_size("epochs", 1, errs),
        seed: t.optional_size("seed", 0, errs).map(|s| s as u64),
    }
}

fn parse_optimizer(o: &Table<'_, '_>, errs: &mut Vec<Diagnostic>) -> Option<OptimizerSpec> {
    o.reject_unknown_keys(&OPTIMIZER_KEYS, errs);
    let kind = match o.get("kind") {
        Some(_) => o.choice("kind", &OptimizerKind::NAMES, errs),
        None => {
            errs.push(
                Diagnostic::error("the optimizer of [training] has no `kind`")
                    .primary(o.span.clone(), "`kind` is required here")
                    .help("write `optimizer = { kind = \"adam\", lr = 1e-3 }` or `kind = \"sgd\"`"),
            );
            None
        }
    };
    let num = |key: &str, range: Bounds, errs: &mut Vec<Diagnostic>| o.number(key, None, range, errs).map(|x| x.value);
    let lr = num("lr", LR, errs);
    let momentum = num("momentum", MOMENTUM, errs);
    let weight_decay = num("weight_decay", WEIGHT_DECAY, errs);
    let beta1 = num("beta1", BETA, errs);
    let beta2 = num("beta2", BETA, errs);
    let epsilon = num("epsilon", EPSILON, errs);
    Some(OptimizerSpec {
        kind: OptimizerKind::from_name(kind?.value).expect("choice is one of NAMES"),
        lr,
        momentum,
        weight_decay,
        beta1,
        beta2,
        epsilon,
    })
}

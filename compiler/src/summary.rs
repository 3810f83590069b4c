//! A Keras-style model summary: per layer, its output shape, parameters
//! (with the formula), multiply-accumulates and activation memory; then the
//! totals and the memory one training step needs.

use convc_runtime::Activation;
use serde::Serialize;

use crate::graph::{Graph, Node, Op};
use crate::plan::{Plan, StageKind};
use crate::spec::OptimizerKind;

const F32_BYTES: u64 = 4;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub input: Vec<usize>,
    pub layers: Vec<LayerRow>,
    pub total_params: u64,
    pub total_macs: u64,
    /// Sum over layers of one image's outputs, in bytes.
    pub activation_bytes: u64,
    pub training: TrainingMemory,
    /// The compiled stages (see `crate::plan`).
    pub stages: Vec<StageRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageRow {
    /// `conv1+pool1`
    pub name: String,
    pub fused: bool,
    /// What a training forward keeps for backward.
    pub keeps: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    pub name: String,
    #[serde(rename = "type")]
    pub layer_type: String,
    /// Window, stride, padding, activation ... as one short string.
    pub config: String,
    pub output: Vec<usize>,
    pub params: u64,
    /// How `params` comes about, e.g. `6 × (5·5·1 + 1) = 156`.
    pub params_formula: String,
    pub macs: u64,
    pub activation_bytes: u64,
}

/// What one training step holds in memory (f32 everywhere).
#[derive(Debug, Clone, Serialize)]
pub struct TrainingMemory {
    pub batch: usize,
    pub optimizer: &'static str,
    pub parameter_bytes: u64,
    pub gradient_bytes: u64,
    /// Adam: two moments per parameter; SGD with momentum: one velocity.
    pub optimizer_state_bytes: u64,
    /// The input and every layer's output for the whole batch, as kept for
    /// the backward pass.
    pub activation_bytes: u64,
    pub total_bytes: u64,
}

impl Summary {
    pub fn new(graph: &Graph, batch: usize, optimizer: OptimizerKind) -> Self {
        let layers: Vec<LayerRow> = graph.nodes.iter().map(row).collect();
        let total_params = graph.param_count();
        let activation_bytes: u64 = layers.iter().map(|l| l.activation_bytes).sum();
        let parameter_bytes = total_params * F32_BYTES;
        let (optimizer_name, state_copies) = match optimizer {
            OptimizerKind::Adam => ("adam", 2),
            OptimizerKind::Sgd => ("sgd", 1),
        };
        let kept = (activation_bytes + graph.input.len() as u64 * F32_BYTES) * batch as u64;
        let training = TrainingMemory {
            batch,
            optimizer: optimizer_name,
            parameter_bytes,
            gradient_bytes: parameter_bytes,
            optimizer_state_bytes: state_copies * parameter_bytes,
            activation_bytes: kept,
            total_bytes: (2 + state_copies) * parameter_bytes + kept,
        };
        let stages = Plan::new(graph, true)
            .stages
            .iter()
            .map(|s| StageRow { name: s.name.clone(), fused: s.is_fused(), keeps: keeps(&s.kind) })
            .collect();
        Summary {
            name: graph.name.clone(),
            input: graph.input.dims(),
            layers,
            total_params,
            total_macs: graph.macs(),
            activation_bytes,
            training,
            stages,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a summary is plain data")
    }

    /// The table printed by `convc summary`.
    pub fn render(&self) -> String {
        let header = ["Layer", "Type", "Output", "Params", "MACs/image", "Activations/image"];
        let rows: Vec<[String; 6]> = self
            .layers
            .iter()
            .map(|l| {
                let params = if l.params_formula.is_empty() { group(l.params) } else { l.params_formula.clone() };
                let shape: Vec<String> = l.output.iter().map(|d| d.to_string()).collect();
                [l.name.clone(), l.config.clone(), shape.join("×"), params, group(l.macs), bytes(l.activation_bytes)]
            })
            .collect();
        let mut widths = header.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let total_width = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
        let rule = |c: char| c.to_string().repeat(total_width);
        let line = |cells: &[String; 6]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let pad = w - cell.chars().count();
                // Text columns left-aligned, numbers right-aligned.
                if i < 3 {
                    s += cell;
                    s += &" ".repeat(pad);
                } else {
                    s += &" ".repeat(pad);
                    s += cell;
                }
                if i + 1 < cells.len() {
                    s += "  ";
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let input: Vec<String> = self.input.iter().map(|d| d.to_string()).collect();
        let mut out = format!("Network \"{}\"   input {}\n", self.name, input.join("×"));
        out += &(rule('━') + "\n");
        out += &line(&header.map(String::from));
        out += &(rule('─') + "\n");
        for row in &rows {
            out += &line(row);
        }
        out += &(rule('━') + "\n");
        let t = &self.training;
        let kv = [
            ("Total params", format!("{} ({})", group(self.total_params), bytes(self.total_params * F32_BYTES))),
            ("MACs per image", format!("{} ({} FLOPs)", group(self.total_macs), group(2 * self.total_macs))),
            ("Activations per image", bytes(self.activation_bytes)),
            ("Training step memory", format!("{} at batch {} with {}:", bytes(t.total_bytes), t.batch, t.optimizer)),
            ("  parameters", bytes(t.parameter_bytes)),
            ("  gradients", bytes(t.gradient_bytes)),
            ("  optimizer state", bytes(t.optimizer_state_bytes)),
            ("  activations kept for backward", bytes(t.activation_bytes)),
        ];
        let key_width = kv.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        for (k, v) in kv {
            out += &format!("{k:<key_width$}  {v}\n");
        }
        let fused: Vec<String> =
            self.stages.iter().filter(|s| s.fused).map(|s| format!("{} (training keeps {})", s.name, s.keeps)).collect();
        out += &format!(
            "{:<key_width$}  {} ({} fused: {})\n",
            "Compiled stages",
            self.stages.len(),
            fused.len(),
            if fused.is_empty() { "none".to_string() } else { fused.join(", ") }
        );
        out
    }
}

/// What a stage keeps from a training forward for its backward.
fn keeps(kind: &StageKind) -> String {
    match kind {
        StageKind::Conv { pool: Some(p), .. } if p.kind == convc_runtime::PoolKind::Max => "pooled outputs + argmax".into(),
        StageKind::Conv { pool: Some(_), .. } => "pre-pool activations".into(),
        StageKind::Pool(p) if p.kind == convc_runtime::PoolKind::Max => "outputs + argmax".into(),
        StageKind::Dropout { .. } => "outputs + mask".into(),
        _ => "outputs".into(),
    }
}

fn row(node: &Node) -> LayerRow {
    let params = node.param_count();
    LayerRow {
        name: node.name.clone(),
        layer_type: node.op.type_name().to_string(),
        config: config(&node.op),
        output: node.output.dims(),
        params,
        params_formula: formula(node, params),
        macs: node.macs,
        activation_bytes: node.output.len() as u64 * F32_BYTES,
    }
}

/// `conv2d 5×5 s1 p2 relu`, `max_pool 2×2 s2`, `dropout 0.4`.
fn config(op: &Op) -> String {
    let window = |k: [usize; 2], s: [usize; 2], p: [usize; 2]| {
        let pair = |v: [usize; 2]| if v[0] == v[1] { v[0].to_string() } else { format!("{},{}", v[0], v[1]) };
        let mut w = format!("{}×{} s{}", k[0], k[1], pair(s));
        if p != [0, 0] {
            w += &format!(" p{}", pair(p));
        }
        w
    };
    let act = |a: Activation| match a {
        Activation::None => String::new(),
        Activation::LeakyRelu { alpha } | Activation::Elu { alpha } => format!(" {}({alpha})", a.name()),
        _ => format!(" {}", a.name()),
    };
    match op {
        Op::Conv2d(c) | Op::Local2d(c) => format!("{} {}{}", op.type_name(), window(c.kernel, c.stride, c.pad), act(c.activation)),
        Op::Pool(p) => format!("{} {}", op.type_name(), window(p.size, p.stride, p.pad)),
        Op::Dense { activation, .. } => format!("dense{}", act(*activation)),
        Op::Dropout { rate } => format!("dropout {rate}"),
        Op::Activation(a) => act(*a).trim().to_string(),
        Op::Flatten | Op::Softmax => op.type_name().to_string(),
    }
}

/// `6 × (5·5·1 + 1) = 156`; empty for layers without parameters.
fn formula(node: &Node, params: u64) -> String {
    let bias = |b: bool, fan_in: String| if b { format!("({fan_in} + 1)") } else { fan_in };
    let expr = match &node.op {
        Op::Conv2d(c) => {
            let [kh, kw] = c.kernel;
            format!("{} × {}", c.filters, bias(c.bias, format!("{kh}·{kw}·{}", channels(node))))
        }
        Op::Local2d(c) => {
            let [kh, kw] = c.kernel;
            let dims = node.output.dims();
            format!("{}·{}·{} × {}", c.filters, dims[1], dims[2], bias(c.bias, format!("{kh}·{kw}·{}", channels(node))))
        }
        Op::Dense { units, bias: b, .. } => format!("{units} × {}", bias(*b, node.input_shape.len().to_string())),
        _ => return String::new(),
    };
    format!("{expr} = {}", group(params))
}

fn channels(node: &Node) -> usize {
    node.input_shape.dims()[0]
}

/// `61100840` → `61,100,840`
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `18.4 KiB`, `233.1 MiB`
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

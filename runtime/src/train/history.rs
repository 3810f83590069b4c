//! The training history — one [`EpochStats`] per epoch, kept in
//! checkpoints — and the learning curve drawn from it: CSV, and a small
//! SVG chart (a hand-written polyline; a plotting crate would be heavy for
//! this).

use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// One epoch's numbers, as printed and as written to the learning curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f32,
    pub train_accuracy: f32,
    pub test_loss: f32,
    pub test_accuracy: f32,
    /// Training time of the epoch (evaluation excluded).
    pub seconds: f64,
    pub images_per_s: f64,
}

pub fn to_csv(history: &[EpochStats]) -> String {
    let mut out = String::from("epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds,images_per_s\n");
    for s in history {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{:.3},{:.1}",
            s.epoch, s.train_loss, s.train_accuracy, s.test_loss, s.test_accuracy, s.seconds, s.images_per_s
        );
    }
    out
}

/// Accuracy (train and test, left axis 0–1) and train loss (right axis,
/// scaled to its maximum) against epochs.
pub fn to_svg(title: &str, history: &[EpochStats]) -> String {
    let (w, h, m) = (640.0, 400.0, 50.0);
    let (pw, ph) = (w - 2.0 * m, h - 2.0 * m);
    let n = history.len().max(2) as f64 - 1.0;
    let x = |i: usize| m + pw * i as f64 / n;
    let y = |v: f64| m + ph * (1.0 - v.clamp(0.0, 1.0));
    let max_loss = history.iter().map(|s| s.train_loss as f64).fold(1e-9, f64::max);
    let line = |values: Vec<f64>, color: &str| {
        let points: Vec<String> = values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect();
        let dots: String = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>", x(i), y(*v)))
            .collect();
        format!("<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>{dots}\n", points.join(" "))
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{m}\" y=\"30\" font-size=\"15\">{} — learning curve</text>\n",
        escape(title)
    );
    for k in 0..=10 {
        let v = k as f64 / 10.0;
        let yy = y(v);
        let _ = writeln!(
            svg,
            "<line x1=\"{m}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.1}</text><text x=\"{}\" y=\"{:.1}\">{:.3}</text>",
            w - m,
            m - 6.0,
            yy + 4.0,
            w - m + 6.0,
            yy + 4.0,
            v * max_loss,
        );
    }
    for (i, s) in history.iter().enumerate() {
        let _ = write!(svg, "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>", x(i), h - m + 18.0, s.epoch);
    }
    let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>", w / 2.0, h - 10.0);
    svg += &line(history.iter().map(|s| s.train_accuracy as f64).collect(), "#1f77b4");
    svg += &line(history.iter().map(|s| s.test_accuracy as f64).collect(), "#d62728");
    svg += &line(history.iter().map(|s| s.train_loss as f64 / max_loss).collect(), "#7f7f7f");
    let legend = [("train accuracy", "#1f77b4"), ("test accuracy", "#d62728"), ("train loss (right axis)", "#7f7f7f")];
    for (k, (label, color)) in legend.iter().enumerate() {
        // Bottom right: accuracy curves live near the top, the loss decays to the bottom left.
        let ly = h - m - 70.0 + 18.0 * k as f64;
        let _ = writeln!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"4\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{label}</text>",
            m + 300.0,
            ly - 4.0,
            m + 318.0,
            ly
        );
    }
    svg + "</svg>\n"
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

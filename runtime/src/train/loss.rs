//! Softmax cross-entropy on logits, computed as one numerically stable op.

/// Mean loss over the batch, its gradient with respect to the logits, and
/// the number of rows whose arg-max is the label.
pub struct LossOutput {
    pub loss: f32,
    pub grad: Vec<f32>,
    pub correct: usize,
}

/// `logits`: `batch × classes`; `labels`: one class index per row.
pub fn softmax_cross_entropy(logits: &[f32], labels: &[u8], classes: usize) -> LossOutput {
    let batch = labels.len();
    let mut grad = vec![0.0; logits.len()];
    let (mut total, mut correct) = (0.0f64, 0);
    for ((row, g), &label) in logits.chunks_exact(classes).zip(grad.chunks_exact_mut(classes)).zip(labels) {
        let label = label as usize;
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|&z| (z - max).exp()).sum();
        let log_sum = max + sum.ln();
        total += (log_sum - row[label]) as f64;
        for (g, &z) in g.iter_mut().zip(row) {
            *g = (z - log_sum).exp() / batch as f32;
        }
        g[label] -= 1.0 / batch as f32;
        if argmax(row) == label {
            correct += 1;
        }
    }
    LossOutput { loss: (total / batch as f64) as f32, grad, correct }
}

/// Index of the largest value (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) }).0
}

/// Softmax of each row.
pub fn softmax(logits: &[f32], classes: usize) -> Vec<f32> {
    let mut out = logits.to_vec();
    for row in out.chunks_exact_mut(classes) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
    out
}

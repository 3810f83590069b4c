//! Running a model over a dataset: accuracy, loss, predictions, logits
//! and the confusion matrix (`convc predict`, and the trainer after each
//! epoch).

use super::data::Dataset;
use super::loss::{argmax, softmax_cross_entropy};
use crate::model::{Mode, Model, ModelError};

/// Results of running a model over a dataset.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub accuracy: f32,
    pub loss: f32,
    /// Predicted class per example.
    pub predictions: Vec<usize>,
    /// `len × classes` logits.
    pub logits: Vec<f32>,
}

pub fn evaluate(model: &mut dyn Model, data: &Dataset, batch: usize) -> Result<Evaluation, ModelError> {
    let classes = model.classes();
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let mut predictions = Vec::with_capacity(data.len());
    let mut all_logits = Vec::with_capacity(data.len() * classes);
    let mut input = Vec::new();
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch) {
        data.gather(chunk, &mut input);
        let logits = model.forward(&input, chunk.len(), Mode::Infer)?;
        let labels: Vec<u8> = chunk.iter().map(|&i| data.labels[i]).collect();
        let out = softmax_cross_entropy(logits, &labels, classes);
        loss_sum += out.loss as f64 * chunk.len() as f64;
        correct += out.correct;
        predictions.extend(logits.chunks_exact(classes).map(argmax));
        all_logits.extend_from_slice(logits);
    }
    let n = data.len().max(1) as f32;
    Ok(Evaluation { accuracy: correct as f32 / n, loss: (loss_sum / n as f64) as f32, predictions, logits: all_logits })
}

/// `confusion[true][predicted]` counts.
pub fn confusion_matrix(labels: &[u8], predictions: &[usize], classes: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; classes]; classes];
    for (&l, &p) in labels.iter().zip(predictions) {
        m[l as usize][p] += 1;
    }
    m
}

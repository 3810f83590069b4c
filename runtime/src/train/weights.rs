//! Weights in safetensors files, with PyTorch's names and layouts
//! (`<layer>.weight`, `<layer>.bias`; conv `[out, in, kh, kw]`, dense
//! `[out, in]`), so a model moves to and from PyTorch unchanged.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::model::Model;
use crate::train::files;

/// Prefix of optimizer-state tensors; weight loading ignores them.
pub const STATE_PREFIX: &str = "optimizer.";

/// An f32 tensor read from or written to a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A weights file that cannot be used, with every problem found in it.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightsError {
    pub path: PathBuf,
    pub problems: Vec<String>,
    pub help: Option<String>,
}

impl WeightsError {
    fn one(path: &Path, problem: impl Into<String>) -> Self {
        Self { path: path.to_path_buf(), problems: vec![problem.into()], help: None }
    }
}

impl fmt::Display for WeightsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "{}: {one}", self.path.display())?,
            many => {
                write!(f, "{}: {} problems", self.path.display(), many.len())?;
                for p in many {
                    write!(f, "\n  - {p}")?;
                }
            }
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for WeightsError {}

/// Serialize tensors (f32) and string metadata to safetensors bytes.
pub fn to_bytes(tensors: &[Tensor], metadata: HashMap<String, String>) -> Vec<u8> {
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|t| (t.name.clone(), t.shape.clone(), t.data.iter().flat_map(|v| v.to_le_bytes()).collect())).collect();
    let views: Vec<(String, TensorView<'_>)> = raw
        .iter()
        .map(|(name, shape, bytes)| (name.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes).expect("shape matches data")))
        .collect();
    let metadata = if metadata.is_empty() { None } else { Some(metadata) };
    let bytes = safetensors::serialize(views, metadata).expect("f32 tensors with consistent shapes serialize");
    sorted_header(bytes)
}

/// `bytes` with its JSON header's keys in sorted order, so that the same
/// tensors and metadata always give the same bytes: `safetensors` writes
/// the metadata from a `HashMap`, whose order changes from run to run.
/// The same keys and values reordered are as long as before, so the
/// header keeps its length and padding, and the data its offsets.
fn sorted_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("an 8-byte length")) as usize;
    let header = &bytes[8..8 + len];
    let value: serde_json::Value = serde_json::from_slice(header).expect("safetensors writes JSON");
    // Compact, as safetensors' own writer.
    let sorted = serde_json::to_vec(&Sorted(&value)).expect("JSON serializes");
    assert!(sorted.len() <= len, "a reordered header is as long as the original");
    bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
    bytes[8 + sorted.len()..8 + len].fill(b' ');
    bytes
}

/// A JSON value serialized with every object's keys in sorted order
/// (whatever order `serde_json::Map` keeps, which a dependency's
/// `preserve_order` feature would change).
struct Sorted<'a>(&'a serde_json::Value);

impl serde::Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self.0 {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = serializer.serialize_map(Some(keys.len()))?;
                for k in keys {
                    out.serialize_entry(k, &Sorted(&map[k]))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// Save tensors atomically.
pub fn save(path: &Path, tensors: &[Tensor], metadata: HashMap<String, String>) -> Result<(), WeightsError> {
    files::write_atomic(path, &to_bytes(tensors, metadata)).map_err(|e| WeightsError::one(path, format!("cannot write: {e}")))
}

/// Read every tensor of a file (f32 only) and its metadata.
pub fn read(path: &Path) -> Result<(Vec<Tensor>, HashMap<String, String>), WeightsError> {
    let bytes = std::fs::read(path).map_err(|e| WeightsError::one(path, format!("cannot read: {e}")))?;
    from_bytes(path, &bytes)
}

/// Every tensor (f32 only) and the metadata of a safetensors file's bytes;
/// `path` names the file in errors.
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<(Vec<Tensor>, HashMap<String, String>), WeightsError> {
    let parsed = SafeTensors::deserialize(bytes).map_err(|e| WeightsError {
        path: path.to_path_buf(),
        problems: vec![format!("not a valid safetensors file: {e}")],
        help: Some("weights are safetensors files, e.g. from `convc train --save` or `safetensors.torch.save_file`".into()),
    })?;
    let metadata = SafeTensors::read_metadata(bytes).ok().and_then(|(_, m)| m.metadata().clone()).unwrap_or_default();
    let mut problems = Vec::new();
    let mut tensors = Vec::new();
    let mut names = parsed.names();
    names.sort();
    for name in names {
        let view = parsed.tensor(name).expect("name listed by the file");
        if view.dtype() != Dtype::F32 {
            problems.push(format!("`{name}` is {:?}, expected F32", view.dtype()));
            continue;
        }
        let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        tensors.push(Tensor { name: name.to_string(), shape: view.shape().to_vec(), data });
    }
    if !problems.is_empty() {
        return Err(WeightsError {
            path: path.to_path_buf(),
            problems,
            help: Some("convert to float32 first, e.g. `{k: v.float() for k, v in state.items()}` in PyTorch".into()),
        });
    }
    Ok((tensors, metadata))
}

/// A model's parameters as tensors.
pub fn from_model(model: &dyn Model) -> Vec<Tensor> {
    model.params().iter().map(|p| Tensor { name: p.name.to_string(), shape: p.shape.to_vec(), data: p.value.to_vec() }).collect()
}

/// Save a model's parameters, PyTorch-compatible.
pub fn save_model(model: &dyn Model, path: &Path) -> Result<(), WeightsError> {
    let metadata = HashMap::from([("format".to_string(), "pt".to_string()), ("convc_network".to_string(), model.name().to_string())]);
    save(path, &from_model(model), metadata)
}

/// Copy `tensors` into the model's parameters. Every parameter must be
/// present with its exact shape; every tensor must name a parameter,
/// except those starting with one of `ignore_prefixes` (checkpoint state).
/// All mismatches are reported together.
pub fn assign(model: &mut dyn Model, path: &Path, tensors: &[Tensor], ignore_prefixes: &[&str]) -> Result<(), WeightsError> {
    let mut problems = Vec::new();
    let by_name: HashMap<&str, &Tensor> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let param_names: Vec<String> = model.params().iter().map(|p| p.name.to_string()).collect();
    for p in model.params() {
        match by_name.get(p.name) {
            None => problems.push(format!("missing tensor `{}` (shape {:?})", p.name, p.shape)),
            Some(t) if t.shape != p.shape => problems.push(format!("`{}` has shape {:?}, the spec needs {:?}", p.name, t.shape, p.shape)),
            Some(t) => {
                if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
                    let count = t.data.iter().filter(|v| !v.is_finite()).count();
                    problems
                        .push(format!("`{}` holds {count} NaN or infinite values (the first at flat index {i}: {})", p.name, t.data[i]));
                }
            }
        }
    }
    for t in tensors {
        if !param_names.contains(&t.name) && !ignore_prefixes.iter().any(|p| t.name.starts_with(p)) {
            let close = param_names.iter().find(|n| strsim_close(n, &t.name));
            problems.push(match close {
                Some(c) => format!("unexpected tensor `{}` (did you mean `{c}`?)", t.name),
                None => format!("unexpected tensor `{}`: the spec has no such parameter", t.name),
            });
        }
    }
    if !problems.is_empty() {
        return Err(WeightsError {
            path: path.to_path_buf(),
            problems,
            help: Some(format!("the file must hold exactly the parameters of network `{}`: {}", model.name(), param_names.join(", "))),
        });
    }
    for p in model.params_mut() {
        p.value.copy_from_slice(&by_name[p.name].data);
    }
    Ok(())
}

/// Load weights from a file into a model (see [`assign`]).
pub fn load_model(model: &mut dyn Model, path: &Path) -> Result<(), WeightsError> {
    let (tensors, _) = read(path)?;
    assign(model, path, &tensors, &[STATE_PREFIX])
}

/// Same layer, other suffix, or a one-character slip.
fn strsim_close(a: &str, b: &str) -> bool {
    let (la, lb) = (a.split('.').next(), b.split('.').next());
    la == lb || a.len().abs_diff(b.len()) <= 1 && a.chars().zip(b.chars()).filter(|(x, y)| x != y).count() <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same tensors and metadata give the same bytes every time (the
    /// metadata comes in a `HashMap`, a new iteration order each), and
    /// the file reads back as written.
    #[test]
    fn the_same_content_gives_the_same_bytes() {
        let tensors = [
            Tensor { name: "conv1.weight".into(), shape: vec![2, 1, 2, 2], data: (0..8).map(|i| i as f32 * 0.5).collect() },
            Tensor { name: "conv1.bias".into(), shape: vec![2], data: vec![0.25, -1.0] },
        ];
        let metadata = || -> HashMap<String, String> { (0..8).map(|i| (format!("key{i}"), format!("value {i}"))).collect() };
        let first = to_bytes(&tensors, metadata());
        for _ in 0..20 {
            assert_eq!(to_bytes(&tensors, metadata()), first);
        }
        let (back, meta) = safetensors_read(&first);
        assert_eq!(meta, metadata());
        assert_eq!(back.len(), 2);
        for t in &tensors {
            let b = back.iter().find(|b| b.name == t.name).expect("every tensor reads back");
            assert_eq!((&b.shape, &b.data), (&t.shape, &t.data));
        }
    }

    /// Read `bytes` through the same parser as [`read`], via a file.
    fn safetensors_read(bytes: &[u8]) -> (Vec<Tensor>, HashMap<String, String>) {
        let path = std::env::temp_dir().join(format!("convc-weights-test-{}.safetensors", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let read = read(&path);
        std::fs::remove_file(&path).ok();
        read.unwrap()
    }
}

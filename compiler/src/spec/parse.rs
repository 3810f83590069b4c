//! TOML text → [`Spec`], collecting every problem with its span.

use std::collections::{HashMap, HashSet};

use convc_runtime::train::optim::Bounds;
use convc_runtime::{Activation, PoolKind};
use toml::de::{DeTable, DeValue};

use super::fields::{Table, describe};
use super::training::parse_training;
use super::{At, LayerKind, LayerSpec, Rounding, Spec, Window};
use crate::diag::{Diagnostic, SourceFile, Span, SpecError, did_you_mean, one_of};

/// Every `type = "..."` a layer may have.
pub const LAYER_TYPES: [&str; 14] = [
    "conv2d",
    "local2d",
    "max_pool",
    "avg_pool",
    "l2_pool",
    "flatten",
    "dense",
    "dropout",
    "relu",
    "leaky_relu",
    "elu",
    "sigmoid",
    "tanh",
    "softmax",
];

const TOP_KEYS: [&str; 3] = ["network", "layer", "training"];
const NETWORK_KEYS: [&str; 3] = ["name", "input", "rounding"];
const CONV_KEYS: [&str; 10] = ["name", "type", "filters", "kernel", "stride", "padding", "activation", "alpha", "bias", "rounding"];
const POOL_KEYS: [&str; 6] = ["name", "type", "size", "stride", "padding", "rounding"];
const DENSE_KEYS: [&str; 6] = ["name", "type", "units", "activation", "alpha", "bias"];
const DROPOUT_KEYS: [&str; 3] = ["name", "type", "rate"];
const ACTIVATION_KEYS: [&str; 3] = ["name", "type", "alpha"];
const PLAIN_KEYS: [&str; 2] = ["name", "type"];

/// Parse a spec. Any error (syntax, unknown key, bad value) makes this fail
/// with all of them; geometry is checked later, by [`crate::graph`].
pub fn parse(file: &SourceFile) -> Result<Spec, SpecError> {
    let (spec, diagnostics) = parse_lenient(file);
    match spec {
        Some(spec) if !diagnostics.iter().any(Diagnostic::is_error) => Ok(spec),
        _ => Err(SpecError { file: file.clone(), diagnostics }),
    }
}

/// Parse as much as can be parsed. A layer whose fields are wrong becomes
/// [`LayerKind::Invalid`] so that the checker can still look at the layers
/// before it. `None` when not even the layer list could be read.
pub(crate) fn parse_lenient(file: &SourceFile) -> (Option<Spec>, Vec<Diagnostic>) {
    let mut errs = Vec::new();
    let doc = match DeTable::parse(&file.text) {
        Ok(doc) => doc,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim().to_string();
            errs.push(Diagnostic::error(format!("invalid TOML: {message}")).primary(span, message));
            return (None, errs);
        }
    };
    let top = Table::new("the spec", doc.span(), doc.get_ref());
    top.reject_unknown_keys(&TOP_KEYS, &mut errs);

    let (name, input, rounding) = parse_network(&top, file, &mut errs);
    let training =
        top.table("training", &mut errs).map(|(span, t)| parse_training(&Table::new("[training]", span, t), &mut errs)).unwrap_or_default();
    let layers = parse_layers(&top, &mut errs);

    let spec = match (input, layers) {
        (Some(input), Some(layers)) => Some(Spec { name, input, rounding, layers, training }),
        _ => None,
    };
    (spec, errs)
}

fn parse_network(top: &Table<'_, '_>, file: &SourceFile, errs: &mut Vec<Diagnostic>) -> (String, Option<At<[usize; 3]>>, Rounding) {
    let default_name =
        std::path::Path::new(&file.name).file_stem().map_or_else(|| "network".to_string(), |s| s.to_string_lossy().into_owned());
    let Some((span, table)) = top.table("network", errs) else {
        if top.get("network").is_none() {
            errs.push(
                Diagnostic::error("the spec has no [network] table")
                    .primary(0..0, "expected a [network] table with the input shape")
                    .help("start the spec with\n[network]\ninput = [1, 28, 28]   # channels, height, width"),
            );
        }
        return (default_name, None, Rounding::Exact);
    };
    let net = Table::new("[network]", span, table);
    net.reject_unknown_keys(&NETWORK_KEYS, errs);
    let name = net.string("name", errs).map_or(default_name, |n| n.value.to_string());
    let rounding = parse_rounding(&net, errs).unwrap_or_default();
    let input = match net.get("input") {
        None => {
            errs.push(
                Diagnostic::error("[network] has no `input`")
                    .primary(net.span.clone(), "the input shape is required")
                    .help("add `input = [channels, height, width]`, e.g. `input = [1, 28, 28]`"),
            );
            None
        }
        Some(v) => match v.get_ref() {
            DeValue::Array(items) if items.len() == 3 => {
                let dims: Vec<Option<usize>> = items.iter().map(|item| net.size_value("input", item, 1, errs)).collect();
                match dims[..] {
                    [Some(c), Some(h), Some(w)] => Some(At::new([c, h, w], v.span())),
                    _ => None,
                }
            }
            other => {
                errs.push(
                    Diagnostic::error("`input` of [network] must be [channels, height, width]")
                        .primary(v.span(), format!("this is {}", describe(other)))
                        .help("for 28×28 grey images write `input = [1, 28, 28]`"),
                );
                None
            }
        },
    };
    (name, input, rounding)
}

fn parse_rounding(t: &Table<'_, '_>, errs: &mut Vec<Diagnostic>) -> Option<Rounding> {
    t.choice("rounding", &["exact", "floor"], errs).map(|r| if r.value == "floor" { Rounding::Floor } else { Rounding::Exact })
}

fn parse_layers(top: &Table<'_, '_>, errs: &mut Vec<Diagnostic>) -> Option<Vec<LayerSpec>> {
    let items = match top.get("layer") {
        None => {
            errs.push(
                Diagnostic::error("the spec has no layers")
                    .primary(top.span.start..top.span.start, "expected at least one [[layer]] table")
                    .help("add layers, e.g.\n[[layer]]\ntype = \"flatten\"\n\n[[layer]]\ntype = \"dense\"\nunits = 10"),
            );
            return None;
        }
        Some(v) => match v.get_ref() {
            DeValue::Array(items) => items,
            other => {
                errs.push(
                    Diagnostic::error("`layer` must be an array of tables, written [[layer]]")
                        .primary(v.span(), format!("this is {}", describe(other))),
                );
                return None;
            }
        },
    };
    let mut tables = Vec::new();
    for item in items.iter() {
        match item.get_ref() {
            DeValue::Table(t) => tables.push((item.span(), t)),
            other => errs.push(
                Diagnostic::error("each layer must be a table")
                    .primary(item.span(), format!("this is {}", describe(other)))
                    .help("write layers as [[layer]] tables"),
            ),
        }
    }
    if tables.is_empty() {
        errs.push(Diagnostic::error("the spec has no layers").primary(top.span.start..top.span.start, "expected [[layer]] tables"));
        return None;
    }

    let names = assign_names(&tables, errs);
    let layers = tables
        .iter()
        .zip(names)
        .map(|((span, table), name)| {
            let t = Table::new(format!("layer `{}`", name.value), span.clone(), table);
            let kind = parse_layer(&t, errs).unwrap_or(LayerKind::Invalid);
            LayerSpec { name, span: span.clone(), kind }
        })
        .collect();
    Some(layers)
}

/// The explicit names, checked and unique, and defaults (`conv1`, `pool2`,
/// ...) numbered per family and skipping names taken explicitly.
fn assign_names(tables: &[(Span, &DeTable<'_>)], errs: &mut Vec<Diagnostic>) -> Vec<At<String>> {
    let explicit: Vec<Option<At<String>>> = tables
        .iter()
        .map(|(span, table)| {
            let t = Table::new("a layer", span.clone(), table);
            let name = t.string("name", errs)?;
            if !is_layer_name(name.value) {
                errs.push(
                    Diagnostic::error(format!("invalid layer name \"{}\"", name.value))
                        .primary(name.span.clone(), "names are words of letters, digits and `_`, joined by dots")
                        .help("e.g. `conv1` or PyTorch's module path `layer2.0.conv1` (names become `<name>.weight` tensors)"),
                );
            }
            if name.value.split('.').next() == Some("optimizer") {
                errs.push(
                    Diagnostic::error(format!("layer name \"{}\" is reserved", name.value))
                        .primary(name.span.clone(), "checkpoints keep optimizer state in tensors named `optimizer.…`")
                        .help("choose another name for this layer"),
                );
            }
            Some(At::new(name.value.to_string(), name.span))
        })
        .collect();

    // Hashed, so that a spec of a million layers is named in linear time.
    let mut first_use: HashMap<&str, &At<String>> = HashMap::new();
    for name in explicit.iter().flatten() {
        if let Some(first) = first_use.insert(&name.value, name) {
            first_use.insert(&first.value, first);
            errs.push(
                Diagnostic::error(format!("two layers are named `{}`", name.value))
                    .primary(name.span.clone(), "second use")
                    .secondary(first.span.clone(), "first use")
                    .help("layer names must be unique: they name the weight tensors"),
            );
        }
    }
    let mut taken: HashSet<String> = first_use.keys().map(|n| n.to_string()).collect();

    let mut counters: HashMap<&str, usize> = HashMap::new();
    let mut names = Vec::new();
    for ((span, table), own) in tables.iter().zip(&explicit) {
        let family =
            table.iter().find(|(k, _)| k.get_ref().as_ref() == "type").and_then(|(_, v)| v.get_ref().as_str()).map_or("layer", name_family);
        let counter = counters.entry(family).or_insert(0);
        *counter += 1;
        let name = match own {
            Some(name) => name.clone(),
            None => {
                let mut candidate = format!("{family}{counter}");
                while taken.contains(&candidate) {
                    *counter += 1;
                    candidate = format!("{family}{counter}");
                }
                At::new(candidate, span.clone())
            }
        };
        taken.insert(name.value.clone());
        names.push(name);
    }
    names
}

/// The prefix of default names: `conv1`, `local1`, `pool1`, `dense1` ...
fn name_family(layer_type: &str) -> &'static str {
    match layer_type {
        "conv2d" => "conv",
        "local2d" => "local",
        "max_pool" | "avg_pool" | "l2_pool" => "pool",
        "dense" => "dense",
        "dropout" => "dropout",
        "flatten" => "flatten",
        "softmax" => "softmax",
        "relu" | "leaky_relu" | "elu" | "sigmoid" | "tanh" => "act",
        _ => "layer",
    }
}

/// A layer name: words of ASCII letters, digits and `_` joined by single
/// dots — an identifier, or a PyTorch module path (`layer2.0.conv1`,
/// `features.0`, `0` in a bare `nn.Sequential`), so weight files carry
/// exactly a PyTorch `state_dict`'s tensor names.
fn is_layer_name(s: &str) -> bool {
    s.split('.').all(|word| !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

fn parse_layer(t: &Table<'_, '_>, errs: &mut Vec<Diagnostic>) -> Option<LayerKind> {
    let Some(ty) = t.get("type") else {
        errs.push(
            Diagnostic::error(format!("{} has no `type`", t.what))
                .primary(t.span.clone(), "every layer needs a type")
                .help(format!("add `type = \"...\"`, one of {}", one_of(&LAYER_TYPES))),
        );
        return None;
    };
    let ty = t.choice("type", &LAYER_TYPES, errs).or_else(|| {
        // `choice` reported it; only the spellings below deserve extra help.
        if let Some(s) = ty.get_ref().as_str()
            && did_you_mean(s, LAYER_TYPES).is_none()
        {
            let last = errs.last_mut().expect("choice reported an error");
            *last = last.clone().note("the layer types are documented in specs/README.md");
        }
        None
    })?;
    let kind = match ty.value {
        "conv2d" | "local2d" => {
            t.reject_unknown_keys(&CONV_KEYS, errs);
            let filters = t.size("filters", None, 1, errs);
            let window = parse_window(t, "kernel", false, errs);
            let activation = parse_activation(t, errs);
            let bias = t.boolean("bias", true, errs);
            let (filters, window, activation, bias) = (filters?, window?, activation?, bias?);
            if ty.value == "conv2d" {
                LayerKind::Conv2d { filters, window, activation, bias }
            } else {
                LayerKind::Local2d { filters, window, activation, bias }
            }
        }
        "max_pool" | "avg_pool" | "l2_pool" => {
            t.reject_unknown_keys(&POOL_KEYS, errs);
            let kind = match ty.value {
                "max_pool" => PoolKind::Max,
                "avg_pool" => PoolKind::Avg,
                _ => PoolKind::L2,
            };
            LayerKind::Pool { kind, window: parse_window(t, "size", true, errs)? }
        }
        "flatten" | "softmax" => {
            t.reject_unknown_keys(&PLAIN_KEYS, errs);
            if ty.value == "flatten" { LayerKind::Flatten } else { LayerKind::Softmax }
        }
        "dense" => {
            t.reject_unknown_keys(&DENSE_KEYS, errs);
            let units = t.size("units", None, 1, errs);
            let activation = parse_activation(t, errs);
            let bias = t.boolean("bias", true, errs);
            LayerKind::Dense { units: units?, activation: activation?, bias: bias? }
        }
        "dropout" => {
            t.reject_unknown_keys(&DROPOUT_KEYS, errs);
            let rate = t.number("rate", None, Bounds::closed(0.0, 0.999), errs);
            if t.get("rate").is_none() {
                errs.push(
                    Diagnostic::error(format!("{} has no `rate`", t.what))
                        .primary(t.span.clone(), "the drop probability is required")
                        .help("add e.g. `rate = 0.5`"),
                );
            }
            LayerKind::Dropout { rate: rate?.value as f32 }
        }
        name => {
            let allowed: &[&str] = if Activation::takes_alpha(name) { &ACTIVATION_KEYS } else { &PLAIN_KEYS };
            t.reject_unknown_keys(allowed, errs);
            let alpha = t.number("alpha", None, Bounds::closed(0.0, 100.0), errs).map(|a| a.value as f32);
            LayerKind::Activation(Activation::from_name(name, alpha).expect("LAYER_TYPES lists only known activations"))
        }
    };
    Some(kind)
}

/// `kernel`/`size`, `stride`, `padding` and `rounding` of a window layer.
/// Pools default their stride to their size.
fn parse_window(t: &Table<'_, '_>, size_key: &str, stride_defaults_to_size: bool, errs: &mut Vec<Diagnostic>) -> Option<Window> {
    let kernel = t.pair(size_key, None, 1, errs);
    let stride_default = if stride_defaults_to_size { kernel.as_ref().map(|k| k.value) } else { Some([1, 1]) };
    let stride = match (t.get("stride"), stride_default) {
        (None, None) => None, // the size was bad, already reported
        (_, default) => t.pair("stride", Some(default.unwrap_or([1, 1])), 1, errs),
    };
    let padding = t.padding("padding", errs);
    let rounding = if t.get("rounding").is_some() { Some(parse_rounding(t, errs)?) } else { None };
    Some(Window { kernel: kernel?, stride: stride?, padding: padding?, rounding })
}

fn parse_activation(t: &Table<'_, '_>, errs: &mut Vec<Diagnostic>) -> Option<Activation> {
    let alpha = t.number("alpha", None, Bounds::closed(0.0, 100.0), errs);
    let name = match t.string("activation", errs) {
        None => "none",
        Some(a) if a.value == "softmax" => {
            errs.push(
                Diagnostic::error(format!("softmax is not an element-wise activation ({})", t.what))
                    .primary(a.span.clone(), "softmax normalises over all outputs")
                    .help("drop the activation here and end the network with `[[layer]] type = \"softmax\"`"),
            );
            return None;
        }
        Some(a) => match Activation::NAMES.iter().find(|&&n| n == a.value) {
            Some(&n) => n,
            None => {
                let mut d = Diagnostic::error(format!("unknown activation \"{}\" in {}", a.value, t.what))
                    .primary(a.span.clone(), format!("expected {}", one_of(&Activation::NAMES)));
                if let Some(close) = did_you_mean(a.value, Activation::NAMES) {
                    d = d.help(format!("did you mean \"{close}\"?"));
                }
                errs.push(d);
                return None;
            }
        },
    };
    if let Some(alpha) = &alpha
        && !Activation::takes_alpha(name)
    {
        errs.push(
            Diagnostic::error(format!("`alpha` has no meaning for activation \"{name}\" ({})", t.what))
                .primary(alpha.span.clone(), "only leaky_relu and elu take `alpha`")
                .help("remove `alpha`, or use `activation = \"leaky_relu\"`"),
        );
        return None;
    }
    Activation::from_name(name, alpha.map(|a| a.value as f32))
}

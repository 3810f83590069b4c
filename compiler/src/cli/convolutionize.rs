//! `convc convolutionize`: a trained network's dense layers rewritten as
//! convolutions, so that one forward pass over a larger image scores every
//! window position at once — the first dense layer after the `flatten`
//! becomes a conv whose kernel is the flattened map's height × width, each
//! later one a 1×1 conv. The weights are the same numbers: PyTorch's flatten
//! order makes `[out, C·h·w]` a reshape of `[out, C, h, w]`.
//!
//! The spec is rewritten in place (`toml_edit`: comments and layout kept),
//! every layer named explicitly so tensor names stay, then checked like any
//! spec; at a size where some window does not step evenly the usual
//! diagnostics say which layer, and the sizes near it that would work.

use std::path::{Path, PathBuf};

use clap::Args;
use convc_compiler::graph::read_source;
use convc_compiler::graph::{Graph, Op, Shape};
use convc_compiler::{SourceFile, SpecError, check_source};
use convc_runtime::train::files;
use convc_runtime::train::weights::{self, Tensor};
use toml_edit::{Array, DocumentMut, Item, Table, value};

use super::CliError;

#[derive(Args)]
pub struct ConvolutionizeArgs {
    /// The trained network's spec.
    spec: PathBuf,
    /// The larger input to score, height × width (e.g. 387x387).
    #[arg(long, value_name = "HxW", value_parser = parse_size)]
    input: (usize, usize),
    /// The network's weights, converted into --weights-out.
    #[arg(long, value_name = "W.safetensors", requires = "weights_out")]
    weights: Option<PathBuf>,
    /// Where the converted weights go.
    #[arg(long, value_name = "W2.safetensors", requires = "weights")]
    weights_out: Option<PathBuf>,
    /// The new spec.
    #[arg(short, long, value_name = "OUT.toml")]
    output: PathBuf,
}

/// `387x387` (or `387×387`) → (387, 387).
fn parse_size(text: &str) -> Result<(usize, usize), String> {
    let parts: Vec<&str> = text.split(['x', 'X', '×']).collect();
    match parts.as_slice() {
        [h, w] => match (h.trim().parse::<usize>(), w.trim().parse::<usize>()) {
            (Ok(h), Ok(w)) if h > 0 && w > 0 => Ok((h, w)),
            _ => Err(format!("expected two positive sizes as HxW, e.g. 387x387, not {text:?}")),
        },
        _ => Err(format!("expected HxW, e.g. 387x387, not {text:?}")),
    }
}

/// What becomes of each dense layer: its index among the graph's nodes
/// and the kernel its conv gets (the flattened map's size, or 1×1).
pub(super) struct Conversion {
    flatten: usize,
    /// The map the flatten read: channels, height, width.
    map: (usize, usize, usize),
    dense: Vec<(usize, [usize; 2])>,
}

/// Which layers change, or why the network cannot be convolutionized.
pub(super) fn conversion(graph: &Graph, spec: &Path) -> Result<Conversion, CliError> {
    let refuse = |why: String| Err(CliError::msg(format!("{}: cannot convolutionize: {why}", spec.display())));
    if let Some(n) = graph.nodes.iter().find(|n| matches!(n.op, Op::Local2d(_))) {
        return refuse(format!(
            "layer `{}` is local2d: its weights depend on the position, so it cannot slide over a larger input",
            n.name
        ));
    }
    let Some(flatten) = graph.nodes.iter().position(|n| n.op == Op::Flatten) else {
        return refuse("it has no flatten layer: its input is a vector, with no window to slide".into());
    };
    let Shape::Image { c, h, w } = graph.nodes[flatten].input_shape else {
        return refuse("its flatten reads a vector".into());
    };
    let mut dense = Vec::new();
    for (i, n) in graph.nodes.iter().enumerate().skip(flatten + 1) {
        if matches!(n.op, Op::Dense { .. }) {
            dense.push((i, if dense.is_empty() { [h, w] } else { [1, 1] }));
        }
    }
    if dense.is_empty() {
        return refuse("it has no dense layer after its flatten: it already scores a map of any size".into());
    }
    Ok(Conversion { flatten, map: (c, h, w), dense })
}

/// The spec's text rewritten for an input of `size`.
fn rewrite(text: &str, spec: &Path, graph: &Graph, conv: &Conversion, size: (usize, usize)) -> Result<String, CliError> {
    let mut doc: DocumentMut = text.parse().map_err(|e| CliError::msg(format!("{}: {e}", spec.display())))?;
    let not_tables = || CliError::msg(format!("{}: convolutionize rewrites specs whose layers are [[layer]] tables", spec.display()));
    let network = doc.get_mut("network").and_then(Item::as_table_mut).ok_or_else(not_tables)?;
    let (c, _, _) = graph.input.chw();
    network["input"] = value(Array::from_iter([c as i64, size.0 as i64, size.1 as i64]));
    let layers = doc.get_mut("layer").and_then(Item::as_array_of_tables_mut).ok_or_else(not_tables)?;
    if layers.len() != graph.nodes.len() {
        return Err(not_tables());
    }
    for (i, table) in layers.iter_mut().enumerate() {
        // Named explicitly: a dense layer turned conv would otherwise take
        // the next default conv name, and its tensors another name.
        if !table.contains_key("name") {
            set_first(table, "name", value(graph.nodes[i].name.as_str()));
        }
        let Some(&(_, kernel)) = conv.dense.iter().find(|(d, _)| *d == i) else { continue };
        let units = table.remove("units").ok_or_else(not_tables)?;
        table["type"] = value("conv2d");
        table.insert("filters", units);
        table.insert("kernel", if kernel == [1, 1] { value(1) } else { value(Array::from_iter(kernel.map(|k| k as i64))) });
    }
    layers.remove(conv.flatten);
    Ok(doc.to_string())
}

/// Put `key` first in `table` (names read best at the top).
fn set_first(table: &mut Table, key: &str, item: Item) {
    table.insert(key, item);
    let order: Vec<String> =
        std::iter::once(key.to_string()).chain(table.iter().map(|(k, _)| k.to_string()).filter(|k| k != key)).collect();
    table.sort_values_by(|a, _, b, _| {
        let at = |k: &toml_edit::Key| order.iter().position(|o| o == k.get());
        at(a).cmp(&at(b))
    });
}

/// The converted spec's text and graph, checked at `size` (its
/// diagnostics name the spec and the size: the rewritten text is not on disk).
pub(super) fn converted(
    text: &str,
    spec: &Path,
    graph: &Graph,
    conv: &Conversion,
    size: (usize, usize),
) -> Result<(String, Graph), CliError> {
    let rewritten = rewrite(text, spec, graph, conv, size)?;
    let name = format!("{} convolutionized for {}×{}", spec.display(), size.0, size.1);
    let file = SourceFile::new(name, rewritten);
    let graph = check_source(&file).map_err(CliError::Spec)?;
    Ok((file.text, graph))
}

/// "sizes that work near 384×384: 355×355 (5×5 scores), 387×387 (6×6
/// scores)" — square sizes for a square request, else per axis (the other
/// at the network's own size, at which the conversion always checks).
fn working_sizes(want: (usize, usize), own: (usize, usize), check: impl Fn((usize, usize)) -> Option<Graph>) -> String {
    let map = |g: &Graph| g.output().chw();
    if want.0 == want.1 && own.0 == own.1 {
        let near: Vec<String> = sizes_near(want.0, |s| check((s, s)))
            .iter()
            .map(|(s, g)| {
                let (_, mh, mw) = map(g);
                format!("{s}×{s} ({mh}×{mw} scores)")
            })
            .collect();
        return format!("input sizes that work near {}×{}: {}", want.0, want.1, near.join(", "));
    }
    let mut fixes = Vec::new();
    for (axis, name) in [(0, "height"), (1, "width")] {
        let at = |s: usize| if axis == 0 { (s, own.1) } else { (own.0, s) };
        let wanted = if axis == 0 { want.0 } else { want.1 };
        if check(at(wanted)).is_some() {
            continue;
        }
        let near: Vec<String> = sizes_near(wanted, |s| check(at(s)))
            .iter()
            .map(|(s, g)| {
                let (_, mh, mw) = map(g);
                format!("{s} ({} scores)", if axis == 0 { mh } else { mw })
            })
            .collect();
        fixes.push(format!("{name}s that work near {wanted}: {}", near.join(", ")));
    }
    fixes.join("; ")
}

/// The nearest sizes below and above `want` at which `check` passes, with
/// the network each gives.
fn sizes_near(want: usize, check: impl Fn(usize) -> Option<Graph>) -> Vec<(usize, Graph)> {
    let below = (1..want).rev().take(256).find_map(|s| check(s).map(|g| (s, g)));
    let above = (want + 1..want + 257).find_map(|s| check(s).map(|g| (s, g)));
    below.into_iter().chain(above).collect()
}

pub fn run(args: ConvolutionizeArgs) -> Result<(), CliError> {
    let file = read_source(&args.spec).map_err(CliError::Spec)?;
    let graph = check_source(&file).map_err(CliError::Spec)?;
    let text = &file.text;
    let conv = conversion(&graph, &args.spec)?;
    let (_, oh, ow) = graph.input.chw();
    let (rewritten, new) = match converted(text, &args.spec, &graph, &conv, args.input) {
        Ok(converted) => converted,
        Err(CliError::Spec(mut e)) => {
            let check = |size| converted(text, &args.spec, &graph, &conv, size).ok().map(|(_, g)| g);
            add_help(&mut e, &working_sizes(args.input, (oh, ow), check));
            return Err(CliError::Spec(e));
        }
        Err(e) => return Err(e),
    };

    let padded: Vec<&str> = new.nodes.iter().filter(|n| pads(&n.op)).map(|n| n.name.as_str()).collect();
    if !padded.is_empty() {
        eprintln!(
            "warning: {} pad{} the input: windows at the image's border see zeros there that a crop would not, so their \
             scores can differ from the crop's (without padding, each window's scores equal the crop's exactly)",
            padded.join(", "),
            if padded.len() == 1 { "s" } else { "" }
        );
    }

    // The weights are converted before anything is written: a mismatch leaves no half result.
    let converted_weights = match &args.weights {
        Some(from) => {
            let (mut tensors, _) = weights::read(from)?;
            convert_weights(&mut tensors, &graph, &conv, from)?;
            Some(tensors)
        }
        None => None,
    };

    let header = format!(
        "# Convolutionized by `convc convolutionize {} --input {}x{}`: the dense layers are\n# convolutions, and the output is a map of scores, one per window.\n\n",
        args.spec.display(),
        args.input.0,
        args.input.1
    );
    files::write_atomic(&args.output, (header + &rewritten).as_bytes())
        .map_err(|e| CliError::msg(format!("-o {}: cannot write: {e}", args.output.display())))?;
    if let (Some(tensors), Some(to)) = (&converted_weights, &args.weights_out) {
        let metadata =
            std::collections::HashMap::from([("format".to_string(), "pt".to_string()), ("convc_network".to_string(), new.name.clone())]);
        weights::save(to, tensors, metadata)?;
    }

    let out = new.output();
    let (c, mh, mw) = out.chw();
    let stride = (args.input.0 - oh) / mh.saturating_sub(1).max(1);
    println!(
        "{}: {} over {}×{}×{} → {c}×{mh}×{mw} scores: {} windows of {oh}×{ow}{}",
        args.output.display(),
        new.name,
        graph.input.chw().0,
        args.input.0,
        args.input.1,
        mh * mw,
        if mh * mw > 1 { format!(", {stride} pixels apart") } else { String::new() }
    );
    if let Some(to) = &args.weights_out {
        println!("weights: {}", to.display());
    }
    Ok(())
}

/// Whether a layer pads its input: then a window of the larger input sees
/// neighbouring pixels where a crop sees zeros.
pub(super) fn pads(op: &Op) -> bool {
    match op {
        Op::Conv2d(c) | Op::Local2d(c) => c.pad != [0, 0],
        Op::Pool(p) => p.pad != [0, 0],
        _ => false,
    }
}

/// Append `help` to the first error of `e`.
fn add_help(e: &mut SpecError, help: &str) {
    if let Some(d) = e.diagnostics.iter_mut().find(|d| d.is_error()) {
        let taken = std::mem::replace(d, convc_compiler::Diagnostic::error(""));
        *d = taken.help(help);
    }
}

/// Each converted dense layer's weight reshaped as its conv's:
/// `[out, C·h·w]` → `[out, C, h, w]`, later ones `[out, in]` → `[out, in, 1, 1]`.
pub(super) fn convert_weights(tensors: &mut [Tensor], graph: &Graph, conv: &Conversion, path: &Path) -> Result<(), CliError> {
    let (c, h, w) = conv.map;
    for &(i, kernel) in &conv.dense {
        let node = &graph.nodes[i];
        let name = format!("{}.weight", node.name);
        let Some(t) = tensors.iter_mut().find(|t| t.name == name) else {
            return Err(CliError::msg(format!("{}: no tensor `{name}` (the weights of another network?)", path.display())));
        };
        let Op::Dense { units, .. } = node.op else { unreachable!("conversion lists dense layers") };
        let inputs = node.input_shape.len();
        if t.shape != [units, inputs] {
            return Err(CliError::msg(format!(
                "{}: `{name}` has shape {:?}, the spec needs [{units}, {inputs}] (the weights of another network?)",
                path.display(),
                t.shape
            )));
        }
        t.shape = if kernel == [1, 1] { vec![units, inputs, 1, 1] } else { vec![units, c, h, w] };
    }
    Ok(())
}

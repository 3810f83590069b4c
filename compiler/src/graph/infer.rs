//! Shape inference and every check that needs shapes: window geometry,
//! layer order (flatten before dense, softmax last), sizes that overflow.

use std::path::Path;

use super::geometry::{Axis, Outcome};
use super::{Conv, Graph, Node, Op, Param, Pool, Shape, Source};
use crate::diag::{Diagnostic, SourceFile, Span, SpecError};
use crate::spec::{LayerKind, LayerSpec, Padding, Rounding, Spec, Window, parse_lenient};

/// Activations of one image, or one parameter tensor, may hold at most this
/// many elements (8 GiB of f32): larger is a typo, and it keeps every
/// product below comfortably inside `u64`/`usize`.
const MAX_ELEMENTS: u64 = 1 << 31;

const AXES: [&str; 2] = ["height", "width"];

/// Read, parse and check the spec at `path`.
pub fn check(path: &Path) -> Result<Graph, SpecError> {
    check_source(&read_source(path)?)
}

/// The spec at `path`, named by its path, for [`check_source`] (and for
/// tools that rewrite the text they checked).
pub fn read_source(path: &Path) -> Result<SourceFile, SpecError> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(SourceFile::new(name, text)),
        Err(e) => Err(SpecError {
            file: SourceFile::new(name.clone(), ""),
            diagnostics: vec![
                Diagnostic::error(format!("cannot read spec `{name}`: {e}"))
                    .help("check the path; specs are TOML files like specs/lenet5.toml"),
            ],
        }),
    }
}

/// Parse and check a spec's text, reporting every independent problem.
pub fn check_source(file: &SourceFile) -> Result<Graph, SpecError> {
    let (spec, mut diagnostics) = parse_lenient(file);
    let graph = spec.map(|spec| infer(&spec, &mut diagnostics));
    // Report in the order of the file, as a compiler would.
    diagnostics.sort_by_key(|d| d.primary_span().map_or(0, |s| s.start));
    match graph {
        Some(graph) if !diagnostics.iter().any(Diagnostic::is_error) => Ok(graph),
        _ => Err(SpecError { file: file.clone(), diagnostics }),
    }
}

/// Check an already parsed spec.
pub fn from_spec(spec: &Spec, file: &SourceFile) -> Result<Graph, SpecError> {
    let mut diagnostics = Vec::new();
    let graph = infer(spec, &mut diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(SpecError { file: file.clone(), diagnostics });
    }
    Ok(graph)
}

fn infer(spec: &Spec, errs: &mut Vec<Diagnostic>) -> Graph {
    let [c, h, w] = spec.input.value;
    let input = Shape::Image { c, h, w };
    check_softmax_is_last(&spec.layers, errs);
    let mut nodes: Vec<Node> = Vec::new();
    let mut shape = Some(input);
    if prod(&[c, h, w]).is_none() {
        errs.push(too_large("the network input", spec.input.span.clone()));
        shape = None;
    }
    for (index, layer) in spec.layers.iter().enumerate() {
        // After a layer whose shape is unknown nothing downstream can be
        // judged; its own field errors were reported by the parser.
        let Some(input_shape) = shape else { break };
        let cx = Context { layer, input: input_shape, rounding: spec.rounding, first: index == 0 };
        let Some((op, output)) = cx.infer(errs) else {
            shape = None;
            continue;
        };
        let (params, macs) = cx.costs(&op, output, errs);
        let source = if index == 0 { Source::Input } else { Source::Node(index - 1) };
        nodes.push(Node {
            name: layer.name.value.clone(),
            op,
            inputs: vec![source],
            input_shape,
            output,
            params,
            macs,
            span: layer.span.clone(),
        });
        shape = Some(output);
    }
    Graph { name: spec.name.clone(), input, nodes, training: spec.training.clone() }
}

fn check_softmax_is_last(layers: &[LayerSpec], errs: &mut Vec<Diagnostic>) {
    for layer in layers.iter().rev().skip(1).filter(|l| l.kind == LayerKind::Softmax) {
        errs.push(
            Diagnostic::error(format!("layer `{}`: softmax can only be the last layer", layer.name.value))
                .primary(layer.span.clone(), "softmax here is followed by other layers")
                .help("move it to the end, or use an element-wise activation such as \"sigmoid\" here"),
        );
    }
}

fn too_large(what: &str, span: Span) -> Diagnostic {
    Diagnostic::error(format!("{what} is too large"))
        .primary(span, format!("this makes a tensor of more than {MAX_ELEMENTS} elements"))
        .help("check the sizes for a typo")
}

/// The product of `dims` if it stays within `MAX_ELEMENTS`.
fn prod(dims: &[usize]) -> Option<u64> {
    dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64)).filter(|&n| n <= MAX_ELEMENTS)
}

struct Context<'a> {
    layer: &'a LayerSpec,
    input: Shape,
    rounding: Rounding,
    first: bool,
}

impl Context<'_> {
    /// "layer `conv1` (conv2d)"
    fn what(&self) -> String {
        format!("layer `{}` ({})", self.layer.name.value, self.layer.kind.type_name())
    }

    fn infer(&self, errs: &mut Vec<Diagnostic>) -> Option<(Op, Shape)> {
        let flat_len = match self.input {
            Shape::Flat(n) => Some(n),
            Shape::Image { .. } => None,
        };
        Some(match &self.layer.kind {
            LayerKind::Conv2d { filters, window, activation, bias } | LayerKind::Local2d { filters, window, activation, bias } => {
                let (_, pad, [oh, ow]) = self.window(window, false, errs)?;
                let conv = Conv {
                    filters: filters.value,
                    kernel: window.kernel.value,
                    stride: window.stride.value,
                    pad,
                    activation: *activation,
                    bias: *bias,
                };
                let out = Shape::Image { c: filters.value, h: oh, w: ow };
                if prod(&[filters.value, oh, ow]).is_none() {
                    errs.push(too_large(&format!("the output of {}", self.what()), filters.span.clone()));
                    return None;
                }
                let op = if matches!(self.layer.kind, LayerKind::Conv2d { .. }) { Op::Conv2d(conv) } else { Op::Local2d(conv) };
                (op, out)
            }
            LayerKind::Pool { kind, window } => {
                let (c, pad, [oh, ow]) = self.window(window, true, errs)?;
                (
                    Op::Pool(Pool { kind: *kind, size: window.kernel.value, stride: window.stride.value, pad }),
                    Shape::Image { c, h: oh, w: ow },
                )
            }
            LayerKind::Flatten => (Op::Flatten, Shape::Flat(self.input.len())),
            LayerKind::Dense { units, activation, bias } => {
                if flat_len.is_none() {
                    errs.push(
                        Diagnostic::error(format!("{} gets a {} tensor, but dense layers take a vector", self.what(), self.input))
                            .primary(self.layer.span.clone(), format!("its input is {} (channels × height × width)", self.input))
                            .help(format!(
                                "add a flatten layer before it:\n[[layer]]\ntype = \"flatten\"        # {} → {}",
                                self.input,
                                self.input.len()
                            )),
                    );
                }
                if prod(&[units.value, self.input.len()]).is_none() {
                    errs.push(too_large(&format!("the weight of {}", self.what()), units.span.clone()));
                    return None;
                }
                (Op::Dense { units: units.value, activation: *activation, bias: *bias }, Shape::Flat(units.value))
            }
            LayerKind::Dropout { rate } => (Op::Dropout { rate: *rate }, self.input),
            LayerKind::Activation(a) => (Op::Activation(*a), self.input),
            LayerKind::Softmax => (Op::Softmax, self.input),
            LayerKind::Invalid => return None,
        })
    }

    /// Resolve padding and check both axes of a window layer. Returns the
    /// input channels, the padding and the output size; `None` when the
    /// shape cannot be known (later layers are then not checked).
    fn window(&self, window: &Window, is_pool: bool, errs: &mut Vec<Diagnostic>) -> Option<(usize, [usize; 2], [usize; 2])> {
        let Shape::Image { c, h, w } = self.input else {
            errs.push(
                Diagnostic::error(format!(
                    "{} needs a channels × height × width input, but gets a vector of {}",
                    self.what(),
                    self.input.len()
                ))
                .primary(self.layer.span.clone(), "its input was flattened before it")
                .help("move the flatten layer after the last conv2d/local2d/pooling layer"),
            );
            return None;
        };
        let kernel = window.kernel.value;
        let pad = match window.padding.value {
            Padding::Explicit(p) => p,
            Padding::Valid => [0, 0],
            Padding::Same => {
                let even: Vec<usize> = (0..2).filter(|&a| kernel[a].is_multiple_of(2)).collect();
                if !even.is_empty() {
                    errs.push(
                        Diagnostic::error(format!("{}: padding \"same\" needs an odd window", self.what()))
                            .primary(window.kernel.span.clone(), format!("{} is even on the {} axis", kernel[even[0]], AXES[even[0]]))
                            .secondary(window.padding.span.clone(), "\"same\" pads (F − 1)/2 on each side")
                            .note("an even window cannot keep the size with equal padding on both sides")
                            .help("use an odd window (3, 5, 7 ...) or an explicit `padding`"),
                    );
                }
                [(kernel[0] - 1) / 2, (kernel[1] - 1) / 2]
            }
        };
        if is_pool && (0..2).any(|a| 2 * pad[a] > kernel[a]) {
            let a = (0..2).find(|&a| 2 * pad[a] > kernel[a]).expect("checked by any");
            errs.push(
                Diagnostic::error(format!("{}: padding {} is more than half the window {}", self.what(), pad[a], kernel[a]))
                    .primary(window.padding.span.clone(), format!("on the {} axis", AXES[a]))
                    .note("some windows would cover only padding")
                    .help(format!("use a padding of at most {}", kernel[a] / 2)),
            );
        }
        let rounding = window.rounding.unwrap_or(self.rounding);
        let axes = [
            Axis { n: h, kernel: kernel[0], pad: pad[0], stride: window.stride.value[0] },
            Axis { n: w, kernel: kernel[1], pad: pad[1], stride: window.stride.value[1] },
        ];
        let mut out = [0; 2];
        let mut known = true;
        for a in 0..2 {
            let axis = axes[a];
            out[a] = match axis.output(rounding) {
                Some(n) => n,
                None => {
                    // A square problem is reported once, for both axes.
                    if a == 0 || axes[0] != axes[1] {
                        let which = if axes[0] == axes[1] { "height and width" } else { AXES[a] };
                        let square = axes[0] == axes[1];
                        let other = (!square).then(|| (a, axes[1 - a]));
                        errs.push(self.geometry_error(window, axis, which, other, is_pool));
                    }
                    match axis.outcome() {
                        Outcome::Fractional { floor, .. } => floor,
                        _ => {
                            known = false;
                            0
                        }
                    }
                }
            };
        }
        known.then_some((c, pad, out))
    }

    /// `other`: for a problem on one axis only, its index and the other
    /// axis, so fixes are written as `[height, width]` pairs.
    fn geometry_error(&self, window: &Window, axis: Axis, which: &str, other: Option<(usize, Axis)>, is_pool: bool) -> Diagnostic {
        let size_key = if is_pool { "size" } else { "kernel" };
        let mut d = match axis.outcome() {
            Outcome::TooSmall => Diagnostic::error(format!("{}: the window does not fit the input ({which})", self.what()))
                .primary(
                    window.kernel.span.clone(),
                    format!(
                        "{size_key} {} is larger than the padded input {} + 2·{} = {}",
                        axis.kernel,
                        axis.n,
                        axis.pad,
                        axis.n + 2 * axis.pad
                    ),
                )
                .note(axis.arithmetic()),
            Outcome::Fractional { floor, dropped } => {
                let unit = match which {
                    "width" => "column",
                    "height" => "row",
                    _ => "row and column",
                };
                let verb = if which.contains(" and ") { "are not whole numbers" } else { "is not a whole number" };
                Diagnostic::error(format!("{}: the output {which} {verb}", self.what()))
                    .primary(window.kernel.span.clone(), format!("{} = {}, stride {}, padding {}", size_key, axis.kernel, axis.stride, axis.pad))
                    .note(format!(
                        "{}: the window does not step evenly over the padded input; flooring to {floor} would drop the last {dropped} {unit}{}",
                        axis.arithmetic(),
                        if dropped == 1 { "" } else { "s" }
                    ))
            }
            Outcome::Exact(_) => unreachable!("only refused geometry is reported"),
        };
        for at in [&window.stride.span, &window.padding.span] {
            if *at != self.layer.span && *at != window.kernel.span {
                d = d.secondary(at.clone(), "");
            }
        }
        for fix in self.fixes(axis, which, other, is_pool) {
            d = d.help(fix);
        }
        d
    }

    fn fixes(&self, axis: Axis, which: &str, other: Option<(usize, Axis)>, is_pool: bool) -> Vec<String> {
        // `padding = 1`, or `padding = [0, 1]` when only the width changes.
        let setting = |key: &str, value: usize, keep: fn(Axis) -> usize| match other {
            None => format!("`{key} = {value}`"),
            Some((0, o)) => format!("`{key} = [{value}, {}]`", keep(o)),
            Some((_, o)) => format!("`{key} = [{}, {value}]`", keep(o)),
        };
        let mut fixes = Vec::new();
        if let Outcome::TooSmall = axis.outcome() {
            let need = (axis.kernel - axis.n).div_ceil(2);
            fixes.push(format!(
                "pad by at least {need} ({}), or use a window of at most {}",
                setting("padding", need, |o| o.pad),
                axis.n + 2 * axis.pad
            ));
        } else if axis.padding_cannot_fix() {
            fixes.push(format!(
                "no padding can make it whole: {} − {} = {} is odd and the stride {} is even",
                axis.n,
                axis.kernel,
                axis.n as i64 - axis.kernel as i64,
                axis.stride
            ));
        } else {
            let options: Vec<String> = axis
                .fixing_paddings(if is_pool { axis.kernel / 2 } else { axis.kernel + axis.stride })
                .iter()
                .map(|&(p, out)| format!("{} → {out}", setting("padding", p, |o| o.pad)))
                .collect();
            if !options.is_empty() {
                fixes.push(format!("use {}", options.join(" or ")));
            }
        }
        let strides: Vec<String> =
            axis.fixing_strides().iter().map(|&(s, out)| format!("{} → {out}", setting("stride", s, |o| o.stride))).collect();
        if !strides.is_empty() {
            fixes.push(format!("use {}", strides.join(" or ")));
        }
        let inputs: Vec<String> = axis.fixing_inputs().iter().map(|(n, out)| format!("{n} (→ {out})")).collect();
        if !inputs.is_empty() {
            let how = if self.first { "change `input` in [network] to" } else { "change the layers before it to produce" };
            fixes.push(format!("{how} an input {which} of {}", inputs.join(" or ")));
        }
        if let Outcome::Fractional { floor, .. } = axis.outcome() {
            fixes.push(format!(
                "or floor it to {floor} as PyTorch and Keras do: add `rounding = \"floor\"` to this layer (or to [network])"
            ));
        }
        fixes
    }

    /// Parameter tensors (PyTorch layouts) and multiply-accumulates per image.
    fn costs(&self, op: &Op, output: Shape, errs: &mut Vec<Diagnostic>) -> (Vec<Param>, u64) {
        let params = op.params(self.input, output);
        let macs = match op {
            Op::Conv2d(conv) | Op::Local2d(conv) => prod(&[output.len(), self.input.chw().0, conv.kernel[0], conv.kernel[1]]),
            Op::Dense { units, .. } => prod(&[*units, self.input.len()]),
            _ => Some(0),
        };
        let sizes_ok = params.iter().all(|p| prod(&p.shape).is_some());
        match macs {
            Some(macs) if sizes_ok => (params, macs),
            _ => {
                errs.push(too_large(&format!("the weight of {}", self.what()), self.layer.span.clone()));
                (Vec::new(), 0)
            }
        }
    }
}

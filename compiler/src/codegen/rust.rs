//! The Rust backend: a checked graph and its plan become the tokens of a
//! network type — what `network!` expands to and `convc emit-rust` prints.
//!
//! Per stage it emits a type whose associated `const` is the stage's
//! geometry; the stage table names the runtime's multiversioned kernels
//! instantiated for that type (`conv_forward_for::<S0Conv1Pool1>`). The
//! instances are monomorphised in the user's crate: each is the runtime's
//! `#[inline(always)]` kernel with every size a constant — window, channel
//! and pooling loops with constant trip counts, which LLVM unrolls and
//! vectorises, and GEMMs of constant shape — compiled for AVX-512,
//! AVX2+FMA and the baseline and picked at run time. The source stays
//! small: constants and a table, no hand-unrolled bodies (unrolling whole
//! layers compiles slowly and runs slower; see docs/design.md).
//! Around them: the layer list (for initialisation and weight names), the
//! shape constants, typed entry points and the `Model` impl, all delegating
//! to the runtime's `compiled::Network`.
//!
//! Everything but the type itself sits in `const _: () = { … };`, so two
//! networks in one module never clash.

use convc_runtime::Activation;
use convc_runtime::compiled::PoolGeom;
use convc_runtime::layer::{Conv, LayerDef, Op, Pool, Shape};
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote};

use crate::graph::Graph;
use crate::plan::{Geometry, Plan, Stage, StageKind};

/// How the generated code names the runtime crate and the type.
pub struct RustOptions {
    /// A path to `convc_runtime`: `::convc::runtime`, `::convc_runtime`, …
    pub runtime: TokenStream,
    /// The type's name and visibility.
    pub type_name: Ident,
    pub vis: TokenStream,
    /// Where the spec came from, for the doc comment.
    pub source: String,
}

impl RustOptions {
    /// For a user of the `convc` crate: `pub struct <Name>` from the
    /// network's name (`lenet5` → `Lenet5`).
    pub fn for_graph(graph: &Graph, source: &str) -> Self {
        Self {
            runtime: quote!(::convc::runtime),
            type_name: Ident::new(&type_name_for(&graph.name), Span::call_site()),
            vis: quote!(pub),
            source: source.to_string(),
        }
    }
}

/// `lenet5` → `Lenet5`, `fashion_tf` → `FashionTf`; a leading digit gets
/// `Net` before it, and `self` (whose camel case `Self` is a keyword) after.
pub fn type_name_for(network: &str) -> String {
    let mut out = String::new();
    for part in network.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        out.extend(chars.next().map(|c| c.to_ascii_uppercase()));
        out.push_str(chars.as_str());
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "Net");
    }
    if out == "Self" {
        out.push_str("Net");
    }
    out
}

fn lit(n: usize) -> Literal {
    Literal::usize_unsuffixed(n)
}

fn float(x: f32) -> Literal {
    Literal::f32_suffixed(x)
}

fn pair(p: [usize; 2]) -> TokenStream {
    let (a, b) = (lit(p[0]), lit(p[1]));
    quote!([#a, #b])
}

fn activation(a: Activation) -> TokenStream {
    match a {
        Activation::None => quote!(Activation::None),
        Activation::Relu => quote!(Activation::Relu),
        Activation::LeakyRelu { alpha } => {
            let alpha = float(alpha);
            quote!(Activation::LeakyRelu { alpha: #alpha })
        }
        Activation::Elu { alpha } => {
            let alpha = float(alpha);
            quote!(Activation::Elu { alpha: #alpha })
        }
        Activation::Sigmoid => quote!(Activation::Sigmoid),
        Activation::Tanh => quote!(Activation::Tanh),
    }
}

fn conv(c: &Conv) -> TokenStream {
    let (filters, kernel, stride, pad) = (lit(c.filters), pair(c.kernel), pair(c.stride), pair(c.pad));
    let (act, bias) = (activation(c.activation), c.bias);
    quote!(Conv { filters: #filters, kernel: #kernel, stride: #stride, pad: #pad, activation: #act, bias: #bias })
}

fn pool(p: &Pool) -> TokenStream {
    let kind = match p.kind {
        convc_runtime::PoolKind::Max => quote!(PoolKind::Max),
        convc_runtime::PoolKind::Avg => quote!(PoolKind::Avg),
        convc_runtime::PoolKind::L2 => quote!(PoolKind::L2),
    };
    let (size, stride, pad) = (pair(p.size), pair(p.stride), pair(p.pad));
    quote!(Pool { kind: #kind, size: #size, stride: #stride, pad: #pad })
}

fn shape(s: Shape) -> TokenStream {
    match s {
        Shape::Image { c, h, w } => {
            let (c, h, w) = (lit(c), lit(h), lit(w));
            quote!(Shape::Image { c: #c, h: #h, w: #w })
        }
        Shape::Flat(n) => {
            let n = lit(n);
            quote!(Shape::Flat(#n))
        }
    }
}

fn op(o: &Op) -> TokenStream {
    match o {
        Op::Conv2d(c) => {
            let c = conv(c);
            quote!(Op::Conv2d(#c))
        }
        Op::Local2d(c) => {
            let c = conv(c);
            quote!(Op::Local2d(#c))
        }
        Op::Pool(p) => {
            let p = pool(p);
            quote!(Op::Pool(#p))
        }
        Op::Flatten => quote!(Op::Flatten),
        Op::Dense { units, activation: a, bias } => {
            let (units, a) = (lit(*units), activation(*a));
            quote!(Op::Dense { units: #units, activation: #a, bias: #bias })
        }
        Op::Dropout { rate } => {
            let rate = float(*rate);
            quote!(Op::Dropout { rate: #rate })
        }
        Op::Activation(a) => {
            let a = activation(*a);
            quote!(Op::Activation(#a))
        }
        Op::Softmax => quote!(Op::Softmax),
    }
}

fn layer(def: &LayerDef) -> TokenStream {
    let (name, o, input, output) = (&def.name, op(&def.op), shape(def.input), shape(def.output));
    quote!(LayerDef { name: #name.to_string(), op: #o, input: #input, output: #output })
}

fn pool_geom(g: &PoolGeom) -> TokenStream {
    let (p, c, h, w, oh, ow) = (pool(&g.pool), lit(g.c), lit(g.h), lit(g.w), lit(g.oh), lit(g.ow));
    quote!(PoolGeom { pool: #p, c: #c, h: #h, w: #w, oh: #oh, ow: #ow })
}

/// A stage's type name: `S0Conv1Pool1`.
fn stage_type(index: usize, stage: &Stage) -> Ident {
    let name: String = stage.name.split(|c: char| !c.is_ascii_alphanumeric()).map(type_name_for).collect();
    format_ident!("S{index}{name}")
}

/// The type carrying one stage's geometry (if it has kernels) and its
/// entry in the stage table.
fn stage(index: usize, stage: &Stage) -> (TokenStream, TokenStream) {
    let ty = stage_type(index, stage);
    let doc = format!(" `{}`: {} → {}", stage.name, stage.input, stage.output);
    let declare = |trait_name: &str, geom_ty: &str, value: TokenStream| {
        let (trait_name, geom_ty) = (format_ident!("{trait_name}"), format_ident!("{geom_ty}"));
        quote! {
            #[doc = #doc]
            struct #ty;
            impl #trait_name for #ty {
                const GEOM: #geom_ty = #value;
            }
        }
    };
    let (item, kernels) = match (&stage.kind, stage.geometry()) {
        (_, Geometry::Conv(g)) => {
            let pool = match &g.pool {
                Some(p) => {
                    let p = pool_geom(p);
                    quote!(Some(#p))
                }
                None => quote!(None),
            };
            let (cv, local, a) = (conv(&g.conv), g.local, activation(g.activation));
            let (c, h, w, oh, ow) = (lit(g.c), lit(g.h), lit(g.w), lit(g.oh), lit(g.ow));
            let value = quote!(ConvGeom { conv: #cv, local: #local, activation: #a, c: #c, h: #h, w: #w, oh: #oh, ow: #ow, pool: #pool });
            (declare("ConvStage", "ConvGeom", value), quote!(StageKernels::conv::<#ty>()))
        }
        (_, Geometry::Pool(g)) => (declare("PoolStage", "PoolGeom", pool_geom(&g)), quote!(StageKernels::pool::<#ty>())),
        (_, Geometry::Dense(g)) => {
            let (inputs, units, a, bias) = (lit(g.inputs), lit(g.units), activation(g.activation), g.bias);
            let value = quote!(DenseGeom { inputs: #inputs, units: #units, activation: #a, bias: #bias });
            (declare("DenseStage", "DenseGeom", value), quote!(StageKernels::dense::<#ty>()))
        }
        (StageKind::Activation(a), _) => {
            let a = activation(*a);
            (quote!(), quote!(StageKernels::Activation(#a)))
        }
        (StageKind::Dropout { rate }, _) => {
            let rate = float(*rate);
            (quote!(), quote!(StageKernels::Dropout { rate: #rate }))
        }
        _ => (quote!(), quote!(StageKernels::Reshape)),
    };
    let name = &stage.name;
    let first = lit(stage.layers[0]);
    let param_layer = match stage.param_layer {
        Some(l) => {
            let l = lit(l);
            quote!(Some(#l))
        }
        None => quote!(None),
    };
    let (input_len, output_len) = (lit(stage.input.len()), lit(stage.output.len()));
    let entry = quote! {
        StageDef { name: #name.to_string(), first_layer: #first, param_layer: #param_layer, input_len: #input_len, output_len: #output_len, kernels: #kernels }
    };
    (item, entry)
}

/// The tokens of the network type for `graph`, fused as the plan says.
pub fn network(graph: &Graph, plan: &Plan, opts: &RustOptions) -> TokenStream {
    let RustOptions { runtime: rt, type_name: ty, vis, source } = opts;
    let (items, entries): (Vec<_>, Vec<_>) = plan.stages.iter().enumerate().map(|(i, s)| stage(i, s)).unzip();
    let layers: Vec<TokenStream> = plan.layers.iter().map(layer).collect();
    let (c, h, w) = graph.input.chw();
    let (input_len, classes) = (graph.input.len(), graph.classes());
    let params = graph.param_count() as usize;
    let input_shape = shape(graph.input);
    let name = &graph.name;
    let mut doc = vec![
        format!(" The network `{name}` compiled by convc from `{source}`: input {}, {classes} classes, {params} parameters.", graph.input),
        String::new(),
        " Stages (conv + activation + pool fused):".to_string(),
    ];
    doc.extend(plan.stages.iter().map(|s| format!(" - `{}`: {} → {}", s.name, s.input, s.output)));
    let (c, h, w, input_len, classes, params) = (lit(c), lit(h), lit(w), lit(input_len), lit(classes), lit(params));
    quote! {
        #(#[doc = #doc])*
        #vis struct #ty {
            net: #rt::compiled::Network,
        }

        const _: () = {
            use #rt::compiled::*;
            use #rt::layer::{Conv, LayerDef, Op, Pool, Shape};
            use #rt::{Activation, Mode, Model, ModelError, ParamMut, ParamRef, PoolKind};

            #(#items)*

            /// The plan's stages, each with its specialised kernels.
            fn stages() -> Vec<StageDef> {
                Vec::from([#(#entries),*])
            }

            // A crate uses what it needs of these; the rest is not a warning.
            #[allow(dead_code)]
            impl #ty {
                pub const NAME: &'static str = #name;
                /// Input channels, height and width.
                pub const C: usize = #c;
                pub const H: usize = #h;
                pub const W: usize = #w;
                /// Values per input image: `C·H·W`.
                pub const INPUT_LEN: usize = #input_len;
                pub const CLASSES: usize = #classes;
                /// Learnable values.
                pub const PARAMS: usize = #params;

                /// The layers, with their shapes (parameter names and layouts
                /// follow from them).
                pub fn layers() -> Vec<LayerDef> {
                    vec![#(#layers),*]
                }

                /// A network initialised from `seed` (the same weights every
                /// convc backend draws), running on every core.
                pub fn new(seed: u64) -> Self {
                    Self { net: Network::new(Self::NAME, #input_shape, &Self::layers(), stages(), seed, available_threads()) }
                }

                /// A network with the weights of a safetensors file (PyTorch layout).
                pub fn load(path: impl AsRef<::std::path::Path>) -> Result<Self, #rt::train::weights::WeightsError> {
                    let mut net = Self::new(0);
                    #rt::train::weights::load_model(&mut net, path.as_ref())?;
                    Ok(net)
                }

                /// Write the weights as safetensors (PyTorch layout), atomically.
                pub fn save(&self, path: impl AsRef<::std::path::Path>) -> Result<(), #rt::train::weights::WeightsError> {
                    #rt::train::weights::save_model(self, path.as_ref())
                }

                /// Logits of one image.
                pub fn predict(&mut self, image: &[f32; #input_len]) -> [f32; #classes] {
                    predict(&mut self.net, image)
                }

                /// Logits of a batch of images, one row per image.
                pub fn predict_batch(&mut self, images: &[[f32; #input_len]]) -> Vec<[f32; #classes]> {
                    predict_batch(&mut self.net, images)
                }

                /// One training step on a batch: forward (dropout drawn from
                /// `seed`), softmax cross-entropy against `labels`, backward and
                /// the optimizer's update (skipped when the loss is not finite).
                pub fn train_step(
                    &mut self,
                    images: &[[f32; #input_len]],
                    labels: &[u8],
                    optimizer: &mut #rt::train::optim::Optimizer,
                    seed: u64,
                ) -> Result<#rt::train::Step, ModelError> {
                    #rt::train::step(self, optimizer, images.as_flattened(), labels, seed)
                }

                /// Threads a batch is split over (default: every core).
                pub fn set_threads(&mut self, threads: usize) {
                    self.net.set_threads(threads);
                }

                /// The threads a batch is split over.
                pub fn threads(&self) -> usize {
                    self.net.threads()
                }

                /// The fused stages, e.g. `conv1+act1+pool1`.
                pub fn stages(&self) -> Vec<&str> {
                    self.net.stage_names()
                }
            }

            impl Model for #ty {
                fn name(&self) -> &str {
                    self.net.name()
                }
                fn input_shape(&self) -> Shape {
                    self.net.input_shape()
                }
                fn classes(&self) -> usize {
                    Self::CLASSES
                }
                fn forward(&mut self, input: &[f32], batch: usize, mode: Mode) -> Result<&[f32], ModelError> {
                    self.net.forward(input, batch, mode)
                }
                fn backward(&mut self, grad_logits: &[f32]) -> Result<(), ModelError> {
                    self.net.backward(grad_logits)
                }
                fn input_grad(&self) -> &[f32] {
                    self.net.input_grad()
                }
                fn want_input_grad(&mut self, wanted: bool) {
                    self.net.want_input_grad(wanted)
                }
                fn params(&self) -> Vec<ParamRef<'_>> {
                    self.net.params()
                }
                fn params_mut(&mut self) -> Vec<ParamMut<'_>> {
                    self.net.params_mut()
                }
            }
        };
    }
}

/// The generated code as formatted source (what `convc emit-rust` writes).
#[cfg(feature = "cli")]
pub fn format(tokens: TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        // Unreachable for code this module generates; keep the raw tokens
        // rather than lose them.
        Err(_) => tokens.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::type_name_for;

    #[test]
    fn type_names_are_camel_case_identifiers() {
        assert_eq!(type_name_for("lenet5"), "Lenet5");
        assert_eq!(type_name_for("fashion_tf"), "FashionTf");
        assert_eq!(type_name_for("vgg-16"), "Vgg16");
        assert_eq!(type_name_for("3layers"), "Net3layers");
        assert_eq!(type_name_for(""), "Net");
        assert_eq!(type_name_for("self"), "SelfNet");
    }

    /// Whatever a spec names its network, the type name is a Rust
    /// identifier that is not a keyword (`syn` refuses keywords as `Ident`).
    #[cfg(feature = "cli")]
    #[test]
    fn every_network_name_makes_a_valid_type_name() {
        for name in ["self", "Self", "SELF", "self_", "super", "crate", "_", "__", "9", "a b", "ü", "été", "r#type", "type", "fn", "-"] {
            let t = type_name_for(name);
            assert!(syn::parse_str::<syn::Ident>(&t).is_ok(), "{name:?} → {t:?}");
        }
    }
}

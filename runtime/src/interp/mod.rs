//! The interpreter: every layer run by plain, runtime-shaped code. It is
//! the reference each compiled backend is tested against and the baseline
//! each benchmark is measured against, so it favours being obviously right.

pub(crate) mod conv;
mod dense;
mod pool;

pub use dense::dot;

use crate::elementwise;
use crate::init;
use crate::layer::{LayerDef, Op, Shape};
use crate::model::{Mode, Model, ModelError, ParamMut, ParamRef, check_input, expect_len};

/// A parameter tensor and its gradient.
#[derive(Debug, Clone)]
pub struct Param {
    /// `<layer>.weight` or `<layer>.bias`.
    pub name: String,
    pub shape: Vec<usize>,
    pub value: Vec<f32>,
    pub grad: Vec<f32>,
}

#[derive(Debug, Clone)]
struct Layer {
    def: LayerDef,
    params: Vec<Param>,
    /// Max pooling: input offset of each output's maximum.
    argmax: Vec<u32>,
    /// Dropout: 0 or 1/(1 − rate) per value of the batch.
    mask: Vec<f32>,
}

impl Layer {
    fn weight(&self) -> &[f32] {
        &self.params[0].value
    }

    fn bias(&self) -> Option<&[f32]> {
        self.params.get(1).map(|p| p.value.as_slice())
    }
}

#[derive(Debug, Clone)]
pub struct Interpreter {
    name: String,
    input: Shape,
    layers: Vec<Layer>,
    batch: usize,
    /// `acts[0]` is the input, `acts[i + 1]` the output of layer `i`.
    acts: Vec<Vec<f32>>,
    input_grad: Vec<f32>,
    /// Whether `acts` hold a training forward that backward may use.
    trained: bool,
}

impl Interpreter {
    /// A network of `layers` with parameters initialised from `seed` (see
    /// [`init::initial_params`]).
    pub fn new(name: impl Into<String>, input: Shape, layers: &[LayerDef], seed: u64) -> Self {
        let mut values = init::initial_params(layers, seed).into_iter();
        let layers: Vec<Layer> = layers
            .iter()
            .map(|def| {
                let params = def
                    .op
                    .params(def.input, def.output)
                    .into_iter()
                    .map(|shape| {
                        let value = values.next().expect("one initial value per parameter").value;
                        Param { name: format!("{}.{}", def.name, shape.name), grad: vec![0.0; value.len()], shape: shape.shape, value }
                    })
                    .collect();
                Layer { def: def.clone(), params, argmax: Vec::new(), mask: Vec::new() }
            })
            .collect();
        let acts = vec![Vec::new(); layers.len() + 1];
        Self { name: name.into(), input, layers, batch: 0, acts, input_grad: Vec::new(), trained: false }
    }

    /// Each layer's output of the last forward (`batch × output` values),
    /// in layer order: what `convc show` draws as feature maps.
    pub fn outputs(&self) -> impl Iterator<Item = &[f32]> {
        self.acts.iter().skip(1).map(Vec::as_slice)
    }

    pub fn layers(&self) -> impl Iterator<Item = &LayerDef> {
        self.layers.iter().map(|l| &l.def)
    }
}

impl Model for Interpreter {
    fn name(&self) -> &str {
        &self.name
    }

    fn input_shape(&self) -> Shape {
        self.input
    }

    fn classes(&self) -> usize {
        self.layers.last().map_or(self.input.len(), |l| l.def.output.len())
    }

    fn forward(&mut self, input: &[f32], batch: usize, mode: Mode) -> Result<&[f32], ModelError> {
        check_input(input, batch, self.input)?;
        self.batch = batch;
        self.acts[0].clear();
        self.acts[0].extend_from_slice(input);
        for (index, layer) in self.layers.iter_mut().enumerate() {
            let (before, after) = self.acts.split_at_mut(index + 1);
            let x = &before[index];
            let y = &mut after[0];
            y.clear();
            y.resize(batch * layer.def.output.len(), 0.0);
            forward_layer(layer, index, batch, mode, x, y);
        }
        self.trained = matches!(mode, Mode::Train { .. });
        Ok(self.acts.last().expect("acts has the input at least"))
    }

    fn backward(&mut self, grad_logits: &[f32]) -> Result<(), ModelError> {
        if !self.trained {
            return Err(ModelError::NoTrainingForward);
        }
        expect_len("grad_logits", grad_logits.len(), self.batch * self.classes())?;
        let mut g = grad_logits.to_vec();
        for (index, layer) in self.layers.iter_mut().enumerate().rev() {
            for p in &mut layer.params {
                p.grad.fill(0.0);
            }
            let x = &self.acts[index];
            let y = &self.acts[index + 1];
            g = backward_layer(layer, self.batch, x, y, &g);
        }
        self.input_grad = g;
        Ok(())
    }

    fn input_grad(&self) -> &[f32] {
        &self.input_grad
    }

    fn params(&self) -> Vec<ParamRef<'_>> {
        self.layers.iter().flat_map(|l| &l.params).map(|p| ParamRef { name: &p.name, shape: &p.shape, value: &p.value }).collect()
    }

    fn params_mut(&mut self) -> Vec<ParamMut<'_>> {
        self.layers
            .iter_mut()
            .flat_map(|l| &mut l.params)
            .map(|p| ParamMut { name: &p.name, shape: &p.shape, value: &mut p.value, grad: &p.grad })
            .collect()
    }
}

fn conv_dims(def: &LayerDef, filters: usize) -> conv::Dims {
    let (c, h, w) = def.input.chw();
    let (_, oh, ow) = def.output.chw();
    conv::Dims { c, h, w, f: filters, oh, ow }
}

fn pool_dims(def: &LayerDef) -> pool::Dims {
    let (c, h, w) = def.input.chw();
    let (_, oh, ow) = def.output.chw();
    pool::Dims { c, h, w, oh, ow }
}

fn forward_layer(layer: &mut Layer, index: usize, batch: usize, mode: Mode, x: &[f32], y: &mut [f32]) {
    let (in_len, out_len) = (layer.def.input.len(), layer.def.output.len());
    match &layer.def.op {
        Op::Conv2d(c) | Op::Local2d(c) => {
            let local = matches!(layer.def.op, Op::Local2d(_));
            let d = conv_dims(&layer.def, c.filters);
            for (xb, yb) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)) {
                conv::forward(c, d, local, layer.weight(), layer.bias(), xb, yb);
            }
        }
        Op::Pool(p) => {
            let d = pool_dims(&layer.def);
            layer.argmax.resize(batch * out_len, 0);
            for ((xb, yb), ab) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)).zip(layer.argmax.chunks_exact_mut(out_len)) {
                pool::forward(p, d, xb, yb, ab);
            }
        }
        Op::Dense { units, activation, .. } => {
            dense::forward(in_len, *units, *activation, layer.weight(), layer.bias(), x, y);
        }
        Op::Dropout { rate } => match mode {
            Mode::Infer => y.copy_from_slice(x),
            Mode::Train { seed } => {
                elementwise::dropout_mask(seed, index, *rate, x.len(), &mut layer.mask);
                elementwise::apply_mask(x, &layer.mask, y);
            }
        },
        Op::Activation(a) => elementwise::activation_forward(*a, x, y),
        Op::Flatten | Op::Softmax => y.copy_from_slice(x),
    }
}

/// The gradient at the layer's input, given the gradient `g` at its output;
/// sets the layer's parameter gradients.
fn backward_layer(layer: &mut Layer, batch: usize, x: &[f32], y: &[f32], g: &[f32]) -> Vec<f32> {
    let (in_len, out_len) = (layer.def.input.len(), layer.def.output.len());
    let mut dx = vec![0.0; batch * in_len];
    let through_activation =
        |a: crate::ops::Activation| -> Vec<f32> { g.iter().zip(y).map(|(g, y)| g * a.derivative_at_output(*y)).collect() };
    match &layer.def.op {
        Op::Conv2d(c) | Op::Local2d(c) => {
            let local = matches!(layer.def.op, Op::Local2d(_));
            let d = conv_dims(&layer.def, c.filters);
            let dz = through_activation(c.activation);
            let (w, rest) = layer.params.split_first_mut().expect("conv has a weight");
            let mut gb = rest.first_mut().map(|b| b.grad.as_mut_slice());
            for ((xb, dzb), dxb) in x.chunks_exact(in_len).zip(dz.chunks_exact(out_len)).zip(dx.chunks_exact_mut(in_len)) {
                conv::backward(c, d, local, &w.value, xb, dzb, &mut w.grad, gb.as_deref_mut(), dxb);
            }
        }
        Op::Pool(p) => {
            let d = pool_dims(&layer.def);
            let chunks = x.chunks_exact(in_len).zip(y.chunks_exact(out_len)).zip(layer.argmax.chunks_exact(out_len));
            for (((xb, yb), ab), (gb, dxb)) in chunks.zip(g.chunks_exact(out_len).zip(dx.chunks_exact_mut(in_len))) {
                pool::backward(p, d, xb, yb, ab, gb, dxb);
            }
        }
        Op::Dense { units, activation, .. } => {
            let dz = through_activation(*activation);
            let (w, rest) = layer.params.split_first_mut().expect("dense has a weight");
            let gb = rest.first_mut().map(|b| b.grad.as_mut_slice());
            dense::backward(in_len, *units, &w.value, x, &dz, &mut w.grad, gb, &mut dx);
        }
        Op::Dropout { .. } => elementwise::apply_mask(g, &layer.mask, &mut dx),
        Op::Activation(a) => elementwise::activation_backward(*a, g, y, &mut dx),
        Op::Flatten | Op::Softmax => dx.copy_from_slice(g),
    }
    dx
}

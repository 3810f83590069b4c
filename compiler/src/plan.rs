//! The plan: the graph cut into stages, each run as one kernel. It is shared
//! by every compiling backend (the Cranelift JIT now, generated Rust later),
//! so fusion is decided once, here.
//!
//! Fusion: a conv2d/local2d layer, its activation (its own, or a following
//! stand-alone activation layer when it has none) and a following pooling
//! layer become one `Conv` stage. In inference the conv output before the
//! pool lives only in a per-image scratch plane. In training the stage keeps
//! what backward needs and no more:
//! - max pooling: the pooled outputs and the position of each maximum
//!   (the activation's derivative at the maximum is taken from the pooled
//!   output, since every activation is monotone);
//! - average and L2 pooling: the activated conv output (both need every
//!   value of the window);
//! - no pooling: the stage's output.
//!
//! Dense layers take their activation along. Flatten and softmax move no
//! data (the models return the logits before softmax).

use convc_runtime::Activation;
use convc_runtime::compiled::{ConvGeom, DenseGeom, PoolGeom};
use convc_runtime::layer::{Conv, LayerDef, Op, Pool, Shape};

use crate::graph::Graph;

#[derive(Debug, Clone, PartialEq)]
pub enum StageKind {
    Conv {
        conv: Conv,
        local: bool,
        /// The activation applied to the conv output (the conv's own, or a
        /// fused stand-alone activation layer's).
        activation: Activation,
        pool: Option<Pool>,
        /// Shape of the conv output, before pooling.
        conv_out: Shape,
    },
    Pool(Pool),
    Dense {
        units: usize,
        activation: Activation,
        bias: bool,
    },
    Activation(Activation),
    Dropout {
        rate: f32,
    },
    /// Flatten and softmax: the data stays as it is.
    Reshape,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The layers it runs, e.g. `conv1+act1+pool1`.
    pub name: String,
    /// Indices of those layers in the graph.
    pub layers: Vec<usize>,
    /// The layer whose parameters the stage uses (conv or dense).
    pub param_layer: Option<usize>,
    pub kind: StageKind,
    pub input: Shape,
    pub output: Shape,
}

impl Stage {
    pub fn is_fused(&self) -> bool {
        self.layers.len() > 1
    }

    /// The sizes this stage's kernels are specialised to, in the runtime's
    /// terms (generated Rust spells them out as constants; the JIT compiles
    /// them into its code).
    pub fn geometry(&self) -> Geometry {
        match &self.kind {
            StageKind::Conv { conv, local, activation, pool, conv_out } => {
                let (c, h, w) = self.input.chw();
                let (f, oh, ow) = conv_out.chw();
                let pool = pool.map(|p| pool_geom(p, (f, oh, ow), self.output));
                Geometry::Conv(ConvGeom { conv: *conv, local: *local, activation: *activation, c, h, w, oh, ow, pool })
            }
            StageKind::Pool(p) => Geometry::Pool(pool_geom(*p, self.input.chw(), self.output)),
            StageKind::Dense { units, activation, bias } => {
                Geometry::Dense(DenseGeom { inputs: self.input.len(), units: *units, activation: *activation, bias: *bias })
            }
            StageKind::Activation(_) | StageKind::Dropout { .. } | StageKind::Reshape => Geometry::None,
        }
    }
}

/// A stage's geometry (see [`Stage::geometry`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Geometry {
    Conv(ConvGeom),
    Pool(PoolGeom),
    Dense(DenseGeom),
    /// Element-wise stages: no sizes beyond their length.
    None,
}

/// `pool` over planes of `c × h × w`, pooled to `out`.
fn pool_geom(pool: Pool, (c, h, w): (usize, usize, usize), out: Shape) -> PoolGeom {
    let (_, oh, ow) = out.chw();
    PoolGeom { pool, c, h, w, oh, ow }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub layers: Vec<LayerDef>,
    pub stages: Vec<Stage>,
}

impl Plan {
    /// Fuse as described in the module docs. `fuse = false` gives one stage
    /// per layer (to measure what fusion buys).
    pub fn new(graph: &Graph, fuse: bool) -> Self {
        let layers = graph.layer_defs();
        let mut stages = Vec::new();
        let mut i = 0;
        while i < layers.len() {
            let def = &layers[i];
            let mut taken = vec![i];
            let kind = match &def.op {
                Op::Conv2d(conv) | Op::Local2d(conv) => {
                    let mut activation = conv.activation;
                    if fuse
                        && activation == Activation::None
                        && let Some(Op::Activation(a)) = layers.get(i + 1).map(|l| &l.op)
                    {
                        activation = *a;
                        taken.push(i + 1);
                    }
                    let mut pool = None;
                    if fuse && let Some(Op::Pool(p)) = layers.get(taken.len() + i).map(|l| &l.op) {
                        pool = Some(*p);
                        taken.push(i + taken.len());
                    }
                    StageKind::Conv { conv: *conv, local: matches!(def.op, Op::Local2d(_)), activation, pool, conv_out: def.output }
                }
                Op::Pool(p) => StageKind::Pool(*p),
                Op::Dense { units, activation, bias } => StageKind::Dense { units: *units, activation: *activation, bias: *bias },
                Op::Activation(a) => StageKind::Activation(*a),
                Op::Dropout { rate } => StageKind::Dropout { rate: *rate },
                Op::Flatten | Op::Softmax => StageKind::Reshape,
            };
            let last = *taken.last().expect("at least one layer");
            let param_layer = matches!(def.op, Op::Conv2d(_) | Op::Local2d(_) | Op::Dense { .. }).then_some(i);
            stages.push(Stage {
                name: taken.iter().map(|&k| layers[k].name.as_str()).collect::<Vec<_>>().join("+"),
                layers: taken.clone(),
                param_layer,
                kind,
                input: def.input,
                output: layers[last].output,
            });
            i = last + 1;
        }
        Plan { layers, stages }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SourceFile, check_source};

    #[test]
    fn conv_activation_and_pool_fuse() {
        let spec = r#"
            [network]
            input = [1, 8, 8]
            [[layer]]
            type = "conv2d"
            filters = 2
            kernel = 3
            padding = 1
            [[layer]]
            type = "relu"
            [[layer]]
            type = "max_pool"
            size = 2
            [[layer]]
            type = "conv2d"
            filters = 2
            kernel = 3
            activation = "tanh"
            [[layer]]
            type = "flatten"
            [[layer]]
            type = "dense"
            units = 3
        "#;
        let graph = check_source(&SourceFile::new("t.toml", spec)).unwrap();
        let plan = Plan::new(&graph, true);
        let names: Vec<&str> = plan.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["conv1+act1+pool1", "conv2", "flatten1", "dense1"]);
        let StageKind::Conv { activation, pool, conv_out, .. } = &plan.stages[0].kind else { panic!() };
        assert_eq!(*activation, Activation::Relu);
        assert!(pool.is_some());
        assert_eq!(*conv_out, Shape::Image { c: 2, h: 8, w: 8 });
        assert_eq!(plan.stages[0].output, Shape::Image { c: 2, h: 4, w: 4 });
        assert_eq!(plan.stages[1].input, Shape::Image { c: 2, h: 4, w: 4 });

        let unfused = Plan::new(&graph, false);
        assert_eq!(unfused.stages.len(), graph.nodes.len());
    }
}

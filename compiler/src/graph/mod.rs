//! The checked network: layers with resolved geometry, their inputs (a DAG,
//! though specs are sequential for now), and every output shape, parameter
//! and cost. Backends read shapes from here and never re-derive them.

pub mod geometry;
mod infer;

pub use infer::{check, check_source, from_spec, read_source};

pub use convc_runtime::layer::{Conv, LayerDef, Op, ParamShape as Param, Pool, Shape};
use serde::Serialize;

use crate::diag::Span;
use crate::spec::TrainingSpec;

/// Where a node reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The network's input.
    Input,
    /// The output of the node with this index.
    Node(usize),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<Source>,
    /// Shape of the (single, for now) input.
    pub input_shape: Shape,
    pub output: Shape,
    pub params: Vec<Param>,
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// The layer's table in the spec.
    pub span: Span,
}

impl Node {
    pub fn param_count(&self) -> u64 {
        self.params.iter().map(|p| p.len() as u64).sum()
    }
}

/// A checked network.
#[derive(Debug, Clone)]
pub struct Graph {
    pub name: String,
    pub input: Shape,
    /// In topological order; the last node is the output.
    pub nodes: Vec<Node>,
    pub training: TrainingSpec,
}

impl Graph {
    pub fn output(&self) -> Shape {
        self.nodes.last().map_or(self.input, |n| n.output)
    }

    /// Number of classes: the length of the output vector.
    pub fn classes(&self) -> usize {
        self.output().len()
    }

    pub fn param_count(&self) -> u64 {
        self.nodes.iter().map(Node::param_count).sum()
    }

    pub fn macs(&self) -> u64 {
        self.nodes.iter().map(|n| n.macs).sum()
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The layers as the runtime builds them.
    pub fn layer_defs(&self) -> Vec<LayerDef> {
        self.nodes.iter().map(|n| LayerDef { name: n.name.clone(), op: n.op.clone(), input: n.input_shape, output: n.output }).collect()
    }
}

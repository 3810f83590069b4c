//! The stage kernels of compiled networks, written once and specialised per
//! stage: each is `#[inline(always)]` and takes its geometry by reference to
//! a `const`, so when generated code calls it from a function compiled for
//! AVX-512, AVX2+FMA or the baseline (see `conv_forward_for` in the parent module), every
//! size is a constant there: the kernel-window, channel and pooling loops
//! have constant trip counts (LLVM unrolls and vectorises them) and the
//! GEMM calls have constant shapes. im2col, col2im, the 2×2 max pool and
//! its gradient are the exception: they call [`crate::kernels::im2col`], explicit
//! AVX-512 that the JIT shares (LLVM had unrolled, not vectorised, the
//! constant-width pool).
//!
//! A conv stage runs per image: im2col (skipped for 1×1 stride-1 convs),
//! one GEMM `Z = W·cols` over weights packed once per change of the weights
//! (bias and ReLU applied in registers before the store) — or, for wide 5×5
//! stride-1 convs, a Winograd conv ([`crate::kernels::winograd`], its input and
//! weight gradients likewise in backward), or for convs over few input
//! channels a direct conv ([`crate::kernels::direct`], in inference with a 2×2 max
//! pool fused in registers) — then the rest of
//! the epilogue — other activations and pooling — while the plane is still
//! in cache. With a pool,
//! the pre-pool plane lives only in per-thread scratch. Training keeps:
//! max pooling → the argmax of each output (the activation's derivative is
//! read from the pooled output, every activation being monotone); average
//! and L2 pooling → the activated plane; no pooling → nothing beyond the
//! output. Local (unshared) layers use the interpreter's loops inside the
//! same epilogue.

use crate::interp::conv as local;
use crate::kernels::direct;
use crate::kernels::filter_lanes;
use crate::kernels::gemm::{PackedA, gemm_abt, gemm_packed, gemm_rows, gemv_on, reads_rows_in_place, transpose};
use crate::kernels::im2col::{self as rows, Im2col};
use crate::kernels::pool;
use crate::kernels::winograd::{self, Winograd};
use crate::layer::{Conv, Pool};
use crate::ops::{Activation, PoolKind};

/// A conv or local layer with its stage's activation and optional pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvGeom {
    /// Filters, kernel, stride and padding (its `activation` is not used:
    /// the stage's is `activation`).
    pub conv: Conv,
    pub local: bool,
    pub activation: Activation,
    /// Input channels and size.
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Conv output size, before pooling.
    pub oh: usize,
    pub ow: usize,
    /// The fused pool over the conv's output planes.
    pub pool: Option<PoolGeom>,
}

impl ConvGeom {
    pub const fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Rows of the im2col matrix: input channels × kernel taps.
    pub const fn taps(&self) -> usize {
        self.c * self.conv.kernel[0] * self.conv.kernel[1]
    }

    pub const fn plane(&self) -> usize {
        self.oh * self.ow
    }

    /// Conv output per image, before pooling.
    pub const fn conv_len(&self) -> usize {
        self.conv.filters * self.plane()
    }

    /// Stage output per image.
    pub const fn out_len(&self) -> usize {
        match &self.pool {
            Some(p) => p.out_len(),
            None => self.conv_len(),
        }
    }

    /// Training state kept per image: the activated conv output for average
    /// and L2 pooling, nothing otherwise.
    pub const fn keep_len(&self) -> usize {
        match &self.pool {
            Some(p) if !matches!(p.pool.kind, PoolKind::Max) => self.conv_len(),
            _ => 0,
        }
    }

    /// A 1×1, stride-1, unpadded conv: the input already is its im2col matrix.
    pub const fn pointwise(&self) -> bool {
        let c = &self.conv;
        !self.local && c.kernel[0] == 1 && c.kernel[1] == 1 && c.stride[0] == 1 && c.stride[1] == 1 && c.pad[0] == 0 && c.pad[1] == 0
    }

    /// What im2col reads and writes.
    pub const fn im2col(&self) -> Im2col {
        let c = &self.conv;
        Im2col { c: self.c, h: self.h, w: self.w, kernel: c.kernel, stride: c.stride, pad: c.pad, oh: self.oh, ow: self.ow }
    }

    /// This conv as a Winograd F(4×4, 5×5) conv, when it runs as one here
    /// ([`winograd::applies`]): forward over the filters' transform, the
    /// input gradient over the [`Winograd::adjoint`]'s.
    pub fn winograd(&self) -> Option<Winograd> {
        let c = &self.conv;
        let d = Winograd { c: self.c, h: self.h, w: self.w, pad: c.pad, filters: c.filters, oh: self.oh, ow: self.ow };
        (!self.local && winograd::applies(c.kernel, c.stride, &d)).then_some(d)
    }

    /// This conv run directly ([`direct::applies`]: few input channels,
    /// wide rows), not as im2col and a GEMM; its weight packed as for the GEMM.
    pub fn direct(&self) -> Option<Im2col> {
        let d = self.im2col();
        (!self.local && self.winograd().is_none() && direct::applies(&d)).then_some(d)
    }

    /// This conv's weight gradient summed with the filters in the lanes
    /// ([`filter_lanes::applies`]), when it would otherwise run as im2row
    /// and a GEMM: the sums in the stage's scratch, image after image, then
    /// [`filter_lanes::weight_grad_finish`].
    pub fn filter_lanes(&self) -> Option<Im2col> {
        let d = self.im2col();
        (!self.local && !self.pointwise() && self.winograd().is_none() && !direct::applies(&d) && filter_lanes::applies(&d)).then_some(d)
    }

    /// This conv run forward with the filters in the lanes
    /// ([`filter_lanes::forward_applies`]), its weight packed as the
    /// input gradient reads it.
    pub fn lanes_forward(&self) -> Option<Im2col> {
        self.filter_lanes().filter(filter_lanes::forward_applies)
    }

    /// This conv when its weight is packed for [`filter_lanes`] (taps ×
    /// filters): for the input gradient (`backward`) whenever
    /// [`Self::filter_lanes`] holds, for the forward with [`Self::lanes_forward`].
    pub fn lanes_packed(&self, backward: bool) -> Option<Im2col> {
        if backward { self.filter_lanes() } else { self.lanes_forward() }
    }

    /// Rows × depth of the weight as packed for the forward GEMM(s), or
    /// with `backward` for the input gradient's: the weight matrix (or its
    /// transpose, or for [`Self::filter_lanes`] its taps' rows of filters),
    /// or a Winograd conv's filter transforms.
    pub fn packed_len(&self, backward: bool) -> usize {
        match (self.winograd(), self.lanes_packed(backward)) {
            (Some(d), _) => {
                let (rows, cols) = if backward { d.adjoint() } else { d }.u_shape();
                rows * cols
            }
            (None, Some(d)) if backward => filter_lanes::grad_len(&d, self.conv.filters),
            (None, Some(d)) => filter_lanes::forward_len(&d, self.conv.filters),
            (None, None) => match self.direct() {
                Some(d) if !backward => direct::forward_len(&d, self.conv.filters),
                _ => self.conv.filters * self.taps(),
            },
        }
    }

    fn dims(&self) -> local::Dims {
        local::Dims { c: self.c, h: self.h, w: self.w, f: self.conv.filters, oh: self.oh, ow: self.ow }
    }
}

/// A pooling layer over `c` planes of `h × w`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolGeom {
    pub pool: Pool,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
}

impl PoolGeom {
    pub const fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }

    pub const fn out_len(&self) -> usize {
        self.c * self.oh * self.ow
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenseGeom {
    pub inputs: usize,
    pub units: usize,
    pub activation: Activation,
    pub bias: bool,
}

/// What one thread owns while it runs a stage. The kernels here use the
/// buffers as named; the JIT's kernels use them as they need (each stage
/// has its own scratch per thread).
#[derive(Debug, Default)]
pub struct Scratch {
    /// The zero-bordered copy of an image im2col reads (only its interior
    /// is ever written, so its borders stay zero).
    pub xpad: Vec<f32>,
    pub cols: Vec<f32>,
    pub plane: Vec<f32>,
    pub dcols: Vec<f32>,
    /// A Winograd conv's weight gradient in the transform domain, summed
    /// over the chunk's images.
    pub wgrad: Vec<f32>,
}

/// `buf` resized to `len` (contents unspecified).
#[inline(always)]
fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() != len {
        buf.resize(len, 0.0);
    }
    buf
}

pub struct ConvForward<'a> {
    /// A chunk of whole input images.
    pub x: &'a [f32],
    pub weight: &'a [f32],
    /// The weight packed for the forward GEMM (`filters × taps`); unused by
    /// local layers.
    pub packed: &'a PackedA,
    /// Empty when the layer has no bias.
    pub bias: &'a [f32],
    pub y: &'a mut [f32],
    /// `keep_len()` per image in training, else empty.
    pub keep: &'a mut [f32],
    /// One per output of a max-pooled stage in training, else empty.
    pub argmax: &'a mut [u32],
    pub scratch: &'a mut Scratch,
}

pub struct ConvBackward<'a> {
    /// The training forward's input, output and kept state.
    pub x: &'a [f32],
    pub y: &'a [f32],
    pub keep: &'a [f32],
    pub argmax: &'a [u32],
    pub weight: &'a [f32],
    /// The weight's transpose packed for the input-gradient GEMM
    /// (`taps × filters`); unused by local layers.
    pub packed_t: &'a PackedA,
    /// Gradient at the stage output.
    pub dy: &'a [f32],
    /// Gradient at the stage input (written); empty when not wanted.
    pub dx: &'a mut [f32],
    /// Parameter gradients: written with the sums over the chunk (the
    /// kernel zeroes or overwrites them; nothing is accumulated across calls).
    pub gw: &'a mut [f32],
    pub gb: &'a mut [f32],
    pub scratch: &'a mut Scratch,
}

/// [`rows::im2col`] of one image, `xpad` sized (zeroed) on first use: only
/// its interior is ever written, so its borders stay zero.
#[inline(always)]
fn im2col(g: &ConvGeom, x: &[f32], xpad: &mut Vec<f32>, cols: &mut [f32]) {
    rows::im2col(&g.im2col(), x, sized_xpad(g, xpad), cols);
}

/// `xpad` sized for stage `g`, zeroed when (re)sized.
#[inline(always)]
fn sized_xpad<'a>(g: &ConvGeom, xpad: &'a mut Vec<f32>) -> &'a mut [f32] {
    let len = g.im2col().xpad_len();
    if xpad.len() != len {
        xpad.clear();
        xpad.resize(len, 0.0);
    }
    xpad
}

#[inline(always)]
fn activate(a: Activation, v: &mut [f32]) {
    for v in v {
        *v = a.apply(*v);
    }
}

/// The conv output of one image into `z` (`conv_len()`), activated.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // a kernel's operands and its two scratch buffers
fn conv_plane(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    packed: &PackedA,
    bias: &[f32],
    z: &mut [f32],
    xpad: &mut Vec<f32>,
    cols: &mut Vec<f32>,
) {
    let (k, p) = (g.taps(), g.plane());
    if g.local {
        let conv = Conv { activation: Activation::None, ..g.conv };
        local::forward(&conv, g.dims(), true, weight, (!bias.is_empty()).then_some(bias), x, z);
        activate(g.activation, z);
        return;
    }
    let relu = g.activation == Activation::Relu;
    if let Some(d) = g.winograd() {
        winograd::conv(&d, x, packed, bias, relu, z);
        if !relu {
            activate(g.activation, z);
        }
        return;
    }
    if let Some(d) = g.lanes_forward() {
        filter_lanes::forward(&d, x, packed, bias, relu, g.conv.filters, filter_lanes::Output::Planes(z));
        if !relu {
            activate(g.activation, z);
        }
        return;
    }
    if let Some(d) = g.direct() {
        direct::conv(&d, x, packed, bias, relu, z);
        if !relu {
            activate(g.activation, z);
        }
        return;
    }
    let cols: &[f32] = if g.pointwise() {
        x
    } else {
        let cols = sized(cols, k * p);
        im2col(g, x, xpad, cols);
        cols
    };
    // Bias and ReLU are applied in registers before the store.
    gemm_packed(packed, cols, p, p, bias, relu, z, p);
    if !relu {
        activate(g.activation, z);
    }
}

/// Pool `c` planes of `x` into `y`; with `argmax` non-empty, record the
/// offset (within `x`) of each output's maximum. Semantics are the
/// interpreter's, ties and NaNs included.
#[inline(always)]
fn pool_forward(g: &PoolGeom, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    if g.pool.is_max_2x2() {
        pool::max_pool_2x2(x, g.c, g.h, g.w, y, argmax);
        return;
    }
    let [kh, kw] = g.pool.size;
    let [sh, sw] = g.pool.stride;
    let [ph, pw] = g.pool.pad;
    let window = (kh * kw) as f32;
    let record = !argmax.is_empty();
    for c in 0..g.c {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (mut best, mut best_at, mut sum) = (f32::NEG_INFINITY, u32::MAX, 0.0f32);
                for ky in 0..kh {
                    let Some(iy) = (oy * sh + ky).checked_sub(ph).filter(|&iy| iy < g.h) else { continue };
                    for kx in 0..kw {
                        let Some(ix) = (ox * sw + kx).checked_sub(pw).filter(|&ix| ix < g.w) else { continue };
                        let at = (c * g.h + iy) * g.w + ix;
                        let v = x[at];
                        match g.pool.kind {
                            PoolKind::Max if v > best || v.is_nan() || best_at == u32::MAX => {
                                best = v;
                                best_at = at as u32;
                            }
                            PoolKind::Max => {}
                            PoolKind::Avg => sum += v,
                            PoolKind::L2 => sum += v * v,
                        }
                    }
                }
                let o = (c * g.oh + oy) * g.ow + ox;
                y[o] = match g.pool.kind {
                    PoolKind::Max => {
                        if record {
                            argmax[o] = best_at;
                        }
                        best
                    }
                    PoolKind::Avg => sum / window,
                    PoolKind::L2 => sum.sqrt(),
                };
            }
        }
    }
}

/// Accumulate the gradient at the pool's input into `dx`. For max pooling
/// each gradient is scaled by `a'` at the (pooled) output first — the fused
/// activation; for the others the caller applies `a'` afterwards.
#[inline(always)]
fn pool_backward(g: &PoolGeom, a: Activation, x: &[f32], y: &[f32], argmax: &[u32], dy: &[f32], dx: &mut [f32]) {
    if g.pool.kind == PoolKind::Max {
        for ((&at, &d), &out) in argmax.iter().zip(dy).zip(y) {
            dx[at as usize] += d * a.derivative_at_output(out);
        }
        return;
    }
    let [kh, kw] = g.pool.size;
    let [sh, sw] = g.pool.stride;
    let [ph, pw] = g.pool.pad;
    let window = (kh * kw) as f32;
    for c in 0..g.c {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let o = (c * g.oh + oy) * g.ow + ox;
                let scale = match g.pool.kind {
                    PoolKind::Avg => dy[o] / window,
                    _ if y[o] > 0.0 => dy[o] / y[o],
                    _ => 0.0,
                };
                for ky in 0..kh {
                    let Some(iy) = (oy * sh + ky).checked_sub(ph).filter(|&iy| iy < g.h) else { continue };
                    for kx in 0..kw {
                        let Some(ix) = (ox * sw + kx).checked_sub(pw).filter(|&ix| ix < g.w) else { continue };
                        let at = (c * g.h + iy) * g.w + ix;
                        dx[at] += if g.pool.kind == PoolKind::Avg { scale } else { scale * x[at] };
                    }
                }
            }
        }
    }
}

/// Forward a chunk of images through a conv stage.
#[inline(always)]
pub fn conv_forward(g: &ConvGeom, io: ConvForward<'_>) {
    let (in_len, out_len, conv_len, keep_len) = (g.in_len(), g.out_len(), g.conv_len(), g.keep_len());
    let Scratch { xpad, cols, plane, .. } = io.scratch;
    for (n, x) in io.x.chunks_exact(in_len).enumerate() {
        let y = &mut io.y[n * out_len..][..out_len];
        let Some(pg) = &g.pool else {
            conv_plane(g, x, io.weight, io.packed, io.bias, y, xpad, cols);
            continue;
        };
        let inference = io.argmax.is_empty() && io.keep.is_empty();
        if let Some(d) = g.direct().filter(|_| inference && pg.pool.is_max_2x2()) {
            // Pooled in registers, no plane written.
            let relu = g.activation == Activation::Relu;
            direct::conv_max_pool(&d, x, io.packed, io.bias, relu, y);
            if !relu {
                activate(g.activation, y);
            }
            continue;
        }
        let argmax = if io.argmax.is_empty() { &mut [][..] } else { &mut io.argmax[n * out_len..][..out_len] };
        let fused = pg.pool.is_max_2x2() && io.keep.is_empty() && matches!(g.activation, Activation::Relu | Activation::None);
        if let Some(d) = g.lanes_forward().filter(|_| fused) {
            // Pooled in registers (the maxima's indices alongside), no plane written.
            let relu = g.activation == Activation::Relu;
            filter_lanes::forward(&d, x, io.packed, io.bias, relu, g.conv.filters, filter_lanes::Output::MaxPool { y, argmax });
            continue;
        }
        let z = sized(plane, conv_len);
        conv_plane(g, x, io.weight, io.packed, io.bias, z, xpad, cols);
        pool_forward(pg, z, y, argmax);
        if !io.keep.is_empty() {
            io.keep[n * keep_len..][..keep_len].copy_from_slice(z);
        }
    }
}

/// Backward a chunk of images through a conv stage.
#[inline(always)]
pub fn conv_backward(g: &ConvGeom, io: ConvBackward<'_>) {
    // The chunk's sums start here (conv gradients are small).
    io.gw.fill(0.0);
    io.gb.fill(0.0);
    let (in_len, out_len, conv_len, keep_len) = (g.in_len(), g.out_len(), g.conv_len(), g.keep_len());
    let (f, k, p) = (g.conv.filters, g.taps(), g.plane());
    let Scratch { xpad, cols, plane, dcols, wgrad } = io.scratch;
    // A Winograd conv sums its weight gradient in the transform domain,
    // filter_lanes channels-last; either turns its sums into the filters'
    // after the last image.
    let (wino, lanes) = (g.winograd(), g.filter_lanes());
    let acc_len = match (&wino, &lanes) {
        (Some(d), _) => d.grad_len(),
        (None, Some(d)) => filter_lanes::grad_len(d, f),
        (None, None) => 0,
    };
    let mut acc = (acc_len > 0).then(|| {
        let acc = sized(wgrad, acc_len);
        acc.fill(0.0);
        acc
    });
    for (n, x) in io.x.chunks_exact(in_len).enumerate() {
        let y = &io.y[n * out_len..][..out_len];
        let dy = &io.dy[n * out_len..][..out_len];
        let dx = if io.dx.is_empty() { &mut [][..] } else { &mut io.dx[n * in_len..][..in_len] };
        // dz: the gradient at the conv output before the activation.
        let dz = sized(plane, conv_len);
        match &g.pool {
            None => {
                for ((d, &g1), &out) in dz.iter_mut().zip(dy).zip(y) {
                    *d = g1 * g.activation.derivative_at_output(out);
                }
            }
            Some(pg) if pg.pool.is_max_2x2() => {
                pool::max_unpool_2x2(dy, y, &io.argmax[n * out_len..][..out_len], g.activation, pg.c, pg.h, pg.w, dz);
            }
            Some(pg) if pg.pool.kind == PoolKind::Max => {
                dz.fill(0.0);
                pool_backward(pg, g.activation, &[], y, &io.argmax[n * out_len..][..out_len], dy, dz);
            }
            Some(pg) => {
                let z = &io.keep[n * keep_len..][..keep_len];
                dz.fill(0.0);
                pool_backward(pg, Activation::None, z, y, &[], dy, dz);
                for (d, &out) in dz.iter_mut().zip(z) {
                    *d *= g.activation.derivative_at_output(out);
                }
            }
        }
        if g.local {
            // The interpreter's loop computes dx alongside; a scratch
            // stands in when it is not wanted.
            let dx = if dx.is_empty() { sized(dcols, in_len) } else { dx };
            dx.fill(0.0);
            let gb = (!io.gb.is_empty()).then_some(&mut *io.gb);
            local::backward(&g.conv, g.dims(), true, io.weight, x, dz, io.gw, gb, dx);
            continue;
        }
        rows::add_row_sums(dz, p, io.gb);
        if g.pointwise() {
            gemm_abt(dz, p, x, p, f, k, p, io.gw, k);
            if !dx.is_empty() {
                gemm_packed(io.packed_t, dz, p, p, &[], false, dx, p);
            }
            continue;
        }
        if let (Some(d), Some(acc)) = (&wino, acc.as_deref_mut()) {
            winograd::weight_grad_acc(d, x, dz, acc);
            if !dx.is_empty() {
                winograd::conv(&d.adjoint(), dz, io.packed_t, &[], false, dx);
            }
            continue;
        }
        if let (Some(d), Some(acc)) = (&lanes, acc.as_deref_mut()) {
            filter_lanes::backward(d, x, dz, f, io.packed_t, acc, dx);
            continue;
        }
        rows::weight_grad(&g.im2col(), x, sized_xpad(g, xpad), sized(cols, k * p), dz, f, io.gw);
        if dx.is_empty() {
            continue;
        }
        let dcols = sized(dcols, k * p);
        gemm_packed(io.packed_t, dz, p, p, &[], false, dcols, p);
        rows::col2im(&g.im2col(), dcols, dx);
    }
    match (&wino, &lanes, acc) {
        (Some(d), _, Some(acc)) => winograd::weight_grad_finish(d, acc, io.gw),
        (None, Some(d), Some(acc)) => filter_lanes::weight_grad_finish(d, f, acc, io.gw),
        _ => {}
    }
}

pub struct PoolForward<'a> {
    pub x: &'a [f32],
    pub y: &'a mut [f32],
    /// One per output of a max pool in training, else empty.
    pub argmax: &'a mut [u32],
}

pub struct PoolBackward<'a> {
    pub x: &'a [f32],
    pub y: &'a [f32],
    pub argmax: &'a [u32],
    pub dy: &'a [f32],
    pub dx: &'a mut [f32],
}

#[inline(always)]
pub fn pool_stage_forward(g: &PoolGeom, io: PoolForward<'_>) {
    let (in_len, out_len) = (g.in_len(), g.out_len());
    for (n, x) in io.x.chunks_exact(in_len).enumerate() {
        let argmax = if io.argmax.is_empty() { &mut [][..] } else { &mut io.argmax[n * out_len..][..out_len] };
        pool_forward(g, x, &mut io.y[n * out_len..][..out_len], argmax);
    }
}

#[inline(always)]
pub fn pool_stage_backward(g: &PoolGeom, io: PoolBackward<'_>) {
    let (in_len, out_len) = (g.in_len(), g.out_len());
    if io.dx.is_empty() {
        return;
    }
    let unpool = g.pool.is_max_2x2();
    if !unpool {
        io.dx.fill(0.0);
    }
    for (n, x) in io.x.chunks_exact(in_len).enumerate() {
        let argmax = if io.argmax.is_empty() { &[][..] } else { &io.argmax[n * out_len..][..out_len] };
        let (y, dy, dx) = (&io.y[n * out_len..][..out_len], &io.dy[n * out_len..][..out_len], &mut io.dx[n * in_len..][..in_len]);
        if unpool {
            pool::max_unpool_2x2(dy, y, argmax, Activation::None, g.c, g.h, g.w, dx);
        } else {
            pool_backward(g, Activation::None, x, y, argmax, dy, dx);
        }
    }
}

pub struct DenseForward<'a> {
    pub x: &'a [f32],
    pub weight: &'a [f32],
    /// The weight packed for the GEMM (`units × inputs`), or where the GEMM
    /// reads it in place, for the dot products of a few images
    /// ([`crate::kernels::gemm::pack_gemv`]) or nothing.
    pub packed: &'a PackedA,
    pub bias: &'a [f32],
    pub y: &'a mut [f32],
    pub scratch: &'a mut Scratch,
}

pub struct DenseBackward<'a> {
    pub x: &'a [f32],
    pub y: &'a [f32],
    pub weight: &'a [f32],
    /// The weight's transpose packed (`inputs × units`).
    pub packed_t: &'a PackedA,
    pub dy: &'a [f32],
    pub dx: &'a mut [f32],
    /// Written: the gradient at the layer's output before its activation
    /// (`images × units`). The executor forms the weight gradient from it
    /// over the whole batch, split by units over the threads — not per
    /// chunk and summed, which cost every thread a full-size gradient.
    pub dz: &'a mut [f32],
    pub gb: &'a mut [f32],
    pub scratch: &'a mut Scratch,
}

/// `y = a(x·Wᵀ + b)` for a chunk of images.
#[inline(always)]
pub fn dense_forward(g: &DenseGeom, io: DenseForward<'_>) {
    let (i, u) = (g.inputs, g.units);
    let b = io.x.len() / i;
    if b > GEMV_MAX_BATCH {
        // yᵀ = act(W·xᵀ + b) over the weights (read in place on AVX-512,
        // else packed), bias and ReLU in registers: transpose the chunk's
        // inputs in, the outputs back.
        let Scratch { cols: xt, plane: yt, .. } = io.scratch;
        let (xt, yt) = (sized(xt, i * b), sized(yt, u * b));
        transpose(io.x, b, i, xt);
        let relu = g.activation == Activation::Relu;
        if reads_rows_in_place() {
            gemm_rows(io.weight, u, i, xt, b, b, io.bias, relu, yt, b);
        } else {
            gemm_packed(io.packed, xt, b, b, io.bias, relu, yt, b);
        }
        transpose(yt, u, b, io.y);
        if !relu {
            activate(g.activation, io.y);
        }
        return;
    }
    if io.bias.is_empty() {
        io.y.fill(0.0);
    } else {
        for row in io.y.chunks_exact_mut(u) {
            row.copy_from_slice(io.bias);
        }
    }
    // A few images: read each weight once and multiply it into every image.
    gemv_on(io.weight, io.packed, u, i, io.x, b, io.y);
    activate(g.activation, io.y);
}

/// Up to this many images a dense layer runs as dot products (memory-bound
/// on the weights either way; see [`crate::kernels::gemm::gemv`]).
pub const GEMV_MAX_BATCH: usize = 4;

/// `dz = dy ⊙ a'(y)`, the bias gradient (the chunk's sum) and `dx = dz·W`
/// for a chunk of images; the weight gradient is the executor's.
#[inline(always)]
pub fn dense_backward(g: &DenseGeom, io: DenseBackward<'_>) {
    let (i, u) = (g.inputs, g.units);
    let b = io.x.len() / i;
    let dz = &mut *io.dz;
    for ((d, &g1), &out) in dz.iter_mut().zip(io.dy).zip(io.y) {
        *d = g1 * g.activation.derivative_at_output(out);
    }
    io.gb.fill(0.0);
    if !io.gb.is_empty() {
        for row in dz.chunks_exact(u) {
            for (gb, d) in io.gb.iter_mut().zip(row) {
                *gb += d;
            }
        }
    }
    if io.dx.is_empty() {
        return;
    }
    // dxᵀ = Wᵀ·dzᵀ over the packed transpose (a GEMM here would pack all
    // of W on every call): transpose dz in, dx back out.
    let Scratch { cols: dzt, dcols: dxt, .. } = io.scratch;
    let (dzt, dxt) = (sized(dzt, u * b), sized(dxt, i * b));
    transpose(dz, b, u, dzt);
    gemm_packed(io.packed_t, dzt, b, b, &[], false, dxt, b);
    transpose(dxt, i, b, io.dx);
}

//! Dense stages: `y = act(x Wᵀ + b)` with W `[units, inputs]`, forward and
//! backward. Forward works on blocks of four images so that every loaded
//! weight vector serves four of them (the weights of a large dense layer do
//! not fit in cache; reading them once per image would bound the speed).

use convc_runtime::compiled::DenseGeom;
use cranelift_codegen::ir::{InstBuilder, Value};

use super::emit::{F32, F32X4, Fx, LANES};

/// Images per forward block.
const IMAGES: usize = 4;
/// Vectors per image and step of the inner loop.
const VECTORS: usize = 2;

pub mod fwd {
    pub const X: usize = 0;
    pub const WEIGHT: usize = 1;
    pub const BIAS: usize = 2;
    pub const Y: usize = 3;
}

/// Backward's slots (the weight gradient is the executor's, from `DZ`).
pub mod bwd {
    pub const WEIGHT: usize = 0;
    pub const DY: usize = 1;
    pub const Y: usize = 2;
    pub const GB: usize = 3;
    pub const DX: usize = 4;
    /// Written: the `batch × units` gradient at the pre-activation output.
    pub const DZ: usize = 5;
    pub const SLOTS: usize = 6;
}

pub fn emit_forward(fx: &mut Fx, g: DenseGeom) {
    let x = fx.arg(fwd::X);
    let w = fx.arg(fwd::WEIGHT);
    let b = fx.arg(fwd::BIAS);
    let y = fx.arg(fwd::Y);
    let batch = fx.batch;
    // Full blocks of IMAGES, then the rest one by one.
    let blocks = fx.b.ins().udiv_imm_u(batch, IMAGES as i64);
    let full = fx.b.ins().imul_imm_s(blocks, IMAGES as i64);
    fx.for_to(0, full, IMAGES as i64, |fx, n| forward_block(fx, g, x, w, b, y, n, IMAGES));
    fx.for_between(full, batch, 1, |fx, n| forward_block(fx, g, x, w, b, y, n, 1));
}

#[allow(clippy::too_many_arguments)]
fn forward_block(fx: &mut Fx, g: DenseGeom, x: Value, w: Value, b: Value, y: Value, n: Value, images: usize) {
    let step = VECTORS * LANES;
    let main = g.inputs / step * step;
    fx.for_range(0, g.units as i64, 1, |fx, u| {
        let zero = fx.fv(0.0);
        let accs: Vec<_> = (0..images * VECTORS).map(|_| fx.var(F32X4, zero)).collect();
        let wrow = fx.mul_add(u, g.inputs as i64, 0);
        let xrow = fx.mul_add(n, g.inputs as i64, 0);
        fx.for_range(0, main as i64, step as i64, |fx, i| {
            let wi = fx.b.ins().iadd(wrow, i);
            let xi = fx.b.ins().iadd(xrow, i);
            for v in 0..VECTORS {
                let wv = fx.load(F32X4, w, wi, (v * LANES) as i64);
                for img in 0..images {
                    let xv = fx.load(F32X4, x, xi, (img * g.inputs + v * LANES) as i64);
                    let acc = accs[img * VECTORS + v];
                    let a = fx.b.use_var(acc);
                    let a = fx.fma(xv, wv, a);
                    fx.b.def_var(acc, a);
                }
            }
        });
        let bias = if g.bias { fx.load(F32, b, u, 0) } else { fx.f(0.0) };
        for img in 0..images {
            let a0 = fx.b.use_var(accs[img * VECTORS]);
            let a1 = fx.b.use_var(accs[img * VECTORS + 1]);
            let a = fx.b.ins().fadd(a0, a1);
            let mut s = fx.hsum(a);
            // The tail that does not fill a step, element by element.
            for i in main..g.inputs {
                let wv = fx.load(F32, w, wrow, i as i64);
                let xv = fx.load(F32, x, xrow, (img * g.inputs + i) as i64);
                s = fx.fma(wv, xv, s);
            }
            let s = fx.b.ins().fadd(s, bias);
            let out = fx.activation(g.activation, s, false);
            // y[n + img, u]
            let yi = fx.mul_add(n, g.units as i64, (img * g.units) as i64);
            let yi = fx.b.ins().iadd(yi, u);
            fx.store(out, y, yi, 0);
        }
    });
}

pub fn emit_backward(fx: &mut Fx, g: DenseGeom) {
    let w = fx.arg(bwd::WEIGHT);
    let dy = fx.arg(bwd::DY);
    let y = fx.arg(bwd::Y);
    let gb = fx.arg(bwd::GB);
    let dx = fx.arg(bwd::DX);
    let dz = fx.arg(bwd::DZ);
    let batch = fx.batch;
    let total = fx.b.ins().imul_imm_s(batch, g.units as i64);
    // dz = dy · act'(y); gb += Σ_n dz
    fx.for_to(0, total, 1, |fx, i| {
        let gy = fx.load(F32, dy, i, 0);
        let yv = fx.load(F32, y, i, 0);
        let d = fx.activation_derivative(g.activation, yv, false);
        let v = fx.b.ins().fmul(gy, d);
        fx.store(v, dz, i, 0);
        if g.bias {
            let u = fx.b.ins().urem_imm_u(i, g.units as i64);
            fx.add_to(F32, gb, u, 0, v);
        }
    });
    let step = VECTORS * LANES;
    let main = g.inputs / step * step;
    // dx[n, i] = Σ_u dz[n, u] · w[u, i]: blocks of IMAGES images × one step
    // of inputs in registers, so the weights are read once per block.
    let input_block = |fx: &mut Fx, n: Value, count: usize| {
        fx.for_range(0, main as i64, step as i64, |fx, i| {
            let zero = fx.fv(0.0);
            let accs: Vec<_> = (0..count * VECTORS).map(|_| fx.var(F32X4, zero)).collect();
            fx.for_range(0, g.units as i64, 1, |fx, u| {
                let wi = fx.mul_add(u, g.inputs as i64, 0);
                let wi = fx.b.ins().iadd(wi, i);
                let ws: Vec<Value> = (0..VECTORS).map(|v| fx.load(F32X4, w, wi, (v * LANES) as i64)).collect();
                let zi = fx.mul_add(n, g.units as i64, 0);
                let zi = fx.b.ins().iadd(zi, u);
                for k in 0..count {
                    let d = fx.load(F32, dz, zi, (k * g.units) as i64);
                    let d = fx.splat(d);
                    for (v, wv) in ws.iter().enumerate() {
                        let acc = accs[k * VECTORS + v];
                        let a = fx.b.use_var(acc);
                        let a = fx.fma(d, *wv, a);
                        fx.b.def_var(acc, a);
                    }
                }
            });
            let xi = fx.mul_add(n, g.inputs as i64, 0);
            let xi = fx.b.ins().iadd(xi, i);
            for k in 0..count {
                for v in 0..VECTORS {
                    let a = fx.b.use_var(accs[k * VECTORS + v]);
                    fx.store(a, dx, xi, (k * g.inputs + v * LANES) as i64);
                }
            }
        });
        // The inputs past the last whole step, one by one.
        for k in 0..count {
            for i in main..g.inputs {
                let zero = fx.f(0.0);
                let acc = fx.var(F32, zero);
                fx.for_range(0, g.units as i64, 1, |fx, u| {
                    let wi = fx.mul_add(u, g.inputs as i64, i as i64);
                    let wv = fx.load(F32, w, wi, 0);
                    let zi = fx.mul_add(n, g.units as i64, (k * g.units) as i64);
                    let zi = fx.b.ins().iadd(zi, u);
                    let d = fx.load(F32, dz, zi, 0);
                    let a = fx.b.use_var(acc);
                    let a = fx.fma(d, wv, a);
                    fx.b.def_var(acc, a);
                });
                let xi = fx.mul_add(n, g.inputs as i64, (k * g.inputs + i) as i64);
                let a = fx.b.use_var(acc);
                fx.store(a, dx, xi, 0);
            }
        }
    };
    let batch = fx.batch;
    let blocks = fx.b.ins().udiv_imm_u(batch, IMAGES as i64);
    let full = fx.b.ins().imul_imm_s(blocks, IMAGES as i64);
    fx.for_to(0, full, IMAGES as i64, |fx, n| input_block(fx, n, IMAGES));
    fx.for_between(full, batch, 1, |fx, n| input_block(fx, n, 1));
}

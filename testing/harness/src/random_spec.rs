//! Random valid specs for differential tests. Shared by the JIT's tests and
//! by the build script of `testing/random_networks`, which declares them
//! with `network!` (so this module uses only `convc_runtime`).

use convc_runtime::rng::Rng;

/// A random valid spec: window layers (conv2d, local2d, pools) with random
/// kernels, strides, paddings and activations, then maybe dropout, then
/// dense layers. Flooring is on, so every window that fits is valid.
pub fn random_spec(seed: u64) -> (String, usize) {
    let mut rng = Rng::new(seed);
    let mut pick = |n: usize| rng.below(n);
    let activations = ["none", "relu", "leaky_relu", "elu", "sigmoid", "tanh"];
    let (c, mut h, mut w) = (1 + pick(3), 5 + pick(12), 5 + pick(12));
    let mut text = format!("[network]\nname = \"random{seed}\"\ninput = [{c}, {h}, {w}]\nrounding = \"floor\"\n");
    for _ in 0..1 + pick(3) {
        let kind = pick(5);
        let (kh, kw) = (1 + pick(4.min(h)), 1 + pick(4.min(w)));
        let (sh, sw) = (1 + pick(2), 1 + pick(2));
        let (ph, pw) = if kind >= 2 { (pick(kh / 2 + 1), pick(kw / 2 + 1)) } else { (pick(3), pick(3)) };
        let (oh, ow) = ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1);
        let window = format!("stride = [{sh}, {sw}]\npadding = [{ph}, {pw}]\n");
        text += &match kind {
            0 | 1 => {
                let ty = if kind == 0 || pick(3) > 0 { "conv2d" } else { "local2d" };
                let act = activations[pick(activations.len())];
                let bias = pick(4) > 0;
                format!(
                    "[[layer]]\ntype = \"{ty}\"\nfilters = {}\nkernel = [{kh}, {kw}]\n{window}activation = \"{act}\"\nbias = {bias}\n",
                    1 + pick(5)
                )
            }
            _ => {
                let ty = ["max_pool", "avg_pool", "l2_pool"][pick(3)];
                format!("[[layer]]\ntype = \"{ty}\"\nsize = [{kh}, {kw}]\n{window}")
            }
        };
        if pick(4) == 0 {
            text += &format!("[[layer]]\ntype = \"{}\"\n", ["relu", "tanh", "sigmoid"][pick(3)]);
        }
        h = oh;
        w = ow;
    }
    text += "[[layer]]\ntype = \"flatten\"\n";
    if pick(2) == 0 {
        text +=
            &format!("[[layer]]\ntype = \"dense\"\nunits = {}\nactivation = \"{}\"\n", 1 + pick(12), activations[pick(activations.len())]);
    }
    if pick(3) == 0 {
        text += "[[layer]]\ntype = \"dropout\"\nrate = 0.3\n";
    }
    text += &format!("[[layer]]\ntype = \"dense\"\nunits = {}\n", 2 + pick(9));
    let batch = [1, 2, 3, 5, 8][pick(5)];
    (text, batch)
}

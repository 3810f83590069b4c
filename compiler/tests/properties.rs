//! For every input, checking a spec yields a graph or diagnostics — never a
//! panic — and on random valid geometry the inferred shapes are the ones
//! `(N − F + 2P)/S + 1` gives.

use convc_compiler::graph::Shape;
use convc_compiler::{SourceFile, check_source};
use proptest::prelude::*;

fn check_renders(text: &str) {
    if let Err(e) = check_source(&SourceFile::new("fuzz.toml", text)) {
        assert!(e.error_count() > 0, "an error result without an error diagnostic");
        let rendered = e.to_string();
        assert!(rendered.contains("fuzz.toml"), "diagnostics must name the file:\n{rendered}");
    }
}

const SEEDS: [&str; 4] = [
    include_str!("../../specs/lenet5.toml"),
    include_str!("../../specs/fashion_tf.toml"),
    include_str!("../../specs/alexnet.toml"),
    include_str!("bad/many_mistakes.toml"),
];

/// Fragments that are likely to hit interesting paths when spliced in.
const FRAGMENTS: [&str; 16] = [
    "0",
    "-1",
    "99999999999999999999",
    "[3, 0]",
    "\"same\"",
    "\"x\"",
    "[[layer]]\n",
    "type = \"dense\"\n",
    "1.5",
    "[]",
    "{}",
    "\n[training]\n",
    "é",
    "= =",
    "\"floor\"",
    "9223372036854775807",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, fragment: usize },
    ReplaceNumber { nth: usize, value: i64 },
    SwapLines { a: usize, b: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), 0..FRAGMENTS.len()).prop_map(|(at, fragment)| Mutation::Insert { at, fragment }),
        (any::<usize>(), prop_oneof![-3i64..40, any::<i64>()]).prop_map(|(nth, value)| Mutation::ReplaceNumber { nth, value }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
    ]
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, m: &Mutation) -> String {
    match *m {
        Mutation::Delete { at, len } => {
            let start = floor_boundary(text, at % (text.len() + 1));
            let end = floor_boundary(text, start + len);
            format!("{}{}", &text[..start], &text[end..])
        }
        Mutation::Insert { at, fragment } => {
            let at = floor_boundary(text, at % (text.len() + 1));
            format!("{}{}{}", &text[..at], FRAGMENTS[fragment], &text[at..])
        }
        Mutation::ReplaceNumber { nth, value } => {
            let numbers: Vec<(usize, usize)> = text
                .char_indices()
                .filter(|(i, c)| c.is_ascii_digit() && (*i == 0 || !text.as_bytes()[i - 1].is_ascii_digit()))
                .map(|(i, _)| (i, i + text[i..].bytes().take_while(u8::is_ascii_digit).count()))
                .collect();
            if numbers.is_empty() {
                return text.to_string();
            }
            let (start, end) = numbers[nth % numbers.len()];
            format!("{}{value}{}", &text[..start], &text[end..])
        }
        Mutation::SwapLines { a, b } => {
            let mut lines: Vec<&str> = text.lines().collect();
            let n = lines.len();
            lines.swap(a % n, b % n);
            lines.join("\n")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        check_renders(&text);
    }

    #[test]
    fn toml_shaped_text_never_panics(text in "(\\[\\[layer\\]\\]\n|\\[network\\]\ninput = \\[[0-9, ]{0,12}\\]\n|[a-z_]{1,10} = (\"[a-z_]{0,8}\"|-?[0-9]{1,12}|\\[[0-9, ]{0,8}\\]|true|[0-9]\\.[0-9])\n){0,30}") {
        check_renders(&text);
    }

    #[test]
    fn mutated_specs_never_panic(seed in 0..SEEDS.len(), mutations in prop::collection::vec(mutation(), 1..6)) {
        let mut text = SEEDS[seed].to_string();
        for m in &mutations {
            text = apply(&text, m);
        }
        check_renders(&text);
    }
}

/// A window layer drawn at random: (type, kernel, stride, padding).
fn window_layer() -> impl Strategy<Value = (bool, usize, usize, usize)> {
    (any::<bool>(), 1usize..6, 1usize..4, 0usize..3)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// The checker accepts exactly the stacks whose every window divides
    /// evenly, and its shapes follow the formula (simulated independently).
    #[test]
    fn random_geometry_matches_the_formula(
        size in 1usize..40,
        channels in 1usize..4,
        layers in prop::collection::vec(window_layer(), 1..5),
    ) {
        let mut text = format!("[network]\ninput = [{channels}, {size}, {size}]\n");
        let mut n = Some(size as i64);
        let mut c = channels;
        for &(is_conv, k, s, p) in &layers {
            // Pools may pad at most half their window.
            let p = if is_conv { p } else { p.min(k / 2) };
            if is_conv {
                text += &format!("[[layer]]\ntype = \"conv2d\"\nfilters = 3\nkernel = {k}\nstride = {s}\npadding = {p}\n");
                c = 3;
            } else {
                text += &format!("[[layer]]\ntype = \"avg_pool\"\nsize = {k}\nstride = {s}\npadding = {p}\n");
            }
            n = n.and_then(|n| {
                let span = n - k as i64 + 2 * p as i64;
                (span >= 0 && span % s as i64 == 0).then_some(span / s as i64 + 1)
            });
        }
        let result = check_source(&SourceFile::new("geometry.toml", &text));
        match n {
            Some(n) => {
                let graph = result.unwrap_or_else(|e| panic!("{e}\n{text}"));
                prop_assert_eq!(graph.output(), Shape::Image { c, h: n as usize, w: n as usize });
            }
            None => prop_assert!(result.is_err(), "accepted invalid geometry:\n{}", text),
        }
    }
}

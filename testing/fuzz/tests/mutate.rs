//! A small mutation fuzzer that runs in CI: corpus inputs changed by
//! random byte flips, insertions, deletions, truncations and splices with
//! interesting values, a fixed number of cases per target (proptest,
//! deterministic per run, shrinking any failure to a minimal input).
//! `CONVC_FUZZ_CASES` raises the budget for a longer run; libFuzzer (in
//! `fuzz/`) goes further.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Truncate {
        at: usize,
    },
    /// Copy a run of the input elsewhere (repeats tables, layers, headers).
    Duplicate {
        from: usize,
        len: usize,
        to: usize,
    },
}

/// Bytes that matter to the formats: TOML punctuation, IDX magic, large
/// and boundary integers, JSON in safetensors headers.
const INTERESTING: [&[u8]; 14] = [
    b"0",
    b"-1",
    b"4294967295",
    b"18446744073709551616",
    b"1e40",
    b"nan",
    b"\"\"",
    b"[]",
    b"{}",
    b"=",
    b"\n[[layer]]\n",
    &[0, 0, 8, 3],
    &[0xff, 0xff, 0xff, 0xff],
    &[0x1f, 0x8b],
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<prop::sample::Index>();
    prop_oneof![
        (at.clone(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at: at.index(usize::MAX), bit }),
        (at.clone(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at: at.index(usize::MAX), byte }),
        (at.clone(), prop::sample::select(INTERESTING.to_vec()))
            .prop_map(|(at, b)| Mutation::Insert { at: at.index(usize::MAX), bytes: b.to_vec() }),
        (at.clone(), 1usize..64).prop_map(|(at, len)| Mutation::Delete { at: at.index(usize::MAX), len }),
        at.clone().prop_map(|at| Mutation::Truncate { at: at.index(usize::MAX) }),
        (at.clone(), 1usize..256, at).prop_map(|(from, len, to)| Mutation::Duplicate {
            from: from.index(usize::MAX),
            len,
            to: to.index(usize::MAX)
        }),
    ]
}

fn apply(data: &mut Vec<u8>, m: &Mutation) {
    let n = data.len();
    let pos = |at: usize| if n == 0 { 0 } else { at % (n + 1) };
    match m {
        Mutation::Flip { at, bit } if n > 0 => data[at % n] ^= 1 << bit,
        Mutation::Set { at, byte } if n > 0 => data[at % n] = *byte,
        Mutation::Insert { at, bytes } => {
            let at = pos(*at);
            data.splice(at..at, bytes.iter().copied());
        }
        Mutation::Delete { at, len } if n > 0 => {
            let at = at % n;
            data.drain(at..(at + len).min(n));
        }
        Mutation::Truncate { at } => data.truncate(pos(*at)),
        Mutation::Duplicate { from, len, to } if n > 0 => {
            let from = from % n;
            let run: Vec<u8> = data[from..(from + len).min(n)].to_vec();
            let to = pos(*to);
            data.splice(to..to, run);
        }
        _ => {}
    }
}

fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(name);
    let mut paths: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn mutated_corpus_inputs_never_panic() {
    let cases = std::env::var("CONVC_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(20_000);
    for (name, target) in convc_fuzz::TARGETS {
        let seeds = corpus(name);
        let strategy = (prop::sample::select(seeds), prop::collection::vec(mutation(), 1..8));
        // One seed per target, so a failure reruns the same way.
        let config =
            Config { cases, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed), ..Config::default() };
        let runs = std::cell::Cell::new(0usize);
        let result = TestRunner::new(config).run(&strategy, |(seed, mutations)| {
            runs.set(runs.get() + 1);
            let mut data = seed;
            for m in &mutations {
                apply(&mut data, m);
            }
            let outcome = std::panic::catch_unwind(|| target(&data));
            prop_assert!(outcome.is_ok(), "{name} panics on {} bytes: {:?}", data.len(), String::from_utf8_lossy(&data));
            Ok(())
        });
        if let Err(e) = result {
            panic!("{name}: {e}\n(keep the input in testing/fuzz/crashers/{name}/ once fixed)");
        }
        assert!(runs.get() >= cases as usize, "{name}: {} of {cases} cases ran", runs.get());
        eprintln!("{name}: {} mutated inputs run clean", runs.get());
    }
}

//! Declare `COUNT` random valid specs (the generator the JIT's differential
//! test uses) with `convc::network!`, into `$OUT_DIR/random_networks.rs`.

use std::fmt::Write;

use convc_testing::random_spec;

/// Seeds `FIRST..FIRST + COUNT` (other seeds than the JIT test's).
const FIRST: u64 = 5000;
const COUNT: u64 = 40;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let mut out = String::new();
    let mut table = String::new();
    for seed in FIRST..FIRST + COUNT {
        let (text, batch) = random_spec::random_spec(seed);
        writeln!(out, "convc::network!(pub Random{seed} = {text:?});").unwrap();
        writeln!(table, "    ({seed}, {text:?}, {batch}, |seed, threads| {{ let mut n = Random{seed}::new(seed); n.set_threads(threads); Box::new(n) }}),").unwrap();
    }
    writeln!(out, "\n/// A constructor `(seed, threads)`.").unwrap();
    writeln!(out, "pub type Build = fn(u64, usize) -> Box<dyn convc::runtime::Model>;").unwrap();
    writeln!(out, "\n/// `(seed, spec, batch, constructor)` of every declared network.").unwrap();
    writeln!(out, "pub const NETWORKS: &[(u64, &str, usize, Build)] = &[\n{table}];").unwrap();
    let path = std::path::Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("random_networks.rs");
    std::fs::write(path, out).expect("write the generated networks");
}

//! The fuzz targets: each takes arbitrary bytes and feeds them to one of
//! convc's readers of untrusted input. A target may return early or report
//! an error; it must never panic, hang or abort. `emit_rust` further
//! asserts that every spec the checker accepts gives Rust that parses.
//!
//! They run three ways: `tests/replay.rs` runs every file of
//! `corpus/<target>/` and `crashers/<target>/` (regression tests, in CI);
//! `tests/mutate.rs` mutates the corpus for a fixed budget of cases (in
//! CI); and `fuzz/` at the repository's root runs them under libFuzzer
//! (`cargo +nightly fuzz run <target>`, see `fuzz/README.md`).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use convc_compiler::codegen::rust::{self, RustOptions};
use convc_compiler::plan::Plan;
use convc_compiler::{SourceFile, check_source};
use convc_runtime::Model;
use convc_runtime::train::checkpoint::Checkpoint;
use convc_runtime::train::data::parse_idx;
use convc_runtime::train::weights::{self, STATE_PREFIX};

/// A fuzz target: arbitrary bytes in, no panic.
pub type Target = fn(&[u8]);

/// The targets by name, as `corpus/` and `fuzz/fuzz_targets/` name them.
pub const TARGETS: [(&str, Target); 4] = [("spec", spec), ("emit_rust", emit_rust), ("idx", idx), ("safetensors", safetensors)];

/// Inputs larger than this are cut: the targets are linear in their input,
/// and short inputs keep a fuzzer's iterations fast.
pub const MAX_LEN: usize = 1 << 16;

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(&data[..data.len().min(MAX_LEN)]).into_owned()
}

/// Parse and check a spec; for one that checks, render its summary and plan it.
pub fn spec(data: &[u8]) {
    let file = SourceFile::new("fuzz.toml", text(data));
    match check_source(&file) {
        Ok(graph) => {
            let _ = convc_compiler::summary::Summary::new(&graph, 64, convc_compiler::spec::OptimizerKind::Adam).render();
            let _ = Plan::new(&graph, true);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Every spec that checks gives Rust that `syn` parses as a file.
pub fn emit_rust(data: &[u8]) {
    let Ok(graph) = check_source(&SourceFile::new("fuzz.toml", text(data))) else { return };
    let plan = Plan::new(&graph, true);
    let tokens = rust::network(&graph, &plan, &RustOptions::for_graph(&graph, "fuzz.toml"));
    if let Err(e) = syn::parse2::<syn::File>(tokens.clone()) {
        panic!("emit-rust made code that does not parse ({e}) for network `{}`:\n{tokens}", graph.name);
    }
}

/// Read IDX data as labels and as images, raw and (if it is gzip) inflated.
pub fn idx(data: &[u8]) {
    for ndims in [1, 3] {
        let _ = parse_idx(data, ndims);
        if data.starts_with(&[0x1f, 0x8b]) {
            let _ = parse_idx(flate2::read::GzDecoder::new(data).take(4 * MAX_LEN as u64), ndims);
        }
    }
}

/// The network whose weights and checkpoints the `safetensors` target loads.
const NET: &str = include_str!("../../../compiler/tests/fixtures/parity/net_a.toml");

/// Read a safetensors file, load it as weights into a small network, and
/// as a checkpoint restored into it.
pub fn safetensors(data: &[u8]) {
    let path = Path::new("fuzz.safetensors");
    let Ok((tensors, metadata)) = weights::from_bytes(path, data) else { return };
    let graph = check_source(&SourceFile::new("net_a.toml", NET)).expect("the fixture checks");
    let mut model = convc_compiler::interpreter(&graph, 0);
    let _ = weights::assign(&mut model, path, &tensors, &[STATE_PREFIX]);
    let metadata: HashMap<String, String> = metadata;
    if let Ok(ckpt) = Checkpoint::from_parts(path, tensors, &metadata)
        && let Ok(optimizer) = ckpt.restore(&mut model, path)
    {
        // A restored optimizer's state fits the model's parameters.
        for (p, states) in model.params().iter().zip(&optimizer.state) {
            assert!(states.iter().all(|s| s.len() == p.value.len()), "state of {} does not fit", p.name);
        }
    }
}

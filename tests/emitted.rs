//! The golden output of `convc emit-rust specs/lenet5.toml`, compiled here
//! as it is: the emitted file is real, working code, equal to what
//! `network!` generates, and it agrees with the interpreter.

mod emitted {
    include!("../compiler/tests/golden/lenet5.rs");
}

use convc::runtime::Model;
use convc_testing::differential;

#[test]
fn emitted_lenet5_matches_the_interpreter() {
    let graph = convc::compiler::check(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/lenet5.toml"))).unwrap();
    let build = |_: &convc::compiler::Graph, seed: u64| Box::new(emitted::Lenet5::new(seed)) as Box<dyn Model>;
    differential::check_against_interpreter(&graph, 4, 3, &build).unwrap();
    assert_eq!(emitted::Lenet5::PARAMS as u64, graph.param_count());
}

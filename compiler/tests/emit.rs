//! `convc emit-rust`: the generated code for lenet5 is pinned by a golden
//! file, so any change to code generation shows up as a diff in review.
//! (The root package's `tests/emitted.rs` compiles that very file and runs
//! it against the interpreter.)
//!
//! Regenerate with `CONVC_BLESS=1 cargo test -p convc-compiler --test emit`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn convc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convc")).args(args).current_dir(root()).output().expect("run convc")
}

#[test]
fn lenet5_code_matches_the_golden_file() {
    let o = convc(&["emit-rust", "specs/lenet5.toml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let emitted = String::from_utf8(o.stdout).expect("UTF-8 source");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/lenet5.rs");
    if std::env::var_os("CONVC_BLESS").is_some() {
        std::fs::write(&golden, &emitted).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&golden).expect("golden file; bless it with CONVC_BLESS=1");
    if emitted != want {
        let first =
            emitted.lines().zip(want.lines()).position(|(a, b)| a != b).unwrap_or(emitted.lines().count().min(want.lines().count()));
        panic!(
            "emitted code differs from {} from line {}:\n  emitted: {:?}\n  golden:  {:?}\n(bless with CONVC_BLESS=1 if intended)",
            golden.display(),
            first + 1,
            emitted.lines().nth(first),
            want.lines().nth(first)
        );
    }
}

#[test]
fn output_file_name_and_runtime_path_are_honoured() {
    let dir = std::env::temp_dir().join(format!("convc-emit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("net.rs");
    let o =
        convc(&["emit-rust", "specs/fashion_tf.toml", "-o", out.to_str().unwrap(), "--name", "Fashion", "--runtime", "::convc_runtime"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let code = std::fs::read_to_string(&out).unwrap();
    assert!(code.contains("pub struct Fashion {"), "{code}");
    assert!(code.contains("net: ::convc_runtime::compiled::Network"), "{code}");
    assert!(!code.contains("::convc::runtime"), "{code}");
    // Every fused stage of the plan has its type.
    assert!(code.contains("struct S0Conv1Pool1;") && code.contains("struct S1Conv2Pool2;"), "{code}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let o = convc(&["emit-rust", "specs/lenet5.toml", "--name", "not an ident"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--name \"not an ident\" is not a Rust identifier; try e.g. --name NotAnIdent"), "{err}");
    let o = convc(&["emit-rust", "compiler/tests/bad/alexnet_224.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("55.25"));
}

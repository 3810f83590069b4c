//! The macro must not pull Cranelift into a user's build: neither the
//! macro crate nor a crate using `convc::network!` with the `convc`
//! facade's default features off (the example) depends on it.

use std::path::Path;
use std::process::Command;

fn tree(package: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-p", package, "-e", "normal,build", "--prefix", "none"])
        .current_dir(root)
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn macro_users_never_build_cranelift() {
    for package in ["convc-macros", "convc-example-fashion"] {
        let deps = tree(package);
        assert!(deps.contains("convc-compiler"), "{package}: {deps}");
        assert!(!deps.contains("cranelift"), "{package} depends on Cranelift:\n{deps}");
        assert!(!deps.contains("clap"), "{package} depends on the CLI:\n{deps}");
    }
}

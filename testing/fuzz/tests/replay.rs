//! Every input kept in `corpus/<target>/` (the fuzzers' seeds and what they
//! found interesting) and `crashers/<target>/` (inputs that once made a
//! target panic, hang or abort, kept as regression tests) runs through its
//! target without a panic.

use std::path::Path;

#[test]
fn every_kept_input_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, target) in convc_fuzz::TARGETS {
        let mut count = 0;
        for dir in ["corpus", "crashers"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else { continue };
            let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
            paths.sort();
            for path in paths {
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name}: {} panics", path.display());
                count += 1;
            }
        }
        assert!(count > 0, "{name}: no corpus in {}", root.join("corpus").join(name).display());
        eprintln!("{name}: {count} kept inputs run clean");
    }
}

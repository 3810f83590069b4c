//! Every spec in `tests/bad/` must fail to check with exactly the errors it
//! declares in its header (`# expect-errors: N`, `# expect: <text>` lines),
//! and its rendered diagnostics must match the golden `.stderr` file beside
//! it, so that any change to what users read shows up in review.
//!
//! Regenerate the golden files with `CONVC_BLESS=1 cargo test --test diagnostics`.

use std::path::Path;

use convc_compiler::{SourceFile, check_source};

#[test]
fn bad_specs_report_what_they_declare() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    let mut specs: Vec<_> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "toml")).collect();
    specs.sort();
    assert!(specs.len() >= 15, "expected the bad-spec fixtures in {}", dir.display());
    let bless = std::env::var_os("CONVC_BLESS").is_some();
    let mut failures = Vec::new();
    for path in &specs {
        let text = std::fs::read_to_string(path).unwrap();
        let name = format!("bad/{}", path.file_name().unwrap().to_string_lossy());
        let err = match check_source(&SourceFile::new(&name, &text)) {
            Ok(_) => {
                failures.push(format!("{name}: checked without error"));
                continue;
            }
            Err(e) => e,
        };
        let rendered = err.to_string();
        let expected_count: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect-errors: "))
            .unwrap_or_else(|| panic!("{name} has no `# expect-errors:` line"))
            .trim()
            .parse()
            .unwrap();
        if err.error_count() != expected_count {
            failures.push(format!("{name}: {} errors, expected {expected_count}\n{rendered}", err.error_count()));
        }
        for needle in text.lines().filter_map(|l| l.strip_prefix("# expect: ")) {
            if !rendered.contains(needle) {
                failures.push(format!("{name}: output lacks `{needle}`\n{rendered}"));
            }
        }
        let golden = path.with_extension("stderr");
        if bless {
            std::fs::write(&golden, &rendered).unwrap();
        } else {
            match std::fs::read_to_string(&golden) {
                Ok(g) if g == rendered => {}
                Ok(g) => failures.push(format!("{name}: differs from {}\n--- golden\n{g}\n--- now\n{rendered}", golden.display())),
                Err(_) => failures.push(format!("{name}: no golden file {} (run with CONVC_BLESS=1)", golden.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

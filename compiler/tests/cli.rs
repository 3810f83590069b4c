//! The `convc` binary: exit codes, diagnostics on stderr, summary output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn convc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convc")).args(args).current_dir(root()).output().expect("run convc")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_accepts_the_shipped_specs() {
    let o = convc(&["check", "specs/lenet5.toml", "specs/fashion_tf.toml", "specs/alexnet.toml", "specs/vgg16.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("specs/alexnet.toml: ok (15 layers, 61,100,840 parameters)"), "{}", stderr(&o));
}

#[test]
fn check_fails_cleanly_on_bad_specs() {
    let o = convc(&["check", "specs/lenet5.toml", "compiler/tests/bad/alexnet_224.toml", "no/such/spec.toml"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("compiler/tests/bad/alexnet_224.toml:13:10"), "{err}");
    assert!(err.contains("55.25"), "{err}");
    assert!(err.contains("cannot read spec `no/such/spec.toml`"), "{err}");
    assert!(err.contains("2 of 3 specs have errors"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn summary_json_has_the_documented_fields() {
    let o = convc(&["summary", "--json", "--batch", "32", "specs/lenet5.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("summary --json prints JSON");
    assert_eq!(v["total_params"], 61_706);
    assert_eq!(v["total_macs"], 416_520);
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 8);
    assert_eq!(layers[0]["name"], "conv1");
    assert_eq!(layers[0]["type"], "conv2d");
    assert_eq!(layers[0]["output"], serde_json::json!([6, 28, 28]));
    assert_eq!(layers[0]["params"], 156);
    assert_eq!(layers[0]["macs"], 117_600);
    assert_eq!(layers[0]["activation_bytes"], 6 * 28 * 28 * 4);
    assert_eq!(layers[0]["params_formula"], "6 × (5·5·1 + 1) = 156");
    // Training memory: parameters, gradients and two Adam moments, plus the
    // input and every output kept for the batch.
    let t = &v["training"];
    assert_eq!(t["batch"], 32);
    let params = 61_706 * 4;
    assert_eq!(t["optimizer_state_bytes"], 2 * params);
    let acts: u64 = layers.iter().map(|l| l["activation_bytes"].as_u64().unwrap()).sum::<u64>() + 28 * 28 * 4;
    assert_eq!(t["activation_bytes"], acts * 32);
    assert_eq!(t["total_bytes"], 4 * params + acts * 32);
    // The plan fuses each conv with its pool.
    let stages: Vec<&str> = v["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(stages, ["conv1+pool1", "conv2+pool2", "flatten1", "dense1", "dense2", "dense3"]);
    assert_eq!(v["stages"][0]["fused"], true);
    assert_eq!(v["stages"][0]["keeps"], "pooled outputs + argmax");
}

#[test]
fn summary_table_shows_formulas_and_totals() {
    let o = convc(&["summary", "specs/alexnet.toml", "--optimizer", "sgd"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("64 × (11·11·3 + 1) = 23,296"), "{out}");
    assert!(out.contains("Total params                     61,100,840"), "{out}");
    assert!(out.contains("at batch 64 with sgd"), "{out}");
}

#[test]
fn summary_refuses_a_bad_spec_and_bad_arguments() {
    let o = convc(&["summary", "compiler/tests/bad/dense_without_flatten.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("add a flatten layer before it"));
    let o = convc(&["summary", "specs/lenet5.toml", "--batch", "0"]);
    assert_eq!(o.status.code(), Some(2), "clap reports usage errors with 2");
    assert!(stderr(&o).contains("--batch"));
}

#[test]
fn bench_json_reports_each_measurement() {
    let o = convc(&["bench", "specs/lenet5.toml", "--json", "--seconds", "0.05", "--batch", "4", "--threads", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    // jit and interp, each infer and train.
    assert_eq!(lines.len(), 4);
    for m in &lines {
        for key in ["images_per_s", "latency_us", "gflops", "peak_fraction"] {
            assert!(m[key].as_f64().unwrap() > 0.0, "{key} in {m}");
        }
        assert_eq!(m["batch"], 4);
        let ips = m["images_per_s"].as_f64().unwrap();
        let latency = m["latency_us"].as_f64().unwrap();
        assert!((ips * latency / 1e6 - 4.0).abs() < 1e-6, "images/s and latency per batch agree: {m}");
    }
    let jit: Vec<_> = lines.iter().filter(|m| m["backend"] == "jit").collect();
    assert_eq!(jit.len(), 2);
    assert!(jit.iter().all(|m| m["compile_ms"].as_f64().unwrap() > 0.0 && m["threads"] == 2));
    assert!(lines.iter().filter(|m| m["backend"] == "interp").all(|m| m.get("compile_ms").is_none() && m["threads"] == 1));
    assert_eq!(lines.iter().filter(|m| m["mode"] == "train").count(), 2);
}

/// Optimizer flags follow the rules a spec's `[training]` table applies to
/// the same keys: NaN, infinities, overflowing and out-of-range values are
/// refused before any data is read, naming the flag and the range.
#[test]
fn train_refuses_optimizer_flags_the_spec_would_refuse() {
    for (flag, value, range) in [
        ("--lr", "NaN", "from 0 to 10"),
        ("--lr", "-1", "from 0 to 10"),
        ("--lr", "inf", "from 0 to 10"),
        ("--lr", "1e40", "from 0 to 10"),
        ("--momentum", "NaN", "from 0 to 1"),
        ("--momentum", "-5", "from 0 to 1"),
        ("--weight-decay", "-10", "from 0 to 1"),
        ("--lr", "fast", "from 0 to 10"),
    ] {
        let o = convc(&["train", "specs/lenet5.toml", &format!("{flag}={value}"), "--data", "no/such/dir"]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flag}={value}: {err}");
        assert!(err.contains(&format!("invalid value '{value}' for '{flag}")) && err.contains(range), "{flag}={value}: {err}");
    }
}

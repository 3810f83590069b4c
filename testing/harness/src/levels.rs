//! Running a test at every instruction-set level this CPU has.
//!
//! The kernels pick their level once per process ([`cpu_level`], which
//! `CONVC_CPU` lowers), so a test that should cover every level runs its
//! body at the CPU's best level and calls [`at_lower_levels`] from a second
//! test, which runs the first again in a child process per lower level.

use std::process::Command;

use convc_runtime::cpu::{CpuLevel, cpu_level};

/// The level this process runs at, checked against `CONVC_CPU` when that
/// is set (a child that silently ran at another level would prove nothing).
pub fn running_level() -> CpuLevel {
    let level = cpu_level();
    if let Ok(asked) = std::env::var("CONVC_CPU") {
        assert_eq!(level.name(), asked, "CONVC_CPU={asked} was not honoured");
    }
    level
}

/// Run the test named `test` (exactly) of this test binary again with
/// `CONVC_CPU` set to each level below the CPU's best, and fail with the
/// child's output if it fails there. Returns the levels run; prints which
/// levels above this CPU's it could not run, so that a pass here does not
/// read as a pass of those.
pub fn at_lower_levels(test: &str) -> Vec<CpuLevel> {
    let best = cpu_level();
    let above: Vec<&str> = CpuLevel::ALL.into_iter().filter(|&l| l > best).map(CpuLevel::name).collect();
    if !above.is_empty() {
        println!("note: this CPU does not run {}: `{test}` ran at {} and below only", above.join(", "), best.name());
    }
    let lower: Vec<CpuLevel> = CpuLevel::ALL.into_iter().filter(|&l| l < best).collect();
    for &level in &lower {
        let exe = std::env::current_exe().expect("the test binary's path");
        let out = Command::new(exe)
            .args(["--exact", test, "--test-threads", "1"])
            .env("CONVC_CPU", level.name())
            .output()
            .expect("the test binary runs again");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "`{test}` at {}:\n{stdout}{stderr}", level.name());
        assert!(stdout.contains("1 passed"), "`{test}` did not run at {}:\n{stdout}", level.name());
        println!("`{test}` passed at {}", level.name());
    }
    lower
}

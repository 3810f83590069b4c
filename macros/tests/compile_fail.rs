//! `network!` on bad specs stops the build with the diagnostics `convc
//! check` prints (file, line:column, the arithmetic, the fix), placed on
//! the spec string. The expected compiler output is pinned in `ui/*.stderr`;
//! regenerate with `TRYBUILD=overwrite cargo test -p convc-macros`.

#[test]
fn bad_specs_stop_the_build_with_spec_diagnostics() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

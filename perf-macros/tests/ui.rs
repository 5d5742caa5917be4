//! Every compile error a user can hit, with its exact message and span, and the signatures the
//! macros must accept. The cases live beside this driver, in `tests/ui/` (`pass/`, `fail/`);
//! `TRYBUILD=overwrite cargo test -p perf-macros --test ui` writes the expected messages anew.

#[test]
fn ui() {
    // The cases compile as a user's code does: not through a compiler wrapper of this workspace
    // (`.ci/run` lints the workspace with clippy-driver as it builds), whose lints would add
    // their warnings to the expected messages. The one test of this binary: no thread reads the
    // environment meanwhile.
    std::env::remove_var("RUSTC_WORKSPACE_WRAPPER");
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}

//! Every compile error a user can hit, with its exact message and span, and the signatures the
//! macros must accept. The cases live beside this driver, in `tests/ui/` (`pass/`, `fail/`);
//! `TRYBUILD=overwrite cargo test -p perf-macros --test ui` writes the expected messages anew.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}

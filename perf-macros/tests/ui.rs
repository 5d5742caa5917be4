//! Every compile error a user can hit, with its exact message and span, and the signatures the
//! macros must accept. The cases live in the workspace's `ui-tests/` folder.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("../ui-tests/pass/*.rs");
    cases.compile_fail("../ui-tests/fail/*.rs");
}

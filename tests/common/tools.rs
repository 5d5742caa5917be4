//! Finding Prometheus's own tools (promtool) on PATH, and skipping a test without them, so that
//! the exposition is also checked by the reference parser where it is installed.

/// `name` in one of the directories of `PATH`.
pub fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `tool` from PATH, or `None` after saying that `test` is skipped and why (past the harness's
/// output capture, which shows `eprintln!` only for failing tests); a panic under `CI=true`,
/// where a missing Prometheus is a failure.
pub fn tool_or_skip(tool: &str, test: &str) -> Option<std::path::PathBuf> {
    use std::io::Write;
    if let Some(found) = find_on_path(tool) {
        return Some(found);
    }
    let why = format!(
        "{tool} is not on PATH (it comes with Debian's `prometheus` package: \
         apt-get install --no-install-recommends prometheus)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}; under CI=true this is a failure");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    None
}

/// `promtool`, or `None` after saying that `test` is skipped; see [`tool_or_skip`].
pub fn promtool_or_skip(test: &str) -> Option<std::path::PathBuf> {
    tool_or_skip("promtool", test)
}

/// Runs `promtool check metrics` on `text`; panics with promtool's output unless it passes
/// (exit 0: it parses, and the lint finds nothing).
pub fn promtool_check_metrics(promtool: &std::path::Path, text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    let mut stdin = child.stdin.take().expect("a piped stdin");
    let input = text.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("promtool runs");
    writer
        .join()
        .expect("the writer thread")
        .expect("promtool reads the exposition");
    assert!(
        output.status.success(),
        "promtool check metrics failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `python3`, if it can import `module`; else `None` after saying that `test` is skipped and
/// why (a panic under `CI=true`, as for [`tool_or_skip`]). `.ci/run` installs what it needs
/// (`pip3 install openai`).
pub fn python_with_or_skip(module: &str, test: &str) -> Option<std::path::PathBuf> {
    python_with_packages_or_skip(&[module], module, test)
}

/// `python3`, if it can import every one of `modules` (which PyPI's `packages`, separated by
/// spaces, install); else `None` after saying that `test` is skipped and why (a panic under
/// `CI=true`, as for [`tool_or_skip`]).
pub fn python_with_packages_or_skip(
    modules: &[&str],
    packages: &str,
    test: &str,
) -> Option<std::path::PathBuf> {
    use std::io::Write;
    let python = find_on_path("python3");
    let imports = python.as_ref().is_some_and(|python| {
        std::process::Command::new(python)
            .args(["-c", &format!("import {}", modules.join(", "))])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    if imports {
        return python;
    }
    let why = format!(
        "python3 cannot import {} (PyPI's {packages}: pip3 install {packages}, or \
         python3 -m pip install --break-system-packages {packages})",
        modules.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}; under CI=true this is a failure");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    None
}

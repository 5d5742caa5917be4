//! Compile-time stage checking: a stage name must be one of the five built in or one the user
//! declared in Cargo.toml, and a misspelled one is reported at its token with the closest name.

mod manifest;
mod suggest;

use proc_macro2::Span;
use syn::{Error, Ident, Result};

/// Stages a user may time with `#[perf_stage]`.
const STAGE_MACRO_STAGES: [&str; 3] = ["request_parsing", "auth_validation", "request_preparation"];

/// Stages recorded by other attributes, with the attribute that records each.
const RECORDED_ELSEWHERE: [(&str, &str); 2] = [
    ("backend_fetch", "#[perf_backend]"),
    ("stream_processing", "#[perf_stream]"),
];

/// A checked stage name, with what its expansion must carry.
pub struct CheckedStage {
    pub name: String,
    pub span: Span,
    /// The manifest the name was declared in, when it is not built in: the expansion makes the
    /// build depend on it, so removing the declaration is noticed.
    pub declared_in: Option<String>,
}

/// Checks `name` against the built-in stages and the ones declared in the crate's Cargo.toml.
pub fn check(name: &Ident) -> Result<CheckedStage> {
    let text = name.to_string();
    let text = text.strip_prefix("r#").unwrap_or(&text).to_string();
    if STAGE_MACRO_STAGES.contains(&text.as_str()) {
        return Ok(CheckedStage {
            name: text,
            span: name.span(),
            declared_in: None,
        });
    }
    if let Some((_, attribute)) = RECORDED_ELSEWHERE.iter().find(|(stage, _)| *stage == text) {
        return Err(Error::new(
            name.span(),
            format!("the `{text}` stage is recorded by {attribute}: put that attribute on the call instead"),
        ));
    }
    let declared = manifest::declared_stages();
    if declared.stages.contains(&text) {
        return Ok(CheckedStage {
            name: text,
            span: name.span(),
            declared_in: declared.path,
        });
    }
    let known: Vec<&str> = STAGE_MACRO_STAGES
        .iter()
        .copied()
        .chain(declared.stages.iter().map(String::as_str))
        .collect();
    let mut message = format!("unknown stage `{text}`");
    if let Some(closest) = suggest::closest(&text, &known) {
        message.push_str(&format!("; did you mean `{closest}`?"));
    }
    message.push_str(&format!(
        "\nknown stages: {}; declare your own in Cargo.toml: [package.metadata.perf] stages = [\"{text}\"]",
        known.join(", ")
    ));
    if let Some(problem) = declared.problem {
        message.push_str(&format!("\nnote: {problem}"));
    }
    Err(Error::new(name.span(), message))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The macros' list and the runtime's are the same five stages in the same order: the
    /// macros cannot depend on the runtime (it re-exports them), so this test keeps them equal.
    #[test]
    fn built_in_stages_are_the_runtimes() {
        let ours: Vec<&str> = STAGE_MACRO_STAGES
            .iter()
            .copied()
            .chain(RECORDED_ELSEWHERE.iter().map(|(stage, _)| *stage))
            .collect();
        let runtime: Vec<&str> = perf_runtime::Stage::BUILTIN
            .iter()
            .map(|stage| stage.name())
            .collect();
        assert_eq!(ours, runtime);
    }
}

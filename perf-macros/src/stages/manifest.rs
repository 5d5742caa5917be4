//! The stages a crate declares in its Cargo.toml:
//!
//! ```toml
//! [package.metadata.perf]
//! stages = ["cache_lookup", "moderation"]
//! ```
//!
//! Parsed as TOML, so every way of writing it works: single or double quotes, comments,
//! multi-line arrays with a trailing comma, dotted keys (`package.metadata.perf.stages = [..]`)
//! and inline tables (`metadata = { perf = { stages = [..] } }`).

use std::ops::Range;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// What the crate being compiled declares.
#[derive(Default)]
pub struct Declared {
    pub stages: Vec<String>,
    /// The manifest read, when it declares stages.
    pub path: Option<String>,
    /// Why declarations could not be read, to show beside an unknown-stage error.
    pub problem: Option<String>,
}

/// Reads the declared stages of the crate being compiled (`CARGO_MANIFEST_DIR/Cargo.toml`).
pub fn declared_stages() -> Declared {
    let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return Declared::default();
    };
    let path = PathBuf::from(dir).join("Cargo.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => match parse(&text) {
            Ok(stages) if stages.is_empty() => Declared::default(),
            Ok(stages) => Declared {
                stages,
                path: Some(path.display().to_string()),
                problem: None,
            },
            Err(problem) => Declared {
                problem: Some(format!("{}:{problem}", path.display())),
                ..Declared::default()
            },
        },
        Err(_) => Declared::default(),
    }
}

/// The `stages` array of the `package.metadata.perf` table, however the TOML spells it. An error
/// starts with the line it is about (`12: ...`).
fn parse(manifest: &str) -> Result<Vec<String>, String> {
    let at = |span: Option<Range<usize>>, message: &str| {
        let line = span.map_or(1, |span| line_of(manifest, span.start));
        format!("{line}: {message}")
    };
    let document = DeTable::parse(manifest).map_err(|error| {
        at(
            error.span(),
            &format!("not valid TOML: {}", error.message().trim_end()),
        )
    })?;
    let mut table = document.get_ref();
    for key in ["package", "metadata", "perf"] {
        let Some(value) = table.get(key) else {
            return Ok(Vec::new());
        };
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ if key == "perf" => {
                return Err(at(
                    Some(value.span()),
                    "`package.metadata.perf` must be a table, as in [package.metadata.perf]",
                ))
            }
            _ => return Ok(Vec::new()),
        }
    }
    let Some(stages) = table.get("stages") else {
        return Ok(Vec::new());
    };
    let DeValue::Array(array) = stages.get_ref() else {
        return Err(at(
            Some(stages.span()),
            "`stages` in [package.metadata.perf] must be an array of strings, as in \
             stages = [\"cache_lookup\"]",
        ));
    };
    array
        .iter()
        .map(|item| {
            let written = manifest.get(item.span()).unwrap_or_default();
            stage_name(item, written).map_err(|message| at(Some(item.span()), &message))
        })
        .collect()
}

/// One element of `stages` (`written` so in the manifest): a string that is a valid stage name.
fn stage_name(item: &Spanned<DeValue>, written: &str) -> Result<String, String> {
    let Some(name) = item.get_ref().as_str() else {
        return Err(format!(
            "`{written}` in `stages` is not a string: write each stage as a string, as in \
             \"cache_lookup\""
        ));
    };
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name.to_string())
    } else {
        Err(format!(
            "stage `{name}` is not a valid name (letters, digits and `_`)"
        ))
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_stages_array() {
        let manifest = r#"
[package]
name = "gateway"
stages = ["not_this_one"]

[package.metadata.perf]
# our own stages
stages = [
    "cache_lookup", # before the backend
    "moderation",
]

[dependencies]
"#;
        assert_eq!(parse(manifest).unwrap(), ["cache_lookup", "moderation"]);
    }

    #[test]
    fn single_quoted_strings() {
        let manifest = "[package.metadata.perf]\nstages = ['cache_lookup', \"moderation\"]\n";
        assert_eq!(parse(manifest).unwrap(), ["cache_lookup", "moderation"]);
    }

    #[test]
    fn dotted_keys() {
        let manifest = "[package]\nname = \"x\"\npackage_like = 1\n\
                        metadata.perf.stages = ['cache_lookup']\n";
        assert_eq!(parse(manifest).unwrap(), ["cache_lookup"]);
        let top = "package.name = \"x\"\npackage.metadata.perf.stages = [\"moderation\"]\n";
        assert_eq!(parse(top).unwrap(), ["moderation"]);
        let table = "[package.metadata]\nperf.stages = [\"moderation\"]\n";
        assert_eq!(parse(table).unwrap(), ["moderation"]);
    }

    #[test]
    fn inline_tables() {
        let manifest = "[package]\nname = \"x\"\n\
                        metadata = { perf = { stages = [\"cache_lookup\"] }, other = 1 }\n";
        assert_eq!(parse(manifest).unwrap(), ["cache_lookup"]);
        let inner = "[package.metadata]\nperf = { stages = ['moderation'] }\n";
        assert_eq!(parse(inner).unwrap(), ["moderation"]);
    }

    #[test]
    fn comments_and_multi_line_arrays_with_trailing_commas() {
        let manifest = r#"
[package.metadata.perf] # perf's own table
# stages = ["commented_out"]
stages = [ # ours
    'cache_lookup',   # a comment with "quotes", [brackets] and a # sign
    # 'not_this_one',
    "moderation",
    "billing",
]
other = "]" # a closing bracket in a string after the array
"#;
        assert_eq!(
            parse(manifest).unwrap(),
            ["cache_lookup", "moderation", "billing"]
        );
        let one_line = "[package.metadata.perf]\nstages = [\"cache_lookup\",]\n";
        assert_eq!(parse(one_line).unwrap(), ["cache_lookup"]);
    }

    #[test]
    fn other_tables_of_the_same_name_do_not_count() {
        let manifest = "[workspace.metadata.perf]\nstages = [\"not_this\"]\n\
                        [package.metadata.other]\nstages = [\"nor_this\"]\n";
        assert!(parse(manifest).unwrap().is_empty());
    }

    #[test]
    fn no_table_means_no_stages() {
        assert!(parse("[package]\nname = \"x\"\n").unwrap().is_empty());
        assert!(parse("[package.metadata.perf]\nlabel_cap = 3\n")
            .unwrap()
            .is_empty());
        assert!(parse("[package]\nmetadata = 3\n").unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_names() {
        let manifest = "[package.metadata.perf]\nstages = [\"cache lookup\"]\n";
        let error = parse(manifest).unwrap_err();
        assert_eq!(
            error,
            "2: stage `cache lookup` is not a valid name (letters, digits and `_`)"
        );
    }

    #[test]
    fn rejects_a_stage_that_is_not_a_string() {
        let manifest = "[package.metadata.perf]\nstages = [\n  \"cache_lookup\",\n  3,\n]\n";
        let error = parse(manifest).unwrap_err();
        assert_eq!(
            error,
            "4: `3` in `stages` is not a string: write each stage as a string, as in \
             \"cache_lookup\""
        );
    }

    #[test]
    fn rejects_stages_that_are_not_an_array() {
        let manifest = "[package.metadata.perf]\nstages = \"cache_lookup\"\n";
        let error = parse(manifest).unwrap_err();
        assert!(error.starts_with("2: `stages` in [package.metadata.perf] must be an array"));
        let table = "[package.metadata]\nperf = \"cache_lookup\"\n";
        assert!(parse(table)
            .unwrap_err()
            .starts_with("2: `package.metadata.perf` must be a table"));
    }

    #[test]
    fn malformed_toml_names_its_line() {
        let manifest =
            "[package]\nname = \"x\"\n\n[package.metadata.perf]\nstages = [\"a\" \"b\"]\n";
        let error = parse(manifest).unwrap_err();
        assert!(error.starts_with("5: not valid TOML: "), "{error}");
    }
}

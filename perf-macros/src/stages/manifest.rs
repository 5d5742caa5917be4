//! The stages a crate declares in its Cargo.toml:
//!
//! ```toml
//! [package.metadata.perf]
//! stages = ["cache_lookup", "moderation"]
//! ```
//!
//! Read with a small scanner for this one key, so the macro crate needs no TOML parser.

use std::path::PathBuf;

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
                problem: Some(format!("{}: {problem}", path.display())),
                ..Declared::default()
            },
        },
        Err(_) => Declared::default(),
    }
}

/// The `stages` array of the `[package.metadata.perf]` table.
fn parse(manifest: &str) -> Result<Vec<String>, String> {
    let mut in_table = false;
    let mut lines = manifest.lines().map(strip_comment);
    while let Some(line) = lines.next() {
        let line = line.trim();
        if line.starts_with('[') {
            in_table = line.replace(' ', "") == "[package.metadata.perf]";
            continue;
        }
        let Some(value) = in_table
            .then(|| line.strip_prefix("stages"))
            .flatten()
            .and_then(|rest| rest.trim_start().strip_prefix('='))
        else {
            continue;
        };
        let mut array = value.trim().to_string();
        while !array.contains(']') {
            match lines.next() {
                Some(more) => array.push_str(more),
                None => return Err("`stages` is not a closed array of strings".into()),
            }
        }
        return names(&array);
    }
    Ok(Vec::new())
}

fn names(array: &str) -> Result<Vec<String>, String> {
    let inner = array
        .trim()
        .strip_prefix('[')
        .and_then(|a| a.split(']').next())
        .ok_or("`stages` must be an array of strings")?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let name = item
                .strip_prefix('"')
                .and_then(|i| i.strip_suffix('"'))
                .ok_or_else(|| format!("`{item}` in `stages` is not a string"))?;
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
        })
        .collect()
}

fn strip_comment(line: &str) -> &str {
    // Stage names hold no `#`, so a `#` outside the array's strings starts a comment.
    line.split('#').next().unwrap_or(line)
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
    fn no_table_means_no_stages() {
        assert!(parse("[package]\nname = \"x\"\n").unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_names() {
        let manifest = "[package.metadata.perf]\nstages = [\"cache lookup\"]\n";
        assert!(parse(manifest).is_err());
    }
}

//! The Prometheus text format read back by a parser of the tests' own, stricter than a
//! scraper: every line a `# HELP`/`# TYPE` comment or a sample of the family typed last, every
//! name and escape valid. `promtool check metrics` checks the same text where it is installed
//! (`tests/common/tools.rs`).
//!
//! Plain std, so that the user crates (`tests/user-crates/`, outside the workspace) include this
//! very file by `#[path]` and parse with the same checks, depending on perf alone.

/// Label values a naive text exposition breaks on, each one a model name a client may send (a
/// valid JSON string, not blank: a gateway refuses those) and distinct within 128 bytes, so that
/// the runtime's tests and the gateway's check the same escapes: quotes, backslashes, newlines,
/// NUL, a sample or a comment smuggled in, Unicode that prints oddly or not at all.
pub const HOSTILE_LABEL_VALUES: &[&str] = &[
    "gpt\"4o",
    "back\\slash\\",
    "new\nline\n",
    "nul\0byte",
    "\\\"\n\0",
    "brace} value=\"1\",le=\"+Inf\"",
    "# HELP not_a_comment",
    "# TYPE x counter\nx 1",
    "tab\tcarriage\rreturn",
    "ünïcødé 🚀",
    "\u{202e}right-to-left override",
    "zero\u{200b}width\u{200d}joiner",
    "\u{feff}byte order mark",
    "line\u{2028}para\u{2029}separators",
    "combining e\u{301}\u{301}\u{301}\u{20dd}",
    "nonchars \u{fffe}\u{ffff}\u{10ffff}",
    "del \u{7f} c1 \u{85}\u{9b}",
    "\\n literally",
    "{}=,\"\"",
    "\u{1}\u{2}\u{1b}[31mred",
];

/// One sample line of the text exposition, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// Label names and their unescaped values, in order.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let first_ok = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    match chars.next() {
        Some(c) if first_ok(c) => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

/// A sample's value (or an `le`), with the text format's spellings of the infinities and NaN.
pub fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s
            .parse::<f64>()
            .map_err(|e| format!("bad value {s:?}: {e}")),
    }
}

/// Parses one sample line: `name{label="value",...} value [timestamp]`.
pub fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let name = &line[..name_end];
    if !is_name(name, true) {
        return Err(format!("bad metric name {name:?} in {line:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest
                .find('=')
                .ok_or_else(|| format!("label without '=' in {line:?}"))?;
            let label_name = &rest[..eq];
            if !is_name(label_name, false) {
                return Err(format!("bad label name {label_name:?} in {line:?}"));
            }
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or_else(|| format!("unquoted label value in {line:?}"))?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err(format!("unterminated label value in {line:?}")),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?} in {line:?}")),
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            labels.push((label_name.to_owned(), value));
            rest = &rest[end + 1..];
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err(format!("expected ',' or '}}' after a label in {line:?}"));
            }
        }
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or_else(|| format!("no space before the value in {line:?}"))?;
    let mut fields = rest.split(' ');
    let value = parse_value(fields.next().unwrap_or_default())?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|e| format!("bad timestamp {ts:?} in {line:?}: {e}"))?;
    }
    if fields.next().is_some() {
        return Err(format!("trailing fields in {line:?}"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Checks a whole text exposition: it ends with a newline, every line is a `# HELP`/`# TYPE`
/// comment or a sample, and every sample follows a `# TYPE` of its family. Returns the samples.
pub fn check_exposition(text: &str) -> Result<Vec<Sample>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the exposition does not end with a newline".into());
    }
    let mut samples = Vec::new();
    let mut typed: Option<String> = None;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match words.next() {
                Some("HELP") => {
                    let name = words.next().unwrap_or_default();
                    if !is_name(name, true) {
                        return Err(format!("bad HELP line {line:?}"));
                    }
                }
                Some("TYPE") => {
                    let name = words.next().unwrap_or_default();
                    let kind = words.next().unwrap_or_default();
                    if !is_name(name, true)
                        || !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
                    {
                        return Err(format!("bad TYPE line {line:?}"));
                    }
                    typed = Some(name.to_owned());
                }
                _ => {}
            }
            continue;
        }
        let sample = parse_sample(line)?;
        let family = typed
            .as_deref()
            .ok_or_else(|| format!("sample before any TYPE: {line:?}"))?;
        let own = sample.name == family
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| sample.name.strip_suffix(suffix) == Some(family));
        if !own {
            return Err(format!("sample {line:?} outside its family {family}"));
        }
        samples.push(sample);
    }
    Ok(samples)
}

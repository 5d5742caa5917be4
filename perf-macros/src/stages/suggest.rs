//! "Did you mean": the known name closest to a misspelled one.

/// The candidate closest to `wrong` by edit distance, if it is close enough to be a typo.
pub fn closest<'a>(wrong: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (wrong.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (edit_distance(wrong, c), *c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// Levenshtein distance, counted in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_ignores_strangers() {
        let known = ["request_parsing", "auth_validation", "request_preparation"];
        assert_eq!(closest("request_parsng", &known), Some("request_parsing"));
        assert_eq!(closest("auth_validaton", &known), Some("auth_validation"));
        assert_eq!(closest("request_prep", &known), None);
        assert_eq!(closest("billing", &known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}

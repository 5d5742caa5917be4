//! The Prometheus text exposition, parsed: every sample line into its metric name, labels and
//! value, and the `# TYPE` of each family, so that checks read exact values of exact series
//! (a malformed line fails the test). Values are read summed over the series whose labels
//! include the given ones, as a PromQL `sum` does.

use std::collections::{BTreeMap, BTreeSet};

/// The text format's checking parser of the workspace's tests, the test kit's file included by
/// path (it is plain std), so that this crate depends on perf alone, as an application does.
#[path = "../../../test-kit/src/exposition.rs"]
pub mod text;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A whole exposition.
pub struct Exposition {
    /// The text, for failure messages.
    pub text: String,
    pub samples: Vec<Sample>,
    /// Family name to its type (`counter`, `histogram`, ...).
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    /// Parses `text`; panics unless [`text::check_exposition`] takes it whole (every sample
    /// valid and after the `# TYPE` of its family) and each family is typed once.
    pub fn parse(text: &str) -> Exposition {
        let samples = text::check_exposition(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let samples = samples
            .into_iter()
            .map(|s| Sample {
                name: s.name,
                labels: s.labels.into_iter().collect(),
                value: s.value,
            })
            .collect();
        let mut types = BTreeMap::new();
        for rest in text.lines().filter_map(|line| line.strip_prefix("# TYPE ")) {
            let (family, kind) = rest.split_once(' ').expect("# TYPE name type");
            let previous = types.insert(family.to_owned(), kind.to_owned());
            assert!(previous.is_none(), "{family} has two # TYPE lines");
        }
        let exposition = Exposition {
            text: text.to_owned(),
            samples,
            types,
        };
        exposition.check_histograms();
        exposition
    }

    /// The type of `family`, if it has a `# TYPE` line.
    pub fn kind(&self, family: &str) -> Option<&str> {
        self.types.get(family).map(String::as_str)
    }

    /// The samples named `name` whose labels include `labels`.
    pub fn series<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum of the samples named `name` whose labels include `labels`: 0 if none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series(name, labels).map(|s| s.value).sum()
    }

    /// [`sum`](Self::sum) of a count: a whole number.
    #[track_caller]
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let sum = self.sum(name, labels);
        assert!(sum >= 0.0 && sum.fract() == 0.0, "{name}{labels:?} = {sum}");
        sum as u64
    }

    /// The observations of histogram `family` whose labels include `labels`.
    #[track_caller]
    pub fn observations(&self, family: &str, labels: &[(&str, &str)]) -> u64 {
        assert_eq!(self.kind(family), Some("histogram"), "{family}");
        self.count(&format!("{family}_count"), labels)
    }

    /// Counter `family` (its samples are `family` in the text format), summed.
    #[track_caller]
    pub fn counter(&self, family: &str, labels: &[(&str, &str)]) -> u64 {
        assert_eq!(self.kind(family), Some("counter"), "{family}");
        self.count(family, labels)
    }

    /// The values of `label` among the samples named `name`.
    pub fn label_values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.series(name, &[])
            .filter_map(|s| s.labels.get(label).cloned())
            .collect()
    }

    /// The values of `label` among the samples named `name` that are not 0.
    pub fn label_values_counted(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.series(name, &[])
            .filter(|s| s.value != 0.0)
            .filter_map(|s| s.labels.get(label).cloned())
            .collect()
    }

    /// Every histogram series: its `_count` equals its `+Inf` bucket, its buckets never
    /// decrease, and it has a `_sum`.
    fn check_histograms(&self) {
        for (family, _) in self.types.iter().filter(|(_, kind)| *kind == "histogram") {
            let count_name = format!("{family}_count");
            let bucket_name = format!("{family}_bucket");
            for count in self.series(&count_name, &[]) {
                let labels: Vec<(&str, &str)> = count
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                // Its buckets: the series with its labels and `le`, not those of a series whose
                // labels include its own.
                let mut buckets: Vec<(f64, f64)> = self
                    .series(&bucket_name, &labels)
                    .filter(|b| b.labels.len() == labels.len() + 1)
                    .map(|b| (text::parse_value(&b.labels["le"]).expect("le"), b.value))
                    .collect();
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                let what = format!("{family}{labels:?}");
                assert_eq!(buckets.last().map(|b| b.0), Some(f64::INFINITY), "{what}");
                assert_eq!(buckets.last().map(|b| b.1), Some(count.value), "{what}");
                assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{what}");
                let sum_name = format!("{family}_sum");
                let sums = self.series(&sum_name, &labels);
                let sums = sums.filter(|s| s.labels.len() == labels.len());
                assert_eq!(sums.count(), 1, "{what} has one _sum");
            }
        }
    }
}

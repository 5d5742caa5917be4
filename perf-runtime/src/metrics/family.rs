//! A metric family: series made on demand from label values, read out as plain data.

use std::borrow::Cow;
use std::collections::HashMap;

use prometheus::core::Desc;

use super::leaked_map::{Key, LabelValues, LeakedMap};
use super::reading::{Extras, FamilyReading, Kind, ReadFamily, SeriesReading, Value};

/// What a family is made of: a histogram, a counter, a share triple.
pub(crate) trait Series: Send + Sync + 'static {
    /// The Prometheus type of the family.
    const KIND: Kind;

    /// Reads this series: one `value` per sample set, each with the label the series adds
    /// itself, if any (the `stage` of a share triple).
    fn read(&self, want: Extras, push: &mut dyn FnMut(Option<(&'static str, &'static str)>, Value));
}

/// A family of series of `T`, one per distinct tuple of label values.
///
/// Series live for the process (`&'static T`), so the handles a request holds need no reference
/// counting; how many there can be is bounded by the label budgets of the callers.
pub(crate) struct Family<T: 'static> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    desc: Desc,
    make: Box<dyn Fn() -> T + Send + Sync>,
    series: LeakedMap<LabelValues, T>,
}

impl<T: Series> Family<T> {
    /// A family whose series are keyed by `labels`; `implied` are labels the series add
    /// themselves (the `stage` of a share triple).
    pub fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        implied: &[&str],
        make: impl Fn() -> T + Send + Sync + 'static,
    ) -> Self {
        let all = labels
            .iter()
            .chain(implied)
            .map(|l| l.to_string())
            .collect();
        Family {
            name,
            help,
            labels,
            desc: Desc::new(name.into(), help.into(), all, HashMap::new())
                .expect("the family definitions are valid"),
            make: Box::new(make),
            series: LeakedMap::new(),
        }
    }

    /// The series for `values` (one per label, in order), made on first use. Takes a read lock
    /// and hashes the values: resolve once and keep the handle.
    pub fn get(&self, values: &[&str]) -> &'static T {
        debug_assert_eq!(values.len(), self.labels.len());
        self.series.get_or_make(&values as &dyn Key, || {
            (LabelValues::new(values), (self.make)())
        })
    }

    /// The series for `values`, if it was made already: a read lock and a hash, no allocation.
    pub fn find(&self, values: &[&str]) -> Option<&'static T> {
        self.series.find(&values as &dyn Key)
    }

    /// The name, with its prefix.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The descriptor the registry checks names against.
    pub fn desc(&self) -> &Desc {
        &self.desc
    }
}

impl<T: Series> ReadFamily for Family<T> {
    fn name(&self) -> &'static str {
        self.name
    }

    /// Every series, labels sorted by name, series sorted by label values: the order of
    /// `Registry::gather`, so that every way out shows the same bytes.
    fn read(&self, want: Extras) -> FamilyReading {
        let mut series = Vec::new();
        self.series.for_each(|key, values| {
            values.read(want, &mut |implied, value| {
                let mut labels: Vec<(Cow<'static, str>, String)> = self
                    .labels
                    .iter()
                    .zip(key.values())
                    .map(|(name, value)| (Cow::Borrowed(*name), value.to_string()))
                    .chain(implied.map(|(name, value)| (Cow::Borrowed(name), value.to_string())))
                    .collect();
                labels.sort_by(|a, b| a.0.cmp(&b.0));
                series.push(SeriesReading { labels, value });
            });
        });
        series.sort_by(|a, b| values(a).cmp(values(b)));
        FamilyReading {
            name: Cow::Borrowed(self.name),
            help: Cow::Borrowed(self.help),
            kind: T::KIND,
            series,
        }
    }
}

/// A series' label values, in label-name order: what `Registry::gather` sorts by.
fn values(series: &SeriesReading) -> impl Iterator<Item = &str> {
    series.labels.iter().map(|(_, value)| value.as_str())
}

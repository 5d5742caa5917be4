//! A metric family: series made on demand from label values, read out as plain data.

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::RwLock;

use prometheus::core::Desc;

use super::reading::{Detail, FamilyReading, Kind, ReadFamily, SeriesReading, Value};

/// What a family is made of: a histogram, a counter, a share triple.
pub(crate) trait Series: Send + Sync + 'static {
    /// The Prometheus type of the family.
    const KIND: Kind;

    /// Reads this series: one `value` per sample set, each with the label the series adds
    /// itself, if any (the `stage` of a share triple).
    fn read(&self, want: Detail, push: &mut dyn FnMut(Option<(&'static str, &'static str)>, Value));
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
    series: RwLock<HashMap<OwnedKey, &'static T>>,
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
            series: RwLock::new(HashMap::new()),
        }
    }

    /// The series for `values` (one per label, in order), made on first use. Takes a read lock
    /// and hashes the values: resolve once and keep the handle.
    pub fn get(&self, values: &[&str]) -> &'static T {
        debug_assert_eq!(values.len(), self.labels.len());
        let key: &dyn Key = &values;
        if let Some(&found) = self
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return found;
        }
        let mut series = self.series.write().unwrap_or_else(|e| e.into_inner());
        let owned = OwnedKey(values.iter().map(|v| Box::<str>::from(*v)).collect());
        series
            .entry(owned)
            .or_insert_with(|| Box::leak(Box::new((self.make)())))
    }

    /// The series for `values`, if it was made already: a read lock and a hash, no allocation.
    pub fn find(&self, values: &[&str]) -> Option<&'static T> {
        let key: &dyn Key = &values;
        self.series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
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
    fn read(&self, want: Detail) -> FamilyReading {
        let mut series = Vec::new();
        for (key, values) in self.series.read().unwrap_or_else(|e| e.into_inner()).iter() {
            values.read(want, &mut |implied, value| {
                let mut labels: Vec<(Cow<'static, str>, String)> = self
                    .labels
                    .iter()
                    .zip(key.0.iter())
                    .map(|(name, value)| (Cow::Borrowed(*name), value.to_string()))
                    .chain(implied.map(|(name, value)| (Cow::Borrowed(name), value.to_string())))
                    .collect();
                labels.sort_by(|a, b| a.0.cmp(&b.0));
                series.push(SeriesReading { labels, value });
            });
        }
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

/// Label values, looked up without allocating: an owned key and a borrowed `&[&str]` hash and
/// compare alike through this view.
trait Key {
    fn part(&self, i: usize) -> Option<&str>;
}

impl Key for &[&str] {
    fn part(&self, i: usize) -> Option<&str> {
        self.get(i).copied()
    }
}

#[derive(PartialEq, Eq)]
struct OwnedKey(Box<[Box<str>]>);

impl Key for OwnedKey {
    fn part(&self, i: usize) -> Option<&str> {
        self.0.get(i).map(|s| &**s)
    }
}

impl Hash for dyn Key + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut i = 0;
        while let Some(part) = self.part(i) {
            part.hash(state);
            i += 1;
        }
        state.write_usize(i);
    }
}

impl PartialEq for dyn Key + '_ {
    fn eq(&self, other: &Self) -> bool {
        let mut i = 0;
        loop {
            match (self.part(i), other.part(i)) {
                (None, None) => return true,
                (Some(a), Some(b)) if a == b => i += 1,
                _ => return false,
            }
        }
    }
}

impl Eq for dyn Key + '_ {}

impl Hash for OwnedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn Key).hash(state)
    }
}

impl<'a> Borrow<dyn Key + 'a> for OwnedKey {
    fn borrow(&self) -> &(dyn Key + 'a) {
        self
    }
}

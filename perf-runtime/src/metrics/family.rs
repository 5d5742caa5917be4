//! A metric family: series made on demand from label values, collected for the registry.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::RwLock;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};

/// What a family is made of: a histogram, a counter, a share triple.
pub(crate) trait Series: Send + Sync + 'static {
    /// The Prometheus type of the family.
    const TYPE: MetricType;

    /// Pushes this series' metric(s), given `metric` already labelled, onto `out`.
    fn collect_into(&self, metric: Metric, out: &mut Vec<Metric>);
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

    /// The family as the registry wants it: every series, sorted by label values.
    fn family(&self) -> MetricFamily {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut sorted: Vec<_> = series.iter().collect();
        sorted.sort_by(|a, b| a.0 .0.cmp(&b.0 .0));
        let mut metrics = Vec::with_capacity(sorted.len());
        for (key, series) in sorted {
            let mut labels: Vec<LabelPair> = self
                .labels
                .iter()
                .zip(key.0.iter())
                .map(|(name, value)| {
                    let mut pair = LabelPair::default();
                    pair.set_name((*name).into());
                    pair.set_value(value.to_string());
                    pair
                })
                .collect();
            labels.sort_by(|a, b| a.name().cmp(b.name()));
            series.collect_into(Metric::from_label(labels), &mut metrics);
        }
        let mut family = MetricFamily::default();
        family.set_name(self.name.into());
        family.set_help(self.help.into());
        family.set_field_type(T::TYPE);
        family.set_metric(metrics);
        family
    }
}

/// Registers a `'static` family in a registry.
pub(crate) struct Registered<T: 'static>(pub &'static Family<T>);

impl<T: Series> Collector for Registered<T> {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let family = self.0.family();
        if family.get_metric().is_empty() {
            Vec::new()
        } else {
            vec![family]
        }
    }
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

//! The map behind every "made on first use, kept for the process" lookup: a family's series, an
//! endpoint's backend sets and tenants, the endpoints, a label's admitted values, the stage names.
//!
//! A value is made once, leaked, and handed out as `&'static V`, so that whoever keeps it (a
//! static, an endpoint's handles, a per-thread cache) needs no reference counting. A lookup of a
//! value made before takes the read lock and hashes the key: no allocation, no write lock. Only
//! the first lookup of a key takes the write lock, looks again (another thread may have made it
//! meanwhile) and makes it.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{RwLock, RwLockReadGuard};

/// Values made on first use and leaked, by key.
pub(crate) struct LeakedMap<K, V: 'static> {
    map: RwLock<HashMap<K, &'static V>>,
}

impl<K: Hash + Eq, V: 'static> LeakedMap<K, V> {
    pub fn new() -> Self {
        LeakedMap {
            map: RwLock::new(HashMap::new()),
        }
    }

    /// The value of `key`, if it was made: a read lock and a hash.
    pub fn find<Q>(&self, key: &Q) -> Option<&'static V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read().get(key).copied()
    }

    /// The value of `key`, made on first use by `make` (the key to keep, and the value).
    pub fn get_or_make<Q>(&self, key: &Q, make: impl FnOnce() -> (K, V)) -> &'static V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.get_or_try_make(key, |_| true, |_| make()) {
            Some(found) => found,
            None => unreachable!("room is always granted"),
        }
    }

    /// The value of `key`, made on first use by `make` if `room(len)` grants it one, where
    /// `len` is how many values there are: `None` if it does not. `room` is asked under the
    /// read lock first, so that a map that is full turns new keys away without the write lock,
    /// and again under the write lock, with `make`, so that a cap is never passed. `make` gets
    /// `len` too (a value numbered by its arrival).
    pub fn get_or_try_make<Q>(
        &self,
        key: &Q,
        room: impl Fn(usize) -> bool,
        make: impl FnOnce(usize) -> (K, V),
    ) -> Option<&'static V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        {
            let map = self.read();
            if let Some(&found) = map.get(key) {
                return Some(found);
            }
            if !room(map.len()) {
                return None;
            }
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&found) = map.get(key) {
            return Some(found);
        }
        let len = map.len();
        if !room(len) {
            return None;
        }
        let (owned, value) = make(len);
        let value: &'static V = Box::leak(Box::new(value));
        map.insert(owned, value);
        Some(value)
    }

    /// Every key and value, under the read lock (values made meanwhile wait for it).
    pub fn for_each(&self, mut each: impl FnMut(&K, &'static V)) {
        for (key, &value) in self.read().iter() {
            each(key, value);
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<K, &'static V>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Label values as a key that is looked up without allocating: an owned [`LabelValues`] and a
/// borrowed `&[&str]` hash and compare alike through this view (`&values as &dyn Key`).
pub(crate) trait Key {
    fn part(&self, i: usize) -> Option<&str>;
}

impl Key for &[&str] {
    fn part(&self, i: usize) -> Option<&str> {
        self.get(i).copied()
    }
}

/// Label values, owned: the key a map keeps.
#[derive(PartialEq, Eq)]
pub(crate) struct LabelValues(Box<[Box<str>]>);

impl LabelValues {
    pub fn new(values: &[&str]) -> Self {
        LabelValues(values.iter().map(|v| Box::<str>::from(*v)).collect())
    }

    /// The values, in order.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|v| &**v)
    }
}

impl Key for LabelValues {
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

impl Hash for LabelValues {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn Key).hash(state)
    }
}

impl<'a> Borrow<dyn Key + 'a> for LabelValues {
    fn borrow(&self) -> &(dyn Key + 'a) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_each_key_once_and_hands_out_the_same_value() {
        let map: LeakedMap<Box<str>, String> = LeakedMap::new();
        let a = map.get_or_make("a", || ("a".into(), "made a".into()));
        let again = map.get_or_make("a", || unreachable!("made once"));
        assert!(std::ptr::eq(a, again));
        assert_eq!(map.find("a").map(String::as_str), Some("made a"));
        assert_eq!(map.find("b"), None);
    }

    #[test]
    fn room_caps_the_map_and_make_numbers_the_values() {
        let map: LeakedMap<Box<str>, usize> = LeakedMap::new();
        let room = |len| len < 2;
        for (key, n) in [("a", 0), ("b", 1), ("a", 0)] {
            let made = map.get_or_try_make(key, room, |len| (key.into(), len));
            assert_eq!(made, Some(&n));
        }
        assert_eq!(
            map.get_or_try_make("c", room, |len| ("c".into(), len)),
            None
        );
        assert_eq!(map.find("c"), None);
    }

    #[test]
    fn label_values_are_found_by_borrowed_values() {
        let map: LeakedMap<LabelValues, u8> = LeakedMap::new();
        let key = |values: &[&str]| -> u8 {
            let values = &values;
            map.find(values as &dyn Key).copied().unwrap_or(0)
        };
        let xy: &[&str] = &["x", "y"];
        map.get_or_make(&xy as &dyn Key, || (LabelValues::new(xy), 1));
        assert_eq!(key(&["x", "y"]), 1);
        // Not the same key as the values joined or cut differently.
        assert_eq!(key(&["xy"]), 0);
        assert_eq!(key(&["x", "y", ""]), 0);
        assert_eq!(key(&["x"]), 0);
    }
}

//! Stage names, interned once into small ids so that a request resolves its stage histograms by
//! index instead of by hashing label values.

use std::fmt;
use std::sync::OnceLock;

use crate::metrics::leaked_map::LeakedMap;

/// Most distinct stage names a process may use; later names are recorded as [`Stage::OTHER`].
pub const MAX_STAGES: usize = 64;

/// The names of the predefined stages, indexed by their id: the five built in, then `other`.
const PREDEFINED_NAMES: [&str; 6] = [
    "request_parsing",
    "auth_validation",
    "request_preparation",
    "backend_fetch",
    "stream_processing",
    "other",
];

/// A stage of a request: one of the five built in, or one the user named.
///
/// A `Stage` is a small copyable id; the built-in stages are constants, other names are
/// interned by [`Stage::named`] (once per call site is enough: keep the result in a static).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stage(u16);

impl Stage {
    /// Parsing the client's request.
    pub const REQUEST_PARSING: Stage = Stage(0);
    /// Checking the client's credentials.
    pub const AUTH_VALIDATION: Stage = Stage(1);
    /// Building the provider request.
    pub const REQUEST_PREPARATION: Stage = Stage(2);
    /// Waiting for the provider's first byte (recorded by
    /// [`backend_request`](crate::PerformanceTracker::backend_request)).
    pub const BACKEND_FETCH: Stage = Stage(3);
    /// Streaming the answer to the client (recorded by
    /// [`streaming`](crate::PerformanceTracker::streaming)).
    pub const STREAM_PROCESSING: Stage = Stage(4);
    /// Where stage names beyond [`MAX_STAGES`] are recorded.
    pub const OTHER: Stage = Stage(5);

    /// The five stages the product defines, in request order.
    pub const BUILTIN: [Stage; 5] = [
        Stage::REQUEST_PARSING,
        Stage::AUTH_VALIDATION,
        Stage::REQUEST_PREPARATION,
        Stage::BACKEND_FETCH,
        Stage::STREAM_PROCESSING,
    ];

    /// The stage called `name`, interning it on first use.
    ///
    /// Built-in names resolve without a lock; other names take a read lock on a small table.
    pub fn named(name: &str) -> Stage {
        if let Some(i) = PREDEFINED_NAMES.iter().position(|b| *b == name) {
            return Stage(i as u16);
        }
        let interner = interner();
        let room = |len| PREDEFINED_NAMES.len() + len < MAX_STAGES;
        let made = interner.ids.get_or_try_make(name, room, |len| {
            let id = PREDEFINED_NAMES.len() + len;
            let name: &'static str = Box::leak(name.into());
            // Set under the map's write lock, before the id is handed out.
            let _ = interner.names[id].set(name);
            (name, Stage(id as u16))
        });
        made.copied().unwrap_or(Stage::OTHER)
    }

    /// The stage's name, as it appears in the `stage` label.
    pub fn name(self) -> &'static str {
        let i = usize::from(self.0);
        match PREDEFINED_NAMES.get(i) {
            Some(name) => name,
            None => interner().names[i]
                .get()
                .expect("a stage's id is handed out once its name is set"),
        }
    }

    /// The stage of id `index` (an [`index`](Self::index) given back).
    pub(crate) fn from_index(index: usize) -> Stage {
        Stage(index as u16)
    }

    /// Index into per-endpoint stage tables (always below [`MAX_STAGES`]).
    #[inline]
    pub(crate) fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl From<&str> for Stage {
    fn from(name: &str) -> Stage {
        Stage::named(name)
    }
}

impl fmt::Debug for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stage({})", self.name())
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The stage names beyond the predefined ones: by name, and by id.
struct Interner {
    ids: LeakedMap<&'static str, Stage>,
    /// Indexed by id; the predefined ids' stay empty.
    names: [OnceLock<&'static str>; MAX_STAGES],
}

fn interner() -> &'static Interner {
    static TABLE: OnceLock<Interner> = OnceLock::new();
    TABLE.get_or_init(|| Interner {
        ids: LeakedMap::new(),
        names: [const { OnceLock::new() }; MAX_STAGES],
    })
}

/// A stage named in code, interned on first use: what a `static` holds so that a call site
/// resolves its stage once.
pub struct StageName {
    name: &'static str,
    stage: OnceLock<Stage>,
}

impl StageName {
    /// A stage called `name`, resolved the first time it is used.
    pub const fn new(name: &'static str) -> Self {
        StageName {
            name,
            stage: OnceLock::new(),
        }
    }

    /// The interned stage.
    #[inline]
    pub fn get(&self) -> Stage {
        *self.stage.get_or_init(|| Stage::named(self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_resolve_to_constants() {
        assert_eq!(Stage::named("request_parsing"), Stage::REQUEST_PARSING);
        assert_eq!(Stage::named("stream_processing"), Stage::STREAM_PROCESSING);
        assert_eq!(Stage::BACKEND_FETCH.name(), "backend_fetch");
    }

    #[test]
    fn custom_names_are_interned_once() {
        let a = Stage::named("stage_test_cache_lookup");
        let b = Stage::from("stage_test_cache_lookup");
        assert_eq!(a, b);
        assert_eq!(a.name(), "stage_test_cache_lookup");
        assert!(a.index() < MAX_STAGES);
        static SITE: StageName = StageName::new("stage_test_cache_lookup");
        assert_eq!(SITE.get(), a);
    }
}

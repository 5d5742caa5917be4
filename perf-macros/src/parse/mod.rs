//! Parsing: the attributes' arguments and the items they are put on. Every misuse becomes a
//! `syn::Error` at the user's token.

mod args;
mod target;

pub use args::{BackendArgs, EndpointArgs, StageArgs, StreamArgs};
pub use target::{parse_fn, FnKind};

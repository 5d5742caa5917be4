//! Code generation. Each attribute wraps a value (a function body or a statement's expression) in
//! the runtime's hooks; `statements` finds the attributes inside a body and applies the same
//! wrappers there. Generated code names the runtime by absolute path and its own locals with
//! mixed-site hygiene, so it needs no import and cannot clash with the user's names.

mod endpoint;
mod function;
mod future;
mod statements;
mod wrap;

pub use endpoint::endpoint;
pub use function::{backend_fn, stage_fn, stream_fn};
pub use future::returns_future;
pub use statements::rewrite_statements;

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

/// The runtime crate, by absolute path.
fn runtime() -> TokenStream {
    quote!(::perf_runtime)
}

/// A name for generated code that the user's code can neither see nor shadow.
fn hidden(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

//! The item an attribute is put on: a function with a body, and nothing else.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Error, Item, ItemFn, Result};

/// What a macro needs the function to be.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FnKind {
    /// Only an `async fn` (`#[perf_endpoint]`, whose body becomes the request's future).
    AsyncOnly,
    /// Any function (`#[perf_stage]`, `#[perf_backend]`, `#[perf_stream]`).
    Any,
}

/// Parses `item` as a function with a body, or explains at its first tokens why not.
pub fn parse_fn(item: TokenStream, macro_name: &str, kind: FnKind) -> Result<ItemFn> {
    let wanted = match kind {
        FnKind::AsyncOnly => "an async fn",
        FnKind::Any => "a fn",
    };
    let parsed: Item = match syn::parse2(item.clone()) {
        Ok(parsed) => parsed,
        Err(error) => {
            return Err(statement_outside_instrumented_fn(item, macro_name).unwrap_or(error))
        }
    };
    let function = match parsed {
        Item::Fn(function) => function,
        other => {
            return Err(Error::new_spanned(
                item_head(&other),
                format!("#[{macro_name}] applies to {wanted}, not to this item"),
            ))
        }
    };
    if kind == FnKind::AsyncOnly && function.sig.asyncness.is_none() {
        if crate::expand::returns_future(&function.sig) {
            // At the attribute: the user may well have written `async fn`, which
            // `#[async_trait]` rewrote before this macro ran.
            return Err(Error::new(
                proc_macro2::Span::call_site(),
                format!(
                    "#[{macro_name}] applies to an async fn, and `{}` returns a future (as every \
                     method of an `#[async_trait]` impl does): put #[{macro_name}] on an \
                     `async fn` outside the trait impl (a free fn or an inherent method) and \
                     call that from the trait method",
                    function.sig.ident
                ),
            ));
        }
        return Err(Error::new_spanned(
            function.sig.fn_token,
            format!(
                "#[{macro_name}] applies to an async fn: write `async fn {}`",
                function.sig.ident
            ),
        ));
    }
    Ok(function)
}

/// rustc runs an attribute on a statement of a plain fn itself (after its own E0658): say where
/// statement attributes work, at the statement.
fn statement_outside_instrumented_fn(item: TokenStream, macro_name: &str) -> Option<Error> {
    let statement: syn::Stmt = syn::parse2(item).ok()?;
    if let syn::Stmt::Item(_) = statement {
        return None;
    }
    Some(Error::new_spanned(
        statement,
        format!(
            "#[{macro_name}] on a statement works only inside a fn that carries a perf attribute: \
             put `#[perf_statements]` on this fn (it times nothing itself), or move the statement \
             into the `#[perf_endpoint]` handler or a `#[perf_stage]` fn"
        ),
    ))
}

/// The keyword and name of an item: where "wrong item" errors point.
fn item_head(item: &Item) -> TokenStream {
    fn head(keyword: impl ToTokens, name: impl ToTokens) -> TokenStream {
        let mut tokens = keyword.into_token_stream();
        name.to_tokens(&mut tokens);
        tokens
    }
    match item {
        Item::Struct(i) => head(i.struct_token, &i.ident),
        Item::Enum(i) => head(i.enum_token, &i.ident),
        Item::Union(i) => head(i.union_token, &i.ident),
        Item::Const(i) => head(i.const_token, &i.ident),
        Item::Static(i) => head(i.static_token, &i.ident),
        Item::Mod(i) => head(i.mod_token, &i.ident),
        Item::Trait(i) => head(i.trait_token, &i.ident),
        Item::Type(i) => head(i.type_token, &i.ident),
        Item::Impl(i) => head(i.impl_token, &i.self_ty),
        Item::Use(i) => head(i.use_token, &i.tree),
        other => other.to_token_stream(),
    }
}

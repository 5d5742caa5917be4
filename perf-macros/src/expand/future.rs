//! Sync functions that return a future: what `#[async_trait]` makes of every trait method
//! (`fn f<'a>(&'a self) -> Pin<Box<dyn Future<Output = T> + Send + 'a>>`), and hand-written
//! `BoxFuture`, `LocalBoxFuture` and `impl Future` returners. Their work happens when the future
//! is polled, not when the function returns it: the guard must live in the future.
//!
//! When the body is exactly `Box::pin(async move { .. })` (async-trait's shape) or
//! `async move { .. }`, the guard goes inside that async block: no second future, no second
//! allocation. Otherwise the future the body returns is wrapped in an `async move` block of ours
//! (boxed again for a boxed return type) that opens the guard at its first poll and awaits it.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{
    Block, Error, Expr, ExprAsync, GenericArgument, PathArguments, Result, ReturnType, Signature,
    Stmt, Type, TypeParamBound,
};

use super::{hidden, wrap};
use crate::parse::BackendArgs;
use crate::stages::CheckedStage;

/// The future a sync function returns, as its return type says.
pub struct ReturnedFuture<'a> {
    boxed: bool,
    /// `T` of `Output = T`, when it can be written as a `let` type (no `impl Trait` in it).
    output: Option<&'a Type>,
}

/// What a function's future is timed as.
pub enum Timing<'a> {
    Stage(&'a CheckedStage),
    Backend(&'a BackendArgs),
}

/// The future `sig` returns, if it is a sync function returning `Pin<Box<dyn Future>>`,
/// `BoxFuture`/`LocalBoxFuture` (matched by their last path segment) or `impl Future`. A future
/// that cannot be wrapped by an `async` block (`impl Future + Unpin`, an unpinned
/// `Box<dyn Future>`, a `Pin` of something other than a `Box`) is an error at its type, since
/// timing only its creation would record wrong numbers.
pub fn returned_future<'a>(
    sig: &'a Signature,
    attribute: &str,
) -> Result<Option<ReturnedFuture<'a>>> {
    if sig.asyncness.is_some() {
        return Ok(None);
    }
    let ReturnType::Type(_, ty) = &sig.output else {
        return Ok(None);
    };
    let ty = ungroup(ty);
    if let Some(future) = future_bound(ty) {
        if let Type::ImplTrait(imp) = ty {
            if let Some(unpin) = imp.bounds.iter().find(|b| trait_named(b, "Unpin")) {
                return Err(Error::new_spanned(
                    unpin,
                    format!(
                        "#[{attribute}] times the future this fn returns by wrapping it in an \
                         `async` block, which is not `Unpin`: return \
                         `Pin<Box<dyn Future<Output = ..> + Send + '_>>` (a boxed future is \
                         `Unpin`), or write an `async fn`"
                    ),
                ));
            }
        }
        return Ok(Some(ReturnedFuture {
            boxed: false,
            output: writable(future),
        }));
    }
    let Type::Path(path) = ty else {
        return Ok(None);
    };
    let Some(last) = path.path.segments.last() else {
        return Ok(None);
    };
    let args: Vec<&Type> = type_args(&last.arguments);
    match last.ident.to_string().as_str() {
        "BoxFuture" | "LocalBoxFuture" => Ok(Some(ReturnedFuture {
            boxed: true,
            output: args.last().and_then(|t| writable(Some(t))),
        })),
        "Pin" => {
            let Some(pointer) = args.first().map(|t| ungroup(t)) else {
                return Ok(None);
            };
            if let Some(future) = boxed(pointer).and_then(future_bound) {
                return Ok(Some(ReturnedFuture {
                    boxed: true,
                    output: writable(future),
                }));
            }
            if pointee(pointer).and_then(future_bound).is_some() {
                return Err(Error::new_spanned(
                    pointer,
                    format!(
                        "#[{attribute}] times the future this fn returns by wrapping it in an \
                         `async` block, and can return that only as `Pin<Box<dyn Future<..>>>`: \
                         box the future, or write an `async fn`"
                    ),
                ));
            }
            Ok(None)
        }
        "Box" if boxed(ty).and_then(future_bound).is_some() => Err(Error::new_spanned(
            ty,
            format!(
                "#[{attribute}] times the future this fn returns by wrapping it in an `async` \
                 block, which is not `Unpin`, so not a future once in a `Box`: return \
                 `Pin<Box<dyn Future<Output = ..> + Send + '_>>` (made with `Box::pin`), or \
                 write an `async fn`"
            ),
        )),
        _ => Ok(None),
    }
}

/// Whether `sig` is a sync function returning a future, of a type that can be wrapped or not.
pub fn returns_future(sig: &Signature) -> bool {
    !matches!(returned_future(sig, ""), Ok(None))
}

/// The body of a function returning `future`, timed as `timing` while the future runs: from its
/// first poll until it completes or is dropped. For a backend call, "answered" is decided on the
/// future's output.
pub fn instrument(
    sig: &Signature,
    block: &Block,
    future: &ReturnedFuture,
    timing: &Timing,
) -> TokenStream {
    if let Some(inner) = async_body(block) {
        return instrument_inside(inner, future, timing);
    }
    // The body makes the future, now, as written; `return` and `?` in it deliver that future
    // here. The closure is not `move`: it borrows what the body only borrows, so that a backend's
    // `provider` and `model`, evaluated at the first poll, may still use those values.
    let made = hidden("__perf_future");
    let call = wrap::call_once(wrap::body_closure(sig, block, TokenStream::new()));
    let timed = match timing {
        Timing::Stage(stage) => wrap::stage(stage, quote!(#made.await)),
        Timing::Backend(args) => {
            wrap::backend_future(args, TokenStream::new(), quote!(#made), future.output)
        }
    };
    let wrapped = quote!(async move { #timed });
    let wrapped = if future.boxed {
        quote!(::std::boxed::Box::pin(#wrapped))
    } else {
        wrapped
    };
    quote! {
        let #made = #call;
        #wrapped
    }
}

/// A body that is exactly `Box::pin(async move { .. })` or `async move { .. }`, after any items.
struct AsyncBody<'a> {
    items: &'a [Stmt],
    /// `Box::pin`, as written.
    pin: Option<&'a Expr>,
    block: &'a ExprAsync,
}

fn async_body(block: &Block) -> Option<AsyncBody<'_>> {
    let (last, items) = block.stmts.split_last()?;
    if !items.iter().all(|stmt| matches!(stmt, Stmt::Item(_))) {
        return None;
    }
    let Stmt::Expr(expr, None) = last else {
        return None;
    };
    match expr {
        Expr::Async(block) => Some(AsyncBody {
            items,
            pin: None,
            block,
        }),
        Expr::Call(call) if call.args.len() == 1 => {
            let Expr::Path(func) = &*call.func else {
                return None;
            };
            let names: Vec<String> = func
                .path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect();
            if !names.ends_with(&["Box".to_string(), "pin".to_string()]) {
                return None;
            }
            let Expr::Async(block) = &call.args[0] else {
                return None;
            };
            Some(AsyncBody {
                items,
                pin: Some(&*call.func),
                block,
            })
        }
        _ => None,
    }
}

/// The guard put inside the body's own async block.
fn instrument_inside(body: AsyncBody, future: &ReturnedFuture, timing: &Timing) -> TokenStream {
    let AsyncBody { items, pin, block } = body;
    let ExprAsync {
        attrs,
        async_token,
        capture,
        block: inner,
    } = block;
    let timed = match timing {
        // The guard is the first local of the block: dropped last, however the block is left.
        Timing::Stage(stage) => {
            let stmts = &inner.stmts;
            wrap::stage(stage, quote!(#(#stmts)*))
        }
        // The output is needed: the body runs in an inner async block, whose `return`s and `?`s
        // end that block only. It is made after `provider` and `model` are evaluated: they may
        // use what it moves.
        Timing::Backend(args) => {
            let body = hidden("__perf_body");
            let bound = wrap::bind_future(&body, quote!(#async_token #capture #inner));
            wrap::backend_future(args, bound, quote!(#body), future.output)
        }
    };
    let rebuilt = quote!(#(#attrs)* #async_token #capture { #timed });
    let rebuilt = match pin {
        Some(pin) => quote!(#pin(#rebuilt)),
        None => rebuilt,
    };
    quote!(#(#items)* #rebuilt)
}

/// The `Future` bound of `dyn Future<..> + ..` or `impl Future<..> + ..`: `Some(output)`, where
/// `output` is `Output = T`'s `T` if written.
fn future_bound(ty: &Type) -> Option<Option<&Type>> {
    let bounds = match ungroup(ty) {
        Type::TraitObject(object) => &object.bounds,
        Type::ImplTrait(imp) => &imp.bounds,
        _ => return None,
    };
    let bound = bounds.iter().find(|b| trait_named(b, "Future"))?;
    let TypeParamBound::Trait(bound) = bound else {
        return None;
    };
    let last = bound.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return Some(None);
    };
    Some(args.args.iter().find_map(|arg| match arg {
        GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(&assoc.ty),
        _ => None,
    }))
}

/// `output` if it can be written as a `let` type.
fn writable(output: Option<&Type>) -> Option<&Type> {
    output.filter(|ty| !wrap::mentions_impl_trait(ty))
}

fn trait_named(bound: &TypeParamBound, name: &str) -> bool {
    match bound {
        TypeParamBound::Trait(bound) => bound
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == name),
        _ => false,
    }
}

/// `X` of `Box<X>`.
fn boxed(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ungroup(ty) else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Box" {
        return None;
    }
    type_args(&last.arguments).first().map(|t| ungroup(t))
}

/// What a pointer type points to: `X` of `&mut X`, `&X` or `Box<X>`.
fn pointee(ty: &Type) -> Option<&Type> {
    match ungroup(ty) {
        Type::Reference(reference) => Some(ungroup(&reference.elem)),
        other => boxed(other),
    }
}

fn type_args(arguments: &PathArguments) -> Vec<&Type> {
    match arguments {
        PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn ungroup(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(group) => ty = &group.elem,
            Type::Paren(paren) => ty = &paren.elem,
            _ => return ty,
        }
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::Span;
    use syn::{parse_quote, ItemFn};

    use super::*;

    fn stage() -> CheckedStage {
        CheckedStage {
            name: "request_parsing".into(),
            span: Span::call_site(),
            declared_in: None,
        }
    }

    fn expand(function: &ItemFn, timing: &Timing) -> String {
        let returned = returned_future(&function.sig, "perf_stage")
            .unwrap()
            .expect("a future is returned");
        instrument(&function.sig, &function.block, &returned, timing).to_string()
    }

    /// What `#[async_trait]` makes of `async fn validate(&self, key: &str) -> Result<(), E>`.
    fn async_trait_method() -> ItemFn {
        parse_quote! {
            fn validate<'life0, 'life1, 'async_trait>(
                &'life0 self,
                key: &'life1 str,
            ) -> ::core::pin::Pin<Box<
                dyn ::core::future::Future<Output = Result<(), E>>
                    + ::core::marker::Send + 'async_trait
            >>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move {
                    if let ::core::option::Option::Some(__ret) =
                        ::core::option::Option::None::<Result<(), E>>
                    {
                        #[allow(unreachable_code)]
                        return __ret;
                    }
                    let __self = self;
                    let key = key;
                    let __ret: Result<(), E> = { check(__self, key).await };
                    #[allow(unreachable_code)]
                    __ret
                })
            }
        }
    }

    #[test]
    fn an_async_trait_body_is_instrumented_inside_its_own_async_block() {
        let stage = stage();
        let expanded = expand(&async_trait_method(), &Timing::Stage(&stage));
        assert_eq!(expanded.matches("Box :: pin").count(), 1, "{expanded}");
        assert_eq!(expanded.matches("async move").count(), 1, "{expanded}");
        assert!(!expanded.contains("__perf_future"), "{expanded}");
        assert!(
            expanded.starts_with("Box :: pin (async move {"),
            "{expanded}"
        );
    }

    #[test]
    fn an_async_trait_backend_awaits_its_body_in_an_inner_block_of_the_same_box() {
        let args: BackendArgs = syn::parse::Parser::parse2(
            |input: syn::parse::ParseStream| BackendArgs::parse_with(input, None),
            quote!(provider = "openrouter", model = key),
        )
        .unwrap();
        let expanded = expand(&async_trait_method(), &Timing::Backend(&args));
        assert_eq!(expanded.matches("Box :: pin").count(), 1, "{expanded}");
        assert_eq!(expanded.matches("async move").count(), 2, "{expanded}");
        // The output's type is stated, for the success check.
        assert!(
            expanded.contains("let __perf_body = async move"),
            "{expanded}"
        );
        assert!(
            expanded.contains("| __perf_value : & Result < () , E > |"),
            "{expanded}"
        );
    }

    #[test]
    fn another_body_is_wrapped() {
        let function: ItemFn = parse_quote! {
            fn send(&self) -> BoxFuture<'_, u32> {
                let request = self.request();
                Box::pin(async move { request.await })
            }
        };
        let stage = stage();
        let expanded = expand(&function, &Timing::Stage(&stage));
        assert!(expanded.contains("let __perf_future ="), "{expanded}");
        assert!(
            expanded.contains(":: std :: boxed :: Box :: pin (async move {"),
            "{expanded}"
        );
    }

    #[test]
    fn an_impl_future_is_wrapped_without_a_box() {
        let function: ItemFn = parse_quote! {
            fn send(&self) -> impl Future<Output = u32> + Send + '_ {
                self.request()
            }
        };
        let stage = stage();
        let expanded = expand(&function, &Timing::Stage(&stage));
        assert!(expanded.contains("let __perf_future ="), "{expanded}");
        assert!(!expanded.contains("Box"), "{expanded}");
    }

    #[test]
    fn which_return_types_are_futures() {
        let future = |sig: Signature| returned_future(&sig, "perf_stage").map(|f| f.is_some());
        assert!(future(parse_quote!(fn f() -> LocalBoxFuture<'static, ()>)).unwrap());
        assert!(future(parse_quote!(fn f() -> futures::future::BoxFuture<'static, ()>)).unwrap());
        assert!(future(parse_quote!(fn f() -> Pin<Box<dyn Future<Output = ()>>>)).unwrap());
        assert!(future(parse_quote!(fn f() -> Pin<Box<impl Future<Output = ()>>>)).unwrap());
        assert!(future(parse_quote!(fn f() -> impl std::future::Future<Output = ()>)).unwrap());
        assert!(!future(parse_quote!(async fn f() -> BoxFuture<'static, ()>)).unwrap());
        assert!(!future(parse_quote!(fn f() -> Result<BoxFuture<'static, ()>, E>)).unwrap());
        assert!(!future(parse_quote!(fn f() -> impl Stream<Item = u8>)).unwrap());
        assert!(!future(parse_quote!(fn f() -> Pin<Box<dyn Stream<Item = u8>>>)).unwrap());
        assert!(!future(parse_quote!(fn f())).unwrap());
        assert!(future(parse_quote!(fn f() -> impl Future<Output = ()> + Unpin)).is_err());
        assert!(future(parse_quote!(fn f() -> Box<dyn Future<Output = ()> + Unpin>)).is_err());
        assert!(future(parse_quote!(fn f() -> Pin<&mut dyn Future<Output = ()>>)).is_err());
    }
}

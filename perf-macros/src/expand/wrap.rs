//! The wrappers every attribute is made of, used alike on function bodies and on statements.

use proc_macro2::{Ident, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Block, ReturnType, Signature, Type};

use super::{hidden, runtime};
use crate::parse::{BackendArgs, StreamArgs};
use crate::stages::CheckedStage;

/// With the `off` feature the wrappers leave their values as written (the arguments are still
/// type-checked): the instrumentation compiled out, as the end-to-end benchmark's baseline.
pub const OFF: bool = cfg!(feature = "off");

/// Where a timed statement stands, which decides how its guard opens.
#[derive(Clone, Copy, Default)]
pub struct Opening {
    /// It directly follows a timed statement (a stage or backend call closed just before it
    /// begins): it begins at that one's end reading.
    pub follows: bool,
    /// It is in an endpoint's own body, not in a closure or `async` block inside it: its guard
    /// borrows the request, which the endpoint's `Run` holds for longer.
    pub in_body: bool,
}

/// `value` timed as `stage`: the stage's guard lives while `value` is evaluated.
pub fn stage(stage: &CheckedStage, value: TokenStream) -> TokenStream {
    stage_at(stage, value, Opening::default())
}

/// [`stage`], for a statement standing as `at` says.
pub fn stage_at(stage: &CheckedStage, value: TokenStream, at: Opening) -> TokenStream {
    if OFF {
        return quote!({ #value });
    }
    let rt = runtime();
    let guard = hidden("__perf_stage");
    let site = hidden("__PERF_STAGE");
    let name = &stage.name;
    let Opening { follows, in_body } = at;
    // Where a declared stage comes from: the build now depends on that manifest.
    let declared = stage.declared_in.as_ref().map(|manifest| {
        quote!(
            const _: &[u8] = ::core::include_bytes!(#manifest);
        )
    });
    quote_spanned! {stage.span=>
        {
            #declared
            static #site: #rt::StageName = #rt::StageName::new(#name);
            let #guard = #rt::__private::open_stage(&#site, #follows, #in_body);
            #value
        }
    }
}

/// `value` timed as a backend call: answered when it completes, unless it is an `Err`.
/// Leaving early (`?`, `return`, a panic, cancellation) records no TTFB.
pub fn backend(args: &BackendArgs, value: TokenStream) -> TokenStream {
    backend_at(args, value, Opening::default())
}

/// With the instrumentation compiled out: `value` as written, after a closure that is never
/// called and keeps the backend's arguments type-checked and their variables used.
fn backend_off(args: &BackendArgs, value: TokenStream) -> TokenStream {
    let BackendArgs { provider, model } = args;
    quote!({ let _ = || { let _ = (&(#provider), &(#model)); }; #value })
}

/// [`backend`], for a statement standing as `at` says.
pub fn backend_at(args: &BackendArgs, value: TokenStream, at: Opening) -> TokenStream {
    if OFF {
        return backend_off(args, value);
    }
    let rt = runtime();
    let guard = hidden("__perf_backend");
    let out = hidden("__perf_value");
    let BackendArgs { provider, model } = args;
    let succeeded = succeeded(quote!(&#out));
    let Opening { follows, in_body } = at;
    // The guard is dropped where it lies, at the block's end, after the value is moved out:
    // moving it into `drop(..)` would copy it right after `set_answered` wrote one byte of it,
    // which stalls the copy's load (a store-forwarding failure, measured in the overhead bench).
    quote! {
        {
            let mut #guard =
                #rt::__private::open_backend_request(#provider, #model, #follows, #in_body);
            let #out = #value;
            if #succeeded {
                #guard.set_answered();
            }
            #out
        }
    }
}

/// `future`, a fn's body as a future (made by `bound`, statements that may move what the call's
/// `provider` and `model` borrow: the call opens before them), awaited as a backend call: its
/// call is current for each of its polls (the facts found inside are its own, under `select!`
/// and `join!` too); answered when its output is not an `Err`. `output`: the future's output
/// type, when known.
pub fn backend_future(
    args: &BackendArgs,
    bound: TokenStream,
    future: TokenStream,
    output: Option<&Type>,
) -> TokenStream {
    if OFF {
        return backend_off(args, quote!(#bound #future.await));
    }
    let rt = runtime();
    let guard = hidden("__perf_backend");
    let out = hidden("__perf_value");
    let BackendArgs { provider, model } = args;
    let succeeded = succeeded(quote!(#out));
    let annotated = output.map(|ty| quote!(: &#ty));
    quote! {{
        let #guard = #rt::__private::open_backend_request(#provider, #model, false, false);
        #bound
        #rt::__private::backend_call(#guard, #future, |#out #annotated| #succeeded).await
    }}
}

/// Whether the value `reference` points to means success: `false` for an `Err`, `true` for anything else, decided at
/// compile time by autoref specialization on the value's concrete type.
pub fn succeeded(reference: TokenStream) -> TokenStream {
    let rt = runtime();
    quote! {{
        #[allow(unused_imports)]
        use #rt::__private::{AnySuccess as _, ResultSuccess as _};
        (&#rt::__private::Success(#reference)).succeeded()
    }}
}

/// `value`, a stream, handed the current request: streaming is timed until it ends or is dropped.
/// A value that is not a stream is a type error at `value`.
/// With `chunks`, the stream records time to first token, chunk gaps and usage.
pub fn stream(args: &StreamArgs, value: TokenStream) -> TokenStream {
    let rt = runtime();
    match (&args.chunks, OFF) {
        // Never called: keeps `chunks` type-checked against the stream's items.
        (Some(chunks), true) => quote!(#rt::__private::check_chunks(#value, #chunks)),
        (None, true) => value,
        (Some(chunks), false) => {
            let failed = failed_item();
            quote!(#rt::__private::stream_chunks_probed(#value, #chunks, #failed))
        }
        (None, false) => {
            let failed = failed_item();
            quote!(#rt::__private::stream_probed(#value, #failed))
        }
    }
}

/// A closure telling whether a stream's item is a failure: an `Err`, decided by the item's
/// concrete type as [`succeeded`] decides (a stream of another item type never fails).
fn failed_item() -> TokenStream {
    let item = hidden("__perf_item");
    let succeeded = succeeded(quote!(#item));
    quote!(|#item| !#succeeded)
}

/// The body of `sig` as a future whose `return`s and `?`s end the future, not the function.
pub fn body_future(sig: &Signature, body: &Block) -> TokenStream {
    let typed = typed_body(sig, body);
    quote!(async move #typed)
}

/// `let name = future;`, where `future` is an `async` block of ours whose output is the user's
/// body's: an `async fn` may return a future, and then that block yields one, which is what
/// the user wrote, not clippy's `async_yields_async`. (A `let` is where a lint attribute may
/// go on stable Rust.)
pub fn bind_future(name: &Ident, future: TokenStream) -> TokenStream {
    quote! {
        #[allow(clippy::async_yields_async)]
        let #name = #future;
    }
}

/// The body of `sig` timed as a backend call: an async fn's body as a [`backend_future`], a sync
/// fn's as a value with the call's guard around it.
pub fn backend_body(args: &BackendArgs, sig: &Signature, body_block: &Block) -> TokenStream {
    match sig.asyncness {
        Some(_) if !OFF => {
            let body = hidden("__perf_body");
            let bound = bind_future(&body, body_future(sig, body_block));
            backend_future(args, bound, quote!(#body), None)
        }
        _ => backend(args, body_value(sig, body_block)),
    }
}

/// The body of `sig` as a value: evaluated in an inner future or closure, so that `return`
/// and `?` deliver their value here instead of leaving the function.
pub fn body_value(sig: &Signature, body_block: &Block) -> TokenStream {
    if OFF {
        return quote!(#body_block);
    }
    match sig.asyncness {
        Some(_) => {
            let body = hidden("__perf_body");
            let bound = bind_future(&body, body_future(sig, body_block));
            quote!({ #bound #body.await })
        }
        None => call_once(body_closure(sig, body_block, quote!(move))),
    }
}

/// `body` as a closure (`capture` is `move` or nothing) returning what `sig` returns: the type,
/// stated, guides `?` conversions and makes every `return` a coercion site (a boxed `async`
/// block returned early becomes the `Pin<Box<dyn Future>>` of the signature). Left unstated
/// where it cannot be written (`impl Trait`).
pub fn body_closure(sig: &Signature, body: &Block, capture: TokenStream) -> TokenStream {
    match &sig.output {
        ReturnType::Type(_, ty) if mentions_impl_trait(ty) => quote!(#capture || #body),
        ReturnType::Type(_, ty) => quote_spanned!(ty.span()=> #capture || -> #ty #body),
        ReturnType::Default => quote!(#capture || -> () #body),
    }
}

/// `closure` called, through an `FnOnce` bound rather than as `(closure)()`.
///
/// A closure passed where `FnOnce` is expected is an `FnOnce` closure: it owns its captures, so
/// what it returns may borrow from them for as long as they lived outside, as a body that
/// returns a reborrow of its `&mut self` does (`fn drain(&mut self) -> impl Stream + '_`).
/// Called directly, the closure is inferred `FnMut`, and that reborrow cannot escape it.
pub fn call_once(closure: TokenStream) -> TokenStream {
    let helper = hidden("__perf_call_once");
    quote!({
        fn #helper<R>(f: impl ::core::ops::FnOnce() -> R) -> R {
            f()
        }
        #helper(#closure)
    })
}

/// `{ let ret: R = body; ret }`: the return type, stated, guides `?` conversions in the inner
/// block. Left out where it cannot be written as a `let` type (`impl Trait`).
fn typed_body(sig: &Signature, body: &Block) -> TokenStream {
    let ret = hidden("__perf_ret");
    match &sig.output {
        ReturnType::Type(_, ty) if mentions_impl_trait(ty) => quote!(#body),
        ReturnType::Type(_, ty) => quote_spanned!(ty.span()=> { let #ret: #ty = #body; #ret }),
        ReturnType::Default => quote!({ let #ret: () = #body; #ret }),
    }
}

pub fn mentions_impl_trait(ty: &syn::Type) -> bool {
    struct Finder(bool);
    impl Visit<'_> for Finder {
        fn visit_type_impl_trait(&mut self, _: &syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}

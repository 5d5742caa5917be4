//! `#[perf_stage]`, `#[perf_backend]` and `#[perf_stream]` on functions: the signature is kept
//! as written; only the body is wrapped.

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{AttrStyle, Attribute, Block, ItemFn, Signature};

use super::wrap;
use crate::parse::BackendArgs;
use crate::stages::CheckedStage;

/// `function` with its attributes, visibility and signature as written, and the body `body`
/// makes from the signature and the original body. The body's inner attributes
/// (`#![allow(..)]`, which syn keeps with the outer ones) stay at the top of the new body.
pub fn with_body(
    function: ItemFn,
    body: impl FnOnce(&Signature, &Block) -> TokenStream,
) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let (inner, outer): (Vec<Attribute>, Vec<Attribute>) = attrs
        .into_iter()
        .partition(|attr| matches!(attr.style, AttrStyle::Inner(_)));
    let body = body(&sig, &block);
    quote!(#(#outer)* #vis #sig { #(#inner)* #body })
}

/// The function timed as one stage. The guard opens when the body starts running (the first
/// poll, for an async fn) and closes however the body is left.
pub fn stage_fn(stage: &CheckedStage, function: ItemFn) -> TokenStream {
    with_body(function, |_, block| {
        let stmts = &block.stmts;
        wrap::stage(stage, quote!(#(#stmts)*))
    })
}

/// The function timed as a backend call: answered when it returns anything but an `Err`.
pub fn backend_fn(args: &BackendArgs, function: ItemFn) -> TokenStream {
    with_body(function, |sig, block| {
        wrap::backend(args, wrap::body_value(sig, block))
    })
}

/// The function's returned stream handed the current request.
pub fn stream_fn(function: ItemFn) -> TokenStream {
    with_body(function, |sig, block| {
        // Named at the return type, so that "not a stream" points there.
        let returned = Ident::new(
            "__perf_returned",
            returned_span(sig, block).resolved_at(Span::mixed_site()),
        );
        let value = wrap::body_value(sig, block);
        let stream = wrap::stream(quote!(#returned));
        quote!(let #returned = #value; #stream)
    })
}

/// Where a "not a stream" error points: the return type, else the body.
fn returned_span(sig: &Signature, block: &Block) -> Span {
    match &sig.output {
        syn::ReturnType::Type(_, ty) => ty.span(),
        syn::ReturnType::Default => block.span(),
    }
}

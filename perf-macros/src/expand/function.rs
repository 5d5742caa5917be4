//! `#[perf_stage]`, `#[perf_backend]` and `#[perf_stream]` on functions: the signature is kept
//! as written; only the body is wrapped.

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{AttrStyle, Attribute, Block, Error, ItemFn, Result, Signature};

use super::future::{self, Timing};
use super::wrap;
use crate::parse::{BackendArgs, StreamArgs};
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
/// poll, for an async fn) and closes however the body is left. A sync fn that returns a future
/// is timed while its future runs.
pub fn stage_fn(stage: &CheckedStage, function: ItemFn) -> Result<TokenStream> {
    future::returned_future(&function.sig, "perf_stage")?;
    Ok(with_body(
        function,
        |sig, block| match future::returned_future(sig, "perf_stage") {
            Ok(Some(returned)) if !wrap::OFF => {
                future::instrument(sig, block, &returned, &Timing::Stage(stage))
            }
            _ => {
                let stmts = &block.stmts;
                wrap::stage(stage, quote!(#(#stmts)*))
            }
        },
    ))
}

/// The function timed as a backend call: answered when it returns anything but an `Err`. A sync
/// fn that returns a future is timed while its future runs, and answered when that future's
/// output is not an `Err`.
pub fn backend_fn(args: &BackendArgs, function: ItemFn) -> Result<TokenStream> {
    future::returned_future(&function.sig, "perf_backend")?;
    Ok(with_body(
        function,
        |sig, block| match future::returned_future(sig, "perf_backend") {
            Ok(Some(returned)) if !wrap::OFF => {
                future::instrument(sig, block, &returned, &Timing::Backend(args))
            }
            _ => wrap::backend_body(args, sig, block),
        },
    ))
}

/// The function's returned stream handed the current request. A sync fn returning a future is
/// an error: its stream is made when the future runs, and is of a type written in the signature.
pub fn stream_fn(args: &StreamArgs, function: ItemFn) -> Result<TokenStream> {
    if !matches!(
        future::returned_future(&function.sig, "perf_stream"),
        Ok(None)
    ) {
        // At the attribute: the return type may be async-trait's, not the user's.
        return Err(Error::new(
            Span::call_site(),
            format!(
                "#[perf_stream] hands a stream to the request, and `{}` returns a future (as \
                 every method of an `#[async_trait]` impl does): put #[perf_stream] on the \
                 statement that makes the stream (`#[perf_stream] let chunks = ..;`), or on a fn \
                 returning `impl Stream`",
                function.sig.ident
            ),
        ));
    }
    Ok(with_body(function, |sig, block| {
        // Named at the return type, so that "not a stream" points there.
        let returned = Ident::new(
            "__perf_returned",
            returned_span(sig, block).resolved_at(Span::mixed_site()),
        );
        let value = wrap::body_value(sig, block);
        let stream = wrap::stream(args, quote!(#returned));
        quote!(let #returned = #value; #stream)
    }))
}

/// Where a "not a stream" error points: the return type, else the body.
fn returned_span(sig: &Signature, block: &Block) -> Span {
    match &sig.output {
        syn::ReturnType::Type(_, ty) => ty.span(),
        syn::ReturnType::Default => block.span(),
    }
}

//! `#[perf_endpoint]`: the handler's body runs inside the request's tracker.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ItemFn, LitStr};

use super::function::with_body;
use super::{hidden, runtime, wrap};

/// The handler with its signature kept and its body run as its request
/// (`__private::endpoint(&ENDPOINT, ..)`: a new request, or, inside one already, the layer's
/// exchange or another endpoint's, part of it): the request is current for everything the body
/// awaits, and ends when the body completes, or later, when a `#[perf_stream]` stream made in
/// it ends or is dropped. A body that returns an `Err` marks the request failed
/// (`requests_total{outcome="error"}`). The endpoint's series are resolved once, in a static.
///
/// The body becomes one `async move` block given to `__private::endpoint` with the closure that
/// tells a failed output (no further nesting: the handler's future stays as small as the body's
/// own).
pub fn endpoint(path: &LitStr, function: ItemFn) -> TokenStream {
    with_body(function, |sig, block| {
        if wrap::OFF {
            return quote!(#block);
        }
        let rt = runtime();
        let site = hidden("__PERF_ENDPOINT");
        let out = hidden("__perf_out");
        let body = hidden("__perf_body");
        let bound = wrap::bind_future(&body, wrap::body_future(sig, block));
        let succeeded = wrap::succeeded(quote!(#out));
        quote! {
            static #site: #rt::Endpoint = #rt::Endpoint::new(#path);
            // Known before any request: its series show from the first scrape.
            #rt::__private::inventory::submit! {
                #rt::__private::KnownEndpoint(#path)
            }
            #bound
            #rt::__private::endpoint(&#site, #body, |#out| #succeeded).await
        }
    })
}

//! `#[perf_endpoint]`: the handler's body runs inside the request's tracker.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ItemFn, LitStr};

use super::function::with_body;
use super::{hidden, runtime, wrap};

/// The handler with its signature kept and its body run by
/// `PerformanceTracker::at(&ENDPOINT).run(..)`: the tracker is current for everything the body
/// awaits, and the request ends when the body completes, or later, when a `#[perf_stream]` stream
/// made in it ends or is dropped. A body that returns an `Err` marks the request failed
/// (`requests_total{outcome="error"}`). The endpoint's series are resolved once, in a static.
pub fn endpoint(path: &LitStr, function: ItemFn) -> TokenStream {
    with_body(function, |sig, block| {
        if wrap::OFF {
            return quote!(#block);
        }
        let rt = runtime();
        let site = hidden("__PERF_ENDPOINT");
        let out = hidden("__perf_out");
        let value = wrap::body_value(sig, block);
        let succeeded = wrap::succeeded(&out);
        quote! {
            static #site: #rt::Endpoint = #rt::Endpoint::new(#path);
            #rt::PerformanceTracker::at(&#site)
                .run(async move {
                    let #out = #value;
                    if !#succeeded {
                        #rt::current::fail();
                    }
                    #out
                })
                .await
        }
    })
}

//! `#[perf_endpoint]`: the handler's body runs inside the request's tracker.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ItemFn, LitStr};

use super::{hidden, runtime, wrap};

/// The handler with its signature kept and its body run by
/// `PerformanceTracker::at(&ENDPOINT).run(..)`: the tracker is current for everything the body
/// awaits, and the request ends when the body completes, or later, when a `#[perf_stream]` stream
/// made in it ends or is dropped. The endpoint's series are resolved once, in a static.
pub fn endpoint(path: &LitStr, function: ItemFn) -> TokenStream {
    let rt = runtime();
    let site = hidden("__PERF_ENDPOINT");
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let future = wrap::body_future(&sig, &block);
    quote! {
        #(#attrs)* #vis #sig {
            static #site: #rt::Endpoint = #rt::Endpoint::new(#path);
            #rt::PerformanceTracker::at(&#site).run(#future).await
        }
    }
}

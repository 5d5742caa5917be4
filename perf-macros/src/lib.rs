//! Attribute macros of [perf](https://docs.rs/perf-runtime): they rewrite LLM-gateway handlers at
//! compile time so that every request records where its time went. Depend on `perf-runtime`,
//! which re-exports them; the expansions name it by absolute path.
//!
//! The crate is split by concern: `parse` reads the attributes and the items they are put on,
//! `stages` checks stage names, `expand` generates the code.

mod expand;
mod parse;
mod stages;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::ToTokens;
use syn::parse::Parser;
use syn::ItemFn;

use parse::{parse_fn, BackendArgs, EndpointArgs, FnKind, StageArgs, StreamArgs};

/// Instruments an async handler as the endpoint `path`.
///
/// The handler's body runs with a fresh request tracker as the current one: `#[perf_stage]`,
/// `#[perf_backend]` and `#[perf_stream]` code it awaits, in any module, records into it. The
/// request ends when the handler returns, or, if a `#[perf_stream]` stream was made during the
/// request, when that stream ends or is dropped. At its end `frontend_processing_seconds` and
/// `stage_percentage` are recorded, once. A handler that panics or whose future is dropped
/// (the client went away) keeps the stages it ran and sets no percentages. The request's
/// `outcome` (a returned `Err` is `error`) follows the outcome rule of perf's metric contract:
/// `docs/metrics.md`, *What a request is*, also [`perf_runtime::metrics`'s
/// docs](https://docs.rs/perf-runtime/latest/perf_runtime/metrics/index.html#what-a-request-is).
///
/// Inside the body, `#[perf_stage(name)]`, `#[perf_backend(..)]` and `#[perf_stream]` may be put
/// on `let` statements, expression statements and blocks, but not inside a macro's input
/// (`tokio::select! { .. }`, `tokio::join!(..)`): that is not parsed as Rust before the macro
/// runs, so it is an error. Time such work in an `async` block outside the macro and give the
/// macro that block.
///
/// The signature, generics, `self`, attributes, `?` and `return` are kept, and so is the
/// future's `Send`-ness: the handler stays an axum handler. A method of an `#[async_trait]` impl
/// is a sync fn returning a boxed future by the time this attribute runs, and is an error: put
/// the attribute on an `async fn` outside the impl, and call that from the method.
///
/// ```
/// use perf_runtime::{perf_backend, perf_endpoint, perf_stage, perf_stream};
/// use futures_util::{stream, Stream, StreamExt};
///
/// struct Request { model: String, stream: bool }
///
/// #[perf_endpoint("/v1/chat/completions")]
/// async fn chat(body: &str) -> Result<Vec<String>, String> {
///     #[perf_stage(request_parsing)]
///     let req = Request { model: body.to_string(), stream: true };
///     authorize("demo-key")?;
///     #[perf_backend(provider = "openrouter", model = &req.model)]
///     let chunks = call_provider(&req.model).await?;
///     #[perf_stream]
///     let relayed = chunks;
///     Ok(relayed.collect().await)
/// }
///
/// #[perf_stage(auth_validation)]
/// fn authorize(key: &str) -> Result<(), String> {
///     if key.is_empty() { Err("no key".into()) } else { Ok(()) }
/// }
///
/// async fn call_provider(model: &str) -> Result<impl Stream<Item = String>, String> {
///     Ok(stream::iter(vec![format!("hello from {model}")]))
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(chat("gpt-4o").await.unwrap(), ["hello from gpt-4o"]);
/// # });
/// ```
#[proc_macro_attribute]
pub fn perf_endpoint(args: TokenStream, item: TokenStream) -> TokenStream {
    instrument("perf_endpoint", FnKind::AsyncOnly, item, |function| {
        let args: EndpointArgs = syn::parse(args)?;
        Ok(expand::endpoint(&args.path, function))
    })
}

/// Times a function, or a statement inside an instrumented function, as one stage of the
/// current request.
///
/// `#[perf_stage]` names the stage after the function; `#[perf_stage(name)]` names it. The name
/// is checked at compile time: it must be `request_parsing`, `auth_validation`,
/// `request_preparation`, or a stage the crate declares in its Cargo.toml:
///
/// ```toml
/// [package.metadata.perf]
/// stages = ["cache_lookup", "moderation"]
/// ```
///
/// A misspelled name does not compile; the error points at it and suggests the closest stage.
/// Works on sync and async functions, methods included. Called outside any request (from a
/// background task, say), the function runs normally and records under `endpoint="none"`.
///
/// A sync fn that returns a future is timed while that future runs, from its first poll until it
/// completes or is dropped: the methods of an `#[async_trait]` impl (the attribute goes on the
/// `async fn` inside the impl), and fns returning `Pin<Box<dyn Future>>`, `BoxFuture`,
/// `LocalBoxFuture` or `impl Future`. A body that is exactly `Box::pin(async move { .. })`, as
/// async-trait writes it, or `async move { .. }` is timed inside its own block; any other body's
/// future is wrapped in one more `async move` block (boxed again for a boxed return type).
/// A future type that cannot be so wrapped (`impl Future + Unpin`) is an error; a future behind
/// a type alias of your own is not recognized, and only its creation would be timed.
///
/// ```
/// use perf_runtime::{perf_endpoint, perf_stage};
///
/// #[perf_stage]
/// fn request_preparation(model: &str) -> String {
///     format!("{{\"model\":\"{model}\"}}")
/// }
///
/// #[perf_stage(auth_validation)]
/// async fn check_key(key: &str) -> Result<(), &'static str> {
///     if key == "demo-key" { Ok(()) } else { Err("invalid key") }
/// }
///
/// #[perf_endpoint("/v1/embeddings")]
/// async fn embeddings(key: &str) -> Result<String, &'static str> {
///     check_key(key).await?;
///     #[perf_stage(request_parsing)]
///     {
///         // statements timed as one stage
///     }
///     Ok(request_preparation("text-embedding-3-small"))
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert!(embeddings("demo-key").await.is_ok());
/// assert!(embeddings("wrong").await.is_err());
/// # });
/// ```
#[proc_macro_attribute]
pub fn perf_stage(args: TokenStream, item: TokenStream) -> TokenStream {
    instrument("perf_stage", FnKind::Any, item, |function| {
        let args: StageArgs = syn::parse(args)?;
        let name = args.name.unwrap_or_else(|| function.sig.ident.clone());
        let stage = stages::check(&name)?;
        expand::stage_fn(&stage, function)
    })
}

/// Times a call to the LLM provider: `backend_ttfb_seconds{provider, model, endpoint}` and the
/// `backend_fetch` stage.
///
/// `provider` and `model` are expressions (`model` usually comes from the request body; it is
/// length- and cardinality-capped by the runtime). On a function or a statement: the call counts
/// as answered (a first byte came) when the function returns, or the statement completes,
/// with anything but an `Err`; leaving through `?`, `return Err(..)`, a panic or cancellation
/// records the time waited as `backend_fetch` but no TTFB.
///
/// A sync fn that returns a future (an `#[async_trait]` method, `Pin<Box<dyn Future>>`,
/// `BoxFuture`, `LocalBoxFuture`, `impl Future`) is timed while that future runs, as
/// [`macro@perf_stage`] is, and the call is answered when the future's output is not an `Err`.
/// `provider` and `model` are then evaluated at the first poll, after the body has made the
/// future (inside it, for a `Box::pin(async move { .. })` body).
///
/// ```
/// use perf_runtime::{perf_backend, perf_endpoint};
///
/// #[perf_backend(provider = "openrouter", model = model)]
/// async fn call_backend(model: &str, prompt: &str) -> Result<String, String> {
///     if prompt.is_empty() { return Err("empty prompt".into()); }
///     Ok(format!("{model}: {prompt}"))
/// }
///
/// #[perf_endpoint("/v1/completions")]
/// async fn completions(model: String, prompt: String) -> Result<String, String> {
///     call_backend(&model, &prompt).await
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(completions("gpt-4o".into(), "hi".into()).await.unwrap(), "gpt-4o: hi");
/// # });
/// ```
#[proc_macro_attribute]
pub fn perf_backend(args: TokenStream, item: TokenStream) -> TokenStream {
    instrument("perf_backend", FnKind::Any, item, |function| {
        let args =
            (|input: syn::parse::ParseStream| BackendArgs::parse_with(input, None)).parse(args)?;
        expand::backend_fn(&args, function)
    })
}

/// Hands the current request to a stream: `streaming_duration_seconds` and the
/// `stream_processing` stage are timed until the stream ends or is dropped (a client that hangs
/// up), and the request ends then, after the handler has returned.
///
/// On a function returning `impl Stream`, or on a statement whose value is a stream. A value that
/// is not a stream is a type error at that value. A fn that returns a future of a stream (an
/// `#[async_trait]` method) is an error: put `#[perf_stream]` on the statement inside it that
/// makes the stream.
///
/// `#[perf_stream(chunks = f)]`, with `f: FnMut(&Item) -> perf_runtime::Chunk` telling what
/// each item is, also records `backend_ttft_seconds` (the first chunk with content),
/// `backend_chunk_gap_seconds` (each gap between content chunks) and `backend_tokens_total`
/// (the usage a chunk reports). Without it nothing is looked at per item.
///
/// ```
/// use futures_util::{stream, StreamExt};
/// use perf_runtime::{perf_endpoint, perf_stream, Chunk, Usage};
///
/// enum Event { Role, Token(String), Done { input: u64, output: u64 } }
///
/// fn event_chunk(event: &Event) -> Chunk {
///     match event {
///         Event::Token(_) => Chunk::CONTENT,
///         Event::Done { input, output } => {
///             Chunk::usage(Usage { input: *input, output: *output, ..Usage::default() })
///         }
///         Event::Role => Chunk::OTHER,
///     }
/// }
///
/// #[perf_endpoint("/v1/chat/completions")]
/// async fn chat() -> impl futures_util::Stream<Item = Event> {
///     #[perf_stream(chunks = event_chunk)]
///     let events = stream::iter([
///         Event::Role,
///         Event::Token("Hel".into()),
///         Event::Token("lo".into()),
///         Event::Done { input: 9, output: 2 },
///     ]);
///     events
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(chat().await.count().await, 4);
/// # });
/// ```
///
/// ```
/// use futures_util::{stream, Stream, StreamExt};
/// use perf_runtime::{perf_endpoint, perf_stream};
///
/// #[perf_stream]
/// fn relay(chunks: Vec<&'static str>) -> impl Stream<Item = &'static str> {
///     stream::iter(chunks)
/// }
///
/// #[perf_endpoint("/v1/stream")]
/// async fn handler() -> impl Stream<Item = &'static str> {
///     relay(vec!["Hel", "lo"])
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let answer: Vec<_> = handler().await.collect().await; // the request ends here
/// assert_eq!(answer.concat(), "Hello");
/// # });
/// ```
#[proc_macro_attribute]
pub fn perf_stream(args: TokenStream, item: TokenStream) -> TokenStream {
    instrument("perf_stream", FnKind::Any, item, |function| {
        let args: StreamArgs = syn::parse(args)?;
        expand::stream_fn(&args, function)
    })
}

/// Lets a function that is not itself timed hold timed statements.
///
/// Rust runs attribute macros on items, not on statements: `#[perf_stage(..)]`,
/// `#[perf_backend(..)]` and `#[perf_stream]` on a statement work because the function's own
/// perf attribute finds and expands them. In a plain helper the handler calls, rustc refuses
/// them (`E0658: custom attributes cannot be applied to statements`). `#[perf_statements]` on
/// the helper expands them without timing the helper itself; they record into the request that
/// calls it, like every other attribute.
///
/// ```
/// use perf_runtime::{perf_backend, perf_endpoint, perf_stage, perf_statements};
///
/// trait Provider {
///     async fn complete(&self, prompt: &str) -> Result<String, String>;
/// }
///
/// struct Echo;
///
/// impl Provider for Echo {
///     async fn complete(&self, prompt: &str) -> Result<String, String> {
///         Ok(prompt.to_uppercase())
///     }
/// }
///
/// #[perf_statements]
/// async fn ask<P: Provider>(provider: &P, model: &str, prompt: &str) -> Result<String, String> {
///     #[perf_stage(request_preparation)]
///     let prompt = format!("{model}: {prompt}");
///     #[perf_backend(provider = "echo", model = model)]
///     let answer = provider.complete(&prompt).await?;
///     Ok(answer)
/// }
///
/// #[perf_endpoint("/v1/ask")]
/// async fn handler(prompt: &str) -> Result<String, String> {
///     ask(&Echo, "echo-1", prompt).await
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(handler("hi").await.unwrap(), "ECHO-1: HI");
/// # });
/// ```
#[proc_macro_attribute]
pub fn perf_statements(args: TokenStream, item: TokenStream) -> TokenStream {
    instrument("perf_statements", FnKind::Any, item, |function| {
        let _: syn::parse::Nothing = syn::parse(args)?;
        Ok(function.into_token_stream())
    })
}

/// The common path of every attribute: parse the function, rewrite its attributed statements,
/// expand. On error the function is still emitted (unexpanded, its statement attributes
/// removed) beside the errors, so the user sees only the errors that matter.
fn instrument(
    name: &str,
    kind: FnKind,
    item: TokenStream,
    expand: impl FnOnce(ItemFn) -> syn::Result<TokenStream2>,
) -> TokenStream {
    let item = TokenStream2::from(item);
    let mut function = match parse_fn(item.clone(), name, kind) {
        Ok(function) => function,
        Err(error) => return with_errors(item, error),
    };
    // An endpoint's body runs right where its request starts.
    let starts_request = matches!(kind, FnKind::AsyncOnly);
    let mut errors = expand::rewrite_statements(&mut function.block, starts_request);
    if errors.is_empty() {
        match expand(function.clone()) {
            Ok(expanded) => return expanded.into(),
            Err(error) => errors.push(error),
        }
    }
    let combined = errors.into_iter().reduce(|mut all, e| {
        all.combine(e);
        all
    });
    match combined {
        Some(error) => with_errors(function.into_token_stream(), error),
        None => function.into_token_stream().into(),
    }
}

fn with_errors(item: TokenStream2, error: syn::Error) -> TokenStream {
    let mut out = error.to_compile_error();
    out.extend(item);
    out.into()
}

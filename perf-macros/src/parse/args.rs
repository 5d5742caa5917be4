//! The arguments of each attribute.

use proc_macro2::{Span, TokenTree};
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Error, Expr, Ident, LitStr, Result, Token};

/// `#[perf_endpoint("/v1/chat/completions")]`
pub struct EndpointArgs {
    pub path: LitStr,
}

impl Parse for EndpointArgs {
    fn parse(input: ParseStream) -> Result<Self> {
        if input.is_empty() {
            return Err(Error::new(
                Span::call_site(),
                "expected the endpoint's path: #[perf_endpoint(\"/v1/chat/completions\")]",
            ));
        }
        if !input.peek(LitStr) {
            let token: TokenTree = input.parse()?;
            return Err(Error::new(
                token.span(),
                "the endpoint's path must be a string literal, as in #[perf_endpoint(\"/v1/chat/completions\")]",
            ));
        }
        let path: LitStr = input.parse()?;
        if !path.value().starts_with('/') {
            return Err(Error::new(
                path.span(),
                format!(
                    "the endpoint's path must start with `/`, as in \"/{}\"",
                    path.value()
                ),
            ));
        }
        reject_rest(input, "#[perf_endpoint] takes only the endpoint's path")?;
        Ok(EndpointArgs { path })
    }
}

/// `#[perf_stage]` or `#[perf_stage(request_parsing)]`
pub struct StageArgs {
    pub name: Option<Ident>,
}

impl Parse for StageArgs {
    fn parse(input: ParseStream) -> Result<Self> {
        if input.is_empty() {
            return Ok(StageArgs { name: None });
        }
        if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            return Err(Error::new(
                lit.span(),
                format!(
                    "write the stage as a name, not a string: #[perf_stage({})]",
                    lit.value()
                ),
            ));
        }
        let name: Ident = input.parse().map_err(|e| {
            Error::new(
                e.span(),
                "expected a stage name, as in #[perf_stage(request_parsing)]",
            )
        })?;
        reject_rest(input, "#[perf_stage] takes one stage name")?;
        Ok(StageArgs { name: Some(name) })
    }
}

/// `#[perf_backend(provider = "openrouter", model = &req.model)]`
pub struct BackendArgs {
    pub provider: Expr,
    pub model: Expr,
}

impl BackendArgs {
    /// Parses the arguments; a missing one is reported at `attribute` (a statement's), else at
    /// the attribute the macro was called as.
    pub fn parse_with(input: ParseStream, attribute: Option<&Attribute>) -> Result<Self> {
        let mut provider = None;
        let mut model = None;
        while !input.is_empty() {
            let key: Ident = input
                .parse()
                .map_err(|e| Error::new(e.span(), "expected `provider = ...` or `model = ...`"))?;
            let slot = match key.to_string().as_str() {
                "provider" => &mut provider,
                "model" => &mut model,
                other => {
                    return Err(Error::new(
                        key.span(),
                        format!(
                        "unknown argument `{other}`: #[perf_backend] takes `provider` and `model`"
                    ),
                    ))
                }
            };
            if slot.is_some() {
                return Err(Error::new(key.span(), format!("`{key}` is given twice")));
            }
            input.parse::<Token![=]>().map_err(|e| {
                Error::new(
                    e.span(),
                    format!("expected `=` after `{key}`, as in `{key} = ...`"),
                )
            })?;
            *slot = Some(input.parse::<Expr>()?);
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        let missing = |name: &str, example: &str| {
            let message =
                format!("#[perf_backend] needs `{name} = ...`, as in `{name} = {example}`");
            match attribute {
                Some(attribute) => Error::new_spanned(attribute, message),
                None => Error::new(Span::call_site(), message),
            }
        };
        Ok(BackendArgs {
            provider: provider.ok_or_else(|| missing("provider", "\"openrouter\""))?,
            model: model.ok_or_else(|| missing("model", "&request.model"))?,
        })
    }
}

/// `#[perf_stream]`, or `#[perf_stream(chunks = f)]` with `f` telling what each item is.
pub struct StreamArgs {
    /// An expression of a `FnMut(&Item) -> perf_runtime::Chunk`.
    pub chunks: Option<Expr>,
}

impl Parse for StreamArgs {
    fn parse(input: ParseStream) -> Result<Self> {
        if input.is_empty() {
            return Ok(StreamArgs { chunks: None });
        }
        let key: Ident = input.parse().map_err(|e| {
            Error::new(
                e.span(),
                "#[perf_stream] takes `chunks = f`, a function telling what each item is",
            )
        })?;
        if key != "chunks" {
            return Err(Error::new(
                key.span(),
                format!("unknown argument `{key}`: #[perf_stream] takes `chunks = f`"),
            ));
        }
        if !input.peek(Token![=]) {
            return Err(Error::new(
                key.span(),
                "expected `chunks = f`, a function telling what each item is, as in \
                 `chunks = sse_chunk`",
            ));
        }
        input.parse::<Token![=]>()?;
        let chunks = input.parse::<Expr>()?;
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
        }
        reject_rest(input, "#[perf_stream] takes one argument, `chunks = f`")?;
        Ok(StreamArgs {
            chunks: Some(chunks),
        })
    }
}

/// Fails at the first token left in `input`, if any.
fn reject_rest(input: ParseStream, message: &str) -> Result<()> {
    if input.is_empty() {
        return Ok(());
    }
    let token: TokenTree = input.parse()?;
    let token = if let TokenTree::Punct(p) = &token {
        if p.as_char() == ',' && !input.is_empty() {
            input.parse()?
        } else {
            token
        }
    } else {
        token
    };
    Err(Error::new(token.span(), message))
}

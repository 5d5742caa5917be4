//! `#[perf_stage(..)]`, `#[perf_backend(..)]` and `#[perf_stream]` on statements inside an
//! instrumented function. Rust does not run attribute macros on statements, so the function's own
//! macro finds them here, removes them and wraps the statement's value.

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{Parse, Parser};
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Attribute, Block, Error, Expr, Item, Macro, Meta, Stmt};

use super::wrap;
use crate::parse::{BackendArgs, StageArgs, StreamArgs};
use crate::stages;

/// Rewrites every attributed statement in `block`, including those in nested blocks, closures and
/// async blocks, but not in nested items (they are expanded on their own). Returns the errors of
/// every misused attribute; the attributes are removed either way. An attribute inside a macro's
/// input (`tokio::select! { .. }`) cannot be expanded, and is one of these errors.
///
/// The attributes' paths are kept in `use path as _;` items at the top of the block, so that the
/// user's `use perf_runtime::perf_stage;` counts as used and the path is still resolved.
///
/// `starts_request`: the block is an endpoint's body, which runs right where its request
/// starts. A timed first statement then begins at the request's start reading, and the guards
/// of its statements (outside closures and `async` blocks) borrow the request.
pub fn rewrite_statements(block: &mut Block, starts_request: bool) -> Vec<Error> {
    let mut rewriter = Rewriter {
        errors: Vec::new(),
        paths: Vec::new(),
        follows_timed: false,
        timed: false,
        block_follows_timed: starts_request,
        in_body: starts_request,
    };
    rewriter.visit_block_mut(block);
    let uses = rewriter.paths.iter().map(|path| {
        syn::parse_quote_spanned! {path.span()=>
            #[allow(unused_imports, clippy::single_component_path_imports)]
            use #path as _;
        }
    });
    block.stmts.splice(0..0, uses.collect::<Vec<Stmt>>());
    rewriter.errors
}

struct Rewriter {
    errors: Vec<Error>,
    paths: Vec<syn::Path>,
    /// The statement about to be visited directly follows a timed one in its block.
    follows_timed: bool,
    /// The statement just visited is timed: a stage or a backend call, whose guard closes at
    /// the statement's end.
    timed: bool,
    /// The next block visited begins right after a clock reading (the outermost block of an
    /// endpoint, after its request's start): its first statement follows a timed one.
    block_follows_timed: bool,
    /// The statements visited are run by an endpoint's own body future: not in a closure or an
    /// `async` block, which may be sent to run elsewhere, after the endpoint's request.
    in_body: bool,
}

impl Rewriter {
    /// Visits what `visit` visits as code that may run outside the endpoint's body.
    fn apart(&mut self, visit: impl FnOnce(&mut Self)) {
        let in_body = std::mem::replace(&mut self.in_body, false);
        visit(self);
        self.in_body = in_body;
    }
}

impl VisitMut for Rewriter {
    fn visit_item_mut(&mut self, _: &mut Item) {}

    fn visit_expr_closure_mut(&mut self, closure: &mut syn::ExprClosure) {
        self.apart(|this| visit_mut::visit_expr_closure_mut(this, closure));
    }

    fn visit_expr_async_mut(&mut self, block: &mut syn::ExprAsync) {
        self.apart(|this| visit_mut::visit_expr_async_mut(this, block));
    }

    fn visit_block_mut(&mut self, block: &mut Block) {
        let mut follows = std::mem::take(&mut self.block_follows_timed);
        for stmt in &mut block.stmts {
            self.follows_timed = follows;
            self.visit_stmt_mut(stmt);
            follows = self.timed;
        }
        self.timed = false;
    }

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        let mut found = Vec::new();
        mac.tokens = strip_ours(std::mem::take(&mut mac.tokens), &mut found);
        for attr in found {
            remember(&mut self.paths, attr.path());
            self.errors.push(in_macro_error(&attr, &mac.path));
        }
    }

    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        let follows = std::mem::take(&mut self.follows_timed);
        visit_mut::visit_stmt_mut(self, stmt);
        let at = wrap::Opening {
            follows,
            in_body: self.in_body,
        };
        self.timed = match rewrite(stmt, &mut self.paths, at) {
            Ok(timed) => timed,
            Err(error) => {
                self.errors.push(error);
                false
            }
        };
    }
}

/// The attributes this crate owns.
#[derive(Clone, Copy)]
enum Kind {
    Stage,
    Backend,
    Stream,
    Endpoint,
    Statements,
}

fn kind_of(attr: &Attribute) -> Option<Kind> {
    let path = attr.path();
    let last = path.segments.last()?;
    let crate_ok = path.segments.len() == 1
        || (path.segments.len() == 2
            && ["perf_runtime", "perf_macros"]
                .contains(&path.segments[0].ident.to_string().as_str()));
    if !crate_ok {
        return None;
    }
    match last.ident.to_string().as_str() {
        "perf_stage" => Some(Kind::Stage),
        "perf_backend" => Some(Kind::Backend),
        "perf_stream" => Some(Kind::Stream),
        "perf_endpoint" => Some(Kind::Endpoint),
        "perf_statements" => Some(Kind::Statements),
        _ => None,
    }
}

/// Rewrites `stmt` if it carries one of our attributes, and adds that attribute's path to `paths`.
/// `at` says where it stands (after a timed statement of its block, in an endpoint's body).
/// Returns whether it is timed now (a stage or a backend call).
fn rewrite(stmt: &mut Stmt, paths: &mut Vec<syn::Path>, at: wrap::Opening) -> syn::Result<bool> {
    if let Stmt::Macro(mac) = stmt {
        if !mac.attrs.iter().any(|a| kind_of(a).is_some()) {
            return Ok(false);
        }
        let expr = Expr::Macro(syn::ExprMacro {
            attrs: std::mem::take(&mut mac.attrs),
            mac: mac.mac.clone(),
        });
        *stmt = Stmt::Expr(expr, mac.semi_token);
    }
    let Some(attrs) = attrs_of(stmt) else {
        return Ok(false);
    };
    let mut ours = take_ours(attrs);
    for (_, attr) in &ours {
        remember(paths, attr.path());
    }
    if ours.len() > 1 {
        return Err(Error::new_spanned(
            &ours[1].1,
            "one perf attribute per statement: split the statement, or time the inner call in its own `let`",
        ));
    }
    let Some(attr) = ours.pop() else {
        return Ok(false);
    };
    let timed = matches!(attr.0, Kind::Stage | Kind::Backend);
    match stmt {
        Stmt::Local(local) => {
            let Some(init) = &mut local.init else {
                return Err(Error::new(
                    local.span(),
                    "an instrumented `let` needs a value to time: `let x = ...;`",
                ));
            };
            let value = &init.expr;
            let wrapped = apply(&attr, quote::quote!(#value), at)?;
            *init.expr = Expr::Verbatim(wrapped);
        }
        Stmt::Expr(expr, _) => {
            let wrapped = apply(&attr, quote::quote!(#expr), at)?;
            *expr = Expr::Verbatim(wrapped);
        }
        Stmt::Item(_) | Stmt::Macro(_) => return Ok(false),
    }
    Ok(timed)
}

/// `tokens`, a macro's input, without this crate's attributes on its statements and expressions,
/// which are pushed to `found`, in nested groups too. Rust does not parse a macro's input before
/// that macro runs, so these attributes are never expanded: each is reported. An attribute on a
/// `fn` the macro defines is left alone: on an item, the attribute runs itself.
fn strip_ours(tokens: TokenStream, found: &mut Vec<Attribute>) -> TokenStream {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut kept = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if let Some(attr) = outer_attribute(&tokens[i..]) {
            if kind_of(&attr).is_some() && !starts_fn_item(&tokens[i + 2..]) {
                found.push(attr);
                i += 2;
                continue;
            }
        }
        kept.push(match &tokens[i] {
            TokenTree::Group(group) => {
                let mut inner = Group::new(group.delimiter(), strip_ours(group.stream(), found));
                inner.set_span(group.span());
                TokenTree::Group(inner)
            }
            other => other.clone(),
        });
        i += 1;
    }
    kept.into_iter().collect()
}

/// The outer attribute `# [...]` that `tokens` start with, if any.
fn outer_attribute(tokens: &[TokenTree]) -> Option<Attribute> {
    match tokens {
        [TokenTree::Punct(pound), TokenTree::Group(group), ..]
            if pound.as_char() == '#' && group.delimiter() == Delimiter::Bracket =>
        {
            let tokens: TokenStream = tokens[..2].iter().cloned().collect();
            Attribute::parse_outer
                .parse2(tokens)
                .ok()
                .and_then(|mut attrs| attrs.pop())
        }
        _ => None,
    }
}

/// Whether `tokens` start a `fn` item: more attributes, then `pub`, `pub(..)`, `const`,
/// `async`, `unsafe`, `extern "C"` in any number, then `fn`.
fn starts_fn_item(mut tokens: &[TokenTree]) -> bool {
    loop {
        match tokens {
            [TokenTree::Punct(pound), TokenTree::Group(_), rest @ ..] if pound.as_char() == '#' => {
                tokens = rest;
            }
            [TokenTree::Ident(word), rest @ ..] => match word.to_string().as_str() {
                "fn" => return true,
                "pub" | "const" | "async" | "unsafe" | "extern" | "default" => {
                    tokens = match rest {
                        // `pub(crate)`, `extern "C"`
                        [TokenTree::Group(g), after @ ..]
                            if word == "pub" && g.delimiter() == Delimiter::Parenthesis =>
                        {
                            after
                        }
                        [TokenTree::Literal(_), after @ ..] if word == "extern" => after,
                        _ => rest,
                    }
                }
                _ => return false,
            },
            _ => return false,
        }
    }
}

/// Why `attr`, found in the input of the macro `mac`, is an error, and what to write instead.
fn in_macro_error(attr: &Attribute, mac: &syn::Path) -> Error {
    let attribute = attr.path().to_token_stream().to_string().replace(' ', "");
    let mac = mac.to_token_stream().to_string().replace(' ', "");
    Error::new_spanned(
        attr,
        format!(
            "#[{attribute}] inside `{mac}!` is never expanded: a macro's input is not parsed as \
             Rust before that macro runs, so the instrumented fn cannot see the statements in it\n\
             help: time the work in an `async` block or an instrumented fn outside the macro, \
             and give the macro that: `let auth = async {{ #[perf_stage(auth_validation)] let \
             user = check(..).await; user }};` then `tokio::join!(auth, ..)`"
        ),
    )
}

/// Adds `path` to `paths` unless it is there.
fn remember(paths: &mut Vec<syn::Path>, path: &syn::Path) {
    let name = path.to_token_stream().to_string();
    if !paths
        .iter()
        .any(|p| p.to_token_stream().to_string() == name)
    {
        paths.push(path.clone());
    }
}

/// Removes this crate's attributes from `attrs` and returns them.
fn take_ours(attrs: &mut Vec<Attribute>) -> Vec<(Kind, Attribute)> {
    let mut ours = Vec::new();
    attrs.retain(|attr| match kind_of(attr) {
        Some(kind) => {
            ours.push((kind, attr.clone()));
            false
        }
        None => true,
    });
    ours
}

/// Wraps `value` as the attribute says; `at` as in [`rewrite`].
fn apply(
    (kind, attr): &(Kind, Attribute),
    value: TokenStream,
    at: wrap::Opening,
) -> syn::Result<TokenStream> {
    match kind {
        Kind::Stage => {
            let args = parse_args(attr, StageArgs::parse)?;
            let Some(name) = args.name else {
                return Err(Error::new_spanned(
                    attr,
                    "name the stage of a statement: #[perf_stage(request_parsing)]",
                ));
            };
            let stage = stages::check(&name)?;
            Ok(wrap::stage_at(&stage, value, at))
        }
        Kind::Backend => {
            let args = parse_args(attr, |input| BackendArgs::parse_with(input, Some(attr)))?;
            Ok(wrap::backend_at(&args, value, at))
        }
        Kind::Stream => {
            let args = parse_args(attr, StreamArgs::parse)?;
            Ok(wrap::stream(&args, value))
        }
        Kind::Statements => Err(Error::new_spanned(
            attr,
            "#[perf_statements] goes on a fn, to let its statements carry perf attributes",
        )),
        Kind::Endpoint => Err(Error::new_spanned(
            attr,
            "#[perf_endpoint] goes on the handler's `async fn`, not on a statement",
        )),
    }
}

/// Parses the arguments of `#[name(args)]`; `#[name]` has empty arguments.
fn parse_args<T>(
    attr: &Attribute,
    parser: impl FnOnce(syn::parse::ParseStream) -> syn::Result<T>,
) -> syn::Result<T> {
    match &attr.meta {
        Meta::Path(_) => parser.parse2(TokenStream::new()),
        Meta::List(list) => parser.parse2(list.tokens.clone()),
        Meta::NameValue(nv) => Err(Error::new_spanned(
            nv.eq_token,
            "expected parentheses: #[perf_stage(request_parsing)]",
        )),
    }
}

/// The outer attributes of a statement (for an expression statement, those of the expression).
fn attrs_of(stmt: &mut Stmt) -> Option<&mut Vec<Attribute>> {
    match stmt {
        Stmt::Local(local) => Some(&mut local.attrs),
        Stmt::Expr(expr, _) => expr_attrs(expr),
        Stmt::Item(_) | Stmt::Macro(_) => None,
    }
}

fn expr_attrs(expr: &mut Expr) -> Option<&mut Vec<Attribute>> {
    macro_rules! attrs {
        ($($variant:ident),*) => {
            match expr {
                $(Expr::$variant(e) => Some(&mut e.attrs),)*
                _ => None,
            }
        };
    }
    attrs!(
        Array, Assign, Async, Await, Binary, Block, Call, Cast, Closure, Field, ForLoop, If, Index,
        Let, Lit, Loop, Macro, Match, MethodCall, Paren, Path, Range, Reference, Repeat, Struct,
        Try, TryBlock, Tuple, Unary, Unsafe, While
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `in_body` argument of each guard the rewritten `block` opens, in order.
    fn borrowing(block: &str, starts_request: bool) -> Vec<bool> {
        let mut block: Block = syn::parse_str(block).unwrap();
        assert!(rewrite_statements(&mut block, starts_request).is_empty());
        let text = block.into_token_stream().to_string();
        text.split("open_")
            .skip(1)
            .map(|call| {
                let args = call.split(')').next().unwrap();
                args.trim_end().ends_with("true")
            })
            .collect()
    }

    /// Only statements the endpoint's body future runs itself borrow its request: not those of
    /// a closure or an `async` block, which may run elsewhere after the request.
    #[test]
    fn only_an_endpoints_own_statements_borrow_its_request() {
        let block = "{
            #[perf_stage(request_parsing)] let a = 1;
            if a > 0 { #[perf_backend(provider = \"p\", model = \"m\")] let b = 2; }
            let later = async move { #[perf_stage(auth_validation)] let c = 3; };
            let call = || { #[perf_stage(auth_validation)] let d = 4; };
            loop { #[perf_stage(request_preparation)] let e = 5; break; }
        }";
        assert_eq!(borrowing(block, true), [true, true, false, false, true]);
        assert_eq!(borrowing(block, false), [false; 5]);
    }
}

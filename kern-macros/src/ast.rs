//! The function under `#[tool]`, as the expansion needs it: its arguments (injected context or
//! JSON argument), whether it returns a `Result`, and an `#[approval]` written below `#[tool]`.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, GenericParam, ItemFn, Meta, Pat, PatIdent, ReturnType, Type};

use crate::attr::ApprovalAttr;
use crate::errors::Errors;

/// A function marked `#[tool]`.
pub struct ToolFn {
    /// The function as it is emitted again: as written, minus what only the macro reads
    /// (argument doc comments, which rustc rejects on parameters, and `#[approval]`).
    pub item: ItemFn,
    /// Its parameters, in order.
    pub params: Vec<Param>,
    /// How its return value becomes the tool's result.
    pub returns: Returns,
    /// The arguments of an `#[approval]` written below `#[tool]`.
    pub approval: Option<ApprovalAttr>,
}

/// One parameter of the function.
pub struct Param {
    /// Its name (without `mut`): the JSON property name.
    pub ident: syn::Ident,
    /// Its type as written.
    pub ty: Type,
    /// Where its value comes from.
    pub kind: ParamKind,
}

/// Where a parameter's value comes from.
pub enum ParamKind {
    /// A `&RunContext`: the run's context is passed in; the model never sees it.
    Context,
    /// A JSON argument; its doc comments become the property's description in the schema.
    Arg { docs: Vec<Attribute> },
}

/// How the function's return value becomes the tool's JSON result.
pub struct Returns {
    /// Whether the return type's last path segment is `Result`: then `Ok` is serialized and
    /// `Err` becomes a failed call whose text goes back to the model. Decided from the syntax
    /// alone, so an alias of `Result` under another name counts as a plain `Serialize` value.
    pub result: bool,
    /// The return type, where an error about serializing the result belongs.
    pub span: Span,
}

/// True when `attr` is `#[name]` or `#[some::path::name]`.
pub fn is_attr(attr: &Attribute, name: &str) -> bool {
    attr.path().segments.last().is_some_and(|segment| segment.ident == name)
}

impl ToolFn {
    /// Reads the function, recording in `errors` everything `#[tool]` cannot turn into a tool.
    pub fn from_item(mut item: ItemFn, errors: &mut Errors) -> Self {
        let approval = take_approval(&mut item.attrs, errors);
        // Removed too, so the function is not expanded into a second tool.
        for attr in take_attrs(&mut item.attrs, |attr| is_attr(attr, "tool")) {
            errors.spanned(attr, "`#[tool]` is given twice: keep one");
        }
        check_signature(&item, errors);
        let params = item.sig.inputs.iter_mut().filter_map(|input| param(input, errors)).collect();
        let returns = match &item.sig.output {
            ReturnType::Default => Returns { result: false, span: item.sig.ident.span() },
            ReturnType::Type(_, ty) => Returns { result: is_result(ty), span: ty.span() },
        };
        ToolFn { item, params, returns, approval }
    }

    /// The function's `#[cfg]`s, which the generated items must share.
    pub fn cfgs(&self) -> impl Iterator<Item = &Attribute> {
        self.item.attrs.iter().filter(|attr| attr.path().is_ident("cfg"))
    }
}

/// Removes an `#[approval]` written below `#[tool]` and parses it.
fn take_approval(attrs: &mut Vec<Attribute>, errors: &mut Errors) -> Option<ApprovalAttr> {
    let mut approval = None;
    for attr in take_attrs(attrs, |attr| is_attr(attr, "approval")) {
        let span = attr.path().segments.last().map_or_else(Span::call_site, |segment| segment.ident.span());
        let args = match attr.meta {
            Meta::Path(_) => TokenStream::new(),
            Meta::List(list) => list.tokens,
            Meta::NameValue(name_value) => {
                errors.spanned(name_value, "write `#[approval]` or `#[approval(type = \"audit\")]`");
                continue;
            }
        };
        let parsed = ApprovalAttr::parse(span, args, errors);
        if approval.is_some() {
            errors.at(span, "`#[approval]` is given twice: keep one");
        } else {
            approval = Some(parsed);
        }
    }
    approval
}

fn check_signature(item: &ItemFn, errors: &mut Errors) {
    let sig = &item.sig;
    if let Some(unsafety) = &sig.unsafety {
        errors.spanned(
            unsafety,
            "a tool cannot be an `unsafe fn`: the model decides when it runs, so nobody upholds its safety \
             contract; make the function safe and use `unsafe` blocks inside it",
        );
    }
    for param in &sig.generics.params {
        if !matches!(param, GenericParam::Lifetime(_)) {
            errors.spanned(
                param,
                "a tool cannot be generic: its arguments are deserialized from the model's JSON, so each \
                 needs a concrete type",
            );
        }
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(variadic, "a tool cannot be variadic: give it named arguments");
    }
}

/// Reads one parameter, moving its doc comments out of the function.
fn param(input: &mut FnArg, errors: &mut Errors) -> Option<Param> {
    let typed = match input {
        FnArg::Receiver(receiver) => {
            errors.spanned(
                receiver,
                "`#[tool]` goes on a free function, not a method: `self` cannot come from the model's JSON; \
                 move the function out of the `impl` and pass what it needs as arguments",
            );
            return None;
        }
        FnArg::Typed(typed) => typed,
    };
    let docs = take_attrs(&mut typed.attrs, |attr| attr.path().is_ident("doc"));
    for attr in typed.attrs.iter().filter(|attr| attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr")) {
        errors.spanned(
            attr,
            "`#[cfg]` on a tool argument is not supported: the argument would leave the function but not \
             the tool's schema; put the `#[cfg]` on the whole function",
        );
    }
    let ident = match &*typed.pat {
        Pat::Ident(PatIdent { by_ref: None, subpat: None, ident, .. }) => ident.clone(),
        Pat::Wild(wild) => {
            errors.spanned(wild, "give this argument a name: it becomes the JSON property the model fills in");
            return None;
        }
        pat => {
            errors.spanned(
                pat,
                "a tool argument needs a plain name, which becomes its JSON property: write `name: Type` \
                 and destructure it inside the function",
            );
            return None;
        }
    };
    let ty = (*typed.ty).clone();
    let kind = match ungroup(&ty) {
        Type::Reference(reference) if is_run_context(&reference.elem) => {
            if let Some(mutability) = &reference.mutability {
                errors.spanned(mutability, "the run context is shared: take it as `&RunContext`");
            }
            ParamKind::Context
        }
        bare if is_run_context(bare) => {
            errors.spanned(bare, "take the run context by reference: write `&RunContext`");
            ParamKind::Context
        }
        ty if holds_impl_trait(ty.to_token_stream()) => {
            errors.spanned(
                ty,
                "an `impl Trait` argument cannot be deserialized from the model's JSON: give it a concrete type",
            );
            return None;
        }
        ty if borrows(ty.to_token_stream()) => {
            errors.spanned(
                ty,
                "tool arguments are deserialized from the model's JSON, so they must own their data: \
                 take `String` instead of `&str`, `Vec<T>` instead of `&[T]`, `T` instead of `&T`",
            );
            return None;
        }
        _ => ParamKind::Arg { docs },
    };
    Some(Param { ident, ty, kind })
}

/// Removes the attributes `wanted` picks from `attrs` and returns them.
fn take_attrs(attrs: &mut Vec<Attribute>, wanted: impl Fn(&Attribute) -> bool) -> Vec<Attribute> {
    let (taken, kept) = std::mem::take(attrs).into_iter().partition(|attr| wanted(attr));
    *attrs = kept;
    taken
}

/// Looks through the invisible groups that `macro_rules!` wraps around types.
fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => ungroup(&group.elem),
        Type::Paren(paren) => ungroup(&paren.elem),
        ty => ty,
    }
}

/// True for a path ending in `RunContext`. Matched by name, as a macro cannot resolve types; a
/// different type of that name is then rejected by the type checker at the call.
fn is_run_context(ty: &Type) -> bool {
    matches!(ungroup(ty), Type::Path(path) if path.qself.is_none()
        && path.path.segments.last().is_some_and(|segment| segment.ident == "RunContext"))
}

fn is_result(ty: &Type) -> bool {
    matches!(ungroup(ty), Type::Path(path) if path.qself.is_none()
        && path.path.segments.last().is_some_and(|segment| segment.ident == "Result"))
}

/// True when a type holds a reference or a lifetime other than `'static`: such a field cannot be
/// deserialized into an owned argument struct.
/// Whether a type's tokens hold an `impl Trait`, at its top or inside (`Option<impl Display>`).
fn holds_impl_trait(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Group(group) => holds_impl_trait(group.stream()),
        TokenTree::Ident(ident) => ident == "impl",
        _ => false,
    })
}

fn borrows(tokens: TokenStream) -> bool {
    let mut after_quote = false;
    for token in tokens {
        match token {
            TokenTree::Group(group) if borrows(group.stream()) => return true,
            TokenTree::Punct(punct) if punct.as_char() == '&' => return true,
            TokenTree::Punct(punct) if punct.as_char() == '\'' => {
                after_quote = true;
                continue;
            }
            TokenTree::Ident(ident) if after_quote && ident != "static" => return true,
            _ => {}
        }
        after_quote = false;
    }
    false
}

//! How the options of `#[tool]` and `#[approval]` combine, checked against the function: the
//! result is the resolved description of the tool, or errors.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote_spanned};
use syn::ext::IdentExt;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Meta, Path};

use crate::ast::{ParamKind, ToolFn};
use crate::attr::{ApprovalAttr, ApprovalKind, CrateOption, CratePath, Flag, OnExpire, ToolAttr, When, WhenOption};
use crate::errors::Errors;

/// Everything the expansion emits besides the function's own items.
pub struct Spec {
    /// The unit struct implementing `Tool`.
    pub struct_ident: Ident,
    /// The wire name.
    pub name: String,
    /// The description for the model.
    pub description: Description,
    /// Who must act before a call runs.
    pub hitl: Hitl,
    /// The approval policy, if any.
    pub approval: Option<Approval>,
}

/// A tool's description.
pub enum Description {
    /// Known while expanding: `description = ".."` or a doc comment of string literals.
    Text(String),
    /// A doc comment with a macro in it (`#[doc = include_str!(..)]`): its parts (one a line)
    /// are joined by `concat!` and trimmed when the definition is built.
    Parts(Vec<TokenStream>),
}

/// The resolved human-in-the-loop kind, mirroring `kern::tools::Hitl`.
pub enum Hitl {
    None,
    Confirmation,
    /// The names of the arguments a person supplies.
    UserInput(Vec<String>),
    ExternalExecution,
}

/// The resolved approval policy, mirroring `kern::approval::ApprovalPolicy`, and its condition.
pub struct Approval {
    pub kind: ApprovalKind,
    /// In seconds.
    pub expires_in: Option<u64>,
    pub on_expire: OnExpire,
    /// The roles that may decide; empty means any principal.
    pub approvers: Vec<String>,
    pub quorum: u32,
    pub self_approval: bool,
    pub allow_edit: bool,
    /// `when = path`: the call needs the approval only when this returns `true`.
    pub when: Option<When>,
}

impl Approval {
    /// The policy of `kind` with nothing but defaults, as `ApprovalPolicy::REQUIRED` and
    /// `ApprovalPolicy::AUDIT` have it.
    fn new(kind: ApprovalKind) -> Self {
        Approval {
            kind,
            expires_in: None,
            on_expire: OnExpire::Reject,
            approvers: Vec::new(),
            quorum: 1,
            self_approval: true,
            allow_edit: false,
            when: None,
        }
    }
}

/// The path generated code reaches the `kern` facade by.
pub enum KernPath {
    /// `::kern`: the dependency under its own name.
    Default,
    /// The path `crate = ".."` names, spanned at that string.
    Given(Path),
}

impl KernPath {
    /// The path's tokens. `::kern` takes `span`, so that it reads as part of the code around
    /// it; a given path keeps the span of its string, where an error about it belongs.
    pub fn at(&self, span: Span) -> TokenStream {
        match self {
            KernPath::Default => quote_spanned!(span=> ::kern),
            KernPath::Given(path) => path.to_token_stream(),
        }
    }

    /// `{path}{rest}` as a string literal, for the `crate = ".."` options of the serde and
    /// schemars derives (which parse it back into a path spanned at the literal).
    pub fn lit(&self, rest: &str) -> LitStr {
        match self {
            KernPath::Default => LitStr::new(&format!("::kern{rest}"), Span::call_site()),
            KernPath::Given(path) => {
                let text = path.to_token_stream().to_string().replace(' ', "");
                LitStr::new(&format!("{text}{rest}"), syn::spanned::Spanned::span(path))
            }
        }
    }
}

/// The path to kern: `::kern`, or the one that `crate = ".."` gives on `#[tool]` or on the
/// `#[approval]` above or below it. `#[approval]` generates nothing itself but hands its
/// arguments to `#[tool]`, so either attribute may carry `crate`; when both do, they must name
/// the same path, since they make one tool. `None` when a value is no path or the values
/// disagree (both reported): nothing is then generated against a guessed path.
pub fn kern_path(attr: &ToolAttr, func: &ToolFn, errors: &mut Errors) -> Option<KernPath> {
    // In the order they are written.
    let given = [
        ("#[approval]", attr.approval.as_ref().and_then(|above| above.krate.as_ref())),
        ("#[tool]", attr.krate.as_ref()),
        ("#[approval]", func.approval.as_ref().and_then(|below| below.krate.as_ref())),
    ];
    let mut usable = true;
    let mut first: Option<(&str, &CratePath)> = None;
    for (attribute, option) in given {
        match (option, first) {
            (None, _) => {}
            (Some(CrateOption::Unusable), _) => usable = false,
            (Some(CrateOption::Path(path)), None) => first = Some((attribute, path)),
            (Some(CrateOption::Path(path)), Some((first_attribute, first_path))) => {
                if !path.same_path(first_path) {
                    usable = false;
                    errors.at(
                        path.lit.span(),
                        format!(
                            "`crate = \"{}\"` on `{attribute}` differs from `crate = \"{}\"` on \
                             `{first_attribute}`, and the two attributes make one tool: write `crate` \
                             on one of them only, with the path by which this crate reaches kern",
                            path.lit.value(),
                            first_path.lit.value(),
                        ),
                    );
                }
            }
        }
    }
    usable.then(|| first.map_or(KernPath::Default, |(_, given)| KernPath::Given(given.path.clone())))
}

/// Checks how the options combine and resolves them. `None` when `errors` got something.
pub fn validate(attr: ToolAttr, func: &ToolFn, errors: &mut Errors) -> Option<Spec> {
    let fn_ident = &func.item.sig.ident;
    let name = wire_name(&attr, fn_ident, errors);
    let struct_ident = struct_ident(fn_ident, errors);
    let description = match &attr.description {
        Some(text) => Description::Text(text.value()),
        None => doc_description(&func.item.attrs),
    };
    let hitl = hitl(&attr, func, errors);
    let approval = approval(&attr, func, &hitl, errors);
    let hitl = match (hitl, &approval) {
        (Hitl::None, Some(Approval { kind: ApprovalKind::Required, .. })) => Hitl::Confirmation,
        (hitl, _) => hitl,
    };
    let struct_ident = struct_ident?;
    errors.is_empty().then_some(Spec { struct_ident, name, description, hitl, approval })
}

/// The fn name or `name = ".."`, checked against what model APIs accept as a function name.
fn wire_name(attr: &ToolAttr, fn_ident: &Ident, errors: &mut Errors) -> String {
    let (name, span) = match &attr.name {
        Some(name) => (name.value(), name.span()),
        None => (fn_ident.unraw().to_string(), fn_ident.span()),
    };
    let valid =
        (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        errors.at(
            span,
            format!(
                "tool name `{name}` is not accepted by model APIs, which allow 1 to 64 ASCII letters, \
                 digits, `_` and `-`: write `#[tool(name = \"...\")]` with such a name"
            ),
        );
    }
    name
}

/// `delete_user_data` -> `DeleteUserData`, spanned at the function's name so that "go to
/// definition" on the struct lands on the function; `None`, said in `errors`, when the name
/// makes no identifier.
fn struct_ident(fn_ident: &Ident, errors: &mut Errors) -> Option<Ident> {
    let Some(pascal) = pascal_ident(fn_ident) else {
        errors.at(
            fn_ident.span(),
            format!(
                "the tool struct is named after the function in PascalCase, and `{fn_ident}` gives `{}`, which \
                 cannot name a struct: rename the function so that it gives an identifier that is no keyword, \
                 starting with a letter (`reset_2fa`, not `_2fa_reset`)",
                pascal_case(&fn_ident.unraw().to_string())
            ),
        );
        return None;
    };
    if fn_ident.unraw() == pascal {
        errors.at(
            fn_ident.span(),
            format!(
                "the tool struct would be named `{pascal}` like the function itself: name the function \
                 in snake_case so the struct can take the PascalCase name"
            ),
        );
    }
    Some(pascal)
}

/// The PascalCase form of a function's name as an identifier spanned at it, or `None` when it
/// makes none (`_2fa` gives `2fa`, `self_` the keyword `Self`).
pub fn pascal_ident(fn_ident: &Ident) -> Option<Ident> {
    let pascal = pascal_case(&fn_ident.unraw().to_string());
    syn::parse_str::<Ident>(&pascal).ok().map(|_| Ident::new(&pascal, fn_ident.span()))
}

/// `send_payment` -> `SendPaymentArgs`: the public struct of the arguments the model gives the
/// tool, which a `when` condition takes. Spanned like the unit struct; called only for a
/// function whose [`pascal_ident`] is one.
pub fn args_struct_ident(fn_ident: &Ident) -> Ident {
    Ident::new(&format!("{}Args", pascal_case(&fn_ident.unraw().to_string())), fn_ident.span())
}

/// `delete_user_data` -> `DeleteUserData`.
fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .flat_map(|word| {
            let mut chars = word.chars();
            chars.next().into_iter().flat_map(char::to_uppercase).chain(chars)
        })
        .collect()
}

/// The doc comment with its common indentation removed and its ends trimmed.
fn doc_description(attrs: &[syn::Attribute]) -> Description {
    let mut texts = Vec::new();
    let mut parts = Vec::new();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("doc")) {
        let Meta::NameValue(doc) = &attr.meta else { continue };
        match &doc.value {
            Expr::Lit(ExprLit { lit: Lit::Str(text), .. }) => {
                let line = text.value();
                // `/// text` arrives as `#[doc = " text"]`; rustdoc drops that one space too.
                let part = LitStr::new(line.strip_prefix(' ').unwrap_or(&line), text.span());
                parts.push(part.into_token_stream());
                texts.push(line);
            }
            value => parts.push(value.into_token_stream()),
        }
    }
    if texts.len() < parts.len() {
        return Description::Parts(parts);
    }
    let text = texts.join("\n");
    let indent = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    let lines: Vec<&str> = text.lines().map(|line| line.get(indent..).unwrap_or("").trim_end()).collect();
    Description::Text(lines.join("\n").trim().to_owned())
}

/// One human-in-the-loop option that is on, as written.
struct Chosen {
    position: usize,
    span: Span,
    key: &'static str,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Confirmation,
    UserInput,
    ExternalExecution,
}

/// The one human-in-the-loop kind the flags select.
fn hitl(attr: &ToolAttr, func: &ToolFn, errors: &mut Errors) -> Hitl {
    let fields = &attr.user_input_fields;
    if let (Some(Flag { on: false, span, .. }), Some(_)) = (attr.requires_user_input, fields) {
        errors.at(
            span,
            "`user_input_fields` already makes the tool ask for user input: remove `requires_user_input = false`",
        );
    }
    let flag = |flag: Option<Flag>, key, kind| {
        flag.filter(|flag| flag.on).map(|flag| Chosen { position: flag.position, span: flag.span, key, kind })
    };
    // `requires_user_input` and `user_input_fields` together are one choice, not a conflict.
    let user_input = flag(attr.requires_user_input, "requires_user_input", Kind::UserInput)
        .into_iter()
        .chain(fields.as_ref().map(|list| Chosen {
            position: list.position,
            span: list.span,
            key: "user_input_fields",
            kind: Kind::UserInput,
        }))
        .min_by_key(|chosen| chosen.position);
    let mut chosen: Vec<Chosen> = flag(attr.requires_confirmation, "requires_confirmation", Kind::Confirmation)
        .into_iter()
        .chain(user_input)
        .chain(flag(attr.external_execution, "external_execution", Kind::ExternalExecution))
        .collect();
    chosen.sort_by_key(|chosen| chosen.position);
    let Some(first) = chosen.first() else { return Hitl::None };
    for later in &chosen[1..] {
        errors.at(
            later.span,
            format!(
                "`{}` cannot be combined with `{}`: a tool pauses for one kind of human-in-the-loop step; \
                 keep one of them",
                later.key, first.key
            ),
        );
    }
    match first.kind {
        Kind::Confirmation => Hitl::Confirmation,
        Kind::UserInput => Hitl::UserInput(user_input_fields(attr, func, errors)),
        Kind::ExternalExecution => Hitl::ExternalExecution,
    }
}

/// The arguments a person supplies: those listed, or all of them.
fn user_input_fields(attr: &ToolAttr, func: &ToolFn, errors: &mut Errors) -> Vec<String> {
    let fn_ident = &func.item.sig.ident;
    let args: Vec<String> = func
        .params
        .iter()
        .filter(|param| matches!(param.kind, ParamKind::Arg { .. }))
        .map(|param| param.ident.unraw().to_string())
        .collect();
    let Some(list) = &attr.user_input_fields else {
        if args.is_empty()
            && let Some(flag) = attr.requires_user_input
        {
            errors.at(
                flag.span,
                format!(
                    "`{fn_ident}` takes no arguments, so a person has nothing to fill in: use \
                         `requires_confirmation` instead, or add the arguments"
                ),
            );
        }
        return args;
    };
    if list.fields.is_empty() {
        errors.at(
            list.span,
            "`user_input_fields` is empty: list the arguments a person fills in, or write \
             `requires_user_input` to have a person fill in all of them",
        );
    }
    let mut fields: Vec<String> = Vec::new();
    for field in &list.fields {
        let name = field.value();
        let is_context = func.params.iter().any(|p| matches!(p.kind, ParamKind::Context) && p.ident.unraw() == name);
        if fields.contains(&name) {
            errors.at(field.span(), format!("`{name}` is listed twice: list it once"));
        } else if is_context {
            errors.at(
                field.span(),
                format!("`{name}` is the run context, which kern passes in: list only arguments a person fills in"),
            );
        } else if !args.contains(&name) {
            let known = match args.as_slice() {
                [] => format!("`{fn_ident}` takes no arguments"),
                args => format!(
                    "its arguments are {}",
                    args.iter().map(|arg| format!("`{arg}`")).collect::<Vec<_>>().join(", ")
                ),
            };
            errors.at(
                field.span(),
                format!("`{name}` is not an argument of `{fn_ident}`: name the arguments a person fills in ({known})"),
            );
        }
        fields.push(name);
    }
    fields
}

/// The approval from `#[approval]` (above or below `#[tool]`) or `log_approval`.
fn approval(attr: &ToolAttr, func: &ToolFn, hitl: &Hitl, errors: &mut Errors) -> Option<Approval> {
    let declared: Option<&ApprovalAttr> = match (&attr.approval, &func.approval) {
        (Some(above), Some(below)) => {
            errors.at(below.span, "`#[approval]` is given twice: keep one");
            Some(above)
        }
        (above, below) => above.as_ref().or(below.as_ref()),
    };
    let log_approval = attr.log_approval.filter(|flag| flag.on);
    let (kind, kind_span) = match (declared, log_approval) {
        (Some(_), Some(flag)) => {
            errors.at(
                flag.span,
                "`log_approval` and `#[approval]` both set the tool's approval: keep one \
                 (`log_approval` is the same as `#[approval(type = \"audit\")]`)",
            );
            return None;
        }
        (Some(declared), None) => (declared.kind, declared.kind_span),
        (None, Some(flag)) => (ApprovalKind::Audit, flag.span),
        (None, None) => return None,
    };
    let approval = Approval::new(kind);
    match kind {
        ApprovalKind::Audit => {
            if matches!(hitl, Hitl::None) {
                errors.at(
                    kind_span,
                    "an audit approval records the outcome of a human-in-the-loop step, and this tool has none: \
                     add `requires_confirmation`, `requires_user_input`, `user_input_fields = [..]` or \
                     `external_execution` to `#[tool]`",
                );
            }
            if let Some(declared) = declared {
                no_policy_on_audit(declared, errors);
            }
            Some(approval)
        }
        ApprovalKind::Required => {
            if let (Hitl::None, Some(Flag { on: false, span, .. })) = (hitl, attr.requires_confirmation) {
                errors.at(
                    span,
                    "`#[approval]` pauses each call until an admin confirms it: remove \
                     `requires_confirmation = false`",
                );
            }
            Some(declared.map_or(approval, |declared| policy(declared, hitl, errors)))
        }
    }
}

/// Reports every policy option of an audit approval: an audit row is written once the tool's
/// human-in-the-loop step has decided, so there is no one to ask and nothing to wait for.
fn no_policy_on_audit(declared: &ApprovalAttr, errors: &mut Errors) {
    const NEVER_WAITS: &str = "an audit row is written once the step is resolved and never waits";
    const DECIDED: &str = "an audit row records a decision the tool's human-in-the-loop step already made and \
                           asks nobody to approve";
    let when = declared.when.as_ref().and_then(|when| match when {
        WhenOption::Path(when) => Some(when.key),
        WhenOption::Unusable => None,
    });
    // In the order the options are documented.
    let written = [
        ("approvers", declared.approvers.as_ref().map(|given| given.span), DECIDED),
        ("quorum", declared.quorum.as_ref().map(|given| given.span), DECIDED),
        ("self_approval", declared.self_approval.as_ref().map(|given| given.span), DECIDED),
        ("allow_edit", declared.allow_edit.map(|flag| flag.span), DECIDED),
        ("expires_in", declared.expires_in.map(|(_, span)| span), NEVER_WAITS),
        ("on_expire", declared.on_expire.as_ref().map(|given| given.span), NEVER_WAITS),
        ("when", when, DECIDED),
    ];
    for (key, span, why) in written {
        if let Some(span) = span {
            errors.at(span, format!("`{key}` applies to `type = \"required\"`: {why}, so remove `{key}`"));
        }
    }
}

/// The policy of a required approval, checked against the tool's human-in-the-loop kind.
fn policy(declared: &ApprovalAttr, hitl: &Hitl, errors: &mut Errors) -> Approval {
    let mut approval = Approval::new(ApprovalKind::Required);
    approval.expires_in = declared.expires_in.map(|(seconds, _)| seconds);
    if let Some(on_expire) = &declared.on_expire {
        if declared.expires_in.is_none() {
            errors.at(
                on_expire.span,
                "`on_expire` says what happens when a pending approval expires, and this one never does: \
                 add `expires_in = \"24h\"` (or another duration), or remove `on_expire`",
            );
        }
        approval.on_expire = on_expire.value;
    }
    if let Some(approvers) = &declared.approvers {
        approval.approvers.clone_from(&approvers.value);
    }
    if let Some(quorum) = &declared.quorum {
        approval.quorum = quorum.value;
        if quorum.value > 1 && matches!(hitl, Hitl::UserInput(_) | Hitl::ExternalExecution) {
            errors.at(
                quorum.span,
                "a quorum approves a call as it stands, and a user-input or external-execution call is \
                 completed by the one approver who gives its values or result: remove `quorum`, or make the \
                 tool `requires_confirmation`",
            );
        }
    }
    if let Some(self_approval) = &declared.self_approval {
        approval.self_approval = self_approval.value;
    }
    approval.allow_edit = declared.allow_edit.is_some_and(|flag| flag.on);
    if let (Some(Flag { on: true, span, .. }), Hitl::ExternalExecution) = (declared.allow_edit, hitl) {
        errors.at(
            span,
            "an external-execution call does not run here, so edited arguments would change nothing: \
             remove `allow_edit`",
        );
    }
    if let Some(WhenOption::Path(when)) = &declared.when {
        if matches!(hitl, Hitl::UserInput(_) | Hitl::ExternalExecution) {
            errors.at(
                when.key,
                "a user-input or external-execution call always needs a person, so `when` cannot let it \
                 skip its approval: remove `when`, or make the tool `requires_confirmation`",
            );
        }
        approval.when = Some(when.clone());
    }
    approval
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pascal_case_names() {
        assert_eq!(pascal_case("delete_user_data"), "DeleteUserData");
        assert_eq!(pascal_case("search"), "Search");
        assert_eq!(pascal_case("_private_tool"), "PrivateTool");
        assert_eq!(pascal_case("get_v2_data"), "GetV2Data");
        assert_eq!(pascal_case("fetch__twice"), "FetchTwice");
        assert_eq!(pascal_case("already_camelCase"), "AlreadyCamelCase");
    }

    #[test]
    fn doc_comments_lose_indentation_and_blank_ends() {
        let item: syn::ItemFn = syn::parse_quote! {
            ///
            /// First line.
            ///   indented
            ///
            /// Second paragraph.
            ///
            fn f() {}
        };
        let Description::Text(text) = doc_description(&item.attrs) else { panic!("expected text") };
        assert_eq!(text, "First line.\n  indented\n\nSecond paragraph.");
    }

    #[test]
    fn doc_macros_are_kept_for_concat() {
        let item: syn::ItemFn = syn::parse_quote! {
            /// Intro.
            #[doc = include_str!("x.md")]
            fn f() {}
        };
        assert!(matches!(doc_description(&item.attrs), Description::Parts(parts) if parts.len() == 2));
    }
}

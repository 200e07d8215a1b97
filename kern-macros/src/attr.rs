//! Parsing the arguments of `#[tool(..)]` and `#[approval(..)]`.
//!
//! Only what each option looks like is checked here (its key, the kind of value, a duplicate,
//! an `expires_in` that is no duration, a `crate` that is no path, a list of approvers with an
//! empty or repeated role, a quorum below one); how options combine is `valid`'s job.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ExprPath, Ident, Lit, LitStr, Path, Token, token};

use crate::errors::Errors;

/// The hidden `#[tool]` option through which an `#[approval]` written above `#[tool]` hands its
/// arguments down (attribute macros run outermost first, so it cannot see the result of `#[tool]`).
const FORWARDED_APPROVAL: &str = "__kern_approval";

/// What `crate = ".."` is for, in the errors about its value.
const CRATE_HINT: &str = "write the path by which this crate reaches kern, like `crate = \"my_kern\"` for a \
                          renamed dependency or `crate = \"::my_app::kern\"` for a re-export";

const TOOL_OPTIONS: &[&str] = &[
    "name",
    "description",
    "requires_confirmation",
    "requires_user_input",
    "user_input_fields",
    "external_execution",
    "log_approval",
    "crate",
];

const APPROVAL_OPTIONS: &[&str] =
    &["type", "approvers", "quorum", "self_approval", "allow_edit", "expires_in", "on_expire", "when", "crate"];

/// The arguments of `#[tool(..)]`.
#[derive(Default)]
pub struct ToolAttr {
    /// `name = ".."`: the wire name, instead of the function's name.
    pub name: Option<LitStr>,
    /// `description = ".."`: instead of the doc comment.
    pub description: Option<LitStr>,
    /// `requires_confirmation`.
    pub requires_confirmation: Option<Flag>,
    /// `requires_user_input`.
    pub requires_user_input: Option<Flag>,
    /// `user_input_fields = [".."]`.
    pub user_input_fields: Option<FieldList>,
    /// `external_execution`.
    pub external_execution: Option<Flag>,
    /// `log_approval`: an audit approval, like `#[approval(type = "audit")]`.
    pub log_approval: Option<Flag>,
    /// `crate = ".."`: the path to kern.
    pub krate: Option<CrateOption>,
    /// The arguments of an `#[approval]` written above `#[tool]`.
    pub approval: Option<ApprovalAttr>,
}

/// An on/off option, written `flag`, `flag = true` or `flag = false`.
#[derive(Clone, Copy)]
pub struct Flag {
    /// Whether the option is on.
    pub on: bool,
    /// The option's key, where errors about it point.
    pub span: Span,
    /// Where among the options it was written, so a conflict is reported at the later one.
    pub position: usize,
}

/// `user_input_fields = ["a", "b"]`.
pub struct FieldList {
    /// The `user_input_fields` key.
    pub span: Span,
    /// Where among the options it was written.
    pub position: usize,
    /// The names, each keeping its own span for "no such parameter" errors.
    pub fields: Vec<LitStr>,
}

/// The arguments of `#[approval(..)]`.
pub struct ApprovalAttr {
    /// The `#[approval]` attribute itself.
    pub span: Span,
    /// Blocking or audit.
    pub kind: ApprovalKind,
    /// The `type` value, or the attribute when the type is left to its default.
    pub kind_span: Span,
    /// `expires_in`, in seconds, with the span of its value.
    pub expires_in: Option<(u64, Span)>,
    /// `approvers = [".."]`: the roles that may decide.
    pub approvers: Option<Given<Vec<String>>>,
    /// `quorum = N`: how many distinct eligible principals must approve.
    pub quorum: Option<Given<u32>>,
    /// `self_approval = false`: whether the run's user may decide their own call.
    pub self_approval: Option<Given<bool>>,
    /// `allow_edit`: whether an approver may change the call's arguments.
    pub allow_edit: Option<Flag>,
    /// `on_expire = ".."`: what an expiry does.
    pub on_expire: Option<Given<OnExpire>>,
    /// `when = path`: the function that decides whether a call needs the approval.
    pub when: Option<WhenOption>,
    /// `crate = ".."`: the path to kern.
    pub krate: Option<CrateOption>,
}

/// A policy option's value, with its key, where errors about the option as a whole point.
pub struct Given<T> {
    /// The value as read.
    pub value: T,
    /// The option's key.
    pub span: Span,
}

/// `on_expire = "reject"` or `on_expire = "cancel_run"`, mirroring `kern::approval::OnExpire`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OnExpire {
    /// The call does not run; the run goes on.
    Reject,
    /// The whole run is cancelled.
    CancelRun,
}

/// `when = path`: a function over the tool's arguments; a call needs the approval only when it
/// returns `true`.
pub enum WhenOption {
    /// A path, type-checked by the generated code.
    Path(When),
    /// A value that is no path (already reported).
    Unusable,
}

/// A `when` value that is a path.
#[derive(Clone)]
pub struct When {
    /// The `when` key, where the expected function type is reported when the path names
    /// something else.
    pub key: Span,
    /// The function, as written.
    pub path: ExprPath,
}

/// `crate = ".."`: the path generated code reaches kern by, for a crate that renamed the
/// dependency or reaches kern through another crate's re-export.
pub enum CrateOption {
    /// A path, spanned at the string it was read from.
    Path(CratePath),
    /// A value that is no path (already reported): nothing may then be generated against a
    /// guessed path, which would only add errors about `kern` not being found.
    Unusable,
}

/// A `crate` value that is a path.
pub struct CratePath {
    /// The path; its tokens carry the string's span, so a path that does not resolve is
    /// reported at the string.
    pub path: Path,
    /// The string as written.
    pub lit: LitStr,
}

impl CratePath {
    /// True when both name the same path, token for token.
    pub fn same_path(&self, other: &CratePath) -> bool {
        self.path.to_token_stream().to_string() == other.path.to_token_stream().to_string()
    }
}

/// `type = "required"` or `type = "audit"`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ApprovalKind {
    /// The run waits until an admin resolves the row.
    Required,
    /// The row records the outcome of the tool's human-in-the-loop step.
    Audit,
}

/// The options as written: `a, b = .., c(..)`.
type Entries = Punctuated<Entry, Token![,]>;

/// One option as written: `key`, `key = value` or `key(..)`.
struct Entry {
    key: Ident,
    value: Value,
}

enum Value {
    Bare,
    Assigned(Expr),
    Nested(Group),
}

impl Parse for Entry {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // `type` is a keyword, hence `parse_any`.
        let key = input.call(Ident::parse_any)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            let mut value: Expr = input.parse()?;
            // A value a `macro_rules!` macro passed on (`$x:literal`, `$x:expr`, `$p:path`)
            // arrives in an invisible group.
            while let Expr::Group(group) = value {
                value = *group.expr;
            }
            Value::Assigned(value)
        } else if input.peek(token::Paren) {
            Value::Nested(input.parse()?)
        } else {
            Value::Bare
        };
        Ok(Entry { key, value })
    }
}

impl Entry {
    /// The key as written, without `r#`.
    fn name(&self) -> String {
        self.key.unraw().to_string()
    }

    /// The value when it is a literal, or the span to report a wrong value at.
    fn literal(&self) -> Result<&Lit, Span> {
        match &self.value {
            Value::Assigned(Expr::Lit(ExprLit { lit, .. })) => Ok(lit),
            Value::Assigned(expr) => Err(syn::spanned::Spanned::span(expr)),
            Value::Bare | Value::Nested(_) => Err(self.key.span()),
        }
    }
}

/// The options of an attribute: each entry that parses, and the errors of those that do not,
/// so that one mistake hides neither the others nor a `crate = ".."` beside it (without which
/// every path the macro writes would name `::kern`).
fn entries(tokens: TokenStream) -> Salvaged {
    match Entries::parse_terminated.parse2(tokens.clone()) {
        Ok(entries) => (entries.into_iter().collect(), Vec::new()),
        Err(whole) => salvage(tokens, whole, syn::parse2),
    }
}

/// Reads the options inside a parenthesized group, as [`entries`] does, so that a syntax error
/// at their end points at the group rather than at the attribute being expanded.
fn entries_in(group: Group) -> Salvaged {
    let inside = |input: ParseStream| {
        let content;
        syn::parenthesized!(content in input);
        Entries::parse_terminated(&content)
    };
    match inside.parse2(group.to_token_stream()) {
        Ok(entries) => (entries.into_iter().collect(), Vec::new()),
        Err(whole) => salvage(group.stream(), whole, |part| {
            // In parentheses spanned as the group, for an error at the part's end to point there.
            let mut wrapped = Group::new(Delimiter::Parenthesis, part);
            wrapped.set_span(group.span());
            let one = |input: ParseStream| {
                let content;
                syn::parenthesized!(content in input);
                let entry: Entry = content.parse()?;
                if !content.is_empty() {
                    return Err(content.error("unexpected tokens after the option"));
                }
                Ok(entry)
            };
            one.parse2(wrapped.into_token_stream())
        }),
    }
}

/// What options that did not all parse leave: the entries that did, and the errors.
type Salvaged = (Vec<Entry>, Vec<syn::Error>);

/// Each comma-separated part of `tokens` read on its own by `read`, once reading them all
/// failed with `whole` (which is the error when every part reads alone).
fn salvage(tokens: TokenStream, whole: syn::Error, read: impl Fn(TokenStream) -> syn::Result<Entry>) -> Salvaged {
    let mut parts = vec![TokenStream::new()];
    for token in tokens {
        match &token {
            TokenTree::Punct(comma) if comma.as_char() == ',' => parts.push(TokenStream::new()),
            _ => parts.last_mut().expect("one part at least").extend([token]),
        }
    }
    let (mut entries, mut errors) = (Vec::new(), Vec::new());
    for part in parts.into_iter().filter(|part| !part.is_empty()) {
        match read(part) {
            Ok(entry) => entries.push(entry),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        errors.push(whole);
    }
    (entries, errors)
}

/// Checks what `entries` or `entries_in` read, reporting a duplicate key at its second occurrence.
fn unique_entries((entries, unreadable): Salvaged, errors: &mut Errors) -> Vec<Entry> {
    for error in unreadable {
        errors.push(error);
    }
    let mut seen: Vec<String> = Vec::new();
    let mut unique = Vec::new();
    for entry in entries {
        let name = entry.name();
        if seen.contains(&name) {
            let message = if name == FORWARDED_APPROVAL {
                "`#[approval]` is given twice: keep one".to_owned()
            } else {
                format!("`{name}` is given twice: keep one")
            };
            errors.at(entry.key.span(), message);
        } else {
            seen.push(name);
            unique.push(entry);
        }
    }
    unique
}

impl ToolAttr {
    /// Parses the arguments of `#[tool(..)]`, recording every mistake in `errors`.
    pub fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let mut attr = ToolAttr::default();
        for (position, entry) in unique_entries(entries(tokens), errors).into_iter().enumerate() {
            match entry.name().as_str() {
                "name" => attr.name = string(&entry, errors),
                "description" => attr.description = string(&entry, errors),
                "requires_confirmation" => attr.requires_confirmation = flag(&entry, position, errors),
                "requires_user_input" => attr.requires_user_input = flag(&entry, position, errors),
                "user_input_fields" => attr.user_input_fields = field_list(&entry, position, errors),
                "external_execution" => attr.external_execution = flag(&entry, position, errors),
                "log_approval" => attr.log_approval = flag(&entry, position, errors),
                "crate" => attr.krate = Some(crate_option(&entry, errors)),
                FORWARDED_APPROVAL => attr.approval = forwarded_approval(entry, errors),
                other => errors.at(entry.key.span(), unknown_option("#[tool]", other, TOOL_OPTIONS)),
            }
        }
        attr
    }
}

impl ApprovalAttr {
    /// Parses the arguments of the `#[approval]` attribute at `span`.
    pub fn parse(span: Span, tokens: TokenStream, errors: &mut Errors) -> Self {
        Self::from_entries(span, entries(tokens), errors)
    }

    fn from_entries(span: Span, entries: Salvaged, errors: &mut Errors) -> Self {
        let mut attr = ApprovalAttr {
            span,
            kind: ApprovalKind::Required,
            kind_span: span,
            expires_in: None,
            approvers: None,
            quorum: None,
            self_approval: None,
            allow_edit: None,
            on_expire: None,
            when: None,
            krate: None,
        };
        for (position, entry) in unique_entries(entries, errors).into_iter().enumerate() {
            match entry.name().as_str() {
                "type" => {
                    if let Some(kind) = approval_kind(&entry, errors) {
                        attr.kind = kind;
                        attr.kind_span = entry.literal().map_or(span, Lit::span);
                    }
                }
                "expires_in" => attr.expires_in = expires_in(&entry, errors),
                "approvers" => attr.approvers = approvers(&entry, errors),
                "quorum" => attr.quorum = quorum(&entry, errors),
                "self_approval" => attr.self_approval = self_approval(&entry, errors),
                "allow_edit" => attr.allow_edit = flag(&entry, position, errors),
                "on_expire" => attr.on_expire = on_expire(&entry, errors),
                "when" => attr.when = Some(when(&entry, errors)),
                "crate" => attr.krate = Some(crate_option(&entry, errors)),
                other => errors.at(entry.key.span(), unknown_option("#[approval]", other, APPROVAL_OPTIONS)),
            }
        }
        attr
    }
}

/// The option `#[approval]` adds to the `#[tool]` below it: its own arguments, unread, in
/// parentheses spanned at the `#[approval]` attribute (`span`), so that what `#[tool]` reports
/// about them, even a syntax error at their end, still points there.
pub fn forward_approval(span: Span, args: TokenStream) -> TokenStream {
    let key = Ident::new(FORWARDED_APPROVAL, span);
    let mut args = Group::new(Delimiter::Parenthesis, args);
    args.set_span(span);
    quote!(#key #args)
}

fn forwarded_approval(entry: Entry, errors: &mut Errors) -> Option<ApprovalAttr> {
    let Value::Nested(args) = entry.value else {
        errors.at(entry.key.span(), unknown_option("#[tool]", &entry.name(), TOOL_OPTIONS));
        return None;
    };
    Some(ApprovalAttr::from_entries(args.span(), entries_in(args), errors))
}

fn flag(entry: &Entry, position: usize, errors: &mut Errors) -> Option<Flag> {
    let on = match (&entry.value, entry.literal()) {
        (Value::Bare, _) => true,
        (_, Ok(Lit::Bool(value))) => value.value,
        (_, Ok(lit)) => return bad_flag(entry, lit.span(), errors),
        (_, Err(span)) => return bad_flag(entry, span, errors),
    };
    Some(Flag { on, span: entry.key.span(), position })
}

fn bad_flag(entry: &Entry, span: Span, errors: &mut Errors) -> Option<Flag> {
    let key = entry.name();
    errors.at(span, format!("`{key}` is a flag: write `{key}` or `{key} = true` (`{key} = false` turns it off)"));
    None
}

fn string(entry: &Entry, errors: &mut Errors) -> Option<LitStr> {
    match entry.literal() {
        Ok(Lit::Str(lit)) => Some(lit.clone()),
        Ok(lit) => bad_string(entry, lit.span(), errors),
        Err(span) => bad_string(entry, span, errors),
    }
}

fn bad_string(entry: &Entry, span: Span, errors: &mut Errors) -> Option<LitStr> {
    let key = entry.name();
    errors.at(span, format!("`{key}` takes a string: write `{key} = \"...\"`"));
    None
}

fn field_list(entry: &Entry, position: usize, errors: &mut Errors) -> Option<FieldList> {
    const HINT: &str = "`user_input_fields` takes a list of argument names: write `user_input_fields = [\"a\", \"b\"]`";
    let elems = match &entry.value {
        Value::Assigned(Expr::Array(array)) => &array.elems,
        Value::Assigned(expr) => {
            errors.spanned(expr, HINT);
            return None;
        }
        Value::Bare | Value::Nested(_) => {
            errors.at(entry.key.span(), HINT);
            return None;
        }
    };
    let mut fields = Vec::new();
    for elem in elems {
        match elem {
            Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => fields.push(lit.clone()),
            other => errors.spanned(other, "expected an argument name as a string, like \"reason\""),
        }
    }
    Some(FieldList { span: entry.key.span(), position, fields })
}

fn crate_option(entry: &Entry, errors: &mut Errors) -> CrateOption {
    let lit = match (&entry.value, entry.literal()) {
        (_, Ok(Lit::Str(lit))) => lit,
        (Value::Assigned(Expr::Path(unquoted)), _) => {
            let path = unquoted.to_token_stream().to_string().replace(' ', "");
            errors.spanned(unquoted, format!("`crate` takes the path as a string: write `crate = \"{path}\"`"));
            return CrateOption::Unusable;
        }
        (_, Ok(lit)) => {
            errors.at(lit.span(), format!("`crate` takes a path as a string: {CRATE_HINT}"));
            return CrateOption::Unusable;
        }
        (_, Err(span)) => {
            errors.at(span, format!("`crate` takes a path as a string: {CRATE_HINT}"));
            return CrateOption::Unusable;
        }
    };
    match lit.parse_with(Path::parse_mod_style) {
        Ok(path) => CrateOption::Path(CratePath { path, lit: lit.clone() }),
        Err(_) => {
            errors.at(lit.span(), format!("`crate = \"{}\"` is not a path: {CRATE_HINT}", lit.value()));
            CrateOption::Unusable
        }
    }
}

fn approval_kind(entry: &Entry, errors: &mut Errors) -> Option<ApprovalKind> {
    const HINT: &str = "write `type = \"required\"` (the run waits for an admin's decision) or `type = \"audit\"` \
                        (the decision of the tool's human-in-the-loop step is recorded)";
    match entry.literal() {
        Ok(Lit::Str(lit)) => match lit.value().as_str() {
            "required" => Some(ApprovalKind::Required),
            "audit" => Some(ApprovalKind::Audit),
            other => {
                errors.at(lit.span(), format!("unknown approval type \"{other}\": {HINT}"));
                None
            }
        },
        Ok(lit) => {
            errors.at(lit.span(), format!("`type` takes a string: {HINT}"));
            None
        }
        Err(span) => {
            errors.at(span, format!("`type` takes a string: {HINT}"));
            None
        }
    }
}

fn expires_in(entry: &Entry, errors: &mut Errors) -> Option<(u64, Span)> {
    match entry.literal() {
        Ok(Lit::Str(lit)) => match parse_duration(&lit.value()) {
            Ok(seconds) => Some((seconds, lit.span())),
            Err(message) => {
                errors.at(lit.span(), message);
                None
            }
        },
        Ok(lit) => {
            errors.at(lit.span(), "`expires_in` takes a string: write `expires_in = \"24h\"` (units s, m, h, d)");
            None
        }
        Err(span) => {
            errors.at(span, "`expires_in` takes a string: write `expires_in = \"24h\"` (units s, m, h, d)");
            None
        }
    }
}

fn approvers(entry: &Entry, errors: &mut Errors) -> Option<Given<Vec<String>>> {
    const HINT: &str = "`approvers` takes a list of roles, any of which may decide: write \
                        `approvers = [\"finance\", \"ops\"]`";
    let elems = match &entry.value {
        Value::Assigned(Expr::Array(array)) => &array.elems,
        Value::Assigned(expr) => {
            errors.spanned(expr, HINT);
            return None;
        }
        Value::Bare | Value::Nested(_) => {
            errors.at(entry.key.span(), HINT);
            return None;
        }
    };
    if elems.is_empty() {
        errors.at(
            entry.key.span(),
            "`approvers` is empty, so nobody could decide: list the roles that may, like \
             `approvers = [\"finance\"]`, or remove `approvers` to let any principal decide",
        );
        return None;
    }
    let mut roles: Vec<String> = Vec::new();
    let mut usable = true;
    for elem in elems {
        let Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) = elem else {
            errors.spanned(elem, "expected a role as a string, like \"finance\"");
            usable = false;
            continue;
        };
        let role = lit.value();
        if role.is_empty() {
            errors.at(lit.span(), "a role cannot be empty: write its name, like \"finance\"");
            usable = false;
        } else if role.trim() != role {
            let trimmed = role.trim();
            errors.at(lit.span(), format!("a role has no blanks around it (roles match exactly): write \"{trimmed}\""));
            usable = false;
        } else if roles.contains(&role) {
            errors.at(lit.span(), format!("the role \"{role}\" is listed twice: list it once"));
            usable = false;
        } else {
            roles.push(role);
        }
    }
    usable.then_some(Given { value: roles, span: entry.key.span() })
}

fn quorum(entry: &Entry, errors: &mut Errors) -> Option<Given<u32>> {
    const HINT: &str = "`quorum` takes how many distinct approvers must approve: write a whole number of at \
                        least 1, like `quorum = 2`";
    let lit = match (&entry.value, entry.literal()) {
        (_, Ok(Lit::Int(lit))) => lit,
        // The whole expression, such as `-1`.
        (Value::Assigned(expr), _) => {
            errors.spanned(expr, HINT);
            return None;
        }
        (Value::Bare | Value::Nested(_), _) => {
            errors.at(entry.key.span(), HINT);
            return None;
        }
    };
    match lit.base10_parse::<u32>() {
        Ok(0) => {
            errors.at(
                lit.span(),
                "`quorum = 0` would ask nobody to approve: write a number of at least 1 (the default, 1, \
                 is one approver's approval)",
            );
            None
        }
        Ok(quorum) => Some(Given { value: quorum, span: entry.key.span() }),
        Err(_) => {
            errors.at(lit.span(), format!("`quorum = {lit}` is too large: write at most {}", u32::MAX));
            None
        }
    }
}

fn self_approval(entry: &Entry, errors: &mut Errors) -> Option<Given<bool>> {
    match entry.literal() {
        Ok(Lit::Bool(lit)) => Some(Given { value: lit.value, span: entry.key.span() }),
        Ok(lit) => bad_self_approval(lit.span(), errors),
        Err(span) => bad_self_approval(span, errors),
    }
}

fn bad_self_approval(span: Span, errors: &mut Errors) -> Option<Given<bool>> {
    errors.at(
        span,
        "`self_approval` takes a bool: write `self_approval = false` to keep the user a run acts for from \
         deciding their own call (they may by default)",
    );
    None
}

fn on_expire(entry: &Entry, errors: &mut Errors) -> Option<Given<OnExpire>> {
    const HINT: &str = "write `on_expire = \"reject\"` (the call does not run and the run goes on, the \
                        default) or `on_expire = \"cancel_run\"` (the whole run is cancelled)";
    let value = match entry.literal() {
        Ok(Lit::Str(lit)) => match lit.value().as_str() {
            "reject" => OnExpire::Reject,
            "cancel_run" => OnExpire::CancelRun,
            other => {
                errors.at(lit.span(), format!("unknown `on_expire` value \"{other}\": {HINT}"));
                return None;
            }
        },
        Ok(lit) => {
            errors.at(lit.span(), format!("`on_expire` takes a string: {HINT}"));
            return None;
        }
        Err(span) => {
            errors.at(span, format!("`on_expire` takes a string: {HINT}"));
            return None;
        }
    };
    Some(Given { value, span: entry.key.span() })
}

fn when(entry: &Entry, errors: &mut Errors) -> WhenOption {
    const HINT: &str = "`when` takes the path of a function that receives the tool's arguments and returns \
                        whether the call needs approval, like `when = needs_review`";
    match &entry.value {
        Value::Assigned(Expr::Path(path)) => {
            return WhenOption::Path(When { key: entry.key.span(), path: path.clone() });
        }
        Value::Assigned(closure @ Expr::Closure(_)) => errors.spanned(
            closure,
            "`when` takes the path of a function, not a closure: move the closure's body into a `fn` that \
             takes the tool's arguments and write its path, like `when = needs_review`",
        ),
        Value::Assigned(Expr::Lit(ExprLit { lit: Lit::Str(lit), .. })) => match lit.parse::<ExprPath>() {
            Ok(path) => {
                let path = path.to_token_stream().to_string().replace(' ', "");
                errors.at(lit.span(), format!("`when` takes a path, not a string: write `when = {path}`"));
            }
            Err(_) => errors.at(lit.span(), HINT),
        },
        Value::Assigned(expr) => errors.spanned(expr, HINT),
        Value::Bare | Value::Nested(_) => errors.at(entry.key.span(), HINT),
    }
    WhenOption::Unusable
}

/// The longest `expires_in`, in days: kern's `approval::MAX_EXPIRES_IN`, 100 years.
const MAX_EXPIRES_IN_DAYS: u64 = 36_500;

/// Parses an `expires_in` value, a whole number and a unit (`30s`, `15m`, `24h`, `7d`), into
/// seconds. Checked here so a typo fails the build rather than every approval at run time.
fn parse_duration(text: &str) -> Result<u64, String> {
    let malformed = || {
        format!(
            "`expires_in = \"{text}\"` is not a duration: write a whole number and a unit \
             (s, m, h or d), like \"30s\", \"15m\", \"24h\" or \"7d\""
        )
    };
    let unit_at = text.len().checked_sub(1).filter(|&i| text.is_char_boundary(i)).ok_or_else(malformed)?;
    let (number, unit) = text.split_at(unit_at);
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(malformed()),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let too_long = || {
        format!(
            "`expires_in = \"{text}\"` is longer than a row can wait ({MAX_EXPIRES_IN_DAYS}d): leave `expires_in` \
             out for no expiry"
        )
    };
    let seconds = number.parse::<u64>().map_err(|_| too_long())?.checked_mul(unit_seconds).ok_or_else(too_long)?;
    if seconds > MAX_EXPIRES_IN_DAYS * 24 * 60 * 60 {
        return Err(too_long());
    }
    if seconds == 0 {
        return Err("`expires_in` must be longer than zero, or an approval could never be given in time: \
                    leave `expires_in` out for no expiry"
            .to_owned());
    }
    Ok(seconds)
}

/// The message for a key the attribute does not know: the attribute that takes it, when it is
/// the other one's, or the closest option of this one.
fn unknown_option(attr: &str, key: &str, known: &[&str]) -> String {
    let (other, others) = if known == TOOL_OPTIONS { ("approval", APPROVAL_OPTIONS) } else { ("tool", TOOL_OPTIONS) };
    if others.contains(&key) {
        return format!("`{key}` is an option of `#[{other}]`, not of `{attr}`: move it into `#[{other}(..)]`");
    }
    let list = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
    let closest = known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|&(distance, k)| distance <= (k.len() / 3).max(1))
        .min_by_key(|&(distance, _)| distance);
    match closest {
        Some((_, k)) => format!("unknown `{attr}` option `{key}`: did you mean `{k}`? (the options are {list})"),
        None => format!("unknown `{attr}` option `{key}`: the options are {list}"),
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("15m"), Ok(15 * 60));
        assert_eq!(parse_duration("24h"), Ok(24 * 3600));
        assert_eq!(parse_duration("7d"), Ok(7 * 86400));
    }

    #[test]
    fn bad_durations_say_how_to_write_one() {
        for text in ["", "s", "24", "24 h", "1.5h", "-1h", "24H", "1h30m", "24hours", "é"] {
            let error = parse_duration(text).unwrap_err();
            assert!(error.contains("like \"30s\""), "{text}: {error}");
        }
        assert!(parse_duration("0m").unwrap_err().contains("longer than zero"));
        assert_eq!(parse_duration("36500d"), Ok(36_500 * 86_400));
        for text in ["99999999999999999999d", "999999999999999999d", "36501d", "876001h"] {
            assert!(parse_duration(text).unwrap_err().contains("longer than a row can wait"), "{text}");
        }
    }

    #[test]
    fn an_option_that_does_not_parse_hides_no_other() {
        let mut errors = Errors::default();
        let attr = ToolAttr::parse(quote!(crate = "my_kern", name = , requires_confirmation), &mut errors);
        assert!(attr.krate.is_some(), "the path to kern is kept");
        assert!(attr.requires_confirmation.is_some());
        assert!(!errors.is_empty());
    }

    #[test]
    fn suggests_the_closest_option() {
        let message = unknown_option("#[tool]", "require_confirmation", TOOL_OPTIONS);
        assert!(message.contains("did you mean `requires_confirmation`?"), "{message}");
        let message = unknown_option("#[tool]", "colour", TOOL_OPTIONS);
        assert!(!message.contains("did you mean"), "{message}");
        let message = unknown_option("#[tool]", "expires_in", TOOL_OPTIONS);
        assert!(message.contains("an option of `#[approval]`, not of `#[tool]`"), "{message}");
        let message = unknown_option("#[approval]", "requires_confirmation", APPROVAL_OPTIONS);
        assert!(message.contains("move it into `#[tool(..)]`"), "{message}");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}

//! Code generation: the function again, a unit struct, and its `Tool` implementation.
//!
//! Generated code names everything by absolute path through the `kern` facade
//! (`::kern::tools`, `::kern::approval`, `::kern::__private`), so a user needs no dependency but
//! `kern`, and nothing it has in scope can capture a name. A crate that reaches kern under
//! another path says which with `crate = ".."`, and that path takes the place of `::kern`.
//! Every trait impl is `#[automatically_derived]`, so lints about the user's own code (such as
//! clippy's `used_underscore_binding` on an argument named `_reason`) stay off the generated one.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, Meta, MetaList};

use crate::ast::{ParamKind, ToolFn, is_attr};
use crate::attr::{self, ApprovalAttr, ApprovalKind, OnExpire, ToolAttr};
use crate::errors::Errors;
use crate::valid::{self, Approval, Description, Hitl, KernPath, Spec};

/// Expands `#[tool(args)]` on `item`.
pub fn tool(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let attr = ToolAttr::parse(args, &mut errors);
    let Ok(item) = syn::parse2::<ItemFn>(item.clone()) else {
        errors.at(Span::call_site(), "`#[tool]` goes on a function: `fn` or `async fn`");
        return with_errors(errors, item);
    };
    let func = ToolFn::from_item(item, &mut errors);
    let kern = valid::kern_path(&attr, &func, &mut errors);
    // Read before `validate` takes `attr`: with mistakes, the argument struct a `when` names is
    // still generated.
    let has_when =
        [attr.approval.as_ref(), func.approval.as_ref()].into_iter().flatten().any(|approval| approval.when.is_some());
    // Combinations are only judged once every option and argument was read, so a typo in one
    // option does not also show up as a misleading error about how the options combine.
    if let Some(kern) = kern.as_ref().filter(|_| errors.is_empty())
        && let Some(spec) = valid::validate(attr, &func, &mut errors)
    {
        return emit(&spec, &func, kern);
    }
    fallback(&func, kern.as_ref(), has_when, errors)
}

/// Expands `#[approval(args)]` on `item`, which runs before a `#[tool]` written below it and
/// hands its arguments to that `#[tool]` as a hidden option, unread. `#[tool]` then reads and
/// reports them along with its own, so one place settles how the two attributes combine (a
/// `crate` given on either, say), and a mistake in the approval still leaves the tool generated
/// against the right path to kern.
pub fn approval(args: TokenStream, item: TokenStream) -> TokenStream {
    match forward_to_tool(args.clone(), item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => {
            let mut errors = Errors::default();
            ApprovalAttr::parse(Span::call_site(), args, &mut errors);
            errors.push(error);
            with_errors(errors, item)
        }
    }
}

/// `item` with `args` added to its `#[tool]` attribute, or why that cannot be done.
fn forward_to_tool(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let Ok(mut func) = syn::parse2::<ItemFn>(item) else {
        return Err(syn::Error::new(Span::call_site(), "`#[approval]` goes on a function marked `#[tool]`"));
    };
    let Some(tool) = func.attrs.iter_mut().find(|attr| is_attr(attr, "tool")) else {
        return Err(syn::Error::new(
            Span::call_site(),
            "`#[approval]` works only together with `#[tool]`: add `#[tool]` to this function, \
             e.g. `#[tool(requires_confirmation)]`",
        ));
    };
    let forwarded = attr::forward_approval(Span::call_site(), args);
    match &mut tool.meta {
        Meta::Path(path) => {
            tool.meta = Meta::List(MetaList {
                path: path.clone(),
                delimiter: syn::MacroDelimiter::Paren(Default::default()),
                tokens: forwarded,
            });
        }
        Meta::List(list) => {
            let existing = &list.tokens;
            let trailing_comma = existing.clone().into_iter().last().is_none_or(|token| token.to_string() == ",");
            list.tokens = if trailing_comma { quote!(#existing #forwarded) } else { quote!(#existing, #forwarded) };
        }
        Meta::NameValue(name_value) => {
            return Err(syn::Error::new_spanned(name_value, "write `#[tool]` or `#[tool(..)]`"));
        }
    }
    Ok(func.into_token_stream())
}

fn with_errors(errors: Errors, item: TokenStream) -> TokenStream {
    let errors = errors.into_compile_errors();
    quote!(#errors #item)
}

/// The name of the generated argument struct, private to the `const _` block around it.
fn args_struct() -> Ident {
    Ident::new("__KernToolArgs", Span::call_site())
}

fn emit(spec: &Spec, func: &ToolFn, kern_path: &KernPath) -> TokenStream {
    let kern = kern_path.at(Span::call_site());
    let item = &func.item;
    let fn_ident = &item.sig.ident;
    let struct_ident = &spec.struct_ident;
    let cfgs: Vec<_> = func.cfgs().collect();
    let unit_struct = unit_struct(func, struct_ident, &spec.name);
    let args = args_struct();
    let expecting = format!("the arguments of `{}` as a JSON object", spec.name);
    // serde also reads a struct from an array of its fields in order; the schema says object.
    let not_an_array = format!("invalid type: sequence, expected {expecting}");

    let mut fields = Vec::new();
    let mut field_idents = Vec::new();
    let mut type_params = Vec::new();
    let mut arg_types = Vec::new();
    let mut bounds = Vec::new();
    let mut checks = Vec::new();
    let mut call_args = Vec::new();
    let mut locals = Vec::new();
    let mut field_names = Vec::new();
    let ctx = Ident::new("ctx", Span::mixed_site());
    let mut uses_ctx = false;
    for param in &func.params {
        let ident = &param.ident;
        let ty = &param.ty;
        match &param.kind {
            ParamKind::Context => {
                uses_ctx = true;
                // Located at the parameter type, so that a type of that name which is not
                // kern's `RunContext` gets its type mismatch reported there.
                call_args.push(Ident::new("ctx", Span::mixed_site().located_at(ty.span())).into_token_stream());
            }
            ParamKind::Arg { docs } => {
                let type_param = Ident::new(&format!("__KernArg{}", type_params.len()), Span::call_site());
                fields.push(quote!(#(#docs)* #ident: #type_param));
                field_idents.push(ident);
                field_names.push(ident.unraw().to_string());
                type_params.push(type_param);
                arg_types.push(ty);
                bounds.push(quote!(for<'__kern> #ty: #kern::tools::ToolArg));
                checks.push(quote_spanned!(ty.span()=> __kern_check_arg::<#ty>();));
                // A name of the macro's own: bound to the argument's, it would shadow a function
                // of that name, the tool's own among them (`fn echo(echo: String)`).
                let local =
                    Ident::new(&format!("__kern_arg{}", locals.len()), Span::mixed_site().located_at(ident.span()));
                call_args.push(local.to_token_stream());
                locals.push(local);
            }
        }
    }
    let args_type = quote!(#args<#(#arg_types),*>);
    let checks = (!checks.is_empty()).then(|| {
        quote! {
            const fn __kern_check_arg<T: #kern::tools::ToolArg>() {}
            #(#checks)*
        }
    });
    let json_args = Ident::new("args", Span::mixed_site());
    let ctx_param = if uses_ctx { ctx.clone() } else { Ident::new("_ctx", Span::mixed_site()) };

    let call = match item.sig.asyncness {
        Some(_) => quote!(#fn_ident(#(#call_args),*).await),
        None => quote!(#fn_ident(#(#call_args),*)),
    };
    // Bound to a name spanned at the return type, so a result that is not `Serialize` (or an
    // error that is not `Display`) is reported there rather than at `#[tool]`.
    let value = Ident::new("__kern_result", func.returns.span);
    let returns_kern = kern_path.at(func.returns.span);
    let output = if func.returns.result {
        quote_spanned!(func.returns.span=> #returns_kern::tools::output_result(#value))
    } else {
        quote_spanned!(func.returns.span=> #returns_kern::tools::output(#value))
    };
    // Spanned at the function's `async`, where a future that is not `Send` gets reported.
    let async_span = item.sig.asyncness.map_or_else(Span::call_site, |token| token.span);
    let async_kern = kern_path.at(async_span);
    let future = quote_spanned! {async_span=>
        ::std::boxed::Box::pin(async move {
            if #json_args.is_array() {
                return ::core::result::Result::Err(#async_kern::tools::ToolError::InvalidArguments(
                    ::std::string::String::from(#not_an_array),
                ));
            }
            let #args { #(#field_idents: #locals),* } = #async_kern::tools::parse_args::<#args_type>(#json_args)?;
            let #value = #call;
            #output
        })
    };
    let name = &spec.name;
    let description = match &spec.description {
        Description::Text(text) => text.to_token_stream(),
        Description::Parts(parts) => {
            let lines =
                parts.iter().enumerate().map(|(i, part)| if i == 0 { quote!(#part) } else { quote!("\n", #part) });
            quote!(::core::concat!(#(#lines),*).trim())
        }
    };
    let hitl = hitl_tokens(&kern, &spec.hitl);
    let approval = approval_tokens(&kern, spec.approval.as_ref());
    let json = quote!(#kern::__private::serde_json::Value);
    let serde_crate = kern_path.lit("::__private::serde");
    let schemars_crate = kern_path.lit("::__private::schemars");
    let reject_array = quote! {
        if #json_args.is_array() {
            return ::core::result::Result::Err(#kern::tools::ToolError::InvalidArguments(
                ::std::string::String::from(#not_an_array),
            ));
        }
    };

    // With `when`: the public argument struct the condition takes, its impls (delegating to the
    // private struct, and bounded like the `Tool` impl, so an argument type that lacks a trait
    // leaves the struct without it instead of failing a second time), and the `Tool` method that
    // asks the condition.
    let when = spec.approval.as_ref().and_then(|approval| approval.when.as_ref());
    let (public_struct, public_impls, needs_approval) = match when {
        None => (None, None, None),
        Some(when) => {
            let public = valid::args_struct_ident(fn_ident);
            let public_name = public.to_string();
            let deserializer = Ident::new("__KernDeserializer", Span::call_site());
            let public_impls = quote! {
                #[automatically_derived]
                impl<'__kern_de> #kern::__private::serde::Deserialize<'__kern_de> for #public
                where
                    #(#bounds,)*
                {
                    fn deserialize<#deserializer>(
                        deserializer: #deserializer,
                    ) -> ::core::result::Result<Self, #deserializer::Error>
                    where
                        #deserializer: #kern::__private::serde::Deserializer<'__kern_de>,
                    {
                        let #args { #(#field_idents),* } =
                            <#args_type as #kern::__private::serde::Deserialize<'__kern_de>>::deserialize(
                                deserializer,
                            )?;
                        ::core::result::Result::Ok(#public { #(#field_idents),* })
                    }
                }

                #[automatically_derived]
                impl ::core::fmt::Debug for #public
                where
                    #(for<'__kern> #arg_types: ::core::fmt::Debug,)*
                {
                    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                        f.debug_struct(#public_name)#(.field(#field_names, &self.#field_idents))*.finish()
                    }
                }

                #[automatically_derived]
                impl ::core::clone::Clone for #public
                where
                    #(for<'__kern> #arg_types: ::core::clone::Clone,)*
                {
                    fn clone(&self) -> Self {
                        #public { #(#field_idents: ::core::clone::Clone::clone(&self.#field_idents)),* }
                    }
                }
            };
            // The function's type is written at the `when` key, so a path to anything else is
            // reported at the path, "expected due to" the key.
            let expected_public = Ident::new(&public_name, when.key);
            let condition_type = quote_spanned!(when.key=> fn(&#expected_public) -> ::core::primitive::bool);
            let condition = Ident::new("condition", Span::mixed_site());
            let parsed = Ident::new("parsed", Span::mixed_site());
            let path = &when.path;
            let needs_approval = quote! {
                fn needs_approval(
                    &self,
                    #json_args: &#json,
                ) -> ::core::result::Result<::core::primitive::bool, #kern::tools::ToolError> {
                    #reject_array
                    let #parsed = #kern::tools::parse_args::<#public>(::core::clone::Clone::clone(#json_args))?;
                    let #condition: #condition_type = #path;
                    ::core::result::Result::Ok(#condition(&#parsed))
                }
            };
            (Some(public_args_struct(func, &spec.name)), Some(public_impls), Some(needs_approval))
        }
    };

    quote! {
        #item

        #unit_struct

        #public_struct

        #(#cfgs)*
        // A deprecated function is still the tool's to call: the deprecation warns where the
        // tool is used, on its struct, not in this code.
        #[allow(deprecated)]
        const _: () = {
            // The arguments the model sends, as one JSON object. (A doc comment here would become
            // the schema's description.)
            #[derive(#kern::__private::serde::Deserialize, #kern::__private::schemars::JsonSchema)]
            #[serde(crate = #serde_crate, deny_unknown_fields, expecting = #expecting)]
            #[schemars(crate = #schemars_crate)]
            struct #args<#(#type_params),*> {
                #(#fields,)*
            }

            // An argument type without `Deserialize` or `JsonSchema` is reported here, at the
            // type, in `ToolArg`'s words (which say what to derive)...
            #checks

            #public_impls

            // ...and nowhere else: the struct is generic, so its derives hold for any types, and
            // the impl takes the argument types' traits as bounds. `for<'__kern>` keeps a bound
            // that does not hold from being reported a second time (as a "trivially false"
            // bound, in the words of the supertraits) while the body may still rely on it.
            #[automatically_derived]
            impl #kern::tools::Tool for #struct_ident
            where
                #(#bounds,)*
            {
                fn definition(&self) -> #kern::tools::ToolDefinition {
                    #kern::tools::ToolDefinition::new(
                        #name,
                        #description,
                        #kern::tools::schema::schema_for::<#args_type>(),
                        #hitl,
                        #approval,
                    )
                }

                fn call<'a>(
                    &'a self,
                    #ctx_param: &'a #kern::tools::RunContext,
                    #json_args: #json,
                ) -> #kern::__private::BoxFuture<'a, ::core::result::Result<#json, #kern::tools::ToolError>> {
                    #future
                }

                #needs_approval
            }
        };
    }
}

/// `#vis struct SendPaymentArgs { .. }`: the arguments the model gives the tool named `name`, in
/// public fields, for a `when` condition to take. Documented like the unit struct, each field
/// by its argument's doc comment.
fn public_args_struct(func: &ToolFn, name: &str) -> TokenStream {
    let vis = &func.item.vis;
    let cfgs = func.cfgs();
    let fn_ident = &func.item.sig.ident;
    let ident = valid::args_struct_ident(fn_ident);
    let doc = format!(
        " The arguments the model gives the tool `{name}`, which the `when` condition of its `#[approval]` \
         decides on; generated from the function `{fn_ident}`."
    );
    let fields = func.params.iter().filter_map(|param| {
        let ParamKind::Arg { docs } = &param.kind else { return None };
        let ident = &param.ident;
        let ty = &param.ty;
        let docs = if docs.is_empty() {
            let doc = format!(" The argument `{}`.", ident.unraw());
            quote!(#[doc = #doc])
        } else {
            quote!(#(#docs)*)
        };
        Some(quote!(#docs pub #ident: #ty))
    });
    quote! {
        #(#cfgs)*
        #[doc = #doc]
        #vis struct #ident {
            #(#fields,)*
        }
    }
}

/// `#vis struct DeleteUserData;`, documented so `missing_docs` is satisfied for public tools,
/// and deprecated when the function is, so that handing the tool to an agent warns.
fn unit_struct(func: &ToolFn, struct_ident: &Ident, name: &str) -> TokenStream {
    let vis = &func.item.vis;
    let cfgs = func.cfgs();
    let deprecations = func.item.attrs.iter().filter(|attr| attr.path().is_ident("deprecated"));
    let doc = format!(
        " The tool `{name}`, generated by `#[tool]` from the function `{}`: hand it to an agent or a team \
         with `.tool({struct_ident})`.",
        func.item.sig.ident,
    );
    quote! {
        #(#cfgs)*
        #(#deprecations)*
        #[doc = #doc]
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            ::core::marker::Copy,
            ::core::default::Default,
        )]
        #vis struct #struct_ident;
    }
}

fn hitl_tokens(kern: &TokenStream, hitl: &Hitl) -> TokenStream {
    match hitl {
        Hitl::None => quote!(#kern::tools::Hitl::None),
        Hitl::Confirmation => quote!(#kern::tools::Hitl::Confirmation),
        Hitl::UserInput(fields) => quote! {
            #kern::tools::Hitl::UserInput {
                fields: ::std::vec![#(::std::string::String::from(#fields)),*],
            }
        },
        Hitl::ExternalExecution => quote!(#kern::tools::Hitl::ExternalExecution),
    }
}

fn approval_tokens(kern: &TokenStream, approval: Option<&Approval>) -> TokenStream {
    let Some(approval) = approval else {
        return quote!(::core::option::Option::None);
    };
    let kind = match approval.kind {
        ApprovalKind::Required => quote!(#kern::approval::ApprovalType::Required),
        ApprovalKind::Audit => quote!(#kern::approval::ApprovalType::Audit),
    };
    let expires_in = match approval.expires_in {
        Some(seconds) => quote!(::core::option::Option::Some(::core::time::Duration::from_secs(#seconds))),
        None => quote!(::core::option::Option::None),
    };
    let on_expire = match approval.on_expire {
        OnExpire::Reject => quote!(#kern::approval::OnExpire::Reject),
        OnExpire::CancelRun => quote!(#kern::approval::OnExpire::CancelRun),
    };
    let approvers = &approval.approvers;
    let quorum = approval.quorum;
    let self_approval = approval.self_approval;
    let allow_edit = approval.allow_edit;
    quote! {
        ::core::option::Option::Some(#kern::approval::ApprovalPolicy {
            approval_type: #kind,
            expires_in: #expires_in,
            on_expire: #on_expire,
            approvers: ::std::vec![#(::std::string::String::from(#approvers)),*],
            quorum: #quorum,
            self_approval: #self_approval,
            allow_edit: #allow_edit,
        })
    }
}

/// What `#[tool]` emits when it found mistakes: the errors, the function, and (when the
/// function could be a tool at all) the struct with a `Tool` impl that is never run, and the
/// argument struct when a `when` was written. The structs keep code that uses the tool
/// compiling, so the build shows the macro's errors and not a trail of "cannot find
/// `DeleteUserData`" after them. The impl is left out when the path to kern is unknown
/// (`kern_path` is `None`), as it would only add errors about that path.
fn fallback(func: &ToolFn, kern_path: Option<&KernPath>, has_when: bool, errors: Errors) -> TokenStream {
    let errors = errors.into_compile_errors();
    let item = &func.item;
    let fn_ident = &item.sig.ident;
    let Some(struct_ident) = valid::pascal_ident(fn_ident) else {
        // No struct can take the name: code that uses it fails whatever is emitted.
        return quote!(#errors #item);
    };
    if item.sig.receiver().is_some() || struct_ident == *fn_ident {
        // A method lives in an `impl`, where a struct cannot go.
        return quote!(#errors #item);
    }
    let name = fn_ident.unraw().to_string();
    let unit_struct = unit_struct(func, &struct_ident, &name);
    let public_struct = has_when.then(|| public_args_struct(func, &name));
    let Some(kern_path) = kern_path else {
        return quote!(#errors #item #unit_struct #public_struct);
    };
    let kern = kern_path.at(Span::call_site());
    let cfgs = func.cfgs();
    let json = quote!(#kern::__private::serde_json::Value);
    quote! {
        #errors
        #item
        #unit_struct
        #public_struct

        #(#cfgs)*
        #[automatically_derived]
        impl #kern::tools::Tool for #struct_ident {
            fn definition(&self) -> #kern::tools::ToolDefinition {
                ::core::unreachable!()
            }

            fn call<'a>(
                &'a self,
                _: &'a #kern::tools::RunContext,
                _: #json,
            ) -> #kern::__private::BoxFuture<'a, ::core::result::Result<#json, #kern::tools::ToolError>> {
                ::core::unreachable!()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenTree;
    use syn::{Item, ItemImpl};

    use super::*;

    /// Expands `#[approval(approval_args)]` written above `#[tool(tool_args)]` on `function`, the
    /// way rustc does: the approval first, then the `#[tool]` it rewrote.
    fn approval_then_tool(approval_args: TokenStream, tool_args: TokenStream, function: TokenStream) -> TokenStream {
        let rewritten = approval(approval_args, quote!(#[tool(#tool_args)] #function));
        let mut item: ItemFn = syn::parse2(rewritten).expect("the approval hands on the function");
        let position = item.attrs.iter().position(|attr| is_attr(attr, "tool")).expect("the `#[tool]` stays");
        let Meta::List(list) = item.attrs.remove(position).meta else { panic!("the approval adds its arguments") };
        tool(list.tokens, item.into_token_stream())
    }

    /// Every identifier in `tokens`, groups included.
    fn idents(tokens: TokenStream) -> Vec<String> {
        tokens
            .into_iter()
            .flat_map(|token| match token {
                TokenTree::Group(group) => idents(group.stream()),
                TokenTree::Ident(ident) => vec![ident.to_string()],
                TokenTree::Punct(_) | TokenTree::Literal(_) => Vec::new(),
            })
            .collect()
    }

    /// Every `impl` in `tokens`, also those inside `const _: () = { .. };`.
    fn impls(tokens: TokenStream) -> Vec<ItemImpl> {
        fn collect(items: Vec<Item>, impls: &mut Vec<ItemImpl>) {
            for item in items {
                match item {
                    Item::Impl(item) => impls.push(item),
                    Item::Const(item) => {
                        if let syn::Expr::Block(block) = *item.expr {
                            let items = block.block.stmts.into_iter().filter_map(|stmt| match stmt {
                                syn::Stmt::Item(item) => Some(item),
                                _ => None,
                            });
                            collect(items.collect(), impls);
                        }
                    }
                    _ => {}
                }
            }
        }
        let file: syn::File = syn::parse2(tokens).expect("the expansion is a list of items");
        let mut impls = Vec::new();
        collect(file.items, &mut impls);
        impls
    }

    #[test]
    fn every_generated_impl_is_automatically_derived() {
        let valid = tool(
            TokenStream::new(),
            quote!(
                fn weather(city: String, ctx: &RunContext) -> String {
                    city
                }
            ),
        );
        // With a mistake, the fallback impl that keeps code using the struct compiling.
        let invalid = tool(
            quote!(colour = "red"),
            quote!(
                fn weather() {}
            ),
        );
        // With a condition, also `Deserialize`, `Debug` and `Clone` for the argument struct.
        let with_when = approval_then_tool(
            quote!(when = needs_review),
            TokenStream::new(),
            quote!(
                fn weather(city: String) -> String {
                    city
                }
            ),
        );
        for (expansion, count) in [(valid, 1), (invalid, 1), (with_when, 4)] {
            let impls = impls(expansion);
            assert_eq!(impls.len(), count);
            for item in impls {
                assert!(item.attrs.iter().any(|attr| attr.path().is_ident("automatically_derived")));
            }
        }
    }

    #[test]
    fn crate_replaces_every_path_to_kern() {
        let function = quote!(
            async fn ask(reason: Option<String>, ctx: &RunContext) -> Result<String, Error> {
                todo!()
            }
        );
        let expansions = [
            tool(quote!(crate = "my_kern", user_input_fields = ["reason"], log_approval), function.clone()),
            approval_then_tool(quote!(crate = "my_kern", expires_in = "1h"), TokenStream::new(), function.clone()),
            // The argument struct's impls and the condition's method as well.
            approval_then_tool(
                quote!(crate = "my_kern", when = needs_review, approvers = ["ops"]),
                TokenStream::new(),
                function.clone(),
            ),
            // A mistake in the approval still leaves the tool against the path it gives.
            approval_then_tool(quote!(crate = "my_kern", type = "sometimes"), TokenStream::new(), function),
        ];
        for expansion in expansions {
            let text = expansion.to_string();
            assert!(text.contains("impl my_kern :: tools :: Tool for Ask"), "{text}");
            assert!(!idents(expansion).contains(&"kern".to_owned()), "{text}");
        }
    }

    #[test]
    fn crate_reaches_the_derives() {
        let expansion = tool(
            quote!(crate = "::my_app::kern"),
            quote!(
                fn ping() {}
            ),
        )
        .to_string();
        assert!(expansion.contains("crate = \"::my_app::kern::__private::serde\""), "{expansion}");
        assert!(expansion.contains("crate = \"::my_app::kern::__private::schemars\""), "{expansion}");
    }

    #[test]
    fn without_crate_paths_go_through_kern() {
        let expansion = tool(
            TokenStream::new(),
            quote!(
                fn ping() {}
            ),
        )
        .to_string();
        assert!(expansion.contains("impl :: kern :: tools :: Tool for Ping"), "{expansion}");
        assert!(expansion.contains("crate = \"::kern::__private::serde\""), "{expansion}");
    }

    #[test]
    fn an_unusable_crate_leaves_the_impl_out() {
        for expansion in [
            tool(
                quote!(crate = "my kern"),
                quote!(
                    fn ping() {}
                ),
            ),
            approval_then_tool(
                quote!(crate = "a"),
                quote!(crate = "b"),
                quote!(
                    fn ping() {}
                ),
            ),
        ] {
            let text = expansion.to_string();
            assert!(text.contains("compile_error"), "{text}");
            assert!(text.contains("struct Ping"), "{text}");
            assert!(impls(expansion).is_empty(), "{text}");
        }
    }
}

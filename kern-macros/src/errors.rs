//! Collecting compile errors, so one expansion reports every mistake it finds at once.

use std::fmt::Display;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;

/// The errors found so far; each keeps the span of the token it is about.
///
/// Parsing and validation go on after a mistake, so the user sees all of them in one build
/// instead of fixing them one compile at a time.
#[derive(Default)]
pub struct Errors {
    error: Option<syn::Error>,
}

impl Errors {
    /// Records an error.
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.error {
            Some(first) => first.combine(error),
            None => self.error = Some(error),
        }
    }

    /// Records an error at `span`.
    pub fn at(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Records an error spanning all of `tokens` (a whole type or pattern, say).
    pub fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// True when nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.error.is_none()
    }

    /// The recorded errors as `compile_error!` invocations (empty when there are none).
    pub fn into_compile_errors(self) -> TokenStream {
        self.error.map(|e| e.to_compile_error()).unwrap_or_default()
    }
}

//! Placeholder: replaced by the real macro crate.
use proc_macro::TokenStream;

#[proc_macro_attribute]
pub fn tool(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

#[proc_macro_attribute]
pub fn approval(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

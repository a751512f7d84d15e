//! Collects every error found while parsing and checking the input, so one
//! compile reports all of them, each spanned on the user's tokens.

use std::fmt::Display;

use quote::ToTokens;

/// Error collector. Consumed by [`Ctxt::check`], which turns the collected
/// errors into one combined `syn::Error`.
#[derive(Default)]
#[must_use = "call Ctxt::check to report the collected errors"]
pub struct Ctxt {
    errors: Vec<syn::Error>,
}

impl Ctxt {
    /// A new, empty context.
    pub fn new() -> Self {
        Ctxt::default()
    }

    /// Records an error spanned on `tokens`.
    pub fn error_spanned_by<T: ToTokens, M: Display>(&mut self, tokens: T, message: M) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error from syn.
    pub fn syn_error(&mut self, err: syn::Error) {
        self.errors.push(err);
    }

    /// All errors combined into one, or `Ok` when there are none.
    pub fn check(self) -> syn::Result<()> {
        let mut errors = self.errors.into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for err in errors {
            combined.combine(err);
        }
        Err(combined)
    }
}

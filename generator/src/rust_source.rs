//! Reading and editing Rust source with `syn`: which models a file
//! declares, a struct's fields, the items a file defines, and the few
//! edits `--from` makes to a copied model (option fields and declarations,
//! plugin paths).
//!
//! Reading goes through syn's full parser, so text inside comments, doc
//! comments and string literals is never taken for code. Editing is done
//! at the byte positions of the tokens syn found (proc-macro2's
//! `span-locations`), so everything around them (comments, formatting,
//! blank lines) stays byte for byte as it was.
//!
//! A file that does not parse is an error naming the line and column,
//! never a guess.

use std::ops::Range;

use anyhow::{Context as _, Result, bail};
use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use syn::spanned::Spanned as _;
use syn::visit::{self, Visit};

/// Parses a whole Rust file; `what` names it in the error.
pub fn parse(what: &str, source: &str) -> Result<syn::File> {
    syn::parse_file(source).map_err(|err| {
        let at = err.span().start();
        anyhow::anyhow!(
            "{what} is not valid Rust at line {}, column {}: {err}",
            at.line,
            at.column + 1
        )
    })
}

/// `(registry name, struct name)` of every struct with a
/// `#[forge(name = "...")]` attribute, in source order (inline modules
/// included).
pub fn declared_models(what: &str, source: &str) -> Result<Vec<(String, String)>> {
    let file = parse(what, source)?;
    let mut v = Structs::default();
    v.visit_file(&file);
    Ok(v.found
        .iter()
        .filter_map(|s| forge_args(&s.attrs).name.map(|n| (n, s.ident.to_string())))
        .collect())
}

/// The named fields of struct `struct_name` (empty when there is no such
/// struct, or it has no named fields).
pub fn struct_fields(what: &str, source: &str, struct_name: &str) -> Result<Vec<String>> {
    let file = parse(what, source)?;
    Ok(find_struct(&file, struct_name)
        .map(|s| {
            s.fields
                .iter()
                .filter_map(|f| f.ident.as_ref().map(ToString::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// The options type that struct `struct_name` names in
/// `#[forge(options = Type)]`, as tokens (`MyModelOptions`).
pub fn declared_options(what: &str, source: &str, struct_name: &str) -> Result<Option<String>> {
    let file = parse(what, source)?;
    Ok(find_struct(&file, struct_name).and_then(|s| forge_args(&s.attrs).options))
}

/// Module names declared without a body (`mod name;`, any visibility) at
/// the top level of a file.
pub fn declared_modules(what: &str, source: &str) -> Result<Vec<String>> {
    let file = parse(what, source)?;
    Ok(file
        .items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(m) if m.content.is_none() => Some(m.ident.to_string()),
            _ => None,
        })
        .collect())
}

/// The names that the `use` items of inline module `module` (at the top
/// level of the file) bring in: `pub use a::{B, c as d};` gives `B`, `d`.
/// `None` when the file has no such module; a glob (`a::*`) is an error,
/// since its names cannot be read from this file.
pub fn module_use_names(what: &str, source: &str, module: &str) -> Result<Option<Vec<String>>> {
    let file = parse(what, source)?;
    let Some((_, items)) = file.items.iter().find_map(|item| match item {
        syn::Item::Mod(m) if m.ident == module => m.content.as_ref(),
        _ => None,
    }) else {
        return Ok(None);
    };
    fn names(tree: &syn::UseTree, out: &mut Vec<String>) -> Result<()> {
        match tree {
            syn::UseTree::Path(p) => names(&p.tree, out)?,
            syn::UseTree::Name(n) => out.push(n.ident.to_string()),
            syn::UseTree::Rename(r) => out.push(r.rename.to_string()),
            syn::UseTree::Glob(_) => bail!("a glob import's names cannot be read"),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    names(tree, out)?;
                }
            }
        }
        Ok(())
    }
    let mut out = vec![];
    for item in items {
        if let syn::Item::Use(u) = item {
            names(&u.tree, &mut out).with_context(|| format!("{what}: module `{module}`"))?;
        }
    }
    out.sort();
    Ok(Some(out))
}

/// Names of the items a file defines anywhere (structs, enums, functions,
/// methods, types, traits, constants, statics, modules, unions, macros),
/// including items declared inside macro invocations (`struct X` in
/// `model_options! { ... }`), sorted and without duplicates.
pub fn defined_items(what: &str, source: &str) -> Result<Vec<String>> {
    let file = parse(what, source)?;
    let mut v = Items::default();
    v.visit_file(&file);
    v.names.sort();
    v.names.dedup();
    Ok(v.names)
}

/// Whether identifier `ident` appears in the code of a file (as a token:
/// not in comments, doc comments or strings), macro bodies included.
pub fn uses_ident(what: &str, source: &str, ident: &str) -> Result<bool> {
    parse(what, source)?;
    let tokens: TokenStream = source
        .parse()
        .map_err(|err| anyhow::anyhow!("{what} is not valid Rust: {err}"))?;
    Ok(flatten(tokens)
        .iter()
        .any(|tt| matches!(tt, TokenTree::Ident(i) if i == ident)))
}

/// Adds `fields` (whole lines) at the end of the body of struct
/// `struct_name`, before the line of its closing brace.
pub fn insert_struct_fields(model: &str, struct_name: &str, fields: &str) -> Result<String> {
    let file = parse("the model", model)?;
    let s = find_struct(&file, struct_name)
        .with_context(|| format!("no `struct {struct_name}` in the model"))?;
    let syn::Fields::Named(named) = &s.fields else {
        bail!("`struct {struct_name}` has no named fields to add to");
    };
    let close = named.brace_token.span.close().byte_range().start;
    let at = line_start(model, close);
    if !model[at..close].trim().is_empty() {
        bail!("the closing brace of `struct {struct_name}` is not on a line of its own");
    }
    Ok(splice(model, at..at, fields))
}

/// Adds `decls` (option declarations, starting with a newline) at the end
/// of the options struct `options_type` declared inside a macro invocation
/// (`model_options! { pub struct OptionsType { ... } }`): after the last
/// line before its closing brace.
pub fn add_option_decls(model: &str, options_type: &str, decls: &str) -> Result<String> {
    let file = parse("the model", model)?;
    let mut v = MacroStruct {
        name: options_type,
        close: None,
    };
    v.visit_file(&file);
    let close = v.close.with_context(|| {
        format!("no `struct {options_type} {{ ... }}` declared in a macro of the model")
    })?;
    let at = line_start(model, close);
    if at == 0 || !model[at..close].trim().is_empty() {
        bail!("the closing brace of `struct {options_type}` is not on a line of its own");
    }
    Ok(splice(model, at - 1..at - 1, decls))
}

/// Puts `declaration` (the options struct) on the lines before struct
/// `struct_name` (before its doc comment and attributes) and names it in
/// the struct's `#[forge(name = ...)]`: `, options = StructNameOptions`.
pub fn declare_options(model: &str, struct_name: &str, declaration: &str) -> Result<String> {
    let file = parse("the model", model)?;
    let s = find_struct(&file, struct_name)
        .with_context(|| format!("no `struct {struct_name}` in the model"))?;
    let start = s
        .attrs
        .iter()
        .map(|a| a.pound_token.span.byte_range().start)
        .chain([s.span().byte_range().start])
        .min()
        .unwrap_or(0);
    let start = line_start(model, start);
    let paren = s
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("forge"))
        .find_map(|a| match &a.meta {
            syn::Meta::List(list) if forge_args(std::slice::from_ref(a)).name.is_some() => {
                match &list.delimiter {
                    syn::MacroDelimiter::Paren(p) => Some(p.span.close().byte_range().start),
                    _ => None,
                }
            }
            _ => None,
        })
        .context("no `#[forge(name = ...)]` on the model struct")?;
    let named = splice(
        model,
        paren..paren,
        &format!(", options = {struct_name}Options"),
    );
    Ok(splice(&named, start..start, &format!("{declaration}\n")))
}

/// Rewrites the paths of a forge-core model file for a plugin crate:
/// `crate::` becomes `forge_core::`, `super::` at the file's top level
/// (forge-core's `models` module) becomes `forge_core::models::`, and
/// `tch::` becomes `forge_core::tch::` (a plugin reaches tch through
/// forge-core). Paths in macro invocations and intra-doc links in doc
/// comments (`crate::` only) are rewritten too; `super::` inside a nested
/// module (`mod tests { use super::*; }`) keeps its meaning and is left
/// alone, and so is every other token, comment and string.
pub fn to_plugin_paths(source: &str) -> Result<String> {
    let rule = |idents: &[(String, Span)], depth: usize| {
        let (first, span) = idents.first()?;
        match first.as_str() {
            "crate" => Some((span.byte_range(), "forge_core".to_string())),
            "tch" => Some((span.byte_range(), "forge_core::tch".to_string())),
            "super" => {
                let supers = idents.iter().take_while(|(i, _)| i == "super").count();
                // `super` repeated `depth` times stays inside this file.
                let replacement = match supers.checked_sub(depth + 1)? {
                    0 => "forge_core::models",
                    _ => "forge_core",
                };
                let last = &idents[supers.min(depth + 2) - 1].1;
                Some((
                    span.byte_range().start..last.byte_range().end,
                    replacement.to_string(),
                ))
            }
            _ => None,
        }
    };
    rewrite_paths("the copied model", source, &rule, true)
}

/// Replaces the path `from` (`forge_core::models::Model`) by `to` wherever
/// a path (in code, a `use` or a macro) starts with it, e.g. to re-point a
/// copied test at a plugin crate's model. Comments and strings are left
/// alone. A `use` group that splits `from` (`use a::{b::C}`) is an error.
pub fn replace_path(what: &str, source: &str, from: &str, to: &str) -> Result<String> {
    let want: Vec<&str> = from.split("::").collect();
    let compact = |t: &str| t.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let split = std::cell::Cell::new(false);
    let rule = |idents: &[(String, Span)], _depth: usize| {
        if idents.len() < want.len() || idents.iter().zip(&want).any(|((i, _), w)| i != w) {
            return None;
        }
        let range = idents[0].1.byte_range().start..idents[want.len() - 1].1.byte_range().end;
        if compact(&source[range.clone()]) != compact(from) {
            split.set(true);
            return None;
        }
        Some((range, to.to_string()))
    };
    let out = rewrite_paths(what, source, &rule, false)?;
    if split.get() {
        bail!("{what}: `{from}` is split by a `use` group; write it as a `use` of its own");
    }
    Ok(out)
}

/// The path-rewriting walk shared by [`to_plugin_paths`] and
/// [`replace_path`]: `rule` sees the leading identifiers of every path
/// (with their spans) and the nesting of inline modules, and returns the
/// byte range to replace and its replacement. With `doc_links`, `crate::`
/// in doc comments becomes `forge_core::` too.
fn rewrite_paths(what: &str, source: &str, rule: &Rule<'_>, doc_links: bool) -> Result<String> {
    let file = parse(what, source)?;
    let mut v = PathRewriter {
        source,
        depth: 0,
        rule,
        doc_links,
        edits: vec![],
    };
    v.visit_file(&file);
    let mut edits = v.edits;
    edits.sort_by_key(|(range, _)| range.start);
    edits.dedup_by_key(|(range, _)| range.start);
    if edits.windows(2).any(|w| w[0].0.end > w[1].0.start) {
        bail!("{what}: overlapping path rewrites");
    }
    let mut out = source.to_string();
    for (range, text) in edits.into_iter().rev() {
        out.replace_range(range, &text);
    }
    Ok(out)
}

/// A path-rewriting rule (see [`rewrite_paths`]).
type Rule<'r> = dyn Fn(&[(String, Span)], usize) -> Option<(Range<usize>, String)> + 'r;

/// The byte offset where the line holding byte `at` starts.
fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0)
}

fn splice(text: &str, range: Range<usize>, with: &str) -> String {
    format!("{}{with}{}", &text[..range.start], &text[range.end..])
}

/// What a struct's `#[forge(...)]` attributes say at struct level.
#[derive(Debug, Default)]
struct ForgeArgs {
    /// `name = "..."`.
    name: Option<String>,
    /// `options = Type`, as tokens.
    options: Option<String>,
}

fn forge_args(attrs: &[syn::Attribute]) -> ForgeArgs {
    let mut args = ForgeArgs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("forge")) {
        // A malformed attribute is the derive's to report (with the
        // compiler's error on the user's token); here it names nothing.
        let _ = attr.parse_nested_meta(|meta| {
            if meta.input.peek(syn::Token![=]) {
                let value = meta.value()?;
                if meta.path.is_ident("name") {
                    let lit: syn::LitStr = value.parse()?;
                    args.name = Some(lit.value());
                } else if meta.path.is_ident("options") {
                    let ty: syn::Type = value.parse()?;
                    args.options = Some(quote::ToTokens::to_token_stream(&ty).to_string());
                } else {
                    let _: syn::Expr = value.parse()?;
                }
            } else if meta.input.peek(syn::token::Paren) {
                meta.parse_nested_meta(|_| Ok(()))?;
            }
            Ok(())
        });
    }
    args
}

fn find_struct<'a>(file: &'a syn::File, name: &str) -> Option<&'a syn::ItemStruct> {
    let mut v = Structs::default();
    v.visit_file(file);
    v.found.into_iter().find(|s| s.ident == name)
}

/// Every struct of a file, inline modules and function bodies included.
#[derive(Default)]
struct Structs<'a> {
    found: Vec<&'a syn::ItemStruct>,
}

impl<'a> Visit<'a> for Structs<'a> {
    fn visit_item_struct(&mut self, s: &'a syn::ItemStruct) {
        self.found.push(s);
        visit::visit_item_struct(self, s);
    }
}

/// Names of defined items (see [`defined_items`]).
#[derive(Default)]
struct Items {
    names: Vec<String>,
}

impl Items {
    fn add(&mut self, ident: &syn::Ident) {
        self.names.push(ident.to_string());
    }
}

impl<'a> Visit<'a> for Items {
    fn visit_item(&mut self, item: &'a syn::Item) {
        let ident = match item {
            syn::Item::Const(i) => Some(&i.ident),
            syn::Item::Enum(i) => Some(&i.ident),
            syn::Item::Fn(i) => Some(&i.sig.ident),
            syn::Item::Macro(i) => i.ident.as_ref(),
            syn::Item::Mod(i) => Some(&i.ident),
            syn::Item::Static(i) => Some(&i.ident),
            syn::Item::Struct(i) => Some(&i.ident),
            syn::Item::Trait(i) => Some(&i.ident),
            syn::Item::TraitAlias(i) => Some(&i.ident),
            syn::Item::Type(i) => Some(&i.ident),
            syn::Item::Union(i) => Some(&i.ident),
            _ => None,
        };
        if let Some(ident) = ident {
            self.add(ident);
        }
        visit::visit_item(self, item);
    }

    fn visit_impl_item(&mut self, item: &'a syn::ImplItem) {
        match item {
            syn::ImplItem::Const(i) => self.add(&i.ident),
            syn::ImplItem::Fn(i) => self.add(&i.sig.ident),
            syn::ImplItem::Type(i) => self.add(&i.ident),
            _ => {}
        }
        visit::visit_impl_item(self, item);
    }

    fn visit_trait_item(&mut self, item: &'a syn::TraitItem) {
        match item {
            syn::TraitItem::Const(i) => self.add(&i.ident),
            syn::TraitItem::Fn(i) => self.add(&i.sig.ident),
            syn::TraitItem::Type(i) => self.add(&i.ident),
            _ => {}
        }
        visit::visit_trait_item(self, item);
    }

    fn visit_macro(&mut self, mac: &'a syn::Macro) {
        // A macro's body is not Rust syn can parse in general; its tokens
        // are (comments are not tokens). `struct X`, `fn x`, ... there
        // declare items the macro expands to.
        const KEYWORDS: &[&str] = &[
            "struct", "enum", "fn", "type", "trait", "const", "static", "mod", "union",
        ];
        let tokens = flatten(mac.tokens.clone());
        for pair in tokens.windows(2) {
            if let (TokenTree::Ident(kw), TokenTree::Ident(name)) = (&pair[0], &pair[1])
                && KEYWORDS.contains(&kw.to_string().as_str())
            {
                self.names.push(name.to_string());
            }
        }
        visit::visit_macro(self, mac);
    }
}

/// Every token of a stream, groups opened (their delimiters dropped).
fn flatten(stream: TokenStream) -> Vec<TokenTree> {
    let mut out = vec![];
    for tt in stream {
        match tt {
            TokenTree::Group(g) => out.extend(flatten(g.stream())),
            other => out.push(other),
        }
    }
    out
}

/// Finds `struct NAME { ... }` inside macro invocations; `close` is the
/// byte offset of its closing brace.
struct MacroStruct<'n> {
    name: &'n str,
    close: Option<usize>,
}

impl MacroStruct<'_> {
    fn scan(&mut self, stream: TokenStream) {
        let tokens: Vec<TokenTree> = stream.into_iter().collect();
        for (i, tt) in tokens.iter().enumerate() {
            if let TokenTree::Group(g) = tt {
                self.scan(g.stream());
            }
            if let [
                TokenTree::Ident(kw),
                TokenTree::Ident(name),
                TokenTree::Group(body),
            ] = &tokens[i..tokens.len().min(i + 3)]
                && kw == "struct"
                && name == self.name
                && body.delimiter() == Delimiter::Brace
                && self.close.is_none()
            {
                self.close = Some(body.span_close().byte_range().start);
            }
        }
    }
}

impl<'a> Visit<'a> for MacroStruct<'_> {
    fn visit_macro(&mut self, mac: &'a syn::Macro) {
        self.scan(mac.tokens.clone());
        visit::visit_macro(self, mac);
    }
}

/// Collects the edits of [`rewrite_paths`].
struct PathRewriter<'s, 'r> {
    source: &'s str,
    /// Nesting of inline modules (`super` at depth 0 is the file's parent).
    depth: usize,
    rule: &'r Rule<'r>,
    doc_links: bool,
    edits: Vec<(Range<usize>, String)>,
}

impl PathRewriter<'_, '_> {
    /// Applies the rule to a path whose leading identifiers are `idents`.
    fn path_start(&mut self, idents: &[(String, Span)]) {
        if let Some(edit) = (self.rule)(idents, self.depth) {
            self.edits.push(edit);
        }
    }

    /// Paths inside a macro's tokens: an identifier followed by `::` that
    /// does not itself follow `::`.
    fn scan_tokens(&mut self, stream: TokenStream) {
        let tokens: Vec<TokenTree> = stream.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            if let TokenTree::Group(g) = &tokens[i] {
                self.scan_tokens(g.stream());
            }
            let after_colons = i >= 2 && is_path_sep(&tokens[i - 2], &tokens[i - 1]);
            let after_dollar =
                i >= 1 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '$');
            if !after_colons && !after_dollar && matches!(tokens[i], TokenTree::Ident(_)) {
                let mut idents = vec![];
                let mut j = i;
                while let Some(TokenTree::Ident(id)) = tokens.get(j) {
                    if j + 2 >= tokens.len() || !is_path_sep(&tokens[j + 1], &tokens[j + 2]) {
                        break;
                    }
                    idents.push((id.to_string(), id.span()));
                    j += 3;
                }
                if !idents.is_empty() {
                    self.path_start(&idents);
                    i = j;
                    continue;
                }
            }
            i += 1;
        }
    }

    /// `crate::` in a doc comment (intra-doc links).
    fn doc_links(&mut self, attr: &syn::Attribute) {
        if !self.doc_links || !attr.path().is_ident("doc") {
            return;
        }
        // A doc comment's tokens all carry the comment's span.
        let range = attr.pound_token.span.byte_range().start
            ..attr.bracket_token.span.close().byte_range().end;
        let text = &self.source[range.clone()];
        let mut from = 0;
        while let Some(at) = text[from..].find("crate::") {
            let at = from + at;
            let before = text[..at].chars().next_back();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '$') {
                let start = range.start + at;
                self.edits
                    .push((start..start + "crate".len(), "forge_core".into()));
            }
            from = at + "crate::".len();
        }
    }
}

fn is_path_sep(a: &TokenTree, b: &TokenTree) -> bool {
    matches!((a, b), (TokenTree::Punct(a), TokenTree::Punct(b))
        if a.as_char() == ':' && b.as_char() == ':' && a.spacing() == proc_macro2::Spacing::Joint)
}

impl<'a> Visit<'a> for PathRewriter<'_, '_> {
    fn visit_item_mod(&mut self, m: &'a syn::ItemMod) {
        let inline = m.content.is_some();
        self.depth += usize::from(inline);
        visit::visit_item_mod(self, m);
        self.depth -= usize::from(inline);
    }

    fn visit_item_use(&mut self, u: &'a syn::ItemUse) {
        for attr in &u.attrs {
            self.visit_attribute(attr);
        }
        if u.leading_colon.is_none() {
            self.use_tree(&u.tree, vec![]);
        }
    }

    fn visit_path(&mut self, path: &'a syn::Path) {
        if path.leading_colon.is_none() {
            let idents: Vec<(String, Span)> = path
                .segments
                .iter()
                .take_while(|s| s.arguments.is_none())
                .map(|s| (s.ident.to_string(), s.ident.span()))
                .collect();
            // A lone `super`/`crate` is not a path into another module.
            if path.segments.len() > 1 {
                self.path_start(&idents);
            }
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'a syn::Macro) {
        self.visit_path(&mac.path);
        self.scan_tokens(mac.tokens.clone());
    }

    fn visit_attribute(&mut self, attr: &'a syn::Attribute) {
        self.doc_links(attr);
        // `#[forge(build = crate::x::f(..))]`: arguments are tokens.
        if let syn::Meta::List(list) = &attr.meta {
            self.scan_tokens(list.tokens.clone());
        }
        visit::visit_attribute(self, attr);
    }
}

impl PathRewriter<'_, '_> {
    /// Every path a `use` tree imports, with the segments before it:
    /// `use crate::a::{B, c::D};` gives `crate::a::B` and `crate::a::c::D`.
    fn use_tree(&mut self, tree: &syn::UseTree, mut prefix: Vec<(String, Span)>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push((p.ident.to_string(), p.ident.span()));
                self.use_tree(&p.tree, prefix);
            }
            syn::UseTree::Name(n) => {
                prefix.push((n.ident.to_string(), n.ident.span()));
                self.path_start(&prefix);
            }
            syn::UseTree::Rename(r) => {
                prefix.push((r.ident.to_string(), r.ident.span()));
                self.path_start(&prefix);
            }
            syn::UseTree::Glob(_) => self.path_start(&prefix),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(tree, prefix.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_models_ignore_comments_and_read_attributes() {
        let src = r##"
//! A file about `#[forge(name = "in_module_docs")] struct Nope`.

/// Like `#[forge(name = "in_docs")] pub struct AlsoNope;`
// #[forge(name = "commented")] struct Commented;
#[derive(ForgeModel)]
#[forge(name = "a_b", options = AbOptions)]
pub struct AB<T: Clone = f64> {
    #[forge(config)]
    config: ModelConfig,
    x: T,
}

const S: &str = "#[forge(name = \"in_string\")] struct InString;";

mod inner {
    #[derive(ForgeModel)]
    #[doc = "docs"]
    #[forge(name = "c")]
    struct C;
}
"##;
        assert_eq!(
            declared_models("t.rs", src).unwrap(),
            [
                ("a_b".to_string(), "AB".to_string()),
                ("c".into(), "C".into())
            ]
        );
        assert_eq!(
            declared_options("t.rs", src, "AB").unwrap().as_deref(),
            Some("AbOptions")
        );
        assert_eq!(declared_options("t.rs", src, "C").unwrap(), None);
    }

    #[test]
    fn unparsable_source_is_an_error_with_a_position() {
        let err = declared_models("src/bad.rs", "struct A {\n  x: ,\n}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("src/bad.rs is not valid Rust at line 2"),
            "{err}"
        );
    }

    #[test]
    fn struct_fields_through_attributes_generics_and_visibility() {
        let src = "pub struct M<T, const N: usize> where T: Clone {\n\
                   /// doc: not_a_field: i64\n\
                   #[forge(build = f(a, b: c))]\n\
                   pub(crate) head: Head<T, N>,\n\
                   // commented: u8,\n\
                   r#type: Vec<std::collections::BTreeMap<String, u8>>,\n\
                   pooling: Pooling,\n}\n\
                   struct Other { z: u8 }\n";
        assert_eq!(
            struct_fields("t.rs", src, "M").unwrap(),
            ["head", "r#type", "pooling"]
        );
        assert!(struct_fields("t.rs", src, "Missing").unwrap().is_empty());
    }

    #[test]
    fn defined_items_skip_comments_and_see_macro_bodies() {
        let src = "// struct Commented; fn commented() {}\n\
                   /// A struct Documented.\n\
                   pub struct Model;\n\
                   impl Model { fn helper(&self) { fn inner() {} } const K: u8 = 1; }\n\
                   forge_core::model_options! { pub struct ModelOptions { a: i64 = 1, } }\n\
                   const TEXT: &str = \"fn in_string\";\n";
        assert_eq!(
            defined_items("t.rs", src).unwrap(),
            ["K", "Model", "ModelOptions", "TEXT", "helper", "inner"]
        );
    }

    #[test]
    fn module_use_names_read_groups_and_renames() {
        let src = "// pub use x::Commented;\npub mod prelude {\n    /// pub use y::Doc;\n    \
                   pub use crate::a::{B, c::{D, e as F}};\n    pub use tch::Kind;\n}\n\
                   pub mod other { pub use z::*; }\n";
        assert_eq!(
            module_use_names("lib.rs", src, "prelude").unwrap(),
            Some(vec!["B".into(), "D".into(), "F".into(), "Kind".into()])
        );
        assert_eq!(module_use_names("lib.rs", src, "missing").unwrap(), None);
        assert!(module_use_names("lib.rs", src, "other").is_err());
    }

    #[test]
    fn replace_path_rewrites_paths_not_text() {
        let src = "use forge_core::models::Tm as Model;\n\
                   // forge_core::models::Tm in a comment\n\
                   fn f() -> forge_core::models::Tm { forge_core::models::Tm::new() }\n\
                   fn g() -> forge_core::models::TmOther { todo!() }\n";
        assert_eq!(
            replace_path("t.rs", src, "forge_core::models::Tm", "my_plugin::tm::Tm").unwrap(),
            "use my_plugin::tm::Tm as Model;\n\
             // forge_core::models::Tm in a comment\n\
             fn f() -> my_plugin::tm::Tm { my_plugin::tm::Tm::new() }\n\
             fn g() -> forge_core::models::TmOther { todo!() }\n"
        );
        let grouped = "use forge_core::models::{Tm, Other};\n";
        let err = replace_path("t.rs", grouped, "forge_core::models::Tm", "p::Tm").unwrap_err();
        assert!(err.to_string().contains("split by a `use` group"), "{err}");
    }

    #[test]
    fn uses_ident_sees_code_not_comments() {
        let src = "// TransformerEncoder in a comment\n/// and TransformerEncoder in docs\n\
                   const S: &str = \"TransformerEncoder\";\nfn f() { g!(Other) }\n";
        assert!(!uses_ident("t.rs", src, "TransformerEncoder").unwrap());
        assert!(uses_ident("t.rs", src, "Other").unwrap());
    }

    #[test]
    fn declared_modules_are_items_not_lines() {
        let src = "// pub mod commented;\n/* pub mod block; */\npub mod a;\nmod b;\n\
                   pub mod inline {}\n/// pub mod doc;\npub(crate) mod c;\n";
        assert_eq!(declared_modules("t.rs", src).unwrap(), ["a", "b", "c"]);
    }

    #[test]
    fn struct_and_option_edits_keep_the_rest_of_the_file() {
        let model = "//! Module docs.\n\nuse x;\n\n// A plain comment.\n/// The model.\n\
                     #[derive(ForgeModel)]\n#[forge(name = \"m\")]\npub struct M {\n    \
                     a: u8, // trailing\n}\n";
        let fields = insert_struct_fields(model, "M", "    b: u8,\n").unwrap();
        assert!(
            fields.ends_with("    a: u8, // trailing\n    b: u8,\n}\n"),
            "{fields}"
        );
        let declared = declare_options(&fields, "M", "opts!{}\n").unwrap();
        assert!(
            declared.contains(
                "// A plain comment.\nopts!{}\n\n/// The model.\n#[derive(ForgeModel)]\n\
                 #[forge(name = \"m\", options = MOptions)]\npub struct M {"
            ),
            "{declared}"
        );
        let with_macro = "m! {\n    pub struct MOptions {\n        a: i64 = 1,\n    }\n}\n";
        assert_eq!(
            add_option_decls(with_macro, "MOptions", "\n        b: i64 = 2,").unwrap(),
            "m! {\n    pub struct MOptions {\n        a: i64 = 1,\n        b: i64 = 2,\n    }\n}\n"
        );
        assert!(add_option_decls(with_macro, "Other", "x").is_err());
        assert!(insert_struct_fields(model, "Missing", "x").is_err());
    }

    #[test]
    fn plugin_paths_rewrite_paths_only() {
        let src = "//! Uses `crate::components` and [`crate::Batch`].\n\
                   use super::init;\n\
                   use crate::components::{A, B};\n\
                   use tch::{Kind, Tensor};\n\
                   // crate::in_a_comment stays; so does \"crate::\" in strings.\n\
                   const S: &str = \"crate::x tch::y\";\n\
                   struct M { #[forge(build = crate::f(p, tch::Kind::Float))] a: u8 }\n\
                   macro_rules! m { () => { $crate::x() }; }\n\
                   fn f(x: crate::batch::Batch) -> tch::Kind {\n\
                   let _ = super::init::layer_norm();\n\
                   let _ = vec![crate::a::b(), tch::Kind::Float];\n\
                   my_crate::x(); mytch::y();\n\
                   tch::Kind::Float\n}\n\
                   mod tests {\n    use super::*;\n    use super::super::models::X;\n}\n";
        let out = to_plugin_paths(src).unwrap();
        let expected = "//! Uses `forge_core::components` and [`forge_core::Batch`].\n\
                   use forge_core::models::init;\n\
                   use forge_core::components::{A, B};\n\
                   use forge_core::tch::{Kind, Tensor};\n\
                   // crate::in_a_comment stays; so does \"crate::\" in strings.\n\
                   const S: &str = \"crate::x tch::y\";\n\
                   struct M { #[forge(build = forge_core::f(p, forge_core::tch::Kind::Float))] a: u8 }\n\
                   macro_rules! m { () => { $crate::x() }; }\n\
                   fn f(x: forge_core::batch::Batch) -> forge_core::tch::Kind {\n\
                   let _ = forge_core::models::init::layer_norm();\n\
                   let _ = vec![forge_core::a::b(), forge_core::tch::Kind::Float];\n\
                   my_crate::x(); mytch::y();\n\
                   forge_core::tch::Kind::Float\n}\n\
                   mod tests {\n    use super::*;\n    use forge_core::models::models::X;\n}\n";
        assert_eq!(out, expected);
    }
}

//! Renaming an existing model's files for `--from`: every spelling of the
//! old name becomes the same spelling of the new one, and nothing else
//! changes.
//!
//! Spellings: `old_name` (registry name, module, paths), `OLD_NAME`,
//! `old-name`, `old name` / `Old name` (prose), and identifiers the model
//! file itself defines (its struct, `OldNameModel`, helper items). A
//! CamelCase word the file does not define is left alone: in
//! `transformer_encoder.rs`, `TransformerEncoder` is forge-core's encoder
//! component, not the model, and must keep its name.
//!
//! Matching is on whole words (identifier boundaries), so `old_name_layer`
//! is untouched unless the file defines it. Prose matches only words
//! separated by a single space on one line, and only when the name is not
//! also a foreign item: for `transformer_encoder`, "transformer encoder" in
//! prose may as well mean forge-core's encoder, so prose is left alone.

use anyhow::Result;

use crate::names::ModelName;
use crate::rust_source;

/// Renames one model's spellings in text.
#[derive(Debug, Clone)]
pub struct Renamer {
    /// (old identifier, new identifier) for items the model defines.
    idents: Vec<(String, String)>,
    /// Whether prose spellings are renamed (see the module docs).
    prose: bool,
    old: ModelName,
    new: ModelName,
}

impl Renamer {
    /// A renamer from `old` to `new`; `model_source` is the old model's
    /// file (`file` names it in errors), whose defined items (struct,
    /// helpers) are renamed too.
    pub fn new(old: &ModelName, new: &ModelName, file: &str, model_source: &str) -> Result<Self> {
        let defined = rust_source::defined_items(file, model_source)?;
        let mut idents = vec![];
        for ident in defined.iter().cloned() {
            let renamed = ident
                .replace(&old.camel, &new.camel)
                .replace(&old.snake, &new.snake)
                .replace(&old.screaming, &new.screaming);
            if renamed != ident {
                idents.push((ident, renamed));
            }
        }
        // Longest first, so `OldNameModel` is not caught by `OldName`.
        idents.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        idents.dedup();
        // The CamelCase name is foreign when the code uses it (a token, not
        // a word in a comment) without defining it.
        let foreign = !defined.contains(&old.camel)
            && rust_source::uses_ident(file, model_source, &old.camel)?;
        Ok(Renamer {
            idents,
            prose: !foreign,
            old: old.clone(),
            new: new.clone(),
        })
    }

    /// The new name of an item the old model file defines, if it has one.
    pub fn ident(&self, old: &str) -> Option<&str> {
        self.idents
            .iter()
            .find(|(o, _)| o == old)
            .map(|(_, n)| n.as_str())
    }

    /// `text` with every spelling of the old name replaced.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (old, new) in &self.idents {
            out = replace_words(&out, old, new, is_ident_char);
        }
        out = replace_words(&out, &self.old.snake, &self.new.snake, is_ident_char);
        out = replace_words(
            &out,
            &self.old.screaming,
            &self.new.screaming,
            is_ident_char,
        );
        if self.old.kebab != self.old.snake {
            out = replace_words(&out, &self.old.kebab, &self.new.kebab, |c| {
                is_ident_char(c) || c == '-'
            });
        }
        if self.prose && self.old.words != self.old.snake {
            out = replace_words(&out, &self.old.words, &self.new.words, is_ident_char);
            out = replace_words(
                &out,
                &self.old.sentence(),
                &self.new.sentence(),
                is_ident_char,
            );
        }
        out
    }
}

impl Renamer {
    /// [`Self::apply`] for a config file, where the snake name also
    /// starts longer names (`run_name: transformer_encoder_pbmc`): a YAML
    /// file has no foreign items to protect.
    pub fn apply_config(&self, text: &str) -> String {
        let text = self.apply(text);
        let (from, to) = (&self.old.snake, &self.new.snake);
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find(from.as_str()) {
            let before = rest[..at].chars().next_back().or(out.chars().next_back());
            out.push_str(&rest[..at]);
            out.push_str(if before.is_some_and(is_ident_char) {
                from
            } else {
                to
            });
            rest = &rest[at + from.len()..];
        }
        out.push_str(rest);
        out
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Replaces `from` by `to` where it stands as a whole word: the characters
/// around it are not word characters by `word`.
pub fn replace_words(text: &str, from: &str, to: &str, word: impl Fn(char) -> bool) -> String {
    if from.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut prev: Option<char> = None;
    while let Some(at) = rest.find(from) {
        let before = rest[..at].chars().next_back().or(prev);
        let after = rest[at + from.len()..].chars().next();
        let bounded = !before.is_some_and(&word) && !after.is_some_and(&word);
        out.push_str(&rest[..at]);
        if bounded {
            out.push_str(to);
        } else {
            out.push_str(from);
        }
        prev = from.chars().next_back();
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renamer(source: &str) -> Renamer {
        Renamer::new(
            &ModelName::from_snake("transformer_encoder"),
            &ModelName::from_snake("my_model"),
            "t.rs",
            source,
        )
        .unwrap()
    }

    #[test]
    fn renames_every_casing_but_not_foreign_items() {
        let source = "use crate::components::TransformerEncoder;\n\
                      pub struct TransformerEncoderModel { pub encoder: TransformerEncoder }\n\
                      fn transformer_encoder_hidden() {}\n";
        let r = renamer(source);
        let text = format!(
            "{source}// `transformer_encoder`, TRANSFORMER_ENCODER, transformer-encoder,\n\
             // Transformer encoder and a transformer encoder; transformer_encoder_layer.\n"
        );
        let out = r.apply(&text);
        assert!(out.contains("pub struct MyModelModel { pub encoder: TransformerEncoder }"));
        assert!(out.contains("use crate::components::TransformerEncoder;"));
        assert!(out.contains("fn my_model_hidden()"));
        assert!(out.contains("// `my_model`, MY_MODEL, my-model,"));
        // `TransformerEncoder` is a foreign item: prose is ambiguous, kept.
        assert!(out.contains("// Transformer encoder and a transformer encoder; transformer_"));
        let mae = Renamer::new(
            &ModelName::from_snake("masked_autoencoder"),
            &ModelName::from_snake("my_model"),
            "t.rs",
            "pub struct MaskedAutoencoder;",
        )
        .unwrap();
        assert_eq!(
            mae.apply("/// Masked autoencoder over a masked autoencoder."),
            "/// My model over a my model."
        );
        assert_eq!(r.ident("TransformerEncoderModel"), Some("MyModelModel"));
        assert_eq!(
            r.apply_config("run_name: transformer_encoder_pbmc\nx: a_transformer_encoder\n"),
            "run_name: my_model_pbmc\nx: a_transformer_encoder\n"
        );
    }

    #[test]
    fn whole_words_only() {
        assert_eq!(
            replace_words("ab a_b ab_ xab ab", "ab", "Z", is_ident_char),
            "Z a_b ab_ xab Z"
        );
    }
}

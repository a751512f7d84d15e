//! Facts about names that forge-core, forge-macros (`#[derive(ForgeModel)]`)
//! and the generator (`forge-gen`) share, kept in one place so that they
//! cannot drift apart. No dependency on libtorch: a proc-macro crate and the
//! generator use it.

/// The candidate closest to `input`, when it is close enough to be a
/// plausible typo: normalised Damerau-Levenshtein similarity of at least
/// 0.7, compared without case (a case-insensitive match is a perfect
/// match). The one did-you-mean rule of forge (config keys, model names,
/// enum values, derive attributes, `.h5ad` columns).
pub fn closest<'a, I>(input: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = input.to_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let lc = c.to_lowercase();
            let score = if lc == lower {
                1.0
            } else {
                strsim::normalized_damerau_levenshtein(&lower, &lc)
            };
            (c, score)
        })
        .filter(|(_, score)| *score >= 0.7)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

/// The keys of the config's `model:` section that every model shares
/// (forge-core's `ModelConfig` fields, in declaration order). A model's
/// own options may not take one of these names; forge-core checks this
/// list against `ModelConfig::FIELDS` in a test.
pub const MODEL_CONFIG_KEYS: &[&str] = &[
    "architecture",
    "hidden_dim",
    "num_layers",
    "num_heads",
    "ffn_dim",
    "dropout",
    "max_seq_len",
    "pooling",
    "activation",
    "use_expression_values",
    "pretraining_task",
    "mask_ratio",
    "vocab_size",
    "n_bins",
    "gene_loss_weight",
    "expression_loss_weight",
];

/// Every name `use forge_core::prelude::*;` brings into a model file,
/// sorted. forge-gen refuses a model whose struct would take one of them;
/// forge-gen's tests read forge-core's `prelude` module with syn and check
/// that it exports exactly these names, so the list cannot drift.
pub const PRELUDE_NAMES: &[&str] = &[
    "Activation",
    "Architecture",
    "Batch",
    "BatchBuilder",
    "BinPredictionHead",
    "Component",
    "Device",
    "ExpressionPredictionHead",
    "ForgeError",
    "ForgeModel",
    "GeneExpressionEmbedding",
    "Kind",
    "MaskedGenePredictionHead",
    "ModelConfig",
    "ModelOutput",
    "Parameters",
    "Pass",
    "Pooling",
    "Result",
    "Tensor",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "cls_pool",
    "mean_pool",
    "nn",
    "pool",
];

/// Words Rust reserves in edition 2024 (strict, reserved and the weak
/// `union`), none of which can be a module name.
pub const RUST_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "Self", "static", "struct", "super", "trait", "true", "try", "type",
    "typeof", "union", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Module names that would shadow a crate every module can name (`core::`,
/// `std::`) or that Rust's test harness and build use.
pub const RESERVED_MODULES: &[&str] = &["alloc", "core", "proc_macro", "std", "test", "tests"];

/// Why a name cannot be a model's name (its registry name, module and file
/// name): the one rule the derive and forge-gen apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// Not snake_case of lowercase ASCII letters, digits and single
    /// underscores starting with a letter; says what is wrong.
    NotSnakeCase(String),
    /// A Rust keyword.
    Keyword,
    /// A module name that would shadow a crate or the test harness.
    ReservedModule,
}

/// What is wrong with `name` as a model name, or `None` when it is valid.
pub fn model_name_problem(name: &str) -> Option<NameProblem> {
    if name.is_empty() {
        return Some(NameProblem::Empty);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        let reason = if c.is_ascii_uppercase() {
            "it has uppercase letters".to_string()
        } else {
            format!("it contains {c:?}")
        };
        return Some(NameProblem::NotSnakeCase(reason));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some(NameProblem::NotSnakeCase(
            "it must start with a lowercase letter".into(),
        ));
    }
    if name.ends_with('_') || name.contains("__") {
        return Some(NameProblem::NotSnakeCase(
            "underscores separate words: no double or trailing underscore".into(),
        ));
    }
    if RUST_KEYWORDS.contains(&name) {
        return Some(NameProblem::Keyword);
    }
    if RESERVED_MODULES.contains(&name) {
        return Some(NameProblem::ReservedModule);
    }
    None
}

/// A best-effort snake_case spelling of `name` (`MyModel`, `my-model`,
/// `My Model` -> `my_model`), or `None` when nothing sensible remains.
pub fn to_snake_case(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut prev_lower_or_digit = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower_or_digit && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower_or_digit = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            prev_lower_or_digit = false;
        }
    }
    let out = out.trim_matches('_').to_string();
    let out = out.trim_start_matches(|c: char| c.is_ascii_digit() || c == '_');
    (!out.is_empty()).then(|| out.to_string())
}

#[cfg(test)]
mod tests {
    use super::{NameProblem, closest, model_name_problem};

    #[test]
    fn one_rule_for_model_names() {
        assert_eq!(model_name_problem("transformer_encoder"), None);
        assert_eq!(model_name_problem("mae2"), None);
        assert_eq!(model_name_problem("union"), Some(NameProblem::Keyword));
        assert_eq!(model_name_problem("type"), Some(NameProblem::Keyword));
        assert_eq!(model_name_problem("std"), Some(NameProblem::ReservedModule));
        assert_eq!(model_name_problem(""), Some(NameProblem::Empty));
        for bad in ["MyModel", "my-model", "2model", "my__model", "model_"] {
            assert!(
                matches!(model_name_problem(bad), Some(NameProblem::NotSnakeCase(_))),
                "{bad}"
            );
        }
        assert_eq!(
            super::to_snake_case("My-Model").as_deref(),
            Some("my_model")
        );
    }

    #[test]
    fn finds_typos_and_rejects_strangers() {
        let names = ["transformer_encoder", "masked_autoencoder"];
        assert_eq!(
            closest("transformer_encodr", names),
            Some("transformer_encoder")
        );
        assert_eq!(
            closest("Masked_Autoencoder", names),
            Some("masked_autoencoder")
        );
        assert_eq!(closest("resnet", names), None);
        assert_eq!(closest("confg", ["config", "build"]), Some("config"));
    }
}

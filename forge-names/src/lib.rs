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

#[cfg(test)]
mod tests {
    use super::closest;

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

//! "Did you mean ...?" suggestions for misspelt names (model names, config
//! keys, enum values).

/// Returns the candidate closest to `input`, when it is close enough to be a
/// plausible typo (normalised Damerau-Levenshtein similarity >= 0.7, or a
/// case-insensitive match).
pub fn closest<'a, I>(input: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = input.to_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let score = if c.to_lowercase() == lower {
                1.0
            } else {
                strsim::normalized_damerau_levenshtein(&lower, &c.to_lowercase())
            };
            (c, score)
        })
        .filter(|(_, score)| *score >= 0.7)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

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
    }
}

//! "Did you mean ...?" suggestions for misspelt names (model names, config
//! keys, enum values).

/// Returns the candidate closest to `input`, when it is close enough to be a
/// plausible typo: the one rule forge-core, the derive and forge-gen share
/// (see [`forge_names::closest`]).
pub use forge_names::closest;

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

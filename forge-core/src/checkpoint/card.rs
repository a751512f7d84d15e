//! The `README.md` model card of a checkpoint folder: what the model is
//! (architecture, sizes, parameters per submodule, vocabulary, tokenizer)
//! and how to load it in forge and in PyTorch. Front matter as
//! scModelForge writes it, so model hubs index the card the same way.

use std::path::Path;

use super::{CONFIG_FILE, README_FILE, VOCAB_FILE, WEIGHTS_FILE};
use crate::batch::special::FIRST_GENE_ID;
use crate::config::{ModelConfig, TokenizerConfig, TokenizerStrategy};
use crate::model::ForgeModel;

/// The model card for `model`, saved to `dir`, with `n_genes` genes in its
/// vocabulary.
pub(super) fn model_card(
    model: &dyn ForgeModel,
    config: &ModelConfig,
    tokenizer: &TokenizerConfig,
    n_genes: usize,
    dir: &Path,
) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".to_string());
    let arch = &config.architecture;
    let vocab_size = config.vocab_size.unwrap_or_default();
    let mut card = String::new();
    let mut line = |text: String| {
        card.push_str(&text);
        card.push('\n');
    };
    line("---".into());
    line("library_name: scmodelforge".into());
    line("tags:\n- single-cell\n- foundation-model\n- gene-expression\n- forge".into());
    line("---".into());
    line(String::new());
    line(format!("# {name}"));
    line(String::new());
    line(format!(
        "A `{arch}` single-cell foundation model, written by forge {} in scModelForge's \
         checkpoint layout: it loads in forge and in scModelForge (PyTorch) alike.",
        env!("CARGO_PKG_VERSION")
    ));
    line(String::new());
    line("## Model".into());
    line(String::new());
    line("| Setting | Value |".into());
    line("|---|---|".into());
    let mut row = |key: &str, value: String| line(format!("| {key} | {value} |"));
    row("Architecture", format!("`{arch}`"));
    row("Hidden dimension", config.hidden_dim.to_string());
    row("Layers", config.num_layers.to_string());
    row("Attention heads", config.num_heads.to_string());
    row(
        "Feed-forward width",
        config.ffn_dim_or_default().to_string(),
    );
    row("Max sequence length", config.max_seq_len.to_string());
    row("Pooling", config.pooling.to_string());
    row("Activation", config.activation.to_string());
    row(
        "Expression values",
        if config.use_expression_values {
            "projected into the token embedding"
        } else {
            "not used"
        }
        .to_string(),
    );
    row(
        "Vocabulary size",
        format!(
            "{} ({FIRST_GENE_ID} special tokens + {n_genes} genes)",
            thousands(vocab_size)
        ),
    );
    match arch.as_str() {
        "autoregressive_transformer" => {
            row("Expression bins", config.n_bins.to_string());
            row(
                "Loss weights (gene, bins)",
                format!(
                    "{}, {}",
                    config.gene_loss_weight, config.expression_loss_weight
                ),
            );
        }
        "masked_autoencoder" => {
            use crate::models::masked_autoencoder::MaskedAutoencoderOptions;
            if let Ok(o) = crate::config::options::read::<MaskedAutoencoderOptions>(config) {
                row("Decoder width", o.dim(config).to_string());
                row("Decoder layers", o.decoder_layers.to_string());
                row("Decoder heads", o.heads(config).to_string());
            }
        }
        _ => {}
    }
    row("Dropout (training)", config.dropout.to_string());

    line(String::new());
    line("## Parameters".into());
    line(String::new());
    line("| Submodule | Parameters | Trainable |".into());
    line("|---|---:|---:|".into());
    let table = model.parameter_table();
    for (submodule, total, trainable) in &table.rows {
        line(format!(
            "| `{submodule}` | {} | {} |",
            thousands(*total),
            thousands(*trainable)
        ));
    }
    let (total, trainable) = table.totals();
    line(format!(
        "| **total** | **{}** | **{}** |",
        thousands(total),
        thousands(trainable)
    ));

    line(String::new());
    line("## Tokenizer".into());
    line(String::new());
    let geneformer = tokenizer.strategy == TokenizerStrategy::Geneformer;
    let most = match (geneformer, tokenizer.model_input_size) {
        (true, Some(n)) => n,
        (true, None) => match tokenizer.geneformer_version {
            Some(crate::config::GeneformerSeries::V2) => 4096,
            _ => 2048,
        },
        (false, _) => tokenizer.max_genes,
    };
    line(format!(
        "Cells were tokenized with `{}`: at most {} tokens per cell{}{}.",
        tokenizer.strategy,
        most,
        if geneformer {
            ""
        } else if tokenizer.prepend_cls {
            ", a CLS token first"
        } else {
            ""
        },
        match tokenizer.strategy {
            TokenizerStrategy::BinnedExpression => format!(
                ", values in {} `{}` bins",
                tokenizer.n_bins, tokenizer.binning_method
            ),
            _ => String::new(),
        }
    ));
    if geneformer {
        line(format!(
            "Token ids: Geneformer's token dictionary `{}` (`<pad>` 0, `<mask>` 1), medians \
             from `{}`, version {}; `{VOCAB_FILE}` lists no genes.",
            tokenizer.token_dictionary.as_deref().unwrap_or("?"),
            tokenizer.gene_median_dictionary.as_deref().unwrap_or("?"),
            tokenizer
                .geneformer_version
                .map_or("?".to_string(), |v| v.to_string())
        ));
    } else {
        line(format!(
            "Token ids: 0 PAD, 1 UNK, 2 MASK, 3 CLS; genes from {FIRST_GENE_ID} as listed in \
             `{VOCAB_FILE}`."
        ));
    }

    line(String::new());
    line("## Files".into());
    line(String::new());
    line(format!(
        "- `{CONFIG_FILE}`: `model_type`, `model_config`, `tokenizer_config`"
    ));
    line(format!(
        "- `{WEIGHTS_FILE}`: float32 weights under PyTorch state-dict names"
    ));
    line(format!("- `{VOCAB_FILE}`: gene -> token id"));
    line(format!("- `{README_FILE}`: this card"));

    line(String::new());
    line("## Loading".into());
    line(String::new());
    line("In forge (Rust):".into());
    line(String::new());
    line("```rust".into());
    line(format!(
        "let loaded = forge_core::checkpoint::load_pretrained(\"{name}\".as_ref(), tch::Device::Cpu)?;"
    ));
    line("let embeddings = tch::no_grad(|| loaded.model.encode(&batch));".into());
    line("```".into());
    line(String::new());
    line("From the command line:".into());
    line(String::new());
    line("```sh".into());
    line(format!(
        "forge embed --model {name} --data cells.h5ad --out embeddings.h5ad"
    ));
    line("```".into());
    line(String::new());
    line("In PyTorch, with scModelForge:".into());
    line(String::new());
    line("```python".into());
    line("from scmodelforge.models.hub import load_pretrained".into());
    line(String::new());
    line(format!("model, config = load_pretrained(\"{name}\")"));
    line("```".into());
    line(String::new());
    line(format!(
        "or the weights alone into a module of the same architecture: \
         `model.load_state_dict(safetensors.torch.load_file(\"{name}/{WEIGHTS_FILE}\"))`."
    ));
    card
}

/// `1234567` -> `1,234,567`.
pub(super) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(-12345), "-12,345");
    }
}

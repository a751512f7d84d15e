//! The string-valued choices of the config (`pooling: cls`, `precision:
//! bf16-mixed`, ...), each declared with `config_enum!`.
//!
//! `config_enum!` turns a list of `Variant = "yaml-name" | "alias"...` into
//! an enum with `ALL` (the canonical names), `as_str()`, `Display`,
//! `FromStr` and [`ConfigValue`]. Names are matched exactly, then ignoring
//! ASCII case (scModelForge lower-cases some of them, e.g. optimizer names);
//! aliases read as their variant and are written back under the canonical
//! name. An integer is read as its text, so `precision: 32` works. A bad
//! value is reported with its key path, the value given, a did-you-mean
//! suggestion when one is close, and the accepted values.
//!
//! Which names exist here is decided by what forge implements: a value
//! scModelForge accepts but forge cannot run is refused at load time rather
//! than half-way through a run.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::error::{ConfigError, ConfigErrors};
use super::value::{ConfigValue, describe, quote};

/// The message for a value that is none of `accepted` (canonical names)
/// nor `aliases`.
pub fn invalid_value_message(
    given: &str,
    accepted: &[&'static str],
    aliases: &[&'static str],
) -> String {
    let mut list = accepted.join(", ");
    if !aliases.is_empty() {
        list.push_str(&format!(" (or {})", aliases.join(", ")));
    }
    match crate::suggest::closest(given, accepted.iter().copied()) {
        Some(best) => format!(
            "invalid value {}; did you mean \"{best}\"? accepted values: {list}",
            quote(given)
        ),
        None => format!("invalid value {}; accepted values: {list}", quote(given)),
    }
}

/// Reads an enum from a node: a string, or an integer taken as its text.
pub fn enum_from_value<T>(
    v: &Value,
    path: &str,
    errors: &mut ConfigErrors,
    accepted: &[&'static str],
    aliases: &[&'static str],
    from_name: fn(&str) -> Option<T>,
) -> Option<T> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if !n.is_f64() => n.to_string(),
        _ => {
            errors.push(
                path,
                format!(
                    "expected one of: {}, found {}",
                    accepted.join(", "),
                    describe(v)
                ),
            );
            return None;
        }
    };
    let parsed = from_name(&text);
    if parsed.is_none() {
        errors.push(path, invalid_value_message(&text, accepted, aliases));
    }
    parsed
}

/// Declares a string enum of the config; see the module documentation.
macro_rules! config_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $variant:ident = $text:literal $(| $alias:literal)*
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $(
                $(#[doc = $doc])*
                $variant,
            )+
        }

        impl $name {
            /// The accepted names, canonical spelling, in declaration order.
            pub const ALL: &'static [&'static str] = &[$($text),+];

            /// Other spellings read as one of the names in [`Self::ALL`].
            pub const ALIASES: &'static [&'static str] = &[$($($alias,)*)+];

            /// Every variant, in declaration order.
            pub const VARIANTS: &'static [Self] = &[$(Self::$variant),+];

            /// The canonical name, as written in YAML.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The variant called `name` (canonical name or alias; exact
            /// match first, then ignoring ASCII case).
            pub fn from_name(name: &str) -> Option<Self> {
                let name = name.trim();
                match name {
                    $($text $(| $alias)* => return Some(Self::$variant),)+
                    _ => {}
                }
                $(
                    if name.eq_ignore_ascii_case($text)
                        $(|| name.eq_ignore_ascii_case($alias))*
                    {
                        return Some(Self::$variant);
                    }
                )+
                None
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ConfigError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_name(s)
                    .ok_or_else(|| {
                        ConfigError::new("", invalid_value_message(s, Self::ALL, Self::ALIASES))
                    })
            }
        }

        impl ConfigValue for $name {
            fn from_value(v: &Value, path: &str, errors: &mut ConfigErrors) -> Option<Self> {
                enum_from_value(v, path, errors, Self::ALL, Self::ALIASES, Self::from_name)
            }

            fn to_value(&self) -> Value {
                Value::String(self.as_str().to_string())
            }
        }
    };
}

config_enum! {
    /// How a cell embedding is pooled from the per-token hidden states
    /// (`model.pooling`).
    pub enum Pooling {
        /// The hidden state of the first (CLS) token.
        Cls = "cls",
        /// The mean over real (non-padding) tokens.
        Mean = "mean",
    }
}

config_enum! {
    /// Feed-forward activation of the encoder layers (`model.activation`).
    pub enum Activation {
        /// Exact (erf) GELU, as PyTorch's default.
        Gelu = "gelu",
        /// ReLU.
        Relu = "relu",
    }
}

config_enum! {
    /// Pretraining objective (`model.pretraining_task`). All three reference
    /// models train on masked labels, the autoregressive one included (no
    /// next-token shift), so this is the only objective.
    pub enum PretrainingTask {
        /// Predict the identity of masked genes (labels -100 elsewhere).
        MaskedGenePrediction = "masked_gene_prediction",
    }
}

config_enum! {
    /// How a cell is turned into tokens (`tokenizer.strategy`).
    pub enum TokenizerStrategy {
        /// Expressed genes sorted by value, descending (Geneformer).
        RankValue = "rank_value",
        /// Genes in input order with binned values (scGPT).
        BinnedExpression = "binned_expression",
        /// Genes in fixed order with continuous values (scFoundation).
        ContinuousProjection = "continuous_projection",
        /// Genes with pretrained gene embeddings (`tokenizer.embedding_path`).
        GeneEmbedding = "gene_embedding",
        /// Geneformer's own median-scaled rank of raw counts, with its token
        /// and gene-median dictionaries (forge extension; see
        /// `tokenizer.token_dictionary`).
        Geneformer = "geneformer",
    }
}

config_enum! {
    /// The published Geneformer series whose tokenization is followed
    /// (`tokenizer.geneformer_version`).
    pub enum GeneformerSeries {
        /// The 30M series: no special tokens, input size 2048.
        V1 = "v1",
        /// The 95M series: `<cls>` first, `<eos>` last, input size 4096.
        V2 = "v2",
    }
}

config_enum! {
    /// How expression values are cut into bins (`tokenizer.binning_method`).
    pub enum BinningMethod {
        /// Equal-width edges over 0..10.
        Uniform = "uniform",
        /// Edges at quantiles fitted on the data.
        Quantile = "quantile",
    }
}

config_enum! {
    /// Per-cell normalisation (`data.preprocessing.normalize`; `null`
    /// disables it).
    pub enum Normalize {
        /// Scale each cell to `target_sum` total counts.
        LibrarySize = "library_size",
    }
}

config_enum! {
    /// Batch-level gene selection (`data.gene_selection.strategy`).
    pub enum GeneSelectionStrategy {
        /// Keep every gene.
        All = "all",
        /// Keep the `n_genes` genes of largest total expression in the batch.
        MostExpressed = "most_expressed",
        /// Keep `n_genes` genes drawn at random from those expressed in the
        /// batch.
        RandomExpressed = "random_expressed",
    }
}

config_enum! {
    /// How training cells are drawn (`training.sampling.strategy`).
    pub enum SamplingStrategy {
        /// A uniform shuffle each epoch.
        Random = "random",
        /// Inverse-frequency weighting by `label_key` (multinomial draws).
        Weighted = "weighted",
    }
}

config_enum! {
    /// Where the training data comes from (`data.source`).
    pub enum DataSource {
        /// Local `.h5ad` files listed in `data.paths`.
        Local = "local",
        /// CELLxGENE Census (settings in `data.census`); parses so that the
        /// refusal can say how to bring the cells local.
        CellxgeneCensus = "cellxgene_census",
    }
}

config_enum! {
    /// Optimizer (`training.optimizer.name`).
    pub enum OptimizerName {
        /// AdamW (decoupled weight decay).
        Adamw = "adamw",
        /// Adam.
        Adam = "adam",
        /// Plain stochastic gradient descent.
        Sgd = "sgd",
    }
}

config_enum! {
    /// Learning-rate schedule (`training.scheduler.name`; a `null`
    /// scheduler keeps the learning rate constant).
    pub enum SchedulerName {
        /// Linear warm-up for `warmup_steps`, then cosine decay to 0 at
        /// `total_steps`.
        CosineWarmup = "cosine_warmup",
        /// Cosine decay from the first step (no warm-up).
        Cosine = "cosine",
        /// Linear warm-up, then linear decay.
        Linear = "linear",
    }
}

config_enum! {
    /// Numeric precision of training (`training.precision`), with
    /// PyTorch Lightning's names; `32`, `16`, `bf16` and `64` (also as YAML
    /// integers) are read as Lightning reads them.
    pub enum Precision {
        /// bfloat16 autocast, float32 weights.
        Bf16Mixed = "bf16-mixed" | "bf16",
        /// float16 autocast with loss scaling, float32 weights.
        Fp16Mixed = "16-mixed" | "16",
        /// Plain float32.
        Fp32True = "32-true" | "32",
        /// Everything in bfloat16.
        Bf16True = "bf16-true",
        /// Everything in float16.
        Fp16True = "16-true",
        /// Everything in float64.
        Fp64True = "64-true" | "64",
    }
}

config_enum! {
    /// Kind of fine-tuning head (`finetune.head.task`).
    pub enum FinetuneTask {
        /// Cross-entropy over `n_classes` labels.
        Classification = "classification",
        /// Mean squared error on `output_dim` values.
        Regression = "regression",
    }
}

config_enum! {
    /// Which biases LoRA trains (`finetune.lora.bias`).
    pub enum LoraBias {
        /// No bias is trained.
        None = "none",
        /// Every bias is trained.
        All = "all",
        /// Only the biases of LoRA-adapted layers are trained.
        LoraOnly = "lora_only",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read<T: ConfigValue>(v: Value) -> Result<T, String> {
        let mut errors = ConfigErrors::new("config.yaml");
        T::from_value(&v, "model.pooling", &mut errors).ok_or_else(|| errors.to_string())
    }

    #[test]
    fn names_round_trip() {
        for &p in Precision::VARIANTS {
            assert_eq!(p.as_str().parse::<Precision>().unwrap(), p);
            assert_eq!(p.to_string(), p.as_str());
        }
        assert_eq!(Pooling::ALL, ["cls", "mean"]);
        assert_eq!(LoraBias::from_name("lora_only"), Some(LoraBias::LoraOnly));
    }

    #[test]
    fn aliases_case_and_integers() {
        assert_eq!(read::<Precision>(json!(32)).unwrap(), Precision::Fp32True);
        assert_eq!(read::<Precision>(json!("32")).unwrap(), Precision::Fp32True);
        assert_eq!(read::<Precision>(json!(16)).unwrap(), Precision::Fp16Mixed);
        assert_eq!(
            read::<Precision>(json!("bf16")).unwrap(),
            Precision::Bf16Mixed
        );
        assert_eq!(Precision::Fp32True.to_value(), json!("32-true"));
        assert_eq!(
            read::<OptimizerName>(json!("AdamW")).unwrap(),
            OptimizerName::Adamw
        );
    }

    #[test]
    fn invalid_values_name_path_value_and_choices() {
        assert_eq!(
            read::<Pooling>(json!("bad")).unwrap_err(),
            "config.yaml: model.pooling: invalid value \"bad\"; accepted values: cls, mean"
        );
        assert_eq!(
            read::<Pooling>(json!("mena")).unwrap_err(),
            "config.yaml: model.pooling: invalid value \"mena\"; did you mean \"mean\"? \
             accepted values: cls, mean"
        );
        assert_eq!(
            read::<Precision>(json!(33)).unwrap_err(),
            "config.yaml: model.pooling: invalid value \"33\"; accepted values: bf16-mixed, \
             16-mixed, 32-true, bf16-true, 16-true, 64-true (or bf16, 16, 32, 64)"
        );
        let err = read::<Pooling>(json!([1])).unwrap_err();
        assert!(
            err.contains("expected one of: cls, mean, found a list"),
            "{err}"
        );
        let err = "cosine_warmpu".parse::<SchedulerName>().unwrap_err();
        assert!(
            err.to_string().contains("did you mean \"cosine_warmup\"?"),
            "{err}"
        );
    }

    /// Every enum refuses a bad value with its accepted list and suggests
    /// the near miss.
    #[test]
    fn every_enum_suggests_near_misses() {
        fn check<T: ConfigValue + std::fmt::Debug>(all: &[&str]) {
            let list = all.join(", ");
            let err = read::<T>(json!("definitely-not-valid")).unwrap_err();
            assert!(err.contains(&format!("accepted values: {list}")), "{err}");
            let first = all[0];
            let typo = format!("{}x", first);
            let err = read::<T>(json!(typo)).unwrap_err();
            assert!(err.contains(&format!("did you mean \"{first}\"?")), "{err}");
            assert!(err.contains(&format!("invalid value \"{typo}\"")), "{err}");
        }
        check::<Pooling>(Pooling::ALL);
        check::<Activation>(Activation::ALL);
        check::<PretrainingTask>(PretrainingTask::ALL);
        check::<TokenizerStrategy>(TokenizerStrategy::ALL);
        check::<BinningMethod>(BinningMethod::ALL);
        check::<Normalize>(Normalize::ALL);
        check::<DataSource>(DataSource::ALL);
        check::<GeneSelectionStrategy>(GeneSelectionStrategy::ALL);
        check::<SamplingStrategy>(SamplingStrategy::ALL);
        check::<OptimizerName>(OptimizerName::ALL);
        check::<SchedulerName>(SchedulerName::ALL);
        check::<Precision>(Precision::ALL);
        check::<FinetuneTask>(FinetuneTask::ALL);
        check::<LoraBias>(LoraBias::ALL);
        check::<GeneSelectionStrategy>(GeneSelectionStrategy::ALL);
        check::<SamplingStrategy>(SamplingStrategy::ALL);
    }
}

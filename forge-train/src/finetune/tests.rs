//! Fine-tuning tests on small synthetic data and tiny models.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::*;
use crate::train::tests::{epoch_folders, recorded_folders};
use forge_core::checkpoint::save_pretrained;
use forge_core::config::{
    DataConfig, FinetuneConfig, FinetuneHeadConfig, FinetuneTask, ForgeConfig, LoraConfig,
    ModelConfig, Normalize, Pooling, Precision, TokenizerConfig, TrainingConfig,
};
use forge_core::model::ForgeModel;
use forge_core::params::named_parameters;
use forge_data::synthetic::{SyntheticOptions, write_synthetic_with};
use forge_data::{Corpus, DataLoader, DataPipeline, GeneMatchOptions, LoaderOptions, Tokenizer};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("forge-finetune-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tokenizer_config() -> TokenizerConfig {
    TokenizerConfig {
        max_genes: 16,
        ..TokenizerConfig::default()
    }
}

/// Synthetic cells of `n_types` types, tokenized without masking.
struct Fixture {
    dir: PathBuf,
    file: PathBuf,
    pipeline: DataPipeline,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fixture(name: &str, n_cells: usize, n_types: usize) -> Fixture {
    let dir = scratch(name);
    let file = dir.join("cells.h5ad");
    // Denser than the default (10% nonzero), and short cells (15 genes):
    // a cell's top-ranked genes then often include its type's markers.
    let opts = SyntheticOptions {
        n_cells,
        n_genes: 100,
        n_types,
        seed: 7,
        nonzero_fraction: 0.4,
        ..SyntheticOptions::default()
    };
    write_synthetic_with(&file, &opts).unwrap();
    let data = DataConfig {
        paths: vec![file.display().to_string()],
        ..DataConfig::default()
    };
    let corpus = Corpus::from_config(&data).unwrap();
    let tokenizer =
        Tokenizer::from_config(&tokenizer_config(), || corpus.sample_values(500)).unwrap();
    let pipeline =
        DataPipeline::new(corpus, None, tokenizer, None, &GeneMatchOptions::default()).unwrap();
    Fixture {
        dir,
        file,
        pipeline,
    }
}

fn model_config(vocab_size: usize) -> ModelConfig {
    ModelConfig {
        vocab_size: Some(vocab_size as i64),
        hidden_dim: 16,
        num_layers: 1,
        num_heads: 2,
        ffn_dim: Some(32),
        dropout: 0.0,
        max_seq_len: 16,
        pooling: Pooling::Mean,
        ..ModelConfig::default()
    }
}

fn tiny_model(fx: &Fixture, seed: i64) -> (ModelConfig, Box<dyn ForgeModel>) {
    tch::manual_seed(seed);
    let cfg = model_config(fx.pipeline.vocab().len());
    let vs = VarStore::new(Device::Cpu);
    let model = forge_core::registry::build(&vs.root(), &cfg).unwrap();
    (cfg, model)
}

fn training(epochs: i64, lr: f64) -> TrainingConfig {
    let mut t = TrainingConfig {
        max_epochs: epochs,
        batch_size: 16,
        precision: Precision::Fp32True,
        scheduler: None,
        val_split: 0.2,
        ..TrainingConfig::default()
    };
    t.optimizer.lr = lr;
    t
}

fn loaders(fx: &Fixture, split: &Split) -> (DataLoader, Option<DataLoader>) {
    let opts = LoaderOptions {
        batch_size: 16,
        mask: false,
        num_workers: 1,
        ..LoaderOptions::default()
    };
    let train = fx
        .pipeline
        .subset(&split.train)
        .unwrap()
        .loader(opts.clone())
        .unwrap();
    let val = (!split.val.is_empty()).then(|| {
        let o = LoaderOptions {
            shuffle: false,
            ..opts
        };
        fx.pipeline.subset(&split.val).unwrap().loader(o).unwrap()
    });
    (train, val)
}

/// Fine-tunes a fresh tiny model on `fx` with `fcfg`; returns the
/// finetuner, the parameters before training and the summary.
fn tune(
    fx: &Fixture,
    fcfg: &FinetuneConfig,
    t: &TrainingConfig,
) -> (Finetuner, Vec<(String, Tensor)>, FinetuneSummary) {
    // Model, head and adapters are drawn from the global RNG under a lock,
    // so that these tests do not reseed it under each other.
    let guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    let (_, model) = tiny_model(fx, 0);
    let targets = Targets::from_corpus(fx.pipeline.corpus(), &fcfg.label_key, &fcfg.head).unwrap();
    let split = split_cells(&targets, t.val_split, 1).unwrap();
    let (train, val) = loaders(fx, &split);
    let dim = run::embedding_dim(model.as_ref(), &train, Device::Cpu).unwrap();
    let ft = Finetuner::new(model, dim, targets.n_outputs(&fcfg.head), fcfg, Device::Cpu).unwrap();
    drop(guard);
    let before = snapshot(ft.backbone.as_ref());
    let summary = finetune(&ft, &targets, &train, val.as_ref(), options(t, fcfg)).unwrap();
    (ft, before, summary)
}

/// Options on the CPU, quiet, without logs or checkpoints.
fn options<'a>(t: &'a TrainingConfig, f: &'a FinetuneConfig) -> FinetuneOptions<'a> {
    FinetuneOptions {
        training: t,
        finetune: f,
        device: Device::Cpu,
        log_dir: None,
        verbose: false,
        checkpoints: None,
        resume_from: None,
        max_steps: None,
        stop: None,
        strategy: None,
    }
}

static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn snapshot(model: &dyn ForgeModel) -> Vec<(String, Tensor)> {
    named_parameters(model)
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect()
}

/// Names of the parameters of `model` that differ from `before`.
fn changed(before: &[(String, Tensor)], model: &dyn ForgeModel) -> Vec<String> {
    named_parameters(model)
        .into_iter()
        .zip(before)
        .filter(|((_, now), (_, then))| !now.equal(then))
        .map(|((n, _), _)| n)
        .collect()
}

fn cell_type_finetune() -> FinetuneConfig {
    FinetuneConfig {
        label_key: "cell_type".into(),
        ..FinetuneConfig::default()
    }
}

#[test]
fn stratified_split_is_proportional_and_seeded() {
    // class a: 20 cells, b: 10, c: 1, plus 3 unlabelled cells.
    let mut codes = vec![0i64; 20];
    codes.extend([1; 10]);
    codes.push(2);
    codes.extend([-100; 3]);
    let t = Targets::Classes {
        names: vec!["a".into(), "b".into(), "c".into()],
        codes: codes.clone(),
    };
    let s = split_cells(&t, 0.2, 5).unwrap();
    let count = |cells: &[usize], c: i64| cells.iter().filter(|&&i| codes[i] == c).count();
    assert_eq!(
        (count(&s.val, 0), count(&s.val, 1), count(&s.val, 2)),
        (4, 2, 0)
    );
    assert_eq!(
        (count(&s.train, 0), count(&s.train, 1), count(&s.train, 2)),
        (16, 8, 1)
    );
    assert_eq!(s.singletons, ["c"]);
    assert!(
        s.train.iter().chain(&s.val).all(|&i| codes[i] >= 0),
        "unlabelled cells left out"
    );
    assert_eq!(split_cells(&t, 0.2, 5).unwrap(), s, "same seed, same split");
    assert_ne!(
        split_cells(&t, 0.2, 6).unwrap().val,
        s.val,
        "another seed, another split"
    );
    // A class of two cells still validates on one.
    let small = Targets::Classes {
        names: vec!["a".into(), "b".into()],
        codes: vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1],
    };
    let s = split_cells(&small, 0.1, 0).unwrap();
    assert_eq!(s.val.iter().filter(|&&i| i >= 10).count(), 1);
    let all = split_cells(&t, 0.0, 5).unwrap();
    assert_eq!((all.train.len(), all.val.len()), (31, 0));
    assert!(
        split_cells(&t, 1.0, 5)
            .unwrap_err()
            .to_string()
            .contains("val_split")
    );
}

#[test]
fn regression_split_skips_missing_values() {
    let mut v: Vec<f32> = (0..20).map(|i| i as f32).collect();
    v[3] = f32::NAN;
    let t = Targets::Values(v);
    let s = split_cells(&t, 0.25, 1).unwrap();
    assert_eq!((s.train.len(), s.val.len()), (14, 5));
    assert!(!s.train.contains(&3) && !s.val.contains(&3));
    let y = t.batch(&[0, 5], Device::Cpu);
    assert_eq!(y.size(), [2, 1]);
    assert_eq!(y.kind(), Kind::Float);
}

#[test]
fn labels_are_encoded_from_obs_and_bad_columns_are_explained() {
    let fx = fixture("labels", 40, 3);
    let corpus = fx.pipeline.corpus();
    let head = FinetuneHeadConfig::default();
    let t = Targets::from_corpus(corpus, "cell_type", &head).unwrap();
    let Targets::Classes { names, codes } = &t else {
        panic!("classification targets")
    };
    let labels = corpus.task_labels("cell_type").unwrap();
    assert_eq!(
        names, &labels.classes,
        "same ids as the batch key task_labels"
    );
    assert_eq!(names.len(), 3);
    assert_eq!(codes.len(), 40);
    assert!(codes.iter().all(|&c| (0..3).contains(&c)));
    assert_eq!(t.n_outputs(&head), 3);
    assert_eq!(
        t.batch(&[0, 1], Device::Cpu),
        Tensor::from_slice(&codes[..2])
    );
    let file = fx.file.file_name().unwrap().to_string_lossy().into_owned();

    // Missing key: names the file, the key and the columns there are.
    let err = Targets::from_corpus(corpus, "celltype", &head)
        .unwrap_err()
        .to_string();
    for needle in [&file, "celltype", "available", "cell_type", "batch"] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    // Too few classes.
    let few = FinetuneHeadConfig {
        n_classes: Some(2),
        ..FinetuneHeadConfig::default()
    };
    let err = Targets::from_corpus(corpus, "cell_type", &few)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("finetune.head.n_classes") && err.contains("at least 3"),
        "{err}"
    );
    let more = FinetuneHeadConfig {
        n_classes: Some(5),
        ..FinetuneHeadConfig::default()
    };
    assert_eq!(
        Targets::from_corpus(corpus, "cell_type", &more)
            .unwrap()
            .n_outputs(&more),
        5
    );
    // Regression on labels.
    let reg = FinetuneHeadConfig {
        task: FinetuneTask::Regression,
        ..FinetuneHeadConfig::default()
    };
    let err = Targets::from_corpus(corpus, "cell_type", &reg)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not numeric") && err.contains(&file) && err.contains("cell_type"),
        "{err}"
    );
}

#[test]
fn regression_reads_numeric_columns() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../forge-core/tests/fixtures/h5ad");
    let data = DataConfig {
        paths: vec![fixtures.join("dense.h5ad").display().to_string()],
        ..DataConfig::default()
    };
    let corpus = Corpus::from_config(&data).unwrap();
    let reg = FinetuneHeadConfig {
        task: FinetuneTask::Regression,
        ..FinetuneHeadConfig::default()
    };
    let Targets::Values(v) = Targets::from_corpus(&corpus, "n_counts", &reg).unwrap() else {
        panic!("values")
    };
    assert!((v[0] - 674.197).abs() < 1e-3 && v.len() == 7);
    // Integers, and categories that read as numbers.
    assert!(Targets::from_corpus(&corpus, "n_genes", &reg).is_ok());
    let Targets::Values(d) = Targets::from_corpus(&corpus, "dose", &reg).unwrap() else {
        panic!("values")
    };
    assert_eq!(&d[..2], &[0.5, 1.0]);
    let two = FinetuneHeadConfig {
        output_dim: 2,
        ..reg.clone()
    };
    let err = Targets::from_corpus(&corpus, "n_counts", &two)
        .unwrap_err()
        .to_string();
    assert!(err.contains("output_dim"), "{err}");
}

#[test]
fn head_shapes_and_names() {
    let vs = VarStore::new(Device::Cpu);
    let x = Tensor::randn([5, 16], (Kind::Float, Device::Cpu));
    let plain = TaskHead::new(&vs.root(), 16, 4, &FinetuneHeadConfig::default());
    assert_eq!(plain.forward(&x, true).size(), [5, 4]);
    let names: Vec<String> = named_parameters(&plain)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["output.weight", "output.bias"]);
    let cfg = FinetuneHeadConfig {
        hidden_dim: Some(8),
        task: FinetuneTask::Regression,
        output_dim: 1,
        ..FinetuneHeadConfig::default()
    };
    let hidden = TaskHead::new(&(vs.root() / "h"), 16, 1, &cfg);
    assert_eq!(hidden.forward(&x, false).size(), [5, 1]);
    let shapes: Vec<Vec<i64>> = named_parameters(&hidden)
        .iter()
        .map(|(_, t)| t.size())
        .collect();
    assert_eq!(shapes, [vec![8, 16], vec![8], vec![1, 8], vec![1]]);
    // No dropout at evaluation: deterministic.
    assert!(hidden.forward(&x, false).equal(&hidden.forward(&x, false)));
}

#[test]
fn frozen_backbone_stays_and_unfreezes_after_the_set_epochs() {
    let fx = fixture("freeze", 48, 3);
    let mut f = cell_type_finetune();
    f.freeze_backbone_epochs = 1;
    let (ft, before, s) = tune(&fx, &f, &training(1, 1e-2));
    assert!(
        changed(&before, ft.backbone.as_ref()).is_empty(),
        "frozen for epoch 1"
    );
    assert!(!s.epochs[0].backbone_trained && s.epochs[0].backbone_lr == 0.0);
    let (ft, before, s) = tune(&fx, &f, &training(2, 1e-2));
    let moved = changed(&before, ft.backbone.as_ref());
    assert!(moved.len() > 4, "unfrozen after 1 epoch: {moved:?}");
    assert!(s.epochs[1].backbone_trained);
    let mut always = cell_type_finetune();
    always.freeze_backbone = true;
    let (ft, before, _) = tune(&fx, &always, &training(2, 1e-2));
    assert!(
        changed(&before, ft.backbone.as_ref()).is_empty(),
        "freeze_backbone: never"
    );
    // Training leaves the parameters trainable as loaded.
    assert!(
        named_parameters(ft.backbone.as_ref())
            .iter()
            .all(|(_, t)| t.requires_grad())
    );
}

#[test]
fn backbone_and_head_have_their_own_learning_rates() {
    let fx = fixture("lr", 48, 3);
    let mut f = cell_type_finetune();
    f.backbone_lr = Some(0.0);
    f.head_lr = Some(5e-3);
    let (ft, before, s) = tune(&fx, &f, &training(1, 1e-3));
    assert!(s.epochs[0].backbone_trained);
    assert_eq!((s.epochs[0].head_lr, s.epochs[0].backbone_lr), (5e-3, 0.0));
    assert!(
        changed(&before, ft.backbone.as_ref()).is_empty(),
        "backbone at lr 0 does not move"
    );
    let head: Vec<String> = ft.head_parameters().into_iter().map(|(n, _)| n).collect();
    let backbone: Vec<String> = ft
        .backbone_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(head, ["head.output.weight", "head.output.bias"]);
    assert!(backbone.iter().all(|n| n.starts_with("backbone.")) && backbone.len() > 10);
    // The other way round: the backbone moves when it has the rate.
    f.backbone_lr = Some(5e-3);
    let (ft, before, _) = tune(&fx, &f, &training(1, 1e-3));
    assert!(!changed(&before, ft.backbone.as_ref()).is_empty());
}

#[test]
fn lora_trains_only_the_adapters_and_the_head() {
    let fx = fixture("lora", 48, 3);
    let mut f = cell_type_finetune();
    f.lora = LoraConfig {
        enabled: true,
        rank: 2,
        ..LoraConfig::default()
    };
    let (ft, before, s) = tune(&fx, &f, &training(2, 1e-2));
    let lora = ft.lora.as_ref().unwrap();
    let adapted = lora.adapted();
    assert_eq!(
        adapted,
        [
            "encoder.layers.0.self_attn.out_proj.weight",
            "encoder.layers.0.linear1.weight",
            "encoder.layers.0.linear2.weight"
        ]
    );
    let moved = changed(&before, ft.backbone.as_ref());
    assert!(!moved.is_empty(), "adapters moved the merged weights");
    assert!(
        moved.iter().all(|n| adapted.contains(&n.as_str())),
        "only adapted weights change: {moved:?}"
    );
    let trainable: Vec<String> = ft
        .backbone_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        trainable.len(),
        6,
        "A and B per weight, no bias: {trainable:?}"
    );
    assert!(s.epochs.iter().all(|e| e.backbone_trained));

    // Saved with merged weights, it loads as a plain model of the same
    // architecture and predicts exactly what the trained one does.
    let out = fx.dir.join("saved");
    let head = HeadConfigFile {
        task: "classification".into(),
        label_key: "cell_type".into(),
        input_dim: 16,
        n_outputs: 3,
        hidden_dim: None,
        dropout: f.head.dropout,
        lora_rank: Some(2),
    };
    let classes = vec!["a".to_string(), "b".into(), "c".into()];
    save_finetuned(
        &out,
        false,
        &ft,
        SaveParts {
            model_config: &model_config(fx.pipeline.vocab().len()),
            tokenizer_config: &tokenizer_config(),
            vocab: fx.pipeline.vocab().entries(),
            head: &head,
            classes: &classes,
            config_yaml: "{}\n",
            logs: None,
        },
    )
    .unwrap();
    let loaded = load_finetuned(&out, Device::Cpu).unwrap();
    assert_eq!(loaded.classes, classes);
    let loader = fx
        .pipeline
        .all()
        .loader(LoaderOptions::inference(16))
        .unwrap();
    for batch in loader.epoch(0) {
        let batch = batch.unwrap();
        let (want, got) = (ft.predict(&batch), loaded.finetuner.predict(&batch));
        assert!(want.allclose(&got, 1e-5, 1e-6, false), "{want} vs {got}");
    }
}

#[test]
fn classification_learns_synthetic_cell_types() {
    let fx = fixture("learn", 240, 4);
    let f = FinetuneConfig {
        head_lr: Some(3e-2),
        ..cell_type_finetune()
    };
    let start = Instant::now();
    let (_, _, s) = tune(&fx, &f, &training(12, 1e-2));
    let secs = start.elapsed().as_secs_f64();
    let last = s.epochs.last().unwrap();
    eprintln!(
        "synthetic 4 types, 240 cells (192 train): val accuracy per epoch {:?}, f1 {:?}, {:.2}s per epoch",
        s.epochs
            .iter()
            .map(|e| e.accuracy.unwrap())
            .collect::<Vec<_>>(),
        last.f1_macro,
        secs / 12.0
    );
    assert!(last.accuracy.unwrap() > 0.5, "chance is 0.25: {last:?}");
    assert!(
        last.val_loss.unwrap() < s.epochs[0].val_loss.unwrap(),
        "{s:?}"
    );
    assert!(last.train_loss < s.epochs[0].train_loss, "{s:?}");
    assert!(last.mse.is_none());
}

#[test]
fn regression_reports_mse() {
    // Synthetic data has no numeric obs column: regress the type index.
    let fx = fixture("regress", 48, 3);
    let Targets::Classes { codes, .. } =
        Targets::classes(fx.pipeline.corpus(), "cell_type").unwrap()
    else {
        panic!()
    };
    let targets = Targets::Values(codes.iter().map(|&c| c as f32).collect());
    let f = FinetuneConfig {
        head: FinetuneHeadConfig {
            task: FinetuneTask::Regression,
            hidden_dim: Some(8),
            ..FinetuneHeadConfig::default()
        },
        ..cell_type_finetune()
    };
    let (_, model) = tiny_model(&fx, 0);
    let split = split_cells(&targets, 0.25, 0).unwrap();
    let (train, val) = loaders(&fx, &split);
    let ft = Finetuner::new(model, 16, 1, &f, Device::Cpu).unwrap();
    let t = training(2, 1e-2);
    let s = finetune(
        &ft,
        &targets,
        &train,
        val.as_ref(),
        FinetuneOptions {
            log_dir: Some(fx.dir.join("logs")),
            ..options(&t, &f)
        },
    )
    .unwrap();
    let e = &s.epochs[1];
    assert!(
        e.mse.is_some() && e.accuracy.is_none() && e.mse == e.val_loss,
        "{e:?}"
    );
    let log = std::fs::read_to_string(s.log_path.unwrap()).unwrap();
    assert_eq!(log.lines().count(), 3, "header and two epochs:\n{log}");
    assert!(log.starts_with("epoch,step,split,train_loss,val_loss,accuracy,f1_macro,mse"));
}

/// Writes a tiny random checkpoint for `fx` and a config file; returns
/// (checkpoint dir, config).
fn checkpoint_and_config(fx: &Fixture) -> (PathBuf, ForgeConfig) {
    let (mcfg, model) = tiny_model(fx, 1);
    let ckpt = fx.dir.join("ckpt");
    save_pretrained(
        model.as_ref(),
        &mcfg,
        &tokenizer_config(),
        fx.pipeline.vocab().entries(),
        &ckpt,
        false,
    )
    .unwrap();
    let mut cfg = ForgeConfig::default();
    cfg.data.paths = vec![fx.file.display().to_string()];
    cfg.data.preprocessing.normalize = Some(Normalize::LibrarySize);
    cfg.training = training(1, 1e-3);
    cfg.training.num_workers = 1;
    cfg.finetune = Some(FinetuneConfig {
        lora: LoraConfig {
            enabled: true,
            rank: 2,
            ..LoraConfig::default()
        },
        ..cell_type_finetune()
    });
    (ckpt, cfg)
}

fn job(fx: &Fixture, ckpt: &Path, out: &str, config_path: Option<PathBuf>) -> JobOptions {
    JobOptions {
        config_path,
        checkpoint: Some(ckpt.to_path_buf()),
        out: fx.dir.join(out),
        force: false,
        device: Device::Cpu,
        verbose: false,
        resume_from: None,
        stop: None,
        parallel: None,
    }
}

#[test]
fn saved_model_loads_back_with_the_same_predictions() {
    let fx = fixture("save", 48, 3);
    let (ckpt, mut cfg) = checkpoint_and_config(&fx);
    cfg.training.log_every_n_steps = 2;
    let opts = job(&fx, &ckpt, "out", None);
    let report = run_job(&cfg, &opts).unwrap();
    // `log_every_n_steps` paces `train` rows (steps 2, 4, ...); the epoch
    // ends with its own row.
    let metrics = std::fs::read_to_string(opts.out.join("logs/metrics.csv")).unwrap();
    let rows: Vec<Vec<&str>> = metrics.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(&rows[0][..3], ["epoch", "step", "split"], "{metrics}");
    let train_steps: Vec<&str> = rows
        .iter()
        .filter(|r| r[2] == "train")
        .map(|r| r[1])
        .collect();
    let last_step: i64 = rows.last().unwrap()[1].parse().unwrap();
    assert_eq!(rows.last().unwrap()[2], "epoch", "{metrics}");
    let expected: Vec<String> = (1..=last_step / 2).map(|k| (2 * k).to_string()).collect();
    assert!(!expected.is_empty(), "{metrics}");
    assert_eq!(train_steps, expected, "{metrics}");
    assert_eq!(report.lora_adapted, 3);
    assert_eq!(report.classes.len(), 3);
    for f in [
        "pretrained/config.json",
        "pretrained/model.safetensors",
        "pretrained/forge_config.yaml",
        "head.safetensors",
        "head_config.json",
        "labels.json",
        "config.yaml",
        "logs/metrics.csv",
    ] {
        assert!(opts.out.join(f).is_file(), "{f} missing");
    }
    let labels: Vec<String> =
        serde_json::from_slice(&std::fs::read(opts.out.join("labels.json")).unwrap()).unwrap();
    assert_eq!(labels, report.classes);

    // Predictions of the loaded model equal the in-memory model's: rerun
    // the job deterministically into another folder and compare both with
    // their saved copies through evaluation on the same cells.
    let loaded = load_finetuned(&opts.out, Device::Cpu).unwrap();
    assert_eq!(loaded.classes, report.classes);
    assert_eq!(loaded.head_config.lora_rank, Some(2));
    let again = load_finetuned(&opts.out, Device::Cpu).unwrap();
    let loader = fx
        .pipeline
        .all()
        .loader(LoaderOptions::inference(16))
        .unwrap();
    let batch = loader.epoch(0).next().unwrap().unwrap();
    let p1 = loaded.finetuner.predict(&batch);
    assert_eq!(p1.size(), [16, 3]);
    assert!(p1.equal(&again.finetuner.predict(&batch)));
    // The backbone in pretrained/ is a plain checkpoint of the architecture.
    let plain =
        forge_core::checkpoint::load_pretrained(&opts.out.join("pretrained"), Device::Cpu).unwrap();
    assert_eq!(plain.model.registry_name(), "transformer_encoder");
    let e1 = tch::no_grad(|| plain.model.encode(&batch));
    let e2 = tch::no_grad(|| loaded.finetuner.backbone.encode(&batch));
    assert!(e1.allclose(&e2, 1e-6, 1e-6, false));
    // And it differs from the pretrained checkpoint: the adapters trained.
    let base = forge_core::checkpoint::load_pretrained(&ckpt, Device::Cpu).unwrap();
    assert!(!tch::no_grad(|| base.model.encode(&batch)).allclose(&e1, 1e-6, 1e-6, false));

    // The folder is not replaced without force, nor a foreign folder with it.
    let err = run_job(&cfg, &opts).unwrap_err().to_string();
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    let forced = JobOptions {
        force: true,
        ..opts.clone()
    };
    run_job(&cfg, &forced).unwrap();
    let foreign = JobOptions {
        out: ckpt.clone(),
        force: true,
        ..opts.clone()
    };
    assert!(
        run_job(&cfg, &foreign)
            .unwrap_err()
            .to_string()
            .contains("refusing")
    );
}

#[test]
fn jobs_refuse_bad_inputs_clearly() {
    let fx = fixture("bad", 30, 3);
    let (ckpt, cfg) = checkpoint_and_config(&fx);
    // No checkpoint folder.
    let missing = job(&fx, &fx.dir.join("nope"), "o1", None);
    let err = run_job(&cfg, &missing).unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
    // A config naming another architecture.
    let path = fx.dir.join("ft.yaml");
    std::fs::write(&path, "model:\n  architecture: masked_autoencoder\n").unwrap();
    let err = run_job(&cfg, &job(&fx, &ckpt, "o2", Some(path)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`transformer_encoder` model") && err.contains("masked_autoencoder"),
        "{err}"
    );
    // A label key the file lacks.
    let mut bad = cfg.clone();
    bad.finetune.as_mut().unwrap().label_key = "celltype".into();
    let err = run_job(&bad, &job(&fx, &ckpt, "o3", None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cells.h5ad") && err.contains("did you mean `cell_type`"),
        "{err}"
    );
    // No finetune section.
    let mut none = cfg.clone();
    none.finetune = None;
    let err = run_job(&none, &job(&fx, &ckpt, "o4", None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("finetune"), "{err}");
    for o in ["o1", "o2", "o3", "o4"] {
        assert!(!fx.dir.join(o).exists(), "{o} written despite the error");
    }
}

/// A finetuner on `fx` for `fcfg`, drawn from seed 0 (as [`tune`]), with
/// its targets and loaders.
fn prepared(
    fx: &Fixture,
    fcfg: &FinetuneConfig,
    t: &TrainingConfig,
) -> (Finetuner, Targets, DataLoader, Option<DataLoader>) {
    let guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    let (_, model) = tiny_model(fx, 0);
    let targets = Targets::from_corpus(fx.pipeline.corpus(), &fcfg.label_key, &fcfg.head).unwrap();
    let split = split_cells(&targets, t.val_split, 1).unwrap();
    let (train, val) = loaders(fx, &split);
    let ft = Finetuner::new(model, 16, targets.n_outputs(&fcfg.head), fcfg, Device::Cpu).unwrap();
    drop(guard);
    (ft, targets, train, val)
}

/// Everything a fine-tuning run trains: backbone (adapters merged) and head.
fn trained(ft: &Finetuner) -> Vec<(String, Tensor)> {
    let mut all = snapshot(ft.backbone.as_ref());
    all.extend(
        ft.head_parameters()
            .into_iter()
            .map(|(n, t)| (n, t.detach().copy())),
    );
    all
}

fn max_param_diff(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|((na, x), (nb, y))| {
            assert_eq!(na, nb);
            (x - y).abs().max().double_value(&[])
        })
        .fold(0.0, f64::max)
}

fn resume_state(dir: &Path) -> crate::train::ResumeState {
    serde_json::from_str(&std::fs::read_to_string(dir.join("trainer_state.json")).unwrap()).unwrap()
}

/// How [`try_run_with`] runs.
#[derive(Default)]
struct Run<'a> {
    /// The checkpoint folder.
    ckpt: Option<&'a Path>,
    /// Resume from `ckpt/last`.
    resume: bool,
    max_steps: Option<i64>,
    stop: Option<&'a std::sync::atomic::AtomicBool>,
    /// Initial weights (from [`initial_state`]), so that runs start alike
    /// whatever other tests do to the global RNG meanwhile.
    init: Option<&'a [Vec<(String, Tensor)>; 3]>,
}

/// Backbone, head and LoRA tensors of `ft` (LoRA: empty without).
fn initial_state(ft: &Finetuner) -> [Vec<(String, Tensor)>; 3] {
    let copy = |v: Vec<(String, Tensor)>| {
        v.into_iter()
            .map(|(n, t)| (n, t.detach().copy()))
            .collect::<Vec<_>>()
    };
    [
        copy(forge_core::state_dict::state_dict(ft.backbone.as_ref())),
        copy(forge_core::state_dict::state_dict(&ft.head)),
        copy(ft.lora.as_ref().map(|l| l.state()).unwrap_or_default()),
    ]
}

/// Runs `finetune` on a fresh finetuner as `run` says.
fn try_run_with(
    fx: &Fixture,
    f: &FinetuneConfig,
    t: &TrainingConfig,
    run: &Run,
) -> (Finetuner, forge_core::Result<FinetuneSummary>) {
    let (ft, targets, train, val) = prepared(fx, f, t);
    if let Some([backbone, head, lora]) = run.init {
        use forge_core::state_dict::load_state_dict;
        load_state_dict(ft.backbone.as_ref(), backbone).unwrap();
        load_state_dict(&ft.head, head).unwrap();
        if let Some(l) = &ft.lora {
            l.load_state(lora).unwrap();
        }
    }
    let s = finetune(
        &ft,
        &targets,
        &train,
        val.as_ref(),
        FinetuneOptions {
            checkpoints: run
                .ckpt
                .map(|d| crate::train::TrainCheckpoints::new(d, t.save_top_k)),
            resume_from: run.resume.then(|| run.ckpt.unwrap().join("last")),
            max_steps: run.max_steps,
            stop: run.stop,
            ..options(t, f)
        },
    );
    (ft, s)
}

/// [`try_run_with`], which must succeed.
fn run_with(
    fx: &Fixture,
    f: &FinetuneConfig,
    t: &TrainingConfig,
    run: &Run,
) -> (Finetuner, FinetuneSummary) {
    let (ft, s) = try_run_with(fx, f, t, run);
    (ft, s.unwrap_or_else(|e| panic!("{e}")))
}

/// Fine-tuning stopped by a step limit, then twice by the stop flag (once
/// at an epoch's last batch, once inside an accumulation window), and
/// resumed each time from `last/`, ends with the backbone, adapters and
/// head of a run that was never interrupted: with the backbone unfrozen
/// after the first epoch (its optimizer appears mid-run), and with LoRA.
#[test]
fn interrupted_finetuning_resumes_to_the_uninterrupted_result() {
    use crate::train::StopReason;
    use std::sync::atomic::AtomicBool;
    let fx = fixture("resume", 48, 3);
    let mut t = training(3, 1e-2);
    t.gradient_accumulation = 2;
    for lora in [false, true] {
        let mut f = cell_type_finetune();
        f.freeze_backbone_epochs = 1;
        f.head.dropout = 0.0;
        f.lora.enabled = lora;
        f.lora.rank = 2;
        let (ft, ..) = prepared(&fx, &f, &t);
        let init = initial_state(&ft);
        drop(ft);
        let start = Run {
            init: Some(&init),
            ..Run::default()
        };
        let (straight, s) = run_with(&fx, &f, &t, &start);
        assert_eq!(s.stop, StopReason::Completed);
        // 38 training cells: 3 batches, windows of 2 and 1, 2 steps an epoch.
        assert_eq!(s.steps, 6, "lora {lora}");

        let ckpt = fx.dir.join(format!("ckpt-{lora}"));
        let limited = Run {
            ckpt: Some(&ckpt),
            max_steps: Some(3),
            ..start
        };
        let (_, s) = run_with(&fx, &f, &t, &limited);
        assert_eq!((s.stop, s.steps), (StopReason::StepLimit, 3));
        let last = ckpt.join("last");
        let state = resume_state(&last);
        assert_eq!((state.epoch, state.batch_in_epoch, state.step), (1, 2, 3));
        assert!(last.join("backbone_optimizer.safetensors").is_file());
        assert_eq!(last.join("lora.safetensors").is_file(), lora);
        // Resumed runs start from other weights: the checkpoint replaces them.
        let flag = AtomicBool::new(true);
        let stopped = Run {
            ckpt: Some(&ckpt),
            resume: true,
            stop: Some(&flag),
            ..Run::default()
        };
        // One batch: the last of epoch 1, which ends a window.
        let (_, s) = run_with(&fx, &f, &t, &stopped);
        assert_eq!((s.stop, s.steps), (StopReason::Interrupted, 4));
        assert_eq!(
            (
                resume_state(&last).epoch,
                resume_state(&last).batch_in_epoch
            ),
            (1, 3)
        );
        // Epoch 1 ends; one batch of epoch 2, inside a window: the
        // checkpoint goes back to the window's start.
        let (_, s) = run_with(&fx, &f, &t, &stopped);
        assert_eq!((s.stop, s.steps), (StopReason::Interrupted, 4));
        assert_eq!(s.epochs.len(), 1, "epoch 1 completed in this run");
        let state = resume_state(&last);
        assert_eq!((state.epoch, state.batch_in_epoch, state.step), (2, 0, 4));
        let resume = Run {
            ckpt: Some(&ckpt),
            resume: true,
            ..Run::default()
        };
        let (resumed, s) = run_with(&fx, &f, &t, &resume);
        assert_eq!((s.stop, s.steps), (StopReason::Completed, 6));
        assert!(s.epochs.iter().all(|e| e.backbone_trained));
        let d = max_param_diff(&trained(&straight), &trained(&resumed));
        assert!(d < 1e-6, "lora {lora}: resumed parameters differ by {d}");
    }
}

/// Fine-tuning keeps `last/` and the best `save_top_k` epochs by
/// validation loss, recorded in `last/`; a run resumed from `last/`
/// deletes an epoch folder that a crash left behind.
#[test]
fn finetuning_keeps_the_best_epochs_and_reconciles_after_a_crash() {
    let fx = fixture("top-k", 48, 3);
    let mut t = training(4, 1e-2);
    t.save_top_k = 2;
    let f = cell_type_finetune();
    let ckpt = fx.dir.join("ckpt");
    let fresh = Run {
        ckpt: Some(&ckpt),
        ..Run::default()
    };
    let (_, s) = run_with(&fx, &f, &t, &fresh);
    let (state, names) = recorded_folders(&ckpt);
    assert_eq!(names.len(), 2);
    assert_eq!(epoch_folders(&ckpt), names);
    // The record holds the epochs of the two lowest validation losses of
    // the run (the JSON text may round a loss in its last digit).
    let mut by_loss: Vec<(f64, usize)> = s
        .epochs
        .iter()
        .map(|e| (e.val_loss.unwrap(), e.epoch))
        .collect();
    by_loss.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(state.best.len(), 2);
    for (recorded, want) in state.best.iter().zip(&by_loss) {
        assert_eq!(recorded.1, want.1, "{:?} vs {by_loss:?}", state.best);
        assert!((recorded.0 - want.0).abs() < 1e-12);
    }
    for file in [
        "model.safetensors",
        "head.safetensors",
        "optimizer.safetensors",
        "backbone_optimizer.safetensors",
        "trainer_state.json",
    ] {
        assert!(ckpt.join(&names[0]).join(file).is_file(), "{file}");
    }
    let stray = ckpt.join("epoch-009");
    std::fs::create_dir_all(&stray).unwrap();
    t.max_epochs = 5;
    let resume = Run {
        resume: true,
        ..fresh
    };
    let (_, s) = run_with(&fx, &f, &t, &resume);
    assert_eq!((s.epochs.len(), s.epochs[0].epoch), (1, 4));
    assert!(!stray.exists());
    let (_, names) = recorded_folders(&ckpt);
    assert_eq!(epoch_folders(&ckpt), names);
    // A pretraining checkpoint is not a fine-tuning one.
    let err = load_as_finetune_error(&fx, &f, &t);
    assert!(
        err.contains("head.safetensors") && err.contains("pretraining or fine-tuning"),
        "{err}"
    );
}

/// The error of resuming fine-tuning from a folder that holds a
/// pretraining checkpoint's files only.
fn load_as_finetune_error(fx: &Fixture, f: &FinetuneConfig, t: &TrainingConfig) -> String {
    let dir = fx.dir.join("pretraining-ckpt");
    let last = dir.join("last");
    std::fs::create_dir_all(&last).unwrap();
    std::fs::write(
        last.join("trainer_state.json"),
        serde_json::to_vec(&crate::train::ResumeState::default()).unwrap(),
    )
    .unwrap();
    let guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    let (_, model) = tiny_model(fx, 0);
    drop(guard);
    crate::train::checkpoints::write_tensors(
        &last.join("model.safetensors"),
        &forge_core::state_dict::state_dict(model.as_ref()),
    )
    .unwrap();
    let run = Run {
        ckpt: Some(&dir),
        resume: true,
        ..Run::default()
    };
    let (_, s) = try_run_with(fx, f, t, &run);
    s.unwrap_err().to_string()
}

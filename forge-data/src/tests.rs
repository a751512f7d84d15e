//! Tests of the data pipeline: tokenizers, preprocessing and masking against
//! the numpy reference of `scripts/make_tokenizer_fixtures.py` (fixtures in
//! `forge-core/tests/fixtures/data/`), the corpus, the loader (every cell
//! once, determinism, streaming, bucketing, splits, labels), gene
//! identifiers and coverage, writing, the synthetic generator, and Python
//! anndata reading what forge writes (`scripts/check_anndata_interop.py`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::Tensor;

use super::corpus::{Corpus, CorpusOptions, PreparedRow};
use super::genes::{Coverage, FileIdKind, IdSummary};
use super::loader::{DataPipeline, LoaderOptions, StreamingOptions};
use super::masking::{Masking, cell_rng};
use super::preprocess::Preprocessing;
use super::synthetic::{GeneNaming, SyntheticOptions, write_synthetic, write_synthetic_with};
use super::tokenize::{BinEdges, Strategy, Tokenizer};
use super::*;
use forge_core::batch::special;
use forge_core::config::{MaskingConfig, PreprocessingConfig};

use super::test_util::{Scratch, f32s, fails, i64s, if_present, pbmc_path, strings};

fn fixture(name: &str) -> PathBuf {
    super::test_util::fixture("data", name)
}

fn h5ad_fixture(name: &str) -> PathBuf {
    super::test_util::fixture("h5ad", name)
}

fn expected() -> Value {
    super::test_util::expected("data")
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-6 * (1.0 + b.abs())
}

/// Streaming reads of `chunk_size` cells through a buffer of `shuffle_buffer`.
fn streaming(chunk_size: usize, shuffle_buffer: usize) -> Option<StreamingOptions> {
    Some(StreamingOptions {
        chunk_size,
        shuffle_buffer,
    })
}

/// Synthetic counts whose genes are named by `naming`.
fn write_named(path: &Path, n_cells: usize, n_genes: usize, naming: GeneNaming) {
    let opts = SyntheticOptions {
        n_cells,
        n_genes,
        naming,
        ..SyntheticOptions::default()
    };
    write_synthetic_with(path, &opts).unwrap();
}

fn no_preprocessing() -> PreprocessingConfig {
    PreprocessingConfig {
        normalize: None,
        target_sum: None,
        hvg_selection: None,
        log1p: false,
    }
}

// ---------------------------------------------------------------------------
// Against the Python reference
// ---------------------------------------------------------------------------

#[test]
fn preprocessing_matches_the_python_reference() {
    let all = expected();
    let t = &all["tokenizer"];
    let pre = Preprocessing {
        target_sum: Some(t["target_sum"].as_f64().unwrap()),
        log1p: true,
    };
    for (i, cell) in t["cells"].as_array().unwrap().iter().enumerate() {
        let counts = f32s(&cell["counts"]);
        let total: f64 = counts.iter().map(|&c| f64::from(c)).sum();
        let mut v = counts.clone();
        pre.apply(&mut v, total);
        let want = f32s(&cell["values"]);
        assert_eq!(v.len(), want.len());
        for (a, b) in v.iter().zip(&want) {
            assert!(close(*a, *b), "cell {i}: {v:?} vs {want:?}");
        }
    }
}

#[test]
fn tokenizers_match_the_python_reference_exactly() {
    let all = expected();
    let t = &all["tokenizer"];
    let gene_ids = i64s(&t["gene_ids"]);
    let cells: Vec<(Vec<u32>, Vec<f32>)> = t["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                i64s(&c["genes"]).into_iter().map(|g| g as u32).collect(),
                f32s(&c["values"]),
            )
        })
        .collect();
    let all_values: Vec<f32> = cells.iter().flat_map(|c| c.1.clone()).collect();
    let quantile = BinEdges::quantile(7, &all_values);
    for (a, b) in quantile.edges().iter().zip(f32s(&t["quantile_edges_7"])) {
        assert!(close(*a, b), "quantile edges {:?}", quantile.edges());
    }
    assert_eq!(
        BinEdges::uniform(11).edges(),
        f32s(&t["uniform_edges_11"]).as_slice()
    );
    for case in t["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let s = &case["settings"];
        let max_genes = s["max_genes"].as_u64().unwrap() as usize;
        let prepend_cls = s["cls"].as_bool().unwrap();
        let strategy = match name {
            "rank_value" => Strategy::RankValue,
            "binned_uniform" => Strategy::BinnedExpression {
                edges: BinEdges::uniform(s["n_bins"].as_u64().unwrap() as usize),
            },
            "binned_quantile" => Strategy::BinnedExpression {
                edges: quantile.clone(),
            },
            _ => Strategy::ContinuousProjection {
                log1p: s["log1p"].as_bool().unwrap(),
            },
        };
        let tok = Tokenizer {
            strategy,
            max_genes,
            prepend_cls,
        };
        for (i, ((genes, values), want)) in cells
            .iter()
            .zip(case["expected"].as_array().unwrap())
            .enumerate()
        {
            let got = tok.tokenize(genes, values, &gene_ids);
            assert_eq!(got.ids, i64s(&want["ids"]), "{name} cell {i}");
            let wv = f32s(&want["values"]);
            assert_eq!(got.values.len(), wv.len(), "{name} cell {i}");
            for (a, b) in got.values.iter().zip(&wv) {
                assert!(close(*a, *b), "{name} cell {i}: {:?} vs {wv:?}", got.values);
            }
            match &want["bin_ids"] {
                Value::Null => assert!(got.bin_ids.is_none(), "{name}"),
                b => assert_eq!(got.bin_ids, Some(i64s(b)), "{name} cell {i}"),
            }
            assert!(got.len() <= max_genes);
        }
    }
}

#[test]
fn masking_matches_the_python_reference_statistics() {
    let all = expected();
    let m = &all["masking"];
    let masking = Masking::from_config(
        &MaskingConfig::default(),
        m["vocab_size"].as_u64().unwrap() as usize,
    )
    .unwrap();
    for (n_maskable, want) in m["n_masked_for_n_maskable"].as_object().unwrap() {
        let n: i64 = n_maskable.parse().unwrap();
        let mut ids = vec![special::CLS];
        ids.extend((0..n).map(|i| special::FIRST_GENE_ID + i));
        for cell in 0..5 {
            let out = masking.apply(&ids, &mut cell_rng(9, 1, cell));
            let got = out.masked.iter().filter(|&&b| b).count() as u64;
            assert_eq!(got, want.as_u64().unwrap(), "n_maskable {n}");
        }
    }
    let (n_cells, len) = (
        m["stats_cells"].as_u64().unwrap(),
        m["stats_length"].as_u64().unwrap() as usize,
    );
    let (mut masked, mut mask_tok, mut random, mut kept) = (0f64, 0f64, 0f64, 0f64);
    let mut pos = vec![0f64; len];
    for cell in 0..n_cells {
        let mut rng = cell_rng(123, 0, cell);
        let mut ids = vec![special::CLS];
        ids.extend(
            (1..len).map(|_| special::FIRST_GENE_ID + rand::Rng::gen_range(&mut rng, 0..990)),
        );
        let out = masking.apply(&ids, &mut rng);
        assert!(!out.masked[0] && out.input_ids[0] == special::CLS);
        for i in 0..len {
            assert_eq!(out.masked[i], out.labels[i] != special::IGNORE_INDEX);
            if out.masked[i] {
                assert_eq!(out.labels[i], ids[i]);
                masked += 1.0;
                pos[i] += 1.0;
                if out.input_ids[i] == special::MASK {
                    mask_tok += 1.0;
                } else if out.input_ids[i] != ids[i] {
                    assert!(out.input_ids[i] >= special::FIRST_GENE_ID);
                    random += 1.0;
                } else {
                    kept += 1.0;
                }
            } else {
                assert_eq!(out.input_ids[i], ids[i]);
            }
        }
    }
    let per_cell = masked / n_cells as f64;
    assert_eq!(per_cell, m["masked_per_cell"].as_f64().unwrap());
    for (got, key) in [
        (mask_tok / masked, "frac_mask_token"),
        (random / masked, "frac_random"),
        (kept / masked, "frac_kept"),
    ] {
        let want = m[key].as_f64().unwrap();
        assert!((got - want).abs() < 0.025, "{key}: {got} vs python {want}");
    }
    // Positions are chosen uniformly: same spread as the reference.
    let freq: Vec<f64> = pos[1..].iter().map(|p| p / n_cells as f64).collect();
    let mean = freq.iter().sum::<f64>() / freq.len() as f64;
    let sd = (freq.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / freq.len() as f64).sqrt();
    assert!((mean - 7.0 / 49.0).abs() < 0.01, "{mean}");
    assert!(
        sd < 3.0 * m["frac_per_position_sd"].as_f64().unwrap(),
        "{sd}"
    );
}

#[test]
fn a_file_written_by_anndata_tokenizes_like_the_reference() {
    let all = expected();
    let want = &all["pipeline"];
    let path = fixture("pipeline.h5ad");
    let f = H5ad::open(&path).unwrap();
    assert!(
        !f.cell_rows(Matrix::X, 0, f.n_obs())
            .unwrap()
            .has_sorted_indices(),
        "the fixture was meant to have unsorted indices"
    );
    let corpus = Corpus::open(&[&path], &CorpusOptions::default()).unwrap();
    let tok = Tokenizer::rank_value(want["max_genes"].as_u64().unwrap() as usize, true);
    let pipe = DataPipeline::new(corpus, None, tok, None, &GeneMatchOptions::default()).unwrap();
    assert_eq!(pipe.vocab().len(), 4 + 12);
    for (i, cell) in want["cells"].as_array().unwrap().iter().enumerate() {
        let got = pipe.tokenize_cell(i).unwrap();
        assert_eq!(got.ids, i64s(&cell["ids"]), "cell {i}");
        for (a, b) in got.values.iter().zip(f32s(&cell["values"])) {
            assert!(close(*a, b), "cell {i}");
        }
    }
    // Cell 3 expresses nothing: CLS alone.
    assert_eq!(pipe.tokenize_cell(3).unwrap().ids, vec![special::CLS]);
    let labels = pipe.corpus().task_labels("cell_type").unwrap();
    assert_eq!(labels.codes, i64s(&want["cell_type_codes"]));
    assert_eq!(labels.classes, vec!["t0", "t1", "t2"]);
    fails(pipe.tokenize_cell(99), &["99", "8 cells"]);
}

/// The rows of a batch as (ids, values) without padding.
fn batch_rows(batch: &forge_core::batch::Batch) -> Vec<(Vec<i64>, Vec<f32>)> {
    let s = batch.seq_len() as usize;
    let ids: Vec<i64> = to_vec(batch.input_ids());
    let mask: Vec<i64> = to_vec(batch.attention_mask());
    let values: Vec<f32> = to_vec(batch.values().unwrap());
    (0..ids.len() / s.max(1))
        .map(|r| {
            let n = mask[r * s..(r + 1) * s].iter().filter(|&&m| m == 1).count();
            (
                ids[r * s..r * s + n].to_vec(),
                values[r * s..r * s + n].to_vec(),
            )
        })
        .collect()
}

/// One ranking rule on every path: cells longer than `max_genes`, with ties
/// at the cut and above it, ranked as numpy's stable argsort ranks them
/// (`ties` of `scripts/make_tokenizer_fixtures.py`), by the tokenizer
/// itself and by both loaders (the in-memory one with the settings
/// `forge embed` uses, and the streaming one).
#[test]
fn ties_keep_the_file_column_order_on_every_path() {
    let all = expected();
    let want = &all["ties"];
    let path = fixture("ties.h5ad");
    let n_vars = want["n_vars"].as_u64().unwrap() as usize;
    let gene_ids: Vec<i64> = (0..n_vars as i64)
        .map(|g| special::FIRST_GENE_ID + g)
        .collect();
    let f = H5ad::open(&path).unwrap();
    let chunk = f.cell_rows(Matrix::X, 0, f.n_obs()).unwrap();
    let opts = CorpusOptions {
        preprocessing: no_preprocessing(),
        ..CorpusOptions::default()
    };
    for case in want["cases"].as_array().unwrap() {
        let max_genes = case["max_genes"].as_u64().unwrap() as usize;
        let cls = case["cls"].as_bool().unwrap();
        let cells = case["cells"].as_array().unwrap();
        let tok = Tokenizer::rank_value(max_genes, cls);
        let check = |how: &str, i: usize, ids: &[i64], values: &[f32]| {
            assert_eq!(
                ids,
                i64s(&cells[i]["ids"]),
                "{how}: cell {i}, max_genes {max_genes}"
            );
            assert_eq!(values, f32s(&cells[i]["values"]), "{how}: cell {i}");
        };
        for i in 0..chunk.n_cells() {
            let (cols, vals) = chunk.row(i);
            let got = tok.tokenize(cols, vals, &gene_ids);
            check("Tokenizer::tokenize", i, &got.ids, &got.values);
        }
        let corpus = Corpus::open(&[&path], &opts).unwrap();
        let pipe =
            DataPipeline::new(corpus, None, tok, None, &GeneMatchOptions::default()).unwrap();
        assert_eq!(pipe.gene_ids(), &gene_ids[..]);
        let streaming = LoaderOptions {
            streaming: streaming(4, 1),
            ..LoaderOptions::inference(4)
        };
        for (how, lo) in [
            ("loader", LoaderOptions::inference(4)),
            ("streaming", streaming),
        ] {
            let loader = pipe.all().loader(lo).unwrap();
            let mut seen = 0;
            for (cells_of, batch) in collect(loader.epoch(0)) {
                for (&i, (ids, values)) in cells_of.iter().zip(batch_rows(&batch)) {
                    check(how, i, &ids, &values);
                    seen += 1;
                }
            }
            assert_eq!(seen, f.n_obs(), "{how}");
        }
    }
}

// ---------------------------------------------------------------------------
// Loader
// ---------------------------------------------------------------------------

fn synthetic_pipeline(dir: &Scratch, n_cells: usize, n_genes: usize) -> DataPipeline {
    let path = dir.path("synth.h5ad");
    write_synthetic(&path, n_cells, n_genes, 4, 1).unwrap();
    let corpus = Corpus::open(&[&path], &CorpusOptions::default()).unwrap();
    let masking = Masking::from_config(&MaskingConfig::default(), 0).unwrap();
    DataPipeline::new(
        corpus,
        None,
        Tokenizer::rank_value(64, true),
        Some(masking),
        &GeneMatchOptions::default(),
    )
    .unwrap()
}

fn collect(b: super::loader::Batches) -> Vec<(Vec<usize>, forge_core::batch::Batch)> {
    let mut b = b;
    let mut out = Vec::new();
    while let Some(r) = b.next_with_cells() {
        out.push(r.unwrap());
    }
    out
}

fn to_vec<T: tch::kind::Element + Copy>(t: &Tensor) -> Vec<T> {
    Vec::<T>::try_from(&t.flatten(0, -1)).unwrap()
}

fn same_batches(
    a: &[(Vec<usize>, forge_core::batch::Batch)],
    b: &[(Vec<usize>, forge_core::batch::Batch)],
) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.0 == y.0
                && x.1.input_ids().equal(y.1.input_ids())
                && x.1.labels().unwrap().equal(y.1.labels().unwrap())
        })
}

fn check_batch(batch: &forge_core::batch::Batch, max_len: i64) {
    let ids: Vec<i64> = to_vec(batch.input_ids());
    let mask: Vec<i64> = to_vec(batch.attention_mask());
    let labels: Vec<i64> = to_vec(batch.labels().unwrap());
    let masked: Vec<bool> = to_vec(batch.masked_positions().unwrap());
    let s = batch.seq_len() as usize;
    assert!(batch.seq_len() <= max_len);
    for (k, (((&id, &m), &l), &mk)) in ids.iter().zip(&mask).zip(&labels).zip(&masked).enumerate() {
        assert_eq!(mk, l != special::IGNORE_INDEX);
        if m == 0 {
            assert_eq!((id, l, mk), (special::PAD, special::IGNORE_INDEX, false));
        }
        if k % s == 0 && m == 1 {
            assert_eq!(id, special::CLS, "first token is CLS");
            assert!(!mk);
        }
    }
}

#[test]
fn in_memory_loader_sees_every_cell_once_in_a_fixed_order() {
    let dir = Scratch::new("mem");
    let pipe = synthetic_pipeline(&dir, 300, 200);
    let ds = pipe.all();
    let opts = LoaderOptions {
        batch_size: 32,
        num_workers: 3,
        seed: 5,
        ..LoaderOptions::default()
    };
    let loader = ds.loader(opts.clone()).unwrap();
    assert_eq!(loader.n_batches(), 10);
    let e0 = collect(loader.epoch(0));
    assert_eq!(e0.len(), 10);
    let mut seen: Vec<usize> = e0.iter().flat_map(|b| b.0.clone()).collect();
    assert_eq!(e0.last().unwrap().0.len(), 300 - 9 * 32);
    seen.sort_unstable();
    assert_eq!(seen, (0..300).collect::<Vec<_>>());
    for (_, b) in &e0 {
        check_batch(b, 64);
    }
    // Same epoch, other thread counts: identical batches.
    let one = ds
        .loader(LoaderOptions {
            num_workers: 1,
            ..opts.clone()
        })
        .unwrap();
    assert!(same_batches(&e0, &collect(one.epoch(0))));
    assert!(same_batches(&e0, &collect(loader.epoch(0))));
    // Another epoch: another order and other masks.
    let e1 = collect(loader.epoch(1));
    assert_ne!(e0[0].0, e1[0].0);
    // drop_last
    let dl = ds
        .loader(LoaderOptions {
            drop_last: true,
            ..opts.clone()
        })
        .unwrap();
    let batches = collect(dl.epoch(0));
    assert_eq!(batches.len(), 9);
    assert!(batches.iter().all(|b| b.0.len() == 32));
    // No shuffle, no masking: file order, no labels.
    let inf = ds.loader(LoaderOptions::inference(100)).unwrap();
    let b = collect(inf.epoch(0));
    assert_eq!(b[0].0, (0..100).collect::<Vec<_>>());
    assert!(b[0].1.labels().is_none() && b[0].1.masked_positions().is_none());
    // Dropping an epoch half-way stops its threads.
    let mut it = loader.epoch(2);
    assert!(it.next().unwrap().is_ok());
    drop(it);
}

#[test]
fn sharded_loaders_split_an_epoch_as_torchs_distributed_sampler() {
    let dir = Scratch::new("shard");
    let pipe = synthetic_pipeline(&dir, 45, 60);
    let ds = pipe.all();
    let opts = |rank: usize, shuffle: bool| LoaderOptions {
        batch_size: 8,
        num_workers: 2,
        seed: 11,
        shuffle,
        shard: Some(Shard {
            rank,
            world_size: 2,
            drop_last: false,
        }),
        ..LoaderOptions::default()
    };
    let mut union = Vec::new();
    for rank in 0..2 {
        let loader = ds.loader(opts(rank, true)).unwrap();
        assert_eq!(loader.n_cells(), 23);
        assert_eq!(loader.n_batches(), 3);
        let cells: Vec<usize> = collect(loader.epoch(3))
            .into_iter()
            .flat_map(|b| b.0)
            .collect();
        // This synthetic file's cells are 0..45 in order, so the sampler's
        // dataset positions are the cells themselves.
        let want = DistributedSampler::new(2, rank, true, 11, false)
            .unwrap()
            .indices(45, 3);
        assert_eq!(cells, want, "rank {rank}");
        union.extend(cells);
    }
    // 46 = 45 cells + one repeated from the front of the epoch's order.
    assert_eq!(union.len(), 46);
    union.sort_unstable();
    union.dedup();
    assert_eq!(union, (0..45).collect::<Vec<_>>());
    // Without shuffling: strided file order.
    let b = collect(ds.loader(opts(1, false)).unwrap().epoch(0));
    assert_eq!(b[0].0, vec![1, 3, 5, 7, 9, 11, 13, 15]);
    // Out-of-range ranks and streaming are refused by name.
    let rank2 = ds.loader(opts(2, true));
    fails(rank2, &["rank 2 is not below the number of replicas 2"]);
    let streamed = ds.loader(LoaderOptions {
        streaming: streaming(8, 8),
        ..opts(0, true)
    });
    fails(streamed, &["data.streaming"]);
}

#[test]
fn streaming_loader_sees_every_cell_once_and_is_reproducible() {
    let dir = Scratch::new("stream");
    let pipe = synthetic_pipeline(&dir, 300, 200);
    let ds = pipe.all();
    let opts = LoaderOptions {
        batch_size: 16,
        num_workers: 2,
        seed: 9,
        streaming: streaming(40, 50),
        ..LoaderOptions::default()
    };
    let loader = ds.loader(opts.clone()).unwrap();
    let e0 = collect(loader.epoch(0));
    assert_eq!(e0.len(), 19);
    let order: Vec<usize> = e0.iter().flat_map(|b| b.0.clone()).collect();
    let set: BTreeSet<usize> = order.iter().copied().collect();
    assert_eq!((order.len(), set.len()), (300, 300));
    assert_ne!(order, (0..300).collect::<Vec<_>>(), "cells were shuffled");
    for (_, b) in &e0 {
        check_batch(b, 64);
    }
    // Other thread counts: streaming_batches_do_not_depend_on_threads_or_prefetch.
    // Streaming and in-memory mask a cell the same way in the same epoch.
    let mem = ds
        .loader(LoaderOptions {
            streaming: None,
            ..opts.clone()
        })
        .unwrap();
    let m0 = collect(mem.epoch(0));
    let find = |batches: &[(Vec<usize>, forge_core::batch::Batch)], cell: usize| -> Vec<i64> {
        for (cells, b) in batches {
            if let Some(row) = cells.iter().position(|&c| c == cell) {
                let ids: Vec<i64> = to_vec(&b.input_ids().get(row as i64));
                let n = to_vec::<i64>(&b.attention_mask().get(row as i64))
                    .iter()
                    .sum::<i64>() as usize;
                return ids[..n].to_vec();
            }
        }
        panic!("cell {cell} not found");
    };
    for cell in [0, 17, 299] {
        assert_eq!(find(&e0, cell), find(&m0, cell), "cell {cell}");
    }
}

#[test]
fn streaming_batches_do_not_depend_on_threads_or_prefetch() {
    let dir = Scratch::new("stream-threads");
    let pipe = synthetic_pipeline(&dir, 700, 150);
    let (train, _) = pipe.split(0.2, 3).unwrap();
    let opts = LoaderOptions {
        batch_size: 8,
        drop_last: true,
        seed: 4,
        // Blocks of 300 cells: nine full read windows and a short one.
        streaming: streaming(300, 90),
        bucket_window: Some(3),
        ..LoaderOptions::default()
    };
    let run = |num_workers, prefetch| {
        let loader = train
            .loader(LoaderOptions {
                num_workers,
                prefetch,
                ..opts.clone()
            })
            .unwrap();
        collect(loader.epoch(1))
    };
    let one = run(1, 1);
    assert_eq!(one.len(), train.len() / 8);
    let cells: BTreeSet<usize> = one.iter().flat_map(|b| b.0.iter().copied()).collect();
    assert_eq!(cells.len(), train.len() / 8 * 8);
    assert!(cells.iter().all(|&c| train.contains(c)));
    for (workers, prefetch) in [(2, 1), (3, 2), (6, 4)] {
        assert!(
            same_batches(&one, &run(workers, prefetch)),
            "{workers} workers, prefetch {prefetch}"
        );
    }
    // Dropping an epoch part-way stops every thread (the drop joins them).
    let loader = train.loader(opts.clone()).unwrap();
    let mut it = loader.epoch(0);
    assert!(it.next().unwrap().is_ok());
    drop(it);
}

#[test]
fn a_read_error_while_streaming_ends_the_epoch_with_the_file_named() {
    let dir = Scratch::new("stream-error");
    let pipe = synthetic_pipeline(&dir, 600, 300);
    let path = dir.path("synth.h5ad");
    let loader = pipe
        .all()
        .loader(LoaderOptions {
            batch_size: 16,
            num_workers: 3,
            streaming: streaming(50, 40),
            ..LoaderOptions::default()
        })
        .unwrap();
    // Cut the file after the first third of the cells' entries.
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    let results: Vec<_> = loader.epoch(0).collect();
    let (last, ok) = results.split_last().unwrap();
    assert!(ok.iter().all(Result::is_ok));
    fails(last.as_ref(), &["synth.h5ad"]);
    assert!(results.len() < loader.n_batches());
}

#[test]
fn a_panicking_loader_thread_ends_the_epoch_with_an_error_not_a_hang() {
    let dir = Scratch::new("stream-panic");
    let pipe = synthetic_pipeline(&dir, 400, 100);
    for num_workers in [1, 3] {
        let loader = pipe
            .all()
            .loader(LoaderOptions {
                batch_size: 16,
                num_workers,
                seed: super::stream::PANIC_AT_SECOND_WINDOW,
                streaming: streaming(400, 100),
                ..LoaderOptions::default()
            })
            .unwrap();
        let results: Vec<_> = loader.epoch(0).collect();
        fails(results.last().unwrap().as_ref(), &["loader thread"]);
        assert!(results.len() < loader.n_batches());
    }
}

/// FNV-1a over every element of every batch (ids, attention mask, values,
/// labels, masked positions), as `FORGE_BENCH_DIGEST` does in
/// `benches/data_pipeline.rs`.
fn batch_digest(batches: &[(Vec<usize>, forge_core::batch::Batch)]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for (_, b) in batches {
        let mut fold = |t: &Tensor| {
            let v: Vec<f64> = to_vec(&t.to_kind(tch::Kind::Double));
            hash = (hash ^ t.size().iter().product::<i64>() as u64).wrapping_mul(0x100_0000_01b3);
            for x in v {
                hash = (hash ^ x.to_bits()).wrapping_mul(0x100_0000_01b3);
            }
        };
        fold(b.input_ids());
        fold(b.attention_mask());
        for t in [b.values(), b.labels(), b.masked_positions()]
            .into_iter()
            .flatten()
        {
            fold(t);
        }
    }
    hash
}

/// The batches of a masked epoch, streaming (whole counts, normalised and
/// log1p; 1 and 3 threads) and in memory, are the ones the loader gave
/// before it was simplified (issue 18): bit for bit, through these digests.
#[test]
fn batches_stay_bit_identical() {
    let dir = Scratch::new("digest");
    let path = dir.path("synth.h5ad");
    write_synthetic(&path, 700, 600, 4, 3).unwrap();
    let corpus = Corpus::open(&[&path], &CorpusOptions::default()).unwrap();
    let masking = Masking::from_config(&MaskingConfig::default(), 0).unwrap();
    let pipe = DataPipeline::new(
        corpus,
        None,
        Tokenizer::rank_value(128, true),
        Some(masking),
        &GeneMatchOptions::default(),
    )
    .unwrap();
    let streaming = streaming(100, 150);
    let mut got = Vec::new();
    for (streaming, workers) in [(streaming, 1), (streaming, 3), (None, 2)] {
        let loader = pipe
            .all()
            .loader(LoaderOptions {
                batch_size: 32,
                num_workers: workers,
                seed: 5,
                streaming,
                ..LoaderOptions::default()
            })
            .unwrap();
        got.push(format!("{:016x}", batch_digest(&collect(loader.epoch(1)))));
    }
    assert_eq!(
        got,
        ["a7328a684ccb3c8d", "a7328a684ccb3c8d", "8c33e4535d01fb1d"]
    );
}

#[test]
fn length_bucketing_cuts_padding_without_losing_cells() {
    let dir = Scratch::new("bucket");
    let pipe = synthetic_pipeline(&dir, 400, 300);
    let ds = pipe.all();
    let padding = |bucket: Option<usize>, streaming: Option<StreamingOptions>| {
        let l = ds
            .loader(LoaderOptions {
                batch_size: 16,
                num_workers: 2,
                bucket_window: bucket,
                streaming,
                mask: false,
                ..LoaderOptions::default()
            })
            .unwrap();
        let batches = collect(l.epoch(0));
        let mut cells: Vec<usize> = batches.iter().flat_map(|b| b.0.clone()).collect();
        cells.sort_unstable();
        assert_eq!(cells, (0..400).collect::<Vec<_>>());
        batches
            .iter()
            .map(|(_, b)| {
                let m: Vec<i64> = to_vec(b.attention_mask());
                m.iter().filter(|&&x| x == 0).count()
            })
            .sum::<usize>()
    };
    let stream = streaming(64, 128);
    let (plain, bucketed) = (padding(None, None), padding(Some(8), None));
    assert!(bucketed * 2 < plain, "padding {bucketed} vs {plain}");
    let (plain, bucketed) = (padding(None, stream), padding(Some(8), stream));
    assert!(
        bucketed * 2 < plain,
        "streaming padding {bucketed} vs {plain}"
    );
}

#[test]
fn validation_split_is_disjoint_stable_and_sized() {
    let dir = Scratch::new("split");
    let pipe = synthetic_pipeline(&dir, 500, 50);
    let (train, val) = pipe.split(0.2, 42).unwrap();
    let (t, v) = (train.cells(), val.cells());
    assert_eq!(t.len() + v.len(), 500);
    assert!(t.iter().all(|c| !val.contains(*c)));
    assert!((60..=140).contains(&v.len()), "{}", v.len());
    let (_, again) = pipe.split(0.2, 42).unwrap();
    assert_eq!(again.cells(), v);
    let (_, other) = pipe.split(0.2, 43).unwrap();
    assert_ne!(other.cells(), v);
    let loader = val
        .loader(LoaderOptions {
            batch_size: 7,
            ..LoaderOptions::default()
        })
        .unwrap();
    let mut seen: Vec<usize> = collect(loader.epoch(0))
        .into_iter()
        .flat_map(|b| b.0)
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, v);
    fails(pipe.split(1.0, 1), &["val_split"]);
}

#[test]
fn task_labels_come_from_obs_and_missing_keys_list_the_columns() {
    let dir = Scratch::new("labels");
    let pipe = synthetic_pipeline(&dir, 100, 50);
    fails(
        pipe.clone().with_task_labels("celltype"),
        &[
            "no column `celltype` in obs",
            "did you mean `cell_type`?",
            "available: cell_type, batch",
        ],
    );
    let pipe = synthetic_pipeline(&dir, 100, 50)
        .with_task_labels("cell_type")
        .unwrap();
    let labels = pipe.task_labels().unwrap();
    assert_eq!(labels.classes, vec!["type_0", "type_1", "type_2", "type_3"]);
    let loader = pipe.all().loader(LoaderOptions::inference(10)).unwrap();
    let batches = collect(loader.epoch(0));
    let t: Vec<i64> = to_vec(batches[0].1.task_labels().unwrap());
    assert_eq!(t, labels.codes[..10].to_vec());
}

// ---------------------------------------------------------------------------
// Corpus
// ---------------------------------------------------------------------------

#[test]
fn several_files_are_concatenated_on_shared_genes() {
    let dir = Scratch::new("multi");
    let (a, b) = (dir.path("a.h5ad"), dir.path("b.h5ad"));
    write_synthetic(&a, 30, 80, 2, 1).unwrap();
    write_synthetic(&b, 20, 50, 2, 2).unwrap();
    let c = Corpus::open(&[&a, &b], &CorpusOptions::default()).unwrap();
    assert_eq!(c.n_cells(), 50);
    assert_eq!(c.genes().len(), 50);
    assert_eq!(c.genes()[0], "GENE00001");
    assert_eq!(c.locate(29), (0, 29));
    assert_eq!(c.locate(30), (1, 0));
    let mut n = 0;
    c.for_each_cell(7, |i, row| {
        assert_eq!(i, n);
        assert!(row.genes.iter().all(|&g| g < 50));
        assert!(row.genes.windows(2).all(|w| w[0] < w[1]));
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 50);
    // Files with nothing in common are refused, naming both.
    let e = dir.path("ens.h5ad");
    write_named(&e, 5, 20, GeneNaming::Ensembl);
    let disjoint = Corpus::open(&[&a, &e], &CorpusOptions::default());
    fails(disjoint, &["share no gene", "a.h5ad", "ens.h5ad"]);
    // Unless the names come from a column they share.
    let opts = CorpusOptions {
        gene_key: Some("gene_id".into()),
        ..CorpusOptions::default()
    };
    assert_eq!(Corpus::open(&[&a, &e], &opts).unwrap().genes().len(), 20);
}

#[test]
fn raw_hvg_and_bad_inputs() {
    let raw = CorpusOptions {
        use_raw: true,
        ..CorpusOptions::default()
    };
    let c = Corpus::open(&[h5ad_fixture("gzip_raw.h5ad")], &raw).unwrap();
    assert_eq!(c.genes().len(), 12);
    let dense = h5ad_fixture("dense.h5ad");
    fails(Corpus::open(&[&dense], &raw), &["use_raw", "dense.h5ad"]);

    let dir = Scratch::new("hvg");
    // HVG selection is `forge preprocess`'s; reading cells refuses it.
    let hvg = CorpusOptions {
        preprocessing: PreprocessingConfig {
            hvg_selection: Some(30),
            ..PreprocessingConfig::default()
        },
        ..CorpusOptions::default()
    };
    fails(
        Corpus::open(&[&dense], &hvg),
        &["hvg_selection", "forge preprocess"],
    );

    let open = |paths: &[PathBuf]| Corpus::open(paths, &CorpusOptions::default());
    fails(open(&[]), &["data.paths"]);
    fails(open(&[h5ad_fixture("empty.h5ad")]), &["0 cells"]);
    let text = dir.path("t.h5ad");
    std::fs::write(&text, "not hdf5").unwrap();
    fails(open(&[text]), &["t.h5ad", "not an HDF5 file"]);
}

// ---------------------------------------------------------------------------
// Gene identifiers (issue 8)
// ---------------------------------------------------------------------------

#[test]
fn duplicate_genes_are_summed_into_one() {
    let all = expected();
    let want = &all["genes"]["genes_dup"];
    let opts = CorpusOptions {
        preprocessing: no_preprocessing(),
        ..CorpusOptions::default()
    };
    let c = Corpus::open(&[fixture("genes_dup.h5ad")], &opts).unwrap();
    assert_eq!(c.genes(), ["CD3E", "LYZ", "ENSG00000001000.1", "MS4A1"]);
    let rows: Vec<Vec<f32>> = want["rows"].as_array().unwrap().iter().map(f32s).collect();
    let mut row = PreparedRow::default();
    for (i, r) in rows.iter().enumerate() {
        let chunk = c.read_chunk(0, i, i + 1).unwrap();
        let (cols, vals) = chunk.row(0);
        c.prepare(0, cols, vals, &mut row);
        let merged = [r[0] + r[2], r[1], r[3] + r[4], r[5]];
        let mut dense = [0f32; 4];
        for (&g, &v) in row.genes.iter().zip(&row.values) {
            dense[g as usize] = v;
        }
        assert_eq!(dense, merged, "row {i}");
    }
    let s = IdSummary::of(&strings(&want["var_names"]));
    assert_eq!((s.duplicates, s.versioned), (2, 2));
}

#[test]
fn identifier_kinds_are_reported() {
    let all = expected();
    let s = IdSummary::of(&strings(&all["genes"]["genes_mixed"]["var_names"]));
    assert_eq!(s.kind(), FileIdKind::Mixed);
    assert_eq!((s.ensembl_human, s.symbols), (2, 4), "ENSA is a symbol");
}

#[test]
fn coverage_accepts_versions_and_refuses_the_wrong_identifiers() {
    let dir = Scratch::new("coverage");
    let write = |name: &str, naming| {
        let p = dir.path(name);
        write_named(&p, 60, 40, naming);
        p
    };
    let ens = write("ens.h5ad", GeneNaming::Ensembl);
    let versioned = write("ver.h5ad", GeneNaming::EnsemblVersioned);
    let symbols = write("sym.h5ad", GeneNaming::Symbols);
    let vocab = GeneVocab::from_genes(
        Corpus::open(&[&ens], &CorpusOptions::default())
            .unwrap()
            .genes(),
    );
    let opts = GeneMatchOptions::default();
    let cov = check_coverage(&versioned, Matrix::X, None, &vocab, &opts).unwrap();
    assert_eq!((cov.n_found, cov.n_genes), (40, 40));
    assert_eq!(cov.expression_share, Some(1.0));
    assert!(
        cov.summary_line().contains("40 of 40"),
        "{}",
        cov.summary_line()
    );

    fails(
        check_coverage(&symbols, Matrix::X, None, &vocab, &opts),
        &[
            "sym.h5ad",
            "too few of the file's genes",
            "0 of 40",
            "gene symbols",
            "Ensembl gene ids",
            "data.gene_key",
            "gene_id",
            "most-expressed missing genes: GENE",
        ],
    );
    // The right column fixes it.
    let cov = check_coverage(&symbols, Matrix::X, Some("gene_id"), &vocab, &opts).unwrap();
    assert_eq!(cov.n_found, 40);
    // A pipeline given a vocabulary checks coverage itself.
    let corpus = Corpus::open(&[&symbols], &CorpusOptions::default()).unwrap();
    let tok = Tokenizer::rank_value(8, true);
    let pipe = DataPipeline::new(corpus, Some(vocab.clone()), tok, None, &opts);
    fails(pipe, &["data.gene_key"]);

    // Case-insensitive symbol matching.
    let lower = GeneVocab::from_genes((1..=40).map(|j| format!("gene{j:05}")));
    let f = H5ad::open(&symbols).unwrap();
    let names = f.var_names(Matrix::X).unwrap().to_vec();
    let strict = Coverage::measure(&f, Matrix::X, &names, None, &lower, false).unwrap();
    assert_eq!(strict.n_found, 0);
    assert!(
        strict.advice().contains("case-insensitive"),
        "{}",
        strict.advice()
    );
    let loose = Coverage::measure(&f, Matrix::X, &names, None, &lower, true).unwrap();
    assert_eq!(loose.n_found, 40);
    // Partial overlap: the expression share decides.
    let half = GeneVocab::from_genes(names[..20].iter());
    let cov = Coverage::measure(&f, Matrix::X, &names, None, &half, false).unwrap();
    assert_eq!(cov.n_found, 20);
    let share = cov.expression_share.unwrap();
    assert!(share > 0.0 && share < 1.0);
    assert!(cov.check(share - 1e-9).is_ok() && cov.check(share + 1e-3).is_err());
}

// ---------------------------------------------------------------------------
// Writing, synthetic data, Python interop
// ---------------------------------------------------------------------------

#[test]
fn embeddings_are_added_to_a_copy() {
    let dir = Scratch::new("embed");
    let input = dir.path("in.h5ad");
    write_synthetic(&input, 25, 30, 2, 3).unwrap();
    let before = std::fs::read(&input).unwrap();
    let out = dir.path("out/embedded.h5ad");
    let emb: Vec<f32> = (0..25 * 4).map(|i| i as f32 * 0.5).collect();
    write_embeddings(&input, &out, "X_forge", &emb, 4).unwrap();
    assert_eq!(std::fs::read(&input).unwrap(), before, "input untouched");
    let f = H5ad::open(&out).unwrap();
    assert_eq!(f.obsm("X_forge").unwrap(), (emb.clone(), 4));
    assert_eq!(f.n_obs(), 25);
    assert_eq!(
        f.cell_rows(Matrix::X, 0, 25).unwrap(),
        H5ad::open(&input)
            .unwrap()
            .cell_rows(Matrix::X, 0, 25)
            .unwrap()
    );
    // Writing again replaces the key.
    let emb2: Vec<f32> = emb.iter().map(|v| -v).collect();
    write_embeddings(&out, &dir.path("again.h5ad"), "X_forge", &emb2, 4).unwrap();
    let g = H5ad::open(dir.path("again.h5ad")).unwrap();
    assert_eq!(g.obsm("X_forge").unwrap().0, emb2);
    assert_eq!(g.obsm_keys().unwrap(), vec!["X_forge"]);
    fails(g.obsm("X_pca"), &["X_pca", "X_forge"]);
    // Bad calls are refused, and leave no file behind.
    let bad = dir.path("bad.h5ad");
    let short = write_embeddings(&input, &bad, "X_forge", &emb[..10], 4);
    fails(short, &["25 × 4 = 100", "got 10"]);
    assert!(write_embeddings(&input, &bad, "a/b", &emb, 4).is_err());
    assert!(write_embeddings(&input, &input, "X_forge", &emb, 4).is_err());
    assert!(!bad.exists());
}

#[test]
fn embeddings_on_the_old_layout_keep_the_old_obsm() {
    let Some(pbmc) = if_present(pbmc_path()) else {
        return;
    };
    let dir = Scratch::new("embed-old");
    let out = dir.path("pbmc_forge.h5ad");
    let emb: Vec<f32> = (0..700 * 3).map(|i| i as f32).collect();
    write_embeddings(&pbmc, &out, "X_forge", &emb, 3).unwrap();
    let f = H5ad::open(&out).unwrap();
    assert_eq!(f.layout(), super::h5ad::AnnDataLayout::Old);
    let mut keys = f.obsm_keys().unwrap();
    keys.sort();
    assert_eq!(keys, vec!["X_forge", "X_pca", "X_umap"]);
    assert_eq!(f.obsm("X_forge").unwrap().1, 3);
    assert_eq!(f.obsm("X_pca").unwrap().1, 50);
    assert_eq!(f.obsm("X_umap").unwrap().1, 2);
}

#[test]
fn synthetic_data_is_sparse_counts_with_learnable_types() {
    let dir = Scratch::new("synth");
    let p = dir.path("s.h5ad");
    write_synthetic(&p, 600, 400, 3, 11).unwrap();
    let f = H5ad::open(&p).unwrap();
    assert_eq!((f.n_obs(), f.n_vars(Matrix::X).unwrap()), (600, 400));
    let s = f.stats(Matrix::X).unwrap();
    assert!(s.looks_like_counts());
    let nz = s.frac_nonzero();
    assert!((0.07..0.13).contains(&nz), "nonzero fraction {nz}");
    let chunk = f.cell_rows(Matrix::X, 0, 600).unwrap();
    assert!(chunk.has_sorted_indices());
    let types = match f.obs_column("cell_type").unwrap() {
        super::h5ad::Column::Categorical { codes, categories } => {
            assert_eq!(categories, vec!["type_0", "type_1", "type_2"]);
            codes
        }
        other => panic!("{other:?}"),
    };
    // Nearest-centroid on log-normalised profiles, fitted on half the cells,
    // classifies the other half: the types are learnable.
    let pre = Preprocessing {
        target_sum: Some(1e4),
        log1p: true,
    };
    let profile = |i: usize| {
        let (cols, vals) = chunk.row(i);
        let mut v = vals.to_vec();
        pre.apply(&mut v, vals.iter().map(|&x| f64::from(x)).sum());
        let mut d = vec![0f32; 400];
        for (&c, x) in cols.iter().zip(v) {
            d[c as usize] = x;
        }
        d
    };
    let mut centroids = vec![vec![0f32; 400]; 3];
    let mut counts = [0f32; 3];
    for (i, &t) in types.iter().enumerate().take(300) {
        let t = t as usize;
        counts[t] += 1.0;
        for (c, x) in centroids[t].iter_mut().zip(profile(i)) {
            *c += x;
        }
    }
    for (c, n) in centroids.iter_mut().zip(counts) {
        c.iter_mut().for_each(|x| *x /= n);
    }
    let correct = (300..600)
        .filter(|&i| {
            let p = profile(i);
            let dist = |c: &Vec<f32>| c.iter().zip(&p).map(|(a, b)| (a - b).powi(2)).sum::<f32>();
            let best = (0..3)
                .min_by(|&a, &b| dist(&centroids[a]).total_cmp(&dist(&centroids[b])))
                .unwrap();
            best == types[i] as usize
        })
        .count();
    assert!(correct > 270, "nearest centroid got {correct}/300");
    // Same seed, same file content.
    let q = dir.path("t.h5ad");
    write_synthetic(&q, 600, 400, 3, 11).unwrap();
    assert_eq!(
        H5ad::open(&q)
            .unwrap()
            .cell_rows(Matrix::X, 0, 600)
            .unwrap(),
        chunk
    );
    fails(
        write_synthetic(&dir.path("z.h5ad"), 0, 10, 2, 1),
        &["n_cells"],
    );
}

/// Python's anndata reads the files forge writes. Requires the project's
/// `.venv` (installed by scripts/setup.sh); skipped with a note without it.
#[test]
fn anndata_reads_what_forge_writes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let Some(python) = if_present(root.join(".venv/bin/python")) else {
        return;
    };
    let dir = Scratch::new("interop");
    let synth = dir.path("synth.h5ad");
    write_synthetic(&synth, 40, 30, 3, 2).unwrap();
    let emb: Vec<f32> = (0..40 * 5).map(|i| (i as f32).sin()).collect();
    let embedded = dir.path("synth_emb.h5ad");
    write_embeddings(&synth, &embedded, "X_forge", &emb, 5).unwrap();
    let f = H5ad::open(&synth).unwrap();
    let chunk = f.cell_rows(Matrix::X, 0, 40).unwrap();
    let Ok(super::h5ad::Column::Categorical { codes, .. }) = f.obs_column("cell_type") else {
        panic!("cell_type");
    };
    let mut files = vec![serde_json::json!({
        "path": synth,
        "n_obs": 40,
        "n_vars": 30,
        "nnz": chunk.nnz(),
        "x_sum": chunk.data.iter().map(|&v| f64::from(v)).sum::<f64>(),
        "row0": chunk.to_dense()[..30].to_vec(),
        "obs": {"cell_type": codes, "batch": null},
        "var_names_head": f.var_names(Matrix::X).unwrap()[..3].to_vec(),
    })];
    files.push(serde_json::json!({
        "path": embedded, "n_obs": 40, "n_vars": 30, "nnz": chunk.nnz(),
        "obsm": {"X_forge": {"shape": [40, 5], "values": emb}},
    }));
    let pbmc = root.join("data/pbmc68k_reduced.h5ad");
    if pbmc.exists() {
        let out = dir.path("pbmc_emb.h5ad");
        let e: Vec<f32> = (0..700 * 2).map(|i| i as f32).collect();
        write_embeddings(&pbmc, &out, "X_forge", &e, 2).unwrap();
        files.push(serde_json::json!({
            "path": out, "n_obs": 700, "n_vars": 765,
            "obsm": {"X_forge": {"shape": [700, 2], "values": e}},
            "obsm_same_as": {"original": pbmc, "keys": ["X_pca", "X_umap"]},
        }));
    }
    let spec = dir.path("spec.json");
    std::fs::write(&spec, serde_json::to_string(&files).unwrap()).unwrap();
    let out = std::process::Command::new(&python)
        .arg(root.join("scripts/check_anndata_interop.py"))
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check_anndata_interop.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gene_matching_follows_the_data_config() {
    let dir = Scratch::new("gene_config");
    let symbols = dir.path("sym.h5ad");
    write_synthetic(&symbols, 30, 20, 5, 0).unwrap();
    // The vocabulary spells the same symbols in lower case.
    let vocab_path = dir.path("gene_vocab.json");
    GeneVocab::from_genes((1..=20).map(|j| format!("gene{j:05}")))
        .save(&vocab_path)
        .unwrap();
    let config = |extra: &str| {
        let yaml = format!(
            "data:\n  paths: [{}]\n  gene_vocab: {}\n{extra}",
            symbols.display(),
            vocab_path.display()
        );
        forge_core::ForgeConfig::from_yaml_str(&yaml, "test.yaml").unwrap()
    };

    fails(
        DataPipeline::from_config(&config("")),
        &["data.case_insensitive_genes", "data.min_gene_coverage"],
    );
    let loose = DataPipeline::from_config(&config("  case_insensitive_genes: true\n")).unwrap();
    assert_eq!(loose.coverage()[0].n_found, 20);
    // A threshold of 0 turns the refusal into a summary.
    let unchecked = DataPipeline::from_config(&config("  min_gene_coverage: 0\n")).unwrap();
    assert_eq!(unchecked.coverage()[0].n_found, 0);

    let bad = forge_core::ForgeConfig::from_yaml_str("data:\n  min_gene_coverage: 1.5\n", "x");
    fails(bad, &["data.min_gene_coverage", "[0, 1]"]);
    assert_eq!(
        forge_core::config::DataConfig::default().min_gene_coverage,
        super::genes::DEFAULT_MIN_COVERAGE
    );
}

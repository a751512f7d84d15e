use forge_core::data::rank_counts::CountRanker;
use forge_core::data::*;
use std::time::Instant;
fn main() {
    let f = std::env::args().nth(1).unwrap();
    let corpus = Corpus::open(&[f.as_str()], &CorpusOptions::default()).unwrap();
    let vocab = GeneVocab::from_genes(corpus.genes());
    let gene_ids = corpus.gene_ids(&vocab);
    let cols = corpus.column_tokens(0, &gene_ids);
    let chunk = corpus.read_chunk(0, 0, 10000).unwrap();
    let tok = Tokenizer::rank_value(2048, true);
    let pre = corpus.preprocessing().clone();
    let mut r = CountRanker::default();
    let mut out = TokenizedCell::default();
    let mut n = 0usize;
    let t = Instant::now();
    for _ in 0..5 {
        for i in 0..chunk.n_cells() {
            let (c, v) = chunk.row(i);
            assert!(tok.tokenize_counts(c, v, &cols, &pre, &mut r, &mut out));
            n += out.ids.len();
        }
    }
    let e = t.elapsed().as_secs_f64();
    println!("fast: {:.2} us/cell ({n})", e * 1e6 / 50000.0);
    let mut row = PreparedRow::default();
    let mut scratch = Vec::new();
    let mut n2 = 0usize;
    let t = Instant::now();
    for _ in 0..5 {
        for i in 0..chunk.n_cells() {
            let (c, v) = chunk.row(i);
            corpus.prepare(0, c, v, &mut row);
            tok.tokenize_into(&row.genes, &row.values, &gene_ids, &mut out, &mut scratch);
            n2 += out.ids.len();
        }
    }
    let e = t.elapsed().as_secs_f64();
    println!("general: {:.2} us/cell ({n2})", e * 1e6 / 50000.0);
}

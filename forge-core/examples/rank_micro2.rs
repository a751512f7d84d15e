use forge_core::data::*;
use std::time::Instant;
fn main() {
    let f = std::env::args().nth(1).unwrap();
    let corpus = Corpus::open(&[f.as_str()], &CorpusOptions::default()).unwrap();
    for cells in [10000usize, 200] {
        let chunk = corpus.read_chunk(0, 0, cells).unwrap();
        let reps = 50000 / cells;
        let t = Instant::now();
        let mut s = 0f64;
        let mut si = 0u64;
        for _ in 0..reps {
            for i in 0..chunk.n_cells() {
                let (c, v) = chunk.row(i);
                for (&c, &v) in c.iter().zip(v) {
                    s += v as f64;
                    si += c as u64;
                }
            }
        }
        println!(
            "{cells} cells: sum pass: {:.2} us/cell {s} {si}",
            t.elapsed().as_secs_f64() * 1e6 / 50000.0
        );
        let cols = corpus.column_tokens(0, &(0..10000i64).map(|i| i + 4).collect::<Vec<_>>());
        let pre = corpus.preprocessing().clone();
        let tok = Tokenizer::rank_value(2048, true);
        let mut r = forge_core::data::rank_counts::CountRanker::default();
        let mut out = TokenizedCell::default();
        let t = Instant::now();
        for _ in 0..reps {
            for i in 0..chunk.n_cells() {
                let (c, v) = chunk.row(i);
                tok.tokenize_counts(c, v, &cols, &pre, &mut r, &mut out);
            }
        }
        println!(
            "{cells} cells: rank: {:.2} us/cell",
            t.elapsed().as_secs_f64() * 1e6 / 50000.0
        );
    }
}

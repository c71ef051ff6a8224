//! Scoring: batched sentences are bit-identical to sentences scored one at a time and for any
//! thread count, agree with the reference model, and a stream scored in pieces agrees with
//! evaluation.

use rnnlm::inference::score::{ScoreError, SentenceScorer, StreamScorer};
use rnnlm::reference::ReferenceRnnlm;
use rnnlm::rng::Rng;
use rnnlm::{Arch, Cell, Dims, Rnnlm, Softmax, Window};

const START: u32 = 0;

/// A model of `cell` whose weights are large enough for the scores to differ from token to
/// token (the initialisation alone gives nearly uniform predictions).
fn params(cell: Cell, layers: usize, tied: bool) -> (Arch, Vec<f32>) {
    let dims = Dims { vocab: 37, embed: 11, hidden: 11 };
    let arch = Arch { dims, cell, layers, tied, output: Softmax::Full };
    let mut params = Rnnlm::new(arch, Window { batch: 1, time: 1 }, 5).unwrap().into_params();
    for p in &mut params {
        *p *= 2.0;
    }
    (arch, params)
}

fn every_arch() -> Vec<(Arch, Vec<f32>)> {
    vec![
        params(Cell::Rnn, 1, false),
        params(Cell::Lstm, 2, false),
        params(Cell::Gru, 1, false),
        params(Cell::Lstm, 1, true),
    ]
}

/// Sentences of awkward lengths (1 to 40 tokens, each ending with the end token 0), back to
/// back, and their lengths.
fn sentences(count: usize, vocab: u32, seed: u64) -> (Vec<u32>, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let mut ids = Vec::new();
    let mut lengths = Vec::new();
    for _ in 0..count {
        let len = 1 + (rng.next_u64() % 40) as usize;
        ids.extend((1..len).map(|_| 1 + (rng.next_u64() % (vocab as u64 - 1)) as u32));
        ids.push(0);
        lengths.push(len);
    }
    (ids, lengths)
}

fn score(arch: Arch, params: &[f32], window: Window, ids: &[u32], lengths: &[usize]) -> Vec<f32> {
    let model = Rnnlm::from_params(arch, window, params).unwrap();
    let mut scorer = SentenceScorer::new(model, START).unwrap();
    let mut losses = vec![f32::NAN; ids.len()];
    scorer.score(ids, lengths, &mut losses).unwrap();
    losses
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn batched_sentences_are_bit_identical_to_one_at_a_time() {
    for (arch, params) in every_arch() {
        let (ids, lengths) = sentences(45, arch.dims.vocab as u32, 3);
        let alone: Vec<f32> = {
            let model = Rnnlm::from_params(arch, Window { batch: 1, time: 6 }, &params).unwrap();
            let mut scorer = SentenceScorer::new(model, START).unwrap();
            let mut losses = Vec::new();
            let mut offset = 0;
            for &len in &lengths {
                let mut one = vec![f32::NAN; len];
                scorer.score(&ids[offset..offset + len], &[len], &mut one).unwrap();
                losses.extend(one);
                offset += len;
            }
            losses
        };
        assert!(alone.iter().all(|l| l.is_finite() && *l > 0.0), "{arch:?}");
        for window in [Window { batch: 8, time: 6 }, Window { batch: 13, time: 6 }, Window { batch: 64, time: 6 }] {
            let batched = score(arch, &params, window, &ids, &lengths);
            assert_eq!(bits(&batched), bits(&alone), "{arch:?} {window:?}");
        }
        // The window's length changes where the state is carried from window to window, not
        // the arithmetic of a step.
        let other_time = score(arch, &params, Window { batch: 7, time: 4 }, &ids, &lengths);
        assert_eq!(bits(&other_time), bits(&alone), "{arch:?}, T = 4");
    }
}

#[test]
fn sentence_scores_do_not_depend_on_the_thread_count() {
    for (arch, params) in every_arch() {
        let (ids, lengths) = sentences(40, arch.dims.vocab as u32, 4);
        let window = Window { batch: 16, time: 5 };
        let runs: Vec<Vec<u32>> = [1, 2, 3]
            .iter()
            .map(|&threads| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                bits(&pool.install(|| score(arch, &params, window, &ids, &lengths)))
            })
            .collect();
        assert_eq!(runs[0], runs[1], "{arch:?}: 1 and 2 threads");
        assert_eq!(runs[0], runs[2], "{arch:?}: 1 and 3 threads");
    }
}

/// f32 losses summed in f64 against the f64 reference: each loss is a log-sum-exp of f32 logits
/// (relative error a few 1e-7 of the logits' size, here below 10) after up to 40 steps of f32
/// recurrence, whose rounding the weights (doubled) amplify a little. Measured: at most 1.6e-7
/// of the sentence's loss plus 1; the bound is 1e-5.
#[test]
fn sentence_scores_agree_with_the_reference() {
    for (arch, params) in every_arch() {
        let (ids, lengths) = sentences(20, arch.dims.vocab as u32, 5);
        let losses = score(arch, &params, Window { batch: 8, time: 7 }, &ids, &lengths);
        let mut offset = 0;
        for &len in &lengths {
            let sentence = &ids[offset..offset + len];
            let xs: Vec<u32> = std::iter::once(START).chain(sentence[..len - 1].iter().copied()).collect();
            let ts: Vec<i32> = sentence.iter().map(|&id| id as i32).collect();
            let mut reference = ReferenceRnnlm::<f64>::from_params(arch, Window { batch: 1, time: len }, &params);
            let want = reference.forward(&xs, &ts) * len as f64;
            let got: f64 = losses[offset..offset + len].iter().map(|&l| l as f64).sum();
            assert!((got - want).abs() <= 1e-5 * (want.abs() + 1.0), "{arch:?}: {got} vs {want}");
            offset += len;
        }
    }
}

#[test]
fn a_stream_in_pieces_scores_as_one_and_as_evaluation_does() {
    for (arch, params) in every_arch() {
        let (ids, _) = sentences(10, arch.dims.vocab as u32, 6);
        let time = 5;
        let stream = |cuts: &[usize]| -> Vec<f32> {
            let model = Rnnlm::from_params(arch, Window { batch: 1, time }, &params).unwrap();
            let mut scorer = StreamScorer::new(model, ids[0]).unwrap();
            let mut losses = vec![f32::NAN; ids.len() - 1];
            let mut from = 1;
            for &to in cuts.iter().chain(std::iter::once(&ids.len())) {
                scorer.score(&ids[from..to], &mut losses[from - 1..to - 1]).unwrap();
                from = to;
            }
            losses
        };
        let whole = stream(&[]);
        assert_eq!(bits(&stream(&[2, 3, 9, 30, 31, 32, 33])), bits(&whole), "{arch:?}");
        assert_eq!(bits(&stream(&[6, 11, 16])), bits(&whole), "{arch:?}");

        // Evaluation with a 1 x T window predicts ids[1..] from ids[0], window by window.
        let windows = (ids.len() - 1) / time;
        let mut model = Rnnlm::from_params(arch, Window { batch: 1, time }, &params).unwrap();
        let corpus = &ids[..windows * time + 1];
        let mut total = 0.0f64;
        for k in 0..windows {
            let xs = &corpus[k * time..(k + 1) * time];
            let ts: Vec<i32> = corpus[k * time + 1..(k + 1) * time + 1].iter().map(|&id| id as i32).collect();
            total += model.forward(xs, &ts).unwrap() as f64;
        }
        let evaluated = total / windows as f64;
        let scored = whole[..windows * time].iter().map(|&l| l as f64).sum::<f64>() / (windows * time) as f64;
        assert!((scored - evaluated).abs() <= 1e-6 * evaluated, "{arch:?}: {scored} vs {evaluated}");
    }
}

#[test]
fn bad_input_is_refused_naming_the_sentence() {
    let (arch, params) = params(Cell::Rnn, 1, false);
    let model = Rnnlm::from_params(arch, Window { batch: 2, time: 3 }, &params).unwrap();
    let mut scorer = SentenceScorer::new(model, START).unwrap();
    let mut losses = vec![0.0; 5];
    assert_eq!(scorer.score(&[1, 0, 2, 3, 0], &[2, 0, 3], &mut losses), Err(ScoreError::EmptySentence { sentence: 1 }));
    assert!(matches!(scorer.score(&[1, 0, 2, 3, 0], &[2, 2], &mut losses), Err(ScoreError::WrongLength { .. })));
    assert!(matches!(scorer.score(&[1, 0, 2, 3, 0], &[2, 3], &mut losses[..4]), Err(ScoreError::WrongLength { .. })));
    let error = scorer.score(&[1, 0, 2, 99, 0], &[2, 3], &mut losses).unwrap_err();
    assert_eq!(error, ScoreError::TokenOutOfRange { sentence: 1, position: 1, id: 99, vocab: 37 });
    assert_eq!(error.to_string(), "token 1 of sentence 1 has id 99, outside the model's vocabulary 0..37");
    let model = Rnnlm::from_params(arch, Window { batch: 1, time: 3 }, &params).unwrap();
    assert!(SentenceScorer::new(model, 37).is_err(), "a start token outside the vocabulary");
    let model = Rnnlm::from_params(arch, Window { batch: 2, time: 3 }, &params).unwrap();
    assert!(StreamScorer::new(model, 0).is_err(), "a stream needs one batch row");
}

//! A supervised view beside the vote: word n-gram TF-IDF features and a
//! logistic regression fitted on the labelled references.
//!
//! The k nearest references see a text's closest neighbours; a linear model
//! fitted on every reference sees which words and word pairs separate people
//! from machines across the whole set. It is refitted from the reference
//! texts whenever they change (seconds on a CPU, no trained weights, no
//! encoder), so a few references of a new generator move it as they move
//! the vote. Its probability is blended with the vote's score (see
//! [`Verdict::blend_classifier`](super::Verdict::blend_classifier)); the
//! majority label stays the vote's.
//!
//! Features: the text is lower-cased and cut into words (runs of two or more
//! letters, digits or `_`, as the usual TF-IDF tokenizers do); every word
//! and every pair of adjacent words is one term, named by a 64-bit FNV-1a
//! hash. Terms in fewer than `min_df` references are dropped; the vector is
//! `(1 + ln tf) * idf` with `idf = ln((1 + n) / (1 + df)) + 1`, scaled to
//! unit length. The regression minimises `|w|^2 / 2 + C * sum_i s_i *
//! logloss_i` with class-balanced sample weights `s_i` (L-BFGS).
use std::collections::HashMap;

use super::logistic::{fit_logistic, sigmoid, Rows};
use crate::store::Label;

/// Weight of the classifier in the score by default: the weight with the
/// best validation AUROC for the shipped default model, on the references
/// alone (`docs/eval/default-classifier-weight.md`).
pub const DEFAULT_WEIGHT: f64 = 0.2;

/// Characters of a text the features read (as the lexical view).
pub const MAX_CHARS: usize = 32_768;

/// How the classifier is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassifierConfig {
    /// Inverse regularisation strength.
    pub c: f64,
    /// Fewest references a term must occur in.
    pub min_df: u32,
    /// Most terms kept (the most frequent by document frequency).
    pub max_terms: usize,
    /// L-BFGS iterations at most.
    pub max_iter: usize,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            c: 10.0,
            min_df: 2,
            max_terms: 200_000,
            max_iter: 500,
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// The terms of `text` (word and adjacent-word-pair hashes) with their
/// counts, sorted by hash.
pub fn terms(text: &str) -> Vec<(u64, u32)> {
    let mut words: Vec<u64> = Vec::new();
    let mut word = String::new();
    let mut len = 0usize;
    let flush = |word: &mut String, len: &mut usize, words: &mut Vec<u64>| {
        if *len >= 2 {
            words.push(fnv(word.as_bytes()));
        }
        word.clear();
        *len = 0;
    };
    for c in text.chars().take(MAX_CHARS) {
        if c.is_alphanumeric() || c == '_' {
            word.extend(c.to_lowercase());
            len += 1;
        } else {
            flush(&mut word, &mut len, &mut words);
        }
    }
    flush(&mut word, &mut len, &mut words);
    let mut all: Vec<u64> = Vec::with_capacity(words.len() * 2);
    all.extend(&words);
    all.extend(
        words
            .windows(2)
            .map(|p| (p[0].rotate_left(17) ^ p[1]).wrapping_mul(FNV_PRIME) ^ 0x9e37_79b9_7f4a_7c15),
    );
    all.sort_unstable();
    let mut out: Vec<(u64, u32)> = Vec::with_capacity(all.len());
    for h in all {
        match out.last_mut() {
            Some((last, n)) if *last == h => *n += 1,
            _ => out.push((h, 1)),
        }
    }
    out
}

/// A fitted classifier: the term vocabulary with its IDF weights and the
/// regression's weights.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// Term hash -> feature index.
    vocab: HashMap<u64, u32>,
    idf: Vec<f32>,
    weights: Vec<f64>,
    bias: f64,
    /// References it was fitted on.
    pub fitted_on: usize,
    /// L-BFGS iterations the fit took.
    pub iterations: usize,
}

impl Classifier {
    /// Fits on labelled texts; `None` when either label is missing.
    pub fn fit(texts: &[&str], labels: &[Label], cfg: &ClassifierConfig) -> Option<Self> {
        assert_eq!(texts.len(), labels.len());
        let n_machine = labels.iter().filter(|l| **l == Label::Machine).count();
        let n = texts.len();
        if n_machine == 0 || n_machine == n {
            return None;
        }
        use rayon::prelude::*;
        let docs: Vec<Vec<(u64, u32)>> = texts.par_iter().map(|t| terms(t)).collect();
        let mut df: HashMap<u64, u32> = HashMap::new();
        for d in &docs {
            for (h, _) in d {
                *df.entry(*h).or_default() += 1;
            }
        }
        let mut kept: Vec<(u64, u32)> = df.into_iter().filter(|(_, c)| *c >= cfg.min_df).collect();
        // Most frequent first, ties by hash: the same vocabulary every run.
        kept.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        kept.truncate(cfg.max_terms);
        let vocab: HashMap<u64, u32> = kept
            .iter()
            .enumerate()
            .map(|(i, (h, _))| (*h, i as u32))
            .collect();
        let idf: Vec<f32> = kept
            .iter()
            .map(|(_, c)| (((1 + n) as f64 / (1 + *c) as f64).ln() + 1.0) as f32)
            .collect();
        let mut model = Self {
            vocab,
            idf,
            weights: Vec::new(),
            bias: 0.0,
            fitted_on: n,
            iterations: 0,
        };
        let mut rows = Rows {
            ptr: vec![0],
            idx: Vec::new(),
            val: Vec::new(),
        };
        for d in &docs {
            for (i, v) in model.features(d) {
                rows.idx.push(i);
                rows.val.push(v);
            }
            rows.ptr.push(rows.idx.len());
        }
        let y: Vec<f64> = labels
            .iter()
            .map(|l| f64::from(u8::from(*l == Label::Machine)))
            .collect();
        // Balanced: each class weighs as much as the other in total.
        let (wm, wh) = (
            n as f64 / (2.0 * n_machine as f64),
            n as f64 / (2.0 * (n - n_machine) as f64),
        );
        let s: Vec<f64> = y.iter().map(|&t| if t > 0.5 { wm } else { wh }).collect();
        let (w, iterations) = fit_logistic(&rows, &y, &s, model.idf.len(), cfg);
        model.bias = w[model.idf.len()];
        model.weights = w;
        model.weights.truncate(model.idf.len());
        model.iterations = iterations;
        Some(model)
    }

    /// Unit-length TF-IDF features of a text's terms.
    fn features(&self, terms: &[(u64, u32)]) -> Vec<(u32, f32)> {
        let mut f: Vec<(u32, f32)> = terms
            .iter()
            .filter_map(|(h, c)| {
                self.vocab
                    .get(h)
                    .map(|&i| (i, (1.0 + (*c as f32).ln()) * self.idf[i as usize]))
            })
            .collect();
        let norm = f.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            for (_, v) in &mut f {
                *v /= norm;
            }
        }
        f
    }

    /// Probability that `text` is machine-written; `None` when no term of
    /// the text is in the vocabulary (another language or script, say):
    /// the model knows nothing about it.
    pub fn predict(&self, text: &str) -> Option<f64> {
        let f = self.features(&terms(text));
        if f.is_empty() {
            return None;
        }
        let z = f
            .iter()
            .map(|(i, v)| self.weights[*i as usize] * f64::from(*v))
            .sum::<f64>()
            + self.bias;
        Some(sigmoid(z))
    }

    /// Terms in the vocabulary.
    pub fn terms(&self) -> usize {
        self.idf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_words_and_word_pairs_case_folded() {
        let t = terms("The cat, the CAT! a");
        // the, cat (2 each); "the cat" (2), "cat the" (1); "a" is too short.
        assert_eq!(t.iter().map(|(_, c)| c).sum::<u32>(), 7);
        assert_eq!(t.len(), 4);
        assert_eq!(terms("Été à Paris"), terms("été À PARIS"));
        assert!(terms("").is_empty());
        assert_eq!(terms("北京 欢迎你").len(), 3);
    }

    #[test]
    fn separates_two_styles_and_is_deterministic() {
        let human = [
            "honestly i dunno, we just kinda went for it lol",
            "we went down to the shop and got chips, was grand",
            "my mate reckons the match was rubbish but i liked it",
            "kinda tired today, gonna sleep early i reckon",
        ];
        let machine = [
            "Certainly! Here is a comprehensive overview of the key considerations.",
            "In conclusion, it is important to note that several factors contribute.",
            "Furthermore, it is essential to consider the broader implications.",
            "Overall, this comprehensive approach ensures a balanced perspective.",
        ];
        let texts: Vec<&str> = human.iter().chain(&machine).copied().collect();
        let labels: Vec<Label> = (0..8)
            .map(|i| if i < 4 { Label::Human } else { Label::Machine })
            .collect();
        let cfg = ClassifierConfig {
            min_df: 1,
            ..Default::default()
        };
        let a = Classifier::fit(&texts, &labels, &cfg).expect("both labels");
        let b = Classifier::fit(&texts, &labels, &cfg).expect("both labels");
        let m = a
            .predict("It is important to note that this comprehensive overview is essential.")
            .unwrap();
        let h = a.predict("i dunno mate, kinda rubbish lol").unwrap();
        // Nothing it has seen: no opinion.
        assert_eq!(a.predict("Вчера вечером мы пили чай"), None);
        assert!(m > 0.5 && h < 0.5, "machine {m}, human {h}");
        assert_eq!(
            m,
            b.predict("It is important to note that this comprehensive overview is essential.")
                .unwrap()
        );
        assert!(Classifier::fit(&texts[..4], &labels[..4], &cfg).is_none());
    }
}

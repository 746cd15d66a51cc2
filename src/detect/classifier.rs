//! A supervised view beside the vote: word and character n-gram TF-IDF
//! features and a logistic regression fitted on the labelled references.
//!
//! The k nearest references see a text's closest neighbours; a linear model
//! fitted on every reference sees which words, word pairs and character
//! n-grams separate people from machines across the whole set. It is refitted from the reference
//! texts whenever they change (seconds on a CPU, no trained weights, no
//! encoder), so a few references of a new generator move it as they move
//! the vote. Its probability is blended with the vote's score (see
//! [`Verdict::blend_classifier`](super::Verdict::blend_classifier)); the
//! label stays the vote's unless a calibrated blend rule
//! ([`super::blend_rule`]) weighs a close group vote against it.
//!
//! Features, in up to two blocks:
//! - words: the text is lower-cased and cut into words (runs of two or more
//!   letters, digits or `_`, as the usual TF-IDF tokenizers do); every word
//!   and every pair of adjacent words is one term, named by a 64-bit FNV-1a
//!   hash;
//! - characters (when [`ClassifierConfig::chars`] is set): every character
//!   2- to 4-gram of the NFC-normalised text, case kept, hashed as the
//!   lexical view hashes them. They see what words miss: punctuation,
//!   spacing, casing, emoji, markup.
//! - masked characters (when [`ClassifierConfig::masked`] is set): the same
//!   n-grams of the text with every word outside the references' most
//!   common ones (by document frequency) masked, each of its characters
//!   replaced by `*`. What remains is the text's frame (function words,
//!   punctuation, word lengths, casing of the common words) without its
//!   topic, the text distortion of cross-topic authorship attribution
//!   (Stamatatos, 2017). A topic the references lack then weighs less
//!   than how the text is written.
//!
//! In each block, terms in fewer than its `min_df` references are dropped
//! and the most frequent `max_terms` kept; the block's vector is `(1 + ln
//! tf) * idf` with `idf = ln((1 + n) / (1 + df)) + 1`, scaled to unit
//! length, so each block weighs the same. The regression minimises `|w|^2 /
//! 2 + C * sum_i s_i * logloss_i` with class-balanced sample weights `s_i`
//! (L-BFGS).
use std::collections::{HashMap as StdHashMap, HashSet as StdHashSet};
use std::hash::{BuildHasherDefault, Hasher};

use super::logistic::{fit_logistic, sigmoid, Rows};
use crate::encoder::lexical::ngram_hashes_of_normalized;
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
    /// Character n-gram terms beside the words (`None`: words alone).
    pub chars: Option<CharTerms>,
    /// Character n-grams of the text with its uncommon words masked
    /// (`None`: no such block).
    pub masked: Option<MaskedTerms>,
}

/// The masked-character block: character n-grams of the text with every
/// word outside the `keep_words` most common masked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskedTerms {
    /// Words kept as they are: the most common by document frequency.
    pub keep_words: usize,
    /// The n-grams read from the masked text.
    pub ngrams: CharTerms,
}

/// 300 common words: the number cross-validation on the references chooses
/// from 300, 1,000 and 3,000 (`docs/eval/classifier-masked.md`).
impl Default for MaskedTerms {
    fn default() -> Self {
        Self {
            keep_words: 300,
            ngrams: CharTerms::default(),
        }
    }
}

/// The character n-gram block of the features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CharTerms {
    /// Shortest n-gram, in characters.
    pub min_n: usize,
    /// Longest n-gram, in characters.
    pub max_n: usize,
    /// Fewest references an n-gram must occur in.
    pub min_df: u32,
    /// Most n-grams kept (the most frequent by document frequency).
    pub max_terms: usize,
}

impl Default for CharTerms {
    fn default() -> Self {
        Self {
            min_n: 2,
            max_n: 4,
            min_df: 3,
            max_terms: 300_000,
        }
    }
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            c: 10.0,
            min_df: 2,
            max_terms: 200_000,
            max_iter: 500,
            chars: Some(CharTerms::default()),
            masked: Some(MaskedTerms::default()),
        }
    }
}

impl ClassifierConfig {
    /// A short tag naming the features and the fit (part of a calibration's
    /// identity: thresholds and rules chosen on one classifier's
    /// probabilities do not hold for another's).
    pub fn tag(&self) -> String {
        let mut tag = format!("words1-2df{}x{}", self.min_df, self.max_terms);
        if let Some(c) = self.chars {
            tag.push_str(&format!(
                "+chars{}-{}df{}x{}",
                c.min_n, c.max_n, c.min_df, c.max_terms
            ));
        }
        if let Some(m) = self.masked {
            let c = m.ngrams;
            tag.push_str(&format!(
                "+masked{}chars{}-{}df{}x{}",
                m.keep_words, c.min_n, c.max_n, c.min_df, c.max_terms
            ));
        }
        tag.push_str(&format!("-c{}-it{}", self.c, self.max_iter));
        tag
    }
}

/// Hashes a key that is already a 64-bit hash of a term: one multiply
/// folds its high bits into the low ones the table indexes by. The default
/// SipHash would cost more than everything else a lookup does.
#[derive(Default, Clone, Copy)]
struct TermHasher(u64);

impl Hasher for TermHasher {
    fn finish(&self) -> u64 {
        let h = self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^ (h >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Maps and sets keyed by term hashes.
type HashMap<K, V> = StdHashMap<K, V, BuildHasherDefault<TermHasher>>;
type HashSet<K> = StdHashSet<K, BuildHasherDefault<TermHasher>>;

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
    counted(all)
}

/// Counts of sorted hashes: `(hash, count)`, sorted by hash.
fn counted(sorted: impl IntoIterator<Item = u64>) -> Vec<(u64, u32)> {
    let mut out: Vec<(u64, u32)> = Vec::new();
    for h in sorted {
        match out.last_mut() {
            Some((last, n)) if *last == h => *n += 1,
            _ => out.push((h, 1)),
        }
    }
    out
}

/// The masked-character block as fitted: its n-grams and the words it
/// keeps (hashes of the lower-cased words).
#[derive(Debug, Clone)]
struct Masking {
    ngrams: CharTerms,
    keep: HashSet<u64>,
}

/// What the blocks of features read from a text.
#[derive(Debug, Clone, Copy)]
struct Reading<'a> {
    chars: Option<CharTerms>,
    masked: Option<&'a Masking>,
}

/// The NFC form of `text`'s first [`MAX_CHARS`] characters: what the
/// character blocks read.
fn normalized(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    text.nfc().take(MAX_CHARS).collect()
}

/// Calls `each(word, is_word)` for the runs of letters, digits and `_` in
/// `text` (already [`normalized`]) and for each character between them.
fn split_words(text: &str, mut each: impl FnMut(&str, bool)) {
    let mut word = String::new();
    let mut other = [0u8; 4];
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if !word.is_empty() {
                each(&word, true);
                word.clear();
            }
            each(c.encode_utf8(&mut other), false);
        }
    }
    if !word.is_empty() {
        each(&word, true);
    }
}

/// The hash a word is kept by: FNV-1a of its lower-cased characters,
/// hashed as they are lowered (no string is built).
fn word_key(word: &str) -> u64 {
    let mut buf = [0u8; 4];
    word.chars()
        .flat_map(char::to_lowercase)
        .fold(FNV_OFFSET, |h, c| {
            c.encode_utf8(&mut buf)
                .bytes()
                .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
        })
}

/// `text` (already [`normalized`]) with every word whose key is not in
/// `keep` masked: each of its characters replaced by `*`. The result is
/// NFC too: masking replaces whole words, and `*` composes with nothing.
fn mask_uncommon(text: &str, keep: &HashSet<u64>) -> String {
    let mut out = String::with_capacity(text.len());
    split_words(text, |w, is_word| {
        if !is_word || keep.contains(&word_key(w)) {
            out.push_str(w);
        } else {
            out.extend(std::iter::repeat_n('*', w.chars().count()));
        }
    });
    out
}

/// The `keep` most common words of `texts` by document frequency (ties by
/// hash, so the same set every run).
fn common_words(texts: &[&str], keep: usize) -> HashSet<u64> {
    use rayon::prelude::*;
    let df = texts
        .par_iter()
        .fold(HashMap::<u64, u32>::default, |mut df, t| {
            let mut seen = HashSet::default();
            split_words(&normalized(t), |w, is_word| {
                if is_word {
                    let key = word_key(w);
                    if seen.insert(key) {
                        *df.entry(key).or_default() += 1;
                    }
                }
            });
            df
        })
        .reduce(HashMap::default, merge_counts);
    let mut words: Vec<(u64, u32)> = df.into_iter().collect();
    words.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    words.into_iter().take(keep).map(|(h, _)| h).collect()
}

/// Adds the counts of one map to the other's (the larger kept).
fn merge_counts(mut a: HashMap<u64, u32>, mut b: HashMap<u64, u32>) -> HashMap<u64, u32> {
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    for (h, c) in b {
        *a.entry(h).or_default() += c;
    }
    a
}

/// The terms of `text` in each block of features: the words, then the
/// character n-grams and the masked ones where `reading` asks for them.
fn block_terms(text: &str, reading: Reading) -> Vec<Vec<(u64, u32)>> {
    let mut blocks = vec![terms(text)];
    if reading.chars.is_none() && reading.masked.is_none() {
        return blocks;
    }
    // Both character blocks read the NFC text: normalised once, here.
    let text = normalized(text);
    if let Some(c) = reading.chars {
        blocks.push(counted(ngram_hashes_of_normalized(&text, c.min_n, c.max_n)));
    }
    if let Some(m) = reading.masked {
        let masked = mask_uncommon(&text, &m.keep);
        blocks.push(counted(ngram_hashes_of_normalized(
            &masked,
            m.ngrams.min_n,
            m.ngrams.max_n,
        )));
    }
    blocks
}

/// For each block of features, the number of `texts` each term occurs in.
fn document_frequencies(texts: &[&str], reading: Reading) -> Vec<HashMap<u64, u32>> {
    use rayon::prelude::*;
    let blocks = 1 + usize::from(reading.chars.is_some()) + usize::from(reading.masked.is_some());
    let empty = || vec![HashMap::<u64, u32>::default(); blocks];
    texts
        .par_iter()
        .fold(empty, |mut df, t| {
            for (d, terms) in df.iter_mut().zip(block_terms(t, reading)) {
                for (h, _) in terms {
                    *d.entry(h).or_default() += 1;
                }
            }
            df
        })
        .reduce(empty, |a, b| {
            a.into_iter()
                .zip(b)
                .map(|(x, y)| merge_counts(x, y))
                .collect()
        })
}

/// One block of features: its vocabulary, IDF weights and where its
/// features start among the regression's weights.
#[derive(Debug, Clone)]
struct Block {
    /// Term hash -> feature index within the block.
    vocab: HashMap<u64, u32>,
    idf: Vec<f32>,
    offset: u32,
}

impl Block {
    /// Keeps the terms in at least `min_df` of the `n` documents (`df`:
    /// documents per term), the `max_terms` most frequent, and weighs them
    /// by IDF.
    fn fit(df: HashMap<u64, u32>, n: usize, min_df: u32, max_terms: usize, offset: u32) -> Self {
        let mut kept: Vec<(u64, u32)> = df.into_iter().filter(|(_, c)| *c >= min_df).collect();
        // Most frequent first, ties by hash: the same vocabulary every run.
        kept.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        kept.truncate(max_terms);
        let vocab = kept
            .iter()
            .enumerate()
            .map(|(i, (h, _))| (*h, i as u32))
            .collect();
        let idf = kept
            .iter()
            .map(|(_, c)| (((1 + n) as f64 / (1 + *c) as f64).ln() + 1.0) as f32)
            .collect();
        Self { vocab, idf, offset }
    }

    /// Appends the block's unit-length TF-IDF features of `terms`.
    fn features(&self, terms: &[(u64, u32)], out: &mut Vec<(u32, f32)>) {
        let start = out.len();
        out.extend(terms.iter().filter_map(|(h, c)| {
            self.vocab.get(h).map(|&i| {
                (
                    self.offset + i,
                    (1.0 + (*c as f32).ln()) * self.idf[i as usize],
                )
            })
        }));
        let f = &mut out[start..];
        let norm = f.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            for (_, v) in f {
                *v /= norm;
            }
        }
    }
}

/// A fitted classifier: the term vocabularies with their IDF weights and
/// the regression's weights.
#[derive(Debug, Clone)]
pub struct Classifier {
    blocks: Vec<Block>,
    chars: Option<CharTerms>,
    masked: Option<Masking>,
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
        // Two passes over the texts, so that no document's terms are kept:
        // the document frequencies first, then each text's features.
        // (The masked block's common words come first, from a pass of
        // their own.)
        let masked = cfg.masked.map(|m| Masking {
            ngrams: m.ngrams,
            keep: common_words(texts, m.keep_words),
        });
        let mut limits = vec![(cfg.min_df, cfg.max_terms)];
        limits.extend(cfg.chars.map(|c| (c.min_df, c.max_terms)));
        limits.extend(cfg.masked.map(|m| (m.ngrams.min_df, m.ngrams.max_terms)));
        let df = document_frequencies(
            texts,
            Reading {
                chars: cfg.chars,
                masked: masked.as_ref(),
            },
        );
        let mut blocks: Vec<Block> = Vec::with_capacity(limits.len());
        let mut offset = 0u32;
        for (df, (min_df, max_terms)) in df.into_iter().zip(limits) {
            let block = Block::fit(df, n, min_df, max_terms, offset);
            offset += block.idf.len() as u32;
            blocks.push(block);
        }
        let dim = offset as usize;
        let mut model = Self {
            blocks,
            chars: cfg.chars,
            masked,
            weights: Vec::new(),
            bias: 0.0,
            fitted_on: n,
            iterations: 0,
        };
        let rows = model.rows(texts);
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
        let (w, iterations) = fit_logistic(&rows, &y, &s, dim, cfg);
        model.bias = w[dim];
        model.weights = w;
        model.weights.truncate(dim);
        model.iterations = iterations;
        Some(model)
    }

    /// The features of `texts`, one row each (computed a chunk at a time,
    /// so that only the rows are kept).
    fn rows(&self, texts: &[&str]) -> Rows {
        use rayon::prelude::*;
        let mut rows = Rows {
            ptr: vec![0],
            idx: Vec::new(),
            val: Vec::new(),
        };
        for chunk in texts.chunks(1024) {
            let features: Vec<Vec<(u32, f32)>> = chunk
                .par_iter()
                .map(|t| {
                    let mut f = Vec::new();
                    self.features(&block_terms(t, self.reading()), &mut f);
                    f
                })
                .collect();
            for f in features {
                rows.idx.extend(f.iter().map(|(i, _)| *i));
                rows.val.extend(f.iter().map(|(_, v)| *v));
                rows.ptr.push(rows.idx.len());
            }
        }
        rows
    }

    fn reading(&self) -> Reading<'_> {
        Reading {
            chars: self.chars,
            masked: self.masked.as_ref(),
        }
    }

    /// The features of a text's terms: each block's unit-length TF-IDF
    /// vector, side by side.
    fn features(&self, terms: &[Vec<(u64, u32)>], out: &mut Vec<(u32, f32)>) {
        for (block, t) in self.blocks.iter().zip(terms) {
            block.features(t, out);
        }
    }

    /// Probability that `text` is machine-written; `None` when none of its
    /// words is in the vocabulary (another language or script, say): the
    /// model knows nothing about it, even if the text shares a few
    /// punctuation and spacing n-grams with the references.
    pub fn predict(&self, text: &str) -> Option<f64> {
        let mut f = Vec::new();
        self.features(&block_terms(text, self.reading()), &mut f);
        let words = self.blocks[0].idf.len() as u32;
        if f.first().is_none_or(|(i, _)| *i >= words) {
            return None;
        }
        let z = f
            .iter()
            .map(|(i, v)| self.weights[*i as usize] * f64::from(*v))
            .sum::<f64>()
            + self.bias;
        Some(sigmoid(z))
    }

    /// Terms in the vocabularies.
    pub fn terms(&self) -> usize {
        self.blocks.iter().map(|b| b.idf.len()).sum()
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
        // Nothing it has seen: no opinion, even where punctuation and
        // spacing n-grams are shared.
        assert_eq!(a.predict("Вчера вечером мы пили чай"), None);
        assert_eq!(a.predict("Вчера, вечером, мы пили чай."), None);
        assert!(m > 0.5 && h < 0.5, "machine {m}, human {h}");
        assert_eq!(
            m,
            b.predict("It is important to note that this comprehensive overview is essential.")
                .unwrap()
        );
        assert!(Classifier::fit(&texts[..4], &labels[..4], &cfg).is_none());
    }

    /// Two styles with the same words, told apart only by punctuation and
    /// emoji: the character block sees them, the words alone cannot.
    #[test]
    fn character_ngrams_see_what_words_miss() {
        let sentences = [
            "we went to the shop and bought some bread",
            "the weather was nice so we walked home",
            "my sister called and we talked for an hour",
            "the film was long but the ending was good",
            "i cooked dinner and then read a book",
            "the train was late again this morning",
        ];
        let mut texts: Vec<String> = Vec::new();
        let mut labels = Vec::new();
        for s in sentences {
            texts.push(format!("{s}!!! :) 😂"));
            labels.push(Label::Human);
            texts.push(format!("{s}."));
            labels.push(Label::Machine);
        }
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let words = ClassifierConfig {
            min_df: 1,
            chars: None,
            masked: None,
            ..Default::default()
        };
        let both = ClassifierConfig {
            min_df: 1,
            chars: Some(CharTerms {
                min_df: 1,
                ..CharTerms::default()
            }),
            masked: None,
            ..Default::default()
        };
        assert_ne!(words.tag(), both.tag());
        let query_h = "the bus was full so we waited!!! :) 😂";
        let query_m = "the bus was full so we waited.";
        let w = Classifier::fit(&texts, &labels, &words).unwrap();
        assert_eq!(w.predict(query_h), w.predict(query_m));
        let c = Classifier::fit(&texts, &labels, &both).unwrap();
        let (h, m) = (c.predict(query_h).unwrap(), c.predict(query_m).unwrap());
        assert!(h < 0.5 && m > 0.5, "human {h}, machine {m}");
        assert!(c.terms() > w.terms());
        // The same texts, the same fit.
        let again = Classifier::fit(&texts, &labels, &both).unwrap();
        assert_eq!(again.predict(query_h), Some(h));
    }

    #[test]
    fn masking_keeps_common_words_and_the_frame() {
        let texts = ["The cat sat on the mat.", "the dog sat on a log", "THE END"];
        let keep = common_words(&texts, 3);
        // "the" is in all three texts, "sat" and "on" in two; the rest in one.
        assert_eq!(keep.len(), 3);
        assert_eq!(
            mask_uncommon(&normalized("The zebra sat ON the café, obviously!"), &keep),
            "The ***** sat ON the ****, *********!"
        );
        assert_eq!(mask_uncommon(&normalized(""), &keep), "");
        // NFC first: a decomposed "é" is one masked character, as composed.
        assert_eq!(
            mask_uncommon(&normalized("cafe\u{301} sat"), &keep),
            "**** sat"
        );
        assert_eq!(common_words(&texts, 0).len(), 0);
        assert_eq!(common_words(&texts, 100).len(), 9);
    }

    /// The masked text is read without normalising it again: it must be
    /// NFC already, whatever the text (decomposed letters, marks that
    /// compose with nothing, Hangul jamo, other scripts, emoji).
    #[test]
    fn masked_texts_are_already_normalised() {
        use crate::encoder::lexical::ngram_hashes;
        let texts = [
            "The cafe\u{301} sat on the q\u{301}uay.",
            "the \u{1100}\u{1161}\u{11a8} sat ON a\u{30a}\u{301} log",
            "Ελληνικά σ the ÅNGSTRÖM; 日本語 the 🙂 e\u{327}\u{301}",
            "a\u{301}\u{327} x\u{20db}y \u{fb01}ne the",
        ];
        let keep = common_words(&texts, 4);
        for t in texts {
            let masked = mask_uncommon(&normalized(t), &keep);
            assert_eq!(
                ngram_hashes(&masked, 2, 4),
                ngram_hashes_of_normalized(&masked, 2, 4),
                "{masked:?}"
            );
        }
    }

    /// Two styles told apart only by punctuation, each pair of texts on a
    /// topic of its own: the words carry no signal, and a query on a new
    /// topic shares only "the" with the references. The masked block reads
    /// its frame ("the ****... the ****!!").
    #[test]
    fn masked_block_reads_the_frame_of_a_new_topic() {
        let topics = [
            "volcano", "harbour", "violin", "glacier", "orchard", "comet", "lantern", "meadow",
            "falcon", "quarry",
        ];
        let mut texts: Vec<String> = Vec::new();
        let mut labels = Vec::new();
        for t in topics {
            texts.push(format!("the {t}... the {t}!!"));
            labels.push(Label::Human);
            texts.push(format!("the {t}, the {t}."));
            labels.push(Label::Machine);
        }
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let cfg = ClassifierConfig {
            min_df: 1,
            chars: None,
            masked: Some(MaskedTerms {
                keep_words: 1,
                ngrams: CharTerms {
                    min_df: 2,
                    ..CharTerms::default()
                },
            }),
            ..Default::default()
        };
        let words = ClassifierConfig {
            masked: None,
            ..cfg
        };
        assert_ne!(cfg.tag(), words.tag());
        let (query_h, query_m) = ("the tundra... the tundra!!", "the tundra, the tundra.");
        let w = Classifier::fit(&texts, &labels, &words).unwrap();
        assert_eq!(w.predict(query_h), w.predict(query_m));
        let model = Classifier::fit(&texts, &labels, &cfg).unwrap();
        let (h, m) = (
            model.predict(query_h).unwrap(),
            model.predict(query_m).unwrap(),
        );
        assert!(h < 0.5 && m > 0.5, "human {h}, machine {m}");
        let again = Classifier::fit(&texts, &labels, &cfg).unwrap();
        assert_eq!(again.predict(query_h), Some(h));
    }
}

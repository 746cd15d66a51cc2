//! The lexical view of style: character n-grams hashed with signs into a
//! fixed number of dimensions.
//!
//! A sentence encoder trained for meaning discards much of what separates
//! writers: punctuation, function words, spelling, formatting habits. Short
//! character n-grams keep them. Each n-gram of the (NFC-normalised) text is
//! hashed with a fixed 64-bit FNV-1a hash; the hash picks a dimension and a
//! sign, and the n-gram adds `sign * (1 + ln count)` there (sublinear term
//! frequency), then the vector is scaled to unit length. There is nothing
//! to fit, so new references need no training, and the same function runs at
//! reference time and at query time, with no tokenizer: the vector of a text
//! is the same on every platform and in every run.
//!
//! Optionally the vector is *centred*: a share (`centre`) of the mean
//! lexical vector of the shipped default references is subtracted before
//! the vector is scaled to unit length again. That mean is what all
//! English text has in common (the frequent n-grams of its frequent words);
//! what is left are a writer's deviations from it, the quantity classic
//! stylometry compares (Burrows's Delta and its cosine variant). The means
//! are constants compiled into the binary, one per shape (see
//! `lexical_mean.rs`), so centring stays training-free and deterministic.
use unicode_normalization::UnicodeNormalization;

/// Characters of a text the view reads (the rest is ignored): bounds the
/// cost of one text at about a millisecond.
pub const MAX_CHARS: usize = 32_768;

/// Shape of the lexical view.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lexical {
    /// Dimensions the n-grams are hashed into.
    pub dim: usize,
    /// Shortest n-gram, in characters.
    pub min_n: usize,
    /// Longest n-gram, in characters.
    pub max_n: usize,
    /// Share of the references' mean lexical vector subtracted, in [0, 1]
    /// (0: not centred).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub centre: f32,
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

impl Default for Lexical {
    fn default() -> Self {
        Self {
            dim: 2048,
            min_n: 2,
            max_n: 4,
            centre: 0.0,
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Lexical {
    /// A short tag naming the view's configuration (part of the encoder
    /// identity of vectors that contain it).
    pub fn tag(&self) -> String {
        let mut tag = format!("char{}-{}x{}", self.min_n, self.max_n, self.dim);
        if self.centre > 0.0 {
            tag.push_str(&format!("c{:.2}", self.centre));
        }
        tag
    }

    /// The same shape without centring (the vectors a mean is taken of).
    pub fn uncentred(&self) -> Self {
        Self {
            centre: 0.0,
            ..*self
        }
    }

    /// Checks that the view can be computed: a centred view needs its
    /// shape's shipped mean.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.centre) {
            return Err(format!(
                "the lexical centre must be within [0, 1], not {}",
                self.centre
            ));
        }
        if self.centre > 0.0 && self.mean().is_none() {
            return Err(format!(
                "no reference mean ships for the lexical view {}; centring needs one of: {}",
                self.uncentred().tag(),
                super::lexical_mean::centrable_shapes()
            ));
        }
        Ok(())
    }

    /// The shipped mean of this shape's uncentred vectors, if any.
    pub fn mean(&self) -> Option<&'static [f32]> {
        super::lexical_mean::shipped(self.min_n, self.max_n, self.dim)
    }

    /// The unit-length lexical vector of `text` (all zeros when the text
    /// holds fewer than `min_n` characters).
    pub fn vector(&self, text: &str) -> Vec<f32> {
        let mut out = vec![0f32; self.dim];
        self.add_to(text, &mut out);
        out
    }

    /// Writes the unit-length vector of `text` into `out` (`dim` values).
    pub fn add_to(&self, text: &str, out: &mut [f32]) {
        debug_assert_eq!(out.len(), self.dim);
        out.fill(0.0);
        let hashes = ngram_hashes(text, self.min_n, self.max_n);
        let mut i = 0;
        while i < hashes.len() {
            let h = hashes[i];
            let mut j = i + 1;
            while j < hashes.len() && hashes[j] == h {
                j += 1;
            }
            let weight = 1.0 + ((j - i) as f32).ln();
            // High bits pick the dimension, the lowest bit the sign.
            let slot = (((h >> 32) * self.dim as u64) >> 32) as usize;
            out[slot] += if h & 1 == 0 { weight } else { -weight };
            i = j;
        }
        // A text without n-grams stays all zeros, centred or not.
        if !to_unit_length(out) || self.centre == 0.0 {
            return;
        }
        let mean = self
            .mean()
            .expect("a centred lexical view is validated to have a mean");
        for (x, m) in out.iter_mut().zip(mean) {
            *x -= self.centre * m;
        }
        to_unit_length(out);
    }
}

/// The hashes of every character n-gram of the NFC-normalised text (its
/// first [`MAX_CHARS`] characters), `min_n` to `max_n` characters long,
/// sorted: equal n-grams are adjacent.
pub fn ngram_hashes(text: &str, min_n: usize, max_n: usize) -> Vec<u64> {
    let chars: Vec<char> = text.nfc().take(MAX_CHARS).collect();
    hashes_of(&chars, min_n, max_n)
}

/// [`ngram_hashes`] of a text that is already NFC-normalised (the same
/// hashes, without normalising it again).
pub fn ngram_hashes_of_normalized(text: &str, min_n: usize, max_n: usize) -> Vec<u64> {
    let chars: Vec<char> = text.chars().take(MAX_CHARS).collect();
    hashes_of(&chars, min_n, max_n)
}

/// The sorted hashes of every `min_n`- to `max_n`-gram of `chars`.
fn hashes_of(chars: &[char], min_n: usize, max_n: usize) -> Vec<u64> {
    let mut hashes = Vec::with_capacity(chars.len() * (max_n + 1).saturating_sub(min_n));
    let mut buf = [0u8; 4];
    for start in 0..chars.len() {
        let mut h = FNV_OFFSET;
        for (len, c) in chars[start..].iter().take(max_n).enumerate() {
            for &b in c.encode_utf8(&mut buf).as_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(FNV_PRIME);
            }
            if len + 1 >= min_n {
                hashes.push(mix(h));
            }
        }
    }
    hashes.sort_unstable();
    hashes
}

/// Scales `v` to unit length; false (and `v` unchanged) when it is zero.
fn to_unit_length(v: &mut [f32]) -> bool {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    norm > 0.0
}

/// A final avalanche (from MurmurHash3) so that n-grams that differ only in
/// their last byte spread over all bits.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::dot;

    #[test]
    fn vectors_are_unit_length_and_deterministic() {
        let view = Lexical::default();
        let a = view.vector("The quick brown fox jumps over the lazy dog.");
        let norm = dot(&a, &a).sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        assert_eq!(
            a,
            view.vector("The quick brown fox jumps over the lazy dog.")
        );
    }

    /// Fixed values: a change of the hash, the weighting or the bucketing
    /// changes every stored vector, so it must show here first.
    #[test]
    fn vectors_are_the_same_on_every_platform() {
        let view = Lexical {
            dim: 16,
            min_n: 2,
            max_n: 3,
            centre: 0.0,
        };
        let v = view.vector("abcab");
        let nonzero: Vec<(usize, f32)> = v
            .iter()
            .enumerate()
            .filter(|(_, x)| **x != 0.0)
            .map(|(i, x)| (i, (x * 1e4).round() / 1e4))
            .collect();
        assert_eq!(nonzero, EXPECTED_ABCAB);
    }

    /// "ab" twice (weight 1 + ln 2), "bc", "ca", "abc", "bca", "cab" once;
    /// two of the single ones share dimension 4 with the same sign.
    const EXPECTED_ABCAB: &[(usize, f32)] = &[
        (3, -0.3184),
        (4, 0.6367),
        (7, 0.3184),
        (13, 0.539),
        (15, -0.3184),
    ];

    #[test]
    fn canonically_equivalent_texts_get_the_same_vector() {
        let view = Lexical::default();
        // "é" precomposed and as "e" + combining acute accent.
        assert_eq!(
            view.vector("caf\u{e9} cr\u{e8}me"),
            view.vector("cafe\u{301} cre\u{300}me")
        );
    }

    #[test]
    fn similar_styles_are_closer_than_different_scripts() {
        let view = Lexical::default();
        let a = view
            .vector("It is important to note that the results, while promising, are preliminary.");
        let b =
            view.vector("It is important to note that these findings, while robust, are limited.");
        let c = view.vector("Это предложение написано на другом языке и другим алфавитом.");
        assert!(dot(&a, &b) > 0.3, "{}", dot(&a, &b));
        assert!(dot(&a, &c).abs() < 0.1, "{}", dot(&a, &c));
    }

    #[test]
    fn short_and_empty_texts_give_zero_vectors() {
        let view = Lexical::default();
        assert!(view.vector("").iter().all(|x| *x == 0.0));
        assert!(view.vector("a").iter().all(|x| *x == 0.0));
        let two = view.vector("ab");
        assert!((dot(&two, &two) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn only_the_first_max_chars_are_read() {
        let view = Lexical::default();
        let head: String = "ab ".repeat(MAX_CHARS / 3 + 1);
        let head: String = head.chars().take(MAX_CHARS).collect();
        let long = format!("{head}{}", "zyxw ".repeat(1000));
        assert_eq!(view.vector(&head), view.vector(&long));
    }

    #[test]
    fn uncentred_views_keep_their_vectors_and_identity() {
        let plain = Lexical::default();
        let zero = Lexical {
            centre: 0.0,
            ..plain
        };
        let text = "The committee will meet again on Thursday.";
        assert_eq!(plain.vector(text), zero.vector(text));
        assert_eq!(zero.tag(), "char2-4x2048");
        // Manifests written before centring existed read as uncentred, and
        // an uncentred view writes no `centre`.
        let old: Lexical = serde_json::from_str(r#"{"dim":1024,"min_n":2,"max_n":4}"#).unwrap();
        assert_eq!(old.centre, 0.0);
        assert!(!serde_json::to_string(&old).unwrap().contains("centre"));
    }

    #[test]
    fn centred_vectors_are_unit_length_and_named() {
        let view = Lexical {
            dim: 1024,
            centre: 0.5,
            ..Lexical::default()
        };
        assert!(view.validate().is_ok());
        assert_eq!(view.tag(), "char2-4x1024c0.50");
        let text = "The committee will meet again on Thursday.";
        let v = view.vector(text);
        assert!((dot(&v, &v).sqrt() - 1.0).abs() < 1e-5);
        assert_eq!(v, view.vector(text));
        assert_ne!(v, view.uncentred().vector(text));
        assert!(view.vector("").iter().all(|x| *x == 0.0));
    }

    /// What every English text shares dominates the uncentred similarity;
    /// centring removes it, so two English texts of different kinds are
    /// told apart better, while a near-paraphrase stays close.
    #[test]
    fn centring_removes_what_all_english_shares() {
        let plain = Lexical {
            dim: 1024,
            ..Lexical::default()
        };
        let centred = Lexical {
            centre: 1.0,
            ..plain
        };
        let a = "In conclusion, it is important to note that these results, while promising, should be interpreted with caution.";
        let b = "In conclusion, it is worth noting that the findings, while encouraging, must be interpreted with care.";
        let c = "lol my cat just knocked the coffee off the table again, 3rd time this week smh";
        let sim = |l: &Lexical, x: &str, y: &str| dot(&l.vector(x), &l.vector(y));
        let (plain_gap, centred_gap) = (
            sim(&plain, a, b) - sim(&plain, a, c),
            sim(&centred, a, b) - sim(&centred, a, c),
        );
        assert!(
            sim(&plain, a, c) > sim(&centred, a, c),
            "{}",
            sim(&centred, a, c)
        );
        assert!(centred_gap > plain_gap, "{centred_gap} vs {plain_gap}");
    }

    #[test]
    fn centring_needs_a_shipped_mean() {
        for dim in [1024, 2048, 4096] {
            let view = Lexical {
                dim,
                centre: 1.0,
                ..Lexical::default()
            };
            assert!(view.validate().is_ok(), "{dim}");
            assert_eq!(view.mean().unwrap().len(), dim);
        }
        let odd = Lexical {
            dim: 512,
            centre: 0.5,
            ..Lexical::default()
        };
        let err = odd.validate().unwrap_err();
        assert!(
            err.contains("char2-4x512") && err.contains("char2-4x1024"),
            "{err}"
        );
        // Uncentred, any shape works.
        assert!(odd.uncentred().validate().is_ok());
        let over = Lexical {
            centre: 1.5,
            ..Lexical::default()
        };
        assert!(over.validate().unwrap_err().contains("[0, 1]"));
    }
}

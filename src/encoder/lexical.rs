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
use unicode_normalization::UnicodeNormalization;

/// Characters of a text the view reads (the rest is ignored): bounds the
/// cost of one text at about a millisecond.
pub const MAX_CHARS: usize = 32_768;

/// Shape of the lexical view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lexical {
    /// Dimensions the n-grams are hashed into.
    pub dim: usize,
    /// Shortest n-gram, in characters.
    pub min_n: usize,
    /// Longest n-gram, in characters.
    pub max_n: usize,
}

impl Default for Lexical {
    fn default() -> Self {
        Self {
            dim: 2048,
            min_n: 2,
            max_n: 4,
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Lexical {
    /// A short tag naming the view's configuration (part of the encoder
    /// identity of vectors that contain it).
    pub fn tag(&self) -> String {
        format!("char{}-{}x{}", self.min_n, self.max_n, self.dim)
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
        let chars: Vec<char> = text.nfc().take(MAX_CHARS).collect();
        let mut hashes = Vec::with_capacity(chars.len() * (self.max_n + 1 - self.min_n));
        let mut buf = [0u8; 4];
        for start in 0..chars.len() {
            let mut h = FNV_OFFSET;
            for (len, c) in chars[start..].iter().take(self.max_n).enumerate() {
                for &b in c.encode_utf8(&mut buf).as_bytes() {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(FNV_PRIME);
                }
                if len + 1 >= self.min_n {
                    hashes.push(mix(h));
                }
            }
        }
        hashes.sort_unstable();
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
        let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            out.iter_mut().for_each(|x| *x /= norm);
        }
    }
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

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

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
}

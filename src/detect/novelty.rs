//! Texts unlike any reference: the nearest reference's similarity against
//! what validation texts of the same length reach.
//!
//! How similar a text's nearest reference is depends on its length far
//! more than on its origin: a tweet shares few character n-grams and
//! little meaning with any reference, a long essay shares many. A single
//! threshold therefore flags short texts and never long ones. The
//! validation texts are cut into bins of equal count by length, and each
//! bin gets its own threshold: the similarity that only
//! [`NOVELTY_QUANTILE`] of its texts fall below. A text below its length's
//! threshold is *novel*: references of its kind are probably missing,
//! and its neighbours vote on style they cannot compare (human writing
//! of an unseen domain is then mostly called machine-written). By default
//! such a text gets no verdict ([`NoveltyPolicy::Abstain`]).
use serde::{Deserialize, Serialize};

use super::language::{Abstention, Cause};
use super::vote::Verdict;

/// Share of in-distribution validation texts of each length flagged novel.
pub const NOVELTY_QUANTILE: f64 = 0.01;
/// Fewest validation texts a length bin holds.
pub const MIN_PER_BIN: usize = 250;
/// Most length bins.
pub const MAX_BINS: usize = 8;
/// Fewest validation texts a novelty threshold is set from.
pub const MIN_VALIDATION: usize = 100;

/// One length bin: texts of at most `up_to_chars` characters (`None`, the
/// last bin: any longer) and their threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LengthBin {
    pub up_to_chars: Option<usize>,
    pub threshold: f32,
    /// Validation texts in the bin.
    pub texts: usize,
}

/// Per-length novelty thresholds, calibrated on validation texts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Novelty {
    pub quantile: f64,
    /// The threshold over all validation texts, for a text whose length
    /// is not known.
    pub overall: f32,
    /// Ordered by length; never empty.
    pub bins: Vec<LengthBin>,
}

impl Novelty {
    /// Thresholds from validation texts' (length in characters, nearest
    /// similarity); `None` below [`MIN_VALIDATION`] texts.
    pub fn fit(samples: &[(usize, f32)], quantile: f64) -> Option<Self> {
        if samples.len() < MIN_VALIDATION {
            return None;
        }
        let mut by_len = samples.to_vec();
        by_len.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let bins = (samples.len() / MIN_PER_BIN).clamp(1, MAX_BINS);
        let mut out: Vec<LengthBin> = Vec::with_capacity(bins);
        let mut start = 0;
        for b in 0..bins {
            let mut end = (b + 1) * by_len.len() / bins;
            // Texts of one length stay in one bin.
            while end < by_len.len() && end > 0 && by_len[end].0 == by_len[end - 1].0 {
                end += 1;
            }
            if end <= start {
                continue;
            }
            let mut sims: Vec<f32> = by_len[start..end].iter().map(|s| s.1).collect();
            out.push(LengthBin {
                up_to_chars: Some(by_len[end - 1].0),
                threshold: quantile_of(&mut sims, quantile),
                texts: end - start,
            });
            start = end;
        }
        if let Some(last) = out.last_mut() {
            last.up_to_chars = None;
        }
        let mut all: Vec<f32> = samples.iter().map(|s| s.1).collect();
        Some(Self {
            quantile,
            overall: quantile_of(&mut all, quantile),
            bins: out,
        })
    }

    /// The threshold for a text of `chars` characters (the overall one when
    /// the length is not known).
    pub fn threshold(&self, chars: Option<usize>) -> f32 {
        match chars {
            None => self.overall,
            Some(n) => self
                .bins
                .iter()
                .find(|b| b.up_to_chars.is_none_or(|up| n <= up))
                .map_or(self.overall, |b| b.threshold),
        }
    }
}

/// The value that a share `q` of `values` falls below.
fn quantile_of(values: &mut [f32], q: f64) -> f32 {
    values.sort_by(f32::total_cmp);
    let i = ((values.len() as f64 * q) as usize).min(values.len() - 1);
    values[i]
}

/// What a novel text gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoveltyPolicy {
    /// No verdict (`label: "unknown"`, with the reason).
    #[default]
    Abstain,
    /// A verdict, flagged `novel`.
    Flag,
}

impl NoveltyPolicy {
    pub fn parse(spec: &str) -> Result<Self, String> {
        match spec {
            "abstain" => Ok(Self::Abstain),
            "flag" => Ok(Self::Flag),
            other => Err(format!("must be abstain or flag, not {other:?}")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Abstain => "abstain",
            Self::Flag => "flag",
        }
    }

    /// Why `v` gets no verdict under this policy, if it does not.
    pub fn abstention(self, v: &Verdict) -> Option<Abstention> {
        if self != Self::Abstain || !v.novel {
            return None;
        }
        let threshold = v.novelty_threshold?;
        Some(Abstention {
            cause: Cause::Novelty,
            language: None,
            script: None,
            reason: format!(
                "the text is unlike every reference: its nearest reference's similarity \
                 {:.3} is below {threshold:.3}, which only {}% of validation texts of its \
                 length fall below, so its neighbours cannot judge its style: no verdict; \
                 add references of its kind (domain, genre) to judge such texts",
                v.nearest_similarity,
                v.novelty_quantile.map_or(1.0, |q| q * 100.0)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validation texts whose nearest similarity grows with their length.
    fn samples(n: usize) -> Vec<(usize, f32)> {
        (0..n)
            .map(|i| {
                let len = 20 + (i % 50) * 40;
                let spread = ((i as u64 * 2_654_435_761) % 1000) as f32 / 10_000.0;
                (len, 0.2 + len as f32 / 5000.0 + spread)
            })
            .collect()
    }

    #[test]
    fn thresholds_follow_length() {
        let n = Novelty::fit(&samples(2000), 0.01).unwrap();
        assert_eq!(n.bins.len(), MAX_BINS);
        assert_eq!(n.bins.iter().map(|b| b.texts).sum::<usize>(), 2000);
        assert_eq!(n.bins.last().unwrap().up_to_chars, None);
        let short = n.threshold(Some(20));
        let long = n.threshold(Some(2000));
        assert!(short < long, "{short} {long}");
        // A long text as similar as a short one's neighbours is novel; the
        // overall threshold (short texts' level) would let it pass.
        assert!(short + 0.05 < long && n.overall < long);
        assert_eq!(n.threshold(None), n.overall);
        // Bins are ordered and their edges are lengths seen in validation.
        let edges: Vec<usize> = n.bins.iter().filter_map(|b| b.up_to_chars).collect();
        assert_eq!(edges.len(), n.bins.len() - 1);
        assert!(edges.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            n.threshold(Some(1_000_000)),
            n.bins.last().unwrap().threshold
        );
    }

    #[test]
    fn about_the_quantile_of_each_length_is_flagged() {
        let s = samples(5000);
        let n = Novelty::fit(&s, 0.02).unwrap();
        let flagged = s
            .iter()
            .filter(|&&(len, sim)| sim < n.threshold(Some(len)))
            .count();
        // floor(q * bin) texts lie strictly below each bin's threshold
        // (ties aside).
        assert!((60..=100).contains(&flagged), "{flagged}");
    }

    #[test]
    fn small_validation_sets_set_no_threshold() {
        assert!(Novelty::fit(&samples(MIN_VALIDATION - 1), 0.01).is_none());
        let one = Novelty::fit(&samples(MIN_VALIDATION), 0.01).unwrap();
        assert_eq!(one.bins.len(), 1);
        assert_eq!(one.bins[0].threshold, one.overall);
    }

    #[test]
    fn ties_in_length_stay_in_one_bin() {
        let s: Vec<(usize, f32)> = (0..1000)
            .map(|i| (if i < 700 { 100 } else { 200 + i }, i as f32 / 1000.0))
            .collect();
        let n = Novelty::fit(&s, 0.01).unwrap();
        assert_eq!(n.bins[0].up_to_chars, Some(100));
        assert_eq!(n.bins[0].texts, 700);
        assert_eq!(n.bins.iter().map(|b| b.texts).sum::<usize>(), 1000);
    }

    #[test]
    fn policies_parse() {
        assert_eq!(NoveltyPolicy::parse("abstain"), Ok(NoveltyPolicy::Abstain));
        assert_eq!(NoveltyPolicy::parse("flag"), Ok(NoveltyPolicy::Flag));
        assert!(NoveltyPolicy::parse("ignore").is_err());
        assert_eq!(NoveltyPolicy::default().as_str(), "abstain");
    }
}

//! Choosing k, the operating-point thresholds and the novelty threshold on a
//! validation split carved from the references (never on a scored set).
//!
//! Validation texts are searched against the references *without* the
//! validation split, with the largest candidate k; every smaller k reuses
//! the prefix of the same neighbour lists.
use serde::{Deserialize, Serialize};

use super::vote::{vote, weighted_score, Neighbour, OperatingPoint, VoteConfig};
use crate::store::Label;

/// Candidate neighbourhood sizes.
pub const K_CANDIDATES: [usize; 10] = [1, 3, 5, 7, 9, 11, 15, 21, 31, 51];
/// Share of in-distribution validation texts allowed to be flagged novel.
pub const NOVELTY_QUANTILE: f64 = 0.01;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub k: usize,
    pub temperature: f64,
    pub novelty_threshold: Option<f32>,
    /// One per target false-positive rate on human text.
    pub operating_points: Vec<OperatingPoint>,
    /// Validation AvgRec (percent) for every candidate k.
    pub avg_rec_by_k: Vec<(usize, f64)>,
    pub validation_size: usize,
}

impl Calibration {
    /// Vote configuration at the calibrated k, with the operating point for
    /// `target_fpr` if one was calibrated.
    pub fn vote_config(&self, target_fpr: Option<f64>) -> VoteConfig {
        VoteConfig {
            k: self.k,
            temperature: self.temperature,
            novelty_threshold: self.novelty_threshold,
            operating_point: target_fpr.and_then(|t| {
                self.operating_points
                    .iter()
                    .find(|op| (op.target_fpr - t).abs() < 1e-12)
                    .copied()
            }),
        }
    }
}

/// Average of human and machine recall (percent) of majority votes at `k`.
pub fn avg_rec_at(val: &[(Label, Vec<Neighbour>)], k: usize, temperature: f64) -> f64 {
    let cfg = VoteConfig {
        k,
        temperature,
        ..VoteConfig::default()
    };
    let mut hit = [0usize; 2];
    let mut total = [0usize; 2];
    for (truth, nb) in val {
        let i = usize::from(*truth == Label::Machine);
        total[i] += 1;
        if vote(nb, &cfg).is_some_and(|v| v.label == *truth) {
            hit[i] += 1;
        }
    }
    let rec = |i: usize| {
        if total[i] == 0 {
            0.0
        } else {
            100.0 * hit[i] as f64 / total[i] as f64
        }
    };
    (rec(0) + rec(1)) / 2.0
}

/// Smallest threshold at which at most `target` of the human scores are
/// at or above it.
pub fn threshold_for_fpr(human_scores: &[f64], target: f64) -> f64 {
    let mut s: Vec<f64> = human_scores.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    let allowed = (target * s.len() as f64).floor() as usize;
    match s.get(allowed) {
        // Just above the first human score that must not be flagged.
        Some(&v) => next_up(v),
        None => 0.0,
    }
}

fn next_up(v: f64) -> f64 {
    if v >= 1.0 {
        return f64::INFINITY;
    }
    f64::from_bits(if v >= 0.0 {
        v.to_bits() + 1
    } else {
        v.to_bits() - 1
    })
    .max(f64::MIN_POSITIVE)
}

/// Calibrates from validation texts' neighbour lists (searched with at least
/// the largest candidate k) and their true labels.
pub fn calibrate(
    val: &[(Label, Vec<Neighbour>)],
    temperature: f64,
    target_fprs: &[f64],
) -> Calibration {
    let avg_rec_by_k: Vec<(usize, f64)> = K_CANDIDATES
        .iter()
        .map(|&k| (k, avg_rec_at(val, k, temperature)))
        .collect();
    // Best AvgRec; the smaller k wins a tie (cheaper, and less smoothing).
    let k = avg_rec_by_k
        .iter()
        .fold((1, f64::NEG_INFINITY), |best, &(k, r)| {
            if r > best.1 {
                (k, r)
            } else {
                best
            }
        })
        .0;
    let human_scores: Vec<f64> = val
        .iter()
        .filter(|(l, _)| *l == Label::Human)
        .map(|(_, nb)| weighted_score(&nb[..nb.len().min(k)], temperature))
        .collect();
    let operating_points = target_fprs
        .iter()
        .map(|&t| OperatingPoint {
            target_fpr: t,
            threshold: threshold_for_fpr(&human_scores, t),
        })
        .collect();
    let mut nearest: Vec<f32> = val
        .iter()
        .filter_map(|(_, nb)| nb.first().map(|n| n.similarity))
        .collect();
    nearest.sort_by(f32::total_cmp);
    let novelty_threshold = (!nearest.is_empty()).then(|| {
        nearest[((nearest.len() as f64 * NOVELTY_QUANTILE) as usize).min(nearest.len() - 1)]
    });
    Calibration {
        k,
        temperature,
        novelty_threshold,
        operating_points,
        avg_rec_by_k,
        validation_size: val.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_keeps_false_positives_within_target() {
        let humans: Vec<f64> = (0..100).map(|i| f64::from(i) / 100.0).collect();
        let t = threshold_for_fpr(&humans, 0.05);
        let flagged = humans.iter().filter(|&&s| s >= t).count();
        assert_eq!(flagged, 5);
        // Ties at the boundary never push the rate over the target.
        let tied = vec![0.9; 50];
        let t = threshold_for_fpr(&tied, 0.01);
        assert_eq!(tied.iter().filter(|&&s| s >= t).count(), 0);
    }

    #[test]
    fn picks_the_k_with_best_validation_avg_rec() {
        let n = |sim: f32, label| Neighbour {
            id: 0,
            similarity: sim,
            label,
            model: None,
            family: None,
            source: None,
        };
        // The nearest neighbour is misleading; the next two outvote it.
        let mut val = Vec::new();
        for _ in 0..10 {
            let mut m = vec![
                n(0.9, Label::Human),
                n(0.8, Label::Machine),
                n(0.8, Label::Machine),
            ];
            m.extend((0..60).map(|_| n(0.1, Label::Human)));
            val.push((Label::Machine, m));
            let mut h = vec![n(0.9, Label::Human)];
            h.extend((0..62).map(|_| n(0.1, Label::Human)));
            val.push((Label::Human, h));
        }
        let cal = calibrate(&val, 0.05, &[0.01]);
        assert_eq!(cal.k, 3);
        assert_eq!(cal.validation_size, 20);
        assert!(cal.novelty_threshold.unwrap() > 0.5);
    }
}

//! The decision rule that weighs the group vote's margin against the
//! reference-fitted classifier: `machine` when
//! `w_m * (machine closeness - human closeness) + w_c * logit(p) + b > 0`.
//!
//! The group vote reads the style space; the classifier reads which words
//! and character n-grams separate people from machines across every
//! reference. Where the closest
//! groups are nearly tied, the classifier is the better witness; where one
//! group is clearly closer, the vote stands. The weights are a logistic
//! regression fitted on the calibration's validation texts (never a scored
//! file), class-balanced like AvgRec. The service uses it where it beats
//! the group vote alone on the same validation texts, cross-fitted so that
//! neither side is judged on the texts it was fitted on (`detective eval
//! --blend-rule validated`, the default; `never` and `always` for
//! comparison). With the word-level classifier alone validation rejected
//! it; with character n-grams beside the words it wins every row of the
//! generalization benchmark for the shipped default.
use serde::{Deserialize, Serialize};

use super::calibrate::{avg_rec_of_pairs, Calibration};
use super::group_vote::{group_vote, GroupVerdict};
use super::vote::Neighbour;
use crate::store::Label;

/// Classifier probabilities are clamped to `[P_FLOOR, 1 - P_FLOOR]` before
/// their log-odds are taken.
const P_FLOOR: f64 = 1e-4;
/// Ridge on the two weights (per mean sample loss): enough to keep the fit
/// finite on separable validation texts, too little to move it otherwise.
const RIDGE: f64 = 1e-5;

/// The fitted rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BlendRule {
    /// Weight of the group margin (machine closeness minus human closeness).
    pub margin: f64,
    /// Weight of the classifier's log-odds.
    pub classifier: f64,
    pub bias: f64,
}

/// One validation text: its true label, the group margin and the
/// classifier's probability.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub label: Label,
    pub margin: f64,
    pub p: f64,
}

/// The log-odds of a probability, clamped away from 0 and 1.
pub fn log_odds(p: f64) -> f64 {
    let p = p.clamp(P_FLOOR, 1.0 - P_FLOOR);
    (p / (1.0 - p)).ln()
}

/// The margin of a group vote that saw both a human and a machine group.
pub fn margin(g: &GroupVerdict) -> Option<f64> {
    Some(g.machine? - g.human?)
}

impl BlendRule {
    /// Log-odds of machine authorship the rule gives.
    pub fn logit(&self, margin: f64, p: f64) -> f64 {
        self.margin * margin + self.classifier * log_odds(p) + self.bias
    }

    pub fn label(&self, margin: f64, p: f64) -> Label {
        if self.logit(margin, p) > 0.0 {
            Label::Machine
        } else {
            Label::Human
        }
    }

    /// Class-balanced logistic regression of the label on the margin and
    /// the classifier's log-odds (Newton's method on three parameters).
    /// `None` without texts of both labels, or when the fit does not settle.
    pub fn fit(samples: &[Sample]) -> Option<BlendRule> {
        let machines = samples.iter().filter(|s| s.label == Label::Machine).count();
        let humans = samples.len() - machines;
        if machines == 0 || humans == 0 {
            return None;
        }
        // Each label weighs half of the loss, as each weighs half of AvgRec.
        let weight = |l: Label| match l {
            Label::Machine => 0.5 / machines as f64,
            Label::Human => 0.5 / humans as f64,
        };
        let rows: Vec<([f64; 3], f64, f64)> = samples
            .iter()
            .map(|s| {
                let y = f64::from(u8::from(s.label == Label::Machine));
                ([s.margin, log_odds(s.p), 1.0], y, weight(s.label))
            })
            .collect();
        let mut w = [0.0f64; 3];
        for _ in 0..100 {
            let mut grad = [RIDGE * w[0], RIDGE * w[1], 0.0];
            let mut hess = [[0.0f64; 3]; 3];
            hess[0][0] = RIDGE;
            hess[1][1] = RIDGE;
            for (x, y, s) in &rows {
                let z: f64 = x.iter().zip(&w).map(|(a, b)| a * b).sum();
                let p = super::logistic::sigmoid(z);
                for ((g, h), xi) in grad.iter_mut().zip(&mut hess).zip(x) {
                    *g += s * (p - y) * xi;
                    for (hij, xj) in h.iter_mut().zip(x) {
                        *hij += s * p * (1.0 - p) * xi * xj;
                    }
                }
            }
            let step = solve3(hess, grad)?;
            for (wi, d) in w.iter_mut().zip(&step) {
                *wi -= d;
            }
            if step.iter().map(|d| d.abs()).fold(0.0, f64::max) < 1e-9 {
                break;
            }
        }
        w.iter().all(|v| v.is_finite()).then_some(BlendRule {
            margin: w[0],
            classifier: w[1],
            bias: w[2],
        })
    }
}

/// Solves `a x = b` for a symmetric 3x3 system (Gaussian elimination with
/// partial pivoting); `None` when it is singular.
fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let pivot_row = a[col];
        for row in col + 1..3 {
            let f = a[row][col] / pivot_row[col];
            for (x, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let s: f64 = (row + 1..3).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

/// AvgRec (percent) of `decide` over `samples`.
pub fn avg_rec(samples: &[Sample], decide: impl Fn(&Sample) -> Label) -> f64 {
    avg_rec_of_pairs(samples.iter().map(|s| (s.label, Some(decide(s)))))
}

/// Two-fold cross-fitted AvgRec of the rule: fitted on one fold of the
/// samples (`fold[i]`: which), scored on the other, and the other way
/// round. `None` when a fold cannot be fitted.
pub fn cross_fitted_avg_rec(samples: &[Sample], fold: &[bool]) -> Option<f64> {
    let mut decided = vec![Label::Human; samples.len()];
    for side in [false, true] {
        let train: Vec<Sample> = samples
            .iter()
            .zip(fold)
            .filter(|(_, f)| **f != side)
            .map(|(s, _)| *s)
            .collect();
        let d = BlendRule::fit(&train)?;
        for (i, s) in samples.iter().enumerate() {
            if fold[i] == side {
                decided[i] = d.label(s.margin, s.p);
            }
        }
    }
    Some(avg_rec_of_pairs(
        samples
            .iter()
            .map(|s| s.label)
            .zip(decided.into_iter().map(Some)),
    ))
}

/// When the calibrated group vote is weighed against the classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BlendRuleMode {
    /// Never: the group vote decides.
    Never,
    /// Where it beats the group vote alone on validation (cross-fitted).
    #[default]
    Validated,
    /// Whenever a group vote is chosen and a classifier blended.
    Always,
}

/// The blend rule, where the calibrated group vote and a classifier are
/// both in play and the rule, cross-fitted on two halves of the validation
/// texts (`folds`, whole reference groups on one side), beats the group vote
/// alone on the same texts; the rule kept is then fitted on all of them.
/// `p`: each validation text's classifier probability.
pub(super) fn choose_blend_rule(
    cal: Calibration,
    val: &[(Label, Vec<Neighbour>)],
    p: Option<&[Option<f64>]>,
    folds: &[bool],
    mode: BlendRuleMode,
) -> Calibration {
    let (Some(m), Some(p), false) = (cal.groups, p, mode == BlendRuleMode::Never) else {
        return cal;
    };
    let mut samples = Vec::new();
    let mut sample_folds = Vec::new();
    for (((label, nb), p), &fold) in val.iter().zip(p).zip(folds) {
        let margin = group_vote(nb, m, cal.group_by).as_ref().and_then(margin);
        if let (Some(margin), Some(&p)) = (margin, p.as_ref()) {
            samples.push(Sample {
                label: *label,
                margin,
                p,
            });
            sample_folds.push(fold);
        }
    }
    let group = avg_rec(&samples, |s| {
        if s.margin > 0.0 {
            Label::Machine
        } else {
            Label::Human
        }
    });
    let cross = cross_fitted_avg_rec(&samples, &sample_folds);
    let blend_rule = cross
        .filter(|&c| c > group || mode == BlendRuleMode::Always)
        .and_then(|_| BlendRule::fit(&samples));
    Calibration {
        blend_rule,
        blend_rule_avg_rec: cross.map(|c| (c, group)),
        ..cal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::calibrate::calibrate;
    use crate::detect::calibrate::tests::nb;

    fn s(label: Label, margin: f64, p: f64) -> Sample {
        Sample { label, margin, p }
    }

    /// Texts whose margin is uninformative near zero, where the classifier
    /// knows better: deterministic, no randomness.
    fn tied_margins() -> Vec<Sample> {
        let mut out = Vec::new();
        for i in 0..200 {
            let m = (i as f64 / 200.0 - 0.5) * 0.02; // -0.01 .. 0.01
            out.push(s(Label::Machine, m + 0.002, 0.8));
            out.push(s(Label::Human, m - 0.002, 0.2));
        }
        // Clear margins decide even against the classifier.
        for i in 0..50 {
            let m = 0.05 + i as f64 * 0.001;
            out.push(s(Label::Machine, m, 0.1));
            out.push(s(Label::Human, -m, 0.9));
        }
        out
    }

    #[test]
    fn the_fit_lets_the_classifier_decide_near_ties_and_the_margin_elsewhere() {
        let samples = tied_margins();
        let d = BlendRule::fit(&samples).unwrap();
        assert!(d.margin > 0.0 && d.classifier > 0.0, "{d:?}");
        let group_vote = avg_rec(&samples, |s| {
            if s.margin > 0.0 {
                Label::Machine
            } else {
                Label::Human
            }
        });
        let rule = avg_rec(&samples, |x| d.label(x.margin, x.p));
        assert!(rule > group_vote, "{rule} vs {group_vote}");
        assert_eq!(d.label(0.0, 0.9), Label::Machine);
        assert_eq!(d.label(0.0, 0.1), Label::Human);
        assert_eq!(d.label(0.1, 0.05), Label::Machine);
        assert_eq!(d.label(-0.1, 0.95), Label::Human);
        // The same texts give the same rule.
        assert_eq!(BlendRule::fit(&samples), Some(d));
    }

    #[test]
    fn a_fit_needs_both_labels_and_survives_separable_texts() {
        assert!(BlendRule::fit(&[s(Label::Machine, 0.1, 0.9)]).is_none());
        assert!(BlendRule::fit(&[]).is_none());
        // Perfectly separable by the margin: the ridge keeps it finite.
        let sep: Vec<Sample> = (0..20)
            .flat_map(|i| {
                let m = 0.01 + i as f64 * 0.001;
                [s(Label::Machine, m, 0.5), s(Label::Human, -m, 0.5)]
            })
            .collect();
        let d = BlendRule::fit(&sep).unwrap();
        assert!(d.margin.is_finite() && d.margin > 0.0);
        assert_eq!(avg_rec(&sep, |x| d.label(x.margin, x.p)), 100.0);
        // Extreme probabilities are clamped, not infinite.
        assert!(log_odds(0.0).is_finite() && log_odds(1.0).is_finite());
    }

    #[test]
    fn cross_fitting_scores_each_fold_with_the_other_folds_rule() {
        let samples = tied_margins();
        let fold: Vec<bool> = (0..samples.len()).map(|i| i % 4 < 2).collect();
        let cross = cross_fitted_avg_rec(&samples, &fold).unwrap();
        assert!(cross > 90.0, "{cross}");
        // A fold without one label cannot be fitted.
        let one_sided: Vec<bool> = samples.iter().map(|s| s.label == Label::Machine).collect();
        assert!(cross_fitted_avg_rec(&samples, &one_sided).is_none());
    }

    #[test]
    fn the_blend_rule_is_kept_as_the_mode_says() {
        // Near-tied groups: the group vote is right on half of them, the
        // classifier on all of them; clear margins decide against it.
        let text = |margin: f32| {
            vec![
                nb(Label::Machine, "m", 0.8 + margin / 2.0),
                nb(Label::Human, "", 0.8 - margin / 2.0),
            ]
        };
        let mut val = Vec::new();
        let mut p = Vec::new();
        for i in 0..80 {
            let near = (i % 8) as f32 * 0.001 - 0.0035; // both signs, small
            let (label, sure) = match i % 2 {
                0 => (Label::Machine, 0.9),
                _ => (Label::Human, 0.1),
            };
            val.push((label, text(near)));
            p.push(Some(sure));
            let clear = match label {
                Label::Machine => 0.1,
                Label::Human => -0.1,
            };
            val.push((label, text(clear)));
            p.push(Some(1.0 - sure));
        }
        // Each fold holds both labels.
        let folds: Vec<bool> = (0..val.len()).map(|j| (j / 2) % 4 < 2).collect();
        let cal = Calibration {
            groups: Some(1),
            ..calibrate(&val, 0.05, &[0.01], None)
        };
        let never = choose_blend_rule(cal.clone(), &val, Some(&p), &folds, BlendRuleMode::Never);
        assert_eq!(never, cal);
        let validated = choose_blend_rule(
            cal.clone(),
            &val,
            Some(&p),
            &folds,
            BlendRuleMode::Validated,
        );
        let (cross, group) = validated.blend_rule_avg_rec.unwrap();
        assert!(cross > group, "{cross} vs {group}");
        let rule = validated.blend_rule.expect("validation prefers the rule");
        assert_eq!(validated.vote_config(None).blend_rule, Some(rule));
        // Without a classifier or a group vote there is nothing to weigh.
        let none = choose_blend_rule(cal.clone(), &val, None, &folds, BlendRuleMode::Always);
        assert_eq!(none.blend_rule, None);
        let majority = Calibration {
            groups: None,
            ..cal.clone()
        };
        let kept = choose_blend_rule(
            majority.clone(),
            &val,
            Some(&p),
            &folds,
            BlendRuleMode::Always,
        );
        assert_eq!(kept, majority);
        // Where the classifier is no help, validation keeps the group vote
        // and only `always` uses the rule.
        let useless = vec![Some(0.5); val.len()];
        let validated = choose_blend_rule(
            cal.clone(),
            &val,
            Some(&useless),
            &folds,
            BlendRuleMode::Validated,
        );
        assert_eq!(validated.blend_rule, None);
        assert!(validated.blend_rule_avg_rec.is_some());
        let always = choose_blend_rule(cal, &val, Some(&useless), &folds, BlendRuleMode::Always);
        assert!(always.blend_rule.is_some());
    }
}

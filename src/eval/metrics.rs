//! Detection metrics over labelled verdicts. "Positive" is machine.
use serde::Serialize;

use crate::detect::Verdict;
use crate::store::{Label, NewReference};

/// One scored text: truth, majority label, machine score.
#[derive(Debug, Clone, Copy)]
pub struct Scored {
    pub truth: Label,
    pub predicted: Label,
    pub score: f64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub n_human: usize,
    pub n_machine: usize,
    /// Percent, 0-100.
    pub human_rec: f64,
    pub machine_rec: f64,
    pub avg_rec: f64,
    pub accuracy: f64,
    pub f1_machine: f64,
    pub f1_human: f64,
    /// Fractions, 0-1; `None` when one class is absent.
    pub auroc: Option<f64>,
    pub tpr_at_1pct_fpr: Option<f64>,
    pub tpr_at_5pct_fpr: Option<f64>,
}

/// Each scored record's truth beside its verdict.
pub fn scored(records: &[NewReference], verdicts: &[Verdict]) -> Vec<Scored> {
    records
        .iter()
        .zip(verdicts)
        .map(|(r, v)| Scored {
            truth: r.label,
            predicted: v.label,
            score: v.score,
        })
        .collect()
}

/// `a / b` in percent; 0 when `b` is 0.
pub fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

fn f1(tp: usize, fp: usize, fn_: usize) -> f64 {
    let denom = 2 * tp + fp + fn_;
    if denom == 0 {
        0.0
    } else {
        100.0 * 2.0 * tp as f64 / denom as f64
    }
}

pub fn summarize(rows: &[Scored]) -> Summary {
    let count = |t: Label, p: Label| {
        rows.iter()
            .filter(|r| r.truth == t && r.predicted == p)
            .count()
    };
    let (mm, mh) = (
        count(Label::Machine, Label::Machine),
        count(Label::Machine, Label::Human),
    );
    let (hh, hm) = (
        count(Label::Human, Label::Human),
        count(Label::Human, Label::Machine),
    );
    let n_machine = mm + mh;
    let n_human = hh + hm;
    let human_rec = pct(hh, n_human);
    let machine_rec = pct(mm, n_machine);
    let both = n_human > 0 && n_machine > 0;
    let avg_rec = match (n_human > 0, n_machine > 0) {
        (true, true) => (human_rec + machine_rec) / 2.0,
        (true, false) => human_rec,
        _ => machine_rec,
    };
    let roc = both.then(|| roc_curve(rows));
    Summary {
        n: rows.len(),
        n_human,
        n_machine,
        human_rec,
        machine_rec,
        avg_rec,
        accuracy: pct(mm + hh, rows.len()),
        f1_machine: f1(mm, hm, mh),
        f1_human: f1(hh, mh, hm),
        auroc: roc.as_ref().map(|c| auc(c)),
        tpr_at_1pct_fpr: roc.as_ref().map(|c| tpr_at_fpr(c, 0.01)),
        tpr_at_5pct_fpr: roc.as_ref().map(|c| tpr_at_fpr(c, 0.05)),
    }
}

/// ROC points `(fpr, tpr)` from the highest threshold down, ties grouped.
pub fn roc_curve(rows: &[Scored]) -> Vec<(f64, f64)> {
    let mut s: Vec<(f64, bool)> = rows
        .iter()
        .map(|r| (r.score, r.truth == Label::Machine))
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0));
    let pos = s.iter().filter(|x| x.1).count().max(1) as f64;
    let neg = s.iter().filter(|x| !x.1).count().max(1) as f64;
    let mut pts = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < s.len() {
        let t = s[i].0;
        while i < s.len() && s[i].0 == t {
            if s[i].1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        pts.push((fp / neg, tp / pos));
    }
    pts
}

/// Area under the ROC curve (trapezoids: ties count half).
pub fn auc(curve: &[(f64, f64)]) -> f64 {
    curve
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum()
}

/// Highest TPR among thresholds whose FPR does not exceed `max_fpr`.
pub fn tpr_at_fpr(curve: &[(f64, f64)], max_fpr: f64) -> f64 {
    curve
        .iter()
        .filter(|(f, _)| *f <= max_fpr + 1e-12)
        .map(|(_, t)| *t)
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(truth: Label, predicted: Label, score: f64) -> Scored {
        Scored {
            truth,
            predicted,
            score,
        }
    }

    #[test]
    fn recalls_f1_and_perfect_ranking() {
        use Label::{Human as H, Machine as M};
        let rows = [
            s(M, M, 0.9),
            s(M, H, 0.6),
            s(H, H, 0.1),
            s(H, H, 0.2),
            s(H, M, 0.55),
        ];
        let sum = summarize(&rows);
        assert_eq!((sum.n_machine, sum.n_human), (2, 3));
        assert!((sum.machine_rec - 50.0).abs() < 1e-9);
        assert!((sum.human_rec - 200.0 / 3.0).abs() < 1e-9);
        assert!((sum.avg_rec - (50.0 + 200.0 / 3.0) / 2.0).abs() < 1e-9);
        assert!((sum.accuracy - 60.0).abs() < 1e-9);
        assert!((sum.f1_machine - 50.0).abs() < 1e-9);
        // Machines score 0.9, 0.6; humans 0.55, 0.2, 0.1: perfectly separated.
        assert!((sum.auroc.unwrap() - 1.0).abs() < 1e-12);
        assert!((sum.tpr_at_1pct_fpr.unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn ties_count_half_and_single_class_has_no_auroc() {
        use Label::{Human as H, Machine as M};
        let tied = [s(M, M, 0.5), s(H, H, 0.5)];
        assert!((summarize(&tied).auroc.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(summarize(&tied).tpr_at_1pct_fpr, Some(0.0));
        assert!(summarize(&[s(M, M, 0.5)]).auroc.is_none());
    }
}

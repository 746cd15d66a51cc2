//! Choosing the classifier's regularisation on the references alone.
//!
//! The benchmark's rows measure texts the references do not cover: another
//! domain (OUTFOX essays) or a generator family they lack. A choice of `C`
//! that fits the references' own distribution best is not the one that
//! generalizes best, and the scored files may not choose it. So the
//! references are cut into folds the way the benchmark cuts: each large
//! domain held out in turn (its human and machine texts), and each large
//! machine family held out in turn (its texts and every fourth human text).
//! For every `C` the classifier is fitted on the rest and scored on the fold;
//! the `C` with the best mean AUROC over all folds is chosen.
use serde::Serialize;

use super::metrics::{auc, roc_curve, summarize, Scored};
use crate::detect::classifier::{Classifier, ClassifierConfig};
use crate::store::Label;

/// Folds smaller than this many references are not held out.
pub const MIN_FOLD: usize = 300;

/// The labelled references cross-validation reads.
pub struct CvInput<'a> {
    pub texts: &'a [&'a str],
    pub labels: &'a [Label],
    pub domains: &'a [Option<String>],
    pub families: &'a [Option<String>],
}

/// One held-out fold.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Fold {
    /// `domain` or `family`.
    pub kind: &'static str,
    pub held_out: String,
    pub human: usize,
    pub machine: usize,
    /// AUROC and AvgRec (threshold 0.5) for each `C`, in the order given.
    pub auroc: Vec<f64>,
    pub avg_rec: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CvReport {
    pub references: usize,
    pub cs: Vec<f64>,
    pub folds: Vec<Fold>,
    /// The `C` with the best mean AUROC over all folds.
    pub chosen: f64,
    /// The shipped default's `C`.
    pub default: f64,
}

/// Which references each fold holds out (`true`: scored, not fitted on).
fn folds(input: &CvInput, min_fold: usize) -> Vec<(&'static str, String, Vec<bool>)> {
    let n = input.texts.len();
    let mut out = Vec::new();
    let mut domains: Vec<&str> = input.domains.iter().flatten().map(String::as_str).collect();
    domains.sort_unstable();
    domains.dedup();
    for d in domains {
        let held: Vec<bool> = input
            .domains
            .iter()
            .map(|x| x.as_deref() == Some(d))
            .collect();
        let machine = (0..n)
            .filter(|&i| held[i] && input.labels[i] == Label::Machine)
            .count();
        let size = held.iter().filter(|h| **h).count();
        if size >= min_fold && machine > 0 && machine < size {
            out.push(("domain", d.to_owned(), held));
        }
    }
    let mut families: Vec<&str> = (0..n)
        .filter(|&i| input.labels[i] == Label::Machine)
        .filter_map(|i| input.families[i].as_deref())
        .collect();
    families.sort_unstable();
    families.dedup();
    for f in families {
        let mut humans = 0usize;
        let held: Vec<bool> = (0..n)
            .map(|i| match input.labels[i] {
                Label::Machine => input.families[i].as_deref() == Some(f),
                Label::Human => {
                    humans += 1;
                    humans.is_multiple_of(4)
                }
            })
            .collect();
        let machine = (0..n)
            .filter(|&i| held[i] && input.labels[i] == Label::Machine)
            .count();
        if machine >= min_fold && machine < held.iter().filter(|h| **h).count() {
            out.push(("family", f.to_owned(), held));
        }
    }
    out
}

/// Cross-validates the classifier's `C` over domain and family folds of the
/// references; `progress(done, total)` after each fit.
pub fn cross_validate(
    input: &CvInput,
    cs: &[f64],
    min_fold: usize,
    progress: &dyn Fn(usize, usize),
) -> CvReport {
    let plan = folds(input, min_fold);
    let total = plan.len() * cs.len();
    let mut done = 0;
    let mut out = Vec::new();
    for (kind, name, held) in plan {
        let (mut fit_t, mut fit_l, mut score_t, mut truth) = (vec![], vec![], vec![], vec![]);
        for (i, &h) in held.iter().enumerate() {
            if h {
                score_t.push(input.texts[i]);
                truth.push(input.labels[i]);
            } else {
                fit_t.push(input.texts[i]);
                fit_l.push(input.labels[i]);
            }
        }
        let (mut auroc, mut avg_rec) = (Vec::new(), Vec::new());
        for &c in cs {
            let cfg = ClassifierConfig {
                c,
                ..ClassifierConfig::default()
            };
            let model = Classifier::fit(&fit_t, &fit_l, &cfg);
            let rows: Vec<Scored> = score_t
                .iter()
                .zip(&truth)
                .map(|(t, &truth)| {
                    let score = model.as_ref().and_then(|m| m.predict(t)).unwrap_or(0.5);
                    let predicted = if score > 0.5 {
                        Label::Machine
                    } else {
                        Label::Human
                    };
                    Scored {
                        truth,
                        predicted,
                        score,
                    }
                })
                .collect();
            auroc.push(auc(&roc_curve(&rows)));
            avg_rec.push(summarize(&rows).avg_rec);
            done += 1;
            progress(done, total);
        }
        out.push(Fold {
            kind,
            held_out: name,
            human: truth.iter().filter(|l| **l == Label::Human).count(),
            machine: truth.iter().filter(|l| **l == Label::Machine).count(),
            auroc,
            avg_rec,
        });
    }
    let mut report = CvReport {
        references: input.texts.len(),
        cs: cs.to_vec(),
        folds: out,
        chosen: ClassifierConfig::default().c,
        default: ClassifierConfig::default().c,
    };
    let means = report.means(None);
    if let Some(j) = (0..cs.len()).max_by(|&a, &b| means[a].0.total_cmp(&means[b].0)) {
        report.chosen = cs[j];
    }
    report
}

impl CvReport {
    /// Mean AUROC and AvgRec of the folds of `kind` (`None`: all) for each `C`.
    pub fn means(&self, kind: Option<&str>) -> Vec<(f64, f64)> {
        let folds: Vec<&Fold> = self
            .folds
            .iter()
            .filter(|f| kind.is_none_or(|k| f.kind == k))
            .collect();
        let n = folds.len().max(1) as f64;
        (0..self.cs.len())
            .map(|j| {
                (
                    folds.iter().map(|f| f.auroc[j]).sum::<f64>() / n,
                    folds.iter().map(|f| f.avg_rec[j]).sum::<f64>() / n,
                )
            })
            .collect()
    }

    pub fn markdown(&self) -> String {
        let mut s = format!(
            "Classifier regularisation cross-validated on {} references: each domain and each machine \
             family of at least {MIN_FOLD} references held out in turn (AUROC / AvgRec at 0.5).\n\n",
            self.references
        );
        s.push_str("| held out | human | machine |");
        for c in &self.cs {
            s.push_str(&format!(" C = {c} |"));
        }
        s.push_str("\n|---|---|---|");
        s.push_str(&"---|".repeat(self.cs.len()));
        s.push('\n');
        for f in &self.folds {
            s.push_str(&format!(
                "| {} {} | {} | {} |",
                f.kind, f.held_out, f.human, f.machine
            ));
            for (a, r) in f.auroc.iter().zip(&f.avg_rec) {
                s.push_str(&format!(" {a:.4} / {r:.2} |"));
            }
            s.push('\n');
        }
        for (name, kind) in [
            ("domains", Some("domain")),
            ("families", Some("family")),
            ("all folds", None),
        ] {
            s.push_str(&format!("| **mean, {name}** | | |"));
            for (a, r) in self.means(kind) {
                s.push_str(&format!(" {a:.4} / {r:.2} |"));
            }
            s.push('\n');
        }
        s.push_str(&format!(
            "\nChosen by mean AUROC over all folds: C = {} (default {}).\n",
            self.chosen, self.default
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Corpus = (
        Vec<String>,
        Vec<Label>,
        Vec<Option<String>>,
        Vec<Option<String>>,
    );

    /// Two domains, two families: machine texts say "delve", human ones
    /// "lol", whatever the domain or family.
    fn corpus() -> Corpus {
        let (mut t, mut l, mut d, mut f) = (vec![], vec![], vec![], vec![]);
        for i in 0..48 {
            let domain = if i % 2 == 0 { "news" } else { "reviews" };
            let (label, family, marker) = match i % 3 {
                0 => (Label::Human, "human", "lol honestly"),
                1 => (Label::Machine, "alpha", "delve into the intricate"),
                _ => (Label::Machine, "beta", "delve into the multifaceted"),
            };
            t.push(format!(
                "{marker} {domain} item {} of the set {marker}",
                i % 7
            ));
            l.push(label);
            d.push(Some(domain.to_owned()));
            f.push(Some(family.to_owned()));
        }
        (t, l, d, f)
    }

    #[test]
    fn folds_follow_domains_and_families_and_score_each_c() {
        let (t, l, d, f) = corpus();
        let texts: Vec<&str> = t.iter().map(String::as_str).collect();
        let input = CvInput {
            texts: &texts,
            labels: &l,
            domains: &d,
            families: &f,
        };
        let calls = std::cell::Cell::new(0);
        let report = cross_validate(&input, &[1.0, 10.0], 10, &|done, total| {
            calls.set(calls.get() + 1);
            assert!(done <= total);
        });
        let names: Vec<(&str, &str)> = report
            .folds
            .iter()
            .map(|f| (f.kind, f.held_out.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("domain", "news"),
                ("domain", "reviews"),
                ("family", "alpha"),
                ("family", "beta")
            ]
        );
        assert_eq!(calls.get(), 8);
        // A family fold scores that family and every fourth human only.
        let alpha = &report.folds[2];
        assert_eq!((alpha.machine, alpha.human), (16, 4));
        // The marker words separate the labels in every fold.
        for fold in &report.folds {
            for (&a, &r) in fold.auroc.iter().zip(&fold.avg_rec) {
                assert!(a > 0.99 && r > 99.0, "{fold:?}");
            }
        }
        assert!([1.0, 10.0].contains(&report.chosen));
        let md = report.markdown();
        assert!(md.contains("| family beta | 4 | 16 |"), "{md}");
        assert!(md.contains("Chosen by mean AUROC"), "{md}");
    }

    #[test]
    fn small_folds_and_one_label_domains_are_not_held_out() {
        let (t, l, d, f) = corpus();
        let texts: Vec<&str> = t.iter().map(String::as_str).collect();
        let only_human: Vec<Option<String>> = l
            .iter()
            .zip(&d)
            .map(|(l, d)| {
                if *l == Label::Human {
                    Some("diary".to_owned())
                } else {
                    d.clone()
                }
            })
            .collect();
        let input = CvInput {
            texts: &texts,
            labels: &l,
            domains: &only_human,
            families: &f,
        };
        let plan = folds(&input, 10);
        assert!(plan.iter().all(|(_, name, _)| name != "diary"));
        // news/reviews now hold machine texts only: not held out either.
        assert!(plan.iter().all(|(kind, _, _)| *kind == "family"));
        assert!(folds(&input, 17).is_empty());
    }
}

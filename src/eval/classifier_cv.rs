//! Choosing the classifier's regularisation and its masked block on the
//! references alone.
//!
//! The benchmark's rows measure texts the references do not cover: another
//! domain (OUTFOX essays) or a generator family they lack. A choice of `C`
//! that fits the references' own distribution best is not the one that
//! generalizes best, and the scored files may not choose it. So the
//! references are cut into folds the way the benchmark cuts: each large
//! domain held out in turn (its human and machine texts), and each large
//! machine family held out in turn (its texts and every fourth human text).
//! For every candidate (a `C`, and how many common words the masked
//! character block keeps, or no such block) the classifier is fitted on the
//! rest and scored on the fold; the candidate with the best mean AUROC over
//! all folds is chosen.
use serde::Serialize;

use super::metrics::{auc, roc_curve, summarize, Scored};
use crate::detect::classifier::{Classifier, ClassifierConfig, MaskedTerms};
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

/// One classifier setting cross-validation compares.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Candidate {
    pub c: f64,
    /// Common words the masked block keeps (0: no masked block).
    pub keep_words: usize,
}

impl Candidate {
    /// The shipped default's setting.
    pub fn default_setting() -> Self {
        let d = ClassifierConfig::default();
        Self {
            c: d.c,
            keep_words: d.masked.map_or(0, |m| m.keep_words),
        }
    }

    /// The default configuration with this `C` and masked block.
    pub fn config(&self) -> ClassifierConfig {
        let d = ClassifierConfig::default();
        ClassifierConfig {
            c: self.c,
            masked: (self.keep_words > 0).then(|| MaskedTerms {
                keep_words: self.keep_words,
                ..d.masked.unwrap_or_default()
            }),
            ..d
        }
    }

    /// Every pairing of the `cs` with the `keep_words`.
    pub fn grid(cs: &[f64], keep_words: &[usize]) -> Vec<Self> {
        cs.iter()
            .flat_map(|&c| keep_words.iter().map(move |&k| Self { c, keep_words: k }))
            .collect()
    }

    fn name(&self) -> String {
        match self.keep_words {
            0 => format!("C = {}, unmasked", self.c),
            k => format!("C = {}, masked {k}", self.c),
        }
    }
}

/// One held-out fold.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Fold {
    /// `domain` or `family`.
    pub kind: &'static str,
    pub held_out: String,
    pub human: usize,
    pub machine: usize,
    /// AUROC and AvgRec (threshold 0.5) for each candidate, in the order
    /// given.
    pub auroc: Vec<f64>,
    pub avg_rec: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CvReport {
    pub references: usize,
    pub candidates: Vec<Candidate>,
    pub folds: Vec<Fold>,
    /// The candidate with the best mean AUROC over all folds.
    pub chosen: Candidate,
    /// The shipped default's setting.
    pub default: Candidate,
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

/// Cross-validates the classifier's `candidates` over domain and family
/// folds of the references; `progress(done, total)` after each fit.
pub fn cross_validate(
    input: &CvInput,
    candidates: &[Candidate],
    min_fold: usize,
    progress: &dyn Fn(usize, usize),
) -> CvReport {
    let plan = folds(input, min_fold);
    let total = plan.len() * candidates.len();
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
        for candidate in candidates {
            let model = Classifier::fit(&fit_t, &fit_l, &candidate.config());
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
        candidates: candidates.to_vec(),
        folds: out,
        chosen: Candidate::default_setting(),
        default: Candidate::default_setting(),
    };
    let means = report.means(None);
    if let Some(j) = (0..candidates.len()).max_by(|&a, &b| means[a].0.total_cmp(&means[b].0)) {
        report.chosen = candidates[j];
    }
    report
}

impl CvReport {
    /// Mean AUROC and AvgRec of the folds of `kind` (`None`: all) for each
    /// candidate.
    pub fn means(&self, kind: Option<&str>) -> Vec<(f64, f64)> {
        let folds: Vec<&Fold> = self
            .folds
            .iter()
            .filter(|f| kind.is_none_or(|k| f.kind == k))
            .collect();
        let n = folds.len().max(1) as f64;
        (0..self.candidates.len())
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
            "Classifier settings cross-validated on {} references: each domain and each machine \
             family of at least {MIN_FOLD} references held out in turn (AUROC / AvgRec at 0.5).\n\n",
            self.references
        );
        s.push_str("| held out | human | machine |");
        for c in &self.candidates {
            s.push_str(&format!(" {} |", c.name()));
        }
        s.push_str("\n|---|---|---|");
        s.push_str(&"---|".repeat(self.candidates.len()));
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
            "\nChosen by mean AUROC over all folds: {} (default {}).\n",
            self.chosen.name(),
            self.default.name()
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
        let grid = Candidate::grid(&[1.0, 10.0], &[0, 4]);
        assert_eq!(grid.len(), 4);
        assert_eq!(grid[1].config().masked.map(|m| m.keep_words), Some(4));
        assert_eq!(grid[0].config().masked, None);
        let report = cross_validate(&input, &grid, 10, &|done, total| {
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
        assert_eq!(calls.get(), 16);
        // A family fold scores that family and every fourth human only.
        let alpha = &report.folds[2];
        assert_eq!((alpha.machine, alpha.human), (16, 4));
        // The marker words separate the labels in every fold.
        for fold in &report.folds {
            for (&a, &r) in fold.auroc.iter().zip(&fold.avg_rec) {
                assert!(a > 0.99 && r > 99.0, "{fold:?}");
            }
        }
        assert!(grid.contains(&report.chosen));
        let md = report.markdown();
        assert!(md.contains("| family beta | 4 | 16 |"), "{md}");
        assert!(md.contains("| C = 10, masked 4 |"), "{md}");
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

//! The generalization benchmark: unseen generators, leave-one-family-out.
//!
//! For each family F: the references without any text of F; the scored set
//! is F's texts plus every human text of the test file; k and the
//! thresholds are calibrated on a validation split of those references
//! only. Then the same after `adapt_count` texts of F (from a separate file,
//! never the scored one) join the references: training-free incremental
//! adaptation, as `POST /reference` does it. A family is unseen only if the
//! encoder was also trained without it; with an encoder trained on every
//! family the folds measure the references, not the encoder, and the report
//! says so.
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::metrics::{scored, summarize, Summary};
use super::{abstain, blend, score, EvalError, EvalOptions, LabelledSet};
use crate::encoder::Embed;
use crate::store::{text_sha256, Label, NewReference, VectorRow};
use crate::train::checkpoint::TrainedOn;

#[derive(Debug, Clone, Serialize)]
pub struct Fold {
    pub family: String,
    pub machine_texts: usize,
    pub human_texts: usize,
    /// Without any reference of the family.
    pub unseen: Summary,
    pub unseen_k: usize,
    /// With `added` references of the family.
    pub adapted: Summary,
    pub adapted_k: usize,
    pub added: usize,
    /// Whether the encoder was trained on texts of the family (then the
    /// fold measures the references more than the encoder: leaky); `None`
    /// when its training did not record its families.
    pub encoder_trained_on_family: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Generalization {
    pub encoder: String,
    pub references: usize,
    pub test: String,
    pub folds: Vec<Fold>,
    pub mean_unseen: Mean,
    pub mean_adapted: Mean,
}

/// Unweighted means over the folds (each family counts once).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Mean {
    pub avg_rec: f64,
    pub auroc: f64,
    pub tpr_at_1pct_fpr: f64,
}

fn mean(summaries: &[&Summary]) -> Mean {
    let n = summaries.len().max(1) as f64;
    Mean {
        avg_rec: summaries.iter().map(|s| s.avg_rec).sum::<f64>() / n,
        auroc: summaries
            .iter()
            .map(|s| s.auroc.unwrap_or(0.0))
            .sum::<f64>()
            / n,
        tpr_at_1pct_fpr: summaries
            .iter()
            .map(|s| s.tpr_at_1pct_fpr.unwrap_or(0.0))
            .sum::<f64>()
            / n,
    }
}

fn in_family(r: &NewReference, family: &str) -> bool {
    r.label == Label::Machine && r.family.as_deref() == Some(family)
}

/// `n` records of `family` from `pool`, a seeded choice (by text hash), none
/// of whose texts is in `exclude`.
pub fn pick<'a>(
    pool: &'a [NewReference],
    family: &str,
    n: usize,
    exclude: &std::collections::HashSet<String>,
) -> Vec<&'a NewReference> {
    let mut chosen: Vec<(Vec<u8>, &NewReference)> = pool
        .iter()
        .filter(|r| in_family(r, family) && !exclude.contains(&text_sha256(&r.text)))
        .map(|r| (Sha256::digest(format!("adapt|{}", r.text)).to_vec(), r))
        .collect();
    chosen.sort_by(|a, b| a.0.cmp(&b.0));
    chosen.into_iter().take(n).map(|(_, r)| r).collect()
}

fn evaluate(
    refs: &[VectorRow],
    texts: &[&str],
    test: &LabelledSet,
    dim: usize,
    opts: &EvalOptions,
) -> Result<(Summary, usize), EvalError> {
    let cal = opts.calibrate(refs, texts, dim)?;
    let k = opts.k.unwrap_or(cal.k);
    let mut verdicts = score(refs, test, dim, &cal, opts)?;
    blend(&mut verdicts, refs, texts, &test.records, opts.blend);
    abstain(&mut verdicts, &test.records, None, opts.novelty);
    Ok((summarize(&scored(&test.records, &verdicts)), k))
}

/// Which folds to run and where their added references come from.
pub struct Plan<'a> {
    pub families: &'a [String],
    /// Labelled records the added references are chosen from (embedded
    /// here, only those chosen).
    pub adapt_pool: &'a [NewReference],
    pub adapt_count: usize,
    /// What the encoder was fine-tuned on.
    pub trained_on: &'a TrainedOn,
    /// The references' texts, in their order.
    pub texts: &'a [&'a str],
}

/// Runs every fold.
pub fn leave_family_out(
    refs: &[VectorRow],
    test: &LabelledSet,
    plan: &Plan<'_>,
    encoder: &dyn Embed,
    opts: &EvalOptions,
    progress: &dyn Fn(&str),
) -> Result<Vec<Fold>, EvalError> {
    let Plan {
        families,
        adapt_pool,
        adapt_count,
        trained_on,
        texts: ref_texts,
    } = *plan;
    let dim = encoder.dim();
    let test_texts: std::collections::HashSet<String> =
        test.records.iter().map(|r| text_sha256(&r.text)).collect();
    let mut folds = Vec::new();
    for family in families {
        progress(family);
        let keep =
            |r: &VectorRow| !(r.label == Label::Machine && r.family.as_deref() == Some(family));
        let kept: Vec<VectorRow> = refs.iter().filter(|r| keep(r)).cloned().collect();
        let mut kept_texts: Vec<&str> = refs
            .iter()
            .zip(ref_texts)
            .filter(|(r, _)| keep(r))
            .map(|(_, t)| *t)
            .collect();
        let idx: Vec<usize> = (0..test.records.len())
            .filter(|&i| {
                test.records[i].label == Label::Human || in_family(&test.records[i], family)
            })
            .collect();
        let fold_test = LabelledSet {
            records: idx.iter().map(|&i| test.records[i].clone()).collect(),
            vectors: idx.iter().map(|&i| test.vectors[i].clone()).collect(),
        };
        let machine_texts = idx
            .iter()
            .filter(|&&i| test.records[i].label == Label::Machine)
            .count();
        if machine_texts == 0 {
            continue;
        }
        let (unseen, unseen_k) = evaluate(&kept, &kept_texts, &fold_test, dim, opts)?;
        let added = pick(adapt_pool, family, adapt_count, &test_texts);
        let texts: Vec<&str> = added.iter().map(|r| r.text.as_str()).collect();
        let mut embedded = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(64) {
            embedded.extend(encoder.embed(chunk)?);
        }
        let next_id = kept.iter().map(|r| r.id).max().unwrap_or(0) + 1;
        let mut with = kept;
        with.extend(
            added
                .iter()
                .zip(embedded)
                .enumerate()
                .map(|(i, (r, v))| VectorRow {
                    id: next_id + i as i64,
                    label: r.label,
                    model: r.model.clone(),
                    family: r.family.clone(),
                    source: r.source.clone(),
                    group: Some(r.group.clone().unwrap_or_else(|| text_sha256(&r.text))),
                    embedding: v,
                }),
        );
        kept_texts.extend(&texts);
        let (adapted, adapted_k) = evaluate(&with, &kept_texts, &fold_test, dim, opts)?;
        folds.push(Fold {
            family: family.clone(),
            machine_texts,
            human_texts: idx.len() - machine_texts,
            unseen,
            unseen_k,
            adapted,
            adapted_k,
            added: added.len(),
            encoder_trained_on_family: trained_on.saw(family),
        });
    }
    Ok(folds)
}

impl Generalization {
    pub fn new(encoder: String, references: usize, test: String, folds: Vec<Fold>) -> Self {
        let unseen: Vec<&Summary> = folds.iter().map(|f| &f.unseen).collect();
        let adapted: Vec<&Summary> = folds.iter().map(|f| &f.adapted).collect();
        Self {
            encoder,
            references,
            test,
            mean_unseen: mean(&unseen),
            mean_adapted: mean(&adapted),
            folds,
        }
    }

    pub fn markdown(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.3}"));
        let mut out = format!(
            "Leave-one-family-out: encoder `{}`, {} references, scored on `{}` \
             (each fold: the family's texts and every human text). Leaky: the encoder \
             was trained on the family's texts, so only the references left it out.\n\n\
             | unseen family | leaky | machine | human | k | AvgRec | AUROC | TPR@1%FPR | added refs | k | AvgRec | AUROC | TPR@1%FPR |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
            self.encoder, self.references, self.test
        );
        for f in &self.folds {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | {:.2} | {} | {} |\n",
                f.family,
                match f.encoder_trained_on_family {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "yes (assumed: training families not recorded)",
                },
                f.machine_texts,
                f.human_texts,
                f.unseen_k,
                f.unseen.avg_rec,
                opt(f.unseen.auroc),
                opt(f.unseen.tpr_at_1pct_fpr),
                f.added,
                f.adapted_k,
                f.adapted.avg_rec,
                opt(f.adapted.auroc),
                opt(f.adapted.tpr_at_1pct_fpr),
            ));
        }
        out.push_str(&format!(
            "| **mean** | | | | | **{:.2}** | {:.3} | {:.3} | | | **{:.2}** | {:.3} | {:.3} |\n",
            self.mean_unseen.avg_rec,
            self.mean_unseen.auroc,
            self.mean_unseen.tpr_at_1pct_fpr,
            self.mean_adapted.avg_rec,
            self.mean_adapted.auroc,
            self.mean_adapted.tpr_at_1pct_fpr,
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::EncoderId;

    /// Texts are "<family> <n>": each family sits around its own direction;
    /// family "c" lies between the humans and its own direction, so without
    /// references of its own it reads as human.
    struct Fake(EncoderId);

    fn vector(text: &str) -> Vec<f32> {
        let (family, n) = text.split_once(' ').unwrap();
        let n: f32 = n.parse().unwrap();
        let mut v = [0.0f32; 8];
        match family {
            "human" => v[0] = 1.0,
            "a" => v[1] = 1.0,
            "b" => v[2] = 1.0,
            _ => {
                v[0] = 0.8;
                v[3] = 0.6;
            }
        }
        v[4 + (n as usize % 4)] += 0.05 + 0.001 * n;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / norm).collect()
    }

    impl Embed for Fake {
        fn id(&self) -> &EncoderId {
            &self.0
        }
        fn dim(&self) -> usize {
            8
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, crate::encoder::EncoderError> {
            Ok(texts.iter().map(|t| vector(t)).collect())
        }
    }

    fn record(family: &str, n: usize) -> NewReference {
        NewReference {
            text: format!("{family} {n}"),
            label: if family == "human" {
                Label::Human
            } else {
                Label::Machine
            },
            model: None,
            family: Some(family.into()),
            source: None,
            domain: None,
            attack: None,
            lang: None,
            group: None,
            added_by: "test".into(),
        }
    }

    fn set(records: Vec<NewReference>) -> LabelledSet {
        let vectors = records.iter().map(|r| vector(&r.text)).collect();
        LabelledSet { records, vectors }
    }

    #[test]
    fn folds_hide_the_family_and_adaptation_brings_it_back() {
        let fams = ["human", "a", "b", "c"];
        let refs = set(fams
            .iter()
            .flat_map(|f| (0..60).map(move |n| record(f, n)))
            .collect())
        .rows();
        let test = set(fams
            .iter()
            .flat_map(|f| (100..130).map(move |n| record(f, n)))
            .collect());
        // The pool overlaps the scored texts: those must be skipped.
        let pool: Vec<NewReference> = (110..200).map(|n| record("c", n)).collect();
        let encoder = Fake(EncoderId {
            name: "fake".into(),
            checksum: "0".repeat(64),
            max_length: 8,
        });
        let opts = EvalOptions {
            index: crate::index::IndexKind::Exact,
            cache_dir: None,
            ..EvalOptions::default()
        };
        let families = vec!["c".to_owned(), "a".to_owned(), "absent".to_owned()];
        let folds = leave_family_out(
            &refs,
            &test,
            &Plan {
                families: &families,
                adapt_pool: &pool,
                adapt_count: 25,
                trained_on: &TrainedOn::Recorded(vec!["a".into()]),
                texts: &[],
            },
            &encoder,
            &opts,
            &|_| {},
        )
        .unwrap();
        assert_eq!(folds.len(), 2, "a family with no scored texts has no fold");
        let c = &folds[0];
        assert_eq!(
            (c.family.as_str(), c.machine_texts, c.human_texts),
            ("c", 30, 30)
        );
        assert_eq!(c.added, 25);
        // The encoder saw "a" in training, not "c".
        assert_eq!(c.encoder_trained_on_family, Some(false));
        assert_eq!(folds[1].encoder_trained_on_family, Some(true));
        assert!(c.unseen.machine_rec < 50.0, "{:?}", c.unseen);
        assert!(c.adapted.machine_rec > 90.0, "{:?}", c.adapted);
        // The chosen texts are never scored ones.
        let test_texts: std::collections::HashSet<String> =
            test.records.iter().map(|r| text_sha256(&r.text)).collect();
        assert!(pick(&pool, "c", 25, &test_texts).iter().all(|r| r
            .text
            .split_once(' ')
            .unwrap()
            .1
            .parse::<usize>()
            .unwrap()
            >= 130));
        let report = Generalization::new("fake".into(), refs.len(), "t".into(), folds);
        assert!(report.markdown().contains("| **mean** |"));
        assert!(
            (report.mean_adapted.avg_rec
                - (report.folds[0].adapted.avg_rec + report.folds[1].adapted.avg_rec) / 2.0)
                .abs()
                < 1e-9
        );
    }
}

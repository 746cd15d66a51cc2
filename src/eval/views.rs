//! Choosing the style view (lexical dimensions and the neural weight α) on
//! the references alone.
//!
//! An in-distribution validation split picks the neural view: the encoder
//! was trained on those generators. What the lexical view buys shows only on
//! generators the references lack, and after a few of their texts are added.
//! So each candidate is scored three ways, all on a validation split carved
//! from the references by group (never on a scored file):
//! - `in_distribution`: validation texts against the other references;
//! - `unseen`: for each family F, its validation texts and the human ones
//!   against the other references without F (leave-one-family-out);
//! - `adapted`: the same after `adapt_count` of F's other references are
//!   added back (training-free adaptation).
//!
//! The chosen candidate has the best mean AvgRec of the three. The
//! classifier weight changes the score, not the majority label, so between
//! weights of one view the best mean AUROC of the score decides.
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::metrics::{scored, summarize};
use rayon::prelude::*;

use super::{score, EvalError, EvalOptions, LabelledSet};
use crate::detect::calibrate::calibrate_on;
use crate::detect::classifier::{Classifier, ClassifierConfig};
use crate::encoder::{Lexical, View};
use crate::store::{Label, NewReference, VectorRow};

/// One candidate view and its validation AvgRec (percent).
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub lexical_dim: usize,
    pub alpha: f32,
    /// Weight of the reference-fitted classifier in the score.
    pub blend: f64,
    pub in_distribution: f64,
    pub unseen: f64,
    pub adapted: f64,
    pub mean: f64,
    /// Validation AUROC of the (blended) score, mean of the three.
    pub auroc: f64,
}

/// What is compared and how the validation is carved.
pub struct ViewPlan<'a> {
    /// Lexical dimensions to try (0: the neural view alone).
    pub lexical_dims: &'a [usize],
    pub alphas: &'a [f32],
    /// Classifier weights to try (0: the vote alone).
    pub blends: &'a [f64],
    pub families: &'a [String],
    pub adapt_count: usize,
    /// Share of reference groups held out for validation.
    pub val_fraction: f64,
}

fn in_validation(row: &VectorRow, fraction: f64) -> bool {
    let key = row.group.clone().unwrap_or_else(|| row.id.to_string());
    let h = Sha256::digest(format!("view-validation|{key}"));
    let x = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    (x as f64 / u64::MAX as f64) < fraction
}

fn as_set(rows: &[&VectorRow]) -> LabelledSet {
    LabelledSet {
        records: rows
            .iter()
            .map(|r| NewReference {
                text: String::new(),
                label: r.label,
                model: r.model.clone(),
                family: r.family.clone(),
                source: r.source.clone(),
                domain: None,
                attack: None,
                lang: None,
                group: r.group.clone(),
                added_by: String::new(),
            })
            .collect(),
        vectors: rows.iter().map(|r| r.embedding.clone()).collect(),
    }
}

/// Validation AvgRec and AUROC of `queries` (rows of `all`, by position)
/// against `refs` (rows of `all`, by position), once per classifier weight
/// of `blends`.
fn avg_rec(
    all: &[VectorRow],
    texts: &[&str],
    refs: &[usize],
    queries: &[usize],
    dim: usize,
    blends: &[f64],
    opts: &EvalOptions,
) -> Result<Vec<(f64, f64)>, EvalError> {
    let set = as_set(&queries.iter().map(|&i| &all[i]).collect::<Vec<_>>());
    let ref_rows: Vec<VectorRow> = refs.iter().map(|&i| all[i].clone()).collect();
    let cal = calibrate_on(&ref_rows, dim, &opts.calibration())?;
    let verdicts = score(&ref_rows, &set, dim, &cal, opts)?;
    let p = if blends.iter().any(|b| *b > 0.0) {
        let ref_texts: Vec<&str> = refs.iter().map(|&i| texts[i]).collect();
        let labels: Vec<Label> = ref_rows.iter().map(|r| r.label).collect();
        Classifier::fit(&ref_texts, &labels, &ClassifierConfig::default()).map(|m| {
            queries
                .par_iter()
                .map(|&i| m.predict(texts[i]))
                .collect::<Vec<Option<f64>>>()
        })
    } else {
        None
    };
    Ok(blends
        .iter()
        .map(|&weight| {
            let mut v = verdicts.clone();
            if let (Some(p), true) = (&p, weight > 0.0) {
                for (v, p) in v.iter_mut().zip(p) {
                    if let Some(p) = p {
                        v.blend_classifier(*p, weight);
                    }
                }
            }
            let s = summarize(&scored(&set.records, &v));
            (s.avg_rec, s.auroc.unwrap_or(0.5))
        })
        .collect())
}

fn is_of(r: &VectorRow, family: &str) -> bool {
    r.label == Label::Machine && r.family.as_deref() == Some(family)
}

/// Validation (AvgRec, AUROC) per classifier weight: in distribution,
/// unseen family, added references.
type Scores = Vec<[(f64, f64); 3]>;

/// Scores one set of style vectors (`rows`, in the candidate's space, with
/// their `texts`) once per classifier weight of the plan.
fn validate(
    rows: &[VectorRow],
    texts: &[&str],
    dim: usize,
    plan: &ViewPlan<'_>,
    opts: &EvalOptions,
) -> Result<Scores, EvalError> {
    let (val, refs): (Vec<usize>, Vec<usize>) =
        (0..rows.len()).partition(|&i| in_validation(&rows[i], plan.val_fraction));
    let nb = plan.blends.len();
    let in_distribution = avg_rec(rows, texts, &refs, &val, dim, plan.blends, opts)?;
    let (mut unseen, mut adapted, mut folds) = (vec![(0.0, 0.0); nb], vec![(0.0, 0.0); nb], 0usize);
    for family in plan.families {
        let queries: Vec<usize> = val
            .iter()
            .copied()
            .filter(|&i| rows[i].label == Label::Human || is_of(&rows[i], family))
            .collect();
        if !queries.iter().any(|&i| rows[i].label == Label::Machine) {
            continue;
        }
        let kept: Vec<usize> = refs
            .iter()
            .copied()
            .filter(|&i| !is_of(&rows[i], family))
            .collect();
        let add = |sum: &mut Vec<(f64, f64)>, scores: Vec<(f64, f64)>| {
            for (s, a) in sum.iter_mut().zip(scores) {
                s.0 += a.0;
                s.1 += a.1;
            }
        };
        add(
            &mut unseen,
            avg_rec(rows, texts, &kept, &queries, dim, plan.blends, opts)?,
        );
        let mut of_family: Vec<(Vec<u8>, usize)> = refs
            .iter()
            .copied()
            .filter(|&i| is_of(&rows[i], family))
            .map(|i| (Sha256::digest(format!("adapt|{}", rows[i].id)).to_vec(), i))
            .collect();
        of_family.sort_by(|a, b| a.0.cmp(&b.0));
        let mut with = kept;
        with.extend(of_family.into_iter().take(plan.adapt_count).map(|(_, i)| i));
        add(
            &mut adapted,
            avg_rec(rows, texts, &with, &queries, dim, plan.blends, opts)?,
        );
        folds += 1;
    }
    let n = folds.max(1) as f64;
    Ok((0..nb)
        .map(|b| {
            [
                in_distribution[b],
                (unseen[b].0 / n, unseen[b].1 / n),
                (adapted[b].0 / n, adapted[b].1 / n),
            ]
        })
        .collect())
}

/// Scores every candidate view. `neural` are the references' neural vectors
/// and `texts` their texts (for the lexical view).
pub fn choose(
    neural: &[VectorRow],
    texts: &[&str],
    neural_dim: usize,
    plan: &ViewPlan<'_>,
    opts: &EvalOptions,
    progress: &dyn Fn(&Candidate),
) -> Result<Vec<Candidate>, EvalError> {
    let mut out = Vec::new();
    for &lexical_dim in plan.lexical_dims {
        let alphas: &[f32] = if lexical_dim == 0 {
            &[1.0]
        } else {
            plan.alphas
        };
        for &alpha in alphas {
            let view = if lexical_dim == 0 {
                View::neural()
            } else {
                View::fused(
                    Lexical {
                        dim: lexical_dim,
                        ..Lexical::default()
                    },
                    alpha,
                )
            };
            let vectors = view.finish(texts, neural.iter().map(|r| r.embedding.clone()).collect());
            let rows: Vec<VectorRow> = neural
                .iter()
                .zip(vectors)
                .map(|(r, v)| VectorRow {
                    embedding: v,
                    ..r.clone()
                })
                .collect();
            let scores = validate(&rows, texts, view.dim(neural_dim), plan, opts)?;
            for (&blend, [i, u, a]) in plan.blends.iter().zip(scores) {
                let c = Candidate {
                    lexical_dim,
                    alpha,
                    blend,
                    in_distribution: i.0,
                    unseen: u.0,
                    adapted: a.0,
                    mean: (i.0 + u.0 + a.0) / 3.0,
                    auroc: (i.1 + u.1 + a.1) / 3.0,
                };
                progress(&c);
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// The candidates as a Markdown table, the best (highest mean AvgRec, then
/// highest mean AUROC) marked.
pub fn markdown(candidates: &[Candidate]) -> String {
    let best = candidates
        .iter()
        .max_by(|a, b| a.mean.total_cmp(&b.mean).then(a.auroc.total_cmp(&b.auroc)))
        .map(|c| (c.lexical_dim, c.alpha, c.blend));
    let mut md = String::from(
        "| lexical dims | α | classifier weight | in-distribution | unseen family | + added refs | mean | AUROC (mean) |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for c in candidates {
        let mark = if Some((c.lexical_dim, c.alpha, c.blend)) == best {
            " (chosen)"
        } else {
            ""
        };
        md.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.4}{mark} |\n",
            c.lexical_dim,
            c.alpha,
            c.blend,
            c.in_distribution,
            c.unseen,
            c.adapted,
            c.mean,
            c.auroc
        ));
    }
    md
}

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
//! The chosen candidate has the best mean of the three.
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::metrics::{scored, summarize};
use super::{score, EvalError, EvalOptions, LabelledSet};
use crate::detect::calibrate::calibrate_on;
use crate::encoder::{Lexical, View};
use crate::store::{Label, NewReference, VectorRow};

/// One candidate view and its validation AvgRec (percent).
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub lexical_dim: usize,
    pub alpha: f32,
    pub in_distribution: f64,
    pub unseen: f64,
    pub adapted: f64,
    pub mean: f64,
}

/// What is compared and how the validation is carved.
pub struct ViewPlan<'a> {
    /// Lexical dimensions to try (0: the neural view alone).
    pub lexical_dims: &'a [usize],
    pub alphas: &'a [f32],
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

fn avg_rec(
    refs: &[VectorRow],
    queries: &[&VectorRow],
    dim: usize,
    opts: &EvalOptions,
) -> Result<f64, EvalError> {
    let set = as_set(queries);
    let cal = calibrate_on(refs, dim, &opts.calibration())?;
    let verdicts = score(refs, &set, dim, &cal, opts)?;
    Ok(summarize(&scored(&set.records, &verdicts)).avg_rec)
}

fn is_of(r: &VectorRow, family: &str) -> bool {
    r.label == Label::Machine && r.family.as_deref() == Some(family)
}

/// Scores one set of style vectors (`rows`, in the candidate's space).
fn validate(
    rows: &[VectorRow],
    dim: usize,
    plan: &ViewPlan<'_>,
    opts: &EvalOptions,
) -> Result<(f64, f64, f64), EvalError> {
    let (val, refs): (Vec<&VectorRow>, Vec<&VectorRow>) = rows
        .iter()
        .partition(|r| in_validation(r, plan.val_fraction));
    let refs_owned: Vec<VectorRow> = refs.iter().map(|r| (*r).clone()).collect();
    let in_distribution = avg_rec(&refs_owned, &val, dim, opts)?;
    let (mut unseen, mut adapted, mut folds) = (0.0, 0.0, 0usize);
    for family in plan.families {
        let queries: Vec<&VectorRow> = val
            .iter()
            .copied()
            .filter(|r| r.label == Label::Human || is_of(r, family))
            .collect();
        if !queries.iter().any(|r| r.label == Label::Machine) {
            continue;
        }
        let kept: Vec<VectorRow> = refs_owned
            .iter()
            .filter(|r| !is_of(r, family))
            .cloned()
            .collect();
        unseen += avg_rec(&kept, &queries, dim, opts)?;
        let mut of_family: Vec<(Vec<u8>, &VectorRow)> = refs_owned
            .iter()
            .filter(|r| is_of(r, family))
            .map(|r| (Sha256::digest(format!("adapt|{}", r.id)).to_vec(), r))
            .collect();
        of_family.sort_by(|a, b| a.0.cmp(&b.0));
        let mut with = kept;
        with.extend(
            of_family
                .into_iter()
                .take(plan.adapt_count)
                .map(|(_, r)| r.clone()),
        );
        adapted += avg_rec(&with, &queries, dim, opts)?;
        folds += 1;
    }
    let n = folds.max(1) as f64;
    Ok((in_distribution, unseen / n, adapted / n))
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
            let (in_distribution, unseen, adapted) =
                validate(&rows, view.dim(neural_dim), plan, opts)?;
            let c = Candidate {
                lexical_dim,
                alpha,
                in_distribution,
                unseen,
                adapted,
                mean: (in_distribution + unseen + adapted) / 3.0,
            };
            progress(&c);
            out.push(c);
        }
    }
    Ok(out)
}

/// The candidates as a Markdown table, the best (highest mean) marked.
pub fn markdown(candidates: &[Candidate]) -> String {
    let best = candidates
        .iter()
        .max_by(|a, b| a.mean.total_cmp(&b.mean))
        .map(|c| (c.lexical_dim, c.alpha));
    let mut md = String::from(
        "| lexical dims | α | in-distribution | unseen family | + added refs | mean |\n\
         |---|---|---|---|---|---|\n",
    );
    for c in candidates {
        let mark = if Some((c.lexical_dim, c.alpha)) == best {
            " (chosen)"
        } else {
            ""
        };
        md.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2}{mark} |\n",
            c.lexical_dim, c.alpha, c.in_distribution, c.unseen, c.adapted, c.mean
        ));
    }
    md
}

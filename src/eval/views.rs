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
//! A trained encoder has seen most reference texts (they are a sample of
//! its training corpus), which flatters the neural view; with the split
//! its training held out (`ViewPlan::validation`), only texts it never saw
//! validate.
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
    /// Share of the reference mean subtracted from lexical vectors.
    pub centre: f32,
    pub alpha: f32,
    /// Weight of the reference-fitted classifier in the score.
    pub blend: f64,
    pub in_distribution: f64,
    /// Each --leave-family-out family left out of the references (mean).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unseen: Option<f64>,
    /// The same with `adapt_count` of its references added back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapted: Option<f64>,
    /// Each --leave-domain-out domain left out of the references (mean).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_domain: Option<f64>,
    /// The same with `adapt_count` of its references added back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_added: Option<f64>,
    /// Mean AvgRec of the measurements.
    pub mean: f64,
    /// Validation AUROC of the (blended) score, mean of the measurements.
    pub auroc: f64,
}

/// What is compared and how the validation is carved.
pub struct ViewPlan<'a> {
    /// Lexical dimensions to try (0: the neural view alone).
    pub lexical_dims: &'a [usize],
    /// Lexical centres to try (0: uncentred).
    pub centres: &'a [f32],
    pub alphas: &'a [f32],
    /// Classifier weights to try (0: the vote alone).
    pub blends: &'a [f64],
    pub families: &'a [String],
    pub adapt_count: usize,
    /// Share of reference groups held out for validation.
    pub val_fraction: f64,
    /// Domains left out of the references in turn (scored on their
    /// validation texts, then with `adapt_count` of their references added
    /// back): what posting samples of a new domain buys.
    pub domains: &'a [String],
    /// Each row's domain, by position.
    pub domain_of: &'a [Option<String>],
    /// Which rows (by position) validate, instead of `val_fraction` of the
    /// groups: the texts a trained encoder never saw, so that the choice is
    /// not biased towards the view it was trained on.
    pub validation: Option<&'a (dyn Fn(usize) -> bool + Sync)>,
}

/// Rows that validate under `plan` (the rest are references).
fn validates(rows: &[VectorRow], plan: &ViewPlan<'_>, i: usize) -> bool {
    match plan.validation {
        Some(held_out) => held_out(i),
        None => in_validation(&rows[i], plan.val_fraction),
    }
}

pub fn in_validation(row: &VectorRow, fraction: f64) -> bool {
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

/// (AvgRec, AUROC) per classifier weight.
type PerWeight = Vec<(f64, f64)>;

/// Validation (AvgRec, AUROC) per classifier weight: in distribution,
/// unseen family and family's references added, unseen domain and
/// domain's references added.
struct Scores {
    in_distribution: PerWeight,
    /// Unseen family and its references added (`None` without folds).
    families: Option<(PerWeight, PerWeight)>,
    /// Unseen domain and its references added (`None` without folds).
    domains: Option<(PerWeight, PerWeight)>,
}

/// Sums of (AvgRec, AUROC) per classifier weight over folds.
struct FoldSums {
    left_out: PerWeight,
    added: PerWeight,
    folds: usize,
}

impl FoldSums {
    fn new(n: usize) -> Self {
        Self {
            left_out: vec![(0.0, 0.0); n],
            added: vec![(0.0, 0.0); n],
            folds: 0,
        }
    }

    /// Mean over the folds scored, `None` if none was.
    fn means(&self) -> Option<(PerWeight, PerWeight)> {
        if self.folds == 0 {
            return None;
        }
        let n = self.folds as f64;
        let mean = |v: &[(f64, f64)]| v.iter().map(|(a, b)| (a / n, b / n)).collect();
        Some((mean(&self.left_out), mean(&self.added)))
    }
}

fn add(sum: &mut [(f64, f64)], scores: Vec<(f64, f64)>) {
    for (s, a) in sum.iter_mut().zip(scores) {
        s.0 += a.0;
        s.1 += a.1;
    }
}

/// Everything one fold scores against and with.
struct Fold<'a> {
    val: &'a [usize],
    refs: &'a [usize],
    /// Rows of the left-out group (a family, a domain).
    member: &'a dyn Fn(usize) -> bool,
    /// Validation rows scored in the fold.
    query: &'a dyn Fn(usize) -> bool,
}

/// One fold: the queries against the references without the left-out
/// group, then with `adapt_count` of its references added back. `None`
/// when the queries lack a label.
#[allow(clippy::too_many_arguments)]
fn fold(
    rows: &[VectorRow],
    texts: &[&str],
    f: &Fold<'_>,
    dim: usize,
    plan: &ViewPlan<'_>,
    opts: &EvalOptions,
    sums: &mut FoldSums,
) -> Result<(), EvalError> {
    let queries: Vec<usize> = f.val.iter().copied().filter(|&i| (f.query)(i)).collect();
    let has = |l: Label| queries.iter().any(|&i| rows[i].label == l);
    if !has(Label::Machine) || !has(Label::Human) {
        return Ok(());
    }
    let kept: Vec<usize> = f.refs.iter().copied().filter(|&i| !(f.member)(i)).collect();
    add(
        &mut sums.left_out,
        avg_rec(rows, texts, &kept, &queries, dim, plan.blends, opts)?,
    );
    let mut of_group: Vec<(Vec<u8>, usize)> = f
        .refs
        .iter()
        .copied()
        .filter(|&i| (f.member)(i))
        .map(|i| (Sha256::digest(format!("adapt|{}", rows[i].id)).to_vec(), i))
        .collect();
    of_group.sort_by(|a, b| a.0.cmp(&b.0));
    let mut with = kept;
    with.extend(of_group.into_iter().take(plan.adapt_count).map(|(_, i)| i));
    add(
        &mut sums.added,
        avg_rec(rows, texts, &with, &queries, dim, plan.blends, opts)?,
    );
    sums.folds += 1;
    Ok(())
}

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
        (0..rows.len()).partition(|&i| validates(rows, plan, i));
    let nb = plan.blends.len();
    let in_distribution = avg_rec(rows, texts, &refs, &val, dim, plan.blends, opts)?;
    let mut families = FoldSums::new(nb);
    for family in plan.families {
        let member = |i: usize| is_of(&rows[i], family);
        let query = |i: usize| rows[i].label == Label::Human || is_of(&rows[i], family);
        let f = Fold {
            val: &val,
            refs: &refs,
            member: &member,
            query: &query,
        };
        fold(rows, texts, &f, dim, plan, opts, &mut families)?;
    }
    let mut domains = FoldSums::new(nb);
    for domain in plan.domains {
        let member = |i: usize| plan.domain_of.get(i).and_then(Option::as_deref) == Some(domain);
        let f = Fold {
            val: &val,
            refs: &refs,
            member: &member,
            query: &member,
        };
        fold(rows, texts, &f, dim, plan, opts, &mut domains)?;
    }
    Ok(Scores {
        in_distribution,
        families: families.means(),
        domains: domains.means(),
    })
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
        let (alphas, centres): (&[f32], &[f32]) = if lexical_dim == 0 {
            (&[1.0], &[0.0])
        } else {
            (plan.alphas, plan.centres)
        };
        for (&centre, &alpha) in centres
            .iter()
            .flat_map(|c| alphas.iter().map(move |a| (c, a)))
        {
            let view = if lexical_dim == 0 {
                View::neural()
            } else {
                let lexical = Lexical {
                    dim: lexical_dim,
                    centre,
                    ..Lexical::default()
                };
                lexical.validate().map_err(EvalError::View)?;
                View::fused(lexical, alpha)
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
            for (b, &blend) in plan.blends.iter().enumerate() {
                let pair =
                    |v: &Option<(PerWeight, PerWeight)>| v.as_ref().map(|(l, a)| (l[b], a[b]));
                let (family, domain) = (pair(&scores.families), pair(&scores.domains));
                let mut measured = vec![scores.in_distribution[b]];
                for (l, a) in family.iter().chain(&domain) {
                    measured.extend([*l, *a]);
                }
                let n = measured.len() as f64;
                let c = Candidate {
                    lexical_dim,
                    centre,
                    alpha,
                    blend,
                    in_distribution: scores.in_distribution[b].0,
                    unseen: family.map(|f| f.0 .0),
                    adapted: family.map(|f| f.1 .0),
                    new_domain: domain.map(|d| d.0 .0),
                    domain_added: domain.map(|d| d.1 .0),
                    mean: measured.iter().map(|x| x.0).sum::<f64>() / n,
                    auroc: measured.iter().map(|x| x.1).sum::<f64>() / n,
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
        .map(|c| (c.lexical_dim, c.centre, c.alpha, c.blend));
    let domains = candidates.iter().any(|c| c.new_domain.is_some());
    let mut md = String::from(
        "| lexical dims | centre | α | classifier weight | in-distribution | unseen family | + added refs |",
    );
    if domains {
        md.push_str(" unseen domain | + added refs |");
    }
    md.push_str(" mean | AUROC (mean) |\n|---|---|---|---|---|---|---|");
    if domains {
        md.push_str("---|---|");
    }
    md.push_str("---|---|\n");
    for c in candidates {
        let mark = if Some((c.lexical_dim, c.centre, c.alpha, c.blend)) == best {
            " (chosen)"
        } else {
            ""
        };
        md.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            c.lexical_dim,
            c.centre,
            c.alpha,
            c.blend,
            c.in_distribution,
            cell(c.unseen),
            cell(c.adapted),
        ));
        if domains {
            md.push_str(&format!(
                " {} | {} |",
                cell(c.new_domain),
                cell(c.domain_added)
            ));
        }
        md.push_str(&format!(" {:.2} | {:.4}{mark} |\n", c.mean, c.auroc));
    }
    md
}

/// A table cell for a measurement that may be absent (`-`).
pub fn cell(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexKind;

    /// A unit vector near axis `axis` of 6, jittered by `i`.
    fn near(axis: usize, i: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..6)
            .map(|d| ((i * 7 + d * 13) % 11) as f32 * 0.03)
            .collect();
        v[axis] += 1.0;
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn row(id: usize, label: Label, axis: usize) -> VectorRow {
        let machine = label == Label::Machine;
        VectorRow {
            id: id as i64,
            label,
            model: machine.then(|| "m".to_owned()),
            family: machine.then(|| "f".to_owned()),
            source: None,
            group: Some(format!("g{id}")),
            embedding: near(axis, id),
        }
    }

    /// Domain "a" writes human texts near axis 0 and machine ones near
    /// axis 1; domain "b" near axes 2 and 3. Left out, "b" is judged by
    /// neighbours of another domain; with its references added back, by
    /// its own.
    #[test]
    fn a_left_out_domain_recovers_when_its_references_are_added() {
        let mut rows = Vec::new();
        let mut domain_of = Vec::new();
        for (domain, human, machine) in [("a", 0, 1), ("b", 2, 3)] {
            for _ in 0..60 {
                let id = rows.len();
                rows.push(row(id, Label::Human, human));
                rows.push(row(id + 1, Label::Machine, machine));
                domain_of.extend([Some(domain.to_owned()), Some(domain.to_owned())]);
            }
        }
        let texts = vec![""; rows.len()];
        let validation = |i: usize| i % 8 < 2;
        let domains = vec!["b".to_owned(), "absent".to_owned()];
        let plan = ViewPlan {
            lexical_dims: &[0],
            centres: &[0.0],
            alphas: &[1.0],
            blends: &[0.0],
            families: &[],
            adapt_count: 30,
            val_fraction: 0.1,
            validation: Some(&validation),
            domains: &domains,
            domain_of: &domain_of,
        };
        let opts = EvalOptions {
            index: IndexKind::Exact,
            k: Some(5),
            cache_dir: None,
            ..EvalOptions::default()
        };
        let c = choose(&rows, &texts, 6, &plan, &opts, &|_| {}).unwrap();
        let c = &c[0];
        assert!(c.in_distribution > 99.0, "{c:?}");
        let (left_out, added) = (c.new_domain.unwrap(), c.domain_added.unwrap());
        assert!(added > 99.0, "{c:?}");
        assert!(left_out < added - 20.0, "{c:?}");
        // The domain with no validation texts is skipped, not scored as 0.
        assert!((c.mean - (c.in_distribution + left_out + added) / 3.0).abs() < 1e-9);
        let md = markdown(std::slice::from_ref(c));
        assert!(
            md.contains("unseen domain") && md.contains("(chosen)"),
            "{md}"
        );
    }
}

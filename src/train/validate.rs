//! Validation of a training run on the groups it holds out: kNN AvgRec
//! of held-out texts against training references of every family, and
//! leave-family-out (each machine family's held-out texts and the held-out
//! human texts against references without that family).
use serde::{Deserialize, Serialize};

use super::data::Dataset;
use super::TrainError;
use crate::detect::calibrate::avg_rec_at;
use crate::detect::References;
use crate::encoder::{Embed, Encoder};
use crate::index::IndexKind;
use crate::store::{Label, VectorRow};

/// The validation that picks the best checkpoint. Both are computed and
/// recorded at every validation; this one decides. `Default` is what runs
/// that did not record a choice used; the CLI defaults to `UnseenFamily`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SelectBy {
    /// kNN AvgRec of held-out texts against references of every family.
    #[default]
    HeldOut,
    /// Mean over machine families of the kNN AvgRec of that family's
    /// held-out texts and the held-out human texts against references
    /// without the family: how well the style space places a generator
    /// it cannot match by its own references.
    UnseenFamily,
}

impl SelectBy {
    pub fn name(self) -> &'static str {
        match self {
            Self::HeldOut => "held-out",
            Self::UnseenFamily => "unseen-family",
        }
    }
}

/// What validation scores: held-out queries for the in-distribution
/// AvgRec, and per machine family its held-out texts (with every held-out
/// human text in `humans`) for the leave-family-out one.
pub(super) struct ValSets {
    pub queries: Vec<usize>,
    pub refs: Vec<usize>,
    pub folds: Vec<(i64, Vec<usize>)>,
    pub humans: Vec<usize>,
}

/// Held-out texts per leave-family-out fold and in all, at most.
const FOLD_QUERIES: usize = 200;
const FOLD_HUMANS: usize = 1000;

impl ValSets {
    /// A family is a fold when it has at least 1% of the held-out texts
    /// (5 at least): fewer make a fold of noise.
    pub fn new(
        ds: &Dataset,
        train_idx: &[usize],
        val_idx: &[usize],
        queries: usize,
        refs: usize,
    ) -> Self {
        let min = (val_idx.len() / 100).max(5);
        let mut by_family: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
        let mut humans = Vec::new();
        for &i in val_idx {
            let e = &ds.examples[i];
            if e.label == super::loss::HUMAN {
                humans.push(i);
            } else {
                by_family.entry(e.family).or_default().push(i);
            }
        }
        let folds: Vec<(i64, Vec<usize>)> = by_family
            .into_iter()
            .filter(|(_, idx)| idx.len() >= min)
            .map(|(f, idx)| (f, spread(&idx, FOLD_QUERIES)))
            .collect();
        let humans = if folds.is_empty() {
            Vec::new()
        } else {
            spread(&humans, FOLD_HUMANS)
        };
        Self {
            queries: spread(val_idx, queries),
            refs: spread(train_idx, refs),
            folds,
            humans,
        }
    }
}

/// Validation AvgRec (%): of held-out queries against training references
/// (best over a few k), and the leave-family-out fold mean (best over the
/// same k, one k for every fold).
pub(super) fn validate(
    encoder: &Encoder,
    ds: &Dataset,
    sets: &ValSets,
) -> Result<(f64, Option<f64>), TrainError> {
    const KS: [usize; 4] = [1, 3, 5, 10];
    let mut wanted: Vec<usize> = sets
        .queries
        .iter()
        .chain(&sets.refs)
        .chain(&sets.humans)
        .chain(sets.folds.iter().flat_map(|(_, q)| q))
        .copied()
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let texts: Vec<&str> = wanted
        .iter()
        .map(|&i| ds.examples[i].text.as_str())
        .collect();
    let vectors: std::collections::HashMap<usize, Vec<f32>> =
        wanted.iter().copied().zip(encoder.embed(&texts)?).collect();
    let label = |i: usize| {
        if ds.examples[i].label == super::loss::HUMAN {
            Label::Human
        } else {
            Label::Machine
        }
    };
    let index_of = |keep: &dyn Fn(usize) -> bool| -> Result<References, TrainError> {
        let rows: Vec<VectorRow> = sets
            .refs
            .iter()
            .filter(|&&i| keep(i))
            .map(|&i| VectorRow {
                id: i as i64 + 1,
                label: label(i),
                model: Some(ds.models[ds.examples[i].model as usize].clone()),
                family: Some(ds.families[ds.examples[i].family as usize].clone()),
                source: None,
                group: None,
                embedding: vectors[&i].clone(),
            })
            .collect();
        let index = References::new(IndexKind::Exact, encoder.dim(), rows.len());
        index.add(&rows)?;
        Ok(index)
    };
    let search = |index: &References, idx: &[usize]| -> Vec<_> {
        idx.iter()
            .map(|&i| (label(i), index.search(&vectors[&i], 10)))
            .collect()
    };
    let all = index_of(&|_| true)?;
    let val = search(&all, &sets.queries);
    let held_out = KS
        .into_iter()
        .map(|k| avg_rec_at(&val, k, 0.05))
        .fold(0.0, f64::max);
    if sets.folds.is_empty() {
        return Ok((held_out, None));
    }
    let mut per_k = [0.0f64; KS.len()];
    for (family, queries) in &sets.folds {
        let index = index_of(&|i| ds.examples[i].family != *family)?;
        let mut val = search(&index, queries);
        val.extend(search(&index, &sets.humans));
        for (sum, k) in per_k.iter_mut().zip(KS) {
            *sum += avg_rec_at(&val, k, 0.05);
        }
    }
    let unseen = per_k.into_iter().fold(0.0, f64::max) / sets.folds.len() as f64;
    Ok((held_out, Some(unseen)))
}

/// Evenly spread picks of at most `n` of `idx`.
fn spread(idx: &[usize], n: usize) -> Vec<usize> {
    let stride = (idx.len() / n.max(1)).max(1);
    idx.iter().step_by(stride).take(n).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::data::Example;

    fn example(label: i64, family: i64, group: usize) -> Example {
        Example {
            text: format!("text {group}"),
            label,
            model: family,
            family,
            group: group.to_string(),
            context: String::new(),
        }
    }

    #[test]
    fn leave_family_out_folds_skip_families_with_too_few_held_out_texts() {
        // Family 0 is human; 1 has 300 held-out texts, 2 has 4 (under 1%
        // of 700 and under 5), 3 has 8.
        let mut examples = Vec::new();
        for (label, family, n) in [(1, 0, 388), (0, 1, 300), (0, 2, 4), (0, 3, 8)] {
            for _ in 0..n {
                examples.push(example(label, family, examples.len()));
            }
        }
        let ds = Dataset {
            examples,
            models: (0..4).map(|i| i.to_string()).collect(),
            families: (0..4).map(|i| i.to_string()).collect(),
        };
        let val_idx: Vec<usize> = (0..ds.examples.len()).collect();
        let sets = ValSets::new(&ds, &[0, 1], &val_idx, 100, 10);
        let folds: Vec<(i64, usize)> = sets.folds.iter().map(|(f, q)| (*f, q.len())).collect();
        assert_eq!(folds, [(1, FOLD_QUERIES), (3, 8)]);
        assert!(sets
            .folds
            .iter()
            .flat_map(|(_, q)| q)
            .all(|&i| ds.examples[i].label == 0));
        assert_eq!(sets.humans.len(), 388);
        assert!(sets.humans.iter().all(|&i| ds.examples[i].label == 1));
        assert_eq!(sets.queries.len(), 100);
    }
}

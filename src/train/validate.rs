//! Validation of a training run on the groups it holds out: kNN AvgRec
//! of held-out texts against training references of every family, and
//! leave-family-out (each machine family's held-out texts and the held-out
//! human texts against references without that family); and, for domains
//! held out of training altogether (`--holdout-domain`), their texts
//! against the training references, then again with a few of them added
//! as references (an unseen domain, then taught by references).
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
    /// Mean over the domains held out of training (`--holdout-domain`)
    /// of the AvgRec of their texts against the training references,
    /// without and with a few of them added as references: how well the
    /// style space reads writing of a kind it was never trained on.
    UnseenDomain,
    /// Mean of every validation the run computes.
    Mean,
}

impl SelectBy {
    pub fn name(self) -> &'static str {
        match self {
            Self::HeldOut => "held-out",
            Self::UnseenFamily => "unseen-family",
            Self::UnseenDomain => "unseen-domain",
            Self::Mean => "mean",
        }
    }

    /// The validation value this choice selects by.
    pub fn pick(self, v: &Validation) -> f64 {
        let missing = f64::NEG_INFINITY;
        match self {
            Self::HeldOut => v.held_out,
            Self::UnseenFamily => v.unseen_family.unwrap_or(missing),
            Self::UnseenDomain => v.unseen_domain.map_or(missing, |d| d.mean()),
            Self::Mean => {
                let mut all = vec![v.held_out];
                all.extend(v.unseen_family);
                if let Some(d) = v.unseen_domain {
                    all.extend([d.plain, d.taught]);
                }
                all.iter().sum::<f64>() / all.len() as f64
            }
        }
    }
}

/// One validation of a run's weights (AvgRec in %).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Validation {
    /// Held-out texts against references of every family.
    pub held_out: f64,
    /// Leave-family-out fold mean; `None` when no family has enough
    /// held-out texts.
    pub unseen_family: Option<f64>,
    /// Domains held out of training, mean over them; `None` when none is.
    pub unseen_domain: Option<DomainScore>,
}

/// AvgRec (%) of texts of domains held out of training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DomainScore {
    /// Against the training references alone.
    pub plain: f64,
    /// With a few of the domain's texts added as references
    /// (`--holdout-refs`).
    pub taught: f64,
}

impl DomainScore {
    pub fn mean(&self) -> f64 {
        (self.plain + self.taught) / 2.0
    }
}

/// What validation scores: held-out queries for the in-distribution
/// AvgRec, per machine family its held-out texts (with every held-out
/// human text in `humans`) for the leave-family-out one, and per domain
/// held out of training the texts added as references and those scored.
pub(super) struct ValSets {
    /// Texts held out of training in distribution (the split's share).
    pub held: usize,
    pub queries: Vec<usize>,
    pub refs: Vec<usize>,
    pub folds: Vec<(i64, Vec<usize>)>,
    pub humans: Vec<usize>,
    pub domains: Vec<DomainFold>,
}

/// A domain held out of training: `added` become references for the
/// taught score, `scored` (both labels, none of `added`) are scored.
pub(super) struct DomainFold {
    pub added: Vec<usize>,
    pub scored: Vec<usize>,
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
            held: val_idx.len(),
            queries: spread(val_idx, queries),
            refs: spread(train_idx, refs),
            folds,
            humans,
            domains: Vec::new(),
        }
    }

    /// Adds a domain held out of training, its texts at `idx`, `refs` of
    /// which (half human, half machine) are added as references for the
    /// taught score. A domain without more than that many texts of each
    /// label cannot be scored by AvgRec and is an error naming it.
    pub fn hold_domain(
        &mut self,
        ds: &Dataset,
        name: &str,
        idx: &[usize],
        refs: usize,
    ) -> Result<(), TrainError> {
        let (humans, machines): (Vec<usize>, Vec<usize>) = idx
            .iter()
            .partition(|&&i| ds.examples[i].label == super::loss::HUMAN);
        let half = (refs / 2).max(1);
        if humans.len() <= half || machines.len() <= half {
            return Err(TrainError::Config(format!(
                "the held-out domain {name} has {} human and {} machine texts; validating on it needs more than {half} of each",
                humans.len(),
                machines.len()
            )));
        }
        // Of each label's texts, picked evenly across it, the first `half`
        // are added and the rest (at most FOLD_QUERIES) scored.
        let pick = |all: &[usize]| {
            let chosen = spread(all, half + FOLD_QUERIES);
            (chosen[..half].to_vec(), chosen[half..].to_vec())
        };
        let (mut added, mut scored) = pick(&humans);
        let (m_added, m_scored) = pick(&machines);
        added.extend(m_added);
        scored.extend(m_scored);
        self.domains.push(DomainFold { added, scored });
        Ok(())
    }
}

/// Validation AvgRec (%): of held-out queries against training references
/// (best over a few k), the leave-family-out fold mean and the held-out
/// domains' mean (each best over the same k, one k for every fold).
pub(super) fn validate(
    encoder: &Encoder,
    ds: &Dataset,
    sets: &ValSets,
) -> Result<Validation, TrainError> {
    const KS: [usize; 4] = [1, 3, 5, 10];
    let mut wanted: Vec<usize> = sets
        .queries
        .iter()
        .chain(&sets.refs)
        .chain(&sets.humans)
        .chain(sets.folds.iter().flat_map(|(_, q)| q))
        .chain(
            sets.domains
                .iter()
                .flat_map(|d| d.added.iter().chain(&d.scored)),
        )
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
    let index_of = |refs: &mut dyn Iterator<Item = usize>| -> Result<References, TrainError> {
        let rows: Vec<VectorRow> = refs
            .map(|i| VectorRow {
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
    // The mean over folds at the k that suits them best together.
    let fold_mean = |folds: &[Vec<(Label, Vec<_>)>]| -> Option<f64> {
        if folds.is_empty() {
            return None;
        }
        let best = KS
            .into_iter()
            .map(|k| folds.iter().map(|v| avg_rec_at(v, k, 0.05)).sum::<f64>())
            .fold(f64::NEG_INFINITY, f64::max);
        Some(best / folds.len() as f64)
    };
    let all = index_of(&mut sets.refs.iter().copied())?;
    let held_out = fold_mean(&[search(&all, &sets.queries)]).unwrap_or_default();
    let mut families = Vec::new();
    for (family, queries) in &sets.folds {
        let index = index_of(
            &mut sets
                .refs
                .iter()
                .copied()
                .filter(|&i| ds.examples[i].family != *family),
        )?;
        let mut val = search(&index, queries);
        val.extend(search(&index, &sets.humans));
        families.push(val);
    }
    let (mut plain, mut taught) = (Vec::new(), Vec::new());
    for d in &sets.domains {
        plain.push(search(&all, &d.scored));
        let index = index_of(&mut sets.refs.iter().chain(&d.added).copied())?;
        taught.push(search(&index, &d.scored));
    }
    Ok(Validation {
        held_out,
        unseen_family: fold_mean(&families),
        unseen_domain: fold_mean(&plain)
            .zip(fold_mean(&taught))
            .map(|(plain, taught)| DomainScore { plain, taught }),
    })
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

    #[test]
    fn a_held_out_domain_adds_half_of_each_label_and_scores_the_rest() {
        // 300 human and 40 machine texts of the domain.
        let mut examples = Vec::new();
        for (label, family, n) in [(1, 0, 300), (0, 1, 40)] {
            for _ in 0..n {
                examples.push(example(label, family, examples.len()));
            }
        }
        let ds = Dataset {
            examples,
            models: vec!["human".into(), "m".into()],
            families: vec!["human".into(), "m".into()],
        };
        let idx: Vec<usize> = (0..ds.examples.len()).collect();
        let mut sets = ValSets::new(&ds, &[], &[], 10, 10);
        sets.hold_domain(&ds, "d", &idx, 32).unwrap();
        let fold = &sets.domains[0];
        let count =
            |v: &[usize], label| v.iter().filter(|&&i| ds.examples[i].label == label).count();
        assert_eq!((count(&fold.added, 1), count(&fold.added, 0)), (16, 16));
        // At most FOLD_QUERIES of each label are scored, none of them added.
        assert_eq!(
            (count(&fold.scored, 1), count(&fold.scored, 0)),
            (FOLD_QUERIES, 24)
        );
        assert!(fold.scored.iter().all(|i| !fold.added.contains(i)));
        // A domain with too few texts of a label is refused by name.
        let err = sets.hold_domain(&ds, "d", &idx[..316], 32).unwrap_err();
        assert!(
            err.to_string()
                .contains("held-out domain d has 300 human and 16 machine"),
            "{err}"
        );
    }

    #[test]
    fn each_choice_selects_by_its_validation() {
        let v = Validation {
            held_out: 90.0,
            unseen_family: Some(80.0),
            unseen_domain: Some(DomainScore {
                plain: 60.0,
                taught: 70.0,
            }),
        };
        assert_eq!(SelectBy::HeldOut.pick(&v), 90.0);
        assert_eq!(SelectBy::UnseenFamily.pick(&v), 80.0);
        assert_eq!(SelectBy::UnseenDomain.pick(&v), 65.0);
        assert_eq!(SelectBy::Mean.pick(&v), 75.0);
        let bare = Validation {
            unseen_family: None,
            unseen_domain: None,
            ..v
        };
        assert_eq!(SelectBy::Mean.pick(&bare), 90.0);
        assert_eq!(SelectBy::UnseenDomain.pick(&bare), f64::NEG_INFINITY);
    }
}

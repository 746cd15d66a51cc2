//! Offline evaluation: build references from labelled files, calibrate on a
//! validation split carved from those references, score a test file, report.
//!
//! The validation split is chosen by hashing each record's `group` (texts
//! derived from one source document share a group), so near-duplicates never
//! straddle it. k, the operating-point thresholds and the novelty threshold
//! are chosen on it with references that exclude it; the scored set is only
//! ever scored.
pub mod cache;
pub mod classifier_cv;
pub mod generalization;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod segments;
pub mod views;

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::detect::calibrate::calibrate_blended;
use crate::detect::calibrate::CalibrationOptions;
use crate::detect::classifier::{Classifier, ClassifierConfig};
use crate::detect::import::parse_record;
use crate::detect::{
    vote_sized, Calibration, Cause, Languages, NoveltyPolicy, References, Verdict,
};
use crate::encoder::{Embed, EncoderError};
use crate::index::IndexKind;
use crate::store::{text_sha256, NewReference, VectorRow};

pub use metrics::{summarize, Scored, Summary};
pub use report::Report;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: line {line}: {reason}")]
    Invalid {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} holds no records")]
    Empty(PathBuf),
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    /// A style view that cannot be computed.
    #[error("{0}")]
    View(String),
    #[error(transparent)]
    Detect(#[from] crate::detect::DetectError),
}

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub index: IndexKind,
    /// Use this k instead of the calibrated one.
    pub k: Option<usize>,
    /// Share of reference groups carved out for validation.
    pub val_fraction: f64,
    /// Most validation texts.
    pub max_val: usize,
    pub target_fprs: Vec<f64>,
    pub temperature: f64,
    pub cache_dir: Option<PathBuf>,
    /// Weight of the reference-fitted classifier in the score (0: the vote
    /// alone).
    pub blend: f64,
    /// The encoder's held-out split: calibration validates on it where the
    /// references hold enough of it.
    pub held_out: Option<crate::encoder::HeldOut>,
    /// Candidate weights of the references' hubness in the ranking of
    /// neighbours, chosen among on validation.
    pub hubness: Vec<f32>,
    /// Candidate group votes, chosen among (or not) on validation.
    pub groups: Vec<usize>,
    /// What a machine text's group is in the group votes.
    pub group_by: crate::detect::group_vote::GroupBy,
    /// When the group vote's margin is weighed against the classifier.
    pub blend_rule: crate::detect::blend_rule::BlendRuleMode,
    /// What a text unlike every reference gets.
    pub novelty: NoveltyPolicy,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            index: IndexKind::Hnsw(Default::default()),
            k: None,
            val_fraction: 0.1,
            max_val: 3000,
            target_fprs: vec![0.01, 0.05],
            temperature: 0.05,
            cache_dir: Some(PathBuf::from(".cache/embeddings")),
            blend: 0.0,
            held_out: None,
            hubness: vec![0.0],
            groups: crate::detect::group_vote::GROUP_CANDIDATES.to_vec(),
            group_by: Default::default(),
            blend_rule: Default::default(),
            novelty: Default::default(),
        }
    }
}

/// Records of one labelled file with their embeddings.
pub struct LabelledSet {
    pub records: Vec<NewReference>,
    pub vectors: Vec<Vec<f32>>,
}

/// Reads a labelled JSONL file and embeds it (or loads cached vectors).
pub fn load_set(
    path: &Path,
    encoder: &dyn Embed,
    cache_dir: Option<&Path>,
    progress: &dyn Fn(u64, u64),
) -> Result<LabelledSet, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut records = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let r = parse_record(line, "eval").map_err(|reason| EvalError::Invalid {
            path: path.to_owned(),
            line: i + 1,
            reason,
        })?;
        records.push(r);
    }
    if records.is_empty() {
        return Err(EvalError::Empty(path.to_owned()));
    }
    let cached = match cache_dir {
        Some(dir) => Some(cache::cache_path(dir, encoder.id(), path)?),
        None => None,
    };
    if let Some(v) = cached
        .as_deref()
        .and_then(|p| cache::load(p, records.len(), encoder.dim()))
    {
        return Ok(LabelledSet {
            records,
            vectors: v,
        });
    }
    let total = records.len() as u64;
    let dim = encoder.dim();
    let mut vectors = cached
        .as_deref()
        .map(|p| cache::load_partial(p, dim))
        .unwrap_or_default();
    vectors.truncate(records.len());
    for chunk in records[vectors.len()..].chunks(512) {
        let texts: Vec<&str> = chunk.iter().map(|r| r.text.as_str()).collect();
        let fresh = encoder.embed(&texts)?;
        if let Some(p) = cached.as_deref() {
            if let Err(e) = cache::append_partial(p, vectors.len(), &fresh, dim) {
                tracing::warn!(path = %p.display(), error = %e, "cannot write embedding cache");
            }
        }
        vectors.extend(fresh);
        progress(vectors.len() as u64, total);
    }
    if let Some(p) = cached {
        if let Err(e) = cache::store(&p, &vectors) {
            tracing::warn!(path = %p.display(), error = %e, "cannot write embedding cache");
        }
    }
    Ok(LabelledSet { records, vectors })
}

impl LabelledSet {
    /// The set as index rows; ids are positions, groups default to the text hash.
    pub fn rows(&self) -> Vec<VectorRow> {
        self.records
            .iter()
            .zip(&self.vectors)
            .enumerate()
            .map(|(i, (r, v))| VectorRow {
                id: i as i64,
                label: r.label,
                model: r.model.clone(),
                family: r.family.clone(),
                source: r.source.clone(),
                group: Some(r.group.clone().unwrap_or_else(|| text_sha256(&r.text))),
                embedding: v.clone(),
            })
            .collect()
    }
}

fn index_of(kind: IndexKind, dim: usize, rows: &[VectorRow]) -> Result<References, EvalError> {
    let refs = References::new(kind, dim, rows.len());
    for chunk in rows.chunks(8192) {
        refs.add(chunk)?;
    }
    Ok(refs)
}

impl EvalOptions {
    /// Calibrates on a validation split of `refs` (with their `texts`, for
    /// the classifier when [`EvalOptions::blend`] is set).
    pub fn calibrate(
        &self,
        refs: &[VectorRow],
        texts: &[&str],
        dim: usize,
    ) -> Result<Calibration, EvalError> {
        Ok(calibrate_blended(
            refs,
            texts,
            dim,
            &self.calibration(),
            self.blend,
        )?)
    }

    /// How the validation split is carved and searched.
    pub fn calibration(&self) -> CalibrationOptions {
        CalibrationOptions {
            index: self.index,
            val_fraction: self.val_fraction,
            max_val: self.max_val,
            target_fprs: self.target_fprs.clone(),
            temperature: self.temperature,
            held_out: self.held_out,
            hubness: self.hubness.clone(),
            groups: self.groups.clone(),
            group_by: self.group_by,
            blend_rule: self.blend_rule,
        }
    }
}

/// Scores every test vector against the full reference set.
pub fn score(
    refs: &[VectorRow],
    test: &LabelledSet,
    dim: usize,
    cal: &Calibration,
    opts: &EvalOptions,
) -> Result<Vec<Verdict>, EvalError> {
    let index = index_of(opts.index, dim, refs)?;
    if cal.hubness != 0.0 {
        index.refresh_hubs(refs);
    }
    let mut cfg = cal.vote_config(opts.target_fprs.first().copied());
    if let Some(k) = opts.k {
        cfg.k = k;
    }
    cfg.novelty_policy = opts.novelty;
    Ok(test
        .vectors
        .par_iter()
        .zip(&test.records)
        .map(|(q, r)| {
            let nb = index.search_hub_scaled(q, cfg.search_width(), cal.hubness);
            vote_sized(&nb, &cfg, Some(r.text.chars().count())).expect("references are not empty")
        })
        .collect())
}

/// Which texts get no verdict, and why, as the service decides: a language
/// (of `languages`, when given) the references do not cover, or (under the
/// `novelty` policy) unlike every reference. They count as not machine:
/// their label becomes human and their score 0.
pub fn abstain(
    verdicts: &mut [Verdict],
    records: &[NewReference],
    languages: Option<&Languages>,
    novelty: NoveltyPolicy,
) -> Vec<Option<Cause>> {
    verdicts
        .iter_mut()
        .zip(records)
        .map(|(v, r)| {
            let why = languages
                .and_then(|l| l.judge(&r.text))
                .or_else(|| novelty.abstention(v))
                .map(|a| a.cause);
            if why.is_some() {
                v.label = crate::store::Label::Human;
                v.score = 0.0;
                if let Some(op) = v.operating_point.as_mut() {
                    op.label = crate::store::Label::Human;
                }
            }
            why
        })
        .collect()
}

/// Blends a classifier fitted on the references (`ref_texts`, labelled as
/// `refs`) into the scores of `test`'s verdicts (the majority labels stay).
pub fn blend(
    verdicts: &mut [Verdict],
    refs: &[VectorRow],
    ref_texts: &[&str],
    test: &[NewReference],
    weight: f64,
) {
    if weight <= 0.0 {
        return;
    }
    let labels: Vec<crate::store::Label> = refs.iter().map(|r| r.label).collect();
    let Some(model) = Classifier::fit(ref_texts, &labels, &ClassifierConfig::default()) else {
        return;
    };
    let p: Vec<Option<f64>> = test.par_iter().map(|r| model.predict(&r.text)).collect();
    for (v, p) in verdicts.iter_mut().zip(p) {
        if let Some(p) = p {
            v.blend_classifier(p, weight);
        }
    }
}

/// What `detective eval --scores` writes for one scored text: its position
/// `record` among the scored file's records (from 1), group, true label, family and domain, the
/// majority and its votes, the neighbours' score before the classifier was
/// blended in (`weight` is the blend weight), the classifier's probability,
/// the blended score, the nearest similarity, whether the text is novel and
/// why it got no verdict (the scores are those of its verdict before it
/// abstained).
pub fn score_line(
    position: usize,
    record: &NewReference,
    v: &Verdict,
    abstained: Option<Cause>,
    weight: f64,
) -> serde_json::Value {
    let neighbours = match v.classifier {
        Some(p) if weight < 1.0 => (v.score - weight * p) / (1.0 - weight),
        _ => v.score,
    };
    serde_json::json!({
        "record": position,
        "group": record.group,
        "label": record.label,
        "family": record.family,
        "domain": record.domain,
        "majority": v.label,
        "machine_votes": v.machine_votes,
        "k": v.k,
        "neighbours_score": neighbours,
        "classifier": v.classifier,
        "score": v.score,
        "nearest_similarity": v.nearest_similarity,
        "novel": v.novel,
        "abstained": abstained,
        "group_human": v.group.as_ref().and_then(|g| g.human),
        "group_machine": v.group.as_ref().and_then(|g| g.machine),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::novelty::LengthBin;
    use crate::detect::{vote, Neighbour, Novelty, VoteConfig};
    use crate::store::Label;

    fn neighbour(id: i64, label: Label, similarity: f32) -> Neighbour {
        Neighbour {
            id,
            label,
            model: None,
            family: None,
            source: None,
            similarity,
        }
    }

    #[test]
    fn score_lines_recover_the_neighbours_score_before_the_blend() {
        let neighbours = [
            neighbour(1, Label::Machine, 0.9),
            neighbour(2, Label::Machine, 0.8),
            neighbour(3, Label::Human, 0.7),
        ];
        let cfg = VoteConfig {
            k: 3,
            ..VoteConfig::default()
        };
        let mut v = vote(&neighbours, &cfg).unwrap();
        let before = v.score;
        v.blend_classifier(0.1, 0.2);
        let mut record = NewReference::plain("a text", Label::Human, "eval");
        record.family = Some("human".into());
        let line = score_line(7, &record, &v, None, 0.2);
        assert_eq!(line["record"], 7);
        assert_eq!(line["label"], "human");
        assert_eq!(line["majority"], "machine");
        assert_eq!(line["machine_votes"], 2);
        let recovered = line["neighbours_score"].as_f64().unwrap();
        assert!((recovered - before).abs() < 1e-9, "{recovered} vs {before}");
        assert!((line["score"].as_f64().unwrap() - (0.8 * before + 0.02)).abs() < 1e-9);
        assert_eq!(line["classifier"].as_f64(), Some(0.1));
        // Without a classifier the score is the neighbours' own.
        let plain = vote(&neighbours, &cfg).unwrap();
        let line = score_line(1, &record, &plain, Some(Cause::Novelty), 0.0);
        assert_eq!(line["abstained"], "novelty");
        assert_eq!(line["novel"], false);
        assert_eq!(line["neighbours_score"].as_f64(), Some(plain.score));
        assert!(line["classifier"].is_null());
        assert!(line["group_human"].is_null());
        // With the group vote, the closeness of both sides (m = 1: the
        // nearest member of each).
        let grouped = vote(
            &neighbours,
            &VoteConfig {
                groups: Some(1),
                ..cfg
            },
        )
        .unwrap();
        let line = score_line(1, &record, &grouped, None, 0.0);
        assert!(line["abstained"].is_null());
        assert!((line["group_human"].as_f64().unwrap() - 0.7).abs() < 1e-6);
        assert!((line["group_machine"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    }

    #[test]
    fn novel_and_foreign_texts_abstain_as_not_machine() {
        let close = [neighbour(1, Label::Machine, 0.9)];
        let far = [neighbour(1, Label::Machine, 0.2)];
        let cfg = VoteConfig {
            k: 1,
            novelty: Some(Novelty {
                quantile: 0.01,
                overall: 0.3,
                bins: vec![LengthBin {
                    up_to_chars: None,
                    threshold: 0.3,
                    texts: 250,
                }],
            }),
            ..VoteConfig::default()
        };
        let english = "The committee will publish its findings next week, after the vote.";
        let german =
            "Der Ausschuss veröffentlicht seine Ergebnisse nächste Woche, nach der Abstimmung.";
        let records: Vec<NewReference> = [english, english, german]
            .iter()
            .map(|&t| NewReference::plain(t, Label::Machine, "eval"))
            .collect();
        let verdicts = || {
            vec![
                vote(&close, &cfg).unwrap(),
                vote(&far, &cfg).unwrap(),
                vote(&close, &cfg).unwrap(),
            ]
        };
        let languages = Languages::default();
        let mut v = verdicts();
        let none = abstain(&mut v, &records, Some(&languages), NoveltyPolicy::Abstain);
        assert_eq!(none, [None, Some(Cause::Novelty), Some(Cause::Language)]);
        assert_eq!(v[0].label, Label::Machine);
        assert!(v[1..]
            .iter()
            .all(|v| v.label == Label::Human && v.score == 0.0));
        // Flagged only: the novel text keeps its verdict.
        let mut v = verdicts();
        let none = abstain(&mut v, &records, Some(&languages), NoveltyPolicy::Flag);
        assert_eq!(none, [None, None, Some(Cause::Language)]);
        assert!(v[1].novel && v[1].label == Label::Machine);
        // Without languages only novelty abstains.
        let mut v = verdicts();
        assert_eq!(
            abstain(&mut v, &records, None, NoveltyPolicy::Abstain),
            [None, Some(Cause::Novelty), None]
        );
    }
}

//! The service's use cases over a live reference set: detect (tokenize ->
//! embed on the encoder thread -> search -> vote) and add, read and delete
//! references. A reference is committed to the store before it enters the
//! live index, so an acknowledged addition survives a crash and the very
//! next detection sees it: training-free incremental adaptation.
use std::sync::Arc;
use std::time::Instant;

use super::language::{Abstention, Languages};
use super::live::Live;
use super::supervised::Supervised;
use super::tally::{Tallied, Tally};
use super::{vote_sized, DetectError, Verdict, VoteConfig};
use crate::encoder::{Admission, EncoderHandle, Prepared};
use crate::metrics;
use crate::store::{Inserted, Label, NewReference, Reference, Store};

/// Which label a verdict reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The DeTeCtive majority of the k nearest references.
    Majority,
    /// The calibrated score threshold for the target false-positive rate
    /// (the majority when no calibration is available).
    OperatingPoint,
}

impl Decision {
    /// The label this decision gives a verdict (what `label` reports, in
    /// HTTP answers and in `detective detect` alike).
    pub fn label(self, v: &Verdict) -> Label {
        match (self, &v.operating_point) {
            (Self::OperatingPoint, Some(op)) => op.label,
            _ => v.label,
        }
    }

    /// The score at which a part of a text (a segment) reads as machine:
    /// the calibrated threshold under the operating point, else 0.5 (the
    /// majority's side).
    pub fn threshold(self, v: &Verdict) -> f64 {
        match (self, &v.operating_point) {
            (Self::OperatingPoint, Some(op)) => op.threshold,
            _ => 0.5,
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "majority" => Ok(Self::Majority),
            "operating-point" => Ok(Self::OperatingPoint),
            other => Err(format!(
                "the decision must be majority or operating-point, not {other:?}"
            )),
        }
    }
}

/// A verdict with the label chosen by the configured [`Decision`], or an
/// abstention (no verdict: `label` is then not to be acted on).
#[derive(Debug, Clone)]
pub struct Detection {
    pub label: Label,
    pub verdict: Verdict,
    pub abstained: Option<Abstention>,
}

/// Prepared texts, per text why it gets no verdict (if it does not), and
/// their place in the encoder's queue.
pub struct Prepped {
    pub texts: Vec<Prepared>,
    pub abstain: Vec<Option<Abstention>>,
    /// Each text's length in characters (novelty is judged by length).
    pub chars: Vec<usize>,
    /// The classifier's probability per text, when one is blended in.
    pub classifier: Vec<Option<f64>>,
    admission: Admission,
    /// The first this many texts are verdicts the metrics count.
    counted: usize,
}

pub struct Detector {
    store: Arc<dyn Store>,
    encoder: EncoderHandle,
    refs: Arc<Live>,
    vote: VoteConfig,
    decision: Decision,
    languages: Languages,
    tally: Arc<Tally>,
    supervised: Option<Arc<Supervised>>,
}

impl Detector {
    pub fn new(
        store: Arc<dyn Store>,
        encoder: EncoderHandle,
        refs: Arc<Live>,
        vote: VoteConfig,
        decision: Decision,
        languages: Languages,
    ) -> Self {
        metrics::INDEX_VECTORS.set(refs.snapshot().len() as i64);
        Self {
            tally: Arc::new(Tally::new(store.clone())),
            store,
            encoder,
            refs,
            vote,
            decision,
            languages,
            supervised: None,
        }
    }

    /// Blends `supervised`'s probability into every score.
    pub fn with_classifier(mut self, supervised: Arc<Supervised>) -> Self {
        self.supervised = Some(supervised);
        self
    }

    /// The blended classifier, if any.
    pub fn supervised(&self) -> Option<&Arc<Supervised>> {
        self.supervised.as_ref()
    }

    pub fn encoder(&self) -> &EncoderHandle {
        &self.encoder
    }

    pub fn vote_config(&self) -> &VoteConfig {
        &self.vote
    }

    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// References that vote.
    pub fn len(&self) -> usize {
        self.refs.snapshot().len()
    }

    pub fn is_empty(&self) -> bool {
        self.refs.snapshot().is_empty()
    }

    /// The live reference set (for its follower task and `/info`).
    pub fn live(&self) -> &Arc<Live> {
        &self.refs
    }

    /// Tokenizes (and computes lexical vectors) on the blocking pool, off
    /// the async runtime. The first `verdicts` texts are ones the caller
    /// gives a verdict for: only they are judged (which get no verdict,
    /// being in a language the references do not cover) and counted in the
    /// verdict metrics; the rest (references to add, windows of a text for
    /// segments) are only embedded.
    pub async fn tokenize(
        &self,
        texts: Vec<String>,
        verdicts: usize,
    ) -> Result<Prepped, DetectError> {
        // A place in the encoder's queue first: a full queue refuses the
        // request before any work is spent on it.
        let admission = self.encoder.admit()?;
        let encoder = self.encoder.clone();
        let languages = self.languages.clone();
        let supervised = self.supervised.clone();
        let started = Instant::now();
        let out = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let abstain = refs
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    if i < verdicts {
                        languages.judge(t)
                    } else {
                        None
                    }
                })
                .collect();
            let classifier = match &supervised {
                Some(s) => s.predict(&refs),
                None => vec![None; refs.len()],
            };
            let chars = refs.iter().map(|t| t.chars().count()).collect();
            encoder
                .prepare(&refs)
                .map(|texts| (texts, abstain, chars, classifier))
        })
        .await
        .map_err(|_| DetectError::Worker(crate::encoder::WorkerError::Failed))?
        .map_err(DetectError::Tokenize)
        .map(|(texts, abstain, chars, classifier)| Prepped {
            counted: verdicts.min(texts.len()),
            texts,
            abstain,
            chars,
            classifier,
            admission,
        })?;
        metrics::stage("tokenize", started.elapsed().as_secs_f64());
        Ok(out)
    }

    pub fn languages(&self) -> &Languages {
        &self.languages
    }

    /// Verdicts for tokenized texts, `k` overriding the calibrated one.
    pub async fn detect(
        &self,
        prepped: Prepped,
        k: Option<usize>,
    ) -> Result<Vec<Detection>, DetectError> {
        let Prepped {
            texts,
            abstain,
            chars,
            classifier,
            admission,
            counted,
        } = prepped;
        let weight = self.supervised.as_ref().map_or(0.0, |s| s.weight());
        let n = texts.len();
        let vectors = self.encoder.embed(texts, admission).await?;
        if vectors.len() != n {
            return Err(DetectError::Count(vectors.len(), n));
        }
        let mut cfg = self.vote.clone();
        if let Some(k) = k {
            cfg.k = k;
        }
        // Search and vote are CPU work: off the async workers, on one
        // snapshot of the reference set.
        let refs = self.refs.snapshot();
        let decision = self.decision;
        let out = tokio::task::spawn_blocking(move || {
            vectors
                .iter()
                .zip(abstain)
                .zip(chars)
                .zip(classifier)
                .enumerate()
                .map(|(i, (((v, abstained), chars), p))| {
                    let started = Instant::now();
                    let neighbours = refs.search(v, cfg.search_width());
                    let searched = Instant::now();
                    metrics::stage("search", (searched - started).as_secs_f64());
                    let mut verdict = vote_sized(&neighbours, &cfg, Some(chars))
                        .ok_or(DetectError::NoReferences)?;
                    if let (Some(p), true) = (p, weight > 0.0) {
                        verdict.blend_classifier(p, weight);
                    }
                    metrics::stage("vote", searched.elapsed().as_secs_f64());
                    let label = decision.label(&verdict);
                    // Only texts given a verdict abstain and are counted
                    // (not segment windows).
                    let abstained = match i < counted {
                        true => {
                            let a = abstained.or_else(|| cfg.novelty_policy.abstention(&verdict));
                            record(label, &verdict, a.is_some());
                            a
                        }
                        false => abstained,
                    };
                    Ok(Detection {
                        label,
                        verdict,
                        abstained,
                    })
                })
                .collect::<Result<Vec<_>, DetectError>>()
        })
        .await
        .map_err(|_| DetectError::Worker(crate::encoder::WorkerError::Failed))??;
        Ok(out)
    }

    /// Embeds, commits, then indexes references; existing texts keep their
    /// ids (`created: false`).
    pub async fn add(
        &self,
        items: Vec<NewReference>,
        prepped: Prepped,
    ) -> Result<Vec<Inserted>, DetectError> {
        let vectors = self.encoder.embed(prepped.texts, prepped.admission).await?;
        if vectors.len() != items.len() {
            return Err(DetectError::Count(vectors.len(), items.len()));
        }
        let started = Instant::now();
        let inserted = self
            .store
            .insert(&items, &vectors, self.encoder.id())
            .await
            .inspect_err(|_| metrics::STORE_ERRORS.inc())?;
        metrics::stage("store", started.elapsed().as_secs_f64());
        for (item, ins) in items.iter().zip(&inserted) {
            if ins.created {
                metrics::REFERENCES_ADDED
                    .with_label_values(&[
                        item.label.as_str(),
                        &metrics::family_label(item.family.as_deref().unwrap_or("unknown")),
                    ])
                    .inc();
            }
        }
        // What the store now holds, not what this request said: an existing
        // text keeps its stored labels, a batch's duplicates are one row.
        self.tally.changed();
        self.refs.catch_up().await?;
        Ok(inserted)
    }

    pub async fn get(&self, id: i64) -> Result<Option<Reference>, DetectError> {
        Ok(self
            .store
            .get(id)
            .await
            .inspect_err(|_| metrics::STORE_ERRORS.inc())?)
    }

    /// Stops a reference from voting at once; `false` if absent or already
    /// deleted.
    pub async fn delete(&self, id: i64) -> Result<bool, DetectError> {
        let done = self
            .store
            .delete(id)
            .await
            .inspect_err(|_| metrics::STORE_ERRORS.inc())?;
        if done {
            metrics::REFERENCES_DELETED.inc();
            self.tally.changed();
            self.refs.catch_up().await?;
        }
        Ok(done)
    }

    /// The store's counts and change position, reused for a moment (see
    /// [`Tally`]).
    pub async fn counts(&self) -> Result<Tallied, DetectError> {
        Ok(self.tally.get().await?)
    }
}

fn record(label: Label, v: &Verdict, abstained: bool) {
    if v.novel {
        metrics::NOVEL.inc();
    }
    if abstained {
        metrics::VERDICTS.with_label_values(&["unknown"]).inc();
        return;
    }
    metrics::VERDICTS.with_label_values(&[label.as_str()]).inc();
    if label == Label::Machine {
        let family = v.attribution.family.as_deref().unwrap_or("unknown");
        metrics::ATTRIBUTIONS
            .with_label_values(&[&metrics::family_label(family)])
            .inc();
    }
}

//! Choosing k, the operating-point thresholds and the novelty thresholds on a
//! validation split carved from the references (never on a scored set).
//!
//! Validation texts are searched against the references *without* the
//! validation split, with the largest candidate k; every smaller k reuses
//! the prefix of the same neighbour lists.
//!
//! A trained encoder has seen most reference texts (the shipped references
//! are a sample of its training corpus): validated on those, k is chosen
//! and the thresholds are set for texts it knows, and a threshold meant to
//! accuse 1% of human texts accuses several times more of texts it never
//! saw. So where the references hold enough texts of the groups its
//! training held out ([`crate::encoder::Embed::held_out`]), those are the
//! validation split.
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::blend_rule::{choose_blend_rule, BlendRule, BlendRuleMode};
use super::classifier::{Classifier, ClassifierConfig};
use super::group_vote::{group_vote, GroupBy, GROUP_CANDIDATES, GROUP_POOL};
use super::novelty::{Novelty, NoveltyPolicy, NOVELTY_QUANTILE};
use super::vote::{vote, weighted_score, Neighbour, OperatingPoint, VoteConfig};
use super::{DetectError, References};
use crate::encoder::HeldOut;
use crate::index::IndexKind;
use crate::store::{Label, Store, VectorRow};
use crate::vocab::EncoderId;

/// Candidate neighbourhood sizes.
pub const K_CANDIDATES: [usize; 10] = [1, 3, 5, 7, 9, 11, 15, 21, 31, 51];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub k: usize,
    pub temperature: f64,
    /// Nearest similarities below which a text is novel, by length (none:
    /// too few validation texts, or their texts were not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub novelty: Option<Novelty>,
    /// One per target false-positive rate on human text.
    pub operating_points: Vec<OperatingPoint>,
    /// Validation AvgRec (percent) for every candidate k.
    pub avg_rec_by_k: Vec<(usize, f64)>,
    pub validation_size: usize,
    /// Weight of the reference-fitted classifier in the scores the
    /// thresholds were chosen on (0: the vote's score alone).
    #[serde(default)]
    pub classifier_weight: f64,
    /// The held-out split asked for (the encoder's), whether or not the
    /// references held enough of it.
    #[serde(default)]
    pub held_out_split: Option<HeldOut>,
    /// Whether the validation texts were those held out of the encoder's
    /// training (else a share of all reference groups).
    #[serde(default)]
    pub held_out: bool,
    /// Weight of the references' hubness in the ranking of neighbours (see
    /// [`References::search_hub_scaled`]; 0: plain similarity).
    #[serde(default)]
    pub hubness: f32,
    /// Best validation AvgRec (percent) for every candidate hubness weight,
    /// when there was more than one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub avg_rec_by_hubness: Vec<(f32, f64)>,
    /// Group vote chosen on validation (the `m` nearest members a group's
    /// closeness averages); `None`: the majority of the `k` nearest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<usize>,
    /// Validation AvgRec (percent) of the group vote for every candidate
    /// `m`, when there were candidates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub avg_rec_by_groups: Vec<(usize, f64)>,
    /// What a machine text's group is in the group vote.
    #[serde(default, skip_serializing_if = "GroupBy::is_model")]
    pub group_by: GroupBy,
    /// The rule weighing the group vote's margin against the classifier,
    /// where it beat the group vote alone on validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blend_rule: Option<BlendRule>,
    /// Validation AvgRec (percent) of the blend rule (cross-fitted) and of
    /// the group vote on the same texts, when they were compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blend_rule_avg_rec: Option<(f64, f64)>,
    /// The classifier the scores and the blend rule were calibrated with
    /// ([`ClassifierConfig::tag`]; `None`: none, or a calibration older
    /// than the tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<String>,
}

impl Calibration {
    /// Whether this calibration compared the default group votes with the
    /// majority (one made before group votes existed did not).
    pub fn compared_default_groups(&self) -> bool {
        self.avg_rec_by_groups
            .iter()
            .map(|&(m, _)| m)
            .eq(GROUP_CANDIDATES.iter().copied())
    }

    /// Whether the scores and the blend rule were calibrated with the
    /// classifier this build fits (always, when no classifier is blended).
    pub fn made_with_current_classifier(&self) -> bool {
        self.classifier_weight == 0.0
            || self.classifier.as_deref() == Some(ClassifierConfig::default().tag().as_str())
    }

    /// Vote configuration at the calibrated k, with the operating point for
    /// `target_fpr` if one was calibrated.
    pub fn vote_config(&self, target_fpr: Option<f64>) -> VoteConfig {
        VoteConfig {
            k: self.k,
            temperature: self.temperature,
            novelty: self.novelty.clone(),
            novelty_policy: NoveltyPolicy::default(),
            groups: self.groups,
            group_by: self.group_by,
            blend_rule: self.blend_rule,
            operating_point: target_fpr.and_then(|t| {
                self.operating_points
                    .iter()
                    .find(|op| (op.target_fpr - t).abs() < 1e-12)
                    .copied()
            }),
        }
    }
}

/// Average of human and machine recall (percent) of majority votes at `k`.
pub fn avg_rec_at(val: &[(Label, Vec<Neighbour>)], k: usize, temperature: f64) -> f64 {
    let cfg = VoteConfig {
        k,
        temperature,
        ..VoteConfig::default()
    };
    avg_rec_of(val, |nb| vote(nb, &cfg).map(|v| v.label))
}

/// Validation AvgRec (percent) of the group vote with `m`.
pub fn group_avg_rec(val: &[(Label, Vec<Neighbour>)], m: usize, by: GroupBy) -> f64 {
    avg_rec_of(val, |nb| group_vote(nb, m, by).map(|g| g.label))
}

/// Average of human and machine recall (percent) of `decide` on the
/// validation texts' neighbour lists.
fn avg_rec_of(
    val: &[(Label, Vec<Neighbour>)],
    decide: impl Fn(&[Neighbour]) -> Option<Label>,
) -> f64 {
    avg_rec_of_pairs(val.iter().map(|(truth, nb)| (*truth, decide(nb))))
}

/// Average of human and machine recall (percent) over (true label,
/// decided label) pairs; no decision counts as wrong.
pub(super) fn avg_rec_of_pairs(pairs: impl IntoIterator<Item = (Label, Option<Label>)>) -> f64 {
    let mut hit = [0usize; 2];
    let mut total = [0usize; 2];
    for (truth, decided) in pairs {
        let i = usize::from(truth == Label::Machine);
        total[i] += 1;
        if decided == Some(truth) {
            hit[i] += 1;
        }
    }
    let rec = |i: usize| {
        if total[i] == 0 {
            0.0
        } else {
            100.0 * hit[i] as f64 / total[i] as f64
        }
    };
    (rec(0) + rec(1)) / 2.0
}

/// Smallest threshold at which at most `target` of the human scores are
/// at or above it.
pub fn threshold_for_fpr(human_scores: &[f64], target: f64) -> f64 {
    let mut s: Vec<f64> = human_scores.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    let allowed = (target * s.len() as f64).floor() as usize;
    match s.get(allowed) {
        // Just above the first human score that must not be flagged.
        Some(&v) => next_up(v),
        None => 0.0,
    }
}

fn next_up(v: f64) -> f64 {
    if v >= 1.0 {
        return f64::INFINITY;
    }
    f64::from_bits(if v >= 0.0 {
        v.to_bits() + 1
    } else {
        v.to_bits() - 1
    })
    .max(f64::MIN_POSITIVE)
}

/// How the validation split is carved from the references and searched.
#[derive(Debug, Clone)]
pub struct CalibrationOptions {
    pub index: IndexKind,
    /// Share of reference groups carved out for validation.
    pub val_fraction: f64,
    /// Most validation texts.
    pub max_val: usize,
    pub target_fprs: Vec<f64>,
    pub temperature: f64,
    /// The groups the encoder's training held out: validate on those when
    /// the references hold at least [`MIN_HELD_OUT`] of each label.
    pub held_out: Option<HeldOut>,
    /// Candidate weights of the references' hubness in the ranking of
    /// neighbours; validation picks one (a tie goes to the smaller).
    pub hubness: Vec<f32>,
    /// Candidate group votes (`m`, see [`VoteConfig::groups`]); validation
    /// picks one where it beats the majority (empty: the majority).
    pub groups: Vec<usize>,
    /// What a machine text's group is in the group votes.
    pub group_by: GroupBy,
    /// Whether the blend rule is used never, where validation prefers it
    /// (the default), or always (with a group vote and a classifier).
    pub blend_rule: BlendRuleMode,
}

/// Fewest held-out texts of each label the held-out validation needs.
pub const MIN_HELD_OUT: usize = 200;

impl Default for CalibrationOptions {
    fn default() -> Self {
        Self {
            index: IndexKind::Hnsw(Default::default()),
            val_fraction: 0.1,
            max_val: 3000,
            target_fprs: vec![0.01, 0.05],
            temperature: 0.05,
            held_out: None,
            hubness: vec![0.0],
            groups: GROUP_CANDIDATES.to_vec(),
            group_by: GroupBy::default(),
            blend_rule: BlendRuleMode::default(),
        }
    }
}

/// Position of a row's group in the validation order (a seeded hash), so
/// texts of one source document fall on one side of the split.
fn validation_rank(r: &VectorRow) -> u64 {
    let key = r.group.clone().unwrap_or_else(|| format!("id:{}", r.id));
    let d = Sha256::digest(format!("val|{key}"));
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Carves the validation split from `rows` by group and calibrates on it.
pub fn calibrate_on(
    rows: &[VectorRow],
    dim: usize,
    opts: &CalibrationOptions,
) -> Result<Calibration, DetectError> {
    calibrate_blended(rows, &[], dim, opts, 0.0)
}

/// As [`calibrate_on`], with the thresholds chosen on scores that blend in,
/// with `weight`, a classifier fitted on the other references' `texts`
/// (in the order of `rows`; unused when `weight` is 0).
pub fn calibrate_blended(
    rows: &[VectorRow],
    texts: &[&str],
    dim: usize,
    opts: &CalibrationOptions,
    weight: f64,
) -> Result<Calibration, DetectError> {
    let threshold = (opts.val_fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
    let ranks: Vec<u64> = rows.iter().map(validation_rank).collect();
    let held = held_out_rows(rows, opts.held_out);
    let in_val = |i: usize| match &held {
        Some(h) => h[i],
        None => ranks[i] < threshold,
    };
    let mut val: Vec<(u64, usize)> = (0..rows.len())
        .filter(|&i| in_val(i))
        .map(|i| (ranks[i], i))
        .collect();
    val.sort_unstable();
    val.truncate(opts.max_val);
    // Whole groups leave the reference side, even past the cap.
    let rest_at: Vec<usize> = (0..rows.len()).filter(|&i| !in_val(i)).collect();
    let rest: Vec<VectorRow> = rest_at.iter().map(|&i| rows[i].clone()).collect();
    let index = References::new(opts.index, dim, rest.len());
    for chunk in rest.chunks(8192) {
        index.add(chunk)?;
    }
    let weights: Vec<f32> = if opts.hubness.is_empty() {
        vec![0.0]
    } else {
        opts.hubness.clone()
    };
    if weights.iter().any(|&w| w != 0.0) {
        index.refresh_hubs(&rest);
    }
    let k_max = match opts.groups.is_empty() {
        true => *K_CANDIDATES.last().expect("candidates"),
        false => GROUP_POOL,
    };
    let model = (weight > 0.0)
        .then(|| {
            let t: Vec<&str> = rest_at.iter().map(|&i| texts[i]).collect();
            let l: Vec<Label> = rest.iter().map(|r| r.label).collect();
            Classifier::fit(&t, &l, &ClassifierConfig::default())
        })
        .flatten();
    let p: Option<Vec<Option<f64>>> =
        model.map(|m| val.par_iter().map(|&(_, i)| m.predict(texts[i])).collect());
    let blend = p.as_deref().map(|p| (p, weight));
    // Two halves of the validation texts for cross-fitting the blend rule
    // (a group's texts share a rank, so they fall on one side).
    let folds: Vec<bool> = val.iter().map(|&(rank, _)| rank % 2 == 0).collect();
    let mut best: Option<Calibration> = None;
    let mut by_hubness = Vec::new();
    for &w in &weights {
        let found: Vec<(Label, Vec<Neighbour>)> = val
            .par_iter()
            .map(|&(_, i)| {
                let nb = index.search_hub_scaled(&rows[i].embedding, k_max, w);
                (rows[i].label, nb)
            })
            .collect();
        let cal = Calibration {
            hubness: w,
            novelty: (texts.len() == rows.len())
                .then(|| novelty(&found, &val, texts))
                .flatten(),
            ..calibrate(&found, opts.temperature, &opts.target_fprs, blend)
        };
        let cal = choose_groups(cal, &found, &opts.groups, opts.group_by);
        let cal = choose_blend_rule(cal, &found, p.as_deref(), &folds, opts.blend_rule);
        let score = best_avg_rec(&cal);
        by_hubness.push((w, score));
        if best.as_ref().is_none_or(|b| score > best_avg_rec(b)) {
            best = Some(cal);
        }
    }
    let best = best.expect("at least one hubness weight");
    Ok(Calibration {
        held_out_split: opts.held_out,
        held_out: held.is_some(),
        avg_rec_by_hubness: if weights.len() > 1 {
            by_hubness
        } else {
            Vec::new()
        },
        ..best
    })
}

/// Per-length novelty thresholds from the validation texts' nearest
/// similarities (the first neighbour, unless hubness reordered them) and
/// texts (all references' texts, in their order).
fn novelty(
    found: &[(Label, Vec<Neighbour>)],
    val: &[(u64, usize)],
    texts: &[&str],
) -> Option<Novelty> {
    let samples: Vec<(usize, f32)> = found
        .iter()
        .zip(val)
        .filter_map(|((_, nb), &(_, i))| {
            let nearest = nb.iter().map(|n| n.similarity).reduce(f32::max)?;
            Some((texts[i].chars().count(), nearest))
        })
        .collect();
    Novelty::fit(&samples, NOVELTY_QUANTILE)
}

/// The validation AvgRec of the calibrated vote (the group vote, if one
/// was chosen, else the majority at the calibrated k).
fn best_avg_rec(c: &Calibration) -> f64 {
    let majority = c
        .avg_rec_by_k
        .iter()
        .find(|(k, _)| *k == c.k)
        .map_or(f64::NEG_INFINITY, |p| p.1);
    c.groups
        .and_then(|m| c.avg_rec_by_groups.iter().find(|(g, _)| *g == m))
        .map_or(majority, |p| p.1)
}

/// The group vote among `candidates` with the best validation AvgRec, if
/// it beats the calibrated majority (a tie keeps the majority).
fn choose_groups(
    cal: Calibration,
    val: &[(Label, Vec<Neighbour>)],
    candidates: &[usize],
    group_by: GroupBy,
) -> Calibration {
    if candidates.is_empty() {
        return cal;
    }
    let by: Vec<(usize, f64)> = candidates
        .iter()
        .map(|&m| (m, group_avg_rec(val, m, group_by)))
        .collect();
    let majority = best_avg_rec(&cal);
    let best = by
        .iter()
        .fold(None::<(usize, f64)>, |b, &(m, r)| match b {
            Some((_, br)) if br >= r => b,
            _ => Some((m, r)),
        })
        .filter(|&(_, r)| r > majority);
    Calibration {
        groups: best.map(|(m, _)| m),
        avg_rec_by_groups: by,
        group_by,
        ..cal
    }
}

/// Which rows are of the groups `split` holds out, if at least
/// [`MIN_HELD_OUT`] of each label are.
fn held_out_rows(rows: &[VectorRow], split: Option<HeldOut>) -> Option<Vec<bool>> {
    let split = split?;
    let held: Vec<bool> = rows
        .iter()
        .map(|r| r.group.as_deref().is_some_and(|g| split.contains(g)))
        .collect();
    let count = |l: Label| {
        rows.iter()
            .zip(&held)
            .filter(|(r, h)| **h && r.label == l)
            .count()
    };
    (count(Label::Human) >= MIN_HELD_OUT && count(Label::Machine) >= MIN_HELD_OUT).then_some(held)
}

/// The calibration stored for `encoder`, if any (one that no longer parses
/// counts as none).
pub async fn stored(
    store: &dyn Store,
    encoder: &EncoderId,
) -> Result<Option<Calibration>, DetectError> {
    Ok(store
        .calibration(encoder)
        .await?
        .and_then(|body| serde_json::from_str(&body).ok()))
}

/// Calibrates on `rows` (with the classifier at `classifier_weight`,
/// fitted on their stored texts) and stores the result; `None` when there
/// are too few references to carve a validation split from.
pub async fn refresh(
    store: &dyn Store,
    encoder: &EncoderId,
    dim: usize,
    rows: &[VectorRow],
    kind: IndexKind,
    classifier_weight: f64,
    held_out: Option<HeldOut>,
) -> Result<Option<Calibration>, DetectError> {
    if rows.len() < 20 {
        return Ok(None);
    }
    let opts = CalibrationOptions {
        index: kind,
        held_out,
        ..CalibrationOptions::default()
    };
    // The classifier is fitted on them; novelty thresholds follow their length.
    let mut by_id = super::supervised::texts(store).await?;
    let texts: Vec<String> = rows
        .iter()
        .map(|r| by_id.remove(&r.id).unwrap_or_default())
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let cal = calibrate_blended(rows, &texts, dim, &opts, classifier_weight)?;
    let body = serde_json::to_string(&cal).expect("a calibration serializes");
    store.save_calibration(encoder, &body).await?;
    Ok(Some(cal))
}

/// Calibrates from validation texts' neighbour lists (searched with at least
/// the largest candidate k) and their true labels; `classifier`: each
/// validation text's classifier probability (none: the vote's score alone)
/// and the weight it is blended into the score with.
pub fn calibrate(
    val: &[(Label, Vec<Neighbour>)],
    temperature: f64,
    target_fprs: &[f64],
    classifier: Option<(&[Option<f64>], f64)>,
) -> Calibration {
    let avg_rec_by_k: Vec<(usize, f64)> = K_CANDIDATES
        .iter()
        .map(|&k| (k, avg_rec_at(val, k, temperature)))
        .collect();
    // Best AvgRec; the smaller k wins a tie (cheaper, and less smoothing).
    let k = avg_rec_by_k
        .iter()
        .fold((1, f64::NEG_INFINITY), |best, &(k, r)| {
            if r > best.1 {
                (k, r)
            } else {
                best
            }
        })
        .0;
    let weight = classifier.map_or(0.0, |c| c.1);
    let human_scores: Vec<f64> = val
        .iter()
        .enumerate()
        .filter(|(_, (l, _))| *l == Label::Human)
        .map(|(i, (_, nb))| {
            let s = weighted_score(&nb[..nb.len().min(k)], temperature);
            match classifier.and_then(|(p, w)| Some((p[i]?, w))) {
                Some((p, w)) => w * p + (1.0 - w) * s,
                None => s,
            }
        })
        .collect();
    let operating_points = target_fprs
        .iter()
        .map(|&t| OperatingPoint {
            target_fpr: t,
            threshold: threshold_for_fpr(&human_scores, t),
        })
        .collect();
    Calibration {
        k,
        temperature,
        novelty: None,
        operating_points,
        avg_rec_by_k,
        validation_size: val.len(),
        classifier_weight: weight,
        held_out_split: None,
        held_out: false,
        hubness: 0.0,
        avg_rec_by_hubness: Vec::new(),
        groups: None,
        avg_rec_by_groups: Vec::new(),
        group_by: GroupBy::Model,
        blend_rule: None,
        blend_rule_avg_rec: None,
        classifier: (weight > 0.0).then(|| ClassifierConfig::default().tag()),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A neighbour; machine ones carry `model`.
    pub(in crate::detect) fn nb(label: Label, model: &str, sim: f32) -> Neighbour {
        Neighbour {
            id: 0,
            similarity: sim,
            label,
            model: (label == Label::Machine).then(|| model.to_owned()),
            family: None,
            source: None,
        }
    }

    #[test]
    fn group_vote_is_chosen_only_where_validation_prefers_it() {
        // Machine texts whose nearest reference is human, and whose other
        // close ones are too few to win a majority at any k; human texts
        // whose two nearest are machine. Every k gets one kind wrong; the
        // closest group of three is right for both.
        let tail = |mut v: Vec<Neighbour>| {
            v.extend((0..60).map(|_| nb(Label::Human, "", 0.5)));
            v
        };
        let machine_text = || {
            tail(vec![
                nb(Label::Human, "", 0.95),
                nb(Label::Machine, "new-model", 0.9),
                nb(Label::Machine, "new-model", 0.89),
            ])
        };
        let human_text = || {
            tail(vec![
                nb(Label::Machine, "m", 0.95),
                nb(Label::Machine, "m", 0.94),
                nb(Label::Human, "", 0.9),
                nb(Label::Human, "", 0.89),
                nb(Label::Human, "", 0.88),
            ])
        };
        let val: Vec<(Label, Vec<Neighbour>)> = (0..10)
            .map(|i| match i % 2 {
                0 => (Label::Machine, machine_text()),
                _ => (Label::Human, human_text()),
            })
            .collect();
        assert_eq!(group_avg_rec(&val, 3, GroupBy::Model), 100.0);
        let cal = calibrate(&val, 0.05, &[0.01], None);
        assert!(best_avg_rec(&cal) < 100.0);
        let chosen = choose_groups(cal.clone(), &val, &[3], GroupBy::Model);
        assert_eq!(chosen.groups, Some(3));
        assert_eq!(chosen.avg_rec_by_groups, vec![(3, 100.0)]);
        assert_eq!(chosen.vote_config(None).groups, Some(3));
        assert_eq!(best_avg_rec(&chosen), 100.0);
        // No candidates: the majority, nothing recorded.
        assert_eq!(choose_groups(cal.clone(), &val, &[], GroupBy::Model), cal);
        // Where the group vote is no better, the majority stays.
        let easy: Vec<(Label, Vec<Neighbour>)> = (0..10)
            .map(|i| match i % 2 {
                0 => (Label::Machine, vec![nb(Label::Machine, "m", 0.9); 3]),
                _ => (Label::Human, vec![nb(Label::Human, "", 0.9); 3]),
            })
            .collect();
        let cal = calibrate(&easy, 0.05, &[0.01], None);
        assert_eq!(
            choose_groups(cal, &easy, &[1, 3], GroupBy::Model).groups,
            None
        );
    }

    #[test]
    fn threshold_keeps_false_positives_within_target() {
        let humans: Vec<f64> = (0..100).map(|i| f64::from(i) / 100.0).collect();
        let t = threshold_for_fpr(&humans, 0.05);
        let flagged = humans.iter().filter(|&&s| s >= t).count();
        assert_eq!(flagged, 5);
        // Ties at the boundary never push the rate over the target.
        let tied = vec![0.9; 50];
        let t = threshold_for_fpr(&tied, 0.01);
        assert_eq!(tied.iter().filter(|&&s| s >= t).count(), 0);
    }

    #[test]
    fn picks_the_k_with_best_validation_avg_rec() {
        let n = |sim: f32, label| Neighbour {
            id: 0,
            similarity: sim,
            label,
            model: None,
            family: None,
            source: None,
        };
        // The nearest neighbour is misleading; the next two outvote it.
        let mut val = Vec::new();
        for _ in 0..10 {
            let mut m = vec![
                n(0.9, Label::Human),
                n(0.8, Label::Machine),
                n(0.8, Label::Machine),
            ];
            m.extend((0..60).map(|_| n(0.1, Label::Human)));
            val.push((Label::Machine, m));
            let mut h = vec![n(0.9, Label::Human)];
            h.extend((0..62).map(|_| n(0.1, Label::Human)));
            val.push((Label::Human, h));
        }
        let cal = calibrate(&val, 0.05, &[0.01], None);
        assert_eq!(cal.k, 3);
        assert_eq!(cal.validation_size, 20);
        // Novelty needs the texts' lengths (and more validation texts).
        assert!(cal.novelty.is_none());
    }

    #[test]
    fn thresholds_follow_the_blended_scores() {
        let n = |sim: f32, label| Neighbour {
            id: 0,
            similarity: sim,
            label,
            model: None,
            family: None,
            source: None,
        };
        // Humans whose neighbours are all machines: the vote's score is
        // high for them, the classifier's probability low.
        let val: Vec<(Label, Vec<Neighbour>)> = (0..100)
            .map(|_| (Label::Human, vec![n(0.9, Label::Machine); 60]))
            .collect();
        let p = vec![Some(0.0); 100];
        let plain = calibrate(&val, 0.05, &[0.01], None);
        let blended = calibrate(&val, 0.05, &[0.01], Some((&p, 0.5)));
        assert_eq!(plain.classifier_weight, 0.0);
        assert_eq!(blended.classifier_weight, 0.5);
        let (t0, t1) = (
            plain.operating_points[0].threshold,
            blended.operating_points[0].threshold,
        );
        // Every blended human score is half the plain one.
        assert!(t1 < t0 && (t1 - 0.5 * weighted_score(&val[0].1[..plain.k], 0.05)).abs() < 1e-9);
        // A calibration records the classifier it was made with; one made
        // with another (or before the record existed) is not reused.
        assert!(plain.made_with_current_classifier());
        assert!(blended.made_with_current_classifier());
        let older = Calibration {
            classifier: None,
            ..blended.clone()
        };
        assert!(!older.made_with_current_classifier());
        let other = Calibration {
            classifier: Some("words1-2df2x200000-c10-it500".to_owned()),
            ..blended.clone()
        };
        assert!(!other.made_with_current_classifier());
    }

    fn rows(n: usize) -> Vec<VectorRow> {
        (0..n)
            .map(|i| {
                let label = if i % 2 == 0 {
                    Label::Human
                } else {
                    Label::Machine
                };
                let mut v = [0.1 * ((i * 7) % 5) as f32, 0.1 * ((i * 3) % 7) as f32, 0.0];
                v[i % 2] += 1.0;
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                VectorRow {
                    id: i as i64,
                    label,
                    model: None,
                    family: None,
                    source: None,
                    group: Some(format!("g{i}")),
                    embedding: v.iter().map(|x| x / norm).collect(),
                }
            })
            .collect()
    }

    #[test]
    fn validates_on_the_encoders_held_out_groups_when_there_are_enough() {
        let rows = rows(2000);
        let opts = |held_out| CalibrationOptions {
            index: IndexKind::Exact,
            held_out,
            ..CalibrationOptions::default()
        };
        let split = HeldOut {
            seed: 42,
            fraction: 0.3,
        };
        let held = rows
            .iter()
            .filter(|r| split.contains(r.group.as_deref().unwrap()))
            .count();
        let cal = calibrate_on(&rows, 3, &opts(Some(split))).unwrap();
        assert!(cal.held_out);
        assert_eq!(cal.held_out_split, Some(split));
        assert_eq!(cal.validation_size, held);
        // Too few held-out texts of a label: a share of all groups instead,
        // and the calibration says which split it asked for.
        let few = HeldOut {
            seed: 42,
            fraction: 0.05,
        };
        let cal = calibrate_on(&rows, 3, &opts(Some(few))).unwrap();
        assert!(!cal.held_out);
        assert_eq!(cal.held_out_split, Some(few));
        let plain = calibrate_on(&rows, 3, &opts(None)).unwrap();
        assert_eq!(cal.validation_size, plain.validation_size);
        assert!(!plain.held_out && plain.held_out_split.is_none());
    }

    #[test]
    fn novelty_thresholds_are_set_by_length_when_texts_are_given() {
        let rows = rows(2000);
        let texts: Vec<String> = (0..rows.len())
            .map(|i| "word ".repeat(1 + i % 90))
            .collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let opts = CalibrationOptions {
            index: IndexKind::Exact,
            val_fraction: 0.3,
            ..CalibrationOptions::default()
        };
        let cal = calibrate_blended(&rows, &texts, 3, &opts, 0.0).unwrap();
        let novelty = cal.novelty.as_ref().expect("thresholds by length");
        assert_eq!(
            novelty.bins.iter().map(|b| b.texts).sum::<usize>(),
            cal.validation_size
        );
        assert!(novelty.bins.len() >= 2, "{novelty:?}");
        assert_eq!(novelty.quantile, NOVELTY_QUANTILE);
        assert_eq!(cal.vote_config(None).novelty.as_ref(), Some(novelty));
        // Without the texts there is no length to judge by.
        assert!(calibrate_on(&rows, 3, &opts).unwrap().novelty.is_none());
        assert!(calibrate_blended(&rows, &texts[1..], 3, &opts, 0.0)
            .unwrap()
            .novelty
            .is_none());
    }
}

//! The DeTeCtive vote: pure, IO-free.
//!
//! The `k` nearest references vote. The verdict is the majority label; a tie
//! (possible with even `k`) goes to the similarity-weighted score, and an
//! exact tie there goes to `human`, because wrongly accusing a person costs
//! more than missing a machine. The score is the softmax-weighted share of
//! machine neighbours, `sum_machine w / sum w` with `w = exp(sim / T)`: a
//! probability-like number in [0, 1] that ranks texts for ROC analysis and
//! for the calibrated operating point. Attribution is the vote share of each
//! family and model among the machine neighbours.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::blend_rule::{margin, BlendRule};
use super::group_vote::{group_vote, GroupBy, GroupVerdict, GROUP_POOL};
use super::novelty::{Novelty, NoveltyPolicy};

use crate::store::Label;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Neighbour {
    pub id: i64,
    pub similarity: f32,
    pub label: Label,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// A score threshold chosen on validation data for a target false-positive
/// rate on human text.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub target_fpr: f64,
    pub threshold: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VoteConfig {
    pub k: usize,
    /// Softmax temperature of the score weights.
    pub temperature: f64,
    /// Nearest similarities below which a text is novel, by its length.
    pub novelty: Option<Novelty>,
    /// What a novel text gets.
    pub novelty_policy: NoveltyPolicy,
    pub operating_point: Option<OperatingPoint>,
    /// Group vote: the label is that of the closest group of references
    /// (human texts; each model's machine texts), a group's closeness the
    /// mean similarity of its `m` nearest members (see [`group_vote`]).
    /// `None`: the majority of the `k` nearest decides.
    pub groups: Option<usize>,
    /// What a machine text's group is in the group vote.
    pub group_by: GroupBy,
    /// With the group vote: the calibrated rule that weighs its margin
    /// against the classifier once the classifier's probability is blended
    /// in (see [`Verdict::blend_classifier`]).
    pub blend_rule: Option<BlendRule>,
}

impl Default for VoteConfig {
    fn default() -> Self {
        Self {
            k: 10,
            temperature: 0.05,
            novelty: None,
            novelty_policy: NoveltyPolicy::default(),
            operating_point: None,
            groups: None,
            group_by: GroupBy::Model,
            blend_rule: None,
        }
    }
}

impl VoteConfig {
    /// How many neighbours a vote with this configuration reads.
    pub fn search_width(&self) -> usize {
        match self.groups {
            Some(_) => self.k.max(GROUP_POOL),
            None => self.k,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Share {
    pub name: String,
    pub votes: usize,
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Attribution {
    /// Most voted family among machine neighbours.
    pub family: Option<String>,
    pub model: Option<String>,
    pub families: Vec<Share>,
    pub models: Vec<Share>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatingVerdict {
    pub target_fpr: f64,
    pub threshold: f64,
    pub label: Label,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Majority label of the k nearest references.
    pub label: Label,
    /// Similarity-weighted probability of machine authorship.
    pub score: f64,
    pub k: usize,
    pub machine_votes: usize,
    pub human_votes: usize,
    pub nearest_similarity: f32,
    /// The nearest reference is less similar than the calibrated novelty
    /// threshold for texts of this length: references for this kind of
    /// text are probably missing.
    pub novel: bool,
    /// That threshold, when one was calibrated.
    #[serde(skip)]
    pub novelty_threshold: Option<f32>,
    /// Share of validation texts of the text's length below it.
    #[serde(skip)]
    pub novelty_quantile: Option<f64>,
    /// The reference-fitted classifier's probability of machine
    /// authorship, when it is blended into `score`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classifier: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operating_point: Option<OperatingVerdict>,
    pub attribution: Attribution,
    pub neighbours: Vec<Neighbour>,
    /// The group vote that decided `label`, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupVerdict>,
    /// Why the majority and the score (or the operating point) disagree,
    /// in words a moderator can read; absent when they agree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The rule that will weigh the group margin against the classifier.
    #[serde(skip)]
    pub blend_rule: Option<BlendRule>,
}

/// Votes over neighbours sorted most similar first (only the first `k`
/// count). `None` when there are no neighbours. Novelty is judged against
/// the threshold for texts of any length; [`vote_sized`] judges it for the
/// text's length.
pub fn vote(neighbours: &[Neighbour], cfg: &VoteConfig) -> Option<Verdict> {
    vote_sized(neighbours, cfg, None)
}

/// [`vote`] for a text of `chars` characters.
pub fn vote_sized(
    neighbours: &[Neighbour],
    cfg: &VoteConfig,
    chars: Option<usize>,
) -> Option<Verdict> {
    let used = &neighbours[..neighbours.len().min(cfg.k.max(1))];
    let nearest = used
        .iter()
        .map(|n| n.similarity)
        .fold(f32::NEG_INFINITY, f32::max);
    if used.is_empty() {
        return None;
    }
    let score = weighted_score(used, cfg.temperature);
    let novelty_threshold = cfg.novelty.as_ref().map(|n| n.threshold(chars));
    let machine_votes = used.iter().filter(|n| n.label == Label::Machine).count();
    let human_votes = used.len() - machine_votes;
    let majority = match machine_votes.cmp(&human_votes) {
        std::cmp::Ordering::Greater => Label::Machine,
        std::cmp::Ordering::Less => Label::Human,
        std::cmp::Ordering::Equal if score > 0.5 => Label::Machine,
        std::cmp::Ordering::Equal => Label::Human,
    };
    let group = cfg
        .groups
        .and_then(|m| group_vote(neighbours, m, cfg.group_by));
    let label = group.as_ref().map_or(majority, |g| g.label);
    let operating_point = cfg.operating_point.map(|op| OperatingVerdict {
        target_fpr: op.target_fpr,
        threshold: op.threshold,
        label: if score >= op.threshold {
            Label::Machine
        } else {
            Label::Human
        },
    });
    let note = disagreement(
        label,
        score,
        None,
        operating_point.as_ref(),
        used,
        group.as_ref(),
        false,
    );
    Some(Verdict {
        note,
        blend_rule: cfg.blend_rule.filter(|_| group.is_some()),
        group,
        classifier: None,
        label,
        score,
        k: used.len(),
        machine_votes,
        human_votes,
        nearest_similarity: nearest,
        novel: novelty_threshold.is_some_and(|t| nearest < t),
        novelty_threshold,
        novelty_quantile: cfg.novelty.as_ref().map(|n| n.quantile),
        operating_point,
        attribution: attribution(used),
        neighbours: used.to_vec(),
    })
}

impl Verdict {
    /// Blends the classifier's probability `p` into the score with weight
    /// `weight` (`weight * p + (1 - weight) * score`); the operating point
    /// and the note follow the new score. The label stays the vote's, unless
    /// a calibrated blend rule weighs the group margin against `p`.
    pub fn blend_classifier(&mut self, p: f64, weight: f64) {
        self.classifier = Some(p);
        self.score = weight * p + (1.0 - weight) * self.score;
        let ruled = self.blend_rule.zip(self.group.as_ref().and_then(margin));
        if let Some((rule, margin)) = ruled {
            self.label = rule.label(margin, p);
        }
        if let Some(op) = self.operating_point.as_mut() {
            op.label = if self.score >= op.threshold {
                Label::Machine
            } else {
                Label::Human
            };
        }
        // A group the rule overruled is described once, with the reason.
        let overruled = ruled.and(self.group.as_ref().filter(|g| g.label != self.label));
        self.note = disagreement(
            self.label,
            self.score,
            Some(p),
            self.operating_point.as_ref(),
            &self.neighbours,
            self.group.as_ref().filter(|_| overruled.is_none()),
            overruled.is_some(),
        );
        if let Some(g) = overruled {
            let why = format!(
                "{}, but the classifier fitted on every reference (words and character \
                 n-grams) gives {p:.3}, which outweighs so small a difference",
                g.describe()
            );
            self.note = Some(match self.note.take() {
                Some(n) => format!("{why}; {n}"),
                None => why,
            });
        }
    }
}

/// Explains, in words a moderator can read, a majority that the score or
/// the operating point contradicts; `None` when they agree. `classifier`:
/// the classifier probability blended into the score, if any.
fn disagreement(
    label: Label,
    score: f64,
    classifier: Option<f64>,
    op: Option<&OperatingVerdict>,
    used: &[Neighbour],
    group: Option<&GroupVerdict>,
    overruled: bool,
) -> Option<String> {
    let votes = used.iter().filter(|n| n.label == label).count();
    let group_note = group.map(GroupVerdict::describe);
    let closest = |l: Label| {
        used.iter()
            .filter(|n| n.label == l)
            .map(|n| n.similarity)
            .fold(f32::NEG_INFINITY, f32::max)
    };
    let other = match label {
        Label::Human => Label::Machine,
        Label::Machine => Label::Human,
    };
    let mut majority = format!(
        "{votes} of the {} nearest references are {label}",
        used.len()
    );
    if let Some(g) = group_note {
        majority = format!("{g}; {majority}");
    }
    // Only when the label has neighbours of its own to compare with.
    let mut closer = if closest(label).is_finite() && closest(other) > closest(label) {
        format!(
            ": the closest {other} reference is more similar ({:.3}) than the closest \
             {label} one ({:.3}), and the score weighs closeness",
            closest(other),
            closest(label)
        )
    } else {
        String::new()
    };
    // A note that already gives the classifier's reason need not repeat it.
    if let Some(p) = classifier.filter(|_| !overruled) {
        closer.push_str(&format!(
            "; the score also weighs the classifier fitted on every reference, \
             which gives {p:.3}"
        ));
    }
    match op {
        Some(op) if op.label != label && op.label == Label::Human => Some(format!(
            "{majority}, but the score {score:.3} is below the threshold {:.3} that keeps \
             false accusations of human texts near {:.0}%: not confident enough to act on",
            op.threshold,
            op.target_fpr * 100.0
        )),
        Some(op) if op.label != label => Some(format!(
            "{majority}, but the score {score:.3} reaches the {:.0}%-FPR threshold {:.3}{closer}",
            op.target_fpr * 100.0,
            op.threshold
        )),
        _ if (score >= 0.5) != (label == Label::Machine) => Some(format!(
            "{majority}, but the {} score {score:.3} leans {other}{closer}",
            if classifier.is_some() {
                "blended"
            } else {
                "similarity-weighted"
            }
        )),
        // The group vote overruled the nearest references' majority.
        _ if group.is_some() && votes * 2 < used.len() => Some(majority),
        _ => None,
    }
}

/// Similarity at which a neighbour counts as much as the uninformative prior.
pub const BACKGROUND_SIMILARITY: f64 = 0.5;

/// Softmax-weighted machine share with a small uninformative prior:
/// `(sum_machine w + b) / (sum w + 2b)`, `w = exp((sim - 1) / T)`,
/// `b = exp((BACKGROUND_SIMILARITY - 1) / T)`. The prior keeps the score off
/// exactly 0 and 1, so a unanimous neighbourhood still ranks by how close it
/// is: without it, every all-machine neighbourhood ties at 1.0 and no
/// threshold could separate them. Similarities are at most 1, so the
/// exponentials cannot overflow.
pub fn weighted_score(used: &[Neighbour], temperature: f64) -> f64 {
    let t = temperature.max(1e-6);
    let b = ((BACKGROUND_SIMILARITY - 1.0) / t).exp();
    let (mut machine, mut total) = (b, 2.0 * b);
    for n in used {
        let w = ((f64::from(n.similarity).min(1.0) - 1.0) / t).exp();
        total += w;
        if n.label == Label::Machine {
            machine += w;
        }
    }
    machine / total
}

fn attribution(used: &[Neighbour]) -> Attribution {
    let machines: Vec<&Neighbour> = used.iter().filter(|n| n.label == Label::Machine).collect();
    let families = shares(&machines, |n| n.family.as_deref());
    let models = shares(&machines, |n| n.model.as_deref());
    let family = families.first().map(|s| s.name.clone());
    // The model is the most voted one of the attributed family, so the two
    // never name generators of different makers.
    let of_family: Vec<&Neighbour> = machines
        .iter()
        .copied()
        .filter(|n| n.family.as_deref().unwrap_or("unknown") == family.as_deref().unwrap_or(""))
        .collect();
    let model = shares(&of_family, |n| n.model.as_deref())
        .first()
        .map(|s| s.name.clone());
    Attribution {
        family,
        model,
        families,
        models,
    }
}

/// Vote shares by key, most votes first; ties go to the larger summed
/// similarity, then to the name.
fn shares(machines: &[&Neighbour], key: impl Fn(&Neighbour) -> Option<&str>) -> Vec<Share> {
    let mut tally: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for n in machines {
        let e = tally.entry(key(n).unwrap_or("unknown")).or_default();
        e.0 += 1;
        e.1 += f64::from(n.similarity);
    }
    let total = machines.len().max(1) as f64;
    let mut out: Vec<(&str, usize, f64)> = tally.into_iter().map(|(k, (v, s))| (k, v, s)).collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.total_cmp(&a.2)).then(a.0.cmp(b.0)));
    out.into_iter()
        .map(|(name, votes, _)| Share {
            name: name.to_owned(),
            votes,
            share: votes as f64 / total,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(id: i64, sim: f32, label: Label, family: &str, model: &str) -> Neighbour {
        Neighbour {
            id,
            similarity: sim,
            label,
            model: Some(model.into()),
            family: Some(family.into()),
            source: None,
        }
    }

    fn h(id: i64, sim: f32) -> Neighbour {
        n(id, sim, Label::Human, "human", "human")
    }

    fn m(id: i64, sim: f32, family: &str, model: &str) -> Neighbour {
        n(id, sim, Label::Machine, family, model)
    }

    /// The vote of the first `k` neighbours, other settings at their defaults.
    fn vote_k(nb: &[Neighbour], k: usize) -> Verdict {
        vote(
            nb,
            &VoteConfig {
                k,
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn majority_decides_and_attribution_counts_machines_only() {
        let nb = [
            m(1, 0.9, "openai", "gpt-4"),
            h(2, 0.85),
            m(3, 0.8, "openai", "gpt-3.5-turbo"),
            m(4, 0.7, "google", "palm-2"),
            h(5, 0.6),
        ];
        let v = vote_k(&nb, 5);
        assert_eq!(v.label, Label::Machine);
        assert_eq!((v.machine_votes, v.human_votes), (3, 2));
        assert_eq!(v.attribution.family.as_deref(), Some("openai"));
        assert!((v.attribution.families[0].share - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(v.attribution.models.len(), 3);
        // gpt-4 and gpt-3.5-turbo tie on votes; gpt-4 is more similar.
        assert_eq!(v.attribution.model.as_deref(), Some("gpt-4"));
        assert!(v.score > 0.5 && v.score < 1.0);
    }

    #[test]
    fn the_model_belongs_to_the_attributed_family() {
        // llama-2 has the most votes of any model, openai the most of any
        // family: the model named is openai's best, not llama-2.
        let nb = [
            m(1, 0.9, "meta-llama", "llama-2"),
            m(2, 0.88, "meta-llama", "llama-2"),
            m(3, 0.87, "openai", "gpt-4"),
            m(4, 0.86, "openai", "gpt-3.5-turbo"),
            m(5, 0.85, "openai", "gpt-3.5-turbo"),
            m(6, 0.84, "openai", "gpt-4o"),
            h(7, 0.5),
        ];
        let v = vote_k(&nb, 7);
        assert_eq!(v.attribution.family.as_deref(), Some("openai"));
        assert_eq!(v.attribution.model.as_deref(), Some("gpt-3.5-turbo"));
        // The model shares still count every machine neighbour.
        assert_eq!(v.attribution.models[0].name, "llama-2");
    }

    #[test]
    fn a_blend_rule_weighs_the_group_margin_against_the_classifier() {
        // The human texts are the closer group, by 0.01.
        let nb = [h(1, 0.81), m(2, 0.80, "openai", "gpt-4"), h(3, 0.5)];
        let cfg = VoteConfig {
            k: 3,
            groups: Some(1),
            blend_rule: Some(BlendRule {
                margin: 30.0,
                classifier: 1.0,
                bias: 0.0,
            }),
            ..Default::default()
        };
        let v = vote(&nb, &cfg).unwrap();
        assert_eq!(v.label, Label::Human);
        // A confident classifier outweighs so small a margin, and the note
        // says so.
        let mut sure = v.clone();
        sure.blend_classifier(0.95, 0.2);
        assert_eq!(sure.label, Label::Machine);
        let note = sure.note.unwrap();
        assert!(note.contains("outweighs"), "{note}");
        assert!(
            note.starts_with("the closest group of references is human"),
            "{note}"
        );
        // The group and the classifier are named once each.
        assert_eq!(note.matches("the closest group").count(), 1, "{note}");
        assert_eq!(note.matches("0.950").count(), 1, "{note}");
        // Overruled where no neighbour shares the label: no comparison with
        // a neighbour that is not there.
        let all_machine = [
            m(1, 0.81, "openai", "gpt-4"),
            m(2, 0.80, "openai", "gpt-4"),
            m(3, 0.79, "openai", "gpt-4"),
        ];
        let mut lone = vote(&all_machine, &cfg).unwrap();
        assert_eq!(lone.label, Label::Machine);
        lone.blend_rule = Some(BlendRule {
            margin: 1.0,
            classifier: 1.0,
            bias: 0.0,
        });
        lone.group.as_mut().unwrap().human = Some(0.80);
        lone.blend_classifier(0.01, 0.2);
        assert_eq!(lone.label, Label::Human);
        let note = lone.note.unwrap();
        assert!(
            note.contains("outweighs") && !note.contains("inf"),
            "{note}"
        );
        // One that agrees with the group changes nothing.
        let mut agrees = v.clone();
        agrees.blend_classifier(0.05, 0.2);
        assert_eq!(agrees.label, Label::Human);
        assert!(agrees.note.is_none_or(|n| !n.contains("outweighs")));
        // Without the group vote there is no margin, and no rule.
        let plain = vote(
            &nb,
            &VoteConfig {
                groups: None,
                ..cfg
            },
        )
        .unwrap();
        assert_eq!(plain.blend_rule, None);
    }

    #[test]
    fn only_the_first_k_vote() {
        let nb = [h(1, 0.9), m(2, 0.8, "a", "a1"), m(3, 0.7, "a", "a1")];
        let v = vote_k(&nb, 1);
        assert_eq!(v.label, Label::Human);
        assert_eq!(v.k, 1);
        assert!(v.score < 0.01, "{}", v.score);
        assert!(v.attribution.family.is_none());
    }

    #[test]
    fn tie_goes_to_weighted_score_then_human() {
        let cfg = VoteConfig {
            k: 2,
            ..Default::default()
        };
        let closer_machine = [m(1, 0.9, "a", "a1"), h(2, 0.5)];
        assert_eq!(vote(&closer_machine, &cfg).unwrap().label, Label::Machine);
        let closer_human = [h(1, 0.9), m(2, 0.5, "a", "a1")];
        assert_eq!(vote(&closer_human, &cfg).unwrap().label, Label::Human);
        let exact = [m(1, 0.7, "a", "a1"), h(2, 0.7)];
        let v = vote(&exact, &cfg).unwrap();
        assert_eq!(v.score, 0.5);
        assert_eq!(v.label, Label::Human);
    }

    #[test]
    fn score_is_a_probability_and_sharpens_with_temperature() {
        let nb = [m(1, 0.95, "a", "a1"), h(2, 0.9), h(3, 0.9)];
        let soft = weighted_score(&nb, 100.0);
        let sharp = weighted_score(&nb, 0.005);
        // Near-uniform weights: (1 + 1) / (3 + 2) with the prior.
        assert!((soft - 0.4).abs() < 0.01, "{soft}");
        assert!(sharp > 0.99, "{sharp}");
        assert!((0.0..=1.0).contains(&weighted_score(&nb, 0.05)));
    }

    /// Unanimous neighbourhoods still rank by closeness, so a threshold
    /// for a target false-positive rate can exist.
    #[test]
    fn unanimous_neighbourhoods_rank_by_similarity() {
        let close = [m(1, 0.95, "a", "a1"), m(2, 0.94, "a", "a1")];
        let far = [m(1, 0.6, "a", "a1"), m(2, 0.55, "a", "a1")];
        let (c, f) = (weighted_score(&close, 0.05), weighted_score(&far, 0.05));
        assert!(c > f && f > 0.5 && c < 1.0, "{c} {f}");
    }

    #[test]
    fn a_close_group_outvotes_a_crowd_and_says_why() {
        // Three human texts among the five nearest, but the two of gpt-4 are
        // the closest, and its group stays close further down.
        let nb = [
            m(1, 0.90, "openai", "gpt-4"),
            m(2, 0.88, "openai", "gpt-4"),
            h(3, 0.80),
            h(4, 0.79),
            h(5, 0.78),
            m(6, 0.77, "openai", "gpt-4"),
            h(7, 0.60),
        ];
        let majority = VoteConfig {
            k: 5,
            ..VoteConfig::default()
        };
        assert_eq!(vote(&nb, &majority).unwrap().label, Label::Human);
        let groups = VoteConfig {
            groups: Some(3),
            ..majority.clone()
        };
        assert_eq!(groups.search_width(), GROUP_POOL);
        let v = vote(&nb, &groups).unwrap();
        assert_eq!(v.label, Label::Machine);
        assert_eq!((v.machine_votes, v.human_votes, v.k), (2, 3, 5));
        let g = v.group.as_ref().unwrap();
        assert_eq!(g.machine_group.as_deref(), Some("gpt-4"));
        assert!((g.machine.unwrap() - (0.90 + 0.88 + 0.77) / 3.0).abs() < 1e-6);
        assert!((g.human.unwrap() - (0.80 + 0.79 + 0.78) / 3.0).abs() < 1e-6);
        let note = v.note.as_deref().unwrap();
        assert!(
            note.contains("closest group of references is gpt-4"),
            "{note}"
        );
        assert!(
            note.contains("2 of the 5 nearest references are machine"),
            "{note}"
        );
    }

    #[test]
    fn novelty_and_operating_point() {
        use crate::detect::novelty::LengthBin;
        let bin = |up_to_chars, threshold| LengthBin {
            up_to_chars,
            threshold,
            texts: 250,
        };
        let cfg = VoteConfig {
            k: 3,
            novelty: Some(Novelty {
                quantile: 0.01,
                overall: 0.5,
                bins: vec![bin(Some(100), 0.3), bin(None, 0.5)],
            }),
            operating_point: Some(OperatingPoint {
                target_fpr: 0.01,
                threshold: 0.9,
            }),
            ..Default::default()
        };
        let nb = [m(1, 0.4, "a", "a1"), m(2, 0.39, "a", "a1"), h(3, 0.38)];
        let v = vote(&nb, &cfg).unwrap();
        assert!(v.novel);
        assert_eq!(v.label, Label::Machine);
        let op = v.operating_point.unwrap();
        assert_eq!(
            op.label,
            Label::Human,
            "score {} under threshold 0.9",
            v.score
        );
        assert_eq!(v.novelty_threshold, Some(0.5));
        let familiar = [m(1, 0.8, "a", "a1")];
        assert!(!vote(&familiar, &cfg).unwrap().novel);
        // A short text is judged against short texts' threshold: the same
        // neighbours are not novel for it, and are for a long one.
        assert!(!vote_sized(&nb, &cfg, Some(80)).unwrap().novel);
        let long = vote_sized(&nb, &cfg, Some(800)).unwrap();
        assert!(long.novel);
        let why = NoveltyPolicy::Abstain.abstention(&long).unwrap();
        assert_eq!(why.cause, crate::detect::Cause::Novelty);
        assert!(
            why.reason.contains("0.400 is below 0.500"),
            "{}",
            why.reason
        );
        assert!(why.reason.contains("only 1%"), "{}", why.reason);
        assert!(NoveltyPolicy::Flag.abstention(&long).is_none());
        let short = vote_sized(&nb, &cfg, Some(80)).unwrap();
        assert!(NoveltyPolicy::Abstain.abstention(&short).is_none());
    }

    #[test]
    fn no_neighbours_no_verdict() {
        assert!(vote(&[], &VoteConfig::default()).is_none());
    }

    #[test]
    fn a_contradicted_majority_is_explained() {
        // Three distant human references against one near-copy of a
        // machine text: the majority says human, the score machine.
        let nb = [
            m(1, 0.99, "openai", "gpt-4"),
            h(2, 0.6),
            h(3, 0.58),
            h(4, 0.55),
            m(5, 0.5, "openai", "gpt-4"),
        ];
        let cfg = VoteConfig {
            k: 5,
            operating_point: Some(OperatingPoint {
                target_fpr: 0.01,
                threshold: 0.9,
            }),
            ..VoteConfig::default()
        };
        let v = vote(&nb, &cfg).unwrap();
        assert_eq!(v.label, Label::Human);
        assert!(v.score > 0.9, "{}", v.score);
        let note = v.note.expect("the disagreement is explained");
        assert!(
            note.starts_with("3 of the 5 nearest references are human"),
            "{note}"
        );
        assert!(
            note.contains("closest machine reference is more similar (0.990)"),
            "{note}"
        );
        // A unanimous neighbourhood needs no note.
        let same = [h(1, 0.9), h(2, 0.8), h(3, 0.7)];
        assert_eq!(
            vote(
                &same,
                &VoteConfig {
                    k: 3,
                    ..VoteConfig::default()
                }
            )
            .unwrap()
            .note,
            None
        );
        // A machine majority below the threshold: not confident enough.
        let weak = [
            m(1, 0.6, "openai", "gpt-4"),
            m(2, 0.59, "openai", "gpt-4"),
            h(3, 0.595),
        ];
        let v = vote(
            &weak,
            &VoteConfig {
                k: 3,
                ..cfg.clone()
            },
        )
        .unwrap();
        assert_eq!(v.label, Label::Machine);
        assert!(v.note.unwrap().contains("not confident enough"));
    }

    #[test]
    fn the_classifier_moves_the_score_and_operating_point_not_the_majority() {
        let nb = [
            m(1, 0.9, "openai", "gpt-4"),
            m(2, 0.88, "openai", "gpt-4"),
            h(3, 0.7),
        ];
        let cfg = VoteConfig {
            k: 3,
            operating_point: Some(OperatingPoint {
                target_fpr: 0.01,
                threshold: 0.85,
            }),
            ..VoteConfig::default()
        };
        let v = vote(&nb, &cfg).unwrap();
        assert_eq!(v.operating_point.as_ref().unwrap().label, Label::Machine);
        let knn = v.score;
        let mut blended = v.clone();
        blended.blend_classifier(0.1, 0.2);
        assert!((blended.score - (0.2 * 0.1 + 0.8 * knn)).abs() < 1e-12);
        assert_eq!(blended.classifier, Some(0.1));
        assert_eq!(blended.label, Label::Machine, "the majority stays");
        // The blended score fell under the threshold: the operating point
        // follows it, and the note says why.
        assert!(blended.score < 0.85);
        assert_eq!(
            blended.operating_point.as_ref().unwrap().label,
            Label::Human
        );
        let note = blended.note.unwrap();
        assert!(note.contains("not confident enough"), "{note}");
        // Weight 0 leaves the score as it was.
        let mut same = v.clone();
        same.blend_classifier(0.1, 0.0);
        assert_eq!(same.score, knn);
    }
}

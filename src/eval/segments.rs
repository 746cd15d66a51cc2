//! The segment benchmark: texts built deterministically from a labelled
//! test file by joining a human and a machine text of the same domain
//! (human then machine, machine then human, human-machine-human), with the
//! true boundaries known, and pure human texts. It reports how many
//! characters get the right label, how far predicted boundaries fall from
//! the true ones (in sentences), how often `mixed` is right, and how often
//! a pure human text gets a machine segment (the false alarm moderators
//! see).
use std::collections::BTreeMap;
use std::ops::Range;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use super::metrics::{auc, roc_curve, Scored};
use super::{score, EvalError, EvalOptions, LabelledSet};
use crate::detect::calibrate::Calibration;
use crate::detect::segments::{mixed, Plan, Segment};
use crate::encoder::{Embed, Tokenizer};
use crate::store::{Label, NewReference, VectorRow};

/// A built text and the true label of each of its parts (char ranges).
#[derive(Debug, Clone)]
pub struct Case {
    pub text: String,
    pub parts: Vec<(Range<usize>, Label)>,
}

impl Case {
    fn build(parts: &[(&str, Label)]) -> Self {
        let mut text = String::new();
        let mut out = Vec::new();
        for (i, (t, l)) in parts.iter().enumerate() {
            if i > 0 {
                text.push_str("\n\n");
            }
            let start = text.chars().count();
            text.push_str(t.trim());
            out.push((start..text.chars().count(), *l));
        }
        Self { text, parts: out }
    }

    pub fn is_mixed(&self) -> bool {
        self.parts.windows(2).any(|p| p[0].1 != p[1].1)
    }
}

/// `n` mixed texts (cycling through the three patterns) and `n` pure human
/// texts, from texts of domains that have both labels.
pub fn cases(records: &[NewReference], n: usize, seed: u64) -> (Vec<Case>, Vec<Case>) {
    let mut by: BTreeMap<(String, bool), Vec<&str>> = BTreeMap::new();
    for r in records {
        let domain = r
            .domain
            .clone()
            .or_else(|| r.source.clone())
            .unwrap_or_default();
        by.entry((domain, r.label == Label::Machine))
            .or_default()
            .push(&r.text);
    }
    let domains: Vec<String> = by
        .keys()
        .filter(|(d, m)| !m && by.contains_key(&(d.clone(), true)))
        .map(|(d, _)| d.clone())
        .collect();
    if domains.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let pick = |domain: &str, machine: bool, rng: &mut StdRng| -> &str {
        by[&(domain.to_owned(), machine)]
            .choose(rng)
            .copied()
            .unwrap_or("")
    };
    let (mut mixed_cases, mut pure) = (Vec::new(), Vec::new());
    for i in 0..n {
        let d = domains.choose(&mut rng).unwrap().clone();
        let (h, m) = (pick(&d, false, &mut rng), pick(&d, true, &mut rng));
        let parts = match i % 3 {
            0 => vec![(h, Label::Human), (m, Label::Machine)],
            1 => vec![(m, Label::Machine), (h, Label::Human)],
            _ => {
                let h2 = pick(&d, false, &mut rng);
                vec![(h, Label::Human), (m, Label::Machine), (h2, Label::Human)]
            }
        };
        mixed_cases.push(Case::build(&parts));
        pure.push(Case::build(&[(pick(&d, false, &mut rng), Label::Human)]));
    }
    (mixed_cases, pure)
}

/// Figures at one threshold.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentScores {
    pub threshold_name: String,
    pub threshold: f64,
    /// Share of the visible characters of mixed texts labelled right.
    pub char_accuracy: f64,
    /// Mean distance, in sentences, from each true boundary to the nearest
    /// predicted one (a boundary that none approaches counts the number
    /// of sentences of its text).
    pub boundary_error_sentences: f64,
    /// Share of mixed texts flagged `mixed`.
    pub mixed_recall: f64,
    /// Share of pure human texts with any machine segment.
    pub false_alarm: f64,
    /// Share of pure human texts flagged `mixed`.
    pub mixed_false_alarm: f64,
}

/// Scores segments made from window verdict scores.
pub fn evaluate(
    name: &str,
    threshold: f64,
    mixed_cases: &[(Case, Plan, Vec<f64>)],
    pure: &[(Case, Plan, Vec<f64>)],
) -> SegmentScores {
    let (mut right, mut total) = (0usize, 0usize);
    let (mut boundary, mut boundaries, mut flagged) = (0.0, 0usize, 0usize);
    for (case, plan, scores) in mixed_cases {
        let segs = segments_of(case, plan, scores, threshold);
        let labels = char_labels(&case.text, &segs);
        for (range, label) in &case.parts {
            for c in range.clone() {
                if !labels.0[c].1 {
                    continue;
                }
                total += 1;
                right += usize::from(labels.0[c].0 == Some(*label));
            }
        }
        flagged += usize::from(mixed(&segs));
        // Boundaries in sentence units: the index of the first sentence of
        // each part after the first, and of each segment after the first.
        let first_sentence = |char_at: usize| {
            plan.sentences
                .iter()
                .position(|s| case.text[..s.start].chars().count() >= char_at)
                .unwrap_or(plan.sentences.len())
        };
        let predicted: Vec<usize> = segs
            .iter()
            .skip(1)
            .map(|s| first_sentence(s.start))
            .collect();
        for (range, _) in case.parts.iter().skip(1) {
            let truth = first_sentence(range.start);
            boundaries += 1;
            boundary += predicted
                .iter()
                .map(|p| p.abs_diff(truth))
                .min()
                .unwrap_or(plan.sentences.len()) as f64;
        }
    }
    let (mut alarms, mut mixed_alarms) = (0usize, 0usize);
    for (case, plan, scores) in pure {
        let segs = segments_of(case, plan, scores, threshold);
        alarms += usize::from(segs.iter().any(|s| s.label == Label::Machine));
        mixed_alarms += usize::from(mixed(&segs));
    }
    let share = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    SegmentScores {
        threshold_name: name.to_owned(),
        threshold,
        char_accuracy: share(right, total),
        boundary_error_sentences: if boundaries == 0 {
            0.0
        } else {
            boundary / boundaries as f64
        },
        mixed_recall: share(flagged, mixed_cases.len()),
        false_alarm: share(alarms, pure.len()),
        mixed_false_alarm: share(mixed_alarms, pure.len()),
    }
}

fn segments_of(case: &Case, plan: &Plan, scores: &[f64], threshold: f64) -> Vec<Segment> {
    plan.segments_from_scores(&case.text, scores, threshold)
}

/// Per character: its predicted label, and whether it is visible (not
/// whitespace). The `.0` wrapper keeps the pair readable at call sites.
struct Labels(Vec<(Option<Label>, bool)>);

fn char_labels(text: &str, segs: &[Segment]) -> Labels {
    let mut out: Vec<(Option<Label>, bool)> =
        text.chars().map(|c| (None, !c.is_whitespace())).collect();
    for s in segs {
        for slot in &mut out[s.start..s.end] {
            slot.0 = Some(s.label);
        }
    }
    Labels(out)
}

/// How well the detector tells a window of a few sentences by a person
/// from one by a model, before any segment is formed: the AUROC of the
/// window scores over windows lying wholly in one part. Segments cannot
/// be better than this allows.
pub fn window_auroc<'a>(
    cases: impl IntoIterator<Item = &'a (Case, Plan, Vec<f64>)>,
) -> Option<f64> {
    let mut rows = Vec::new();
    for (case, plan, scores) in cases {
        let label_of = |sentence: usize| {
            let at = case.text[..plan.sentences[sentence].start].chars().count();
            case.parts
                .iter()
                .find(|(r, _)| r.contains(&at))
                .map(|(_, l)| *l)
        };
        for (w, &score) in plan.windows.iter().zip(scores) {
            let first = label_of(w.start);
            if let Some(truth) = first.filter(|_| w.clone().all(|i| label_of(i) == first)) {
                rows.push(Scored {
                    truth,
                    predicted: truth,
                    score,
                });
            }
        }
    }
    let both = [Label::Human, Label::Machine]
        .iter()
        .all(|l| rows.iter().any(|r| r.truth == *l));
    both.then(|| auc(&roc_curve(&rows)))
}

/// The table of the README.
pub fn markdown(
    rows: &[SegmentScores],
    mixed_n: usize,
    pure_n: usize,
    windows: usize,
    window_auroc: Option<f64>,
) -> String {
    let auroc = window_auroc.map_or("n/a".into(), |a| format!("{a:.3}"));
    let mut md = format!(
        "Segments of {mixed_n} mixed texts (human-machine, machine-human, human-machine-human) \
         and {pure_n} pure human texts; {windows} windows encoded; window AUROC {auroc} \
         (windows wholly human or wholly machine).\n\n\
         | threshold | char accuracy (mixed) | boundary error (sentences) | mixed flagged | \
         false alarm (pure human) | pure human flagged mixed |\n|---|---|---|---|---|---|\n"
    );
    for r in rows {
        md.push_str(&format!(
            "| {} ({:.3}) | {:.1}% | {:.2} | {:.1}% | {:.1}% | {:.1}% |\n",
            r.threshold_name,
            r.threshold,
            100.0 * r.char_accuracy,
            r.boundary_error_sentences,
            100.0 * r.mixed_recall,
            100.0 * r.false_alarm,
            100.0 * r.mixed_false_alarm
        ));
    }
    md
}

/// The benchmark's result: one row per threshold, and what was read.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentReport {
    pub mixed_texts: usize,
    pub pure_human_texts: usize,
    pub windows: usize,
    /// [`window_auroc`] over mixed and pure texts.
    pub window_auroc: Option<f64>,
    pub rows: Vec<SegmentScores>,
}

impl SegmentReport {
    pub fn markdown(&self) -> String {
        markdown(
            &self.rows,
            self.mixed_texts,
            self.pure_human_texts,
            self.windows,
            self.window_auroc,
        )
    }
}

/// Builds `n` mixed and `n` pure human texts from `records`, reads them in
/// windows as the service does, votes every window against `refs` with the
/// calibrated configuration, and scores the segments at 0.5 (the
/// majority's side) and at the calibrated operating point.
#[allow(clippy::too_many_arguments)]
pub fn bench(
    records: &[NewReference],
    n: usize,
    seed: u64,
    encoder: &dyn Embed,
    tokenizer: &Tokenizer,
    refs: (&[VectorRow], &[&str]),
    cal: &Calibration,
    opts: &EvalOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<SegmentReport, EvalError> {
    let (refs, ref_texts) = refs;
    let (mixed_cases, pure) = cases(records, n, seed);
    let plan = |cases: Vec<Case>| -> Result<Vec<(Case, Plan)>, EvalError> {
        cases
            .into_iter()
            .map(|c| Ok(Plan::new(&c.text, tokenizer).map(|p| (c, p))?))
            .collect()
    };
    let (mixed_cases, pure) = (plan(mixed_cases)?, plan(pure)?);
    let texts: Vec<String> = mixed_cases
        .iter()
        .chain(&pure)
        .flat_map(|(c, p)| p.window_texts(&c.text))
        .collect();
    let mut vectors = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(256) {
        let strs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        vectors.extend(encoder.embed(&strs)?);
        progress(vectors.len() as u64, texts.len() as u64);
    }
    let set = LabelledSet {
        records: texts
            .iter()
            .map(|t| NewReference::plain(t.as_str(), Label::Human, "segments"))
            .collect(),
        vectors,
    };
    // Windows are scored as the service scores them: the classifier
    // blended in when it is on.
    let mut verdicts = score(refs, &set, encoder.dim(), cal, opts)?;
    super::blend(&mut verdicts, refs, ref_texts, &set.records, opts.blend);
    let mut scores = verdicts.iter().map(|v| v.score);
    let mut with_scores = |cases: Vec<(Case, Plan)>| -> Vec<(Case, Plan, Vec<f64>)> {
        cases
            .into_iter()
            .map(|(c, p)| {
                let s = scores.by_ref().take(p.windows.len()).collect();
                (c, p, s)
            })
            .collect()
    };
    let (mixed_cases, pure) = (with_scores(mixed_cases), with_scores(pure));
    let window_auroc = window_auroc(mixed_cases.iter().chain(&pure));
    let mut rows = vec![evaluate(
        "0.5, the majority's side",
        0.5,
        &mixed_cases,
        &pure,
    )];
    if let Some(op) = verdicts.first().and_then(|v| v.operating_point.as_ref()) {
        rows.push(evaluate(
            &format!("operating point at {}% FPR", 100.0 * op.target_fpr),
            op.threshold,
            &mixed_cases,
            &pure,
        ));
    }
    Ok(SegmentReport {
        mixed_texts: mixed_cases.len(),
        pure_human_texts: pure.len(),
        windows: texts.len(),
        window_auroc,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(text: &str, label: Label, domain: &str) -> NewReference {
        NewReference {
            domain: Some(domain.into()),
            ..NewReference::plain(text, label, "t")
        }
    }

    #[test]
    fn cases_are_deterministic_and_their_parts_are_true() {
        let records = vec![
            rec("A human wrote this. It rains.", Label::Human, "d"),
            rec("Another person's note here.", Label::Human, "d"),
            rec("As an AI, I can summarise. Indeed.", Label::Machine, "d"),
            rec("Lonely domain.", Label::Human, "e"),
        ];
        let (m1, p1) = cases(&records, 6, 3);
        let (m2, _) = cases(&records, 6, 3);
        assert_eq!(m1.len(), 6);
        assert_eq!(p1.len(), 6);
        for (a, b) in m1.iter().zip(&m2) {
            assert_eq!(a.text, b.text);
        }
        for c in &m1 {
            assert!(c.is_mixed());
            let chars: Vec<char> = c.text.chars().collect();
            for (r, l) in &c.parts {
                let part: String = chars[r.clone()].iter().collect();
                assert!(
                    records.iter().any(|x| x.text == part && x.label == *l),
                    "{part}"
                );
            }
        }
        assert!(p1
            .iter()
            .all(|c| !c.is_mixed() && !c.text.contains("Lonely")));
    }

    /// Window scores that follow the truth give full accuracy, no boundary
    /// error, `mixed` on every mixed text and no false alarm; inverted
    /// scores get most characters wrong.
    #[test]
    fn evaluation_scores_perfect_and_inverted_windows() {
        let tok = crate::encoder::Tokenizer::from_file(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("models/detective-minilm/weights/tokenizer.json"),
            16,
        )
        .unwrap();
        let h = "I walked home. It was raining hard. My shoes got wet.";
        let m = "Rain is a form of precipitation. It forms in clouds. It falls to the ground.";
        let case = Case::build(&[(h, Label::Human), (m, Label::Machine)]);
        let plan = Plan::new(&case.text, &tok).unwrap();
        assert_eq!(plan.sentences.len(), 6);
        // Each window's score: the share of its sentences that are machine.
        let truth = |inverted: bool| -> Vec<f64> {
            plan.windows
                .iter()
                .map(|w| {
                    let machine = w.clone().filter(|&i| (i >= 3) != inverted).count();
                    machine as f64 / w.len() as f64
                })
                .collect()
        };
        let pure = Case::build(&[(h, Label::Human)]);
        let pure_plan = Plan::new(&pure.text, &tok).unwrap();
        let zeros = vec![0.0; pure_plan.windows.len()];
        let right = [
            (case.clone(), plan.clone(), truth(false)),
            (pure.clone(), pure_plan.clone(), zeros.clone()),
        ];
        // Windows wholly in one part are ranked perfectly; with every score
        // inverted, perfectly wrong.
        assert_eq!(window_auroc(&right), Some(1.0));
        let wrong = [
            (case.clone(), plan.clone(), truth(true)),
            (pure.clone(), pure_plan.clone(), vec![1.0; zeros.len()]),
        ];
        assert_eq!(window_auroc(&wrong), Some(0.0));
        assert_eq!(window_auroc(&right[1..]), None, "one class only");
        let good = evaluate(
            "t",
            0.5,
            &[(case.clone(), plan.clone(), truth(false))],
            &[(pure.clone(), pure_plan.clone(), zeros)],
        );
        assert!(good.char_accuracy > 0.99, "{good:?}");
        assert_eq!(good.boundary_error_sentences, 0.0);
        assert_eq!((good.mixed_recall, good.false_alarm), (1.0, 0.0));
        let ones = vec![1.0; pure_plan.windows.len()];
        let inverted = truth(true);
        let bad = evaluate(
            "t",
            0.5,
            &[(case, plan, inverted)],
            &[(pure, pure_plan, ones)],
        );
        // Windows across the boundary blur it, so not all are wrong.
        assert!(bad.char_accuracy < 0.5, "{bad:?}");
        assert_eq!(bad.false_alarm, 1.0);
    }
}

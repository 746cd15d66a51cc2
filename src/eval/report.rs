//! The evaluation report: headline metrics at the top level (the names other
//! tools read), the calibration that produced them, breakdowns by source,
//! model, family, attack and domain, and a Markdown rendering.
use std::collections::BTreeMap;

use serde::Serialize;

use super::metrics::{pct, roc_curve, summarize, Scored, Summary};
use crate::detect::{Calibration, Cause, Verdict};
use crate::store::{Label, NewReference};

#[derive(Debug, Clone, Serialize)]
pub struct OperatingResult {
    pub target_fpr: f64,
    pub threshold: f64,
    /// Measured on the scored set.
    pub fpr: f64,
    pub tpr: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub summary: Summary,
    pub k: usize,
    pub encoder: String,
    pub references: Vec<String>,
    pub test: String,
    pub index: String,
    pub reference_count: usize,
    /// Share (percent) of scored texts flagged novel.
    pub novel_rate: f64,
    /// Scored texts given no verdict (a language or script the references
    /// do not cover, or unlike every reference); counted as not machine
    /// everywhere above.
    pub abstained: usize,
    /// Those of them given none for being unlike every reference.
    #[serde(default)]
    pub abstained_novel: usize,
    /// The same per breakdown group (only groups with any), keyed like
    /// `breakdowns`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub abstained_by: BTreeMap<String, BTreeMap<String, usize>>,
    /// Among machine texts detected as machine: the top family (model) is right, percent.
    pub family_attribution_accuracy: f64,
    pub model_attribution_accuracy: f64,
    pub operating_points: Vec<OperatingResult>,
    pub calibration: Calibration,
    pub breakdowns: BTreeMap<String, BTreeMap<String, Summary>>,
    #[serde(skip)]
    pub roc: Vec<(f64, f64)>,
}

pub struct ReportInput<'a> {
    pub encoder: String,
    pub references: Vec<String>,
    pub test: String,
    pub index: String,
    pub reference_count: usize,
    pub records: &'a [NewReference],
    pub verdicts: &'a [Verdict],
    pub calibration: Calibration,
    /// Per record: why it got no verdict, if it did not.
    pub abstained: &'a [Option<Cause>],
}

/// Reads the breakdown key of a record.
type KeyFn = fn(&NewReference) -> Option<&str>;

impl Report {
    pub fn build(input: ReportInput<'_>) -> Self {
        let scored = super::metrics::scored(input.records, input.verdicts);
        let mut breakdowns = BTreeMap::new();
        let mut abstained_by: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        let keys: [(&str, KeyFn); 5] = [
            ("source", |r| r.source.as_deref()),
            ("model", |r| r.model.as_deref()),
            ("family", |r| r.family.as_deref()),
            ("attack", |r| Some(r.attack.as_deref().unwrap_or("none"))),
            ("domain", |r| r.domain.as_deref()),
        ];
        for (name, key) in keys {
            let mut groups: BTreeMap<String, Vec<Scored>> = BTreeMap::new();
            let abstained = input
                .abstained
                .iter()
                .map(Option::is_some)
                .chain(std::iter::repeat(false));
            for ((r, s), no_verdict) in input.records.iter().zip(&scored).zip(abstained) {
                let group = key(r).unwrap_or("unknown");
                groups.entry(group.to_owned()).or_default().push(*s);
                if no_verdict {
                    *abstained_by
                        .entry(name.to_owned())
                        .or_default()
                        .entry(group.to_owned())
                        .or_default() += 1;
                }
            }
            breakdowns.insert(
                name.to_owned(),
                groups
                    .into_iter()
                    .map(|(k, v)| (k, summarize(&v)))
                    .collect(),
            );
        }
        let operating_points = input
            .calibration
            .operating_points
            .iter()
            .map(|op| {
                let flagged = |l: Label| {
                    scored
                        .iter()
                        .filter(|s| s.truth == l && s.score >= op.threshold)
                        .count()
                };
                let n = |l: Label| scored.iter().filter(|s| s.truth == l).count();
                OperatingResult {
                    target_fpr: op.target_fpr,
                    threshold: op.threshold,
                    fpr: pct(flagged(Label::Human), n(Label::Human)) / 100.0,
                    tpr: pct(flagged(Label::Machine), n(Label::Machine)) / 100.0,
                }
            })
            .collect();
        let (mut detected, mut fam_ok, mut model_ok) = (0, 0, 0);
        for (r, v) in input.records.iter().zip(input.verdicts) {
            if r.label == Label::Machine && v.label == Label::Machine {
                detected += 1;
                fam_ok +=
                    usize::from(v.attribution.family.is_some() && v.attribution.family == r.family);
                model_ok +=
                    usize::from(v.attribution.model.is_some() && v.attribution.model == r.model);
            }
        }
        let novel = input.verdicts.iter().filter(|v| v.novel).count();
        Self {
            summary: summarize(&scored),
            k: input.verdicts.first().map_or(input.calibration.k, |v| v.k),
            encoder: input.encoder,
            references: input.references,
            test: input.test,
            index: input.index,
            reference_count: input.reference_count,
            novel_rate: pct(novel, input.verdicts.len()),
            abstained: input.abstained.iter().filter(|a| a.is_some()).count(),
            abstained_novel: input
                .abstained
                .iter()
                .filter(|a| **a == Some(Cause::Novelty))
                .count(),
            abstained_by,
            family_attribution_accuracy: pct(fam_ok, detected),
            model_attribution_accuracy: pct(model_ok, detected),
            operating_points,
            calibration: input.calibration,
            breakdowns,
            roc: roc_curve(&scored),
        }
    }

    pub fn markdown(&self) -> String {
        let s = &self.summary;
        let f = |x: Option<f64>| x.map_or("n/a".to_owned(), |v| format!("{v:.4}"));
        let mut out = format!(
            "**{}** scored against {} ({} references), encoder `{}`, {} index, k = {}{}\n\n",
            self.test,
            self.references.join(" + "),
            self.reference_count,
            self.encoder,
            self.index,
            self.k,
            match self.calibration.hubness {
                0.0 => String::new(),
                w => format!(", hubness weight {w}"),
            }
        );
        out += "| n | AvgRec | HumanRec | MachineRec | Acc | F1 machine | F1 human | AUROC | TPR@1%FPR | TPR@5%FPR | novel % |\n";
        out += "|---|---|---|---|---|---|---|---|---|---|---|\n";
        out += &format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {:.1} |\n\n",
            s.n,
            s.avg_rec,
            s.human_rec,
            s.machine_rec,
            s.accuracy,
            s.f1_machine,
            s.f1_human,
            f(s.auroc),
            f(s.tpr_at_1pct_fpr),
            f(s.tpr_at_5pct_fpr),
            self.novel_rate
        );
        if self.abstained > 0 {
            out += &format!(
                "{} texts got no verdict ({} unlike every reference, {} in a language or script \
                 the references do not cover); they count as not machine above.\n\n",
                self.abstained,
                self.abstained_novel,
                self.abstained - self.abstained_novel
            );
        }
        let validation = if self.calibration.held_out {
            format!(
                "from {} validation texts held out of the encoder's training",
                self.calibration.validation_size
            )
        } else {
            format!("from {} validation texts", self.calibration.validation_size)
        };
        for op in &self.operating_points {
            out += &format!(
                "Operating point for {:.0}% FPR (threshold {:.4}, {validation}): measured FPR {:.2}%, TPR {:.2}%.\n",
                op.target_fpr * 100.0,
                op.threshold,
                op.fpr * 100.0,
                op.tpr * 100.0
            );
        }
        if let Some((rule, group)) = self.calibration.blend_rule_avg_rec {
            let texts = "validation texts with both a human and a machine group among the nearest";
            out += &match self.calibration.blend_rule {
                Some(r) => format!(
                    "Label: the group margin weighed against the classifier (margin x {:.2}, \
                     classifier log-odds x {:.3}, bias {:.3}); cross-fitted AvgRec {rule:.2} \
                     against {group:.2} for the group vote alone on the {texts}.\n",
                    r.margin, r.classifier, r.bias
                ),
                None => format!(
                    "Label: the group vote; the group margin weighed against the classifier \
                     reached a cross-fitted AvgRec of {rule:.2} against {group:.2} on the {texts}.\n"
                ),
            };
        }
        out += &format!(
            "\nAttribution among detected machine texts: family {:.2}%, model {:.2}%.\n",
            self.family_attribution_accuracy, self.model_attribution_accuracy
        );
        for (name, groups) in &self.breakdowns {
            if groups.len() < 2 {
                continue;
            }
            // Abstentions get a column where there were any.
            let no_verdict = (self.abstained > 0).then(|| self.abstained_by.get(name));
            out += &format!(
                "\n| {name} | n | human | machine | HumanRec | MachineRec | AvgRec |{}\n|---|---|---|---|---|---|---|{}\n",
                if no_verdict.is_some() { " no verdict |" } else { "" },
                if no_verdict.is_some() { "---|" } else { "" },
            );
            for (g, s) in groups {
                let extra = match no_verdict {
                    Some(by) => format!(" {} |", by.and_then(|m| m.get(g)).copied().unwrap_or(0)),
                    None => String::new(),
                };
                out += &format!(
                    "| {g} | {} | {} | {} | {} | {} | {:.2} |{extra}\n",
                    s.n,
                    s.n_human,
                    s.n_machine,
                    if s.n_human > 0 {
                        format!("{:.2}", s.human_rec)
                    } else {
                        "-".into()
                    },
                    if s.n_machine > 0 {
                        format!("{:.2}", s.machine_rec)
                    } else {
                        "-".into()
                    },
                    s.avg_rec
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::calibrate::calibrate;
    use crate::detect::{vote, Neighbour, VoteConfig};

    fn neighbours(label: Label) -> Vec<Neighbour> {
        (0..3)
            .map(|i| Neighbour {
                id: i,
                similarity: 0.9 - i as f32 * 0.1,
                label,
                model: None,
                family: None,
                source: None,
            })
            .collect()
    }

    #[test]
    fn abstentions_are_counted_per_breakdown_group() {
        let record = |label, source: &str| NewReference {
            source: Some(source.into()),
            ..NewReference::plain("t", label, "test")
        };
        let records = [
            record(Label::Human, "de"),
            record(Label::Human, "de"),
            record(Label::Human, "en"),
            record(Label::Machine, "en"),
        ];
        let cfg = VoteConfig {
            k: 3,
            ..VoteConfig::default()
        };
        let verdicts: Vec<Verdict> = [Label::Human, Label::Human, Label::Machine, Label::Machine]
            .into_iter()
            .map(|l| vote(&neighbours(l), &cfg).unwrap())
            .collect();
        let val = [
            (Label::Human, neighbours(Label::Human)),
            (Label::Machine, neighbours(Label::Machine)),
        ];
        let report = Report::build(ReportInput {
            encoder: "e".into(),
            references: vec![],
            test: "t".into(),
            index: "exact".into(),
            reference_count: 6,
            records: &records,
            verdicts: &verdicts,
            calibration: calibrate(&val, 0.05, &[0.01], None),
            abstained: &[Some(Cause::Language), Some(Cause::Novelty), None, None],
        });
        assert_eq!(report.abstained, 2);
        assert_eq!(report.abstained_novel, 1);
        assert_eq!(report.abstained_by["source"]["de"], 2);
        assert!(!report.abstained_by["source"].contains_key("en"));
        let md = report.markdown();
        assert!(
            md.contains("2 texts got no verdict (1 unlike every reference, 1 in a language"),
            "{md}"
        );
        assert!(md.contains("| AvgRec | no verdict |"), "{md}");
        assert!(md.contains("| de | 2 | 2 | 0 |"), "{md}");
        assert!(md.contains("| 0 |\n"), "{md}");
        // Without abstentions the tables keep their columns.
        let none = Report::build(ReportInput {
            abstained: &[None; 4],
            records: &records,
            verdicts: &verdicts,
            calibration: report.calibration.clone(),
            encoder: "e".into(),
            references: vec![],
            test: "t".into(),
            index: "exact".into(),
            reference_count: 6,
        });
        assert!(none.abstained_by.is_empty());
        assert!(!none.markdown().contains("no verdict"));
    }
}

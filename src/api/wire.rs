//! Wire types of the JSON API. Requests reject unknown fields, so a typo is
//! an error rather than a silently ignored option. `openapi.json` documents
//! the same shapes, and a test keeps the two in step.
use serde::{Deserialize, Serialize};

use super::extract::bounded_opt;
use crate::detect::segments::Segment;
use crate::detect::vote::{Attribution, Neighbour, OperatingVerdict};
use crate::detect::Abstention;
use crate::store::Label;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectRequest {
    pub text: Option<String>,
    #[serde(default, deserialize_with = "bounded_opt")]
    pub texts: Option<Vec<String>>,
    pub k: Option<usize>,
    #[serde(default)]
    pub explain: bool,
    #[serde(default)]
    pub segments: bool,
}

/// What a detection says: a label, or `unknown` when it abstains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Called {
    Human,
    Machine,
    Unknown,
}

impl From<Label> for Called {
    fn from(l: Label) -> Self {
        match l {
            Label::Human => Self::Human,
            Label::Machine => Self::Machine,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DetectResult {
    /// The decision (majority or operating point, per configuration), or
    /// `unknown` when the detection abstains.
    pub label: Called,
    /// Why there is no verdict (`label` is `unknown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abstained: Option<Abstention>,
    /// Probability-like score of machine authorship: the similarity-weighted
    /// share of machine neighbours, blended with `classifier` when there is
    /// one.
    pub score: f64,
    /// The classifier's probability (word and character n-grams, fitted on
    /// the references), when it is blended into `score`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classifier: Option<f64>,
    /// The neighbours' decision: the closest group of references where
    /// calibration chose the group vote (weighed against `classifier` where
    /// calibration kept that rule and the groups are nearly tied), else the
    /// majority of the k nearest.
    pub majority: Label,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operating_point: Option<OperatingVerdict>,
    pub k: usize,
    pub machine_votes: usize,
    pub human_votes: usize,
    pub nearest_similarity: f32,
    pub novel: bool,
    /// Why the majority and the score or operating point disagree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub attribution: Attribution,
    /// The text was longer than the model reads and was cut.
    pub truncated: bool,
    pub encoder: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neighbours: Option<Vec<Neighbour>>,
    /// With `segments`: confident segments disagree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mixed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<Segment>>,
}

#[derive(Debug, Serialize)]
pub struct DetectBatch {
    pub results: Vec<DetectResult>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceItem {
    pub text: String,
    pub label: Label,
    pub model: Option<String>,
    pub family: Option<String>,
    pub source: Option<String>,
    pub domain: Option<String>,
    pub attack: Option<String>,
    pub lang: Option<String>,
}

/// `POST /reference`: one reference, or `items` holding several. Parsed in
/// one pass as one type, so a batch's size is bounded while it is read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceBody {
    #[serde(default, deserialize_with = "bounded_opt")]
    pub items: Option<Vec<ReferenceItem>>,
    pub text: Option<String>,
    pub label: Option<Label>,
    pub model: Option<String>,
    pub family: Option<String>,
    pub source: Option<String>,
    pub domain: Option<String>,
    pub attack: Option<String>,
    pub lang: Option<String>,
}

impl ReferenceBody {
    /// The references it holds, and whether it was a batch.
    pub fn into_items(self) -> Result<(Vec<ReferenceItem>, bool), String> {
        let Self {
            items,
            text,
            label,
            model,
            family,
            source,
            domain,
            attack,
            lang,
        } = self;
        let single = [&text, &model, &family, &source, &domain, &attack, &lang]
            .iter()
            .any(|f| f.is_some())
            || label.is_some();
        match (items, single) {
            (Some(_), true) => {
                Err("send either `items` or the fields of one reference, not both".into())
            }
            (Some(items), false) => Ok((items, true)),
            (None, _) => {
                let text = text.ok_or("missing field `text` (or `items`)")?;
                let label = label.ok_or("missing field `label`")?;
                Ok((
                    vec![ReferenceItem {
                        text,
                        label,
                        model,
                        family,
                        source,
                        domain,
                        attack,
                        lang,
                    }],
                    false,
                ))
            }
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ReferenceCreated {
    pub id: i64,
    /// `false` when the text was already stored (its existing id).
    pub created: bool,
}

#[derive(Debug, Serialize)]
pub struct ReferenceBatchCreated {
    pub ids: Vec<i64>,
    pub items: Vec<ReferenceCreated>,
}

#[derive(Debug, Serialize)]
pub struct Deleted {
    pub id: i64,
    pub deleted: bool,
}

//! The group vote: the label of the closest group of references (the human
//! texts; each model's machine texts) instead of the majority of the k
//! nearest. Calibration chooses between the two on validation.
use serde::Serialize;

use super::vote::Neighbour;
use crate::store::Label;

/// Neighbours searched for a group vote: the groups compete within them.
pub const GROUP_POOL: usize = 256;
/// Group votes calibration compares with the majority by default (`m`).
pub const GROUP_CANDIDATES: [usize; 2] = [3, 5];

/// What a machine text's group is: its model (else its family), or its
/// family (else its model). Human texts are always one group.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One group per model: a new model's few references compete alone.
    #[default]
    Model,
    /// One group per family: a family's models pool their references.
    Family,
}

impl GroupBy {
    /// The setting as `--group-by` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Model => "model",
            GroupBy::Family => "family",
        }
    }

    /// Whether this is the default, one group per model.
    pub fn is_model(&self) -> bool {
        *self == GroupBy::Model
    }

    /// The group a machine text belongs to.
    fn group_of(self, n: &Neighbour) -> &str {
        let (first, second) = match self {
            GroupBy::Model => (&n.model, &n.family),
            GroupBy::Family => (&n.family, &n.model),
        };
        first.as_deref().or(second.as_deref()).unwrap_or("machine")
    }
}

/// The closest group of references among `neighbours` (sorted most similar
/// first): human texts form one group, machine texts one per model or per
/// family (`by`). A group's closeness is the mean similarity of its `m` nearest
/// members; one with fewer than `m` among the neighbours is filled with the
/// least similar neighbour's similarity (its other members are no closer).
/// A new model's few references compete as a group of their own instead of
/// being outnumbered among the `k` nearest, and a crowd of one kind of text
/// cannot outvote a closer group.
pub fn group_vote(neighbours: &[Neighbour], m: usize, by: GroupBy) -> Option<GroupVerdict> {
    let m = m.max(1);
    let floor = neighbours.last()?.similarity;
    let mut groups: Vec<(Label, &str, Vec<f32>)> = Vec::new();
    for n in neighbours {
        let name = match n.label {
            Label::Human => "human",
            Label::Machine => by.group_of(n),
        };
        match groups
            .iter_mut()
            .find(|(l, g, _)| *l == n.label && *g == name)
        {
            Some((_, _, sims)) if sims.len() < m => sims.push(n.similarity),
            Some(_) => {}
            None => groups.push((n.label, name, vec![n.similarity])),
        }
    }
    let closeness = |sims: &[f32]| {
        let filled = sims.len().max(m);
        (sims.iter().map(|&s| f64::from(s)).sum::<f64>()
            + (filled - sims.len()) as f64 * f64::from(floor))
            / filled as f64
    };
    let best = |label: Label| {
        groups
            .iter()
            .filter(|(l, _, _)| *l == label)
            .map(|(_, g, sims)| (*g, closeness(sims)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    };
    let human = best(Label::Human);
    let machine = best(Label::Machine);
    let label = match (human, machine) {
        (Some((_, h)), Some((_, m))) if m > h => Label::Machine,
        (None, Some(_)) => Label::Machine,
        _ => Label::Human,
    };
    Some(GroupVerdict {
        label,
        human: human.map(|(_, c)| c),
        machine: machine.map(|(_, c)| c),
        machine_group: machine.map(|(g, _)| g.to_owned()),
        m,
    })
}

/// What a group vote found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupVerdict {
    pub label: Label,
    /// Closeness of the human texts.
    pub human: Option<f64>,
    /// Closeness of the closest machine group.
    pub machine: Option<f64>,
    /// The closest machine group's model (or family).
    pub machine_group: Option<String>,
    /// Nearest members a group's closeness averages.
    pub m: usize,
}

impl GroupVerdict {
    /// The vote in words a moderator can read.
    pub fn describe(&self) -> String {
        let machine = self.machine_group.as_deref().unwrap_or("machine texts");
        let (closest, other, c, o) = match self.label {
            Label::Human => ("human-written texts", machine, self.human, self.machine),
            Label::Machine => (machine, "human-written texts", self.machine, self.human),
        };
        let mut out = format!(
            "the closest group of references is {closest} (mean similarity of its {} nearest {:.3}",
            self.m,
            c.unwrap_or(0.0)
        );
        match o {
            Some(o) => out += &format!("; {other} {o:.3})"),
            None => out += &format!("; no {other} among the nearest)"),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(sim: f32, label: Label, model: Option<&str>) -> Neighbour {
        Neighbour {
            id: 0,
            similarity: sim,
            label,
            model: model.map(str::to_owned),
            family: None,
            source: None,
        }
    }

    fn h(sim: f32) -> Neighbour {
        n(sim, Label::Human, None)
    }

    fn m(sim: f32, model: &str) -> Neighbour {
        n(sim, Label::Machine, Some(model))
    }

    fn fm(sim: f32, model: &str, family: &str) -> Neighbour {
        Neighbour {
            family: Some(family.into()),
            ..m(sim, model)
        }
    }

    #[test]
    fn by_family_a_family_s_models_pool_their_references() {
        // Two models of one family, each alone farther than the human
        // texts, together the closest group at m = 2.
        let nb = [
            fm(0.90, "gpt-4", "openai"),
            h(0.86),
            fm(0.85, "gpt-3.5", "openai"),
            h(0.80),
            fm(0.40, "llama-2", "meta-llama"),
        ];
        let g = group_vote(&nb, 2, GroupBy::Model).unwrap();
        assert_eq!(g.label, Label::Human);
        assert_eq!(g.machine_group.as_deref(), Some("gpt-4"));
        let g = group_vote(&nb, 2, GroupBy::Family).unwrap();
        assert_eq!(g.label, Label::Machine);
        assert_eq!(g.machine_group.as_deref(), Some("openai"));
        assert!((g.machine.unwrap() - 0.875).abs() < 1e-6);
        // Without a family a text's model names its group.
        let g = group_vote(&[m(0.9, "newlm"), h(0.5)], 1, GroupBy::Family).unwrap();
        assert_eq!(g.machine_group.as_deref(), Some("newlm"));
        assert_eq!(
            serde_json::to_string(&GroupBy::Family).unwrap(),
            "\"family\""
        );
    }

    #[test]
    fn groups_are_filled_named_and_described() {
        // A group with fewer members than m among the neighbours is filled
        // with the least similar neighbour's similarity: one close text of
        // a model is not a group of three close ones.
        let lone = [m(0.95, "llama-2"), h(0.80), h(0.79), h(0.78), h(0.50)];
        let g = group_vote(&lone, 3, GroupBy::Model).unwrap();
        assert_eq!(g.label, Label::Human);
        assert!((g.machine.unwrap() - (0.95 + 0.5 + 0.5) / 3.0).abs() < 1e-6);
        assert_eq!(
            group_vote(&lone, 1, GroupBy::Model).unwrap().label,
            Label::Machine
        );
        // Machine texts without a model are grouped by family, then as one.
        let family_only = Neighbour {
            family: Some("newlm".into()),
            ..n(0.99, Label::Machine, None)
        };
        let g = group_vote(&[family_only, h(0.5)], 1, GroupBy::Model).unwrap();
        assert_eq!(g.machine_group.as_deref(), Some("newlm"));
        let unnamed = n(0.99, Label::Machine, None);
        let g = group_vote(&[unnamed, h(0.5)], 1, GroupBy::Model).unwrap();
        assert_eq!(g.machine_group.as_deref(), Some("machine"));
        assert!(group_vote(&[], 3, GroupBy::Model).is_none());
        // Without a machine group among the neighbours the description
        // says so instead of printing a number it does not have.
        let g = group_vote(&[h(0.9), h(0.8)], 3, GroupBy::Model).unwrap();
        assert_eq!(g.label, Label::Human);
        assert_eq!(
            g.describe(),
            "the closest group of references is human-written texts (mean similarity of \
             its 3 nearest 0.833; no machine texts among the nearest)"
        );
    }
}

//! Labelled training texts with integer class ids per generator and family,
//! and the validation split carved from them by group.
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::loss::{HUMAN, MACHINE};
use super::TrainError;
use crate::detect::import::parse_record;
use crate::store::Label;

#[derive(Debug, Clone)]
pub struct Example {
    pub text: String,
    /// 1 human, 0 machine.
    pub label: i64,
    pub model: i64,
    pub family: i64,
    pub group: String,
    /// Where the text comes from, `source/domain` (empty when unknown):
    /// texts of one context share topic and form, so a human text of the
    /// context of a machine text is a hard negative for it.
    pub context: String,
}

#[derive(Debug, Default)]
pub struct Dataset {
    pub examples: Vec<Example>,
    pub models: Vec<String>,
    pub families: Vec<String>,
}

fn intern(names: &mut Vec<String>, ids: &mut HashMap<String, i64>, name: &str) -> i64 {
    *ids.entry(name.to_owned()).or_insert_with(|| {
        names.push(name.to_owned());
        names.len() as i64 - 1
    })
}

impl Dataset {
    /// Reads corpus-format JSONL; a bad line is an error naming it.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let file = std::fs::File::open(path).map_err(|e| TrainError::Io(path.to_owned(), e))?;
        let mut ds = Self::default();
        let (mut model_ids, mut family_ids) = (HashMap::new(), HashMap::new());
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| TrainError::Io(path.to_owned(), e))?;
            if line.trim().is_empty() {
                continue;
            }
            let r = parse_record(&line, "train").map_err(|reason| TrainError::Record {
                path: path.to_owned(),
                line: i + 1,
                reason,
            })?;
            let human = r.label == Label::Human;
            let model = if human {
                "human".to_owned()
            } else {
                r.model.clone().unwrap_or_else(|| "unknown".into())
            };
            let family = if human {
                "human".to_owned()
            } else {
                r.family.clone().unwrap_or_else(|| model.clone())
            };
            ds.examples.push(Example {
                group: r
                    .group
                    .clone()
                    .unwrap_or_else(|| crate::store::text_sha256(&r.text)),
                context: match (&r.source, &r.domain) {
                    (None, None) => String::new(),
                    (s, d) => format!(
                        "{}/{}",
                        s.as_deref().unwrap_or(""),
                        d.as_deref().unwrap_or("")
                    ),
                },
                label: if human { HUMAN } else { MACHINE },
                model: intern(&mut ds.models, &mut model_ids, &model),
                family: intern(&mut ds.families, &mut family_ids, &family),
                text: r.text,
            });
        }
        if ds.examples.is_empty() {
            return Err(TrainError::Empty(path.to_owned()));
        }
        Ok(ds)
    }

    /// The named domain of the example at `i` (the part of `context`
    /// after the source), if it has one.
    pub fn domain(&self, i: usize) -> Option<&str> {
        let (_, d) = self.examples[i].context.split_once('/')?;
        Some(d).filter(|d| !d.is_empty())
    }

    /// The named domains of the examples at `indices`, sorted, each once.
    pub fn domains(&self, indices: &[usize]) -> Vec<String> {
        let mut out: Vec<String> = indices
            .iter()
            .filter_map(|&i| self.domain(i))
            .map(str::to_owned)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The indices of each named domain's texts, in the order named. A name
    /// no text has is an error listing the domains there are.
    pub fn domain_texts<'a>(
        &self,
        names: &'a [String],
    ) -> Result<Vec<(&'a str, Vec<usize>)>, String> {
        let all: Vec<usize> = (0..self.examples.len()).collect();
        names
            .iter()
            .map(|name| {
                let idx: Vec<usize> = all
                    .iter()
                    .copied()
                    .filter(|&i| self.domain(i) == Some(name.as_str()))
                    .collect();
                if idx.is_empty() {
                    return Err(format!(
                        "no text is of the domain {name} (its domains: {})",
                        self.domains(&all).join(", ")
                    ));
                }
                Ok((name.as_str(), idx))
            })
            .collect()
    }

    /// Indices of (training, validation) examples: whole groups go to
    /// validation by a seeded hash until it holds `fraction` of the data.
    pub fn split(&self, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
        let held = HeldOut { seed, fraction };
        (0..self.examples.len()).partition(|&i| !held.contains(&self.examples[i].group))
    }
}

/// The groups a training run held out for validation: a text of such a
/// group was never a training text of the encoder, so it can validate
/// choices made on top of that encoder without flattering it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeldOut {
    pub seed: u64,
    pub fraction: f64,
}

impl HeldOut {
    pub fn contains(&self, group: &str) -> bool {
        let d = Sha256::digest(format!("{}|{group}", self.seed));
        let rank = u64::from_le_bytes(d[..8].try_into().expect("8 bytes"));
        let cut = (self.fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
        rank < cut
    }

    /// The split recorded by a run's configuration (`val_seed`, else
    /// `seed`, and `val_fraction`), if it has one.
    pub fn of_config(config: &serde_json::Value) -> Option<Self> {
        let seed = config
            .get("val_seed")
            .and_then(serde_json::Value::as_u64)
            .or_else(|| config.get("seed")?.as_u64())?;
        let fraction = config.get("val_fraction")?.as_f64()?;
        Some(Self { seed, fraction })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(groups: &[&str]) -> Dataset {
        Dataset {
            examples: groups
                .iter()
                .map(|g| Example {
                    text: format!("text of {g}"),
                    label: HUMAN,
                    model: 0,
                    family: 0,
                    group: (*g).to_owned(),
                    context: String::new(),
                })
                .collect(),
            models: vec!["human".into()],
            families: vec!["human".into()],
        }
    }

    #[test]
    fn held_out_is_the_training_validation_split() {
        let groups: Vec<String> = (0..2000).map(|i| format!("g{i}")).collect();
        let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
        let ds = dataset(&refs);
        let (train, val) = ds.split(0.05, 42);
        let held = HeldOut {
            seed: 42,
            fraction: 0.05,
        };
        assert!(val.iter().all(|&i| held.contains(&ds.examples[i].group)));
        assert!(train.iter().all(|&i| !held.contains(&ds.examples[i].group)));
        // About 5% of the groups, and another seed holds out others.
        assert!((60..140).contains(&val.len()), "{} held out", val.len());
        let (_, other) = ds.split(0.05, 43);
        assert_ne!(val, other);
    }

    #[test]
    fn domains_are_the_named_domains_of_the_chosen_examples() {
        let mut ds = dataset(&["a", "b", "c", "d", "e"]);
        for (e, c) in ds.examples.iter_mut().zip([
            "detectrl/xsum",
            "tweepfake/tweet",
            "detectrl/",
            "",
            "mixset/xsum",
        ]) {
            e.context = c.to_owned();
        }
        assert_eq!(ds.domains(&[0, 1, 2, 3, 4]), ["tweet", "xsum"]);
        assert_eq!(ds.domains(&[0, 2, 3]), ["xsum"]);
        assert!(ds.domains(&[2, 3]).is_empty());
        let names = ["xsum".to_owned(), "tweet".to_owned()];
        assert_eq!(
            ds.domain_texts(&names).unwrap(),
            [("xsum", vec![0, 4]), ("tweet", vec![1])]
        );
        let err = ds.domain_texts(&["sonnets".to_owned()]).unwrap_err();
        assert_eq!(
            err,
            "no text is of the domain sonnets (its domains: tweet, xsum)"
        );
    }

    #[test]
    fn held_out_split_is_read_from_a_run_configuration() {
        let cfg = serde_json::json!({"seed": 43, "val_seed": 42, "val_fraction": 0.05});
        assert_eq!(
            HeldOut::of_config(&cfg),
            Some(HeldOut {
                seed: 42,
                fraction: 0.05
            })
        );
        let cfg = serde_json::json!({"seed": 7, "val_seed": null, "val_fraction": 0.1});
        assert_eq!(HeldOut::of_config(&cfg).map(|h| h.seed), Some(7));
        assert_eq!(HeldOut::of_config(&serde_json::json!({"seed": 7})), None);
    }
}

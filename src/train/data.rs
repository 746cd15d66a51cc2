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

    /// Indices of (training, validation) examples: whole groups go to
    /// validation by a seeded hash until it holds `fraction` of the data.
    pub fn split(&self, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
        let rank = |g: &str| {
            let d = Sha256::digest(format!("{seed}|{g}"));
            u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
        };
        let cut = (fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
        (0..self.examples.len()).partition(|&i| rank(&self.examples[i].group) >= cut)
    }
}

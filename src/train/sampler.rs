//! Batches in which every loss level has positives.
//!
//! The paper trains with 256 texts per step, where random batches already
//! hold several texts per generator and family. With the small batches a CPU
//! affords, random sampling would leave most levels without positives, so a
//! batch is composed: half machine texts drawn as `per_model` texts from each
//! of two generators in each of several families (same-generator,
//! same-family and other-family positives), half human texts. The draw for
//! step `s` depends only on the seed and `s`, so a resumed run sees the same
//! batches as an uninterrupted one.
use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::data::Example;
use super::loss::HUMAN;

pub struct Sampler {
    /// family -> model -> example indices.
    machine: BTreeMap<i64, BTreeMap<i64, Vec<usize>>>,
    humans: Vec<usize>,
    batch: usize,
    per_model: usize,
    seed: u64,
}

impl Sampler {
    pub fn new(
        examples: &[Example],
        indices: &[usize],
        batch: usize,
        per_model: usize,
        seed: u64,
    ) -> Self {
        let mut machine: BTreeMap<i64, BTreeMap<i64, Vec<usize>>> = BTreeMap::new();
        let mut humans = Vec::new();
        for &i in indices {
            let e = &examples[i];
            if e.label == HUMAN {
                humans.push(i);
            } else {
                machine
                    .entry(e.family)
                    .or_default()
                    .entry(e.model)
                    .or_default()
                    .push(i);
            }
        }
        Self {
            machine,
            humans,
            batch: batch.max(4),
            per_model: per_model.max(2),
            seed,
        }
    }

    /// The example indices of step `step`.
    pub fn batch(&self, step: u64) -> Vec<usize> {
        let mut rng =
            rand::rngs::StdRng::seed_from_u64(self.seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let want_machine = if self.humans.is_empty() {
            self.batch
        } else {
            self.batch / 2
        };
        let mut out = Vec::with_capacity(self.batch);
        // Families in a shuffled order without repeats (until all are used),
        // so a batch spans several families: other-family positives.
        let mut families: Vec<&BTreeMap<i64, Vec<usize>>> = self.machine.values().collect();
        families.shuffle(&mut rng);
        let mut next = 0;
        while out.len() < want_machine && !families.is_empty() && next < 1000 {
            let fam = families[next % families.len()];
            next += 1;
            let models: Vec<&Vec<usize>> = fam.values().collect();
            let picks = models.choose_multiple(&mut rng, 2.min(models.len()));
            for texts in picks {
                let n = self.per_model.min(want_machine - out.len());
                out.extend(texts.choose_multiple(&mut rng, n.min(texts.len())).copied());
                if out.len() >= want_machine {
                    break;
                }
            }
        }
        let want_human = self.batch - out.len();
        if !self.humans.is_empty() {
            out.extend(
                self.humans
                    .choose_multiple(&mut rng, want_human.min(self.humans.len()))
                    .copied(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(label: i64, model: i64, family: i64) -> Example {
        Example {
            text: String::new(),
            label,
            model,
            family,
            group: String::new(),
        }
    }

    #[test]
    fn batches_give_every_level_positives_and_repeat_by_step() {
        let mut examples = Vec::new();
        for m in 0..6 {
            for _ in 0..20 {
                examples.push(ex(0, m, m / 2));
            }
        }
        for _ in 0..100 {
            examples.push(ex(1, 99, 99));
        }
        let idx: Vec<usize> = (0..examples.len()).collect();
        let s = Sampler::new(&examples, &idx, 32, 4, 7);
        for step in 0..20 {
            let b = s.batch(step);
            assert_eq!(b.len(), 32);
            assert_eq!(b, s.batch(step), "same step, same batch");
            let machines: Vec<&Example> = b
                .iter()
                .map(|&i| &examples[i])
                .filter(|e| e.label == 0)
                .collect();
            assert_eq!(machines.len(), 16);
            let same_model = machines
                .iter()
                .any(|a| machines.iter().filter(|b| b.model == a.model).count() > 1);
            let same_family_other_model = machines.iter().any(|a| {
                machines
                    .iter()
                    .any(|b| b.family == a.family && b.model != a.model)
            });
            let other_family = machines
                .iter()
                .any(|a| machines.iter().any(|b| b.family != a.family));
            assert!(
                same_model && same_family_other_model && other_family,
                "step {step}"
            );
        }
        assert_ne!(s.batch(0), s.batch(1));
    }
}

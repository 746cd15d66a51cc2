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
//!
//! With `matched` > 0, that share of the human half is drawn as hard
//! negatives: for machine texts of the batch, a human text of the same group
//! (the human original of a machine continuation), else of the same
//! context (source and domain). Random human texts differ from the machine
//! half in topic and form as much as in authorship, so the loss can separate
//! them by topic; matched ones differ mainly in who wrote them.
use std::collections::{BTreeMap, HashMap, HashSet};

use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::data::Example;
use super::loss::HUMAN;

pub struct Sampler {
    /// family -> model -> example indices.
    machine: BTreeMap<i64, BTreeMap<i64, Vec<usize>>>,
    humans: Vec<usize>,
    /// group -> human texts of it, context -> human texts of it.
    humans_by_group: HashMap<String, Vec<usize>>,
    humans_by_context: HashMap<String, Vec<usize>>,
    batch: usize,
    per_model: usize,
    matched: f64,
    seed: u64,
}

impl Sampler {
    pub fn new(
        examples: &[Example],
        indices: &[usize],
        batch: usize,
        per_model: usize,
        matched: f64,
        seed: u64,
    ) -> Self {
        let mut machine: BTreeMap<i64, BTreeMap<i64, Vec<usize>>> = BTreeMap::new();
        let mut humans = Vec::new();
        let mut humans_by_group: HashMap<String, Vec<usize>> = HashMap::new();
        let mut humans_by_context: HashMap<String, Vec<usize>> = HashMap::new();
        for &i in indices {
            let e = &examples[i];
            if e.label == HUMAN {
                humans.push(i);
                if matched > 0.0 {
                    humans_by_group.entry(e.group.clone()).or_default().push(i);
                    if !e.context.is_empty() {
                        humans_by_context
                            .entry(e.context.clone())
                            .or_default()
                            .push(i);
                    }
                }
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
            humans_by_group,
            humans_by_context,
            batch: batch.max(4),
            per_model: per_model.max(2),
            matched: matched.clamp(0.0, 1.0),
            seed,
        }
    }

    /// The example indices of step `step`; `examples` are those the sampler
    /// was built from.
    pub fn batch(&self, examples: &[Example], step: u64) -> Vec<usize> {
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
        if self.humans.is_empty() {
            return out;
        }
        if self.matched == 0.0 {
            out.extend(
                self.humans
                    .choose_multiple(&mut rng, want_human.min(self.humans.len()))
                    .copied(),
            );
            return out;
        }
        let want_matched = ((want_human as f64) * self.matched).round() as usize;
        let mut chosen: HashSet<usize> = HashSet::new();
        let mut humans = Vec::with_capacity(want_human);
        let mut machines = out.clone();
        machines.shuffle(&mut rng);
        for &m in &machines {
            if humans.len() >= want_matched {
                break;
            }
            let e = &examples[m];
            let pools = [
                self.humans_by_group.get(&e.group),
                self.humans_by_context.get(&e.context),
            ];
            for pool in pools.into_iter().flatten() {
                let free: Vec<usize> = pool
                    .iter()
                    .copied()
                    .filter(|i| !chosen.contains(i))
                    .collect();
                if let Some(&h) = free.choose(&mut rng) {
                    chosen.insert(h);
                    humans.push(h);
                    break;
                }
            }
        }
        // The rest at random, without repeats.
        let mut tries = 0;
        let goal = want_human.min(self.humans.len());
        while humans.len() < goal && tries < 100 * goal {
            tries += 1;
            let &h = self.humans.choose(&mut rng).expect("not empty");
            if chosen.insert(h) {
                humans.push(h);
            }
        }
        out.extend(humans);
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
            context: String::new(),
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
        let s = Sampler::new(&examples, &idx, 32, 4, 0.0, 7);
        for step in 0..20 {
            let b = s.batch(&examples, step);
            assert_eq!(b.len(), 32);
            assert_eq!(b, s.batch(&examples, step), "same step, same batch");
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
        assert_ne!(s.batch(&examples, 0), s.batch(&examples, 1));
    }

    #[test]
    fn matched_humans_come_from_the_machine_texts_groups_then_contexts() {
        // Machine texts of models 0-5 in contexts c0-c5 (model m writes in
        // context m); every fourth one continues a human original of its
        // group. Humans: the originals, 20 more per context, and 200 from a
        // context no machine text has.
        let mut examples = Vec::new();
        for m in 0..6 {
            for j in 0..20 {
                let mut e = ex(0, m, m / 2);
                e.context = format!("c{m}");
                e.group = format!("g{m}-{j}");
                examples.push(e);
                if j % 4 == 0 {
                    let mut h = ex(1, 99, 99);
                    h.context = format!("c{m}");
                    h.group = format!("g{m}-{j}");
                    examples.push(h);
                }
            }
            for _ in 0..20 {
                let mut h = ex(1, 99, 99);
                h.context = format!("c{m}");
                examples.push(h);
            }
        }
        for _ in 0..200 {
            let mut h = ex(1, 99, 99);
            h.context = "elsewhere".into();
            examples.push(h);
        }
        let idx: Vec<usize> = (0..examples.len()).collect();
        let all = Sampler::new(&examples, &idx, 32, 4, 1.0, 7);
        let half = Sampler::new(&examples, &idx, 32, 4, 0.5, 7);
        let mut paired = 0;
        for step in 0..20 {
            let b = all.batch(&examples, step);
            assert_eq!(b.len(), 32);
            assert_eq!(b, all.batch(&examples, step), "same step, same batch");
            let unique: HashSet<usize> = b.iter().copied().collect();
            assert_eq!(unique.len(), 32, "no text twice in a batch");
            let (machines, humans): (Vec<&Example>, Vec<&Example>) =
                b.iter().map(|&i| &examples[i]).partition(|e| e.label == 0);
            assert_eq!(humans.len(), 16);
            let contexts: HashSet<&str> = machines.iter().map(|e| e.context.as_str()).collect();
            let groups: HashSet<&str> = machines.iter().map(|e| e.group.as_str()).collect();
            // Every human shares a context with some machine text of the batch.
            assert!(
                humans.iter().all(|h| contexts.contains(h.context.as_str())),
                "step {step}"
            );
            // An original is taken whenever its continuation is drawn.
            let originals = machines
                .iter()
                .filter(|m| examples.iter().any(|h| h.label == 1 && h.group == m.group))
                .count();
            let matched_groups = humans
                .iter()
                .filter(|h| groups.contains(h.group.as_str()))
                .count();
            assert_eq!(matched_groups, originals, "step {step}");
            paired += matched_groups;

            let b = half.batch(&examples, step);
            let humans = b.iter().map(|&i| &examples[i]).filter(|e| e.label == 1);
            let in_context = humans
                .filter(|h| contexts_of(&examples, &b).contains(h.context.as_str()))
                .count();
            assert!(in_context >= 8, "step {step}: {in_context}");
        }
        assert!(paired > 0);
    }

    fn contexts_of<'a>(examples: &'a [Example], batch: &[usize]) -> HashSet<&'a str> {
        batch
            .iter()
            .map(|&i| &examples[i])
            .filter(|e| e.label == 0)
            .map(|e| e.context.as_str())
            .collect()
    }
}

//! The training loop.
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Tensor};

use super::checkpoint::{self, RunState};
use super::data::{Dataset, Example};
use super::loss::{classifier_loss, contrastive, scalar, Classes, LossWeights};
use super::sampler::Sampler;
use super::TrainError;
use crate::config::EncoderConfig;
use crate::detect::calibrate::avg_rec_at;
use crate::detect::References;
use crate::encoder::{registry, Embed, Encoder};
use crate::index::IndexKind;
use crate::store::{Label, VectorRow};

#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    pub data: PathBuf,
    pub out: PathBuf,
    pub encoder: EncoderConfig,
    pub batch_size: usize,
    /// Texts per generator in a batch.
    pub per_model: usize,
    /// Share of a batch's human texts drawn from the groups or contexts of
    /// its machine texts (hard negatives); 0 draws them all at random.
    pub matched_humans: f64,
    pub steps: u64,
    pub lr: f64,
    /// Share of the steps spent warming the learning rate up.
    pub warmup: f64,
    pub weight_decay: f64,
    pub temperature: f64,
    pub weights: LossWeights,
    pub freeze_embeddings: bool,
    pub seed: u64,
    /// Seed of the validation split, when it differs from `seed` (a run
    /// that continues a trained model on new batches keeps that model's
    /// validation split).
    pub val_seed: Option<u64>,
    pub val_fraction: f64,
    pub val_every: u64,
    /// Validation queries (from the held-out groups).
    pub val_queries: usize,
    /// Validation references (from the training groups).
    pub val_refs: usize,
    /// Detached embeddings of recent steps kept as extra keys.
    pub queue: usize,
    pub grad_clip: f64,
    /// Which validation keeps `best/` (held-out in runs that did not
    /// record it).
    #[serde(default)]
    pub select_by: SelectBy,
}

/// The validation that picks the best checkpoint. Both are computed and
/// recorded at every validation; this one decides. `Default` is what runs
/// that did not record a choice used; the CLI defaults to `UnseenFamily`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SelectBy {
    /// kNN AvgRec of held-out texts against references of every family.
    #[default]
    HeldOut,
    /// Mean over machine families of the kNN AvgRec of that family's
    /// held-out texts and the held-out human texts against references
    /// without the family: how well the style space places a generator
    /// it cannot match by its own references.
    UnseenFamily,
}

impl SelectBy {
    pub fn name(self) -> &'static str {
        match self {
            Self::HeldOut => "held-out",
            Self::UnseenFamily => "unseen-family",
        }
    }
}

/// What the loop reports as it goes.
pub enum Event<'a> {
    Start {
        total: u64,
        done: u64,
        train: usize,
        val: usize,
    },
    Step {
        step: u64,
        levels: [f64; 5],
        total: f64,
        lr: f64,
        texts_per_s: f64,
    },
    Validated {
        step: u64,
        /// Held-out AvgRec (%).
        avg_rec: f64,
        /// Leave-family-out AvgRec (%), fold mean; `None` when no family
        /// has enough held-out texts.
        unseen_family: Option<f64>,
        best: bool,
    },
    Saved(&'a Path),
}

fn lr_at(cfg: &TrainConfig, step: u64) -> f64 {
    let warm = (cfg.warmup * cfg.steps as f64).max(1.0);
    let s = step as f64;
    if s < warm {
        cfg.lr * (s + 1.0) / warm
    } else {
        let span = (cfg.steps as f64 - warm).max(1.0);
        let t = ((s - warm) / span).min(1.0);
        cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

fn classes_of(batch: &[&Example], device: Device) -> (Tensor, Tensor, Tensor) {
    let col = |f: &dyn Fn(&Example) -> i64| {
        Tensor::from_slice(&batch.iter().map(|e| f(e)).collect::<Vec<i64>>()).to_device(device)
    };
    (col(&|e| e.model), col(&|e| e.family), col(&|e| e.label))
}

/// What validation scores: held-out queries for the in-distribution
/// AvgRec, and per machine family its held-out texts (with every held-out
/// human text in `humans`) for the leave-family-out one.
struct ValSets {
    queries: Vec<usize>,
    refs: Vec<usize>,
    folds: Vec<(i64, Vec<usize>)>,
    humans: Vec<usize>,
}

/// Held-out texts per leave-family-out fold and in all, at most.
const FOLD_QUERIES: usize = 200;
const FOLD_HUMANS: usize = 1000;

impl ValSets {
    /// A family is a fold when it has at least 1% of the held-out texts
    /// (5 at least): fewer make a fold of noise.
    fn new(ds: &Dataset, train_idx: &[usize], val_idx: &[usize], cfg: &TrainConfig) -> Self {
        let min = (val_idx.len() / 100).max(5);
        let mut by_family: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
        let mut humans = Vec::new();
        for &i in val_idx {
            let e = &ds.examples[i];
            if e.label == super::loss::HUMAN {
                humans.push(i);
            } else {
                by_family.entry(e.family).or_default().push(i);
            }
        }
        let folds: Vec<(i64, Vec<usize>)> = by_family
            .into_iter()
            .filter(|(_, idx)| idx.len() >= min)
            .map(|(f, idx)| (f, spread(&idx, FOLD_QUERIES)))
            .collect();
        let humans = if folds.is_empty() {
            Vec::new()
        } else {
            spread(&humans, FOLD_HUMANS)
        };
        Self {
            queries: spread(val_idx, cfg.val_queries),
            refs: spread(train_idx, cfg.val_refs),
            folds,
            humans,
        }
    }
}

/// Validation AvgRec (%): of held-out queries against training references
/// (best over a few k), and the leave-family-out fold mean (best over the
/// same k, one k for every fold).
fn validate(
    encoder: &Encoder,
    ds: &Dataset,
    sets: &ValSets,
) -> Result<(f64, Option<f64>), TrainError> {
    const KS: [usize; 4] = [1, 3, 5, 10];
    let mut wanted: Vec<usize> = sets
        .queries
        .iter()
        .chain(&sets.refs)
        .chain(&sets.humans)
        .chain(sets.folds.iter().flat_map(|(_, q)| q))
        .copied()
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let texts: Vec<&str> = wanted
        .iter()
        .map(|&i| ds.examples[i].text.as_str())
        .collect();
    let vectors: std::collections::HashMap<usize, Vec<f32>> =
        wanted.iter().copied().zip(encoder.embed(&texts)?).collect();
    let label = |i: usize| {
        if ds.examples[i].label == super::loss::HUMAN {
            Label::Human
        } else {
            Label::Machine
        }
    };
    let index_of = |keep: &dyn Fn(usize) -> bool| -> Result<References, TrainError> {
        let rows: Vec<VectorRow> = sets
            .refs
            .iter()
            .filter(|&&i| keep(i))
            .map(|&i| VectorRow {
                id: i as i64 + 1,
                label: label(i),
                model: Some(ds.models[ds.examples[i].model as usize].clone()),
                family: Some(ds.families[ds.examples[i].family as usize].clone()),
                source: None,
                group: None,
                embedding: vectors[&i].clone(),
            })
            .collect();
        let index = References::new(IndexKind::Exact, encoder.dim(), rows.len());
        index.add(&rows)?;
        Ok(index)
    };
    let search = |index: &References, idx: &[usize]| -> Vec<_> {
        idx.iter()
            .map(|&i| (label(i), index.search(&vectors[&i], 10)))
            .collect()
    };
    let all = index_of(&|_| true)?;
    let val = search(&all, &sets.queries);
    let held_out = KS
        .into_iter()
        .map(|k| avg_rec_at(&val, k, 0.05))
        .fold(0.0, f64::max);
    if sets.folds.is_empty() {
        return Ok((held_out, None));
    }
    let mut per_k = [0.0f64; KS.len()];
    for (family, queries) in &sets.folds {
        let index = index_of(&|i| ds.examples[i].family != *family)?;
        let mut val = search(&index, queries);
        val.extend(search(&index, &sets.humans));
        for (sum, k) in per_k.iter_mut().zip(KS) {
            *sum += avg_rec_at(&val, k, 0.05);
        }
    }
    let unseen = per_k.into_iter().fold(0.0, f64::max) / sets.folds.len() as f64;
    Ok((held_out, Some(unseen)))
}

/// The contrastive loss (model + family + label + 3 x human, no dropout,
/// no classifier) of `batch` under `encoder`: a fixed yardstick for tests
/// and diagnostics.
pub fn batch_loss(
    encoder: &Encoder,
    batch: &[&Example],
    temperature: f64,
) -> Result<f64, TrainError> {
    let _guard = tch::no_grad_guard();
    let texts: Vec<&str> = batch.iter().map(|e| e.text.as_str()).collect();
    let seqs = encoder.tokenize(&texts)?;
    let rows: Vec<&[i64]> = seqs.iter().map(Vec::as_slice).collect();
    let (ids, mask) = encoder.pad(&rows);
    let emb = encoder.forward(&ids, &mask, false);
    let (m, f, l) = classes_of(batch, encoder.device());
    let c = Classes {
        model: &m,
        family: &f,
        label: &l,
    };
    let levels = contrastive(&emb, &emb, &c, &c, temperature);
    let w = LossWeights {
        d: 0.0,
        ..LossWeights::default()
    };
    Ok(scalar(&levels.total(&w, None)))
}

/// Evenly spread picks of at most `n` of `idx`.
fn spread(idx: &[usize], n: usize) -> Vec<usize> {
    let stride = (idx.len() / n.max(1)).max(1);
    idx.iter().step_by(stride).take(n).copied().collect()
}

pub fn train(cfg: &TrainConfig, report: &mut dyn FnMut(Event)) -> Result<RunState, TrainError> {
    if cfg.steps == 0 || cfg.batch_size < 4 {
        return Err(TrainError::Config(
            "need steps > 0 and batch size >= 4".into(),
        ));
    }
    tch::manual_seed(cfg.seed as i64);
    let ds = Dataset::load(&cfg.data)?;
    let (train_idx, val_idx) = ds.split(cfg.val_fraction, cfg.val_seed.unwrap_or(cfg.seed));
    let files = registry::resolve(&cfg.encoder.model)?;
    let base = files
        .path("config.json")
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    // Training reads one window per text, whatever the model's default.
    let mut encoder = Encoder::load_files(
        &files,
        &EncoderConfig {
            windows: 1,
            ..cfg.encoder.clone()
        },
    )?;
    let device = encoder.device();
    let dim = encoder.dim() as i64;
    let mut head_vs = nn::VarStore::new(device);
    let head = nn::seq()
        .add(nn::linear(
            head_vs.root() / "dense",
            dim,
            256,
            Default::default(),
        ))
        .add_fn(|x| x.relu())
        .add(nn::linear(
            head_vs.root() / "out",
            256,
            2,
            Default::default(),
        ));

    let mut families: Vec<String> = train_idx
        .iter()
        .filter(|&&i| ds.examples[i].label == 0)
        .map(|&i| ds.families[ds.examples[i].family as usize].clone())
        .collect();
    families.sort();
    families.dedup();
    let mut state = RunState {
        config: serde_json::to_value(cfg).unwrap_or_default(),
        families: Some(families.clone()),
        ..RunState::default()
    };
    // Resume: weights, head and run state from the latest checkpoint.
    if let Some(dir) = checkpoint::latest(&cfg.out.join("last")) {
        state = checkpoint::load_state(&dir)?;
        // The best so far is a value of the run's own validation: resuming
        // with the other one would compare unlike numbers.
        let recorded: SelectBy = state
            .config
            .get("select_by")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        if recorded != cfg.select_by {
            return Err(TrainError::Config(format!(
                "{} selects checkpoints by {}; resume it with --select-by {}",
                cfg.out.display(),
                recorded.name(),
                recorded.name()
            )));
        }
        state.families.get_or_insert(families);
        encoder
            .var_store_mut()
            .load(dir.join("model.safetensors"))?;
        head_vs.load(dir.join("head.safetensors"))?;
    }
    continue_run(
        cfg, &ds, &train_idx, &val_idx, encoder, head_vs, head, &base, state, report,
    )
}

#[allow(clippy::too_many_arguments)]
fn continue_run(
    cfg: &TrainConfig,
    ds: &Dataset,
    train_idx: &[usize],
    val_idx: &[usize],
    encoder: Encoder,
    head_vs: nn::VarStore,
    head: nn::Sequential,
    base: &Path,
    mut state: RunState,
    report: &mut dyn FnMut(Event),
) -> Result<RunState, TrainError> {
    let device = encoder.device();
    if cfg.freeze_embeddings {
        for (name, t) in encoder.var_store().variables() {
            if name.starts_with("embeddings.") {
                let _ = t.set_requires_grad(false);
            }
        }
    }
    let adamw = nn::AdamW {
        beta1: 0.9,
        beta2: 0.98,
        wd: cfg.weight_decay,
        ..Default::default()
    };
    let mut opt = adamw.build(encoder.var_store(), cfg.lr)?;
    let mut head_opt = adamw.build(&head_vs, cfg.lr)?;
    let sampler = Sampler::new(
        &ds.examples,
        train_idx,
        cfg.batch_size,
        cfg.per_model,
        cfg.matched_humans,
        cfg.seed,
    );
    let sets = ValSets::new(ds, train_idx, val_idx, cfg);
    if cfg.select_by == SelectBy::UnseenFamily && sets.folds.is_empty() {
        return Err(TrainError::Config(
            "selecting by unseen families needs a machine family with at least 1% of the held-out texts (5 at least), and none has: use --select-by held-out".into(),
        ));
    }
    report(Event::Start {
        total: cfg.steps,
        done: state.step,
        train: train_idx.len(),
        val: val_idx.len(),
    });
    // The starting point is a candidate too: a run that only makes its
    // model worse keeps the model it started from as `best/`.
    if state.step == 0 && state.validations.is_empty() {
        validate_and_save(&encoder, ds, &sets, cfg, &mut state, &head_vs, base, report)?;
    }
    let mut queue: Vec<(Tensor, Tensor, Tensor, Tensor)> = Vec::new();
    let mut queued = 0usize;
    while state.step < cfg.steps {
        let started = Instant::now();
        let step = state.step;
        let batch: Vec<&Example> = sampler
            .batch(&ds.examples, step)
            .into_iter()
            .map(|i| &ds.examples[i])
            .collect();
        let texts: Vec<&str> = batch.iter().map(|e| e.text.as_str()).collect();
        let seqs = encoder.tokenize(&texts)?;
        let rows: Vec<&[i64]> = seqs.iter().map(Vec::as_slice).collect();
        let (ids, mask) = encoder.pad(&rows);
        let emb = encoder.forward(&ids, &mask, true);
        let (m, f, l) = classes_of(&batch, device);
        let mut keys = vec![emb.detach()];
        let (mut km, mut kf, mut kl) = (
            vec![m.shallow_clone()],
            vec![f.shallow_clone()],
            vec![l.shallow_clone()],
        );
        for (e, qm, qf, ql) in &queue {
            keys.push(e.shallow_clone());
            km.push(qm.shallow_clone());
            kf.push(qf.shallow_clone());
            kl.push(ql.shallow_clone());
        }
        let (keys, km, kf, kl) = (
            Tensor::cat(&keys, 0),
            Tensor::cat(&km, 0),
            Tensor::cat(&kf, 0),
            Tensor::cat(&kl, 0),
        );
        let qc = Classes {
            model: &m,
            family: &f,
            label: &l,
        };
        let kc = Classes {
            model: &km,
            family: &kf,
            label: &kl,
        };
        let levels = contrastive(&emb, &keys, &qc, &kc, cfg.temperature);
        let cls = classifier_loss(&head.forward(&emb), &l);
        let total = levels.total(&cfg.weights, Some(&cls));
        let lr = lr_at(cfg, step);
        opt.set_lr(lr);
        head_opt.set_lr(lr);
        opt.zero_grad();
        head_opt.zero_grad();
        total.backward();
        if cfg.grad_clip > 0.0 {
            opt.clip_grad_norm(cfg.grad_clip);
        }
        opt.step();
        head_opt.step();
        if cfg.queue > 0 {
            queued += batch.len();
            queue.push((emb.detach(), m, f, l));
            while queued > cfg.queue && queue.len() > 1 {
                queued -= queue[0].0.size()[0] as usize;
                let _ = queue.remove(0);
            }
        }
        let secs = started.elapsed().as_secs_f64();
        state.step += 1;
        state.texts_seen += batch.len() as u64;
        state.train_seconds += secs;
        let values = [
            scalar(&levels.model),
            scalar(&levels.family),
            scalar(&levels.label),
            scalar(&levels.human),
            scalar(&cls),
        ];
        let total_v = scalar(&total);
        if !total_v.is_finite() {
            return Err(TrainError::Config(format!(
                "loss is {total_v} at step {step}; lower --lr"
            )));
        }
        report(Event::Step {
            step: state.step,
            levels: values,
            total: total_v,
            lr,
            texts_per_s: batch.len() as f64 / secs,
        });
        let done = state.step == cfg.steps;
        if state.step.is_multiple_of(cfg.val_every.max(1)) || done {
            validate_and_save(&encoder, ds, &sets, cfg, &mut state, &head_vs, base, report)?;
        }
    }
    Ok(state)
}

/// Validates the current weights, records both validations, and saves
/// `last/` (and `best/` when the selecting validation improved).
#[allow(clippy::too_many_arguments)]
fn validate_and_save(
    encoder: &Encoder,
    ds: &Dataset,
    sets: &ValSets,
    cfg: &TrainConfig,
    state: &mut RunState,
    head_vs: &nn::VarStore,
    base: &Path,
    report: &mut dyn FnMut(Event),
) -> Result<(), TrainError> {
    let (avg_rec, unseen_family) = validate(encoder, ds, sets)?;
    state.validations.push((state.step, avg_rec));
    if let Some(u) = unseen_family {
        state.validations_unseen_family.push((state.step, u));
    }
    let chosen = match cfg.select_by {
        SelectBy::HeldOut => avg_rec,
        SelectBy::UnseenFamily => unseen_family.unwrap_or(f64::NEG_INFINITY),
    };
    let best = state.best_avg_rec.is_none_or(|b| chosen > b);
    if best {
        state.best_avg_rec = Some(chosen);
        state.best_step = Some(state.step);
    }
    report(Event::Validated {
        step: state.step,
        avg_rec,
        unseen_family,
        best,
    });
    if best {
        let dir = cfg.out.join("best");
        checkpoint::save(&dir, base, encoder.var_store(), head_vs, state)?;
        report(Event::Saved(&dir));
    }
    let dir = cfg.out.join("last");
    checkpoint::save(&dir, base, encoder.var_store(), head_vs, state)?;
    report(Event::Saved(&dir));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(label: i64, family: i64, group: usize) -> Example {
        Example {
            text: format!("text {group}"),
            label,
            model: family,
            family,
            group: group.to_string(),
            context: String::new(),
        }
    }

    #[test]
    fn leave_family_out_folds_skip_families_with_too_few_held_out_texts() {
        // Family 0 is human; 1 has 300 held-out texts, 2 has 4 (under 1%
        // of 700 and under 5), 3 has 8.
        let mut examples = Vec::new();
        for (label, family, n) in [(1, 0, 388), (0, 1, 300), (0, 2, 4), (0, 3, 8)] {
            for _ in 0..n {
                examples.push(example(label, family, examples.len()));
            }
        }
        let ds = Dataset {
            examples,
            models: (0..4).map(|i| i.to_string()).collect(),
            families: (0..4).map(|i| i.to_string()).collect(),
        };
        let val_idx: Vec<usize> = (0..ds.examples.len()).collect();
        let cfg = TrainConfig {
            data: PathBuf::new(),
            out: PathBuf::new(),
            encoder: EncoderConfig::default(),
            batch_size: 32,
            per_model: 4,
            matched_humans: 0.0,
            steps: 1,
            lr: 1e-5,
            warmup: 0.0,
            weight_decay: 0.0,
            temperature: 0.07,
            weights: LossWeights::default(),
            freeze_embeddings: false,
            seed: 1,
            val_seed: None,
            val_fraction: 0.05,
            val_every: 1,
            val_queries: 100,
            val_refs: 10,
            queue: 0,
            grad_clip: 1.0,
            select_by: SelectBy::UnseenFamily,
        };
        let sets = ValSets::new(&ds, &[0, 1], &val_idx, &cfg);
        let folds: Vec<(i64, usize)> = sets.folds.iter().map(|(f, q)| (*f, q.len())).collect();
        assert_eq!(folds, [(1, FOLD_QUERIES), (3, 8)]);
        assert!(sets
            .folds
            .iter()
            .flat_map(|(_, q)| q)
            .all(|&i| ds.examples[i].label == 0));
        assert_eq!(sets.humans.len(), 388);
        assert!(sets.humans.iter().all(|&i| ds.examples[i].label == 1));
        assert_eq!(sets.queries.len(), 100);
    }
}

//! The training loop.
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Tensor};

use super::checkpoint::{self, RunState};
use super::data::{Dataset, Example};
use super::loss::{classifier_loss, contrastive, scalar, Classes, LossWeights};
use super::sampler::Sampler;
use super::validate::{validate, SelectBy, ValSets, Validation};
use super::TrainError;
use crate::config::EncoderConfig;
use crate::encoder::{registry, windows, Embed, Encoder, Tokenizer};

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
    /// Domains held out of training altogether, human and machine texts
    /// alike, and validated on as unseen domains.
    pub holdout_domains: Vec<String>,
    /// Texts of each held-out domain added as references for its taught
    /// score, half human and half machine.
    pub holdout_refs: usize,
    /// Windows' worth of each text a training window is drawn from: 1 reads
    /// its first window, as detection does; N > 1 a window of the model's
    /// length at a random token offset within its first N windows' worth,
    /// drawn from the seed and step (so a resumed run draws the same).
    pub crop_windows: usize,
}

/// The random window offsets of step `step`'s `n` texts: drawn like the
/// sampler's batches, from the seed and step alone, in a stream of their own.
fn crop_picks(seed: u64, step: u64, n: usize) -> Vec<u64> {
    const STREAM: u64 = 0xC00C_5EED;
    let mut rng = StdRng::seed_from_u64(seed ^ STREAM ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (0..n).map(|_| rng.gen()).collect()
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
        scores: Validation,
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

pub fn train(cfg: &TrainConfig, report: &mut dyn FnMut(Event)) -> Result<RunState, TrainError> {
    if cfg.steps == 0 || cfg.batch_size < 4 {
        return Err(TrainError::Config(
            "need steps > 0 and batch size >= 4".into(),
        ));
    }
    if cfg.crop_windows == 0 {
        return Err(TrainError::Config(
            "--crop-windows must be at least 1".into(),
        ));
    }
    tch::manual_seed(cfg.seed as i64);
    let ds = Dataset::load(&cfg.data)?;
    let (mut train_idx, mut val_idx) = ds.split(cfg.val_fraction, cfg.val_seed.unwrap_or(cfg.seed));
    // Texts of a held-out domain neither train nor validate in distribution.
    let held_domains = ds
        .domain_texts(&cfg.holdout_domains)
        .map_err(|e| TrainError::Config(format!("{}: {e}", cfg.data.display())))?;
    let held: std::collections::HashSet<usize> = held_domains
        .iter()
        .flat_map(|(_, idx)| idx)
        .copied()
        .collect();
    train_idx.retain(|i| !held.contains(i));
    val_idx.retain(|i| !held.contains(i));
    // Validation sets are settled before the model loads, so a domain too
    // thin to validate on is refused at once.
    let mut sets = ValSets::new(&ds, &train_idx, &val_idx, cfg.val_queries, cfg.val_refs);
    for (name, idx) in &held_domains {
        sets.hold_domain(&ds, name, idx, cfg.holdout_refs)?;
    }
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
    let domains = ds.domains(&train_idx);
    let mut state = RunState {
        config: serde_json::to_value(cfg).unwrap_or_default(),
        families: Some(families.clone()),
        domains: Some(domains.clone()),
        ..RunState::default()
    };
    // Resume: weights, head and run state from the latest checkpoint.
    if let Some(dir) = checkpoint::latest(&cfg.out.join("last")) {
        state = checkpoint::load_state(&dir)?;
        // The batches, the schedule and the best so far are the recipe's:
        // resuming with another would continue a different run.
        let changed = checkpoint::recipe_changes(&state.config, cfg);
        if !changed.is_empty() {
            return Err(TrainError::Config(format!(
                "{} was started with another recipe; resume it with {}",
                cfg.out.display(),
                changed.join(", ")
            )));
        }
        state.families.get_or_insert(families);
        state.domains.get_or_insert(domains);
        encoder
            .var_store_mut()
            .load(dir.join("model.safetensors"))?;
        head_vs.load(dir.join("head.safetensors"))?;
    }
    continue_run(
        cfg, &ds, &train_idx, &sets, encoder, head_vs, head, &base, state, report,
    )
}

#[allow(clippy::too_many_arguments)]
fn continue_run(
    cfg: &TrainConfig,
    ds: &Dataset,
    train_idx: &[usize],
    sets: &ValSets,
    encoder: Encoder,
    head_vs: nn::VarStore,
    head: nn::Sequential,
    base: &Path,
    mut state: RunState,
    report: &mut dyn FnMut(Event),
) -> Result<RunState, TrainError> {
    let device = encoder.device();
    // Random windows read more of each text than the one detection reads.
    let window = encoder.id().max_length;
    let cropper = if cfg.crop_windows > 1 {
        let mut tok = Tokenizer::from_file(&base.join("tokenizer.json"), window)?;
        tok.set_windows(cfg.crop_windows)?;
        Some(tok)
    } else {
        None
    };
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
    if cfg.select_by == SelectBy::UnseenFamily && sets.folds.is_empty() {
        return Err(TrainError::Config(
            "selecting by unseen families needs a machine family with at least 1% of the held-out texts (5 at least), and none has: use --select-by held-out".into(),
        ));
    }
    if cfg.select_by == SelectBy::UnseenDomain && sets.domains.is_empty() {
        return Err(TrainError::Config(
            "selecting by unseen domains needs a domain held out of training: add --holdout-domain"
                .into(),
        ));
    }
    report(Event::Start {
        total: cfg.steps,
        done: state.step,
        train: train_idx.len(),
        val: sets.held,
    });
    // The starting point is a candidate too: a run that only makes its
    // model worse keeps the model it started from as `best/`.
    if state.step == 0 && state.validations.is_empty() {
        validate_and_save(&encoder, ds, sets, cfg, &mut state, &head_vs, base, report)?;
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
        let seqs = match &cropper {
            None => encoder.tokenize(&texts)?,
            Some(tok) => tok
                .encode_batch(&texts)?
                .iter()
                .zip(crop_picks(cfg.seed, step, texts.len()))
                .map(|(seq, pick)| windows::crop(seq, window, pick))
                .collect(),
        };
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
            validate_and_save(&encoder, ds, sets, cfg, &mut state, &head_vs, base, report)?;
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
    let scores = validate(encoder, ds, sets)?;
    state.validations.push((state.step, scores.held_out));
    if let Some(u) = scores.unseen_family {
        state.validations_unseen_family.push((state.step, u));
    }
    if let Some(d) = scores.unseen_domain {
        state.validations_unseen_domain.push((state.step, d));
    }
    let chosen = cfg.select_by.pick(&scores);
    let best = state.best_avg_rec.is_none_or(|b| chosen > b);
    if best {
        state.best_avg_rec = Some(chosen);
        state.best_step = Some(state.step);
    }
    report(Event::Validated {
        step: state.step,
        scores,
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
    use super::crop_picks;

    #[test]
    fn crop_picks_depend_on_seed_and_step_only() {
        let picks = crop_picks(7, 3, 4);
        assert_eq!(picks, crop_picks(7, 3, 4));
        assert_eq!(picks.len(), 4);
        let all = [
            picks[0],
            picks[1],
            picks[2],
            picks[3],
            crop_picks(8, 3, 1)[0],
            crop_picks(7, 4, 1)[0],
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}

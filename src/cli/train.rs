//! `detective train`: multi-level contrastive fine-tuning of the encoder.
use std::path::PathBuf;

use clap::Args;

use super::input::progress;
use super::EncoderArgs;
use crate::train::{train, Event, LossWeights, SelectBy, TrainConfig};

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Labelled training texts (JSONL, corpus format).
    #[arg(long)]
    pub data: PathBuf,
    /// Run directory: checkpoints `last/` and `best/` (model directories).
    #[arg(long)]
    pub out: PathBuf,
    /// Optimisation steps.
    #[arg(long, default_value_t = 1000)]
    pub steps: u64,
    /// Texts per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Texts per generator in a batch.
    #[arg(long, default_value_t = 4)]
    pub per_model: usize,
    /// Share of each batch's human texts drawn as hard negatives: from the
    /// group (the human original of a machine continuation) or else the
    /// source and domain of the batch's machine texts. 0: all at random.
    #[arg(long, default_value_t = 0.0)]
    pub matched_humans: f64,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-5)]
    pub lr: f64,
    /// Share of the steps spent warming up.
    #[arg(long, default_value_t = 0.06)]
    pub warmup: f64,
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Softmax temperature of the contrastive logits.
    #[arg(long, default_value_t = 0.07)]
    pub temperature: f64,
    /// Weights of the model, family, label and classifier losses.
    #[arg(long, value_delimiter = ',', default_value = "1,1,1,1")]
    pub loss_weights: Vec<f64>,
    /// Keep the embedding layer fixed.
    #[arg(long)]
    pub freeze_embeddings: bool,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Seed of the validation split (default: --seed). Continuing a trained
    /// model with a new --seed draws new batches; keeping its split's seed
    /// here keeps the texts it never trained on out of training.
    #[arg(long)]
    pub val_seed: Option<u64>,
    /// Share of the groups held out for validation.
    #[arg(long, default_value_t = 0.05)]
    pub val_fraction: f64,
    /// Validate (and checkpoint) every N steps.
    #[arg(long, default_value_t = 100)]
    pub val_every: u64,
    #[arg(long, default_value_t = 600)]
    pub val_queries: usize,
    #[arg(long, default_value_t = 3000)]
    pub val_refs: usize,
    /// Detached embeddings of recent steps kept as extra contrastive keys.
    #[arg(long, default_value_t = 0)]
    pub queue: usize,
    /// Gradient-norm clip (0: off).
    #[arg(long, default_value_t = 1.0)]
    pub grad_clip: f64,
    /// The validation that keeps `best/`: the leave-family-out mean (each
    /// machine family's held-out texts and the held-out human texts against
    /// references without that family), held-out texts against references
    /// of every family, the held-out domains (`--holdout-domain`), or the
    /// mean of them all. Each is computed and logged.
    #[arg(long, value_enum, default_value_t = SelectBy::UnseenFamily)]
    pub select_by: SelectBy,
    /// Hold every text of this domain (the corpus `domain` field) out of
    /// training, and validate on it as an unseen domain: its texts against
    /// the training references, then with `--holdout-refs` of them added as
    /// references. Repeat or separate by commas for several.
    #[arg(long = "holdout-domain", value_delimiter = ',')]
    pub holdout_domains: Vec<String>,
    /// Texts of each held-out domain added as references, half human and
    /// half machine.
    #[arg(long, default_value_t = 32)]
    pub holdout_refs: usize,
    /// Read each training text through a window of the model's length at a
    /// random token offset within its first N windows' worth (1: its first
    /// window, as detection reads it).
    #[arg(long, default_value_t = 1)]
    pub crop_windows: usize,
}

/// A line above the progress bar, or on stderr when the bar is hidden
/// (output not a terminal), so logs keep it.
fn say(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let w = &args.loss_weights;
    anyhow::ensure!(w.len() == 4, "--loss-weights takes four numbers: a,b,c,d");
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.matched_humans),
        "--matched-humans is a share, from 0 to 1"
    );
    let cfg = TrainConfig {
        data: args.data.clone(),
        out: args.out.clone(),
        encoder: args.encoder.to_config()?,
        batch_size: args.batch_size,
        per_model: args.per_model,
        matched_humans: args.matched_humans,
        steps: args.steps,
        lr: args.lr,
        warmup: args.warmup,
        weight_decay: args.weight_decay,
        temperature: args.temperature,
        weights: LossWeights {
            a: w[0],
            b: w[1],
            c: w[2],
            d: w[3],
        },
        freeze_embeddings: args.freeze_embeddings,
        seed: args.seed,
        val_seed: args.val_seed,
        val_fraction: args.val_fraction,
        val_every: args.val_every,
        val_queries: args.val_queries,
        val_refs: args.val_refs,
        queue: args.queue,
        grad_clip: args.grad_clip,
        select_by: args.select_by,
        crop_windows: args.crop_windows,
        holdout_domains: args.holdout_domains.clone(),
        holdout_refs: args.holdout_refs,
    };
    std::fs::create_dir_all(&args.out)?;
    let bar = progress(Some(args.steps), "steps");
    let state = train(&cfg, &mut |e| match e {
        Event::Start {
            total,
            done,
            train,
            val,
        } => {
            bar.set_length(total);
            bar.set_position(done);
            say(
                &bar,
                format!("training on {train} texts, validating on {val} held out; step {done} of {total}"),
            );
        }
        Event::Step {
            step,
            levels,
            total,
            lr,
            texts_per_s,
        } => {
            bar.set_position(step);
            bar.set_message(format!(
                "loss {total:.3} (model {:.3} family {:.3} label {:.3} human {:.3} cls {:.3}) lr {lr:.1e} {texts_per_s:.1} texts/s",
                levels[0], levels[1], levels[2], levels[3], levels[4]
            ));
            if !bar.is_hidden() {
                return;
            }
            if step.is_multiple_of(10) {
                eprintln!("step {step}: loss {total:.4} [{:.3} {:.3} {:.3} {:.3} {:.3}] {texts_per_s:.1} texts/s", levels[0], levels[1], levels[2], levels[3], levels[4]);
            }
        }
        Event::Validated { step, scores, best } => {
            let family = scores
                .unseen_family
                .map(|u| format!(", unseen family {u:.2}%"))
                .unwrap_or_default();
            let domain = scores
                .unseen_domain
                .map(|d| {
                    format!(
                        ", unseen domain {:.2}% (+{} refs {:.2}%)",
                        d.plain, args.holdout_refs, d.taught
                    )
                })
                .unwrap_or_default();
            say(
                &bar,
                format!(
                    "step {step}: validation AvgRec held out {:.2}%{family}{domain}; {} {:.2}{}",
                    scores.held_out,
                    args.select_by.name(),
                    args.select_by.pick(&scores),
                    if best { " (best)" } else { "" }
                ),
            );
        }
        Event::Saved(dir) => say(&bar, format!("saved {}", dir.display())),
    })?;
    bar.finish_and_clear();
    eprintln!(
        "done: {} steps, {} texts in {:.0} s ({:.1} texts/s); best validation AvgRec ({}) {:.2}% at step {}; model: {}",
        state.step,
        state.texts_seen,
        state.train_seconds,
        state.texts_seen as f64 / state.train_seconds.max(1e-9),
        args.select_by.name(),
        state.best_avg_rec.unwrap_or(0.0),
        state.best_step.unwrap_or(0),
        args.out.join("best").display()
    );
    Ok(())
}

//! A short training run on `tiny.jsonl`: the loss falls, checkpoints load
//! as models, and a killed run resumes where it stopped.
use detective::config::EncoderConfig;
use detective::encoder::{Embed, Encoder};
use detective::train::checkpoint::TrainedOn;
use detective::train::data::{Dataset, Example};
use detective::train::sampler::Sampler;
use detective::train::{batch_loss, train, Event, LossWeights, SelectBy, TrainConfig};

fn config(out: &std::path::Path, steps: u64) -> TrainConfig {
    let model = super::common::models_dir()
        .join("minilm")
        .display()
        .to_string();
    TrainConfig {
        data: super::common::shared_dir().join("corpus/tiny.jsonl"),
        out: out.to_owned(),
        encoder: EncoderConfig {
            model,
            max_length: 64,
            threads: Some(2),
            ..EncoderConfig::default()
        },
        batch_size: 16,
        per_model: 2,
        matched_humans: 0.5,
        steps,
        lr: 1e-4,
        warmup: 0.1,
        weight_decay: 1e-4,
        temperature: 0.07,
        weights: LossWeights::default(),
        freeze_embeddings: false,
        seed: 7,
        val_seed: None,
        val_fraction: 0.2,
        val_every: 4,
        val_queries: 16,
        val_refs: 48,
        queue: 32,
        grad_clip: 1.0,
        select_by: SelectBy::UnseenFamily,
        // Random windows within the first two windows' worth of each text.
        crop_windows: 2,
        holdout_domains: Vec::new(),
        holdout_refs: 32,
    }
}

fn load(model: &str) -> Encoder {
    Encoder::load(&EncoderConfig {
        model: model.to_owned(),
        max_length: 64,
        threads: Some(2),
        ..EncoderConfig::default()
    })
    .expect("load encoder")
}

#[test]
fn loss_falls_checkpoints_load_and_a_killed_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 4);
    // The yardstick: the loss of the first training batches, before and after.
    let ds = Dataset::load(&cfg.data).unwrap();
    let (train_idx, _) = ds.split(cfg.val_fraction, cfg.seed);
    let sampler = Sampler::new(
        &ds.examples,
        &train_idx,
        cfg.batch_size,
        cfg.per_model,
        cfg.matched_humans,
        cfg.seed,
    );
    let batches: Vec<Vec<&Example>> = (0..4)
        .map(|s| {
            sampler
                .batch(&ds.examples, s)
                .into_iter()
                .map(|i| &ds.examples[i])
                .collect()
        })
        .collect();
    let measure = |enc: &Encoder| -> f64 {
        batches
            .iter()
            .map(|b| batch_loss(enc, b, cfg.temperature).unwrap())
            .sum::<f64>()
            / 4.0
    };
    let base = load(&cfg.encoder.model);
    let before = measure(&base);

    // First run: 4 steps, then "killed" (it simply ends); the second run
    // resumes from last/ and continues to step 8.
    let mut steps = Vec::new();
    let state = train(&cfg, &mut |e| {
        if let Event::Step { step, .. } = e {
            steps.push(step)
        }
    })
    .unwrap();
    assert_eq!((state.step, steps), (4, vec![1, 2, 3, 4]));
    let cfg8 = TrainConfig {
        steps: 8,
        ..cfg.clone()
    };
    let mut resumed_at = None;
    let mut seen = Vec::new();
    let state = train(&cfg8, &mut |e| match e {
        Event::Start { done, .. } => resumed_at = Some(done),
        Event::Step { step, .. } => seen.push(step),
        _ => {}
    })
    .unwrap();
    assert_eq!(resumed_at, Some(4), "resumes from the checkpoint");
    // Resuming with the other validation would compare unlike numbers.
    let other = TrainConfig {
        steps: 12,
        select_by: SelectBy::HeldOut,
        ..cfg.clone()
    };
    let refused = train(&other, &mut |_| {}).unwrap_err().to_string();
    assert!(
        refused
            .contains("was started with another recipe; resume it with --select-by unseen-family"),
        "{refused}"
    );
    assert_eq!(seen, vec![5, 6, 7, 8]);
    assert_eq!(state.step, 8);
    // Validated at the start (step 0), after the first run and at the end.
    assert_eq!(state.validations.len(), 3);
    // Both validations are recorded; the leave-family-out one selects.
    let unseen = &state.validations_unseen_family;
    assert_eq!(unseen.iter().map(|v| v.0).collect::<Vec<_>>(), [0, 4, 8]);
    let top = unseen
        .iter()
        .fold(unseen[0], |b, &v| if v.1 > b.1 { v } else { b });
    assert_eq!(
        (state.best_step, state.best_avg_rec),
        (Some(top.0), Some(top.1))
    );

    // The checkpoint is a model directory: it loads like the base model,
    // under its own checksum, and the loss on the batches it saw has fallen.
    let last = dir.path().join("last");
    let trained = load(&last.display().to_string());
    assert_ne!(trained.id().checksum, base.id().checksum);
    let after = measure(&trained);
    eprintln!("loss on the first batches: {before:.4} -> {after:.4}");
    assert!(
        after < before * 0.95,
        "loss did not fall: {before:.4} -> {after:.4}"
    );
    let v = trained.embed(&["A text."]).unwrap();
    let norm: f32 = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
    let best = dir.path().join("best");
    assert!(best.join("model.safetensors").is_file() && best.join("state.json").is_file());

    // `detective export` makes it a named model: f16 weights at about half
    // the size, a manifest whose checksums verify on load, the trained
    // max_length as its default, and the same embeddings up to f16 rounding.
    let out = dir.path().join("exported");
    let run = std::process::Command::new(super::common::bin())
        .args(["export", "--name", "tiny-export", "--checkpoint"])
        .arg(&last)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["max_length"], 64);
    assert_eq!(manifest["training"]["steps"], 8);
    let size = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().len() as f64;
    let ratio = size(out.join("weights/model.safetensors")) / size(last.join("model.safetensors"));
    assert!((0.45..0.55).contains(&ratio), "f16 size ratio {ratio}");
    let exported = load(&out.display().to_string());
    assert_eq!(exported.id().name, "tiny-export");
    let w = exported.embed(&["A text."]).unwrap();
    let cos: f32 = v[0].iter().zip(&w[0]).map(|(a, b)| a * b).sum();
    assert!(cos > 0.9999, "exported embedding differs: cosine {cos}");

    // The run records the domains of its training texts, and the exported
    // model keeps the record: a validation that leaves one of them out of
    // the references is marked leaky, another domain is not.
    assert_eq!(state.domains, Some(ds.domains(&train_idx)));
    let domains = state.domains.unwrap();
    assert!(domains.len() >= 3, "{domains:?}");
    let seen = TrainedOn::domains_of(&out.join("weights"));
    assert_eq!(seen, TrainedOn::Recorded(domains.clone()));
    assert_eq!(
        seen.domain_leak(&domains[0]),
        "in the encoder's training: leaky"
    );
    assert_eq!(
        seen.domain_leak("student_essay"),
        "not in the encoder's training"
    );
}

#[test]
fn a_held_out_domain_stays_out_of_training_and_can_select_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        holdout_domains: vec!["xsum".into()],
        holdout_refs: 8,
        select_by: SelectBy::Mean,
        val_every: 2,
        crop_windows: 1,
        ..config(dir.path(), 2)
    };
    let mut validated = Vec::new();
    let state = train(&cfg, &mut |e| {
        if let Event::Validated { step, scores, best } = e {
            validated.push((step, scores, best));
        }
    })
    .unwrap();
    // Validated at the start and at the end, the domain each time.
    assert_eq!(validated.len(), 2);
    let domain = &state.validations_unseen_domain;
    assert_eq!(domain.iter().map(|v| v.0).collect::<Vec<_>>(), [0, 2]);
    for ((step, scores, _), (s, d)) in validated.iter().zip(domain) {
        assert_eq!((step, scores.unseen_domain), (s, Some(*d)));
        for v in [d.plain, d.taught] {
            assert!((0.0..=100.0).contains(&v), "{v}");
        }
    }
    // The mean of every validation selects.
    let (step, scores, _) = validated
        .iter()
        .max_by(|a, b| {
            SelectBy::Mean
                .pick(&a.1)
                .total_cmp(&SelectBy::Mean.pick(&b.1))
        })
        .unwrap();
    assert_eq!(state.best_step, Some(*step));
    assert_eq!(state.best_avg_rec, Some(SelectBy::Mean.pick(scores)));
    // No text of the domain was trained on: the record leaves it out, so a
    // validation that leaves it out of the references is not leaky.
    let domains = state.domains.clone().unwrap();
    assert!(!domains.contains(&"xsum".to_owned()), "{domains:?}");
    assert!(domains.contains(&"writing_prompts".to_owned()));
    let seen = TrainedOn::domains_of(&dir.path().join("best"));
    assert_eq!(seen.domain_leak("xsum"), "not in the encoder's training");

    // A domain no text has, or too few to validate on, is refused by name,
    // and selecting by unseen domains needs one.
    let other = tempfile::tempdir().unwrap();
    let refusals = [
        (
            &["sonnets"][..],
            SelectBy::UnseenFamily,
            "is of the domain sonnets (its domains: arxiv, blog",
        ),
        (
            &["yelp"],
            SelectBy::UnseenFamily,
            "held-out domain yelp has 3 human and 2 machine texts",
        ),
        (&[], SelectBy::UnseenDomain, "add --holdout-domain"),
    ];
    for (domains, select_by, said) in refusals {
        let cfg = TrainConfig {
            holdout_domains: domains.iter().map(|d| d.to_string()).collect(),
            select_by,
            ..config(other.path(), 2)
        };
        let err = train(&cfg, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains(said), "{err}");
    }
}

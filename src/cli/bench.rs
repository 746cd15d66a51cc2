//! `detective bench`: encoder throughput.
//!
//! Two workloads, each timed `--reps` times and reported as the median:
//! fixed-length batches of synthetic token ids (every batch size x length),
//! which isolates the model's arithmetic, and a mixed-length sample of real
//! texts embedded end to end (tokenization, length bucketing, dynamic
//! padding). Prints a table and, with `--json`, writes the figures for
//! comparison with the reference implementation. Every row also gives its
//! share of the matrix-product peak of the same precision on the same
//! machine, which the benchmark measures first (a 2048³ product).
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use super::input::Reader;
use super::EncoderArgs;
use crate::encoder::{Embed, Encoder, Lexical, Precision};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Batch sizes of the fixed-length workload.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub batches: Vec<usize>,
    /// Sequence lengths (tokens) of the fixed-length workload.
    #[arg(long, value_delimiter = ',', default_value = "64,128,256,512")]
    pub lengths: Vec<usize>,
    /// Timed repetitions per cell (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Texts (JSONL or plain) for the mixed-length workload.
    #[arg(long)]
    pub mixed: Option<PathBuf>,
    /// How many texts of `--mixed` to embed per repetition.
    #[arg(long, default_value_t = 256)]
    pub mixed_count: usize,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Row {
    workload: String,
    batch: usize,
    length: usize,
    texts: usize,
    tokens: u64,
    seconds: f64,
    texts_per_s: f64,
    tokens_per_s: f64,
    gflops: f64,
    /// `gflops` over the matrix-product peak of the encoder's precision.
    peak_fraction: f64,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let cfg = args.encoder.to_config()?;
    let encoder =
        Encoder::load(&cfg).with_context(|| format!("cannot load model {:?}", cfg.model))?;
    let reps = args.reps.max(1);
    let peak = matmul_peak(encoder.precision(), encoder.device(), reps);
    println!(
        "precision {}: matrix-product peak {peak:.1} GFLOP/s (2048³, {} threads)",
        encoder.precision(),
        tch::get_num_threads()
    );
    let mut rows = Vec::new();
    for &length in &args.lengths {
        anyhow::ensure!(
            length <= cfg.max_length,
            "length {length} exceeds --max-length"
        );
        for &batch in &args.batches {
            rows.push(fixed(&encoder, batch, length, reps).of_peak(peak));
            print_row(rows.last().expect("just pushed"));
        }
    }
    if let Some(path) = &args.mixed {
        rows.push(mixed(&encoder, path, args.mixed_count, reps)?.of_peak(peak));
        print_row(rows.last().expect("just pushed"));
        let lexical = args.encoder.view()?.lexical.unwrap_or_default();
        rows.push(lexical_row(lexical, path, args.mixed_count, reps)?);
        let r = rows.last().expect("just pushed");
        println!(
            "{:<6} {:<12} {:>10.1} texts/s {:>8.1} µs per text (one thread, {})",
            r.workload,
            format!("{} texts", r.texts),
            r.texts_per_s,
            1e6 / r.texts_per_s,
            lexical.tag()
        );
        if let Some((r, fit)) = classifier_row(path, args.mixed_count, reps)? {
            println!(
                "{:<6} {:<12} {:>10.1} texts/s {:>8.1} µs per text (one thread; fitted on them in {:.2} s)",
                "clf",
                format!("{} texts", r.texts),
                r.texts_per_s,
                1e6 / r.texts_per_s,
                fit
            );
            rows.push(r);
        }
    }
    if let Some(path) = &args.json {
        let report = serde_json::json!({
            "implementation": "detective",
            "encoder": encoder.id().to_string(),
            "precision": encoder.precision(),
            "matmul_peak_gflops": peak,
            "threads": tch::get_num_threads(),
            "reps": reps,
            "rows": rows,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn fixed(encoder: &Encoder, batch: usize, length: usize, reps: usize) -> Row {
    let vocab = encoder.model_config().vocab_size;
    let _guard = tch::no_grad_guard();
    tch::manual_seed(17);
    let ids = Tensor::randint_low(
        1000,
        vocab.min(29000),
        [batch as i64, length as i64],
        (Kind::Int64, Device::Cpu),
    )
    .to_device(encoder.device());
    let mask = ids.ones_like();
    let _ = encoder.forward(&ids, &mask, false); // warm-up
    let secs = median_secs(reps, || {
        let _ = encoder.forward(&ids, &mask, false).to_device(Device::Cpu);
    });
    let tokens = (batch * length) as u64;
    let flops = encoder.model_config().flops(tokens, length as u64);
    row("fixed", batch, length, batch, tokens, secs, flops)
}

fn mixed(
    encoder: &Encoder,
    path: &std::path::Path,
    count: usize,
    reps: usize,
) -> anyhow::Result<Row> {
    let records = Reader::open(Some(path))?.next_chunk(count)?;
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    let seqs = encoder.tokenize(&texts)?;
    let tokens: u64 = seqs.iter().map(|s| s.len() as u64).sum();
    let flops: u64 = seqs
        .iter()
        .map(|s| encoder.model_config().flops(s.len() as u64, s.len() as u64))
        .sum();
    let _ = encoder.embed(&texts[..texts.len().min(8)])?; // warm-up
    let mut failed = None;
    let secs = median_secs(reps, || {
        if let Err(e) = encoder.embed(&texts) {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(row("mixed", 0, 0, texts.len(), tokens, secs, flops))
}

/// The lexical view alone over the same texts, on one thread.
fn lexical_row(
    lexical: Lexical,
    path: &std::path::Path,
    count: usize,
    reps: usize,
) -> anyhow::Result<Row> {
    let records = Reader::open(Some(path))?.next_chunk(count)?;
    let mut out = vec![0f32; lexical.dim];
    let secs = median_secs(reps, || {
        for r in &records {
            lexical.add_to(&r.text, &mut out);
        }
    });
    Ok(row("lexical", 0, 0, records.len(), 0, secs, 0))
}

/// The reference-fitted classifier's probability over the same texts, on one
/// thread, fitted on them (their labels); `None` when they hold one label
/// only. Also returns the fit's seconds.
fn classifier_row(
    path: &std::path::Path,
    count: usize,
    reps: usize,
) -> anyhow::Result<Option<(Row, f64)>> {
    use crate::detect::classifier::{Classifier, ClassifierConfig};
    use crate::store::Label;
    let records = Reader::open(Some(path))?.next_chunk(count)?;
    let labelled: Vec<(&str, Label)> = records
        .iter()
        .filter_map(|r| {
            let label = r.object.as_ref()?.get("label")?.as_str()?;
            Some((r.text.as_str(), label.parse::<Label>().ok()?))
        })
        .collect();
    let (texts, labels): (Vec<&str>, Vec<Label>) = labelled.into_iter().unzip();
    let started = std::time::Instant::now();
    let Some(model) = Classifier::fit(&texts, &labels, &ClassifierConfig::default()) else {
        return Ok(None);
    };
    let fit = started.elapsed().as_secs_f64();
    let secs = median_secs(reps, || {
        for t in &texts {
            std::hint::black_box(model.predict(t));
        }
    });
    Ok(Some((
        row("classifier", 0, 0, texts.len(), 0, secs, 0),
        fit,
    )))
}

fn row(
    workload: &str,
    batch: usize,
    length: usize,
    texts: usize,
    tokens: u64,
    secs: f64,
    flops: u64,
) -> Row {
    Row {
        workload: workload.into(),
        batch,
        length,
        texts,
        tokens,
        seconds: secs,
        texts_per_s: texts as f64 / secs,
        tokens_per_s: tokens as f64 / secs,
        gflops: flops as f64 / secs / 1e9,
        peak_fraction: 0.0,
    }
}

impl Row {
    fn of_peak(mut self, peak: f64) -> Self {
        self.peak_fraction = self.gflops / peak;
        self
    }
}

/// GFLOP/s of a square matrix product in `precision` (int8: int8 x int8
/// into int32, the product the int8 path runs), median of `reps`.
fn matmul_peak(precision: Precision, device: Device, reps: usize) -> f64 {
    const N: i64 = 2048;
    let _guard = tch::no_grad_guard();
    tch::manual_seed(3);
    let (a, b) = match precision {
        Precision::Int8 => {
            let r = || Tensor::randint_low(-127, 127, [N, N], (Kind::Int8, device));
            (r(), r())
        }
        p => {
            let kind = match p {
                Precision::Bf16 => Kind::BFloat16,
                _ => Kind::Float,
            };
            let r = || Tensor::randn([N, N], (Kind::Float, device)).to_kind(kind);
            (r(), r())
        }
    };
    let product = || match precision {
        Precision::Int8 => a.internal_int_mm(&b),
        _ => a.matmul(&b),
    };
    let _ = product(); // warm-up
    let secs = median_secs(reps, || {
        let _ = product().to_device(Device::Cpu);
    });
    2.0 * (N * N * N) as f64 / secs / 1e9
}

fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn print_row(r: &Row) {
    let shape = if r.workload == "fixed" {
        format!("b={:<3} L={:<4}", r.batch, r.length)
    } else {
        format!("{} texts ", r.texts)
    };
    println!(
        "{:<6} {:<12} {:>10.1} texts/s {:>10.0} tokens/s {:>8.1} GFLOP/s {:>5.0}% of peak",
        r.workload,
        shape,
        r.texts_per_s,
        r.tokens_per_s,
        r.gflops,
        100.0 * r.peak_fraction
    );
}

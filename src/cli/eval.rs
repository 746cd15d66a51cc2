//! `detective eval`: references from labelled files, a scored test file,
//! metrics with breakdowns, a JSON report, a Markdown table and a plot.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::common::{all_rows, bar_progress, open_store, redact, runtime, IndexArgs, StoreArgs};
use super::input::progress;
use super::EncoderArgs;
use crate::detect::calibrate::calibrate_on;
use crate::detect::{check_encoder, seed};
use crate::encoder::{Embed, Encoder};
use crate::eval::generalization::{leave_family_out, Generalization, Plan};
use crate::eval::report::ReportInput;
use crate::eval::{load_set, plot, score, EvalOptions, LabelledSet, Report};
use crate::index::IndexKind;
use crate::store::VectorRow;

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub encoder: EncoderArgs,
    #[command(flatten)]
    pub index: IndexArgs,
    /// Reference files (JSONL, corpus format), comma-separated.
    #[arg(long, value_delimiter = ',', required_unless_present = "db")]
    pub refs: Vec<PathBuf>,
    /// Also use the references of this store (seeded with the default
    /// references when empty): a SQLite path or postgres:// URL.
    #[arg(long)]
    pub db: Option<String>,
    /// The file to score.
    #[arg(long)]
    pub test: PathBuf,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the Markdown tables here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Draw the ROC curve and validation AvgRec by k (SVG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Use this k instead of the one calibrated on validation.
    #[arg(long)]
    pub k: Option<usize>,
    /// Share of reference groups held out for calibration.
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Most validation texts.
    #[arg(long, default_value_t = 3000)]
    pub max_val: usize,
    /// Embedding cache folder.
    #[arg(long, default_value = ".cache/embeddings")]
    pub cache: PathBuf,
    /// Do not read or write the embedding cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Instead of one report, the leave-one-family-out benchmark over these
    /// machine families (comma-separated): each scored without references
    /// of its family, then with --adapt-count of them added.
    #[arg(long, value_delimiter = ',')]
    pub leave_family_out: Vec<String>,
    /// Labelled file the added references of each fold come from (never
    /// the scored file; texts also in it are skipped).
    #[arg(long, requires = "leave_family_out")]
    pub adapt_from: Option<PathBuf>,
    /// References of the unseen family added per fold.
    #[arg(long, default_value_t = 100)]
    pub adapt_count: usize,
}

fn read_records(path: &std::path::Path) -> anyhow::Result<Vec<crate::store::NewReference>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            crate::detect::import::parse_record(l, "eval")
                .map_err(|e| anyhow::anyhow!("{}: line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

fn generalization(
    args: &EvalArgs,
    encoder: &Encoder,
    rows: &[VectorRow],
    test: &LabelledSet,
    opts: &EvalOptions,
) -> anyhow::Result<()> {
    let pool = match &args.adapt_from {
        Some(p) => read_records(p)?,
        None => Vec::new(),
    };
    let folds = leave_family_out(
        rows,
        test,
        &Plan {
            families: &args.leave_family_out,
            adapt_pool: &pool,
            adapt_count: args.adapt_count,
        },
        encoder,
        opts,
        &|family| eprintln!("fold: {family} unseen"),
    )?;
    let report = Generalization::new(
        encoder.id().to_string(),
        rows.len(),
        args.test.display().to_string(),
        folds,
    );
    let md = report.markdown();
    println!("{md}");
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &args.markdown {
        std::fs::write(p, &md).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

fn load(
    path: &std::path::Path,
    encoder: &Encoder,
    cache: Option<&std::path::Path>,
) -> anyhow::Result<LabelledSet> {
    let bar = progress(None, "texts embedded");
    let set = load_set(path, encoder, cache, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .with_context(|| format!("cannot load {}", path.display()))?;
    bar.finish_and_clear();
    eprintln!("{}: {} records", path.display(), set.records.len());
    Ok(set)
}

/// The active references of a store, seeded with the defaults if empty.
fn store_rows(db: &str, encoder: &Encoder) -> anyhow::Result<Vec<VectorRow>> {
    runtime()?.block_on(async {
        let store = open_store(&StoreArgs { db: db.to_owned() }).await?;
        let seeded = seed::if_empty(
            store.as_ref(),
            encoder,
            &bar_progress("default references embedded"),
        )
        .await?;
        if seeded > 0 {
            eprintln!("store seeded with {seeded} default references");
        }
        check_encoder(store.as_ref(), encoder.id()).await?;
        let rows = all_rows(store.as_ref()).await?;
        eprintln!("store {}: {} references", redact(db), rows.len());
        Ok(rows)
    })
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let encoder = Encoder::load(&args.encoder.to_config()?)
        .with_context(|| format!("cannot load model {:?}", args.encoder.model))?;
    let cache = (!args.no_cache).then_some(args.cache.as_path());
    let started = Instant::now();
    let mut rows = match &args.db {
        Some(db) => store_rows(db, &encoder)?,
        None => Vec::new(),
    };
    for path in &args.refs {
        let set = load(path, &encoder, cache)?;
        let offset = rows.iter().map(|r| r.id).max().unwrap_or(0);
        rows.extend(set.rows().into_iter().map(|mut r| {
            r.id += offset;
            r
        }));
    }
    let test = load(&args.test, &encoder, cache)?;
    let embedded = started.elapsed();
    let kind = args.index.kind(rows.len())?;
    let opts = EvalOptions {
        index: kind,
        k: args.k,
        val_fraction: args.val_fraction,
        max_val: args.max_val,
        cache_dir: cache.map(PathBuf::from),
        ..EvalOptions::default()
    };
    if !args.leave_family_out.is_empty() {
        return generalization(args, &encoder, &rows, &test, &opts);
    }
    let cal = calibrate_on(&rows, encoder.dim(), &opts.calibration())?;
    eprintln!(
        "calibrated on {} validation texts: k = {}",
        cal.validation_size, cal.k
    );
    let t = Instant::now();
    let verdicts = score(&rows, &test, encoder.dim(), &cal, &opts)?;
    let scoring = t.elapsed();
    let report = Report::build(ReportInput {
        encoder: encoder.id().to_string(),
        references: args
            .db
            .iter()
            .map(|db| format!("store {}", redact(db)))
            .chain(args.refs.iter().map(|p| p.display().to_string()))
            .collect(),
        test: args.test.display().to_string(),
        index: match kind {
            IndexKind::Exact => "exact".into(),
            IndexKind::Hnsw(p) => format!(
                "hnsw(m={}, ef_construction={}, ef_search={})",
                p.m, p.ef_construction, p.ef_search
            ),
        },
        reference_count: rows.len(),
        records: &test.records,
        verdicts: &verdicts,
        calibration: cal,
    });
    let md = report.markdown();
    println!("{md}");
    eprintln!(
        "embedding {:.1} s, calibration + scoring {:.1} s ({} texts)",
        embedded.as_secs_f64(),
        scoring.as_secs_f64(),
        test.records.len()
    );
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &args.markdown {
        std::fs::write(p, &md).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &args.plot {
        let svg = plot::svg(
            &report.roc,
            report.summary.auroc,
            &report.calibration.avg_rec_by_k,
        );
        std::fs::write(p, svg).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

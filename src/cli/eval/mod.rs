//! `detective eval`: references from labelled files, a scored test file,
//! metrics with breakdowns, a JSON report, a Markdown table and a plot.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::common::{all_rows, bar_progress, open_store, redact, runtime, IndexArgs, StoreArgs};
use super::input::progress;
use super::EncoderArgs;
use crate::detect::{check_encoder, seed, Languages};
use crate::encoder::registry;
use crate::encoder::{Embed, Encoder, Styled};
use crate::eval::generalization::{leave_family_out, Generalization, Plan};
use crate::eval::report::ReportInput;
use crate::eval::{load_set, plot, score, EvalOptions, LabelledSet, Report};
use crate::index::IndexKind;
use crate::store::VectorRow;
use crate::train::checkpoint::TrainedOn;

mod view;

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
    #[arg(long, required_unless_present_any = ["choose_view", "classifier_cs"])]
    pub test: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the Markdown tables here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Draw the ROC curve and validation AvgRec by k (SVG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write one JSON line per scored text here (its position among the
    /// file's records, group, true label, family, domain, the majority and
    /// its votes, the neighbours' score, the classifier's probability and
    /// the blended score), for analyses the report does not make.
    #[arg(long)]
    pub scores: Option<PathBuf>,
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
    /// Instead of scoring a file, compare style views on a validation split
    /// of the references alone (in distribution, each --leave-family-out
    /// family unseen, and with --adapt-count of its references added back)
    /// and name the best.
    #[arg(long)]
    pub choose_view: bool,
    /// Cross-validate the classifier's regularisation C over these values
    /// on the references alone (each large domain and machine family held
    /// out in turn) and name the best; no --test needed.
    #[arg(long, value_delimiter = ',')]
    pub classifier_cs: Vec<f64>,
    /// With --classifier-cs: how many common words the classifier's masked
    /// character block keeps, each value tried with each C (0: no masked
    /// block; default: the shipped value alone).
    #[arg(long, value_delimiter = ',', requires = "classifier_cs")]
    pub classifier_keep_words: Vec<usize>,
    /// With --choose-view: domains left out of the references in turn
    /// (comma-separated), each scored on its validation texts, then with
    /// --adapt-count of its references added back.
    #[arg(long, value_delimiter = ',', requires = "choose_view")]
    pub leave_domain_out: Vec<String>,
    /// Labelled texts that only validate --choose-view, never as
    /// references (for example the training corpus): those in the
    /// validation split are embedded and scored with the references' own.
    #[arg(long, requires = "choose_view")]
    pub val_from: Option<PathBuf>,
    /// Lexical dimensions compared by --choose-view (0: neural view alone).
    #[arg(long, value_delimiter = ',', default_value = "0,1024,2048,4096")]
    pub lexical_dims: Vec<usize>,
    /// Lexical centres compared by --choose-view (0: uncentred; see
    /// --lexical-centre).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub lexical_centres: Vec<f32>,
    /// Neural weights compared by --choose-view.
    #[arg(long, value_delimiter = ',', default_value = "0,0.2,0.3,0.4,0.5,0.7")]
    pub alphas: Vec<f32>,
    /// Classifier weights compared by --choose-view (0: the vote alone).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub classifier_weights: Vec<f64>,
    /// Candidate weights of each reference's hubness (mean similarity to
    /// its nearest other references) subtracted from its similarity when
    /// ranking neighbours; validation picks one (0: plain similarity).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub hubness: Vec<f32>,
    /// Candidate group votes: the label of the closest group of references
    /// (human texts; each model's texts), a group's closeness the mean
    /// similarity of its M nearest members. Validation picks one where it
    /// beats the majority of the k nearest (0: the majority only).
    #[arg(long, value_delimiter = ',', default_value = "3,5")]
    pub group_vote: Vec<usize>,
    /// What a machine text's group is in the group vote: its model, or its
    /// family (a family's models pool their references).
    #[arg(long, value_enum, default_value = "model")]
    pub group_by: crate::detect::group_vote::GroupBy,
    /// Whether the group vote's margin is weighed against the classifier's
    /// log-odds by a rule fitted on validation: never, where the rule beats
    /// the group vote alone on validation (the default, as the service), or
    /// always.
    #[arg(long, value_enum, default_value = "validated")]
    pub blend_rule: crate::detect::blend_rule::BlendRuleMode,
    /// Languages verdicts are given for (as `serve --languages`): scored
    /// texts in others abstain and count as not machine.
    #[arg(long, default_value = "eng")]
    pub languages: String,
    /// What a scored text unlike every reference gets (as `serve
    /// --novel`): abstain (counted as not machine) or flag.
    #[arg(long, default_value = "abstain")]
    pub novel: String,
    /// Calibrate on a share of all reference groups even where the
    /// references hold enough texts the encoder's training held out (to
    /// measure what validating on unseen texts changes).
    #[arg(long)]
    pub no_held_out: bool,
    /// The segment benchmark instead of whole texts: this many mixed texts
    /// built from --test (and as many pure human ones), read in windows
    /// as `POST /detect` with `segments` does.
    #[arg(long, default_value_t = 0)]
    pub segments: usize,
    /// Seed of the texts the segment benchmark builds.
    #[arg(long, default_value_t = 7)]
    pub segments_seed: u64,
}

/// Writes the JSON report and the Markdown tables where asked.
fn write_reports(args: &EvalArgs, json: &impl serde::Serialize, md: &str) -> anyhow::Result<()> {
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_vec_pretty(json)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &args.markdown {
        std::fs::write(p, md).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

/// One JSON line per scored text (see `--scores`).
fn write_scores(
    path: &std::path::Path,
    records: &[crate::store::NewReference],
    verdicts: &[crate::detect::Verdict],
    abstained: &[Option<crate::detect::Cause>],
    blend: f64,
) -> anyhow::Result<()> {
    use std::io::Write;
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for (i, ((r, v), a)) in records.iter().zip(verdicts).zip(abstained).enumerate() {
        let line = crate::eval::score_line(i + 1, r, v, *a, blend);
        writeln!(out, "{line}")?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))
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
    test_path: &std::path::Path,
    encoder: &Styled<Encoder>,
    rows: &[VectorRow],
    texts: &[&str],
    test: &LabelledSet,
    opts: &EvalOptions,
) -> anyhow::Result<()> {
    let pool = match &args.adapt_from {
        Some(p) => read_records(p)?,
        None => Vec::new(),
    };
    // The lexical view alone (α = 0) votes with no trained weights.
    let view = encoder.view();
    let trained_on = if view.lexical.is_some() && view.alpha == 0.0 {
        TrainedOn::Nothing
    } else {
        TrainedOn::families_of(&registry::resolve(&args.encoder.model)?.dir)
    };
    let folds = leave_family_out(
        rows,
        test,
        &Plan {
            families: &args.leave_family_out,
            adapt_pool: &pool,
            adapt_count: args.adapt_count,
            trained_on: &trained_on,
            texts,
        },
        encoder,
        opts,
        &|family| eprintln!("fold: {family} unseen"),
    )?;
    let report = Generalization::new(
        encoder.id().to_string(),
        rows.len(),
        test_path.display().to_string(),
        folds,
    );
    let md = report.markdown();
    println!("{md}");
    write_reports(args, &report, &md)
}

/// `--classifier-cs`: the classifier's C (and masked block) cross-validated
/// on the references.
fn classifier_cv(
    args: &EvalArgs,
    rows: &[VectorRow],
    texts: &[&str],
    domains: &[Option<String>],
) -> anyhow::Result<()> {
    use crate::eval::classifier_cv::{cross_validate, Candidate, CvInput, MIN_FOLD};
    let labels: Vec<_> = rows.iter().map(|r| r.label).collect();
    let families: Vec<_> = rows.iter().map(|r| r.family.clone()).collect();
    let keep_words = if args.classifier_keep_words.is_empty() {
        vec![Candidate::default_setting().keep_words]
    } else {
        args.classifier_keep_words.clone()
    };
    let bar = progress(None, "classifier fits");
    let report = cross_validate(
        &CvInput {
            texts,
            labels: &labels,
            domains,
            families: &families,
        },
        &Candidate::grid(&args.classifier_cs, &keep_words),
        MIN_FOLD,
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    );
    bar.finish_and_clear();
    let md = report.markdown();
    println!("{md}");
    write_reports(args, &report, &md)
}

/// A labelled file's neural vectors (cached per neural encoder, so views
/// can be compared without re-embedding).
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

type Labelled = (Vec<VectorRow>, Vec<String>, Vec<Option<String>>);

/// The active references of a store (seeded with the defaults if empty) in
/// `encoder`'s neural space, with their texts and (if `domains`) domains.
fn store_rows(db: &str, encoder: &Encoder, domains: bool) -> anyhow::Result<Labelled> {
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
        let mut texts = crate::detect::supervised::texts(store.as_ref()).await?;
        let texts = rows
            .iter()
            .map(|r| texts.remove(&r.id).unwrap_or_default())
            .collect();
        let mut domain_of = Vec::new();
        if domains {
            for r in &rows {
                domain_of.push(store.get(r.id).await?.and_then(|r| r.domain));
            }
        }
        eprintln!("store {}: {} references", redact(db), rows.len());
        Ok((rows, texts, domain_of))
    })
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let languages =
        Languages::parse(&args.languages).map_err(|e| anyhow::anyhow!("--languages: {e}"))?;
    let encoder = args.encoder.load()?;
    let cache = (!args.no_cache).then_some(args.cache.as_path());
    let started = Instant::now();
    let with_domains =
        (args.choose_view && !args.leave_domain_out.is_empty()) || !args.classifier_cs.is_empty();
    let (mut rows, mut texts, mut domains) = match &args.db {
        Some(db) => store_rows(db, encoder.inner(), with_domains)?,
        None => Default::default(),
    };
    for path in &args.refs {
        let set = load(path, encoder.inner(), cache)?;
        let offset = rows.iter().map(|r| r.id).max().unwrap_or(0);
        rows.extend(set.rows().into_iter().map(|mut r| {
            r.id += offset;
            r
        }));
        if with_domains {
            domains.extend(set.records.iter().map(|r| r.domain.clone()));
        }
        texts.extend(set.records.into_iter().map(|r| r.text));
    }
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    if args.choose_view {
        return view::choose_view(args, &encoder, &rows, &texts, domains);
    }
    if !args.classifier_cs.is_empty() {
        return classifier_cv(args, &rows, &texts, &domains);
    }
    let view = encoder.view();
    let fused = view.finish(&texts, rows.iter().map(|r| r.embedding.clone()).collect());
    for (r, v) in rows.iter_mut().zip(fused) {
        r.embedding = v;
    }
    let test_path = args
        .test
        .as_deref()
        .context("--test is required (except with --choose-view or --classifier-cs)")?;
    let mut test = load(test_path, encoder.inner(), cache)?;
    let test_texts: Vec<&str> = test.records.iter().map(|r| r.text.as_str()).collect();
    test.vectors = view.finish(&test_texts, std::mem::take(&mut test.vectors));
    let embedded = started.elapsed();
    let kind = args.index.kind(rows.len())?;
    let opts = EvalOptions {
        index: kind,
        k: args.k,
        val_fraction: args.val_fraction,
        max_val: args.max_val,
        cache_dir: cache.map(PathBuf::from),
        blend: args.index.classifier_weight()?,
        held_out: encoder.held_out().filter(|_| !args.no_held_out),
        hubness: args.hubness.clone(),
        groups: args.group_vote.iter().copied().filter(|&m| m > 0).collect(),
        group_by: args.group_by,
        blend_rule: args.blend_rule,
        novelty: crate::detect::NoveltyPolicy::parse(&args.novel)
            .map_err(|e| anyhow::anyhow!("--novel: {e}"))?,
        ..EvalOptions::default()
    };
    if !args.leave_family_out.is_empty() {
        return generalization(args, test_path, &encoder, &rows, &texts, &test, &opts);
    }
    let cal = opts.calibrate(&rows, &texts, encoder.dim())?;
    eprintln!(
        "calibrated on {} validation texts{}: k = {}, hubness weight {}, group vote {}",
        cal.validation_size,
        if cal.held_out {
            " held out of the encoder's training"
        } else {
            ""
        },
        cal.k,
        cal.hubness,
        cal.groups.map_or("no".to_owned(), |m| format!(
            "m = {m}, one group per {}",
            cal.group_by.as_str()
        ))
    );
    if args.segments > 0 {
        let bar = progress(None, "windows embedded");
        let report = crate::eval::segments::bench(
            &test.records,
            args.segments,
            args.segments_seed,
            &encoder,
            encoder.inner().tokenizer(),
            (&rows, &texts),
            &cal,
            &opts,
            &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            },
        )?;
        bar.finish_and_clear();
        let md = report.markdown();
        println!("{md}");
        return write_reports(args, &report, &md);
    }
    let t = Instant::now();
    let mut verdicts = score(&rows, &test, encoder.dim(), &cal, &opts)?;
    crate::eval::blend(&mut verdicts, &rows, &texts, &test.records, opts.blend);
    // The per-text scores show each verdict as it was before abstaining.
    let before = args.scores.is_some().then(|| verdicts.clone());
    let abstained =
        crate::eval::abstain(&mut verdicts, &test.records, Some(&languages), opts.novelty);
    let scoring = t.elapsed();
    let report = Report::build(ReportInput {
        encoder: encoder.id().to_string(),
        references: args
            .db
            .iter()
            .map(|db| format!("store {}", redact(db)))
            .chain(args.refs.iter().map(|p| p.display().to_string()))
            .collect(),
        test: test_path.display().to_string(),
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
        abstained: &abstained,
    });
    let md = report.markdown();
    println!("{md}");
    eprintln!(
        "embedding {:.1} s, calibration + scoring {:.1} s ({} texts)",
        embedded.as_secs_f64(),
        scoring.as_secs_f64(),
        test.records.len()
    );
    write_reports(args, &report, &md)?;
    if let Some(p) = &args.scores {
        let scored = before.as_deref().unwrap_or(&verdicts);
        write_scores(p, &test.records, scored, &abstained, opts.blend)?;
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

//! `detective import FILE.jsonl`: bulk-load labelled references.
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::common::{all_rows, open_store, runtime, IndexArgs, StoreArgs};
use super::input::{count_records, progress};
use super::EncoderArgs;
use crate::detect::calibrate;
use crate::detect::check_encoder;
use crate::detect::import::{import, ImportOptions};
use crate::encoder::Embed;

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub encoder: EncoderArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub index: IndexArgs,
    /// JSONL records: text, label (human/machine), model, family, source, domain, attack, lang, group.
    pub file: PathBuf,
    /// Records per transaction.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Skip (and count) malformed records instead of stopping.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Recorded as the adder of every reference.
    #[arg(long, default_value = "import")]
    pub added_by: String,
    /// Do not recompute the calibration afterwards.
    #[arg(long)]
    pub no_calibrate: bool,
}

pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let encoder = args.encoder.load()?;
    let opts = ImportOptions {
        batch: args.batch,
        skip_invalid: args.skip_invalid,
        added_by: args.added_by.clone(),
    };
    let bar = progress(count_records(Some(&args.file)), "records");
    let started = std::time::Instant::now();
    runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        check_encoder(store.as_ref(), encoder.id()).await?;
        let report = import(BufReader::new(file), store.as_ref(), &encoder, &opts, |r| {
            bar.set_position(r.records as u64)
        })
        .await
        .with_context(|| format!("import of {} stopped", args.file.display()))?;
        bar.finish_and_clear();
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{} records: {} added, {} already stored, {} invalid skipped ({:.1} s, {:.1} added/s)",
            report.records,
            report.inserted,
            report.already_stored,
            report.invalid,
            secs,
            report.inserted as f64 / secs.max(1e-9)
        );
        if !args.no_calibrate && report.inserted > 0 {
            let rows = all_rows(store.as_ref()).await?;
            let kind = args.index.kind(rows.len())?;
            if let Some(cal) = calibrate::refresh(
                store.as_ref(),
                encoder.id(),
                encoder.dim(),
                &rows,
                kind,
                args.index.classifier_weight()?,
                encoder.held_out(),
            )
            .await?
            {
                eprintln!(
                    "calibrated on {} validation texts: k = {}",
                    cal.validation_size, cal.k
                );
            }
        }
        Ok(())
    })
}

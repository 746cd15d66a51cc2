//! `detective reindex`: re-embed every stored reference with the running
//! encoder (after changing model or max_length), then recalibrate.
use clap::Args;

use super::common::{all_rows, open_store, runtime, IndexArgs, StoreArgs};
use super::input::progress;
use super::EncoderArgs;
use crate::detect::calibrate;
use crate::encoder::Embed;

#[derive(Debug, Args)]
pub struct ReindexArgs {
    #[command(flatten)]
    pub encoder: EncoderArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub index: IndexArgs,
}

pub fn run(args: &ReindexArgs) -> anyhow::Result<()> {
    let encoder = args.encoder.load()?;
    runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        let total = store.counts().await?.total;
        let bar = progress(Some(total as u64), "references re-embedded");
        let mut after = 0;
        loop {
            let page = store.texts(after, 256).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.0;
            let texts: Vec<&str> = page.iter().map(|(_, t)| t.as_str()).collect();
            let vectors = encoder.embed(&texts)?;
            let rows: Vec<(i64, Vec<f32>)> = page.iter().map(|(id, _)| *id).zip(vectors).collect();
            store.set_embeddings(&rows, encoder.id()).await?;
            bar.inc(rows.len() as u64);
        }
        bar.finish_and_clear();
        let rows = all_rows(store.as_ref()).await?;
        calibrate::refresh(
            store.as_ref(),
            encoder.id(),
            encoder.dim(),
            &rows,
            args.index.kind(rows.len())?,
            args.index.classifier_weight()?,
            encoder.held_out(),
        )
        .await?;
        eprintln!(
            "{} references re-embedded with {}",
            rows.len(),
            encoder.id()
        );
        Ok(())
    })
}

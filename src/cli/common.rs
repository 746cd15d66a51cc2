//! Flags and set-up shared by the commands that use the store and index.
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::detect::{seed, Calibration, References};
use crate::encoder::{Embed, Encoder};
use crate::eval::{calibrate_on, EvalOptions};
use crate::index::{HnswParams, IndexKind};
use crate::store::{Store, VectorRow};

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Reference store: a SQLite file path, sqlite://PATH or postgres://URL.
    #[arg(long = "db", env = "DATABASE_URL", default_value = "detective.db")]
    pub db: String,
}

#[derive(Debug, Clone, Args)]
pub struct IndexArgs {
    /// exact, hnsw, or auto (exact below 10,000 references).
    #[arg(long, env = "DETECTIVE_INDEX", default_value = "auto")]
    pub index: String,
    /// Use exact search (same as --index exact).
    #[arg(long)]
    pub exact: bool,
    /// HNSW links per node.
    #[arg(long, env = "DETECTIVE_HNSW_M", default_value_t = HnswParams::default().m)]
    pub hnsw_m: usize,
    /// HNSW candidate list while building.
    #[arg(long, env = "DETECTIVE_HNSW_EF_CONSTRUCTION", default_value_t = HnswParams::default().ef_construction)]
    pub ef_construction: usize,
    /// HNSW candidate list while searching (raised to k when smaller).
    #[arg(long, env = "DETECTIVE_HNSW_EF_SEARCH", default_value_t = HnswParams::default().ef_search)]
    pub ef_search: usize,
}

impl IndexArgs {
    pub fn kind(&self, references: usize) -> anyhow::Result<IndexKind> {
        let hnsw = IndexKind::Hnsw(HnswParams {
            m: self.hnsw_m,
            ef_construction: self.ef_construction,
            ef_search: self.ef_search,
        });
        match (self.exact, self.index.as_str()) {
            (true, _) | (false, "exact") => Ok(IndexKind::Exact),
            (false, "hnsw") => Ok(hnsw),
            (false, "auto") if references < 10_000 => Ok(IndexKind::Exact),
            (false, "auto") => Ok(hnsw),
            (false, other) => anyhow::bail!("--index must be exact, hnsw or auto, not {other:?}"),
        }
    }
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub async fn open_store(args: &StoreArgs) -> anyhow::Result<Arc<dyn Store>> {
    crate::store::open(&args.db)
        .await
        .with_context(|| format!("cannot open store {}", redact(&args.db)))
}

/// A URL with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}://{}:***@{}", &url[..s], &creds[..c], &url[at + 1..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Every active reference with its vector.
pub async fn all_rows(store: &dyn Store) -> anyhow::Result<Vec<VectorRow>> {
    Ok(crate::detect::live::all_rows(store).await?)
}

/// Fills an empty store with the shipped default references, using the
/// shipped embeddings when they were made by this encoder.
pub async fn seed_if_empty(store: &dyn Store, encoder: &Encoder) -> anyhow::Result<()> {
    let counts = store.counts().await?;
    if counts.total > 0 || counts.deleted > 0 {
        return Ok(());
    }
    let dir = seed::default_dir();
    let texts = match seed::load_texts(&dir) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "no default references");
            return Ok(());
        }
    };
    let vectors = match seed::load_embeddings(&dir, encoder.id(), texts.len(), encoder.dim()) {
        Some(v) => v,
        None => {
            eprintln!(
                "embedding {} default references with {} (no shipped embeddings for this encoder)",
                texts.len(),
                encoder.id()
            );
            let bar = super::input::progress(Some(texts.len() as u64), "texts");
            let mut out = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(256) {
                let t: Vec<&str> = chunk.iter().map(|r| r.text.as_str()).collect();
                out.extend(encoder.embed(&t)?);
                bar.inc(chunk.len() as u64);
            }
            bar.finish_and_clear();
            out
        }
    };
    for (items, vecs) in texts.chunks(1024).zip(vectors.chunks(1024)) {
        store.insert(items, vecs, encoder.id()).await?;
    }
    eprintln!("store seeded with {} default references", texts.len());
    Ok(())
}

/// The stored calibration for this encoder, computed and saved if missing
/// (or if `refresh`).
pub async fn calibration(
    store: &dyn Store,
    encoder: &dyn Embed,
    rows: &[VectorRow],
    kind: IndexKind,
    refresh: bool,
) -> anyhow::Result<Option<Calibration>> {
    if !refresh {
        if let Some(body) = store.calibration(encoder.id()).await? {
            if let Ok(cal) = serde_json::from_str(&body) {
                return Ok(Some(cal));
            }
        }
    }
    if rows.len() < 20 {
        return Ok(None);
    }
    let opts = EvalOptions {
        index: kind,
        ..EvalOptions::default()
    };
    let cal = calibrate_on(rows, encoder.dim(), &opts)?;
    store
        .save_calibration(encoder.id(), &serde_json::to_string(&cal)?)
        .await?;
    Ok(Some(cal))
}

/// Builds the searchable reference set from rows, with a progress bar.
pub fn build_references(
    rows: &[VectorRow],
    dim: usize,
    kind: IndexKind,
) -> anyhow::Result<References> {
    let refs = References::new(kind, dim, rows.len());
    let bar = super::input::progress(Some(rows.len() as u64), "references indexed");
    for chunk in rows.chunks(2048) {
        refs.add(chunk)?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(refs)
}

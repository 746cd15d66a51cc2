//! Flags and set-up shared by the commands that use the store and index.
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use std::path::PathBuf;

use crate::detect::startup::{self, Opened, Progress};
use crate::encoder::Embed;
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
    /// exact, hnsw, or auto (exact below 50,000 references).
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
    /// Folder of index snapshots, loaded at start-up instead of rebuilding
    /// the index: auto (next to a SQLite file; none for PostgreSQL), none
    /// (or off), or a path (on local disk, one per replica).
    #[arg(long, env = "DETECTIVE_SNAPSHOT_DIR", default_value = "auto")]
    pub snapshot_dir: String,
    /// Weight (0-1) of the classifier (word and character n-grams, fitted
    /// on the references) in the score; 0: the neighbours' score alone, and
    /// the label the neighbours' decision. Above 0, calibration also weighs
    /// the group vote's margin against the classifier where that wins on
    /// validation.
    #[arg(long, env = "DETECTIVE_CLASSIFIER_WEIGHT", default_value_t = crate::detect::classifier::DEFAULT_WEIGHT)]
    pub classifier_weight: f64,
}

/// The file of a SQLite store URL or path (without `sqlite://` or query
/// options); `None` for PostgreSQL and in-memory stores.
pub fn sqlite_file(db: &str) -> Option<&str> {
    let path = db.strip_prefix("sqlite://").unwrap_or(db);
    let file = path.split('?').next().unwrap_or(path);
    (!db.starts_with("postgres") && !file.is_empty() && !file.contains(":memory:")).then_some(file)
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
            (false, "auto") if references < 50_000 => Ok(IndexKind::Exact),
            (false, "auto") => Ok(hnsw),
            (false, other) => anyhow::bail!("--index must be exact, hnsw or auto, not {other:?}"),
        }
    }
}

impl IndexArgs {
    /// The classifier's weight in the score, checked.
    pub fn classifier_weight(&self) -> anyhow::Result<f64> {
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.classifier_weight),
            "--classifier-weight must be between 0 and 1, not {}",
            self.classifier_weight
        );
        Ok(self.classifier_weight)
    }

    /// The snapshot folder for the store at `db`, if any.
    pub fn snapshot_dir(&self, db: &str) -> Option<PathBuf> {
        match self.snapshot_dir.as_str() {
            "none" | "off" | "" => None,
            "auto" => sqlite_file(db).map(|file| PathBuf::from(format!("{file}.index"))),
            dir => Some(PathBuf::from(dir)),
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

/// A progress callback `(done, total)` drawing a bar once work begins.
pub fn bar_progress(what: &'static str) -> impl Fn(u64, u64) {
    let bar = std::sync::OnceLock::<indicatif::ProgressBar>::new();
    move |done, total| {
        let b = bar.get_or_init(|| super::input::progress(Some(total), what));
        b.set_position(done);
        if done >= total {
            b.finish_and_clear();
        }
    }
}

/// Opens the reference set for voting (see [`startup::open`]) with progress
/// bars on stderr.
pub async fn open_references(
    store: &dyn Store,
    encoder: &dyn Embed,
    store_args: &StoreArgs,
    index: &IndexArgs,
) -> anyhow::Result<Opened> {
    let seeding = bar_progress("default references embedded");
    let indexing = bar_progress("references indexed");
    let snapshots = index.snapshot_dir(&store_args.db);
    let opened = startup::open(
        store,
        encoder,
        &|n| index.kind(n),
        snapshots.as_deref(),
        index.classifier_weight()?,
        &Progress {
            seeding: &seeding,
            indexing: &indexing,
        },
    )
    .await?;
    if opened.seeded > 0 {
        eprintln!("store seeded with {} default references", opened.seeded);
    }
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::IndexArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        index: IndexArgs,
    }

    fn dir(value: &str, db: &str) -> Option<std::path::PathBuf> {
        Cli::parse_from(["t", "--snapshot-dir", value])
            .index
            .snapshot_dir(db)
    }

    #[test]
    fn snapshot_dir_is_auto_none_off_or_a_path() {
        assert_eq!(
            dir("auto", "detective.db"),
            Some("detective.db.index".into())
        );
        assert_eq!(dir("auto", "postgres://u@h/d"), None);
        assert_eq!(dir("none", "detective.db"), None);
        assert_eq!(dir("off", "detective.db"), None);
        assert_eq!(dir("snaps", "detective.db"), Some("snaps".into()));
    }
}

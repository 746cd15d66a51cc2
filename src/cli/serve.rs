//! `detective serve`: the HTTP service. Listens first (so `/health`
//! answers during start-up), then loads the model and builds the index in
//! the background and marks itself ready.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::common::{open_references, open_store, redact, IndexArgs, StoreArgs};
use super::secrets::bootstrap_key;
use super::EncoderArgs;
use crate::api::{self, ApiConfig, AppState, Overlength};
use crate::detect::keys::KeyRing;
use crate::detect::live::{Live, SnapshotPolicy};
use crate::detect::startup::Origin;
use crate::detect::supervised::Supervised;
use crate::detect::{Decision, Detector};
use crate::encoder::{Embed, Encoder, EncoderHandle, WorkerConfig};
use crate::metrics;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub encoder: EncoderArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub index: IndexArgs,
    /// Address to listen on.
    #[arg(long, env = "DETECTIVE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Label reported as `label`: majority (the k-NN vote) or
    /// operating-point (the calibrated threshold for --target-fpr).
    #[arg(long, env = "DETECTIVE_DECISION", default_value = "majority")]
    pub decision: String,
    /// Languages verdicts are given for (ISO 639-3 or common two-letter
    /// codes, comma-separated, or any): texts identified as another
    /// language get `label: "unknown"` with a reason.
    #[arg(long, env = "DETECTIVE_LANGUAGES", default_value = "eng")]
    pub languages: String,
    /// What a text unlike every reference gets (its nearest reference less
    /// similar than 99% of validation texts of its length reach): abstain
    /// (`label: "unknown"` with a reason) or flag (a verdict with
    /// `novel: true`).
    #[arg(long, env = "DETECTIVE_NOVEL", default_value = "abstain")]
    pub novel: String,
    /// Operating point: target false-positive rate on human text.
    #[arg(long, env = "DETECTIVE_TARGET_FPR", default_value_t = 0.01)]
    pub target_fpr: f64,
    /// Neighbours that vote (default: the calibrated k).
    #[arg(long, env = "DETECTIVE_K")]
    pub k: Option<usize>,
    /// Allow POST /detect without an API key.
    #[arg(long, env = "DETECTIVE_OPEN_DETECT")]
    pub open_detect: bool,
    /// Most texts (or references) per request.
    #[arg(long, env = "DETECTIVE_MAX_ITEMS", default_value_t = 64)]
    pub max_items: usize,
    /// Most characters per text.
    #[arg(long, env = "DETECTIVE_MAX_TEXT_CHARS", default_value_t = 100_000)]
    pub max_text_chars: usize,
    /// Most bytes per request body.
    #[arg(long, env = "DETECTIVE_MAX_BODY_BYTES", default_value_t = 8 << 20)]
    pub max_body_bytes: usize,
    /// Requests served at once (health, readiness and metrics aside); more
    /// are answered 503 `overloaded` at once, before their bodies are read.
    #[arg(long, env = "DETECTIVE_MAX_CONCURRENT", default_value_t = 64)]
    pub max_concurrent: usize,
    /// Longest a request may run, in seconds, before it is answered 503
    /// `timeout` (0: no limit).
    #[arg(long, env = "DETECTIVE_REQUEST_TIMEOUT_SECONDS", default_value_t = 60)]
    pub request_timeout_seconds: u64,
    /// Most windows of sentences one request with `segments` may need
    /// (each is one more text to encode).
    #[arg(long, env = "DETECTIVE_MAX_SEGMENT_WINDOWS", default_value_t = 256)]
    pub max_segment_windows: usize,
    /// Largest k a request may ask for.
    #[arg(long, env = "DETECTIVE_MAX_K", default_value_t = 100)]
    pub max_k: usize,
    /// Texts longer than the model reads: truncate (and say so) or reject (422).
    #[arg(long, env = "DETECTIVE_OVERLENGTH", default_value = "truncate")]
    pub overlength: String,
    /// Requests that may wait for the model; more are answered 429.
    #[arg(long, env = "DETECTIVE_QUEUE_CAPACITY", default_value_t = 64)]
    pub queue_capacity: usize,
    /// Most tokens coalesced from queued requests into one encoder call.
    #[arg(long, env = "DETECTIVE_COALESCE_TOKENS", default_value_t = 32_768)]
    pub coalesce_tokens: usize,
    /// Longest wait between two reads of the store's change feed, in
    /// milliseconds (PostgreSQL also wakes replicas at once by notification).
    #[arg(long, env = "DETECTIVE_FEED_POLL_MS", default_value_t = 500)]
    pub feed_poll_ms: u64,
    /// Write an index snapshot once this many reference changes have been
    /// applied since the last (or, with any change, every 10 minutes).
    #[arg(long, env = "DETECTIVE_SNAPSHOT_EVERY", default_value_t = 10_000)]
    pub snapshot_every: i64,
    /// How long an answer about an API key is reused (a revoked key stops
    /// working within this time); 0 looks every key up on every request.
    #[arg(long, env = "DETECTIVE_KEY_CACHE_SECONDS", default_value_t = 5)]
    pub key_cache_seconds: u64,
    /// Bootstrap key with every scope, kept only in the environment (at
    /// least 24 characters). On the command line it shows in the process
    /// list: prefer the environment or --admin-key-file.
    #[arg(long, env = "DETECTIVE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// A file holding the bootstrap key (for example a mounted secret).
    #[arg(long, env = "DETECTIVE_ADMIN_KEY_FILE", conflicts_with = "admin_key")]
    pub admin_key_file: Option<PathBuf>,
    /// Where a fresh store's first admin key is written (owner-only file;
    /// never printed). Default: `detective-admin.key` beside a SQLite store,
    /// in the working directory for PostgreSQL.
    #[arg(long, env = "DETECTIVE_BOOTSTRAP_KEY_FILE")]
    pub bootstrap_key_file: Option<PathBuf>,
}

impl ServeArgs {
    fn api_config(&self) -> anyhow::Result<ApiConfig> {
        let overlength = match self.overlength.as_str() {
            "truncate" => Overlength::Truncate,
            "reject" => Overlength::Reject,
            other => anyhow::bail!("--overlength must be truncate or reject, not {other:?}"),
        };
        anyhow::ensure!(self.max_items > 0, "--max-items must be positive");
        anyhow::ensure!(self.max_text_chars > 0, "--max-text-chars must be positive");
        anyhow::ensure!(self.max_k > 0, "--max-k must be positive");
        anyhow::ensure!(self.queue_capacity > 0, "--queue-capacity must be positive");
        anyhow::ensure!(self.max_concurrent > 0, "--max-concurrent must be positive");
        Ok(ApiConfig {
            max_items: self.max_items,
            max_text_chars: self.max_text_chars,
            max_body_bytes: self.max_body_bytes,
            max_k: self.max_k,
            max_segment_windows: self.max_segment_windows,
            overlength,
            open_detect: self.open_detect,
            index_kind: self.index.index.clone(),
            max_concurrent: self.max_concurrent,
            request_timeout: (self.request_timeout_seconds > 0)
                .then(|| std::time::Duration::from_secs(self.request_timeout_seconds)),
        })
    }

    fn decision(&self) -> anyhow::Result<Decision> {
        Decision::parse(&self.decision).map_err(|e| anyhow::anyhow!("--decision: {e}"))
    }

    /// The configuration, one line, without secrets.
    fn describe(&self) -> String {
        format!(
            "listen={} db={} model={} max_length={} windows={} device={} precision={} index={} decision={} languages={} novel={} \
             target_fpr={} k={} classifier_weight={} open_detect={} max_items={} max_text_chars={} max_body_bytes={} overlength={} \
             max_concurrent={} request_timeout_seconds={} queue_capacity={} coalesce_tokens={} feed_poll_ms={} snapshot_dir={} \
             snapshot_every={} admin_key={}",
            self.listen,
            redact(&self.store.db),
            self.encoder.model,
            self.encoder.max_length(),
            self.encoder.windows,
            self.encoder.device,
            self.encoder.precision,
            self.index.index,
            self.decision,
            self.languages,
            self.novel,
            self.target_fpr,
            self.k.map_or("calibrated".into(), |k| k.to_string()),
            self.index.classifier_weight,
            self.open_detect,
            self.max_items,
            self.max_text_chars,
            self.max_body_bytes,
            self.overlength,
            self.max_concurrent,
            self.request_timeout_seconds,
            self.queue_capacity,
            self.coalesce_tokens,
            self.feed_poll_ms,
            self.index
                .snapshot_dir(&self.store.db)
                .map_or("none".into(), |d| d.display().to_string()),
            self.snapshot_every,
            if self.admin_key.is_some() || self.admin_key_file.is_some() {
                "set"
            } else {
                "not set"
            },
        )
    }
}

pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let config = args.api_config()?;
    let decision = args.decision()?;
    let enc_cfg = (args.encoder.to_config()?, args.encoder.view()?);
    let admin_key = args.admin_key()?;
    eprintln!(
        "detective {} serve: {}",
        env!("CARGO_PKG_VERSION"),
        args.describe()
    );
    metrics::init();
    let rt = super::common::runtime()?;
    rt.block_on(async {
        let store = open_store(&args.store).await?;
        let keys = KeyRing::new(store.clone(), admin_key.as_deref())
            .with_ttl(std::time::Duration::from_secs(args.key_cache_seconds));
        bootstrap_key(store.as_ref(), keys.has_bootstrap(), &args.bootstrap_key_path()).await?;
        let state = Arc::new(AppState::new(keys, config));
        let addr: SocketAddr = args
            .listen
            .parse()
            .with_context(|| format!("--listen {:?} is not an address", args.listen))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        eprintln!("listening on http://{local} (ready once the model and index are loaded)");
        let (fail_tx, fail_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
        {
            let state = state.clone();
            let store = store.clone();
            let index = args.index.clone();
            let store_args = args.store.clone();
            let workers = WorkerConfig {
                queue_capacity: args.queue_capacity,
                coalesce_tokens: args.coalesce_tokens.max(1),
            };
            let policy = Policy {
                k: args.k,
                target_fpr: args.target_fpr,
                decision,
                languages: crate::detect::Languages::parse(&args.languages)
                    .map_err(|e| anyhow::anyhow!("--languages: {e}"))?,
                novel: crate::detect::NoveltyPolicy::parse(&args.novel)
                    .map_err(|e| anyhow::anyhow!("--novel: {e}"))?,
                feed_poll: std::time::Duration::from_millis(args.feed_poll_ms.max(10)),
                snapshot_every: args.snapshot_every.max(1),
            };
            // The encoder is not `Sync`, so loading runs on a blocking thread
            // that drives its own futures.
            let rt = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                let loaded =
                    rt.block_on(load(store, enc_cfg, (store_args, index), workers, policy));
                match loaded {
                    Ok(detector) => {
                        let d = state.detector.get_or_init(|| Arc::new(detector));
                        print_ready(local, d);
                    }
                    Err(e) => {
                        let _ = fail_tx.send(e);
                    }
                }
            });
        }
        let server =
            axum::serve(listener, api::app(state.clone())).with_graceful_shutdown(api::shutdown_signal());
        // Start-up reports a failure; a start-up task that ends without a
        // word and without a detector panicked.
        let failure = {
            let state = state.clone();
            async move {
                match fail_rx.await {
                    Ok(e) => e,
                    Err(_) if state.detector.get().is_some() => std::future::pending().await,
                    Err(_) => anyhow::anyhow!(
                        "loading the model and the index panicked (see the log above)"
                    ),
                }
            }
        };
        tokio::select! {
            served = server => served.context("server failed"),
            e = failure => Err(e),
            () = crate::encoder::worker::died() => Err(anyhow::anyhow!(
                "the encoder thread died (see the log above); exiting so that a supervisor restarts the service"
            )),
        }
    })
}

/// How the loaded service votes and follows the store.
struct Policy {
    k: Option<usize>,
    target_fpr: f64,
    decision: Decision,
    languages: crate::detect::Languages,
    novel: crate::detect::NoveltyPolicy,
    feed_poll: std::time::Duration,
    snapshot_every: i64,
}

async fn load(
    store: Arc<dyn Store>,
    (enc_cfg, view): (crate::config::EncoderConfig, crate::encoder::View),
    (store_args, index): (StoreArgs, IndexArgs),
    workers: WorkerConfig,
    policy: Policy,
) -> anyhow::Result<Detector> {
    let Policy {
        k,
        target_fpr,
        decision,
        languages,
        novel,
        feed_poll,
        snapshot_every,
    } = policy;
    let encoder = Encoder::load(&enc_cfg)
        .with_context(|| format!("cannot load model {:?}", enc_cfg.model))?;
    let encoder = crate::encoder::Styled::new(encoder, view);
    let classifier_weight = index.classifier_weight()?;
    let opened = open_references(store.as_ref(), &encoder, &store_args, &index).await?;
    match &opened.origin {
        Origin::Built => eprintln!(
            "index built from {} stored references in {:.1} s{}",
            opened.refs.len(),
            opened.seconds,
            opened
                .snapshot_skipped
                .as_ref()
                .map_or(String::new(), |why| format!(" (snapshot not used: {why})"))
        ),
        Origin::Snapshot { applied, caught_up } => eprintln!(
            "index loaded from its snapshot at change {applied} ({caught_up} later changes applied): \
             {} references in {:.1} s",
            opened.refs.len(),
            opened.seconds
        ),
    }
    metrics::INDEX_BUILD_SECONDS.set(opened.seconds);
    let mut live = Live::new(store.clone(), opened.refs, opened.kind);
    if let Some(dir) = index.snapshot_dir(&store_args.db) {
        let saved = match opened.origin {
            Origin::Snapshot { applied, .. } => Some(applied),
            Origin::Built => None,
        };
        live = live.with_snapshots(
            SnapshotPolicy {
                dir,
                encoder: encoder.id().clone(),
                every_changes: snapshot_every,
                every: std::time::Duration::from_secs(600),
            },
            saved,
        );
    }
    let live = Arc::new(live);
    // Whatever changed while the set was opened, then every later change.
    live.catch_up().await?;
    tokio::spawn(live.clone().follow(feed_poll));
    let supervised = if classifier_weight > 0.0 {
        let s = Arc::new(Supervised::new(
            classifier_weight,
            store.clone(),
            live.clone(),
        ));
        s.refit().await?;
        if let Some(f) = s.current() {
            eprintln!(
                "classifier fitted on {} references ({} terms) in {:.1} s",
                f.model.fitted_on,
                f.model.terms(),
                f.seconds
            );
        }
        tokio::spawn(
            s.clone()
                .follow(feed_poll.max(std::time::Duration::from_secs(1))),
        );
        Some(s)
    } else {
        None
    };
    if opened.origin == Origin::Built {
        // The first snapshot, in the background: ready does not wait for it.
        let live = live.clone();
        tokio::spawn(async move {
            if let Err(e) = live.snapshot_if_due(true).await {
                tracing::warn!(error = %e, "index snapshot failed");
            }
        });
    }
    let mut vote = opened
        .calibration
        .map(|c| c.vote_config(Some(target_fpr)))
        .unwrap_or_default();
    vote.novelty_policy = novel;
    if let Some(k) = k {
        anyhow::ensure!(k > 0, "--k must be positive");
        vote.k = k;
    }
    let (encoder, view) = encoder.into_parts();
    let handle = EncoderHandle::spawn(encoder, view, workers);
    metrics::INFO
        .with_label_values(&[
            env!("CARGO_PKG_VERSION"),
            &handle.id().to_string(),
            &vote.k.to_string(),
        ])
        .set(1);
    let counts = store.counts().await?;
    metrics::set_references(&counts.by_family);
    crate::hold::wait("ready");
    let detector = Detector::new(store, handle, live, vote, decision, languages);
    Ok(match supervised {
        Some(s) => detector.with_classifier(s),
        None => detector,
    })
}

fn print_ready(addr: SocketAddr, d: &Detector) {
    eprintln!(
        "ready: {} references, encoder {}, k={}\n\ntry:\n  \
         curl -s http://{addr}/detect -H \"Authorization: Bearer $KEY\" -H 'content-type: application/json' \\\n    \
         -d '{{\"text\": \"The mitochondria is the powerhouse of the cell.\"}}'\n  \
         curl -s http://{addr}/reference -H \"Authorization: Bearer $KEY\" -H 'content-type: application/json' \\\n    \
         -d '{{\"text\": \"...\", \"label\": \"machine\", \"model\": \"new-llm\", \"family\": \"new-family\"}}'\n  \
         curl -s http://{addr}/info",
        d.len(),
        d.encoder().id(),
        d.vote_config().k,
    );
}

//! The one integration-test binary.
//!
//! Needs the set-up's model weights (`scripts/setup`) and `../shared/`
//! (fixtures and corpus; `DETECTIVE_SHARED` overrides the location).

/// The analysis scripts on inputs whose figures are known by hand.
mod analysis_scripts;
/// Shared helpers: paths, fixture loading, vector maths.
mod common;
/// The Grafana dashboard's queries through a real Prometheus scraping the service.
mod dashboard;
/// `detective embed` as a user runs it: formats, order, errors.
mod embed_cli;
/// Rust encoder against reference token ids and embeddings from `transformers`.
mod encoder_parity;
/// The GPU trainer's CPU round trip: pack, train, split, unpack, load.
mod gpu_trainer;
/// import (kill and resume, bad lines), detect and reindex through the CLI.
mod import_cli;
/// HNSW recall against exact search.
mod index_recall;
/// A model of another's first layers, against the source cut in PyTorch.
mod keep_layers;
/// The contrastive loss against reference values.
mod loss_parity;
/// The HTTP API on loopback: contract, auth, bad input, OpenAPI.
mod serve_api;
/// Faults: PostgreSQL stopped under traffic, a batch killed mid-transaction,
/// a read-only store, a full disk.
mod serve_faults;
/// A bounded black-box fuzz and a flood of maximal bodies.
mod serve_fuzz;
/// The server's life cycle: full queue, readiness, SIGTERM, kill -9, secrets.
mod serve_lifecycle;
/// Concurrent detect and reference traffic; replicas on one PostgreSQL.
mod serve_replicas;
/// Index snapshots: a restart loads one and catches up; a damaged one is rebuilt.
mod serve_snapshot;
/// Training-free incremental adaptation through `POST /reference`.
mod serve_tfia;
/// A real `detective serve` process for HTTP tests.
mod server;
/// The store contract on SQLite and PostgreSQL.
mod store_contract;
/// A short contrastive training run: loss, checkpoints, resume.
mod train_tiny;
/// The web page in headless Chromium against a running server.
mod web_page;

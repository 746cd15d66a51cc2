//! detective: tells human from machine-written text, and which model family
//! wrote it, by nearest-neighbour voting in a learned style space.
//!
//! Dependencies point one way: `cli -> api | train | eval -> detect -> encoder
//! | index | store`; `config` and `metrics` are leaves everyone may use.
//!
//! - [`encoder`]: text -> normalised style vector (BERT/MPNet on LibTorch).
//! - [`index`]: nearest-neighbour search (HNSW and exact).
//! - [`store`]: durable labelled references (SQLite, PostgreSQL).
//! - [`detect`]: the vote, calibration, import, the searchable reference set.
//! - [`api`]: the HTTP service: routes, wire types, auth, errors.
//! - [`train`]: multi-level contrastive fine-tuning.
//! - [`eval`]: metrics, reports and plots over labelled sets.
//! - [`metrics`]: the Prometheus metrics catalogue.
//! - [`cli`]: the `detective` command line; wiring only.
pub mod api;
pub mod cli;
pub mod config;
pub mod detect;
pub mod encoder;
pub mod eval;
pub mod hold;
pub mod index;
pub mod metrics;
pub mod store;
pub mod train;
pub mod vocab;

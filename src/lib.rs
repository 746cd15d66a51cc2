//! detective: tells human from machine-written text, and which model family
//! wrote it, by nearest-neighbour voting in a learned style space.
//!
//! - [`encoder`]: text -> normalised style vector (BERT/MPNet on LibTorch).
//! - [`config`]: validated per-component configuration.
//! - [`cli`]: the `detective` command line; wiring only.
pub mod cli;
pub mod config;
pub mod encoder;

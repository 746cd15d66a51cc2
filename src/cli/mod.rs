//! The `detective` command line: argument parsing and wiring only; the work
//! lives in the library modules.
mod bench;
mod bench_index;
pub mod common;
mod detect;
mod embed;
mod eval;
mod export;
mod import;
pub mod input;
mod keys;
mod lexical_mean;
mod reindex;
mod secrets;
mod serve;
mod train;

use clap::{Args, Parser, Subcommand};

use crate::config::{EncoderConfig, DEFAULT_MAX_LENGTH, DEFAULT_MODEL};
use anyhow::Context;

use crate::encoder::{registry, Encoder, Lexical, Styled, View};

#[derive(Debug, Parser)]
#[command(
    name = "detective",
    version,
    about = "Tells human from machine-written text"
)]
pub struct Cli {
    /// Log lines as plain text or JSON (one object per line, for log shippers).
    #[arg(
        long,
        global = true,
        env = "DETECTIVE_LOG_FORMAT",
        default_value = "plain"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Embed texts (plain lines or JSONL with a `text` field) into JSONL vectors.
    Embed(embed::EmbedArgs),
    /// Measure encoder throughput (texts/s, tokens/s, GFLOP/s).
    Bench(bench::BenchArgs),
    /// Measure HNSW against exact search: build time, query latency, recall.
    BenchIndex(bench_index::BenchIndexArgs),
    /// Add labelled references from a JSONL file (idempotent, resumable).
    Import(import::ImportArgs),
    /// Tell human from machine text: verdicts as JSON lines or a table.
    Detect(detect::DetectArgs),
    /// Re-embed every stored reference with the running encoder.
    Reindex(reindex::ReindexArgs),
    /// Score a labelled file against references built from labelled files.
    Eval(Box<eval::EvalArgs>),
    /// Run the HTTP service.
    Serve(serve::ServeArgs),
    /// Manage API keys.
    Keys(keys::KeysArgs),
    /// Fine-tune the encoder with the multi-level contrastive loss.
    Train(train::TrainArgs),
    /// Write a training checkpoint as a named model (f16 weights, manifest).
    Export(export::ExportArgs),
    /// Recompute the reference means a centred lexical view subtracts.
    LexicalMean(lexical_mean::LexicalMeanArgs),
}

/// Flags that choose and run the encoder; shared by every command that embeds.
#[derive(Debug, Clone, Args)]
pub struct EncoderArgs {
    /// Model name (minilm, mpnet, ...) or a directory with config.json,
    /// model.safetensors and tokenizer.json.
    #[arg(long, env = "DETECTIVE_MODEL", default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Truncation length in tokens, special tokens included (default: the
    /// length the model was trained with, from its manifest, else 512).
    #[arg(long, env = "DETECTIVE_MAX_LENGTH")]
    pub max_length: Option<usize>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, env = "DETECTIVE_DEVICE", default_value = "cpu")]
    pub device: String,
    /// LibTorch intra-op threads (default: one per core).
    #[arg(long, env = "DETECTIVE_THREADS")]
    pub threads: Option<usize>,
    /// Most padded tokens (texts x longest text) per forward pass.
    #[arg(long, env = "DETECTIVE_BATCH_TOKENS", default_value_t = 8192)]
    pub batch_tokens: usize,
    /// Most texts per forward pass.
    #[arg(long, env = "DETECTIVE_MAX_BATCH", default_value_t = 64)]
    pub max_batch: usize,
    /// Dimensions of the lexical view (character 2-4-grams hashed) fused
    /// with the neural one; 0 for the neural view alone (default: the
    /// model's manifest, else 0).
    #[arg(long, env = "DETECTIVE_LEXICAL_DIM")]
    pub lexical_dim: Option<usize>,
    /// Weight of the neural view in the fused similarity, in [0, 1]
    /// (default: the model's manifest).
    #[arg(long, env = "DETECTIVE_ALPHA")]
    pub alpha: Option<f32>,
    /// Share of the shipped references' mean lexical vector subtracted from
    /// each lexical vector, in [0, 1] (0: not centred; default: the model's
    /// manifest).
    #[arg(long, env = "DETECTIVE_LEXICAL_CENTRE")]
    pub lexical_centre: Option<f32>,
    /// Arithmetic of the encoder: fp32, bf16, int8 (dynamic quantization of
    /// the linear layers), or auto (the fastest path this CPU runs
    /// natively, timed at start-up; fp32 on a CPU without AVX512_BF16, AMX
    /// or VNNI).
    #[arg(long, env = "DETECTIVE_PRECISION", default_value = "fp32")]
    pub precision: String,
    /// Windows of --max-length tokens read per text: a longer text is cut
    /// into up to this many equal windows whose vectors are averaged (1:
    /// its first window only).
    #[arg(long, env = "DETECTIVE_WINDOWS", default_value_t = 1)]
    pub windows: usize,
}

impl EncoderArgs {
    /// `--max-length`, or the model's own default.
    pub fn max_length(&self) -> usize {
        self.max_length.unwrap_or_else(|| {
            registry::default_max_length(&self.model).unwrap_or(DEFAULT_MAX_LENGTH)
        })
    }

    /// The style view: `--lexical-dim`, `--lexical-centre` and `--alpha`
    /// over the model's default.
    pub fn view(&self) -> anyhow::Result<View> {
        let default = registry::default_view(&self.model).unwrap_or_default();
        let lexical = match self.lexical_dim {
            Some(0) => None,
            Some(dim) => Some(Lexical {
                dim,
                ..default.lexical.unwrap_or_default()
            }),
            None => default.lexical,
        };
        let lexical = lexical.map(|l| Lexical {
            centre: self.lexical_centre.unwrap_or(l.centre),
            ..l
        });
        if let Some(l) = &lexical {
            l.validate().map_err(anyhow::Error::msg)?;
        }
        let alpha = self.alpha.unwrap_or(if default.lexical.is_some() {
            default.alpha
        } else {
            0.5
        });
        anyhow::ensure!(
            (0.0..=1.0).contains(&alpha),
            "--alpha must be within [0, 1], not {alpha}"
        );
        anyhow::ensure!(
            self.lexical_dim.is_none_or(|d| d <= 1 << 16),
            "--lexical-dim must be at most 65536"
        );
        Ok(match lexical {
            Some(l) => View::fused(l, alpha),
            None => View::neural(),
        })
    }

    /// The encoder with its style view.
    pub fn load(&self) -> anyhow::Result<Styled<Encoder>> {
        let encoder = Encoder::load(&self.to_config()?)
            .with_context(|| format!("cannot load model {:?}", self.model))?;
        tracing::info!(
            requested = %self.precision,
            precision = %encoder.precision(),
            "encoder loaded"
        );
        Ok(Styled::new(encoder, self.view()?))
    }

    pub fn to_config(&self) -> anyhow::Result<EncoderConfig> {
        anyhow::ensure!(self.batch_tokens > 0, "--batch-tokens must be positive");
        anyhow::ensure!(self.max_batch > 0, "--max-batch must be positive");
        anyhow::ensure!(self.threads != Some(0), "--threads must be positive");
        Ok(EncoderConfig {
            model: self.model.clone(),
            max_length: self.max_length(),
            device: self.device.clone(),
            threads: self.threads,
            batch_tokens: self.batch_tokens,
            max_batch: self.max_batch,
            precision: self.precision.clone(),
            windows: self.windows,
        })
    }
}

/// Parses the process arguments and runs the chosen command.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The service logs one line per request by default; other commands only
    // warnings. `DETECTIVE_LOG` (an env-filter, e.g. `debug` for stage
    // timings) overrides both.
    let level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    init_tracing(cli.log_format, level);
    match cli.command {
        Command::Embed(args) => embed::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::BenchIndex(args) => bench_index::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Detect(args) => detect::run(&args),
        Command::Reindex(args) => reindex::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Keys(args) => keys::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Export(args) => export::run(&args),
        Command::LexicalMean(args) => lexical_mean::run(&args),
    }
}

fn init_tracing(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DETECTIVE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Replaces Rust's panic trace with a one-line message: a panic is a bug, but
/// the user should see what failed, not a backtrace.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let first = msg.lines().next().unwrap_or_default();
        eprintln!("error: internal failure: {first}");
    }));
}

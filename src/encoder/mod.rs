//! Text -> normalised style vector.
//!
//! An [`Encoder`] is a transformer (BERT or MPNet, chosen by the checkpoint's
//! `config.json`) plus its tokenizer. Embedding is mean pooling over real
//! tokens followed by L2 normalisation, so cosine similarity is a dot product
//! downstream. Batches are padded only to their longest member, and a list of
//! texts is sorted by token length before it is cut into batches, so short
//! texts never pay for long ones; results come back in input order.
//!
//! A text longer than one window (`max_length` tokens) is read as several
//! when the encoder is set to (`windows` > 1, see [`windows`]).
//!
//! The [`Embed`] trait is the small synchronous surface the rest of the
//! service depends on, so tests about voting or HTTP can use a fake.
mod batch;
pub mod bert;
pub mod config;
pub mod layers;
pub mod lexical;
pub mod lexical_mean;
pub mod mpnet;
pub mod pooling;
pub mod precision;
pub mod registry;
pub mod style;
pub mod tokenize;
pub mod windows;
pub mod worker;

use std::path::PathBuf;

use std::time::Instant;

use tch::{nn, Device, Kind, Tensor};

use layers::Proj;
use precision::{CpuFeatures, Requested};

pub use batch::plan_batches;
pub use config::{Architecture, ModelConfig};
pub use lexical::Lexical;
pub use precision::Precision;
pub use registry::{resolve, ModelFiles};
pub use style::{Styled, View};
pub use tokenize::Tokenizer;
pub use worker::{Admission, EncoderHandle, Prepared, WorkerConfig, WorkerError};

use crate::config::EncoderConfig;

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("unknown model {spec:?}: not a directory and not one of [{}]", known.join(", "))]
    UnknownModel { spec: String, known: Vec<String> },
    #[error("model {model}: missing {path} (run scripts/setup to install model weights)")]
    MissingFile { model: String, path: PathBuf },
    #[error(
        "checksum mismatch for {path}: expected {expected}, found {actual} (re-run scripts/setup)"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid model file {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("max_length {requested} is outside 2..={limit} for this model")]
    MaxLength { requested: usize, limit: usize },
    #[error("tokenizer: {0}")]
    Tokenize(String),
    #[error("{0}")]
    Precision(String),
    #[error("device {0:?} is not available")]
    Device(String),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

pub use crate::train::data::HeldOut;
pub use crate::vocab::EncoderId;

/// What the rest of the service needs from an encoder.
pub trait Embed {
    fn id(&self) -> &EncoderId;
    fn dim(&self) -> usize;
    /// One normalised vector per text, in input order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncoderError>;

    /// Identity and dimension of the vectors [`Embed::finish`] takes: the
    /// neural encoder's, under a fused [`View`] (so vectors shipped or
    /// cached for it can be reused); this encoder's own otherwise.
    fn base(&self) -> (&EncoderId, usize) {
        (self.id(), self.dim())
    }

    /// The groups the encoder's training held out for validation, if it
    /// was trained here and recorded them: calibration validates on those
    /// texts, which the encoder never saw.
    fn held_out(&self) -> Option<HeldOut> {
        None
    }

    /// Turns the base vectors of `texts` into this encoder's vectors.
    fn finish(&self, texts: &[&str], base: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
        let _ = texts;
        base
    }
}

enum Network {
    Bert(bert::Bert),
    MpNet(mpnet::MpNet),
}

pub struct Encoder {
    network: Network,
    tokenizer: Tokenizer,
    vs: nn::VarStore,
    config: ModelConfig,
    id: EncoderId,
    batch_tokens: usize,
    max_batch: usize,
    precision: Precision,
    /// Name of the model files (the identity's name with one window).
    base_name: String,
    held_out: Option<HeldOut>,
}

impl Encoder {
    pub fn load(cfg: &EncoderConfig) -> Result<Self, EncoderError> {
        let files = registry::resolve(&cfg.model)?;
        Self::load_files(&files, cfg)
    }

    /// Loads the model at the precision `cfg` asks for; `auto` loads each
    /// path the CPU runs natively and keeps the fastest on a probe batch.
    pub fn load_files(files: &ModelFiles, cfg: &EncoderConfig) -> Result<Self, EncoderError> {
        Self::load_for_cpu(files, cfg, CpuFeatures::detect())
    }

    /// [`Encoder::load_files`] as on a CPU with `features`.
    pub fn load_for_cpu(
        files: &ModelFiles,
        cfg: &EncoderConfig,
        features: CpuFeatures,
    ) -> Result<Self, EncoderError> {
        let candidates = match Requested::parse(&cfg.precision).map_err(EncoderError::Precision)? {
            Requested::Fixed(p) => return Self::load_at(files, cfg, p),
            Requested::Auto => features.candidates(),
        };
        if candidates.len() == 1 || parse_device(&cfg.device)? != Device::Cpu {
            return Self::load_at(files, cfg, Precision::Fp32);
        }
        let mut loaded = Vec::new();
        let mut timed = Vec::new();
        for p in candidates {
            let e = Self::load_at(files, cfg, p)?;
            timed.push((p, e.probe_seconds()));
            loaded.push(e);
        }
        let best = precision::fastest(&timed);
        tracing::info!(?timed, chosen = %best, "precision auto: timed the native paths");
        Ok(loaded
            .into_iter()
            .find(|e| e.precision == best)
            .expect("the fastest is one of the loaded"))
    }

    fn load_at(
        files: &ModelFiles,
        cfg: &EncoderConfig,
        precision: Precision,
    ) -> Result<Self, EncoderError> {
        if let Some(n) = cfg.threads {
            tch::set_num_threads(n as i32);
        }
        let device = parse_device(&cfg.device)?;
        let config = ModelConfig::from_file(&files.path("config.json"))?;
        check_max_length(&config, cfg.max_length)?;
        let mut vs = nn::VarStore::new(device);
        let root = vs.root();
        let network = match config.architecture() {
            Some(Architecture::MpNet) => Network::MpNet(mpnet::MpNet::new(&root, &config)),
            _ => Network::Bert(bert::Bert::new(&root, &config)),
        };
        let weights = files.path("model.safetensors");
        vs.load(&weights)?;
        vs.float();
        let checksum = match files
            .manifest
            .as_ref()
            .and_then(|m| m.files.get("model.safetensors"))
        {
            Some(sum) => sum.to_ascii_lowercase(),
            None => registry::sha256_file(&weights)?,
        };
        let tokenizer = Tokenizer::from_file(&files.path("tokenizer.json"), cfg.max_length)?;
        let mut encoder = Self {
            network,
            tokenizer,
            vs,
            config,
            id: EncoderId {
                name: files.name.clone(),
                checksum,
                max_length: cfg.max_length,
            },
            batch_tokens: cfg.batch_tokens,
            max_batch: cfg.max_batch,
            precision: Precision::Fp32,
            base_name: files.name.clone(),
            held_out: crate::train::checkpoint::held_out_of_model_dir(&files.dir),
        };
        encoder.set_windows(cfg.windows)?;
        encoder.apply_precision(precision)?;
        Ok(encoder)
    }

    /// Switches the freshly loaded fp32 model to `precision`.
    fn apply_precision(&mut self, precision: Precision) -> Result<(), EncoderError> {
        match precision {
            Precision::Fp32 => {}
            Precision::Bf16 => self.vs.bfloat16(),
            Precision::Int8 => {
                // One fp32 pass over the calibration texts shows each layer
                // the range of its inputs, then the layers are quantized.
                self.each_quantizable(Proj::observe);
                let seqs = self.tokenize(CALIBRATION_TEXTS)?;
                let rows: Vec<&[i64]> = seqs.iter().map(Vec::as_slice).collect();
                let (ids, mask) = self.pad(&rows);
                let _guard = tch::no_grad_guard();
                let _ = self.forward(&ids, &mask, false);
                self.each_quantizable(Proj::quantize_int8);
            }
        }
        self.precision = precision;
        Ok(())
    }

    fn each_quantizable(&mut self, f: impl Fn(&mut Proj)) {
        let blocks = match &mut self.network {
            Network::Bert(m) => m.blocks_mut(),
            Network::MpNet(m) => m.blocks_mut(),
        };
        for block in blocks {
            for proj in block.quantizable() {
                f(proj);
            }
        }
    }

    /// The arithmetic of the matrix products.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Median seconds of a forward pass over a fixed batch (16 texts of
    /// 128 tokens), after one warm-up.
    fn probe_seconds(&self) -> f64 {
        let len = self.id.max_length.min(128);
        let vocab = self.config.vocab_size.max(2000);
        let seqs: Vec<Vec<i64>> = (0..16)
            .map(|r| {
                (0..len as i64)
                    .map(|i| 1000 + (r * 131 + i * 7) % (vocab - 1000))
                    .collect()
            })
            .collect();
        let rows: Vec<&[i64]> = seqs.iter().map(Vec::as_slice).collect();
        let (ids, mask) = self.pad(&rows);
        let _guard = tch::no_grad_guard();
        let mut times: Vec<f64> = (0..4)
            .map(|_| {
                let t = Instant::now();
                let _ = self.forward(&ids, &mask, false);
                t.elapsed().as_secs_f64()
            })
            .skip(1)
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    }

    pub fn model_config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Changes the truncation length (and so the encoder's identity).
    pub fn set_max_length(&mut self, max_length: usize) -> Result<(), EncoderError> {
        check_max_length(&self.config, max_length)?;
        self.tokenizer.set_max_length(max_length)?;
        self.id.max_length = max_length;
        Ok(())
    }

    /// Reads up to `windows` windows of `max_length` tokens per text. More
    /// than one changes the vectors, so the identity's name says how many
    /// (`detective-minilm+w4`).
    pub fn set_windows(&mut self, windows: usize) -> Result<(), EncoderError> {
        self.tokenizer.set_windows(windows)?;
        self.id.name = windows::name(&self.base_name, windows);
        Ok(())
    }

    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<i64>>, EncoderError> {
        self.tokenizer.encode_batch(texts)
    }

    /// Pads token ids to the longest sequence: `(ids, mask)` on the device.
    pub fn pad(&self, seqs: &[&[i64]]) -> (Tensor, Tensor) {
        let longest = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        let pad = self.tokenizer.pad_id();
        let mut ids = Vec::with_capacity(seqs.len() * longest);
        let mut mask = Vec::with_capacity(seqs.len() * longest);
        for s in seqs {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(pad, longest - s.len()));
            mask.extend(std::iter::repeat_n(1i64, s.len()));
            mask.extend(std::iter::repeat_n(0i64, longest - s.len()));
        }
        let shape = [seqs.len() as i64, longest as i64];
        let device = self.device();
        (
            Tensor::from_slice(&ids).view(shape).to_device(device),
            Tensor::from_slice(&mask).view(shape).to_device(device),
        )
    }

    /// Pooled, normalised embeddings `[batch, dim]`; with `train` the graph
    /// is kept for back-propagation and dropout is active.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let states = match &self.network {
            Network::Bert(m) => m.forward(ids, mask, train),
            Network::MpNet(m) => m.forward(ids, mask, train),
        };
        // Pool in fp32 whatever the precision of the layers.
        let states = states.to_kind(Kind::Float);
        pooling::normalize(&pooling::mean_pool(&states, mask))
    }

    /// Embeds already tokenized sequences, batching by length; input order.
    /// A sequence longer than `max_length` is read as several windows.
    pub fn embed_tokens(&self, seqs: &[Vec<i64>]) -> Result<Vec<Vec<f32>>, EncoderError> {
        let window = self.id.max_length;
        if seqs.iter().all(|s| s.len() <= window) {
            return self.embed_windows(seqs);
        }
        let mut owners = Vec::new();
        let mut pieces = Vec::new();
        for (i, seq) in seqs.iter().enumerate() {
            for (w, weight) in windows::split(seq, window) {
                owners.push((i, weight));
                pieces.push(w);
            }
        }
        let vectors = self.embed_windows(&pieces)?;
        Ok(windows::pool(seqs.len(), &owners, vectors))
    }

    /// Embeds sequences of at most `max_length` tokens; input order.
    fn embed_windows(&self, seqs: &[Vec<i64>]) -> Result<Vec<Vec<f32>>, EncoderError> {
        let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
        let mut out = vec![Vec::new(); seqs.len()];
        let _guard = tch::no_grad_guard();
        for batch in plan_batches(&lens, self.batch_tokens, self.max_batch) {
            let rows: Vec<&[i64]> = batch.iter().map(|&i| seqs[i].as_slice()).collect();
            let (ids, mask) = self.pad(&rows);
            let pooled = self.forward(&ids, &mask, false).to_device(Device::Cpu);
            let dim = pooled.size()[1] as usize;
            let flat: Vec<f32> = Vec::try_from(pooled.flatten(0, -1))?;
            for (row, &i) in flat.chunks(dim).zip(&batch) {
                out[i] = row.to_vec();
            }
        }
        Ok(out)
    }
}

impl Embed for Encoder {
    fn id(&self) -> &EncoderId {
        &self.id
    }

    fn dim(&self) -> usize {
        self.config.hidden_size as usize
    }

    fn held_out(&self) -> Option<HeldOut> {
        self.held_out
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncoderError> {
        let seqs = self.tokenize(texts)?;
        self.embed_tokens(&seqs)
    }
}

/// Text the int8 path observes once at load time to learn the range of each
/// layer's inputs: plain English prose of several registers, so that the
/// outlier channels of the hidden states show (they come from the model,
/// not from the text).
const CALIBRATION_TEXTS: &[&str] = &[
    "The committee met on Tuesday to review the budget, and after a long \
     discussion it agreed to delay the vote until the figures were checked.",
    "honestly i dont know what happened, the bus was late again and i missed \
     the first half of the lecture. anyone have notes?? thx",
    "In this paper we propose a method for estimating the parameters of a \
     mixture model from incomplete data, and we prove that it converges.",
    "Preheat the oven to 200°C. Mix the flour, sugar and butter until the \
     dough is smooth, then bake for 25 minutes or until golden.",
    "Certainly! Here is a concise summary of the key points: first, the \
     project is on schedule; second, costs are within budget; third, the \
     team recommends moving to the next phase.",
    "She looked out of the window at the rain and wondered, not for the \
     first time, whether she had made the right choice in coming back.",
];

/// A truncation length must leave room for the special tokens and fit the
/// model's position table.
fn check_max_length(config: &ModelConfig, max_length: usize) -> Result<(), EncoderError> {
    let limit = config.max_tokens();
    if max_length < 2 || max_length > limit {
        return Err(EncoderError::MaxLength {
            requested: max_length,
            limit,
        });
    }
    Ok(())
}

/// `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when available).
pub fn parse_device(spec: &str) -> Result<Device, EncoderError> {
    match spec {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::cuda_if_available()),
        "cuda" if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        s => match s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) if n < tch::Cuda::device_count() as usize => Ok(Device::Cuda(n)),
            _ => Err(EncoderError::Device(s.to_owned())),
        },
    }
}

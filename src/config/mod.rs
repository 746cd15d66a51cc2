//! Validated configuration, one plain struct per component. The CLI resolves
//! flags and environment variables into these; components never read the
//! environment themselves.

/// Model name used when none is given: MiniLM fine-tuned with the
/// multi-level contrastive loss (`models/detective-minilm`).
pub const DEFAULT_MODEL: &str = "detective-minilm";
/// Truncation length in tokens for a model whose manifest names none.
pub const DEFAULT_MAX_LENGTH: usize = 512;

/// How to load and run the text encoder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EncoderConfig {
    /// Model name (`minilm`, `mpnet`, ...) or a directory.
    pub model: String,
    /// Truncation length in tokens, special tokens included.
    pub max_length: usize,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    pub device: String,
    /// Intra-op threads; `None` keeps LibTorch's default (one per core).
    pub threads: Option<usize>,
    /// Most padded tokens (count x longest) in one forward pass.
    pub batch_tokens: usize,
    /// Most texts in one forward pass.
    pub max_batch: usize,
    /// `fp32`, `bf16`, `int8` or `auto` (see `encoder::precision`).
    pub precision: String,
    /// Windows of `max_length` tokens read per text (1: the first only).
    pub windows: usize,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.into(),
            max_length: DEFAULT_MAX_LENGTH,
            device: "cpu".into(),
            threads: None,
            batch_tokens: 8192,
            max_batch: 64,
            precision: "fp32".into(),
            windows: 1,
        }
    }
}

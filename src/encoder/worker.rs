//! The model on its own OS thread, behind a cheap cloneable handle.
//!
//! LibTorch tensors are `Send` but not `Sync`, and a forward pass saturates
//! the cores anyway, so one thread owns the [`Encoder`] and requests reach
//! it through a bounded queue, each with its own reply channel. The thread
//! takes the first waiting job and then coalesces whatever else is queued up
//! to a token budget into one call, which the encoder cuts into
//! length-sorted batches: concurrent small requests share forward passes.
//! A full queue is refused at once ([`WorkerError::Full`], HTTP 429) rather
//! than letting latency grow without bound, and a job whose requester has
//! gone is dropped before it is encoded. A request takes its place in the
//! queue ([`EncoderHandle::admit`]) before it is tokenized, so a flood is
//! refused before any work is spent on it; the place is given back when the
//! encoder takes the job, or when the request ends first.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::sync::LazyLock;
use std::time::Instant;

use tokio::sync::oneshot;

use super::{Embed, Encoder, EncoderError, EncoderId, Tokenizer, View};
use crate::metrics;

/// Queue and coalescing limits.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// Jobs (requests) that may wait for the model.
    pub queue_capacity: usize,
    /// Most tokens coalesced into one call of the encoder.
    pub coalesce_tokens: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 64,
            coalesce_tokens: 32_768,
        }
    }
}

/// What the encoder thread runs: token ids in, one vector per sequence
/// out. The [`Encoder`] in the service; a stand-in in tests of what sits
/// around it (queueing, the HTTP API).
pub trait Model: Send + 'static {
    fn id(&self) -> &EncoderId;
    fn dim(&self) -> usize;
    fn tokenizer(&self) -> &Tokenizer;
    /// One normalised vector per sequence, in input order.
    fn embed_tokens(&self, seqs: &[Vec<i64>]) -> Result<Vec<Vec<f32>>, EncoderError>;
}

impl Model for Encoder {
    fn id(&self) -> &EncoderId {
        Embed::id(self)
    }

    fn dim(&self) -> usize {
        Embed::dim(self)
    }

    fn tokenizer(&self) -> &Tokenizer {
        Encoder::tokenizer(self)
    }

    fn embed_tokens(&self, seqs: &[Vec<i64>]) -> Result<Vec<Vec<f32>>, EncoderError> {
        Encoder::embed_tokens(self, seqs)
    }
}

static DEAD: AtomicBool = AtomicBool::new(false);
static DIED: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);

/// Whether the encoder thread has died (a panic in the model).
pub fn is_dead() -> bool {
    DEAD.load(Ordering::Acquire)
}

/// Resolves once the encoder thread has died; the server then exits with
/// an error, so a supervisor restarts it.
pub async fn died() {
    if is_dead() {
        return;
    }
    DIED.notified().await;
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the encoding queue is full")]
    Full,
    #[error("the encoder has stopped")]
    Stopped,
    #[error("the encoder failed")]
    Failed,
}

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, WorkerError>>;

/// A place in the encoder's queue, held from before tokenization until the
/// encoder takes the job (or the request ends).
#[derive(Debug)]
pub struct Admission {
    pending: Arc<AtomicUsize>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Job {
    seqs: Vec<Vec<i64>>,
    /// Released when the encoder thread takes the job.
    admission: Option<Admission>,
    reply: Reply,
    queued: Instant,
    /// The submitting request's span, so the worker's stage timings carry
    /// its request id.
    span: tracing::Span,
}

/// A text ready for the encoder thread: its token ids, whether they were
/// cut at the model's length, and its lexical vector when the style view
/// has one (both made off the async runtime, before the queue).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub ids: Vec<i64>,
    pub truncated: bool,
    pub lexical: Option<Vec<f32>>,
}

/// Cloneable handle to the encoder thread. Its vectors are style vectors:
/// the thread's neural vectors fused with the lexical view of [`View`].
#[derive(Clone)]
pub struct EncoderHandle {
    tx: SyncSender<Job>,
    /// Requests admitted and not yet taken by the encoder thread.
    pending: Arc<AtomicUsize>,
    capacity: usize,
    tokenizer: Tokenizer,
    view: View,
    id: EncoderId,
    dim: usize,
}

impl EncoderHandle {
    /// Moves the encoder onto a new thread.
    pub fn spawn<M: Model>(encoder: M, view: View, cfg: WorkerConfig) -> Self {
        let (tx, rx) = sync_channel(cfg.queue_capacity.max(1));
        let handle = Self {
            tx,
            pending: Arc::new(AtomicUsize::new(0)),
            capacity: cfg.queue_capacity.max(1),
            tokenizer: encoder.tokenizer().clone(),
            view,
            id: view.id(encoder.id()),
            dim: view.dim(encoder.dim()),
        };
        std::thread::Builder::new()
            .name("encoder".into())
            .spawn(move || {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(&encoder, &rx, cfg.coalesce_tokens)
                }));
                if let Err(p) = ran {
                    let why = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    tracing::error!(reason = %why, "the encoder thread died");
                    DEAD.store(true, Ordering::Release);
                    DIED.notify_one();
                }
            })
            .expect("spawn the encoder thread");
        handle
    }

    pub fn id(&self) -> &EncoderId {
        &self.id
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    /// A place in the queue, or [`WorkerError::Full`] at once: call before
    /// spending work on a request.
    pub fn admit(&self) -> Result<Admission, WorkerError> {
        let before = self.pending.fetch_add(1, Ordering::AcqRel);
        let admission = Admission {
            pending: self.pending.clone(),
        };
        if before >= self.capacity {
            drop(admission);
            metrics::QUEUE_REJECTED.inc();
            return Err(WorkerError::Full);
        }
        Ok(admission)
    }

    /// Tokenizes texts and computes their lexical vectors (CPU work: call it
    /// off the async runtime).
    pub fn prepare(&self, texts: &[&str]) -> Result<Vec<Prepared>, EncoderError> {
        let tokens = self.tokenizer.encode_batch_flagged(texts)?;
        Ok(tokens
            .into_iter()
            .zip(texts)
            .map(|((ids, truncated), text)| Prepared {
                ids,
                truncated,
                lexical: self.view.lexical(text),
            })
            .collect())
    }

    /// Style vectors of prepared texts: the neural view on the encoder
    /// thread, fused with their lexical vectors; input order.
    pub async fn embed(
        &self,
        texts: Vec<Prepared>,
        admission: Admission,
    ) -> Result<Vec<Vec<f32>>, WorkerError> {
        let mut lexical = Vec::with_capacity(texts.len());
        let seqs = texts
            .into_iter()
            .map(|p| {
                lexical.push(p.lexical);
                p.ids
            })
            .collect();
        let neural = self.embed_tokens(seqs, admission).await?;
        Ok(neural
            .into_iter()
            .zip(lexical)
            .map(|(v, l)| self.view.fuse(v, l.as_deref(), None))
            .collect())
    }

    /// Neural vectors of tokenized texts, embedded on the encoder thread;
    /// input order.
    pub async fn embed_tokens(
        &self,
        seqs: Vec<Vec<i64>>,
        admission: Admission,
    ) -> Result<Vec<Vec<f32>>, WorkerError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        let job = Job {
            seqs,
            admission: Some(admission),
            reply,
            queued: Instant::now(),
            span: tracing::Span::current(),
        };
        match self.tx.try_send(job) {
            Ok(()) => metrics::QUEUE_DEPTH.inc(),
            Err(TrySendError::Full(_)) => {
                metrics::QUEUE_REJECTED.inc();
                return Err(WorkerError::Full);
            }
            Err(TrySendError::Disconnected(_)) => return Err(WorkerError::Stopped),
        }
        rx.await.map_err(|_| WorkerError::Stopped)?
    }
}

fn run<M: Model>(encoder: &M, rx: &Receiver<Job>, coalesce_tokens: usize) {
    let _guard = tch::no_grad_guard();
    while let Ok(mut first) = rx.recv() {
        metrics::QUEUE_DEPTH.dec();
        first.admission = None;
        crate::hold::wait("encoder");
        let mut tokens: usize = first.seqs.iter().map(Vec::len).sum();
        let mut jobs = vec![first];
        while tokens < coalesce_tokens {
            match rx.try_recv() {
                Ok(mut job) => {
                    metrics::QUEUE_DEPTH.dec();
                    job.admission = None;
                    tokens += job.seqs.iter().map(Vec::len).sum::<usize>();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let before = jobs.len();
        jobs.retain(|j| !j.reply.is_closed());
        metrics::JOBS_CANCELLED.inc_by((before - jobs.len()) as u64);
        if jobs.is_empty() {
            continue;
        }
        encode(encoder, jobs);
    }
}

fn encode<M: Model>(encoder: &M, jobs: Vec<Job>) {
    let started = Instant::now();
    for job in &jobs {
        job.span
            .in_scope(|| metrics::stage("queue_wait", (started - job.queued).as_secs_f64()));
    }
    let seqs: Vec<Vec<i64>> = jobs.iter().flat_map(|j| j.seqs.iter().cloned()).collect();
    let tokens = seqs.iter().map(Vec::len).sum::<usize>();
    metrics::BATCH_TEXTS.observe(seqs.len() as f64);
    metrics::BATCH_TOKENS.observe(tokens as f64);
    let result = encoder.embed_tokens(&seqs);
    let seconds = started.elapsed().as_secs_f64();
    metrics::STAGE_SECONDS
        .with_label_values(&["inference"])
        .observe(seconds);
    for job in &jobs {
        job.span.in_scope(|| {
            tracing::debug!(
                stage = "inference",
                seconds,
                batch_texts = seqs.len(),
                batch_tokens = tokens,
                jobs = jobs.len(),
                "stage done"
            );
        });
    }
    match result {
        Ok(vectors) => {
            let mut vectors = vectors.into_iter();
            for job in jobs {
                let mine: Vec<Vec<f32>> = vectors.by_ref().take(job.seqs.len()).collect();
                let _ = job.reply.send(Ok(mine));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "encoding failed");
            for job in jobs {
                let _ = job.reply.send(Err(WorkerError::Failed));
            }
        }
    }
}

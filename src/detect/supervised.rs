//! The reference-fitted classifier of a running service, kept in step with
//! the live reference set.
//!
//! The classifier is fitted on every voting reference's text and label when
//! the service starts, and refitted in the background whenever the set has
//! moved on (a reference added or deleted here or by a replica). Until a
//! refit finishes, queries use the previous fit: the neighbours see a new
//! reference at once, the classifier within one fit (seconds). A refit runs
//! on one thread of the blocking pool and the next one waits at least as
//! long as the last took, so a stream of additions costs at most about half
//! of one core (the fit at start-up, before any query, uses every core).
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::classifier::{Classifier, ClassifierConfig};
use super::live::Live;
use super::{DetectError, References};
use crate::store::{Label, Store};

/// One fit and what it was fitted on.
pub struct Fitted {
    pub model: Classifier,
    /// Feed position of the reference set it was fitted on.
    pub applied: i64,
    pub seconds: f64,
}

/// What `/info` says about the classifier.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Weight of the classifier in the score.
    pub weight: f64,
    /// Its features and fit ([`ClassifierConfig::tag`]).
    pub features: String,
    /// References of the current fit (none yet: `None`).
    pub fitted_on: Option<usize>,
    /// Feed position of the current fit.
    pub applied: Option<i64>,
    pub terms: Option<usize>,
    pub seconds: Option<f64>,
}

pub struct Supervised {
    weight: f64,
    store: Arc<dyn Store>,
    live: Arc<Live>,
    current: RwLock<Option<Arc<Fitted>>>,
    fitting: tokio::sync::Mutex<()>,
}

/// The texts of the active references, by id.
pub async fn texts(
    store: &dyn Store,
) -> Result<std::collections::HashMap<i64, String>, DetectError> {
    let mut out = std::collections::HashMap::new();
    let mut after = 0;
    loop {
        let page = store.texts(after, 4096).await?;
        let Some(last) = page.last() else { break };
        after = last.0;
        out.extend(page);
    }
    Ok(out)
}

/// Fits a classifier on the texts and labels of `refs`' voting references
/// (texts read from `store`); with the feed position of `refs` it reflects.
/// `None` when the set holds one label only.
pub async fn fit_store(
    store: &dyn Store,
    refs: &References,
) -> Result<(Option<Classifier>, i64), DetectError> {
    fit_store_on(store, refs, None).await
}

/// [`fit_store`] on `threads` threads (`None`: all of the global pool).
async fn fit_store_on(
    store: &dyn Store,
    refs: &References,
    threads: Option<usize>,
) -> Result<(Option<Classifier>, i64), DetectError> {
    let (applied, labels) = refs.labels();
    let mut texts = texts(store).await?;
    let model = tokio::task::spawn_blocking(move || {
        let mut ids: Vec<(i64, Label)> = labels.into_iter().collect();
        ids.sort_unstable_by_key(|(id, _)| *id);
        // A reference deleted since the snapshot has no text: left out.
        let (t, l): (Vec<String>, Vec<Label>) = ids
            .into_iter()
            .filter_map(|(id, label)| texts.remove(&id).map(|t| (t, label)))
            .unzip();
        let t: Vec<&str> = t.iter().map(String::as_str).collect();
        let fit = || Classifier::fit(&t, &l, &ClassifierConfig::default());
        match threads.and_then(|n| rayon::ThreadPoolBuilder::new().num_threads(n).build().ok()) {
            Some(pool) => pool.install(fit),
            None => fit(),
        }
    })
    .await
    .map_err(|_| DetectError::Worker(crate::encoder::WorkerError::Failed))?;
    Ok((model, applied))
}

impl Supervised {
    pub fn new(weight: f64, store: Arc<dyn Store>, live: Arc<Live>) -> Self {
        Self {
            weight,
            store,
            live,
            current: RwLock::new(None),
            fitting: tokio::sync::Mutex::new(()),
        }
    }

    pub fn weight(&self) -> f64 {
        self.weight
    }

    /// The current fit, if there is one.
    pub fn current(&self) -> Option<Arc<Fitted>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn status(&self) -> Status {
        let f = self.current();
        Status {
            weight: self.weight,
            features: ClassifierConfig::default().tag(),
            fitted_on: f.as_ref().map(|f| f.model.fitted_on),
            applied: f.as_ref().map(|f| f.applied),
            terms: f.as_ref().map(|f| f.model.terms()),
            seconds: f.as_ref().map(|f| f.seconds),
        }
    }

    /// Refits when the live set has moved past the current fit; `true`
    /// when it did. A set with one label only keeps the previous fit.
    pub async fn refit(&self) -> Result<bool, DetectError> {
        self.refit_on(None).await
    }

    /// [`Self::refit`] on `threads` threads (`None`: all of the global pool).
    async fn refit_on(&self, threads: Option<usize>) -> Result<bool, DetectError> {
        let _one = self.fitting.lock().await;
        let refs = self.live.snapshot();
        if self.current().is_some_and(|f| f.applied == refs.applied()) {
            return Ok(false);
        }
        let started = Instant::now();
        let (fitted, applied) = fit_store_on(self.store.as_ref(), &refs, threads).await?;
        let seconds = started.elapsed().as_secs_f64();
        let Some(model) = fitted else {
            return Ok(false);
        };
        tracing::info!(
            references = model.fitted_on,
            terms = model.terms(),
            iterations = model.iterations,
            seconds,
            applied,
            "classifier fitted"
        );
        crate::metrics::stage("classifier_fit", seconds);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(Fitted {
            model,
            applied,
            seconds,
        }));
        Ok(true)
    }

    /// Refits whenever the live set moves on, until the process ends. A
    /// refit runs on one thread, so that detection keeps the other cores.
    pub async fn follow(self: Arc<Self>, poll: Duration) {
        loop {
            tokio::time::sleep(poll).await;
            match self.refit_on(Some(1)).await {
                Ok(true) => {
                    // Rest as long as the fit took.
                    let took = self.current().map_or(0.0, |f| f.seconds);
                    tokio::time::sleep(Duration::from_secs_f64(took)).await;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot refit the classifier"),
            }
        }
    }

    /// Probabilities of machine authorship for `texts` (`None` before the
    /// first fit, and for a text with no term the classifier knows).
    pub fn predict(&self, texts: &[&str]) -> Vec<Option<f64>> {
        let f = self.current();
        texts
            .iter()
            .map(|t| f.as_ref().and_then(|f| f.model.predict(t)))
            .collect()
    }
}

//! PostgreSQL store for shared deployments.
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::Mutex;

use super::keys::impl_key_store;
use super::sql::impl_store;
use super::StoreError;

/// The channel on which writers announce a change of the references.
const CHANNEL: &str = "detective_reference";

pub struct PgStore {
    pool: PgPool,
    /// Subscribed to [`CHANNEL`] on first use; reconnects by itself.
    listener: Mutex<Option<PgListener>>,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            // A database that is down fails requests in seconds (503), not
            // after sqlx's default half-minute wait.
            .acquire_timeout(Duration::from_secs(3))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self {
            pool,
            listener: Mutex::new(None),
        })
    }

    async fn wait_for_change(&self, timeout: Duration) {
        let mut guard = self.listener.lock().await;
        if guard.is_none() {
            match PgListener::connect_with(&self.pool).await {
                Ok(mut l) => match l.listen(CHANNEL).await {
                    Ok(()) => *guard = Some(l),
                    Err(e) => tracing::warn!(error = %e, "cannot listen for reference changes"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot listen for reference changes"),
            }
        }
        match guard.as_mut() {
            Some(l) => {
                // Err: no notification in time. Ok(Err)/Ok(None): the
                // connection dropped; the listener reconnects and listens
                // again on the next call.
                if let Ok(Err(e)) = tokio::time::timeout(timeout, l.try_recv()).await {
                    tracing::warn!(error = %e, "listening for reference changes");
                    *guard = None;
                    drop(guard);
                    tokio::time::sleep(timeout).await;
                }
            }
            None => {
                drop(guard);
                tokio::time::sleep(timeout).await;
            }
        }
    }
}

impl_store!(
    PgStore,
    sqlx::postgres::PgRow,
    super::sql::Feed {
        lock: Some("SELECT pg_advisory_xact_lock(7270331)"),
        notify: Some("SELECT pg_notify('detective_reference', '')"),
    }
);
impl_key_store!(PgStore, sqlx::postgres::PgRow);

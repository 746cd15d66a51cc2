//! PostgreSQL store for shared deployments.
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use super::keys::impl_key_store;
use super::sql::impl_store;
use super::StoreError;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new().max_connections(8).connect(url).await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

impl_store!(PgStore, sqlx::postgres::PgRow);
impl_key_store!(PgStore, sqlx::postgres::PgRow);

//! The SQL both stores run, and the macro that implements [`Store`] for a
//! sqlx pool type. SQLite and PostgreSQL accept the same statements here, so
//! the two implementations differ only in connection set-up and migrations.
//!
//! [`Store`]: super::Store

/// The next sequence number of the change feed. Writers are serialised
/// (SQLite has one writer; PostgreSQL writers take [`Feed::lock`] first), so
/// numbers are assigned in commit order and a reader never skips one.
macro_rules! next_seq {
    () => {
        "(SELECT COALESCE(MAX(seq), 0) + 1 FROM reference)"
    };
}

pub const INSERT: &str = concat!(
    "INSERT INTO reference (text, text_sha256, label, model, family, source, \
     domain, attack, lang, group_key, embedding, encoder_name, encoder_checksum, \
     encoder_max_length, added_by, added_at, seq) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, ",
    next_seq!(),
    ") ON CONFLICT (text_sha256) DO NOTHING RETURNING id"
);
pub const FIND_BY_HASH: &str =
    "SELECT id, deleted_at IS NOT NULL AS deleted FROM reference WHERE text_sha256 = $1";
pub const RESTORE: &str = concat!(
    "UPDATE reference SET deleted_at = NULL, label = $2, model = $3, family = $4, \
     embedding = $5, encoder_name = $6, encoder_checksum = $7, encoder_max_length = $8, seq = ",
    next_seq!(),
    " WHERE id = $1"
);
pub const GET: &str = "SELECT * FROM reference WHERE id = $1";
pub const DELETE: &str = concat!(
    "UPDATE reference SET deleted_at = $2, seq = ",
    next_seq!(),
    " WHERE id = $1 AND deleted_at IS NULL"
);
pub const CHANGES: &str =
    "SELECT id, seq, deleted_at IS NOT NULL AS deleted, label, model, family, source, group_key, \
     embedding FROM reference WHERE seq > $1 ORDER BY seq LIMIT $2";
pub const LAST_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) AS seq FROM reference";

/// What differs between the two databases around the change feed.
pub struct Feed {
    /// Run first in every writing transaction: serialises writers so that
    /// sequence numbers are assigned in commit order.
    pub lock: Option<&'static str>,
    /// Run last in every writing transaction: wakes the other replicas
    /// (delivered on commit).
    pub notify: Option<&'static str>,
}
pub const VECTORS: &str =
    "SELECT id, label, model, family, source, group_key, embedding FROM reference \
     WHERE deleted_at IS NULL AND id > $1 ORDER BY id LIMIT $2";
pub const ENCODERS: &str =
    "SELECT encoder_name, encoder_checksum, encoder_max_length, COUNT(*) AS n \
     FROM reference WHERE deleted_at IS NULL \
     GROUP BY encoder_name, encoder_checksum, encoder_max_length ORDER BY n DESC";
pub const TEXTS: &str =
    "SELECT id, text FROM reference WHERE deleted_at IS NULL AND id > $1 ORDER BY id LIMIT $2";
pub const SET_EMBEDDING: &str = "UPDATE reference SET embedding = $2, encoder_name = $3, \
     encoder_checksum = $4, encoder_max_length = $5 WHERE id = $1";
pub const COUNT_LABELS: &str =
    "SELECT label, COUNT(*) AS n FROM reference WHERE deleted_at IS NULL GROUP BY label";
pub const COUNT_FAMILIES: &str =
    "SELECT COALESCE(family, 'unknown') AS family, COUNT(*) AS n FROM reference \
     WHERE deleted_at IS NULL GROUP BY COALESCE(family, 'unknown')";
pub const COUNT_DELETED: &str = "SELECT COUNT(*) AS n FROM reference WHERE deleted_at IS NOT NULL";
pub const SAVE_CALIBRATION: &str = "INSERT INTO calibration (encoder_name, encoder_checksum, \
     encoder_max_length, body, created_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (encoder_name, encoder_checksum, encoder_max_length) \
     DO UPDATE SET body = excluded.body, created_at = excluded.created_at";
pub const CALIBRATION: &str = "SELECT body FROM calibration WHERE encoder_name = $1 \
     AND encoder_checksum = $2 AND encoder_max_length = $3";

/// Ends a writing transaction's use of its connection. A connection whose
/// transaction failed is closed, not returned to the pool: on "database or
/// disk is full" SQLite rolls the whole transaction back by itself, the
/// driver's own rollback then fails and it still counts the transaction as
/// open, so its next `BEGIN` on that connection would be a savepoint that
/// is never committed while the write is acknowledged. Closing rolls back
/// whatever is open, and the pool opens a clean connection.
pub async fn keep_if_clean<DB: sqlx::Database, T>(
    conn: sqlx::pool::PoolConnection<DB>,
    written: Result<T, super::StoreError>,
) -> Result<T, super::StoreError> {
    if written.is_err() {
        if let Err(e) = conn.close().await {
            tracing::debug!(error = %e, "closing a connection after a failed write");
        }
    }
    written
}

/// Runs `$body` inside a transaction `$tx` on a connection of its own,
/// commits, and closes the connection if anything failed ([`keep_if_clean`]).
macro_rules! write_tx {
    ($pool:expr, |$tx:ident| $body:block) => {{
        let mut conn = $pool.acquire().await?;
        let written = async {
            let mut $tx = sqlx::Connection::begin(&mut *conn).await?;
            let out = $body;
            $tx.commit().await?;
            Ok::<_, $crate::store::StoreError>(out)
        }
        .await;
        $crate::store::sql::keep_if_clean(conn, written).await
    }};
}
pub(crate) use write_tx;

/// Implements `Store` for a struct with a `pool` field of a sqlx pool type.
macro_rules! impl_store {
    ($store:ty, $row:ty, $feed:expr) => {
        const FEED: $crate::store::sql::Feed = $feed;

        fn row_to_vector(r: &$row) -> Result<$crate::store::VectorRow, $crate::store::StoreError> {
            use sqlx::Row;
            let id: i64 = r.try_get("id")?;
            let label: String = r.try_get("label")?;
            let bytes: Vec<u8> = r.try_get("embedding")?;
            Ok($crate::store::VectorRow {
                id,
                label: label
                    .parse()
                    .map_err(|reason| $crate::store::StoreError::Corrupt { id, reason })?,
                model: r.try_get("model")?,
                family: r.try_get("family")?,
                source: r.try_get("source")?,
                group: r.try_get("group_key")?,
                embedding: $crate::store::decode_vector(id, &bytes)?,
            })
        }

        fn row_to_reference(
            r: &$row,
        ) -> Result<$crate::store::Reference, $crate::store::StoreError> {
            use sqlx::Row;
            let id: i64 = r.try_get("id")?;
            let label: String = r.try_get("label")?;
            Ok($crate::store::Reference {
                id,
                text: r.try_get("text")?,
                text_sha256: r.try_get("text_sha256")?,
                label: label
                    .parse()
                    .map_err(|reason| $crate::store::StoreError::Corrupt { id, reason })?,
                model: r.try_get("model")?,
                family: r.try_get("family")?,
                source: r.try_get("source")?,
                domain: r.try_get("domain")?,
                attack: r.try_get("attack")?,
                lang: r.try_get("lang")?,
                group: r.try_get("group_key")?,
                encoder: $crate::vocab::EncoderId {
                    name: r.try_get("encoder_name")?,
                    checksum: r.try_get("encoder_checksum")?,
                    max_length: r.try_get::<i32, _>("encoder_max_length")? as usize,
                },
                added_by: r.try_get("added_by")?,
                added_at: r.try_get("added_at")?,
                deleted_at: r.try_get("deleted_at")?,
            })
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn insert(
                &self,
                items: &[$crate::store::NewReference],
                embeddings: &[Vec<f32>],
                encoder: &$crate::vocab::EncoderId,
            ) -> Result<Vec<$crate::store::Inserted>, $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::sql;
                if items.len() != embeddings.len() {
                    return Err($crate::store::StoreError::Mismatch(
                        embeddings.len(),
                        items.len(),
                    ));
                }
                let now = chrono::Utc::now();
                let max_length = encoder.max_length as i32;
                $crate::store::sql::write_tx!(self.pool, |tx| {
                    if let Some(lock) = FEED.lock {
                        sqlx::query(lock).execute(&mut *tx).await?;
                    }
                    let mut out = Vec::with_capacity(items.len());
                    for (item, emb) in items.iter().zip(embeddings) {
                        let hash = $crate::store::text_sha256(&item.text);
                        let bytes = $crate::store::encode_vector(emb);
                        let row = sqlx::query(sql::INSERT)
                            .bind(&item.text)
                            .bind(&hash)
                            .bind(item.label.as_str())
                            .bind(&item.model)
                            .bind(&item.family)
                            .bind(&item.source)
                            .bind(&item.domain)
                            .bind(&item.attack)
                            .bind(&item.lang)
                            .bind(&item.group)
                            .bind(&bytes)
                            .bind(&encoder.name)
                            .bind(&encoder.checksum)
                            .bind(max_length)
                            .bind(&item.added_by)
                            .bind(now)
                            .fetch_optional(&mut *tx)
                            .await?;
                        if let Some(row) = row {
                            out.push($crate::store::Inserted {
                                id: row.try_get("id")?,
                                created: true,
                            });
                            continue;
                        }
                        let found = sqlx::query(sql::FIND_BY_HASH)
                            .bind(&hash)
                            .fetch_one(&mut *tx)
                            .await?;
                        let id: i64 = found.try_get("id")?;
                        let deleted: bool = found.try_get("deleted")?;
                        if deleted {
                            sqlx::query(sql::RESTORE)
                                .bind(id)
                                .bind(item.label.as_str())
                                .bind(&item.model)
                                .bind(&item.family)
                                .bind(&bytes)
                                .bind(&encoder.name)
                                .bind(&encoder.checksum)
                                .bind(max_length)
                                .execute(&mut *tx)
                                .await?;
                        }
                        out.push($crate::store::Inserted {
                            id,
                            created: deleted,
                        });
                    }
                    $crate::hold::wait_named("insert");
                    if let Some(notify) = FEED.notify {
                        if out.iter().any(|i| i.created) {
                            sqlx::query(notify).execute(&mut *tx).await?;
                        }
                    }
                    out
                })
            }

            async fn existing(
                &self,
                hashes: &[String],
            ) -> Result<std::collections::HashSet<String>, $crate::store::StoreError> {
                use sqlx::Row;
                let mut found = std::collections::HashSet::new();
                for chunk in hashes.chunks(500) {
                    let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
                    let q = format!(
                        "SELECT text_sha256 FROM reference WHERE text_sha256 IN ({})",
                        marks.join(",")
                    );
                    // Only placeholders are interpolated; values are bound.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(q));
                    for h in chunk {
                        query = query.bind(h);
                    }
                    for row in query.fetch_all(&self.pool).await? {
                        found.insert(row.try_get("text_sha256")?);
                    }
                }
                Ok(found)
            }

            async fn get(
                &self,
                id: i64,
            ) -> Result<Option<$crate::store::Reference>, $crate::store::StoreError> {
                let row = sqlx::query($crate::store::sql::GET)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(row_to_reference).transpose()
            }

            async fn delete(&self, id: i64) -> Result<bool, $crate::store::StoreError> {
                $crate::store::sql::write_tx!(self.pool, |tx| {
                    if let Some(lock) = FEED.lock {
                        sqlx::query(lock).execute(&mut *tx).await?;
                    }
                    let done = sqlx::query($crate::store::sql::DELETE)
                        .bind(id)
                        .bind(chrono::Utc::now())
                        .execute(&mut *tx)
                        .await?;
                    let done = done.rows_affected() == 1;
                    if let (true, Some(notify)) = (done, FEED.notify) {
                        sqlx::query(notify).execute(&mut *tx).await?;
                    }
                    done
                })
            }

            async fn changes(
                &self,
                after: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::Change>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query($crate::store::sql::CHANGES)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        let deleted: bool = r.try_get("deleted")?;
                        Ok($crate::store::Change {
                            seq: r.try_get("seq")?,
                            id: r.try_get("id")?,
                            row: if deleted {
                                None
                            } else {
                                Some(row_to_vector(r)?)
                            },
                        })
                    })
                    .collect()
            }

            async fn last_seq(&self) -> Result<i64, $crate::store::StoreError> {
                use sqlx::Row;
                Ok(sqlx::query($crate::store::sql::LAST_SEQ)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("seq")?)
            }

            async fn wait_change(&self, timeout: std::time::Duration) {
                self.wait_for_change(timeout).await;
            }

            async fn vectors(
                &self,
                after_id: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::VectorRow>, $crate::store::StoreError> {
                let rows = sqlx::query($crate::store::sql::VECTORS)
                    .bind(after_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(row_to_vector).collect()
            }

            async fn encoders(
                &self,
            ) -> Result<Vec<($crate::vocab::EncoderId, i64)>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query($crate::store::sql::ENCODERS)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            $crate::vocab::EncoderId {
                                name: r.try_get("encoder_name")?,
                                checksum: r.try_get("encoder_checksum")?,
                                max_length: r.try_get::<i32, _>("encoder_max_length")? as usize,
                            },
                            r.try_get("n")?,
                        ))
                    })
                    .collect()
            }

            async fn texts(
                &self,
                after_id: i64,
                limit: i64,
            ) -> Result<Vec<(i64, String)>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query($crate::store::sql::TEXTS)
                    .bind(after_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("id")?, r.try_get("text")?)))
                    .collect()
            }

            async fn set_embeddings(
                &self,
                rows: &[(i64, Vec<f32>)],
                encoder: &$crate::vocab::EncoderId,
            ) -> Result<(), $crate::store::StoreError> {
                $crate::store::sql::write_tx!(self.pool, |tx| {
                    for (id, emb) in rows {
                        sqlx::query($crate::store::sql::SET_EMBEDDING)
                            .bind(id)
                            .bind($crate::store::encode_vector(emb))
                            .bind(&encoder.name)
                            .bind(&encoder.checksum)
                            .bind(encoder.max_length as i32)
                            .execute(&mut *tx)
                            .await?;
                    }
                })
            }

            async fn counts(&self) -> Result<$crate::store::Counts, $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::sql;
                let mut counts = $crate::store::Counts::default();
                for r in sqlx::query(sql::COUNT_LABELS).fetch_all(&self.pool).await? {
                    let n: i64 = r.try_get("n")?;
                    counts.total += n;
                    counts.by_label.insert(r.try_get("label")?, n);
                }
                for r in sqlx::query(sql::COUNT_FAMILIES)
                    .fetch_all(&self.pool)
                    .await?
                {
                    counts
                        .by_family
                        .insert(r.try_get("family")?, r.try_get("n")?);
                }
                counts.deleted = sqlx::query(sql::COUNT_DELETED)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("n")?;
                Ok(counts)
            }

            async fn save_calibration(
                &self,
                encoder: &$crate::vocab::EncoderId,
                body: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql::SAVE_CALIBRATION)
                    .bind(&encoder.name)
                    .bind(&encoder.checksum)
                    .bind(encoder.max_length as i32)
                    .bind(body)
                    .bind(chrono::Utc::now())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn calibration(
                &self,
                encoder: &$crate::vocab::EncoderId,
            ) -> Result<Option<String>, $crate::store::StoreError> {
                use sqlx::Row;
                let row = sqlx::query($crate::store::sql::CALIBRATION)
                    .bind(&encoder.name)
                    .bind(&encoder.checksum)
                    .bind(encoder.max_length as i32)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| r.try_get("body")).transpose()?)
            }
        }
    };
}
pub(crate) use impl_store;

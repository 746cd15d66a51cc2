//! API keys and their scopes. Keys are random strings shown once at
//! creation; the store keeps only their SHA-256. A presented key is looked
//! up by its non-secret prefix and its hash compared in constant time, so
//! neither the lookup nor the comparison leaks how much of a guess was
//! right. `DETECTIVE_ADMIN_KEY` adds a bootstrap key with every scope that
//! lives only in the environment.
//!
//! Answers are cached by key hash for a few seconds ([`CACHE_TTL`]), found
//! or not, so a busy client (or one flooding a wrong key) costs one store
//! query per key per TTL; a revoked key stops working within the TTL. The
//! cache holds at most [`CACHE_ENTRIES`] keys and is emptied when full, so
//! a flood of distinct random keys cannot grow it. While the store cannot
//! be reached, answers up to [`STALE_TTL`] old are reused (no key can be
//! revoked meanwhile), so detection outlives a database restart.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{Store, StoreError};

const KEY_TAG: &str = "dtk_";
const PREFIX_LEN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// `POST /detect`.
    Detect,
    /// `POST /reference`, `GET /reference/{id}`.
    ReferenceWrite,
    /// Everything, including `DELETE /reference/{id}`.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Detect, Scope::ReferenceWrite, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Detect => "detect",
            Self::ReferenceWrite => "reference:write",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|sc| sc.as_str() == s)
            .ok_or_else(|| {
                format!("unknown scope {s:?} (expected detect, reference:write or admin)")
            })
    }
}

/// Who made a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// `admin` grants every scope.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }
}

/// How long an answer about a key is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// How long an answer is reused while the store cannot be reached.
pub const STALE_TTL: Duration = Duration::from_secs(600);
/// Most keys cached at once.
pub const CACHE_ENTRIES: usize = 10_000;

pub struct KeyRing {
    store: Arc<dyn Store>,
    bootstrap: Option<[u8; 32]>,
    ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

/// When a key was looked up, and whom it named (if anyone).
type Cached = (Instant, Option<Principal>);

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl KeyRing {
    pub fn new(store: Arc<dyn Store>, bootstrap_key: Option<&str>) -> Self {
        Self {
            store,
            bootstrap: bootstrap_key.filter(|k| !k.is_empty()).map(digest),
            ttl: CACHE_TTL,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The same ring reusing answers for `ttl` (zero: never).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn has_bootstrap(&self) -> bool {
        self.bootstrap.is_some()
    }

    /// The principal a presented key belongs to, if any.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<Principal>, StoreError> {
        let hash = digest(presented);
        if let Some(boot) = &self.bootstrap {
            if bool::from(boot.ct_eq(&hash)) {
                return Ok(Some(Principal {
                    name: "admin (DETECTIVE_ADMIN_KEY)".into(),
                    scopes: vec![Scope::Admin],
                }));
            }
        }
        let Some(prefix) = prefix_of(presented) else {
            return Ok(None);
        };
        let cached = self.cached(&hash);
        if let Some((at, found)) = &cached {
            if at.elapsed() < self.ttl {
                return Ok(found.clone());
            }
        }
        let hex_hash = hex::encode(hash);
        let mut found = None;
        let rows = match self.store.keys_by_prefix(prefix).await {
            Ok(rows) => rows,
            // While the store is down no key can be revoked either, so a
            // recent answer stays true: detection goes on from memory.
            Err(e) if e.is_unavailable() => match cached {
                Some((at, found)) if at.elapsed() < STALE_TTL => return Ok(found),
                _ => return Err(e),
            },
            Err(e) => return Err(e),
        };
        for (key, stored) in rows {
            if bool::from(stored.as_bytes().ct_eq(hex_hash.as_bytes())) {
                let scopes = key.scopes.iter().filter_map(|s| s.parse().ok()).collect();
                found = Some(Principal {
                    name: key.name,
                    scopes,
                });
                break;
            }
        }
        if !self.ttl.is_zero() {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(hash, (Instant::now(), found.clone()));
        }
        Ok(found)
    }

    fn cached(&self, hash: &[u8; 32]) -> Option<Cached> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .cloned()
    }
}

fn prefix_of(key: &str) -> Option<&str> {
    key.strip_prefix(KEY_TAG)
        .and_then(|rest| rest.get(..PREFIX_LEN))
}

/// Creates a key; returns its row id and the key, which is not stored and
/// cannot be shown again.
pub async fn create_key(
    store: &dyn Store,
    name: &str,
    scopes: &[Scope],
) -> Result<(i64, String), StoreError> {
    let mut secret = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let key = format!("{KEY_TAG}{}", hex::encode(secret));
    let prefix = prefix_of(&key).expect("generated keys are long enough");
    let mut names: Vec<String> = scopes.iter().map(|s| s.as_str().to_owned()).collect();
    names.sort();
    names.dedup();
    let id = store
        .create_key(name, prefix, &hex::encode(digest(&key)), &names)
        .await?;
    Ok((id, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_admin_implies_all() {
        assert_eq!(
            "reference:write".parse::<Scope>(),
            Ok(Scope::ReferenceWrite)
        );
        assert!("write".parse::<Scope>().is_err());
        let admin = Principal {
            name: "a".into(),
            scopes: vec![Scope::Admin],
        };
        assert!(Scope::ALL.iter().all(|&s| admin.allows(s)));
        let reader = Principal {
            name: "r".into(),
            scopes: vec![Scope::Detect],
        };
        assert!(reader.allows(Scope::Detect));
        assert!(!reader.allows(Scope::ReferenceWrite));
    }

    /// Within the TTL a revoked key still answers from the cache; with a
    /// zero TTL revocation is seen at once; unknown keys are answered too.
    #[tokio::test]
    async fn lookups_are_cached_for_the_ttl_and_revocation_is_seen_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(dir.path().join("k.db").to_str().unwrap())
            .await
            .unwrap();
        let (id, key) = create_key(store.as_ref(), "client", &[Scope::Detect])
            .await
            .unwrap();
        let cached = KeyRing::new(store.clone(), None).with_ttl(Duration::from_secs(3600));
        let fresh = KeyRing::new(store.clone(), None).with_ttl(Duration::ZERO);
        assert_eq!(
            cached.authenticate(&key).await.unwrap().unwrap().name,
            "client"
        );
        assert!(fresh.authenticate(&key).await.unwrap().is_some());
        assert!(store.revoke_key(id).await.unwrap());
        assert!(
            cached.authenticate(&key).await.unwrap().is_some(),
            "answered from the cache"
        );
        assert!(fresh.authenticate(&key).await.unwrap().is_none());
        let wrong = format!("{KEY_TAG}{}", "0".repeat(48));
        assert!(cached.authenticate(&wrong).await.unwrap().is_none());
        assert!(cached.authenticate(&wrong).await.unwrap().is_none());
    }

    #[test]
    fn prefix_needs_the_tag_and_length() {
        assert_eq!(prefix_of("dtk_0123456789abcdef"), Some("01234567"));
        assert_eq!(prefix_of("dtk_0123"), None);
        assert_eq!(prefix_of("0123456789abcdef"), None);
    }
}

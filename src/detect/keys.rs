//! API keys and their scopes. Keys are random strings shown once at
//! creation; the store keeps only their SHA-256. A presented key is looked
//! up by its non-secret prefix and its hash compared in constant time, so
//! neither the lookup nor the comparison leaks how much of a guess was
//! right. `DETECTIVE_ADMIN_KEY` adds a bootstrap key with every scope that
//! lives only in the environment.
use std::sync::Arc;

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

pub struct KeyRing {
    store: Arc<dyn Store>,
    bootstrap: Option<[u8; 32]>,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl KeyRing {
    pub fn new(store: Arc<dyn Store>, bootstrap_key: Option<&str>) -> Self {
        Self {
            store,
            bootstrap: bootstrap_key.filter(|k| !k.is_empty()).map(digest),
        }
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
        let hex_hash = hex::encode(hash);
        for (key, stored) in self.store.keys_by_prefix(prefix).await? {
            if bool::from(stored.as_bytes().ct_eq(hex_hash.as_bytes())) {
                let scopes = key.scopes.iter().filter_map(|s| s.parse().ok()).collect();
                return Ok(Some(Principal {
                    name: key.name,
                    scopes,
                }));
            }
        }
        Ok(None)
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

    #[test]
    fn prefix_needs_the_tag_and_length() {
        assert_eq!(prefix_of("dtk_0123456789abcdef"), Some("01234567"));
        assert_eq!(prefix_of("dtk_0123"), None);
        assert_eq!(prefix_of("0123456789abcdef"), None);
    }
}

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::vocab::{EncoderId, Label};

/// A reference to add.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewReference {
    pub text: String,
    pub label: Label,
    pub model: Option<String>,
    pub family: Option<String>,
    pub source: Option<String>,
    pub domain: Option<String>,
    pub attack: Option<String>,
    pub lang: Option<String>,
    pub group: Option<String>,
    pub added_by: String,
}

impl NewReference {
    /// A text and its label, with no provenance.
    pub fn plain(text: impl Into<String>, label: Label, added_by: &str) -> Self {
        Self {
            text: text.into(),
            label,
            model: None,
            family: None,
            source: None,
            domain: None,
            attack: None,
            lang: None,
            group: None,
            added_by: added_by.to_owned(),
        }
    }
}

/// A stored reference.
#[derive(Debug, Clone, Serialize)]
pub struct Reference {
    pub id: i64,
    pub text: String,
    pub text_sha256: String,
    pub label: Label,
    pub model: Option<String>,
    pub family: Option<String>,
    pub source: Option<String>,
    pub domain: Option<String>,
    pub attack: Option<String>,
    pub lang: Option<String>,
    pub group: Option<String>,
    pub encoder: EncoderId,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// What the index and the vote need of a reference.
#[derive(Debug, Clone)]
pub struct VectorRow {
    pub id: i64,
    pub label: Label,
    pub model: Option<String>,
    pub family: Option<String>,
    pub source: Option<String>,
    /// Texts derived from one document share a group (validation splits
    /// never cut through one).
    pub group: Option<String>,
    pub embedding: Vec<f32>,
}

/// One entry of the change feed: the current state of a reference whose
/// latest change got sequence number `seq`. `row` is `None` when the
/// reference is deleted.
#[derive(Debug, Clone)]
pub struct Change {
    pub seq: i64,
    pub id: i64,
    pub row: Option<VectorRow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Inserted {
    pub id: i64,
    pub created: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub total: i64,
    pub deleted: i64,
    pub by_label: std::collections::BTreeMap<String, i64>,
    pub by_family: std::collections::BTreeMap<String, i64>,
}

/// SHA-256 (hex) of the text in Unicode NFC with whitespace runs collapsed
/// to one space and trimmed: texts that differ only in spacing, or in how
/// an accented letter is encoded, are one reference. A text already in NFC
/// (nearly every text) hashes as it did before NFC was applied, so stored
/// hashes stay valid.
pub fn text_sha256(text: &str) -> String {
    use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};
    let nfc: std::borrow::Cow<str> = match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => text.into(),
        _ => text.nfc().collect::<String>().into(),
    };
    let normalised = nfc.split_whitespace().collect::<Vec<_>>().join(" ");
    hex::encode(Sha256::digest(normalised.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_whitespace_differences() {
        assert_eq!(text_sha256("a  b\n c "), text_sha256("a b c"));
        assert_ne!(text_sha256("a b c"), text_sha256("a b d"));
        // Matches the corpus ids: first 16 hex chars of sha256(' '.join(text.split())).
        assert_eq!(
            &text_sha256("Hello world.")[..16],
            &hex::encode(Sha256::digest(b"Hello world."))[..16]
        );
    }

    #[test]
    fn hash_ignores_unicode_encoding_differences() {
        // "é" precomposed, and "e" + combining acute accent.
        assert_eq!(
            text_sha256("caf\u{e9} au lait"),
            text_sha256("cafe\u{301}  au lait")
        );
        assert_ne!(
            text_sha256("cafe au lait"),
            text_sha256("caf\u{e9} au lait")
        );
    }

    #[test]
    fn labels_parse_strictly() {
        assert_eq!("human".parse::<Label>(), Ok(Label::Human));
        assert!("Human".parse::<Label>().is_err());
        assert!("ai".parse::<Label>().is_err());
    }
}

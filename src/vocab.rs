//! The shared vocabulary of the layers: what a reference is labelled, and
//! which encoder made a vector. A leaf module, so that `store`, `encoder`
//! and `index` need not import each other to speak of them.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Human,
    Machine,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Machine => "machine",
        }
    }
}

impl std::str::FromStr for Label {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "human" => Ok(Self::Human),
            "machine" => Ok(Self::Machine),
            other => Err(format!(
                "unknown label {other:?} (expected \"human\" or \"machine\")"
            )),
        }
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of the encoder that produced a vector: vectors from different
/// identities are never compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderId {
    pub name: String,
    /// SHA-256 of `model.safetensors`.
    pub checksum: String,
    pub max_length: usize,
}

impl std::fmt::Display for EncoderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = &self.checksum[..self.checksum.len().min(12)];
        write!(f, "{}@{}/{}", self.name, short, self.max_length)
    }
}

//! The default reference set shipped in `references/default/`: texts and
//! labels derived from the training corpus, plus their embeddings for the
//! default encoder (f16, keyed by the encoder's identity), so a fresh
//! installation can detect without embedding thousands of texts first.
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use half::f16;

use super::import::parse_record;
use super::DetectError;
use crate::encoder::{Embed, EncoderId};
use crate::store::{NewReference, Store};

pub const TEXTS_FILE: &str = "references.jsonl.gz";

/// Folder of the default references: `$DETECTIVE_REFERENCES`,
/// `./references/default`, or the source tree's.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DETECTIVE_REFERENCES") {
        return PathBuf::from(d);
    }
    let local = PathBuf::from("references/default");
    if local.join(TEXTS_FILE).is_file() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("references/default")
}

/// File name of the embeddings for one encoder.
pub fn embeddings_file(encoder: &EncoderId) -> String {
    let short = &encoder.checksum[..encoder.checksum.len().min(16)];
    format!(
        "embeddings-{}-{short}-{}.f16",
        encoder.name, encoder.max_length
    )
}

/// Reads the shipped texts (gzip JSONL, corpus record format).
pub fn load_texts(dir: &Path) -> std::io::Result<Vec<NewReference>> {
    let file = std::fs::File::open(dir.join(TEXTS_FILE))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(GzDecoder::new(file)).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let r = parse_record(&line, "default-references").map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{TEXTS_FILE} line {}: {e}", i + 1),
            )
        })?;
        out.push(r);
    }
    Ok(out)
}

/// Shipped embeddings for `encoder`, renormalised after the f16 round trip;
/// `None` if none ship for it or the file does not hold `n` x `dim` values.
pub fn load_embeddings(
    dir: &Path,
    encoder: &EncoderId,
    n: usize,
    dim: usize,
) -> Option<Vec<Vec<f32>>> {
    let mut bytes = Vec::new();
    std::fs::File::open(dir.join(embeddings_file(encoder)))
        .ok()?
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() != n * dim * 2 {
        return None;
    }
    let flat: Vec<f32> = bytes
        .chunks_exact(2)
        .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    Some(
        flat.chunks(dim)
            .map(|v| {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter().map(|x| x / norm).collect()
            })
            .collect(),
    )
}

/// Writes embeddings as f16 for shipping.
pub fn write_embeddings(path: &Path, vectors: &[Vec<f32>]) -> std::io::Result<()> {
    let bytes: Vec<u8> = vectors
        .iter()
        .flatten()
        .flat_map(|x| f16::from_f32(*x).to_le_bytes())
        .collect();
    std::fs::write(path, bytes)
}

/// Fills an empty store with the shipped default references, using the
/// shipped embeddings when they were made by this encoder and embedding the
/// texts otherwise (`progress(done, total)` while it does). Returns how many
/// were stored; a store that holds or held references is left alone.
pub async fn if_empty(
    store: &dyn Store,
    encoder: &dyn Embed,
    progress: &dyn Fn(u64, u64),
) -> Result<usize, DetectError> {
    let counts = store.counts().await?;
    if counts.total > 0 || counts.deleted > 0 {
        return Ok(0);
    }
    let dir = default_dir();
    let texts = match load_texts(&dir) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "no default references");
            return Ok(0);
        }
    };
    let (base_id, base_dim) = encoder.base();
    let vectors = match load_embeddings(&dir, base_id, texts.len(), base_dim) {
        Some(v) => {
            let t: Vec<&str> = texts.iter().map(|r| r.text.as_str()).collect();
            encoder.finish(&t, v)
        }
        None => {
            tracing::info!(
                texts = texts.len(),
                encoder = %encoder.id(),
                "embedding the default references (no shipped embeddings for this encoder)"
            );
            let mut out = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(256) {
                let t: Vec<&str> = chunk.iter().map(|r| r.text.as_str()).collect();
                out.extend(encoder.embed(&t).map_err(DetectError::Embed)?);
                progress(out.len() as u64, texts.len() as u64);
            }
            out
        }
    };
    for (items, vecs) in texts.chunks(1024).zip(vectors.chunks(1024)) {
        store.insert(items, vecs, encoder.id()).await?;
    }
    tracing::info!(
        references = texts.len(),
        "store seeded with the default references"
    );
    Ok(texts.len())
}

//! Embedding cache for evaluation: one file of f32 vectors per (encoder,
//! input file content), so repeated evaluations do not re-embed.
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::encoder::{registry::sha256_file, EncoderError, EncoderId};

pub fn cache_path(dir: &Path, encoder: &EncoderId, input: &Path) -> Result<PathBuf, EncoderError> {
    let file_sum = sha256_file(input)?;
    let key = Sha256::digest(
        format!(
            "{}|{}|{}",
            encoder.name, encoder.checksum, encoder.max_length
        ) + &file_sum,
    );
    Ok(dir.join(format!("{}.f32", &hex::encode(key)[..24])))
}

/// Vectors from the cache if it holds exactly `n` of dimension `dim`.
pub fn load(path: &Path, n: usize, dim: usize) -> Option<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() != n * dim * 4 {
        return None;
    }
    let flat: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some(flat.chunks(dim.max(1)).map(<[f32]>::to_vec).collect())
}

/// Vectors already written by an earlier, interrupted run (whole rows only).
pub fn load_partial(path: &Path, dim: usize) -> Vec<Vec<f32>> {
    let Ok(bytes) = std::fs::read(partial_path(path)) else {
        return Vec::new();
    };
    let row = dim * 4;
    bytes[..bytes.len() / row * row]
        .chunks_exact(row)
        .map(|r| {
            r.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
        .collect()
}

/// Appends rows to the partial file, so a killed run resumes where it stopped.
pub fn append_partial(
    path: &Path,
    done_before: usize,
    rows: &[Vec<f32>],
    dim: usize,
) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let partial = partial_path(path);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&partial)?;
    // Drop a torn tail row before appending.
    f.set_len((done_before * dim * 4) as u64)?;
    let bytes: Vec<u8> = rows
        .iter()
        .flatten()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let mut f = f;
    f.write_all(&bytes)?;
    f.sync_data()
}

fn partial_path(path: &Path) -> PathBuf {
    path.with_extension("partial")
}

/// Writes atomically (temp file + rename), so a killed run leaves no torn cache.
pub fn store(path: &Path, vectors: &[Vec<f32>]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes: Vec<u8> = vectors
        .iter()
        .flatten()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)?;
    let _ = std::fs::remove_file(partial_path(path));
    Ok(())
}

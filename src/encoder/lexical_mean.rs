//! The reference means a centred lexical view subtracts (see
//! [`Lexical::centre`]): the mean lexical vector of the shipped default
//! references, one per shape, compiled into the binary so that centring
//! stays training-free and deterministic. `detective lexical-mean`
//! recomputes the files in `lexical_mean/` with [`mean_vector`].
use std::sync::OnceLock;

use super::lexical::Lexical;

/// The shapes whose reference means ship in the binary: (min_n, max_n, dim,
/// little-endian f32 values).
const MEANS: &[(usize, usize, usize, &[u8])] = &[
    (2, 4, 1024, include_bytes!("lexical_mean/char2-4x1024.f32")),
    (2, 4, 2048, include_bytes!("lexical_mean/char2-4x2048.f32")),
    (2, 4, 4096, include_bytes!("lexical_mean/char2-4x4096.f32")),
];

/// The shipped reference mean for a shape, decoded once.
pub(super) fn shipped(min_n: usize, max_n: usize, dim: usize) -> Option<&'static [f32]> {
    static DECODED: OnceLock<Vec<Vec<f32>>> = OnceLock::new();
    let decoded = DECODED.get_or_init(|| {
        MEANS
            .iter()
            .map(|(_, _, _, bytes)| {
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            })
            .collect()
    });
    MEANS
        .iter()
        .zip(decoded)
        .find(|((a, b, d, _), v)| (*a, *b, *d) == (min_n, max_n, dim) && v.len() == dim)
        .map(|(_, v)| v.as_slice())
}

/// Shapes with a shipped mean, for error messages.
pub(super) fn centrable_shapes() -> String {
    MEANS
        .iter()
        .map(|(a, b, d, _)| format!("char{a}-{b}x{d}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The mean of the uncentred lexical vectors of `texts`: computed in
/// parallel a chunk at a time (memory stays bounded) and summed in f64 in
/// text order, so the result does not depend on the number of threads.
pub fn mean_vector(view: &Lexical, texts: &[&str]) -> Vec<f32> {
    use rayon::prelude::*;
    let view = view.uncentred();
    let mut sum = vec![0f64; view.dim];
    for chunk in texts.chunks(1024) {
        let vectors: Vec<Vec<f32>> = chunk.par_iter().map(|t| view.vector(t)).collect();
        for v in &vectors {
            for (s, x) in sum.iter_mut().zip(v) {
                *s += f64::from(*x);
            }
        }
    }
    let n = texts.len().max(1) as f64;
    sum.iter().map(|s| (s / n) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::dot;

    /// The shipped means are those of the shipped default references under
    /// this very hashing: a sample of those references averages to nearly
    /// the same vector (a change of the hash or weighting breaks this, and
    /// `detective lexical-mean` must then be rerun).
    #[test]
    fn shipped_means_match_the_default_references() {
        let records = crate::detect::seed::load_texts(&crate::detect::seed::default_dir())
            .expect("the default references ship with the source");
        let texts: Vec<&str> = records
            .iter()
            .step_by(20)
            .map(|r| r.text.as_str())
            .collect();
        assert!(texts.len() > 400, "{}", texts.len());
        for dim in [1024, 4096] {
            let shape = Lexical {
                dim,
                ..Lexical::default()
            };
            let sample = mean_vector(&shape, &texts);
            let shipped = shape.mean().unwrap();
            let cos =
                dot(&sample, shipped) / (dot(&sample, &sample) * dot(shipped, shipped)).sqrt();
            assert!(cos > 0.97, "dim {dim}: cosine {cos}");
            let norm = dot(shipped, shipped).sqrt();
            assert!((0.4..0.7).contains(&norm), "dim {dim}: norm {norm}");
        }
    }
}

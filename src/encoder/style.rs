//! The style space: the neural view, optionally fused with the lexical view.
//!
//! A fused style vector is the concatenation of the unit neural vector
//! scaled by `√α` and the unit lexical vector scaled by `√(1-α)`, so the dot
//! product of two style vectors, which the index and the vote use, is
//! `α·cos_neural + (1-α)·cos_lexical`: one index, one vote, both views.
//! The view's configuration is part of the vectors' [`EncoderId`] (its name
//! gains `+char2-4x2048a0.30`), so a store never mixes configurations and
//! changing one is a `detective reindex`.
use rayon::prelude::*;

use super::lexical::Lexical;
use super::{Embed, EncoderError, EncoderId};

/// How neural vectors become style vectors.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct View {
    /// The lexical view fused in, if any.
    pub lexical: Option<Lexical>,
    /// Weight of the neural view's cosine, in [0, 1]; the lexical view gets
    /// the rest.
    pub alpha: f32,
}

impl Default for View {
    fn default() -> Self {
        Self::neural()
    }
}

impl View {
    /// The neural view alone: vectors are the encoder's.
    pub fn neural() -> Self {
        Self {
            lexical: None,
            alpha: 1.0,
        }
    }

    pub fn fused(lexical: Lexical, alpha: f32) -> Self {
        Self {
            lexical: Some(lexical),
            alpha: alpha.clamp(0.0, 1.0),
        }
    }

    pub fn is_neural(&self) -> bool {
        self.lexical.is_none()
    }

    /// Dimension of style vectors made from `neural_dim`-dimensional ones.
    pub fn dim(&self, neural_dim: usize) -> usize {
        neural_dim + self.lexical.map_or(0, |l| l.dim)
    }

    /// Identity of the style vectors made from `neural`'s vectors.
    pub fn id(&self, neural: &EncoderId) -> EncoderId {
        match self.lexical {
            None => neural.clone(),
            Some(l) => EncoderId {
                name: format!("{}+{}a{:.2}", neural.name, l.tag(), self.alpha),
                ..neural.clone()
            },
        }
    }

    /// The lexical vector of a text, when the view has one (cheap: run it
    /// where the text is tokenized).
    pub fn lexical(&self, text: &str) -> Option<Vec<f32>> {
        self.lexical.map(|l| l.vector(text))
    }

    /// One style vector from a text's unit neural vector and its lexical
    /// vector (computed here when not given).
    pub fn fuse(&self, neural: Vec<f32>, lexical: Option<&[f32]>, text: Option<&str>) -> Vec<f32> {
        let Some(view) = self.lexical else {
            return neural;
        };
        let a = self.alpha.sqrt();
        let b = (1.0 - self.alpha).max(0.0).sqrt();
        let mut out = Vec::with_capacity(neural.len() + view.dim);
        out.extend(neural.iter().map(|x| x * a));
        let start = out.len();
        match lexical {
            Some(l) => out.extend(l.iter().map(|x| x * b)),
            None => {
                out.resize(start + view.dim, 0.0);
                view.add_to(text.unwrap_or(""), &mut out[start..]);
                out[start..].iter_mut().for_each(|x| *x *= b);
            }
        }
        out
    }

    /// Style vectors for texts from their neural vectors, in parallel.
    pub fn finish(&self, texts: &[&str], neural: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
        if self.is_neural() {
            return neural;
        }
        neural
            .into_par_iter()
            .zip(texts.par_iter())
            .map(|(v, t)| self.fuse(v, None, Some(t)))
            .collect()
    }
}

/// An encoder whose vectors are style vectors of a [`View`].
pub struct Styled<E> {
    inner: E,
    view: View,
    id: EncoderId,
}

impl<E: Embed> Styled<E> {
    pub fn new(inner: E, view: View) -> Self {
        let id = view.id(inner.id());
        Self { inner, view, id }
    }

    pub fn inner(&self) -> &E {
        &self.inner
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    pub fn into_parts(self) -> (E, View) {
        (self.inner, self.view)
    }
}

impl<E: Embed> Embed for Styled<E> {
    fn id(&self) -> &EncoderId {
        &self.id
    }

    fn dim(&self) -> usize {
        self.view.dim(self.inner.dim())
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncoderError> {
        Ok(self.view.finish(texts, self.inner.embed(texts)?))
    }

    fn base(&self) -> (&EncoderId, usize) {
        (self.inner.id(), self.inner.dim())
    }

    fn finish(&self, texts: &[&str], base: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
        self.view.finish(texts, base)
    }

    fn held_out(&self) -> Option<super::HeldOut> {
        self.inner.held_out()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::dot;

    #[test]
    fn fused_dot_is_the_weighted_sum_of_the_views_cosines() {
        let lexical = Lexical {
            dim: 256,
            ..Lexical::default()
        };
        let view = View::fused(lexical, 0.3);
        let (ta, tb) = (
            "One text, written plainly.",
            "Another text; written otherwise!",
        );
        let na = vec![0.6, 0.8, 0.0];
        let nb = vec![0.0, 0.6, 0.8];
        let fa = view.fuse(na.clone(), None, Some(ta));
        let fb = view.fuse(nb.clone(), None, Some(tb));
        assert_eq!(fa.len(), view.dim(3));
        assert!((dot(&fa, &fa) - 1.0).abs() < 1e-5);
        let want = 0.3 * dot(&na, &nb) + 0.7 * dot(&lexical.vector(ta), &lexical.vector(tb));
        assert!((dot(&fa, &fb) - want).abs() < 1e-5);
        // Given or computed lexical vectors give the same style vector.
        assert_eq!(fa, view.fuse(na, Some(&lexical.vector(ta)), None));
    }

    #[test]
    fn the_view_is_part_of_the_identity() {
        let neural = EncoderId {
            name: "m".into(),
            checksum: "ab".into(),
            max_length: 128,
        };
        assert_eq!(View::neural().id(&neural), neural);
        let a = View::fused(Lexical::default(), 0.3).id(&neural);
        let b = View::fused(Lexical::default(), 0.4).id(&neural);
        let c = View::fused(
            Lexical {
                dim: 1024,
                ..Lexical::default()
            },
            0.3,
        )
        .id(&neural);
        assert_eq!(a.name, "m+char2-4x2048a0.30");
        assert!(a != b && a != c && b != c && a != neural);
    }
}

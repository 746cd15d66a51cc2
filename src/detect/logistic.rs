//! Weighted, L2-regularised logistic regression over sparse rows, fitted
//! with L-BFGS: the solver behind [`super::classifier::Classifier`].
use super::classifier::ClassifierConfig;

/// Sparse rows: feature indices and values, unit length.
pub struct Rows {
    pub ptr: Vec<usize>,
    pub idx: Vec<u32>,
    pub val: Vec<f32>,
}

impl Rows {
    fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.ptr[i], self.ptr[i + 1]);
        (&self.idx[a..b], &self.val[a..b])
    }

    fn len(&self) -> usize {
        self.ptr.len() - 1
    }
}

pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// Objective and gradient of the weighted, L2-regularised logistic loss at
/// `w` (last entry: the unregularised bias). The rows' scores are computed
/// in parallel and summed in row order, so the result does not depend on
/// the number of threads.
fn objective(rows: &Rows, y: &[f64], s: &[f64], w: &[f64], c: f64, grad: &mut [f64]) -> f64 {
    use rayon::prelude::*;
    let d = w.len() - 1;
    // Per row: its loss and the derivative of the loss by its score.
    let per_row: Vec<(f64, f64)> = (0..rows.len())
        .into_par_iter()
        .with_min_len(256)
        .map(|i| {
            let (idx, val) = rows.row(i);
            let z = idx
                .iter()
                .zip(val)
                .map(|(j, v)| w[*j as usize] * f64::from(*v))
                .sum::<f64>()
                + w[d];
            (
                c * s[i] * (softplus(z) - y[i] * z),
                c * s[i] * (sigmoid(z) - y[i]),
            )
        })
        .collect();
    let mut f = 0.5 * w[..d].iter().map(|x| x * x).sum::<f64>();
    grad[..d].copy_from_slice(&w[..d]);
    grad[d] = 0.0;
    for (i, (fi, gi)) in per_row.into_iter().enumerate() {
        f += fi;
        let (idx, val) = rows.row(i);
        for (j, v) in idx.iter().zip(val) {
            grad[*j as usize] += gi * f64::from(*v);
        }
        grad[d] += gi;
    }
    f
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// L-BFGS (history 10, backtracking Armijo line search) from zero weights;
/// returns the weights (bias last) and the iterations taken.
pub fn fit_logistic(
    rows: &Rows,
    y: &[f64],
    s: &[f64],
    dim: usize,
    cfg: &ClassifierConfig,
) -> (Vec<f64>, usize) {
    const HISTORY: usize = 10;
    let n = dim + 1;
    let mut w = vec![0.0; n];
    let mut g = vec![0.0; n];
    let mut f = objective(rows, y, s, &w, cfg.c, &mut g);
    let scale = cfg.c * s.iter().sum::<f64>();
    let mut hist: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
    let mut next = vec![0.0; n];
    let mut g_next = vec![0.0; n];
    let mut it = 0;
    while it < cfg.max_iter {
        let g_max = g.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        if g_max <= 1e-5 * scale.max(1.0) {
            break;
        }
        it += 1;
        // Two-loop recursion: direction = -H g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(hist.len());
        for (sv, yv, rho) in hist.iter().rev() {
            let a = rho * dot(sv, &q);
            for (qi, yi) in q.iter_mut().zip(yv) {
                *qi -= a * yi;
            }
            alphas.push(a);
        }
        let gamma = hist
            .back()
            .map(|(sv, yv, _)| dot(sv, yv) / dot(yv, yv))
            .unwrap_or_else(|| 1.0 / g.iter().map(|x| x * x).sum::<f64>().sqrt());
        for qi in &mut q {
            *qi *= gamma;
        }
        for ((sv, yv, rho), a) in hist.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(yv, &q);
            for (qi, si) in q.iter_mut().zip(sv) {
                *qi += (a - b) * si;
            }
        }
        let dir: Vec<f64> = q.iter().map(|x| -x).collect();
        let mut slope = dot(&g, &dir);
        let dir = if slope >= 0.0 {
            // Not a descent direction: restart from steepest descent.
            hist.clear();
            slope = -dot(&g, &g);
            g.iter().map(|x| -x).collect()
        } else {
            dir
        };
        let mut step = 1.0;
        let mut accepted = false;
        for _ in 0..40 {
            for ((ni, wi), di) in next.iter_mut().zip(&w).zip(&dir) {
                *ni = wi + step * di;
            }
            let f_next = objective(rows, y, s, &next, cfg.c, &mut g_next);
            if f_next <= f + 1e-4 * step * slope {
                let sv: Vec<f64> = next.iter().zip(&w).map(|(a, b)| a - b).collect();
                let yv: Vec<f64> = g_next.iter().zip(&g).map(|(a, b)| a - b).collect();
                let sy = dot(&sv, &yv);
                if sy > 1e-12 {
                    if hist.len() == HISTORY {
                        hist.pop_front();
                    }
                    hist.push_back((sv, yv, 1.0 / sy));
                }
                std::mem::swap(&mut w, &mut next);
                std::mem::swap(&mut g, &mut g_next);
                let done = (f - f_next).abs() <= 1e-10 * f.abs().max(1.0);
                f = f_next;
                accepted = true;
                if done {
                    return (w, it);
                }
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            break;
        }
    }
    (w, it)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lbfgs_reaches_the_optimum_of_a_separable_problem() {
        // Optimality: the gradient vanishes at the fitted weights.
        let rows = Rows {
            ptr: vec![0, 1, 2, 3, 4],
            idx: vec![0, 0, 1, 1],
            val: vec![1.0, 1.0, 1.0, 1.0],
        };
        let y = [1.0, 1.0, 0.0, 0.0];
        let s = [1.0; 4];
        let cfg = ClassifierConfig::default();
        let (w, _) = fit_logistic(&rows, &y, &s, 2, &cfg);
        let mut g = vec![0.0; 3];
        objective(&rows, &y, &s, &w, cfg.c, &mut g);
        assert!(g.iter().all(|x| x.abs() < 1e-3), "gradient {g:?}");
        assert!(w[0] > 0.0 && w[1] < 0.0);
    }
}

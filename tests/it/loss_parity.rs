//! The multi-level contrastive loss against reference values computed by
//! the reference implementation's formulation (`contrastive-loss.json`).
use serde::Deserialize;
use tch::{Kind, Tensor};

use detective::train::loss::{contrastive, scalar, Classes, LossWeights};

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    seed: u64,
    temperature: f64,
    embeddings: Vec<Vec<f64>>,
    label: Vec<i64>,
    model: Vec<i64>,
    family: Vec<i64>,
    expected: Expected,
}

#[derive(Deserialize)]
struct Expected {
    model: f64,
    family: f64,
    label: f64,
    human: f64,
    total_a1_b1_c1: f64,
}

#[track_caller]
fn close(got: f64, want: f64, what: &str) {
    let rel = (got - want).abs() / want.abs().max(1e-12);
    assert!(rel <= 1e-6, "{what}: {got} vs {want} (relative {rel:.2e})");
}

#[test]
fn every_level_and_the_total_match_the_reference() {
    let path = super::common::shared_dir().join("fixtures/contrastive-loss.json");
    let fx: Fixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(fx.cases.len(), 5);
    for c in &fx.cases {
        let dim = c.embeddings[0].len() as i64;
        let flat: Vec<f64> = c.embeddings.iter().flatten().copied().collect();
        let x = Tensor::from_slice(&flat)
            .view([-1, dim])
            .to_kind(Kind::Double);
        let (m, f, l) = (
            Tensor::from_slice(&c.model),
            Tensor::from_slice(&c.family),
            Tensor::from_slice(&c.label),
        );
        let classes = Classes {
            model: &m,
            family: &f,
            label: &l,
        };
        // Keys are the (detached) queries themselves.
        let levels = contrastive(&x, &x.detach(), &classes, &classes, c.temperature);
        let case = format!("case {}", c.seed);
        close(
            scalar(&levels.model),
            c.expected.model,
            &format!("{case} model"),
        );
        close(
            scalar(&levels.family),
            c.expected.family,
            &format!("{case} family"),
        );
        close(
            scalar(&levels.label),
            c.expected.label,
            &format!("{case} label"),
        );
        close(
            scalar(&levels.human),
            c.expected.human,
            &format!("{case} human"),
        );
        let w = LossWeights {
            d: 0.0,
            ..LossWeights::default()
        };
        close(
            scalar(&levels.total(&w, None)),
            c.expected.total_a1_b1_c1,
            &format!("{case} total"),
        );
    }
}

#[test]
fn gradients_flow_to_the_queries_only() {
    let x = Tensor::randn([6, 4], (Kind::Double, tch::Device::Cpu)).set_requires_grad(true);
    let l = Tensor::from_slice(&[1i64, 1, 0, 0, 0, 0]);
    let m = Tensor::from_slice(&[999i64, 999, 1, 1, 2, 2]);
    let f = Tensor::from_slice(&[99i64, 99, 0, 0, 0, 1]);
    let c = Classes {
        model: &m,
        family: &f,
        label: &l,
    };
    let levels = contrastive(&x, &x.detach(), &c, &c, 0.07);
    let total = levels.total(&LossWeights::default(), None);
    assert!(scalar(&total).is_finite());
    total.backward();
    let g = x.grad();
    assert!(scalar(&g.abs().sum(Kind::Double)) > 0.0);
}

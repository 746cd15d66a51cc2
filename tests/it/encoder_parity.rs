use detective::encoder::Embed;

use crate::common::{cosine, golden, load_encoder, max_abs_diff};

/// Token ids must match exactly and embeddings to cosine >= 0.99999, for
/// every fixture case (truncation at 128/256/512, Unicode, whitespace).
fn check_parity(model: &str, fixture: &str) {
    let golden = golden(fixture);
    assert_eq!(golden.cases.len(), 17);
    let mut encoder = load_encoder(model, 512);
    let mut failures = Vec::new();
    for case in &golden.cases {
        encoder.set_max_length(case.max_length).unwrap();
        let ids = encoder.tokenize(&[case.text.as_str()]).unwrap().remove(0);
        if ids != case.input_ids {
            failures.push(format!("{}: token ids differ", case.case));
            continue;
        }
        let emb = encoder.embed(&[case.text.as_str()]).unwrap().remove(0);
        let cos = cosine(&emb, &case.embedding);
        if cos < 0.99999 {
            failures.push(format!("{}: cosine {cos:.7}", case.case));
        }
    }
    assert!(failures.is_empty(), "{model}: {failures:#?}");
}

#[test]
fn minilm_matches_reference() {
    check_parity("minilm", "golden-minilm.json");
}

#[test]
fn mpnet_matches_reference() {
    check_parity("mpnet", "golden-mpnet.json");
}

/// A text's embedding alone and inside a batch of texts of other lengths
/// (so it is padded, and batched with longer and shorter ones) agree.
#[test]
fn embedding_is_padding_invariant() {
    let golden = golden("golden-minilm.json");
    let texts: Vec<&str> = golden.cases.iter().map(|c| c.text.as_str()).collect();
    let encoder = load_encoder("minilm", 512);
    let together = encoder.embed(&texts).unwrap();
    for (text, batched) in texts.iter().zip(&together) {
        let alone = encoder.embed(&[text]).unwrap().remove(0);
        let diff = max_abs_diff(&alone, batched);
        assert!(diff < 1e-5, "{text:?}: max abs diff {diff}");
    }
}

#[test]
fn mpnet_is_padding_invariant() {
    let texts = [
        "short one",
        "a somewhat longer sentence with more tokens in it, surely",
        "x",
    ];
    let encoder = load_encoder("mpnet", 512);
    let together = encoder.embed(&texts).unwrap();
    for (text, batched) in texts.iter().zip(&together) {
        let alone = encoder.embed(&[text]).unwrap().remove(0);
        assert!(max_abs_diff(&alone, batched) < 1e-5, "{text:?}");
    }
}

#[test]
fn embeddings_are_unit_length_and_ordered() {
    let encoder = load_encoder("minilm", 128);
    let texts = [
        "b",
        "a much longer text than the first, to force reordering",
        "",
        "c",
    ];
    let batch = encoder.embed(&texts).unwrap();
    assert_eq!(batch.len(), texts.len());
    for (text, v) in texts.iter().zip(&batch) {
        assert_eq!(v.len(), encoder.dim());
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{text:?}: norm {norm}");
        let alone = encoder.embed(&[text]).unwrap().remove(0);
        assert!(
            max_abs_diff(&alone, v) < 1e-5,
            "{text:?} came back out of order"
        );
    }
}

#[test]
fn max_length_outside_model_limits_is_rejected() {
    let mut encoder = load_encoder("minilm", 128);
    assert!(encoder.set_max_length(513).is_err());
    assert!(encoder.set_max_length(1).is_err());
    encoder.set_max_length(512).unwrap();
    assert_eq!(encoder.id().max_length, 512);
}

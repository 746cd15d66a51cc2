use detective::config::EncoderConfig;
use detective::encoder::precision::CpuFeatures;
use detective::encoder::{registry, Embed, Encoder, Precision};

use crate::common::{cosine, golden, load_encoder, max_abs_diff, models_dir};

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

/// Long texts are tokenized from a prefix; the ids and the truncation flag
/// must be exactly those of whole-text tokenization, for both tokenizers, at
/// short and long limits, on corpus texts and on texts built to defeat the
/// prefix (long words, no whitespace, many short tokens, other scripts).
#[test]
fn prefix_tokenization_equals_whole_text_tokenization() {
    let corpus = std::fs::read_to_string(crate::common::shared_dir().join("corpus/test.jsonl"))
        .expect("test.jsonl");
    let mut texts: Vec<String> = corpus
        .lines()
        .take(400)
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    texts.push("x".repeat(20_000));
    texts.push("supercalifragilistic".repeat(300) + " end");
    texts.push(", ".repeat(5_000));
    texts.push("日本語の文章です。".repeat(800));
    texts.push("Ünïcödé wörds, ñ and ß; ".repeat(600));
    texts.push(format!("{} tail words here", "a ".repeat(600)));
    texts.push("word\u{00a0}word\u{2003}word\t".repeat(900));
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for model in ["minilm", "mpnet"] {
        for max_length in [128, 512] {
            let encoder = load_encoder(model, max_length);
            let tok = encoder.tokenizer();
            let fast = tok.encode_batch_flagged(&refs).unwrap();
            let whole = tok.encode_whole(&refs).unwrap();
            for (i, (f, w)) in fast.iter().zip(&whole).enumerate() {
                assert_eq!(f, w, "{model}@{max_length}: text {i} differs");
            }
            assert!(
                whole.iter().filter(|(_, t)| *t).count() > 5,
                "some texts overflow"
            );
        }
    }
}

fn load_at(model: &str, precision: &str, features: CpuFeatures) -> Encoder {
    let cfg = EncoderConfig {
        model: models_dir().join(model).display().to_string(),
        max_length: 512,
        precision: precision.into(),
        ..EncoderConfig::default()
    };
    let files = registry::resolve(&cfg.model).unwrap();
    Encoder::load_for_cpu(&files, &cfg, features).unwrap()
}

/// The reduced-precision paths stay within cosine 0.999 of the reference
/// embeddings on every fixture case (minimum reported).
#[test]
fn bf16_and_int8_stay_within_parity() {
    for model in ["minilm", "mpnet"] {
        let golden = golden(&format!("golden-{model}.json"));
        for precision in ["bf16", "int8"] {
            let mut encoder = load_at(model, precision, CpuFeatures::default());
            assert_eq!(encoder.precision().to_string(), precision);
            let mut worst = f64::INFINITY;
            for case in &golden.cases {
                encoder.set_max_length(case.max_length).unwrap();
                let emb = encoder.embed(&[case.text.as_str()]).unwrap().remove(0);
                worst = worst.min(cosine(&emb, &case.embedding));
            }
            eprintln!("{model} {precision}: lowest cosine {worst:.5}");
            assert!(worst >= 0.999, "{model} {precision}: cosine {worst:.5}");
        }
    }
}

/// `auto` on a CPU without AVX512_BF16, AMX or VNNI is fp32, with no probe;
/// on one with them it is one of the native paths or fp32.
#[test]
fn auto_falls_back_to_fp32_without_the_instructions() {
    let e = load_at("minilm", "auto", CpuFeatures::default());
    assert_eq!(e.precision(), Precision::Fp32);
    let all = CpuFeatures {
        bf16: true,
        int8: true,
    };
    let e = load_at("minilm", "auto", all);
    assert!(all.candidates().contains(&e.precision()));
    let cfg = EncoderConfig {
        precision: "fp16".into(),
        ..EncoderConfig::default()
    };
    let err = Encoder::load(&cfg)
        .err()
        .expect("fp16 is refused")
        .to_string();
    assert!(err.contains("fp32, bf16, int8 or auto"), "{err}");
}

/// Reading several windows: a text that fits one window gets the same
/// vector; a longer one gets the token-weighted mean of its windows, each
/// embedded as its own framed sequence, normalised; the identity says how
/// many windows are read; nothing past the last window is read.
#[test]
fn windows_average_the_framed_pieces_of_a_long_text() {
    let one = load_encoder("minilm", 32);
    let mut four = load_encoder("minilm", 32);
    four.set_windows(4).unwrap();
    assert_eq!(four.id().name, format!("{}+w4", one.id().name));
    assert_eq!(four.tokenizer().read_length(), 4 * 30 + 2);

    let short = "A short text fits in one window.";
    let a = one.embed(&[short]).unwrap().remove(0);
    let b = four.embed(&[short]).unwrap().remove(0);
    assert!(max_abs_diff(&a, &b) < 1e-6);

    let long = "The committee met on Tuesday to review the budget, and after a long \
        discussion it agreed to delay the vote until the figures were checked. Members \
        asked for a breakdown by department, a forecast for the next two years, and an \
        account of the money already spent on the new building, which is late and over \
        budget. The chair promised all of it by the end of the month.";
    let ids = four.tokenize(&[long]).unwrap().remove(0);
    assert!(
        ids.len() > 2 * 32 && ids.len() <= 4 * 30 + 2,
        "{}",
        ids.len()
    );
    let pieces = detective::encoder::windows::split(&ids, 32);
    assert!(pieces.len() >= 3 && pieces.iter().all(|(w, _)| w.len() <= 32));
    let parts = one
        .embed_tokens(&pieces.iter().map(|(w, _)| w.clone()).collect::<Vec<_>>())
        .unwrap();
    let mut want = vec![0f32; parts[0].len()];
    for (v, (_, n)) in parts.iter().zip(&pieces) {
        want.iter_mut()
            .zip(v)
            .for_each(|(a, x)| *a += *n as f32 * x);
    }
    let got = four.embed(&[long]).unwrap().remove(0);
    assert!(cosine(&got, &want) > 0.99999);
    assert!((cosine(&got, &got) - 1.0).abs() < 1e-6);
    // One window reads less of the text: a different vector.
    assert!(cosine(&got, &one.embed(&[long]).unwrap().remove(0)) < 0.999);

    // Past four windows nothing more is read.
    let longer = format!("{long} {long} {long}");
    let ids = four.tokenize(&[longer.as_str()]).unwrap().remove(0);
    assert_eq!(ids.len(), 4 * 30 + 2);
    assert!(four.set_windows(0).is_err() && four.set_windows(17).is_err());
}

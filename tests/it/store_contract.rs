//! One contract, run against SQLite and against a real PostgreSQL
//! (`DETECTIVE_TEST_POSTGRES` = a URL of an empty database that the tests
//! may fill; `.ci/run` starts one).
use std::sync::Arc;

use detective::encoder::EncoderId;
use detective::store::{self, text_sha256, Label, NewReference, Store};

fn encoder() -> EncoderId {
    EncoderId {
        name: "test".into(),
        checksum: "0123456789abcdef".into(),
        max_length: 128,
    }
}

fn item(text: &str, label: Label, family: Option<&str>) -> NewReference {
    NewReference {
        text: text.into(),
        label,
        model: family.map(|f| format!("{f}-model")),
        family: family.map(str::to_owned),
        source: Some("unit".into()),
        domain: None,
        attack: None,
        lang: Some("en".into()),
        group: Some(format!("g-{text}")),
        added_by: "tester".into(),
    }
}

fn vector(seed: f32) -> Vec<f32> {
    vec![seed, 1.0 - seed, 0.5]
}

/// A unique tag per test run so tests sharing one PostgreSQL database do not
/// see each other's texts.
fn tag() -> String {
    format!("{}-{}", std::process::id(), rand::random::<u32>())
}

async fn contract(store: Arc<dyn Store>) {
    let t = tag();
    let before = store.counts().await.unwrap();
    let items = vec![
        item(&format!("{t} first   text"), Label::Human, None),
        item(&format!("{t} second text"), Label::Machine, Some("openai")),
        item(&format!("{t} third text"), Label::Machine, Some("google")),
    ];
    let vecs = vec![vector(0.1), vector(0.2), vector(0.3)];
    let ids = store.insert(&items, &vecs, &encoder()).await.unwrap();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|i| i.created));

    // Idempotent: the same text (modulo whitespace) keeps its id.
    let again = item(&format!("{t}  first text "), Label::Human, None);
    let re = store
        .insert(&[again], &[vector(0.9)], &encoder())
        .await
        .unwrap();
    assert_eq!(re[0].id, ids[0].id);
    assert!(!re[0].created);

    let got = store.get(ids[1].id).await.unwrap().expect("stored");
    assert_eq!(got.text, items[1].text);
    assert_eq!(got.text_sha256, text_sha256(&items[1].text));
    assert_eq!(got.label, Label::Machine);
    assert_eq!(got.family.as_deref(), Some("openai"));
    assert_eq!(got.encoder, encoder());
    assert_eq!(got.added_by, "tester");
    assert!(got.deleted_at.is_none());
    assert!(store.get(i64::MAX).await.unwrap().is_none());

    let hashes = vec![text_sha256(&items[2].text), text_sha256("never stored")];
    let existing = store.existing(&hashes).await.unwrap();
    assert!(existing.contains(&hashes[0]));
    assert!(!existing.contains(&hashes[1]));

    let rows = store.vectors(ids[0].id - 1, 1000).await.unwrap();
    let mine: Vec<_> = rows
        .iter()
        .filter(|r| ids.iter().any(|i| i.id == r.id))
        .collect();
    assert_eq!(mine.len(), 3);
    assert_eq!(
        mine[1].embedding,
        vector(0.2),
        "embedding round-trips exactly"
    );
    assert_eq!(
        mine[0].group.as_deref(),
        Some(format!("g-{t} first   text").as_str())
    );

    let after = store.counts().await.unwrap();
    assert_eq!(after.total - before.total, 3);
    assert_eq!(
        after.by_label.get("machine").copied().unwrap_or(0)
            - before.by_label.get("machine").copied().unwrap_or(0),
        2
    );
    assert!(after.by_family.get("openai").copied().unwrap_or(0) >= 1);

    // Delete excludes from vectors at once; a second delete is a no-op.
    assert!(store.delete(ids[2].id).await.unwrap());
    assert!(!store.delete(ids[2].id).await.unwrap());
    let rows = store.vectors(ids[0].id - 1, 1000).await.unwrap();
    assert!(!rows.iter().any(|r| r.id == ids[2].id));
    assert!(store
        .get(ids[2].id)
        .await
        .unwrap()
        .unwrap()
        .deleted_at
        .is_some());
    // Re-adding a deleted text restores it under its id.
    let back = store
        .insert(&items[2..], &vecs[2..], &encoder())
        .await
        .unwrap();
    assert_eq!(back[0].id, ids[2].id);
    assert!(back[0].created);

    // Re-embedding replaces vectors and the encoder identity.
    let other = EncoderId {
        name: "other".into(),
        ..encoder()
    };
    store
        .set_embeddings(&[(ids[0].id, vector(0.7))], &other)
        .await
        .unwrap();
    let encs = store.encoders().await.unwrap();
    assert!(encs.iter().any(|(e, _)| *e == other));
    assert_eq!(store.get(ids[0].id).await.unwrap().unwrap().encoder, other);
    let texts = store.texts(ids[0].id - 1, 2).await.unwrap();
    assert_eq!(texts.len(), 2);

    // Mismatched input is refused before anything is written.
    assert!(store.insert(&items, &vecs[..1], &encoder()).await.is_err());

    let enc = EncoderId {
        name: t.clone(),
        ..encoder()
    };
    assert!(store.calibration(&enc).await.unwrap().is_none());
    store.save_calibration(&enc, "{\"k\":5}").await.unwrap();
    store.save_calibration(&enc, "{\"k\":7}").await.unwrap();
    assert_eq!(
        store.calibration(&enc).await.unwrap().as_deref(),
        Some("{\"k\":7}")
    );
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

#[test]
fn sqlite_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refs.db");
    rt().block_on(async {
        contract(store::open(path.to_str().unwrap()).await.unwrap()).await;
        // Reopening applies no migration twice and keeps the data.
        let reopened = store::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        assert_eq!(reopened.counts().await.unwrap().total, 3);
    });
}

#[test]
fn postgres_store_meets_the_contract() {
    let Some(url) = std::env::var("DETECTIVE_TEST_POSTGRES").ok() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "DETECTIVE_TEST_POSTGRES must be set in CI (.ci/run starts PostgreSQL)"
        );
        eprintln!("skipped: DETECTIVE_TEST_POSTGRES is not set");
        return;
    };
    rt().block_on(async { contract(store::open(&url).await.unwrap()).await });
}

#[test]
fn unsupported_urls_are_refused() {
    let err = rt()
        .block_on(store::open("mysql://localhost/x"))
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("unsupported database URL"),
        "{err}"
    );
}

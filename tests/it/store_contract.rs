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

/// The change feed: every add, restore and delete gets the next sequence
/// number with the row's current state; and a follower that reads the feed
/// while several writers commit at once ends with exactly the store's state
/// (no sequence number becomes visible after a higher one was read).
async fn feed_contract(store: Arc<dyn Store>) {
    use std::collections::HashMap;
    let t = tag();
    let s0 = store.last_seq().await.unwrap();
    let a = item(&format!("{t} feed a"), Label::Human, None);
    let b = item(&format!("{t} feed b"), Label::Machine, Some("openai"));
    let b_again = item(&format!("{t}   feed b "), Label::Human, None);
    let ids = store
        .insert(
            &[a.clone(), b, b_again],
            &[vector(0.1), vector(0.2), vector(0.2)],
            &encoder(),
        )
        .await
        .unwrap();
    assert_eq!(ids[1].id, ids[2].id, "a batch's duplicates are one row");
    let feed = store.changes(s0, 100).await.unwrap();
    let mine: Vec<_> = feed
        .iter()
        .filter(|c| c.id == ids[0].id || c.id == ids[1].id)
        .collect();
    assert_eq!(mine.len(), 2, "one entry per reference");
    assert!(mine[0].seq < mine[1].seq);
    let row = mine[1].row.as_ref().expect("live");
    assert_eq!(
        (row.label, row.family.as_deref()),
        (Label::Machine, Some("openai")),
        "the first stored state, not the duplicate's"
    );
    let s1 = store.last_seq().await.unwrap();
    assert!(s1 >= mine[1].seq);

    // Delete, then restore with other labels: the feed shows each state.
    assert!(store.delete(ids[0].id).await.unwrap());
    let del = store.changes(s1, 100).await.unwrap();
    let gone = del.iter().find(|c| c.id == ids[0].id).expect("in the feed");
    assert!(gone.row.is_none());
    let relabelled = NewReference {
        label: Label::Machine,
        family: Some("google".into()),
        ..a
    };
    store
        .insert(&[relabelled], &[vector(0.1)], &encoder())
        .await
        .unwrap();
    let back = store.changes(gone.seq, 100).await.unwrap();
    let back = back.iter().find(|c| c.id == ids[0].id).expect("restored");
    assert_eq!(back.row.as_ref().unwrap().label, Label::Machine);
    assert_eq!(back.row.as_ref().unwrap().family.as_deref(), Some("google"));

    // Concurrent writers and one follower.
    let start = store.last_seq().await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = {
        let store = store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut state: HashMap<i64, bool> = HashMap::new();
            let mut at = start;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let page = store.changes(at, 1000).await.unwrap();
                for c in &page {
                    assert!(c.seq > at, "sequence numbers only grow");
                    at = c.seq;
                    state.insert(c.id, c.row.is_some());
                }
                if finished && page.is_empty() {
                    return state;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            let t = t.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..10 {
                    let it = item(&format!("{t} w{w} {i}"), Label::Human, None);
                    let got = store
                        .insert(&[it], &[vector(0.3)], &encoder())
                        .await
                        .unwrap();
                    if i % 3 == 0 {
                        assert!(store.delete(got[0].id).await.unwrap());
                    }
                    ids.push(got[0].id);
                }
                ids
            })
        })
        .collect();
    // Other tests may write to the same database meanwhile: compare on
    // this test's references only.
    let mut written = std::collections::HashSet::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let mut followed = follower.await.unwrap();
    followed.retain(|id, _| written.contains(id));
    let truth: HashMap<i64, bool> = store
        .changes(start, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| written.contains(&c.id))
        .map(|c| (c.id, c.row.is_some()))
        .collect();
    assert_eq!(truth.len(), 40);
    assert_eq!(truth.values().filter(|live| !**live).count(), 16);
    assert_eq!(followed, truth, "the follower missed or reordered a change");

    // Overlapping batches in opposite orders ([x, y] and [y, x]) at once:
    // writes are ordered, so none deadlocks or fails, and each text is one
    // row whatever batch stored it first.
    for round in 0..5 {
        let x = item(
            &format!("{t} overlap x {round}"),
            Label::Machine,
            Some("openai"),
        );
        let y = item(&format!("{t} overlap y {round}"), Label::Human, None);
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                let batch = if i % 2 == 0 {
                    [x.clone(), y.clone()]
                } else {
                    [y.clone(), x.clone()]
                };
                tokio::spawn(async move {
                    let got = store
                        .insert(&batch, &[vector(0.1), vector(0.2)], &encoder())
                        .await
                        .expect("overlapping batches do not fail");
                    let ids: Vec<i64> = got.iter().map(|g| g.id).collect();
                    if i % 2 == 0 {
                        (ids[0], ids[1])
                    } else {
                        (ids[1], ids[0])
                    }
                })
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for task in tasks {
            seen.insert(task.await.unwrap());
        }
        assert_eq!(seen.len(), 1, "one row per text: {seen:?}");
    }
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
        feed_contract(reopened).await;
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
    rt().block_on(async {
        let store = store::open(&url).await.unwrap();
        contract(store.clone()).await;
        feed_contract(store).await;
    });
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

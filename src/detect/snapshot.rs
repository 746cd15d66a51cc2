//! Index snapshots: the live reference set written to disk, tagged with the
//! change-feed position it holds, so a restart loads it and catches up from
//! there instead of rebuilding the HNSW graph from every stored vector.
//!
//! Layout of the snapshot folder:
//! - `CURRENT`: the name of the newest complete snapshot, replaced by a
//!   rename once that snapshot is whole and synced;
//! - `snap-<seq>-<millis>/`: the index files, `slots.json` and
//!   `manifest.json` (format, encoder, index configuration, dimension,
//!   feed position, SHA-256 of every file).
//!
//! A snapshot is used only when its manifest matches the running encoder
//! and index configuration and every file's checksum matches; otherwise the
//! set is rebuilt from the store (and a fresh snapshot written). A snapshot
//! is a cache: deleting the folder is always safe.
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::References;
use crate::index::IndexKind;
use crate::vocab::EncoderId;

const FORMAT: u32 = 1;
const CURRENT: &str = "CURRENT";
const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub encoder: EncoderId,
    /// The index configuration that shapes the stored structure.
    pub index: String,
    pub dim: usize,
    /// The highest change-feed sequence number the snapshot holds.
    pub applied: i64,
    pub slots: usize,
    pub voting: usize,
    /// SHA-256 (hex) of each file.
    pub files: BTreeMap<String, String>,
    pub created: chrono::DateTime<chrono::Utc>,
}

/// The part of an index configuration that the saved files depend on
/// (`ef_search` is a search-time setting and may change between runs).
pub fn index_tag(kind: IndexKind) -> String {
    match kind {
        IndexKind::Exact => "exact".into(),
        IndexKind::Hnsw(p) => format!("hnsw m={} ef_construction={}", p.m, p.ef_construction),
    }
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A message for a panic caught from the index library.
fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic".into())
}

/// Writes `refs` as the newest snapshot in `root` and removes older ones.
/// Blocking work (seconds at a million references): run it off the async
/// workers.
pub fn save(
    refs: &References,
    encoder: &EncoderId,
    kind: IndexKind,
    root: &Path,
) -> anyhow::Result<Manifest> {
    let started = Instant::now();
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    let stamp = chrono::Utc::now();
    let tmp = root.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        stamp.timestamp_millis()
    ));
    std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| refs.save(&tmp)))
        .map_err(|p| anyhow::anyhow!("writing the index failed: {}", panic_text(p)))
        .and_then(|r| r);
    let saved = match written {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let mut files = BTreeMap::new();
    for name in &saved.files {
        let path = tmp.join(name);
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", path.display()))?;
        files.insert(name.clone(), sha256_file(&path)?);
    }
    let manifest = Manifest {
        format: FORMAT,
        encoder: encoder.clone(),
        index: index_tag(kind),
        dim: refs.dim(),
        applied: saved.applied,
        slots: saved.slots,
        voting: saved.voting,
        files,
        created: stamp,
    };
    let path = tmp.join(MANIFEST);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::File::open(&path)?.sync_all()?;
    sync_dir(&tmp);
    let name = format!("snap-{}-{}", saved.applied, stamp.timestamp_millis());
    std::fs::rename(&tmp, root.join(&name))?;
    let pointer = root.join(format!(".{CURRENT}.tmp"));
    std::fs::write(&pointer, format!("{name}\n"))?;
    std::fs::File::open(&pointer)?.sync_all()?;
    std::fs::rename(&pointer, root.join(CURRENT))?;
    sync_dir(root);
    // Older snapshots and leftovers of interrupted writes.
    for entry in std::fs::read_dir(root)?.flatten() {
        let n = entry.file_name().to_string_lossy().into_owned();
        if n != name && (n.starts_with("snap-") || n.starts_with(".tmp-")) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    tracing::info!(
        dir = %root.join(&name).display(),
        references = saved.voting,
        applied_seq = saved.applied,
        seconds = started.elapsed().as_secs_f64(),
        "index snapshot written"
    );
    Ok(manifest)
}

/// The newest snapshot's folder and manifest, if `root` holds one.
pub fn current(root: &Path) -> anyhow::Result<Option<(PathBuf, Manifest)>> {
    let name = match std::fs::read_to_string(root.join(CURRENT)) {
        Ok(n) => n.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context(format!("cannot read {}", root.join(CURRENT).display())),
    };
    anyhow::ensure!(
        name.starts_with("snap-") && !name.contains(['/', '\\']),
        "{} names {name:?}, not a snapshot",
        root.join(CURRENT).display()
    );
    let dir = root.join(&name);
    let path = dir.join(MANIFEST);
    let body = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: Manifest = serde_json::from_slice(&body)
        .with_context(|| format!("{} is not a snapshot manifest", path.display()))?;
    Ok(Some((dir, manifest)))
}

/// Why a snapshot was not used.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("no snapshot in {0}")]
    Missing(PathBuf),
    #[error("snapshot made for {what} {found}, running {want}")]
    Mismatch {
        what: &'static str,
        found: String,
        want: String,
    },
    #[error("snapshot is damaged: {0:#}")]
    Damaged(anyhow::Error),
}

/// Loads the newest snapshot in `root` if it was made for this encoder and
/// index configuration and is intact.
pub fn load(
    root: &Path,
    encoder: &EncoderId,
    kind: IndexKind,
    dim: usize,
) -> Result<(References, Manifest), Unusable> {
    let (dir, manifest) = verify(root, encoder, kind, dim)?;
    let refs = read(&dir, &manifest, kind)?;
    Ok((refs, manifest))
}

/// Finds the newest snapshot and checks its manifest against the running
/// configuration and its files against their checksums (in parallel).
pub fn verify(
    root: &Path,
    encoder: &EncoderId,
    kind: IndexKind,
    dim: usize,
) -> Result<(PathBuf, Manifest), Unusable> {
    let (dir, m) = current(root)
        .map_err(Unusable::Damaged)?
        .ok_or_else(|| Unusable::Missing(root.to_owned()))?;
    let mismatch = |what, found: String, want: String| Unusable::Mismatch { what, found, want };
    if m.format != FORMAT {
        return Err(mismatch("format", m.format.to_string(), FORMAT.to_string()));
    }
    if &m.encoder != encoder {
        return Err(mismatch(
            "encoder",
            m.encoder.to_string(),
            encoder.to_string(),
        ));
    }
    if m.index != index_tag(kind) {
        return Err(mismatch("index", m.index.clone(), index_tag(kind)));
    }
    if m.dim != dim {
        return Err(mismatch("dimension", m.dim.to_string(), dim.to_string()));
    }
    if let Some(bad) = m
        .files
        .keys()
        .find(|n| n.contains(['/', '\\']) || n.starts_with('.'))
    {
        return Err(Unusable::Damaged(anyhow::anyhow!("manifest names {bad:?}")));
    }
    use rayon::prelude::*;
    m.files
        .par_iter()
        .try_for_each(|(name, want)| {
            let got = sha256_file(&dir.join(name))?;
            anyhow::ensure!(&got == want, "{name}: checksum {got}, manifest {want}");
            Ok(())
        })
        .map_err(Unusable::Damaged)?;
    Ok((dir, m))
}

/// Reads a verified snapshot.
pub fn read(dir: &Path, m: &Manifest, kind: IndexKind) -> Result<References, Unusable> {
    let refs = std::panic::catch_unwind(|| References::load(kind, m.dim, dir, m.applied))
        .map_err(|p| anyhow::anyhow!("reading the index failed: {}", panic_text(p)))
        .and_then(|r| r)
        .map_err(Unusable::Damaged)?;
    if refs.len() != m.voting {
        return Err(Unusable::Damaged(anyhow::anyhow!(
            "{} references vote, the manifest says {}",
            refs.len(),
            m.voting
        )));
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::HnswParams;
    use crate::store::{Change, Label, VectorRow};

    fn encoder() -> EncoderId {
        EncoderId {
            name: "test".into(),
            checksum: "ab".repeat(32),
            max_length: 128,
        }
    }

    fn rows(n: usize, dim: usize) -> Vec<VectorRow> {
        crate::index::synthetic::clustered(n, dim, 5, 0.3, 3)
            .into_iter()
            .enumerate()
            .map(|(i, v)| VectorRow {
                id: i as i64 + 1,
                label: if i % 3 == 0 {
                    Label::Human
                } else {
                    Label::Machine
                },
                model: (i % 3 != 0).then(|| format!("m{}", i % 4)),
                family: (i % 3 != 0).then(|| "fam".into()),
                source: Some("s".into()),
                group: None,
                embedding: v,
            })
            .collect()
    }

    fn ids(refs: &References, q: &[f32], k: usize) -> Vec<(i64, Label)> {
        refs.search(q, k).iter().map(|n| (n.id, n.label)).collect()
    }

    #[test]
    fn round_trips_both_index_kinds_and_takes_later_changes() {
        let dim = 16;
        let data = rows(300, dim);
        for kind in [IndexKind::Exact, IndexKind::Hnsw(HnswParams::default())] {
            let root = tempfile::tempdir().unwrap();
            let refs = References::new(kind, dim, data.len());
            refs.add(&data).unwrap();
            refs.apply(&[Change {
                seq: 41,
                id: 7,
                row: None,
            }])
            .unwrap();
            let m = save(&refs, &encoder(), kind, root.path()).unwrap();
            assert_eq!((m.applied, m.slots, m.voting), (41, 300, 299));
            let (back, _) = load(root.path(), &encoder(), kind, dim).unwrap();
            assert_eq!(
                (back.len(), back.tombstones(), back.applied()),
                (299, 1, 41)
            );
            for r in data.iter().step_by(37) {
                assert_eq!(ids(&back, &r.embedding, 5), ids(&refs, &r.embedding, 5));
            }
            assert!(back.search(&data[6].embedding, 3).iter().all(|n| n.id != 7));
            // The loaded set takes inserts and deletions like a built one.
            let mut fresh = rows(301, dim).pop().unwrap();
            fresh.id = 1000;
            back.apply(&[
                Change {
                    seq: 42,
                    id: 1000,
                    row: Some(fresh.clone()),
                },
                Change {
                    seq: 43,
                    id: 1,
                    row: None,
                },
            ])
            .unwrap();
            assert_eq!(back.search(&fresh.embedding, 1)[0].id, 1000);
            assert!(back.search(&data[0].embedding, 5).iter().all(|n| n.id != 1));
            // A second snapshot replaces the first.
            save(&back, &encoder(), kind, root.path()).unwrap();
            let snaps = std::fs::read_dir(root.path())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("snap-"))
                .count();
            assert_eq!(snaps, 1);
            assert_eq!(
                load(root.path(), &encoder(), kind, dim).unwrap().1.applied,
                43
            );
        }
    }

    #[test]
    fn refuses_damaged_foreign_or_missing_snapshots() {
        let dim = 16;
        let kind = IndexKind::Hnsw(HnswParams::default());
        let root = tempfile::tempdir().unwrap();
        assert!(matches!(
            load(root.path(), &encoder(), kind, dim),
            Err(Unusable::Missing(_))
        ));
        let refs = References::new(kind, dim, 100);
        refs.add(&rows(100, dim)).unwrap();
        save(&refs, &encoder(), kind, root.path()).unwrap();
        let other = EncoderId {
            max_length: 512,
            ..encoder()
        };
        assert!(matches!(
            load(root.path(), &other, kind, dim),
            Err(Unusable::Mismatch {
                what: "encoder",
                ..
            })
        ));
        let wider = IndexKind::Hnsw(HnswParams {
            m: 32,
            ..HnswParams::default()
        });
        assert!(matches!(
            load(root.path(), &encoder(), wider, dim),
            Err(Unusable::Mismatch { what: "index", .. })
        ));
        // ef_search is not part of the stored structure.
        let searchier = IndexKind::Hnsw(HnswParams {
            ef_search: 200,
            ..HnswParams::default()
        });
        assert!(load(root.path(), &encoder(), searchier, dim).is_ok());
        // One flipped byte in the graph.
        let (dir, _) = current(root.path()).unwrap().unwrap();
        let graph = dir.join("graph.hnsw.graph");
        let mut bytes = std::fs::read(&graph).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x5a;
        std::fs::write(&graph, bytes).unwrap();
        assert!(matches!(
            load(root.path(), &encoder(), kind, dim),
            Err(Unusable::Damaged(_))
        ));
        // A truncated file.
        let slots = dir.join("slots.json");
        let body = std::fs::read(&slots).unwrap();
        std::fs::write(&slots, &body[..body.len() / 2]).unwrap();
        assert!(matches!(
            load(root.path(), &encoder(), kind, dim),
            Err(Unusable::Damaged(_))
        ));
    }
}

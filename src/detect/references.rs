//! The searchable set of references: a [`VectorIndex`], what each of its
//! slots is, and the tombstones of deleted references.
//!
//! Optionally each reference also carries its *hubness*: the mean
//! similarity to its [`HUB_NEIGHBOURS`] nearest other references. Some
//! references (in this style space, machine texts more than human ones) sit
//! close to everything and crowd into every neighbour list whatever the
//! query; ranking candidates by `similarity - weight * hubness` (the
//! reference side of cross-domain similarity local scaling) lets the
//! references that are near *this* text, rather than near all texts, vote.
use std::collections::HashMap;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::sync::RwLock;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{DetectError, Neighbour};
use crate::index::{self, IndexKind, VectorIndex};
use crate::store::{Change, Label, VectorRow};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    id: i64,
    label: Label,
    model: Option<String>,
    family: Option<String>,
    source: Option<String>,
}

impl Meta {
    fn of(r: &VectorRow) -> Self {
        Self {
            id: r.id,
            label: r.label,
            model: r.model.clone(),
            family: r.family.clone(),
            source: r.source.clone(),
        }
    }
}

/// A searchable set of references: the index plus what each slot is.
///
/// One lock guards one [`Inner`], so there is no lock order to get wrong;
/// every critical section is a few map operations, an index insert or one
/// search. Invariants of `Inner`:
/// - slot `s` of `index` is described by `slots[s]` (same length);
/// - `by_id[id]` is the one slot of reference `id` (an id never has two);
/// - `slots[s].live` is false for a deleted reference (a tombstone), and
///   `dead` counts the tombstones; a search over-fetches by `dead`;
/// - `applied` is the highest change-feed sequence number applied.
///
/// Changes are applied as states (this reference now looks like this, or is
/// deleted), so applying one twice, or an older state after a newer one has
/// been read from the feed, cannot resurrect or duplicate anything.
pub struct References {
    inner: RwLock<Inner>,
}

#[derive(Serialize, Deserialize)]
struct Slot {
    #[serde(flatten)]
    meta: Meta,
    live: bool,
}

/// What [`References::save`] wrote.
pub struct Saved {
    pub files: Vec<String>,
    pub applied: i64,
    pub slots: usize,
    pub voting: usize,
}

/// Nearest other references whose mean similarity is a reference's
/// hubness.
pub const HUB_NEIGHBOURS: usize = 10;

/// The slots' metadata in a saved set, JSON in slot order.
const SLOTS_FILE: &str = "slots.json";

struct Inner {
    index: Box<dyn VectorIndex>,
    slots: Vec<Slot>,
    by_id: HashMap<i64, usize>,
    dead: usize,
    applied: i64,
    /// Hubness of every slot, once [`References::refresh_hubs`] has
    /// started (NaN until computed); slots added later get theirs as they
    /// arrive.
    hubs: Option<Vec<f32>>,
    /// Whether `hubs` holds a value for every slot (searches rank by it).
    hubs_ready: bool,
}

impl Inner {
    /// [`Inner::hub_of`] for each `(slot, vector)`, on all cores (plain
    /// threads, never waiting on the set's lock).
    fn hubs_of(&self, at: &[(usize, &[f32])]) -> Vec<f32> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = at.len().div_ceil(threads).max(64);
        std::thread::scope(|scope| {
            let parts: Vec<_> = at
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|&(s, v)| self.hub_of(v, s))
                            .collect::<Vec<f32>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|p| p.join().expect("hubness worker"))
                .collect()
        })
    }

    /// Mean similarity of `vector` (at `slot`) to its nearest other live
    /// references.
    fn hub_of(&self, vector: &[f32], slot: usize) -> f32 {
        let hits = self.index.search(vector, HUB_NEIGHBOURS + 1 + self.dead);
        let near: Vec<f32> = hits
            .iter()
            .filter(|h| h.slot != slot && self.slots.get(h.slot).is_some_and(|s| s.live))
            .take(HUB_NEIGHBOURS)
            .map(|h| h.similarity)
            .collect();
        if near.is_empty() {
            0.0
        } else {
            near.iter().sum::<f32>() / near.len() as f32
        }
    }
}

impl References {
    pub fn new(kind: IndexKind, dim: usize, capacity: usize) -> Self {
        Self {
            inner: RwLock::new(Inner {
                index: index::build(kind, dim, capacity),
                slots: Vec::with_capacity(capacity),
                by_id: HashMap::with_capacity(capacity),
                dead: 0,
                applied: 0,
                hubs: None,
                hubs_ready: false,
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// References that vote.
    pub fn len(&self) -> usize {
        let inner = self.read();
        inner.slots.len() - inner.dead
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Deleted references still holding a slot.
    pub fn tombstones(&self) -> usize {
        self.read().dead
    }

    pub fn dim(&self) -> usize {
        self.read().index.dim()
    }

    /// The highest change-feed sequence number applied.
    pub fn applied(&self) -> i64 {
        self.read().applied
    }

    /// The voting references' ids and labels, with the feed position they
    /// reflect (one consistent view).
    pub fn labels(&self) -> (i64, std::collections::HashMap<i64, Label>) {
        let inner = self.read();
        let labels = inner
            .slots
            .iter()
            .filter(|s| s.live)
            .map(|s| (s.meta.id, s.meta.label))
            .collect();
        (inner.applied, labels)
    }

    /// Records that the feed has been applied up to `seq` (after a build
    /// from rows read at that position).
    pub fn mark_applied(&self, seq: i64) {
        let mut inner = self.write();
        inner.applied = inner.applied.max(seq);
    }

    /// Adds live references (an index build); a row whose id already has a
    /// slot takes the row's metadata and votes again.
    pub fn add(&self, rows: &[VectorRow]) -> Result<(), DetectError> {
        let changes: Vec<Change> = rows
            .iter()
            .map(|r| Change {
                seq: 0,
                id: r.id,
                row: Some(r.clone()),
            })
            .collect();
        self.apply(&changes)
    }

    /// Applies change-feed entries (in sequence order).
    pub fn apply(&self, changes: &[Change]) -> Result<(), DetectError> {
        let dim = self.dim();
        if let Some(bad) = changes
            .iter()
            .filter_map(|c| c.row.as_ref())
            .find(|r| r.embedding.len() != dim)
        {
            return Err(DetectError::Dimension {
                got: bad.embedding.len(),
                want: dim,
            });
        }
        let mut inner = self.write();
        let inner = &mut *inner;
        let mut fresh: Vec<&VectorRow> = Vec::new();
        for c in changes {
            inner.applied = inner.applied.max(c.seq);
            match (&c.row, inner.by_id.get(&c.id)) {
                (None, Some(&s)) => {
                    if std::mem::replace(&mut inner.slots[s].live, false) {
                        inner.dead += 1;
                    }
                }
                (None, None) => {}
                (Some(row), Some(&s)) => {
                    // Same text, same encoder: same vector. The metadata is
                    // the store's current one (a restore may relabel).
                    let slot = &mut inner.slots[s];
                    slot.meta = Meta::of(row);
                    if !std::mem::replace(&mut slot.live, true) {
                        inner.dead -= 1;
                    }
                }
                (Some(row), None) => {
                    if !fresh.iter().any(|f| f.id == row.id) {
                        fresh.push(row);
                    }
                }
            }
        }
        if !fresh.is_empty() {
            let vectors: Vec<&[f32]> = fresh.iter().map(|r| r.embedding.as_slice()).collect();
            let first = inner.index.add(&vectors);
            debug_assert_eq!(first, inner.slots.len());
            for (i, r) in fresh.iter().enumerate() {
                inner.by_id.insert(r.id, first + i);
                inner.slots.push(Slot {
                    meta: Meta::of(r),
                    live: true,
                });
            }
            if inner.hubs.is_some() {
                let at: Vec<(usize, &[f32])> = fresh
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (first + i, r.embedding.as_slice()))
                    .collect();
                let found = inner.hubs_of(&at);
                if let Some(hubs) = inner.hubs.as_mut() {
                    hubs.extend(found);
                }
            }
        }
        Ok(())
    }

    /// Computes every reference's hubness from `rows` (the references'
    /// vectors, by id; a slot none of them describes gets the mean of the
    /// others). Searches go on meanwhile, ranking by plain similarity until
    /// it is done the first time. From now on references added get theirs
    /// on arrival; those already there keep theirs until the next refresh.
    pub fn refresh_hubs(&self, rows: &[VectorRow]) {
        {
            // Arrivals from here on get their hubness as they come.
            let mut inner = self.write();
            let n = inner.slots.len();
            inner.hubs.get_or_insert_with(|| vec![f32::NAN; n]);
        }
        let found: Vec<(usize, f32)> = {
            let inner = self.read();
            let at: Vec<(usize, &[f32])> = rows
                .iter()
                .filter_map(|r| inner.by_id.get(&r.id).map(|&s| (s, r.embedding.as_slice())))
                .collect();
            let hubs = inner.hubs_of(&at);
            at.into_iter().map(|a| a.0).zip(hubs).collect()
        };
        let mut inner = self.write();
        let hubs = inner.hubs.get_or_insert_with(Vec::new);
        for (s, h) in found {
            if let Some(x) = hubs.get_mut(s) {
                *x = h;
            }
        }
        let known: Vec<f32> = hubs.iter().copied().filter(|h| h.is_finite()).collect();
        let mean = if known.is_empty() {
            0.0
        } else {
            known.iter().sum::<f32>() / known.len() as f32
        };
        hubs.iter_mut()
            .filter(|h| !h.is_finite())
            .for_each(|h| *h = mean);
        inner.hubs_ready = true;
    }

    /// The hubness of reference `id`, once computed.
    pub fn hubness(&self, id: i64) -> Option<f32> {
        let inner = self.read();
        let s = *inner.by_id.get(&id)?;
        inner.hubs.as_ref()?.get(s).copied()
    }

    /// Writes the set into the empty folder `dir`: the index's files and
    /// the slots. Searches go on meanwhile; changes wait until it is done,
    /// so the files describe one position of the feed.
    pub fn save(&self, dir: &Path) -> anyhow::Result<Saved> {
        let inner = self.read();
        let mut files = inner.index.save(dir)?;
        let path = dir.join(SLOTS_FILE);
        let out = BufWriter::new(
            std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        );
        serde_json::to_writer(out, &inner.slots)
            .with_context(|| format!("cannot write {}", path.display()))?;
        files.push(SLOTS_FILE.to_owned());
        Ok(Saved {
            files,
            applied: inner.applied,
            slots: inner.slots.len(),
            voting: inner.slots.len() - inner.dead,
        })
    }

    /// Reads a set written by [`References::save`] that had applied the
    /// feed up to `applied`. The caller checks the files' integrity first.
    pub fn load(kind: IndexKind, dim: usize, dir: &Path, applied: i64) -> anyhow::Result<Self> {
        let path = dir.join(SLOTS_FILE);
        let file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let slots: Vec<Slot> = serde_json::from_reader(BufReader::new(file))
            .with_context(|| format!("cannot read {}", path.display()))?;
        let index = index::load(kind, dim, dir)?;
        anyhow::ensure!(
            index.len() == slots.len(),
            "the index holds {} vectors for {} slots",
            index.len(),
            slots.len()
        );
        let mut by_id = HashMap::with_capacity(slots.len());
        for (s, slot) in slots.iter().enumerate() {
            anyhow::ensure!(
                by_id.insert(slot.meta.id, s).is_none(),
                "reference {} has two slots",
                slot.meta.id
            );
        }
        let dead = slots.iter().filter(|s| !s.live).count();
        Ok(Self {
            inner: RwLock::new(Inner {
                index,
                slots,
                by_id,
                dead,
                applied,
                hubs: None,
                hubs_ready: false,
            }),
        })
    }

    /// The `k` nearest live references, most similar first. Blocking work:
    /// call it off the async runtime's worker threads.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Neighbour> {
        self.search_hub_scaled(query, k, 0.0)
    }

    /// The `k` live references with the highest `similarity - weight *
    /// hubness` among the nearest few times `k`, in that order (each with
    /// its plain similarity). Weight 0, or hubness never computed: as
    /// [`References::search`].
    pub fn search_hub_scaled(&self, query: &[f32], k: usize, weight: f32) -> Vec<Neighbour> {
        let inner = self.read();
        let hubs = inner
            .hubs
            .as_deref()
            .filter(|_| weight != 0.0 && inner.hubs_ready);
        let pool = if hubs.is_some() {
            (4 * k).max(k + 32)
        } else {
            k
        };
        let mut hits: Vec<(f32, crate::index::Hit, &Slot)> = inner
            .index
            .search(query, pool + inner.dead)
            .into_iter()
            .filter_map(|h| inner.slots.get(h.slot).map(|s| (h, s)))
            .filter(|(_, s)| s.live)
            .map(|(h, s)| {
                let hub = hubs.and_then(|v| v.get(h.slot)).copied().unwrap_or(0.0);
                (h.similarity - weight * hub, h, s)
            })
            .collect();
        if hubs.is_some() {
            hits.sort_by(|a, b| b.0.total_cmp(&a.0));
        }
        hits.into_iter()
            .take(k)
            .map(|(_, h, s)| Neighbour {
                id: s.meta.id,
                similarity: h.similarity,
                label: s.meta.label,
                model: s.meta.model.clone(),
                family: s.meta.family.clone(),
                source: s.meta.source.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn unit(i: usize) -> Vec<f32> {
        // Distinct directions in 8 dimensions.
        let mut v: Vec<f32> = (0..8)
            .map(|d| ((i * 31 + d * 17) % 13) as f32 - 6.0)
            .collect();
        v[i % 8] += 40.0;
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn row(id: i64, label: Label, family: &str) -> VectorRow {
        VectorRow {
            id,
            label,
            model: Some(format!("{family}-1")),
            family: Some(family.into()),
            source: None,
            group: None,
            embedding: unit(id as usize),
        }
    }

    fn live(seq: i64, r: VectorRow) -> Change {
        Change {
            seq,
            id: r.id,
            row: Some(r),
        }
    }

    fn gone(seq: i64, id: i64) -> Change {
        Change { seq, id, row: None }
    }

    #[test]
    fn applies_store_states_one_slot_per_reference() {
        let refs = References::new(IndexKind::Exact, 8, 16);
        refs.apply(&[
            live(1, row(1, Label::Machine, "a")),
            live(2, row(2, Label::Human, "human")),
        ])
        .unwrap();
        assert_eq!((refs.len(), refs.applied()), (2, 2));
        // Deleted: stops voting at once, leaves a tombstone.
        refs.apply(&[gone(3, 1)]).unwrap();
        assert_eq!((refs.len(), refs.tombstones()), (1, 1));
        assert!(refs.search(&unit(1), 2).iter().all(|n| n.id != 1));
        // Restored with a corrected label: the same slot, the new label.
        refs.apply(&[live(4, row(1, Label::Human, "human"))])
            .unwrap();
        assert_eq!((refs.len(), refs.tombstones()), (2, 0));
        let top = &refs.search(&unit(1), 1)[0];
        assert_eq!((top.id, top.label), (1, Label::Human));
        // The same reference twice in one batch takes one slot.
        refs.add(&[row(5, Label::Machine, "b"), row(5, Label::Machine, "b")])
            .unwrap();
        assert_eq!(refs.len(), 3);
        let ids: Vec<i64> = refs.search(&unit(5), 3).iter().map(|n| n.id).collect();
        assert_eq!(ids.iter().filter(|&&i| i == 5).count(), 1, "{ids:?}");
        // Deleting what was never indexed, or twice, changes nothing.
        refs.apply(&[gone(6, 99), gone(7, 2), gone(8, 2)]).unwrap();
        assert_eq!((refs.len(), refs.tombstones(), refs.applied()), (2, 1, 8));
    }

    #[test]
    fn concurrent_readers_and_writers_neither_block_nor_lose_changes() {
        let refs = Arc::new(References::new(IndexKind::Exact, 8, 64));
        refs.add(&[row(1000, Label::Human, "human")]).unwrap();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let refs = refs.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let id = (w * 100 + i) as i64;
                        refs.add(&[row(id, Label::Machine, "m")]).unwrap();
                        if i % 4 == 0 {
                            refs.apply(&[gone(0, id)]).unwrap();
                        }
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..4)
            .map(|r| {
                let refs = refs.clone();
                std::thread::spawn(move || {
                    let mut searches = 0;
                    for i in 0..300 {
                        let hits = refs.search(&unit(i + r), 5);
                        assert!(!hits.is_empty() && hits.len() <= 5);
                        assert!(hits.windows(2).all(|p| p[0].similarity >= p[1].similarity));
                        searches += 1;
                    }
                    searches
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let searches: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(searches, 1200);
        assert_eq!(refs.len(), 1 + 4 * 75);
        assert_eq!(refs.tombstones(), 4 * 25);
        for id in [1_i64, 102, 399] {
            assert_eq!(
                refs.search(&unit(id as usize), 400)
                    .iter()
                    .filter(|n| n.id == id)
                    .count(),
                1
            );
        }
        for id in [0_i64, 104, 396] {
            assert!(refs
                .search(&unit(id as usize), 400)
                .iter()
                .all(|n| n.id != id));
        }
    }

    fn at(id: i64, label: Label, v: [f32; 3]) -> VectorRow {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        VectorRow {
            embedding: v.iter().map(|x| x / n).collect(),
            ..row(id, label, if label == Label::Human { "human" } else { "m" })
        }
    }

    /// Twelve machine references close to each other and, a little, to
    /// everything (hubs); one human reference close to the query only.
    fn hub_and_specific() -> Vec<VectorRow> {
        let mut rows: Vec<VectorRow> = (0..12)
            .map(|i| at(i, Label::Machine, [0.8, 0.6, 0.001 * i as f32]))
            .collect();
        rows.push(at(100, Label::Human, [0.78, 0.0, 0.626]));
        rows
    }

    #[test]
    fn hubness_lets_the_reference_near_this_text_outrank_those_near_all() {
        let refs = References::new(IndexKind::Exact, 3, 16);
        let rows = hub_and_specific();
        refs.add(&rows).unwrap();
        let q = [1.0, 0.0, 0.0];
        assert_eq!(refs.search(&q, 1)[0].id, 0, "plain: a hub is nearest");
        // Before any hubness is computed, a weight changes nothing.
        assert_eq!(refs.search_hub_scaled(&q, 13, 0.5), refs.search(&q, 13));
        refs.refresh_hubs(&rows);
        let hub = refs.hubness(3).unwrap();
        let specific = refs.hubness(100).unwrap();
        assert!(
            hub > 0.99 && (specific - 0.624).abs() < 0.01,
            "{hub} {specific}"
        );
        let top = &refs.search_hub_scaled(&q, 3, 0.5)[0];
        assert_eq!(top.id, 100);
        // Neighbours keep their plain similarity.
        assert!((top.similarity - 0.78).abs() < 1e-3, "{}", top.similarity);
        // Weight 0 is the plain search.
        assert_eq!(refs.search_hub_scaled(&q, 13, 0.0), refs.search(&q, 13));
    }

    #[test]
    fn references_added_later_get_their_hubness_on_arrival() {
        let rows = hub_and_specific();
        let later = at(200, Label::Human, [0.7, 0.1, 0.7]);
        let grown = References::new(IndexKind::Exact, 3, 16);
        grown.add(&rows).unwrap();
        grown.refresh_hubs(&rows);
        grown.add(std::slice::from_ref(&later)).unwrap();
        let whole = References::new(IndexKind::Exact, 3, 16);
        let mut all = rows.clone();
        all.push(later);
        whole.add(&all).unwrap();
        whole.refresh_hubs(&all);
        let (a, b) = (grown.hubness(200).unwrap(), whole.hubness(200).unwrap());
        assert!((a - b).abs() < 1e-6, "{a} {b}");
        // A deleted reference neither counts in others' hubness nor votes.
        grown.apply(&[gone(0, 100)]).unwrap();
        grown.refresh_hubs(&all);
        let nb = grown.search_hub_scaled(&[1.0, 0.0, 0.0], 14, 0.5);
        assert!(nb.iter().all(|n| n.id != 100) && nb.len() == 13);
    }

    #[test]
    fn hub_scaled_searches_run_while_references_arrive_and_hubs_refresh() {
        let refs = Arc::new(References::new(IndexKind::Exact, 8, 64));
        let seed: Vec<VectorRow> = (1000..1020)
            .map(|i| row(i, Label::Human, "human"))
            .collect();
        refs.add(&seed).unwrap();
        refs.refresh_hubs(&seed);
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let refs = refs.clone();
                let seed = seed.clone();
                std::thread::spawn(move || {
                    for i in 0..60 {
                        let id = (w * 100 + i) as i64;
                        refs.add(&[row(id, Label::Machine, "m")]).unwrap();
                        if i % 20 == 0 {
                            refs.refresh_hubs(&seed);
                        }
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..3)
            .map(|r| {
                let refs = refs.clone();
                std::thread::spawn(move || {
                    (0..200)
                        .map(|i| refs.search_hub_scaled(&unit(i + r), 5, 0.5).len())
                        .filter(|&n| n == 5)
                        .count()
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let full: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(full, 600);
        for id in [0_i64, 159, 259] {
            let h = refs.hubness(id).unwrap();
            assert!(h.is_finite() && h > -1.0 && h < 1.0, "{id}: {h}");
        }
    }
}

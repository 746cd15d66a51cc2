#!/usr/bin/env python3
"""Builds the shipped default reference set from the training corpus.

  make_default_refs.py select TRAIN.jsonl [N]
      Seeded, stratified sample of N records (default 8000): every record of
      a model with few texts, the rest sampled in proportion, whole groups
      kept together. Writes references/default/references.jsonl.gz.

  make_default_refs.py pack EMBEDDED.jsonl FILE_NAME
      Takes `detective embed` output for those records (same order) and
      writes their embeddings as f16 to references/default/FILE_NAME, then
      the manifest with counts and SHA-256 of every shipped file.

  make_default_refs.py add-held-out TRAIN.jsonl SEED FRACTION
      Appends every record of TRAIN.jsonl in the groups a training run held
      out for validation (`train --val-seed SEED`, `val_fraction FRACTION`)
      that is not a reference yet. Calibration validates on these: texts
      the encoder never saw. Existing records keep their order.

  make_default_refs.py append EMBEDDED.jsonl FILE_NAME
      Like pack, for `detective embed` output of the records appended last
      only: their embeddings are appended to references/default/FILE_NAME.

Example (default encoder):
  python3 scripts/make_default_refs.py select ../shared/corpus/train.jsonl 8000
  zcat references/default/references.jsonl.gz | target/release/detective embed > /tmp/emb.jsonl
  python3 scripts/make_default_refs.py pack /tmp/emb.jsonl embeddings-minilm-53aa51172d142c89-512.f16
"""
import gzip
import hashlib
import json
import random
import struct
import sys
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "references" / "default"
FIELDS = ("text", "label", "model", "family", "source", "domain", "attack", "lang", "group")


def select(train, n_target):
    rows = [json.loads(l) for l in open(train, encoding="utf-8") if l.strip()]
    by_model = defaultdict(list)
    for i, r in enumerate(rows):
        by_model[r["model"]].append(i)
    rng = random.Random(20250601)
    share = n_target / len(rows)
    keep = set()
    for model, idx in sorted(by_model.items()):
        if len(idx) * share < 60:
            # Rare generators: enough examples to vote, capped.
            keep.update(sorted(idx)[: max(60, min(len(idx), 150))])
            continue
        groups = defaultdict(list)
        for i in idx:
            groups[rows[i]["group"]].append(i)
        names = sorted(groups)
        rng.shuffle(names)
        want, taken = int(len(idx) * share), 0
        for g in names:
            if taken >= want:
                break
            keep.update(groups[g])
            taken += len(groups[g])
    OUT.mkdir(parents=True, exist_ok=True)
    with gzip.open(OUT / "references.jsonl.gz", "wt", encoding="utf-8", compresslevel=9) as f:
        for i in sorted(keep):
            f.write(json.dumps({k: rows[i][k] for k in FIELDS}, ensure_ascii=False) + "\n")
    print(f"{len(keep)} references selected -> {OUT / 'references.jsonl.gz'}")


def held_out(group, seed, fraction):
    """Whether `train --val-seed SEED` held GROUP out (as the training's split)."""
    rank = int.from_bytes(hashlib.sha256(f"{seed}|{group}".encode()).digest()[:8], "little")
    return rank < int(fraction * float(2**64 - 1))


def add_held_out(train, seed, fraction):
    path = OUT / "references.jsonl.gz"
    refs = [json.loads(l) for l in gzip.open(path, "rt", encoding="utf-8")]
    known = {r["text"] for r in refs}
    added = []
    for line in open(train, encoding="utf-8"):
        if not line.strip():
            continue
        r = json.loads(line)
        group = r.get("group") or hashlib.sha256(r["text"].encode()).hexdigest()
        if held_out(group, seed, fraction) and r["text"] not in known:
            known.add(r["text"])
            added.append({k: r.get(k) for k in FIELDS})
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as f:
        for r in refs + added:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(added)} held-out records appended ({len(refs) + len(added)} references)")


def append(embedded, name):
    texts = [json.loads(l) for l in gzip.open(OUT / "references.jsonl.gz", "rt", encoding="utf-8")]
    rows = [json.loads(l) for l in open(embedded, encoding="utf-8")]
    dim = len(rows[0]["embedding"])
    have = (OUT / name).stat().st_size // (2 * dim)
    assert have + len(rows) == len(texts), f"{have} + {len(rows)} embeddings for {len(texts)} references"
    with open(OUT / name, "ab") as dst:
        for ref, row in zip(texts[have:], rows):
            assert row["text"] == ref["text"], "embedding output is not in reference order"
            dst.write(struct.pack(f"<{dim}e", *row["embedding"]))
    write_manifest(texts)
    print(f"{len(rows)} embeddings appended -> {OUT / name}")


def write_manifest(texts):
    labels = defaultdict(int)
    for r in texts:
        labels[r["label"]] += 1
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(OUT.iterdir()) if p.name.endswith((".gz", ".f16"))}
    manifest = {"records": len(texts), "by_label": labels, "files": files}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def pack(embedded, name):
    texts = [json.loads(l) for l in gzip.open(OUT / "references.jsonl.gz", "rt", encoding="utf-8")]
    count = 0
    with open(embedded, encoding="utf-8") as src, open(OUT / name, "wb") as dst:
        for ref, line in zip(texts, src):
            row = json.loads(line)
            assert row["text"] == ref["text"], "embedding output is not in reference order"
            dst.write(struct.pack(f"<{len(row['embedding'])}e", *row["embedding"]))
            count += 1
    assert count == len(texts), f"{count} embeddings for {len(texts)} references"
    write_manifest(texts)
    print(f"{count} embeddings -> {OUT / name}")


if __name__ == "__main__":
    if sys.argv[1] == "select":
        select(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 8000)
    elif sys.argv[1] == "pack":
        pack(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "add-held-out":
        add_held_out(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif sys.argv[1] == "append":
        append(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)

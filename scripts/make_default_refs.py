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
    labels = defaultdict(int)
    for r in texts:
        labels[r["label"]] += 1
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(OUT.iterdir()) if p.name.endswith((".gz", ".f16"))}
    manifest = {"records": len(texts), "by_label": labels, "files": files}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{count} embeddings -> {OUT / name}")


if __name__ == "__main__":
    if sys.argv[1] == "select":
        select(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 8000)
    elif sys.argv[1] == "pack":
        pack(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)

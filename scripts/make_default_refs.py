#!/usr/bin/env python3
"""Builds the shipped default reference set from the training corpus.

Usage: make_default_refs.py TRAIN.jsonl CACHE.f32 DIM ENCODER_FILE_NAME [N]

Takes a seeded, stratified sample of N records (default 16000) of TRAIN: every
record of a model with few texts, the rest sampled in proportion, whole
groups kept together. Writes references/default/references.jsonl.gz and the
f16 embeddings of those records, read from the evaluation cache of TRAIN
(CACHE.f32: one f32 row per record of TRAIN, in file order), so the set ships
ready to search for the encoder that produced the cache.
"""
import gzip
import hashlib
import json
import random
import struct
import sys
from collections import defaultdict
from pathlib import Path

train, cache, dim, emb_name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
n_target = int(sys.argv[5]) if len(sys.argv) > 5 else 16000
out = Path(__file__).resolve().parent.parent / "references" / "default"

rows = [json.loads(l) for l in open(train, encoding="utf-8") if l.strip()]
by_model = defaultdict(list)
for i, r in enumerate(rows):
    by_model[r["model"]].append(i)
rng = random.Random(20250601)
share = n_target / len(rows)
keep = set()
for model, idx in sorted(by_model.items()):
    if len(idx) <= 300:
        keep.update(idx)
        continue
    groups = defaultdict(list)
    for i in idx:
        groups[rows[i]["group"]].append(i)
    names = sorted(groups)
    rng.shuffle(names)
    want = int(len(idx) * share)
    taken = 0
    for g in names:
        if taken >= want:
            break
        keep.update(groups[g])
        taken += len(groups[g])
chosen = sorted(keep)

data = Path(cache).read_bytes()
assert len(data) == len(rows) * dim * 4, "cache does not match the training file"
out.mkdir(parents=True, exist_ok=True)
fields = ("text", "label", "model", "family", "source", "domain", "attack", "lang", "group")
with gzip.open(out / "references.jsonl.gz", "wt", encoding="utf-8", compresslevel=9) as f:
    for i in chosen:
        f.write(json.dumps({k: rows[i][k] for k in fields}, ensure_ascii=False) + "\n")
with open(out / emb_name, "wb") as f:
    for i in chosen:
        vec = struct.unpack_from(f"<{dim}f", data, i * dim * 4)
        f.write(struct.pack(f"<{dim}e", *vec))
counts = defaultdict(int)
for i in chosen:
    counts[rows[i]["label"]] += 1
sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir()) if p.is_file() and p.name != "manifest.json" and p.suffix != ".md" and p.name != "NOTICE"}
(out / "manifest.json").write_text(json.dumps({"records": len(chosen), "by_label": counts, "files": sums}, indent=1) + "\n")
print(f"{len(chosen)} references ({dict(counts)}) -> {out}")

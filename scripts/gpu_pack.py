#!/usr/bin/env python3
"""Assembles the folder that trains the style encoder on a GPU box:

    PAYLOAD/train.py            the trainer (PyTorch only)
    PAYLOAD/base/config.json    the starting encoder's configuration
    PAYLOAD/base/model.safetensors   its weights in f16
    PAYLOAD/data.json           names, counts and the layout of data.bin.xz
    PAYLOAD/data.bin.xz         the corpus pre-tokenized (token ids as u16)
    PAYLOAD/probe.json          a few of its texts, which the trainer embeds
                                so the unpacked model can be checked here

Nothing else: the run reads no file outside the folder. Usage:

    .venv/bin/python scripts/gpu_pack.py --out gpu-payload \
        [--data ../shared/corpus/train.jsonl] [--base models/minilm] [--max-length 256]

Prints the payload's size and fails if it exceeds --limit-mib (64).
"""
import argparse
import hashlib
import json
import lzma
import os
import shutil
import struct
import sys

import numpy as np
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))


def f16_safetensors(src, dst):
    """Copies a safetensors file with floating tensors as f16 (position ids
    and other integer buffers are dropped: the trainer does not read them)."""
    with open(src, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    kinds = {"F32": np.float32, "F16": np.float16, "BF16": None}
    out_header, chunks, offset = {}, [], 0
    for name in sorted(k for k in header if k != "__metadata__"):
        meta = header[name]
        if meta["dtype"] not in kinds or name.startswith("pooler."):
            continue
        start, end = meta["data_offsets"]
        arr = np.frombuffer(data[base + start : base + end], dtype=kinds[meta["dtype"]]).astype(np.float16)
        raw = arr.tobytes()
        out_header[name] = {"dtype": "F16", "shape": meta["shape"], "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(out_header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for c in chunks:
            f.write(c)


def pack_corpus(path, tokenizer, max_length, limit):
    tok = Tokenizer.from_file(tokenizer)
    tok.enable_truncation(max_length)
    tok.no_padding()
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            r = json.loads(line)
            if r.get("label") not in ("human", "machine") or not isinstance(r.get("text"), str):
                sys.exit(f"{path}:{n}: a record needs text and label human|machine")
            records.append(r)
            if limit and len(records) >= limit:
                break
    models, families, groups, domains = {}, {}, {}, {}

    def intern(table, name):
        return table.setdefault(name, len(table))

    label, model, family, group, domain = [], [], [], [], []
    for r in records:
        human = r["label"] == "human"
        m = "human" if human else (r.get("model") or "unknown")
        fam = "human" if human else (r.get("family") or m)
        label.append(1 if human else 0)
        model.append(intern(models, m))
        family.append(intern(families, fam))
        g = r.get("group") or hashlib.sha256(r["text"].encode()).hexdigest()
        group.append(intern(groups, g))
        domain.append(intern(domains, r.get("domain") or r.get("source") or "unknown"))
    ids, offsets = [], [0]
    batch = 2048
    for s in range(0, len(records), batch):
        for enc in tok.encode_batch([r["text"] for r in records[s : s + batch]]):
            ids.extend(enc.ids)
            offsets.append(len(ids))
        print(f"\rtokenized {min(s + batch, len(records))}/{len(records)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    assert max(ids) < 65536, "token ids must fit in u16"
    arrays = [
        ("ids", np.asarray(ids, dtype=np.uint16)),
        ("offsets", np.asarray(offsets, dtype=np.int64)),
        ("label", np.asarray(label, dtype=np.int8)),
        ("model", np.asarray(model, dtype=np.int32)),
        ("family", np.asarray(family, dtype=np.int32)),
        ("group", np.asarray(group, dtype=np.int32)),
        ("domain", np.asarray(domain, dtype=np.int32)),
    ]
    meta = {
        "texts": len(records),
        "tokens": len(ids),
        "max_length": max_length,
        "models": list(models),
        "families": list(families),
        "domains": list(domains),
        "arrays": [(name, a.dtype.str, int(a.size)) for name, a in arrays],
    }
    step = max(1, len(records) // 8)
    probe = {"index": list(range(0, len(records), step))[:8]}
    probe["texts"] = [records[i]["text"] for i in probe["index"]]
    return meta, b"".join(a.tobytes() for _, a in arrays), probe


def size_of(folder):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "corpus", "train.jsonl"))
    p.add_argument("--base", default=os.path.join(HERE, "..", "models", "minilm"), help="model directory (manifest.json + weights/)")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--limit", type=int, default=0, help="pack only the first N records (for checks)")
    p.add_argument("--limit-mib", type=float, default=64)
    args = p.parse_args()
    weights = os.path.join(args.base, "weights")
    if not os.path.isdir(weights):
        weights = args.base
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(os.path.join(args.out, "base"))
    shutil.copy(os.path.join(HERE, "gpu", "train.py"), os.path.join(args.out, "train.py"))
    shutil.copy(os.path.join(weights, "config.json"), os.path.join(args.out, "base", "config.json"))
    f16_safetensors(os.path.join(weights, "model.safetensors"), os.path.join(args.out, "base", "model.safetensors"))
    meta, blob, probe = pack_corpus(args.data, os.path.join(weights, "tokenizer.json"), args.max_length, args.limit)
    meta["base"] = os.path.basename(os.path.normpath(args.base))
    meta["source"] = os.path.basename(args.data)
    with open(os.path.join(args.out, "data.json"), "w") as f:
        json.dump(meta, f, indent=1)
    with open(os.path.join(args.out, "probe.json"), "w") as f:
        json.dump(probe, f)
    with open(os.path.join(args.out, "data.bin.xz"), "wb") as f:
        f.write(lzma.compress(blob, preset=6))
    mib = size_of(args.out) / (1 << 20)
    print(f"payload {args.out}: {mib:.1f} MiB ({meta['texts']} texts, {meta['tokens']} tokens, max_length {args.max_length})")
    if mib > args.limit_mib:
        sys.exit(f"payload is {mib:.1f} MiB, over the {args.limit_mib} MiB limit: lower --max-length or --limit")


if __name__ == "__main__":
    main()

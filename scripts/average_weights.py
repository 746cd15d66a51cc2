#!/usr/bin/env python3
"""Averages the encoder weights of several fine-tuned models of one
architecture (a "model soup") into a training checkpoint that
`detective export` turns into a named model:

    scripts/average_weights.py --out DIR --like CHECKPOINT MODEL_DIR MODEL_DIR...
    target/release/detective export --checkpoint DIR --name NAME --out .cache/models/NAME

Each MODEL_DIR is a model directory (`weights/model.safetensors` of an
exported model, or `model.safetensors` of a checkpoint), f16 or f32. The
mean is taken tensor by tensor in f32. DIR gets a copy of CHECKPOINT (its
config, tokenizer, head and run state) with `model.safetensors` replaced
by the mean. Standard library only.
"""
import argparse
import array
import json
import os
import shutil
import struct
import sys

FORMATS = {"F16": ("e", 2), "F32": ("f", 4)}


def weights_file(model_dir):
    for rel in ("weights/model.safetensors", "model.safetensors"):
        path = os.path.join(model_dir, rel)
        if os.path.isfile(path):
            return path
    sys.exit(f"{model_dir}: no model.safetensors")


def load(path):
    """{name: (shape, array of f32)} from a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] not in FORMATS:
            sys.exit(f"{path}: {name} has dtype {meta['dtype']}; only F16 and F32 are averaged")
        code, size = FORMATS[meta["dtype"]]
        start, end = meta["data_offsets"]
        values = struct.unpack(f"<{(end - start) // size}{code}", data[base + start : base + end])
        out[name] = (meta["shape"], array.array("f", values))
    return out


def save(path, tensors):
    header, offset = {}, 0
    for name in sorted(tensors):
        shape, values = tensors[name]
        nbytes = len(values) * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    if sys.byteorder != "little":
        sys.exit("writing safetensors needs a little-endian machine")
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in sorted(tensors):
            tensors[name][1].tofile(f)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--like", required=True, help="checkpoint whose config, tokenizer, head and state are copied")
    p.add_argument("models", nargs="+", help="model directories to average (two or more)")
    args = p.parse_args()
    if len(args.models) < 2:
        sys.exit("give two or more models to average")
    first = load(weights_file(args.models[0]))
    sums = {name: (shape, [float(x) for x in values]) for name, (shape, values) in first.items()}
    for model in args.models[1:]:
        other = load(weights_file(model))
        if other.keys() != sums.keys():
            sys.exit(f"{model}: its tensors differ from {args.models[0]}'s")
        for name, (shape, values) in other.items():
            if shape != sums[name][0]:
                sys.exit(f"{model}: {name} has shape {shape}, not {sums[name][0]}")
            acc = sums[name][1]
            for i, x in enumerate(values):
                acc[i] += x
        print(f"added {model}", file=sys.stderr)
    n = len(args.models)
    mean = {name: (shape, array.array("f", (x / n for x in acc))) for name, (shape, acc) in sums.items()}
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    shutil.copytree(args.like, args.out)
    save(os.path.join(args.out, "model.safetensors"), mean)
    print(f"averaged {n} models ({len(mean)} tensors) into {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

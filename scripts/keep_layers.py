#!/usr/bin/env python3
"""Writes a model that reads only the first N transformer layers of another:

    scripts/keep_layers.py --from models/detective-minilm --layers 4 --alpha 0.8 --name NAME --out DIR

The lower layers of a fine-tuned encoder keep more of what its pre-training
learnt about text in general and less of the fine-tuning's training
domains; mean-pooling an earlier layer is a different style space, and a
cheaper one (a BERT layer is a sixth of MiniLM's work per token). The new
model directory gets the first N layers' tensors unchanged (same dtype),
`config.json` with `num_hidden_layers: N`, the tokenizer, licence files
and `training.json` (so validation still knows the texts the training held
out), and a manifest with the new checksums; `--alpha` sets the neural
weight of its default style view (choose it with `detective eval
--choose-view`), which is otherwise the source's. Standard library only.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import struct
import sys


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def keep_tensors(src, dst, layers):
    """Copies the safetensors file `src` to `dst` without the tensors of
    layers `layers` and above; returns the number of parameters kept."""
    with open(src, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    layer = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.")
    kept, chunks, offset, params = {}, [], 0, 0
    for name in sorted(k for k in header if k != "__metadata__"):
        m = layer.search(name)
        if m and int(m.group(1)) >= layers:
            continue
        meta = header[name]
        start, end = meta["data_offsets"]
        chunks.append(data[base + start : base + end])
        kept[name] = {"dtype": meta["dtype"], "shape": meta["shape"], "data_offsets": [offset, offset + end - start]}
        offset += end - start
        count = 1
        for d in meta["shape"]:
            count *= d
        params += count
    blob = json.dumps(kept, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for c in chunks:
            f.write(c)
    return params


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="src", required=True, help="model directory (with manifest.json and weights/)")
    p.add_argument("--layers", type=int, required=True, help="transformer layers to keep, from the bottom")
    p.add_argument("--alpha", type=float, help="neural weight of the default style view (default: the source's)")
    p.add_argument("--name", required=True, help="the new model's name")
    p.add_argument("--out", required=True, help="the new model directory")
    args = p.parse_args()
    manifest = json.load(open(os.path.join(args.src, "manifest.json")))
    if args.alpha is not None and (not 0 <= args.alpha <= 1 or "view" not in manifest):
        sys.exit("--alpha needs a value within [0, 1] and a source whose manifest names a view")
    weights = os.path.join(args.src, "weights")
    config = json.load(open(os.path.join(weights, "config.json")))
    total = config["num_hidden_layers"]
    if not 1 <= args.layers < total:
        sys.exit(f"--layers must be within 1..{total - 1} ({args.src} has {total} layers)")
    tmp = args.out + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(os.path.join(tmp, "weights"))
    for name in os.listdir(weights):
        if name not in ("config.json", "model.safetensors"):
            shutil.copy2(os.path.join(weights, name), os.path.join(tmp, "weights", name))
    config["num_hidden_layers"] = args.layers
    with open(os.path.join(tmp, "weights", "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    params = keep_tensors(os.path.join(weights, "model.safetensors"), os.path.join(tmp, "weights", "model.safetensors"), args.layers)
    source = manifest["name"]
    manifest["name"] = args.name
    manifest["description"] = f"the first {args.layers} of the {total} layers of {source}: {manifest.get('description', '')}"
    manifest["parameters"] = params
    if args.alpha is not None:
        manifest["view"]["alpha"] = args.alpha
    manifest["layers_of"] = {"model": source, "layers": args.layers, "of": total}
    manifest["files"] = {
        name: sha256(os.path.join(tmp, "weights", name))
        for name in sorted(manifest.get("files", {}))
        if os.path.isfile(os.path.join(tmp, "weights", name))
    }
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.replace(tmp, args.out)
    print(f"{args.out}: {args.layers} of {total} layers, {params:,} parameters", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Turns what `train.py` wrote on the GPU box into a named model directory
that `detective` loads:

    .venv/bin/python scripts/gpu_unpack.py --from OUT --name NAME \
        [--base models/minilm] [--out models/NAME] [--max-length N]

Reassembles `model.safetensors.part-*` (checking the SHA-256 that
training.json records), lays it out as a training checkpoint with the base
model's config and tokenizer and a `state.json` summarising the run, then
runs `detective export`, which writes `manifest.json` with checksums and the
licence of the base model. First it brings back the tracked files that
`scripts/gpu_travel.py light` set aside for the run, if any.
"""
import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="src", required=True, help="the trainer's output folder")
    p.add_argument("--name", required=True)
    p.add_argument("--base", default="minilm", help="the base model's name (its config and tokenizer)")
    p.add_argument("--out", help="default: models/NAME")
    p.add_argument("--max-length", type=int, help="tokens the model reads when served (default: as trained)")
    p.add_argument("--detective", default=os.path.join(ROOT, "target", "release", "detective"))
    args = p.parse_args()
    out = args.out or os.path.join(ROOT, "models", args.name)
    subprocess.run([sys.executable, os.path.join(HERE, "gpu_travel.py"), "restore"], check=True)

    report = json.load(open(os.path.join(args.src, "training.json")))
    parts = sorted(glob.glob(os.path.join(args.src, "model.safetensors.part-*")))
    if not parts:
        sys.exit(f"no model.safetensors.part-* in {args.src}")
    base = os.path.join(ROOT, "models", args.base, "weights")
    if not os.path.isdir(base):
        base = args.base
    with tempfile.TemporaryDirectory() as ckpt:
        digest = hashlib.sha256()
        with open(os.path.join(ckpt, "model.safetensors"), "wb") as f:
            for part in parts:
                data = open(part, "rb").read()
                digest.update(data)
                f.write(data)
        if digest.hexdigest() != report["model_sha256"]:
            sys.exit(f"reassembled weights do not match training.json ({len(parts)} parts): a part is missing or damaged")
        for name in ("config.json", "tokenizer.json"):
            shutil.copy(os.path.join(base, name), os.path.join(ckpt, name))
        best = report["best"]
        cfg = report["config"]
        state = {
            "step": report["steps"],
            "best_step": best["step"],
            "best_avg_rec": best["score"],
            "validations": [[v["step"], v["score"]] for v in report["validations"]],
            "texts_seen": report["texts_seen"],
            "train_seconds": report["train_seconds"],
            "config": {
                "trainer": "scripts/gpu/train.py",
                "device": report["device"],
                "texts_per_second": report["texts_per_second"],
                "epochs": report["epochs"],
                "stopped_by": report["stopped_by"],
                "validation": report["validations"],
                "encoder": {"model": args.base, "max_length": args.max_length or cfg["max_length"]},
                **{k: v for k, v in cfg.items() if k not in ("out", "payload")},
            },
        }
        json.dump(state, open(os.path.join(ckpt, "state.json"), "w"), indent=2)
        desc = (
            f"{cfg['base']} fine-tuned with the DeTeCtive multi-level contrastive loss on {report['device']} "
            f"({report['steps']} steps, {report['epochs']:.2f} passes over the training texts; f16 weights)"
        )
        subprocess.run(
            [args.detective, "export", "--checkpoint", ckpt, "--name", args.name, "--out", out, "--description", desc],
            check=True,
        )
    print(f"{out}: best step {best['step']}, validation score {best['score']:.2f}")


if __name__ == "__main__":
    main()

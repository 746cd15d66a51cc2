#!/usr/bin/env python3
"""Reference encoder throughput: the same torch through Python `transformers`,
padding every batch to max_length as the DeTeCtive reference code does.

Mirrors `detective bench`: fixed-length batches of synthetic ids, and a
mixed-length sample of real texts embedded end to end (tokenization included).
Writes the same JSON row format so scripts/bench-encoder can compare them.
"""
import argparse
import json
import statistics
import time

import torch
from transformers import AutoModel, AutoTokenizer


def flops(cfg, tokens, seq):
    h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    return 2 * (4 * h * h + 2 * h * i + 2 * seq * h) * tokens * n


def embed(model, ids, mask):
    out = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).to(out.dtype)
    pooled = (out * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def median_secs(reps, fn):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def row(workload, batch, length, texts, tokens, secs, fl):
    return dict(workload=workload, batch=batch, length=length, texts=texts, tokens=tokens,
                seconds=secs, texts_per_s=texts / secs, tokens_per_s=tokens / secs,
                gflops=fl / secs / 1e9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--lengths", default="64,128,256,512")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--mixed")
    ap.add_argument("--mixed-count", type=int, default=256)
    ap.add_argument("--mixed-batch", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    model = AutoModel.from_pretrained(a.model_dir).eval()
    cfg = model.config
    rows = []
    with torch.no_grad():
        for length in map(int, a.lengths.split(",")):
            for batch in map(int, a.batches.split(",")):
                torch.manual_seed(17)
                ids = torch.randint(1000, min(cfg.vocab_size, 29000), (batch, length))
                mask = torch.ones_like(ids)
                embed(model, ids, mask)
                secs = median_secs(a.reps, lambda: embed(model, ids, mask))
                rows.append(row("fixed", batch, length, batch, batch * length, secs,
                                flops(cfg, batch * length, length)))
                r = rows[-1]
                print(f"fixed  b={batch:<3} L={length:<4} {r['texts_per_s']:10.1f} texts/s "
                      f"{r['tokens_per_s']:10.0f} tokens/s {r['gflops']:8.1f} GFLOP/s", flush=True)
        if a.mixed:
            texts = []
            with open(a.mixed) as f:
                for line in f:
                    if line.strip():
                        texts.append(json.loads(line)["text"])
                    if len(texts) >= a.mixed_count:
                        break
            lens = [len(x) for x in tok(texts, truncation=True, max_length=a.max_length)["input_ids"]]

            def run():
                for s in range(0, len(texts), a.mixed_batch):
                    enc = tok(texts[s:s + a.mixed_batch], padding="max_length", truncation=True,
                              max_length=a.max_length, return_tensors="pt")
                    embed(model, enc["input_ids"], enc["attention_mask"])

            run()
            secs = median_secs(a.reps, run)
            rows.append(row("mixed", 0, 0, len(texts), sum(lens), secs,
                            sum(flops(cfg, n, n) for n in lens)))
            r = rows[-1]
            print(f"mixed  {len(texts)} texts  {r['texts_per_s']:10.1f} texts/s "
                  f"{r['tokens_per_s']:10.0f} tokens/s {r['gflops']:8.1f} GFLOP/s", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(implementation="transformers", threads=torch.get_num_threads(),
                           reps=a.reps, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()

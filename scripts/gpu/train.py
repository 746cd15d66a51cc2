#!/usr/bin/env python3
"""Trains the style encoder with the DeTeCtive multi-level contrastive loss on
one NVIDIA GPU (or the CPU, for checks), from a payload folder made by
`scripts/gpu_pack.py`. Needs only PyTorch (and numpy): the BERT encoder, the
safetensors reader and writer, the sampler and the loss are all here, so the
payload runs on a box with no network, no model hub and no Rust.

    python3 PAYLOAD/train.py --payload PAYLOAD --out OUT --time-budget 420

writes to OUT: `model.safetensors.part-00..` (the best checkpoint's encoder
in f16, cut into pieces of at most 15 MiB), `training.json` (configuration,
validation curve, throughput) and `probe.json` (the trainer's own embeddings
of the payload's probe texts, so the unpacked model can be checked against
them).
`scripts/gpu_unpack.py` turns OUT back into a model directory.

Checkpoints are chosen on validation sets carved from the training data and
never trained on: held-out groups of the training families (in
distribution); one whole held-out family (`--holdout-family`), and whole
held-out domains, their human and machine texts alike (`--holdout-domain`,
comma-separated for several), whose few samples are added as references
before their other texts are scored (an unseen generator, an unseen domain, each with training-free
incremental adaptation). The score is their mean AvgRec.

`python3 train.py loss-parity FIXTURE.json` checks the loss against the
reference values of the DeTeCtive implementation.
"""
import argparse
import hashlib
import json
import lzma
import math
import os
import random
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HUMAN, MACHINE = 1, 0
PART_BYTES = 15 << 20

# --------------------------------------------------------------------------
# safetensors without the package: an 8-byte header length, a JSON header,
# then the raw little-endian tensors.

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}
NAMES = {v: k for k, v in DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        buf = bytearray(data[base + start : base + end])
        t = torch.frombuffer(buf, dtype=DTYPES[meta["dtype"]]) if buf else torch.empty(0, dtype=DTYPES[meta["dtype"]])
        out[name] = t.reshape(meta["shape"])
    return out


def safetensors_bytes(tensors):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


# --------------------------------------------------------------------------
# BERT (the MiniLM architecture), parameter names as in the checkpoint.


class Layer(nn.Module):
    def __init__(self, h, inter, heads, eps):
        super().__init__()
        self.heads = heads
        self.attention = nn.ModuleDict(
            {
                "self": nn.ModuleDict({k: nn.Linear(h, h) for k in ("query", "key", "value")}),
                "output": nn.ModuleDict({"dense": nn.Linear(h, h), "LayerNorm": nn.LayerNorm(h, eps=eps)}),
            }
        )
        self.intermediate = nn.ModuleDict({"dense": nn.Linear(h, inter)})
        self.output = nn.ModuleDict({"dense": nn.Linear(inter, h), "LayerNorm": nn.LayerNorm(h, eps=eps)})

    def forward(self, x, keep):
        b, n, h = x.shape
        a = self.attention["self"]

        def split(t):
            return t.view(b, n, self.heads, h // self.heads).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(split(a["query"](x)), split(a["key"](x)), split(a["value"](x)), attn_mask=keep)
        ctx = ctx.transpose(1, 2).reshape(b, n, h)
        o = self.attention["output"]
        x = o["LayerNorm"](x + o["dense"](ctx))
        y = self.output["dense"](F.gelu(self.intermediate["dense"](x)))
        return self.output["LayerNorm"](x + y)


class Bert(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h, eps = cfg["hidden_size"], cfg.get("layer_norm_eps", 1e-12)
        self.embeddings = nn.ModuleDict(
            {
                "word_embeddings": nn.Embedding(cfg["vocab_size"], h),
                "position_embeddings": nn.Embedding(cfg["max_position_embeddings"], h),
                "token_type_embeddings": nn.Embedding(cfg.get("type_vocab_size", 2), h),
                "LayerNorm": nn.LayerNorm(h, eps=eps),
            }
        )
        layers = [Layer(h, cfg["intermediate_size"], cfg["num_attention_heads"], eps) for _ in range(cfg["num_hidden_layers"])]
        self.encoder = nn.ModuleDict({"layer": nn.ModuleList(layers)})

    def forward(self, ids, mask):
        e = self.embeddings
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = e["word_embeddings"](ids) + e["position_embeddings"](pos)[None] + e["token_type_embeddings"].weight[0]
        x = e["LayerNorm"](x)
        keep = (mask != 0)[:, None, None, :]
        for layer in self.encoder["layer"]:
            x = layer(x, keep)
        m = mask.to(x.dtype)[..., None]
        return (x * m).sum(1) / m.sum(1).clamp_min(1e-9)

    def load(self, tensors):
        own = self.state_dict()
        missing = [k for k in own if k not in tensors]
        if missing:
            raise SystemExit(f"base weights lack {missing[:3]}...")
        self.load_state_dict({k: tensors[k].float() for k in own})


# --------------------------------------------------------------------------
# The multi-level contrastive loss (same levels and conventions as
# src/train/loss.rs).


def contrastive(q, k, qc, kc, temperature):
    """Per-level losses of queries `q` [n, d] against keys `k` [m, d];
    `qc`/`kc` are (model, family, label) id tensors."""
    qn = F.normalize(q.float(), dim=-1, eps=1e-12)
    kn = F.normalize(k.float(), dim=-1, eps=1e-12)
    logits = qn @ kn.T / temperature

    def same(a, b):
        return a[:, None] == b[None, :]

    sm, sf, sl = same(qc[0], kc[0]), same(qc[1], kc[1]), same(qc[2], kc[2])
    is_human, is_machine = qc[2] == HUMAN, qc[2] == MACHINE

    def level(pos, neg, rows):
        pos = pos.float()
        pos_logit = (logits * pos).sum(1) / pos.sum(1).clamp_min(1.0)
        full = torch.cat([pos_logit[:, None], logits * neg.float()], 1)
        if not rows.any():
            return logits.new_zeros(())
        return -full[rows].log_softmax(-1)[:, 0].mean()

    return {
        "model": level(sm, ~sm, is_machine),
        "family": level(sf ^ sm, ~sf, is_machine),
        "label": level(sl ^ sf, ~sl, is_machine),
        "human": level(sl, ~sl, is_human),
    }


def total_loss(levels, w, cls=None):
    a, b, c, d = w
    t = a * levels["model"] + b * levels["family"] + c * levels["label"] + (a + b + c) * levels["human"]
    return t if cls is None else t + d * cls


def loss_parity(path):
    """Exit status 0 when every fixture case matches within 1e-4."""
    cases = json.load(open(path))["cases"]
    worst = 0.0
    for case in cases:
        e = torch.tensor(case["embeddings"], dtype=torch.float64)
        ids = tuple(torch.tensor(case[k]) for k in ("model", "family", "label"))
        lv = contrastive(e, e, ids, ids, case["temperature"])
        got = {k: float(v) for k, v in lv.items()}
        got["total_a1_b1_c1"] = float(total_loss(lv, (1, 1, 1, 0)))
        for key, want in case["expected"].items():
            err = abs(got[key] - want) / max(1.0, abs(want))
            worst = max(worst, err)
            if err > 1e-4:
                print(f"seed {case['seed']} {key}: got {got[key]}, want {want}")
    print(json.dumps({"cases": len(cases), "max_rel_error": worst}))
    return 0 if worst <= 1e-4 else 1


# --------------------------------------------------------------------------
# Data: the packed, pre-tokenized corpus.


def load_payload(payload):
    meta = json.load(open(os.path.join(payload, "data.json")))
    raw = lzma.decompress(open(os.path.join(payload, "data.bin.xz"), "rb").read())
    arrays, at = {}, 0
    for name, dtype, count in meta["arrays"]:
        n = np.dtype(dtype).itemsize * count
        arrays[name] = np.frombuffer(raw, dtype=dtype, count=count, offset=at)
        at += n
    return meta, arrays


class Corpus:
    def __init__(self, meta, arrays):
        self.meta = meta
        self.ids = arrays["ids"]
        self.offsets = arrays["offsets"]
        self.label = arrays["label"].astype(np.int64)
        self.model = arrays["model"].astype(np.int64)
        self.family = arrays["family"].astype(np.int64)
        self.group = arrays["group"]
        self.families = meta["families"]
        self.domains = meta.get("domains", [])
        self.domain = arrays["domain"] if "domain" in arrays else np.full(len(self.label), -1)

    def __len__(self):
        return len(self.label)

    def tokens(self, i):
        return self.ids[self.offsets[i] : self.offsets[i + 1]].astype(np.int64)


def pad(corpus, idx, device):
    seqs = [corpus.tokens(i) for i in idx]
    n = max(len(s) for s in seqs)
    ids = np.zeros((len(seqs), n), dtype=np.int64)
    mask = np.zeros((len(seqs), n), dtype=np.int64)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
        mask[r, : len(s)] = 1
    return torch.from_numpy(ids).to(device, non_blocking=True), torch.from_numpy(mask).to(device, non_blocking=True)


def split(corpus, val_fraction, holdout_family, holdout_domains, seed):
    """(train, in-distribution validation, held-out family, {held-out domain:
    its texts}) index lists; a text's side depends only on its group, or on
    its domain."""
    train, val, held = [], [], []
    hold = corpus.families.index(holdout_family) if holdout_family in corpus.families else -2
    hold_d = {corpus.domains.index(d): d for d in holdout_domains if d in corpus.domains}
    held_domain = {d: [] for d in hold_d.values()}
    for i in range(len(corpus)):
        if corpus.domain[i] in hold_d:
            held_domain[hold_d[corpus.domain[i]]].append(i)
            continue
        if corpus.family[i] == hold:
            held.append(i)
            continue
        h = hashlib.sha256(f"{seed}:{int(corpus.group[i])}".encode()).digest()
        (val if int.from_bytes(h[:8], "little") / 2**64 < val_fraction else train).append(i)
    return train, val, held, held_domain


class Sampler:
    """Half machine texts, `per_model` from each of two generators of several
    families (every loss level has positives), half human texts; `matched`
    of the human half drawn as hard negatives, from the group (the human
    original of a machine continuation) or else the domain of the batch's
    machine texts (`detective train --matched-humans`)."""

    def __init__(self, corpus, idx, batch, per_model, seed, matched=0.0):
        self.machine, self.humans = {}, []
        self.by_group, self.by_domain = {}, {}
        self.corpus = corpus
        for i in idx:
            if corpus.label[i] == HUMAN:
                self.humans.append(i)
                self.by_group.setdefault(int(corpus.group[i]), []).append(i)
                if corpus.domain[i] >= 0:
                    self.by_domain.setdefault(int(corpus.domain[i]), []).append(i)
            else:
                self.machine.setdefault(int(corpus.family[i]), {}).setdefault(int(corpus.model[i]), []).append(i)
        self.batch, self.per_model, self.seed = max(batch, 4), max(per_model, 2), seed
        self.matched = min(max(matched, 0.0), 1.0)

    def draw(self, step):
        rng = random.Random(self.seed * 1_000_003 + step)
        want_machine = self.batch // 2 if self.humans else self.batch
        out = []
        families = list(self.machine.values())
        rng.shuffle(families)
        nxt = 0
        while len(out) < want_machine and families and nxt < 10_000:
            fam = families[nxt % len(families)]
            nxt += 1
            for texts in rng.sample(list(fam.values()), min(2, len(fam))):
                n = min(self.per_model, want_machine - len(out), len(texts))
                out.extend(rng.sample(texts, n))
                if len(out) >= want_machine:
                    break
        if not self.humans:
            return out
        want_human = min(self.batch - len(out), len(self.humans))
        if self.matched == 0:
            out.extend(rng.sample(self.humans, want_human))
            return out
        chosen, humans = set(), []
        machines = list(out)
        rng.shuffle(machines)
        for m in machines:
            if len(humans) >= round(want_human * self.matched):
                break
            pools = [self.by_group.get(int(self.corpus.group[m]), [])]
            if self.corpus.domain[m] >= 0:
                pools.append(self.by_domain.get(int(self.corpus.domain[m]), []))
            for pool in pools:
                # A few random tries: pools run to thousands of texts.
                picks = [h for h in (rng.choice(pool) for _ in range(8 if pool else 0)) if h not in chosen]
                if picks:
                    chosen.add(picks[0])
                    humans.append(picks[0])
                    break
        tries = 0
        while len(humans) < want_human and tries < 100 * want_human:
            tries += 1
            h = rng.choice(self.humans)
            if h not in chosen:
                chosen.add(h)
                humans.append(h)
        return out + humans


# --------------------------------------------------------------------------
# Validation: k-NN AvgRec, as `detective` votes.


@torch.no_grad()
def embed(model, corpus, idx, device, amp, batch=256):
    model.eval()
    order = sorted(range(len(idx)), key=lambda j: len(corpus.tokens(idx[j])))
    out = torch.empty(len(idx), model.embeddings["word_embeddings"].weight.shape[1])
    for s in range(0, len(order), batch):
        chunk = order[s : s + batch]
        ids, mask = pad(corpus, [idx[j] for j in chunk], device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            v = model(ids, mask)
        out[chunk] = F.normalize(v.float(), dim=-1).cpu()
    model.train()
    return out


def avg_rec(ref_vecs, ref_labels, q_vecs, q_labels, ks=(1, 3, 5, 10)):
    """Best AvgRec (mean recall of humans and machines, in %) over `ks` of a
    similarity-weighted majority of the k nearest references."""
    sims = q_vecs @ ref_vecs.T
    top_sim, top = sims.topk(max(ks), dim=1)
    lab = ref_labels[top]
    best = 0.0
    for k in ks:
        w = torch.exp(top_sim[:, :k] / 0.05)
        machine = (w * (lab[:, :k] == MACHINE)).sum(1)
        human = (w * (lab[:, :k] == HUMAN)).sum(1)
        pred = torch.where(machine > human, MACHINE, HUMAN)
        recs = [(pred[q_labels == c] == c).float().mean().item() * 100 for c in (HUMAN, MACHINE) if (q_labels == c).any()]
        best = max(best, sum(recs) / len(recs))
    return best


class Validator:
    def __init__(self, corpus, train, val, held, held_domain, args):
        rng = random.Random(args.seed)
        self.corpus = corpus
        self.refs = rng.sample(train, min(args.val_refs, len(train)))
        self.queries = rng.sample(val, min(args.val_queries, len(val)))
        # name -> (texts added as references, texts scored)
        self.unseen = {}
        rng.shuffle(held)
        unseen = held[args.holdout_refs : args.holdout_refs + args.val_queries // 2]
        humans = [i for i in self.queries if corpus.label[i] == HUMAN][: len(unseen)]
        if unseen and held[: args.holdout_refs]:
            self.unseen["unseen_family_tfia"] = (held[: args.holdout_refs], unseen + humans)
        # A held-out domain brings its own humans: add and score both labels.
        for name, texts in held_domain.items():
            rng.shuffle(texts)
            by_label = [[i for i in texts if corpus.label[i] == c] for c in (HUMAN, MACHINE)]
            half = args.holdout_refs // 2
            added = by_label[0][:half] + by_label[1][:half]
            scored = by_label[0][half : half + args.val_queries // 4] + by_label[1][half : half + args.val_queries // 4]
            if all(by_label) and added and scored:
                self.unseen[f"unseen_domain_tfia:{name}"] = (added, scored)

    def __call__(self, model, device, amp):
        c = self.corpus
        labels = lambda idx: torch.tensor(c.label[idx])  # noqa: E731
        refs = embed(model, c, self.refs, device, amp)
        scores = {"in_distribution": avg_rec(refs, labels(self.refs), embed(model, c, self.queries, device, amp), labels(self.queries))}
        for name, (added_idx, scored) in self.unseen.items():
            added = embed(model, c, added_idx, device, amp)
            all_refs = torch.cat([refs, added])
            all_labels = torch.cat([labels(self.refs), labels(added_idx)])
            scores[name] = avg_rec(all_refs, all_labels, embed(model, c, scored, device, amp), labels(scored))
        scores["score"] = sum(scores.values()) / len(scores)
        return scores


# --------------------------------------------------------------------------


def lr_at(progress, lr, warmup):
    """Linear warm-up, then cosine decay; `progress` in [0, 1] is the larger
    of the share of steps and the share of the time budget used, so a run cut
    by its budget still ends with a decayed rate."""
    if progress < warmup:
        return lr * max(progress, 1e-3) / warmup
    t = (progress - warmup) / max(1e-9, 1 - warmup)
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def write_outputs(out, best_state, report, probe):
    os.makedirs(out, exist_ok=True)
    blob = safetensors_bytes({k: v.half() for k, v in best_state.items()})
    for old in os.listdir(out):
        if old.startswith("model.safetensors.part-"):
            os.remove(os.path.join(out, old))
    for n, s in enumerate(range(0, len(blob), PART_BYTES)):
        with open(os.path.join(out, f"model.safetensors.part-{n:02d}"), "wb") as f:
            f.write(blob[s : s + PART_BYTES])
    report["model_sha256"] = hashlib.sha256(blob).hexdigest()
    report["model_bytes"] = len(blob)
    json.dump(report, open(os.path.join(out, "training.json"), "w"), indent=2)
    json.dump(probe, open(os.path.join(out, "probe.json"), "w"))


def train(args):
    started = time.time()
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    amp = device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    meta, arrays = load_payload(args.payload)
    corpus = Corpus(meta, arrays)
    cfg = json.load(open(os.path.join(args.payload, "base", "config.json")))
    model = Bert(cfg)
    model.load(read_safetensors(os.path.join(args.payload, "base", "model.safetensors")))
    model.to(device).train()
    dim = cfg["hidden_size"]
    head = nn.Sequential(nn.Linear(dim, 256), nn.ReLU(), nn.Linear(256, 2)).to(device)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.98), weight_decay=args.weight_decay, fused=device.type == "cuda")

    # By default `yelp`, where the data has it.
    named = args.holdout_domain if args.holdout_domain is not None else "yelp" * ("yelp" in corpus.domains)
    holdout_domains = [d for d in named.split(",") if d]
    unknown = [d for d in holdout_domains if d not in corpus.domains]
    if unknown:
        raise SystemExit(f"no text is of the domain {', '.join(unknown)} (the domains: {', '.join(sorted(map(str, corpus.domains)))})")
    train_idx, val_idx, held_idx, held_domain = split(corpus, args.val_fraction, args.holdout_family, holdout_domains, args.seed)
    sampler = Sampler(corpus, train_idx, args.batch_size, args.per_model, args.seed, args.matched_humans)
    validate = Validator(corpus, train_idx, val_idx, held_idx, held_domain, args)
    print(
        f"device {device} ({torch.cuda.get_device_name() if amp else 'cpu'}), {len(train_idx)} train, "
        f"{len(val_idx)} validation, {len(held_idx)} held-out family {args.holdout_family!r}, "
        f"held-out domains {', '.join(f'{d!r} ({len(t)})' for d, t in held_domain.items()) or 'none'}, "
        f"max_length {meta['max_length']}, batch {args.batch_size}, {args.steps} steps",
        flush=True,
    )
    queue, curve, best, best_state = [], [], None, None
    texts = tokens = 0
    train_seconds = 0.0
    step = 0
    w = (args.a, args.b, args.c, args.d)

    packed_probe = json.load(open(os.path.join(args.payload, "probe.json")))
    probe_model = Bert(cfg).to(device)

    def save(stop):
        """Writes the best checkpoint so far, so a run cut short still
        leaves its best weights behind."""
        # The probe is embedded by the weights as shipped: f16, read back as f32.
        probe_model.load_state_dict({k: v.half().float() for k, v in best_state.items()})
        probe_vecs = embed(probe_model, corpus, packed_probe["index"], device, False)
        probe = {"texts": packed_probe["texts"], "embeddings": probe_vecs.tolist()}
        report = {
            "steps": step,
            "stopped_by": stop,
            "texts_seen": texts,
            "epochs": texts / max(1, len(train_idx)),
            "train_seconds": train_seconds,
            "wall_seconds": time.time() - started,
            "texts_per_second": texts / max(train_seconds, 1e-9),
            "tokens_per_second": tokens / max(train_seconds, 1e-9),
            "device": torch.cuda.get_device_name() if amp else "cpu",
            "best": best,
            "validations": curve,
            "config": {**vars(args), "max_length": meta["max_length"], "base": meta["base"]},
        }
        write_outputs(args.out, best_state, report, probe)

    def check(step):
        nonlocal best, best_state
        scores = validate(model, device, amp)
        curve.append({"step": step, **{k: round(v, 3) for k, v in scores.items()}})
        mark = ""
        if best is None or scores["score"] > best["score"]:
            best = {"step": step, **scores}
            best_state = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}
            mark = " (best)"
        print(f"step {step}: validation " + " ".join(f"{k}={v:.2f}" for k, v in scores.items()) + mark, flush=True)
        if mark and step > 0:
            save("running: best so far")

    check(0)
    stop = "steps"
    while step < args.steps:
        if time.time() - started > args.time_budget:
            stop = "time budget"
            break
        t0 = time.time()
        idx = sampler.draw(step)
        ids, mask = pad(corpus, idx, device)
        cls_ids = tuple(torch.from_numpy(a[idx]).to(device) for a in (corpus.model, corpus.family, corpus.label))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            emb = model(ids, mask)
            logits = head(emb)
        emb = emb.float()
        keys = torch.cat([emb.detach()] + [q[0] for q in queue])
        kc = tuple(torch.cat([cls_ids[j]] + [q[1][j] for q in queue]) for j in range(3))
        levels = contrastive(emb, keys, cls_ids, kc, args.temperature)
        loss = total_loss(levels, w, F.cross_entropy(logits.float(), cls_ids[2]))
        if not torch.isfinite(loss):
            raise SystemExit(f"loss is {loss.item()} at step {step}; lower --lr")
        progress = max(step / args.steps, (time.time() - started) / args.time_budget)
        for g in opt.param_groups:
            g["lr"] = lr_at(progress, args.lr, args.warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
        opt.step()
        if args.queue > 0:
            queue.append((emb.detach(), cls_ids))
            while sum(len(q[0]) for q in queue) > args.queue and len(queue) > 1:
                queue.pop(0)
        step += 1
        texts += len(idx)
        tokens += int(mask.sum())
        if amp:
            torch.cuda.synchronize()
        train_seconds += time.time() - t0
        if step % args.log_every == 0 or step == args.steps:
            left = (args.steps - step) * train_seconds / step
            print(
                f"step {step}/{args.steps} loss {loss.item():.4f} "
                + " ".join(f"{k}={v.item():.3f}" for k, v in levels.items())
                + f" | {texts / train_seconds:.0f} texts/s, {tokens / train_seconds:.0f} tokens/s, "
                f"epoch {texts / len(train_idx):.2f}, ETA {left:.0f} s",
                flush=True,
            )
        if step % args.val_every == 0 and step < args.steps:
            check(step)
    check(step)
    save(stop)
    print(f"best step {best['step']} score {best['score']:.2f}; wrote {args.out} in {time.time() - started:.0f} s", flush=True)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "loss-parity":
        sys.exit(loss_parity(sys.argv[2]))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--payload", default=os.path.dirname(os.path.abspath(__file__)))
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--time-budget", type=float, default=480, help="seconds; stops cleanly and writes the best checkpoint")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--per-model", type=int, default=8)
    p.add_argument("--matched-humans", type=float, default=0.0, help="share of each batch's human texts drawn from its machine texts' groups or domains (hard negatives)")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--warmup", type=float, default=0.06)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--temperature", type=float, default=0.07)
    p.add_argument("--a", type=float, default=1.0)
    p.add_argument("--b", type=float, default=1.0)
    p.add_argument("--c", type=float, default=1.0)
    p.add_argument("--d", type=float, default=1.0)
    p.add_argument("--queue", type=int, default=1024)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--holdout-family", default="google")
    p.add_argument("--holdout-domain", default=None, help="domains held out, humans and machines alike, comma-separated (default: yelp, where the data has it); '' for none")
    p.add_argument("--holdout-refs", type=int, default=32)
    p.add_argument("--val-queries", type=int, default=1000)
    p.add_argument("--val-refs", type=int, default=6000)
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--cpu", action="store_true")
    train(p.parse_args())


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What a run on a GPU box takes along, and how to keep it under the limit.

The device machine receives a copy of the working tree: every tracked file,
every untracked file git does not ignore, and the ignored paths the run
carries (the packed `gpu-payload/`), 64 MiB in all. The shipped weights and
reference embeddings alone are more than that, and the GPU box reads none of
them (the payload is self-contained), so they stay behind for the run:

    scripts/gpu_travel.py size  [--carry gpu-payload]   what would travel
    scripts/gpu_travel.py light [--carry gpu-payload]   set the large tracked
                                                        files aside, then size
    scripts/gpu_travel.py restore                       bring them back

`light` takes the tracked files of at least --min-kib (1024) out of the index
and the working tree, and records them in .git/detective-travel-light; it
refuses if any of them has changes not committed, since HEAD is where
`restore` brings them back from. `restore` is idempotent, and
`scripts/gpu_unpack.py` calls it, so the tree is whole again before the
trained model is exported. Between the two, do not commit.
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LIMIT_MIB = 64


def git(root, *args, check=True):
    out = subprocess.run(["git", "-C", root, *args], capture_output=True, check=False)
    if check and out.returncode != 0:
        sys.exit(f"git {' '.join(args)}: {out.stderr.decode().strip()}")
    return out


def record_path(root):
    git_dir = git(root, "rev-parse", "--absolute-git-dir").stdout.decode().strip()
    return os.path.join(git_dir, "detective-travel-light")


def travelling(root, carry):
    """(path, bytes) of every file the device tool would copy."""
    listed = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").stdout
    files = {}
    for rel in filter(None, listed.decode().split("\0")):
        full = os.path.join(root, rel)
        if os.path.isfile(full):
            files[rel] = os.path.getsize(full)
    for c in carry:
        full = os.path.join(root, c)
        if os.path.isfile(full):
            files[c] = os.path.getsize(full)
        for d, _, names in os.walk(full):
            for n in names:
                p = os.path.join(d, n)
                files[os.path.relpath(p, root)] = os.path.getsize(p)
    return files


def report(root, carry, limit_mib):
    files = travelling(root, carry)
    total = sum(files.values()) / (1 << 20)
    print(f"{len(files)} files, {total:.1f} MiB travel (limit {limit_mib} MiB); the largest:")
    for rel, size in sorted(files.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  {size / (1 << 20):7.1f} MiB  {rel}")
    if total > limit_mib:
        sys.exit(f"{total:.1f} MiB is over the {limit_mib} MiB the device machine accepts: run `light` first")


def light(root, min_kib):
    tracked = git(root, "ls-files", "-z").stdout.decode().split("\0")
    large = [
        rel
        for rel in filter(None, tracked)
        if os.path.isfile(os.path.join(root, rel)) and os.path.getsize(os.path.join(root, rel)) >= min_kib * 1024
    ]
    if not large:
        print("no tracked file to set aside")
        return
    changed = git(root, "status", "--porcelain", "-z", "--", *large).stdout
    if changed:
        names = [e[3:] for e in changed.decode().split("\0") if e]
        sys.exit(f"not set aside: {', '.join(names)} changed since HEAD; commit or restore them first")
    with open(record_path(root), "a", encoding="utf-8") as f:
        f.writelines(rel + "\n" for rel in large)
    git(root, "rm", "-q", "--cached", "--", *large)
    for rel in large:
        os.remove(os.path.join(root, rel))
    print(f"set aside {len(large)} tracked files (back with `scripts/gpu_travel.py restore`):")
    for rel in large:
        print(f"  {rel}")


def restore(root):
    path = record_path(root)
    if not os.path.exists(path):
        print("nothing set aside")
        return
    with open(path, encoding="utf-8") as f:
        aside = sorted({line.strip() for line in f if line.strip()})
    git(root, "reset", "-q", "HEAD", "--", *aside)
    git(root, "checkout", "HEAD", "--", *aside)
    os.remove(path)
    print(f"restored {len(aside)} files from HEAD")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["size", "light", "restore"])
    p.add_argument("--carry", action="append", default=[], help="an ignored path the run carries (repeatable)")
    p.add_argument("--min-kib", type=int, default=1024, help="light: set aside tracked files at least this large")
    p.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    p.add_argument("--root", default=os.path.dirname(HERE), help="the checkout (default: this script's)")
    args = p.parse_args()
    root = os.path.abspath(args.root)
    if args.action == "restore":
        restore(root)
        return
    if args.action == "light":
        light(root, args.min_kib)
    report(root, args.carry, args.limit_mib)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Builds a set of human-written texts in languages and a domain the default
references do not cover, to measure how often the detector accuses people it
cannot judge:

    scripts/foreign_human_set.py --out .cache/foreign/humans.jsonl [--per-language 150]

The texts are paragraphs of Debian's manual pages: the English originals of
`manpages` (a domain, technical reference prose, that the references lack)
and the translations of `manpages-de`, `-es`, `-fr`, `-id`, `-pl`, `-ru`,
`-zh` (written by volunteer translators; GPL and other free licences;
fetched with `apt-get download`, nothing is installed; at most 400 pages
of a package, drawn in the order of their names' SHA-256), rendered with
groff and kept when 200-2,000 characters long and mostly letters. The translators' credit and licence paragraphs, which
repeat on every page, are dropped as duplicates, and so are paragraphs a
translation left in English (15% or more of their words are common
English function words; for Chinese, under 30% Han characters). Each record is
`{"text", "label": "human", "lang", "domain": "manpage", "source": PACKAGE,
"page"}`, so `detective eval` breaks the figures down by package (language);
the paragraphs of a language are drawn in the order of their SHA-256, at
most two per page, so the set is the same on every machine with the same
package versions. Then:

    detective eval --db DB --test .cache/foreign/humans.jsonl --markdown docs/eval/foreign.md

HumanRec there is 1 minus the false-positive rate; abstentions count as not
machine.
"""
import argparse
import collections
import glob
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

PACKAGES = {
    "manpages": "en",
    "manpages-de": "de",
    "manpages-es": "es",
    "manpages-fr": "fr",
    "manpages-id": "id",
    "manpages-pl": "pl",
    "manpages-ru": "ru",
    "manpages-zh": "zh",
}
# English pages of the same domain, on other pages than `manpages`: human
# references of the domain, for measuring what posting them buys
# (`--packages manpages-dev`).
EXTRA = {"manpages-dev": "en"}


def render(page):
    """A manual page as plain UTF-8 text, lines unwrapped, no hyphenation."""
    with gzip.open(page, "rb") as f:
        src = f.read()
    pre = subprocess.run(["preconv", "-e", "utf-8"], input=src, capture_output=True)
    out = subprocess.run(
        ["groff", "-man", "-Tutf8", "-P-cbou", "-rLL=100000n", "-rHY=0"],
        input=pre.stdout,
        capture_output=True,
    )
    return out.stdout.decode("utf-8", "replace")


def paragraphs(text):
    block = []
    for line in text.splitlines() + [""]:
        if line.strip() and not line[0].isspace():
            line = ""  # a section heading or the page's header and footer
        if line.strip():
            block.append(line.strip())
            continue
        if block:
            yield re.sub(r"\s+", " ", " ".join(block)).strip()
            block = []


# The commonest English function words: a translated page keeps some
# paragraphs untranslated, and those are English text, not the page's
# language.
ENGLISH = set(
    "the of and to a in is that it for on as with be by this are or from at an "
    "which not if can when will its all has have but".split()
)


def english_share(p):
    words = re.findall(r"[a-z]+", p.lower())
    return sum(w in ENGLISH for w in words) / max(1, len(words))


def usable(p, lang):
    if not 200 <= len(p) <= 2000:
        return False
    letters = sum(c.isalpha() for c in p)
    if letters < 0.6 * len(p) or "http" in p or "@" in p:
        return False
    if lang == "en":
        return True
    if lang == "zh" and sum("\u4e00" <= c <= "\u9fff" for c in p) < 0.3 * letters:
        return False
    return english_share(p) < 0.15


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-language", type=int, default=150)
    ap.add_argument("--max-pages", type=int, default=400, help="pages rendered per package")
    ap.add_argument(
        "--pages-from",
        type=int,
        default=0,
        help="skip this many pages of each package first (a second, disjoint set: --pages-from 400)",
    )
    ap.add_argument("--packages", default=",".join(PACKAGES), help="comma-separated subset of " + ",".join(PACKAGES))
    ap.add_argument("--debs", default=".cache/foreign/debs", help="where the packages are downloaded (kept)")
    args = ap.parse_args()
    os.makedirs(args.debs, exist_ok=True)
    packages = {p: {**PACKAGES, **EXTRA}[p] for p in args.packages.split(",")}
    missing = [p for p in packages if not glob.glob(os.path.join(args.debs, f"{p}_*.deb"))]
    if missing:
        subprocess.run(["apt-get", "download", *missing], cwd=args.debs, check=True)
    by_lang = collections.defaultdict(list)
    seen = collections.Counter()
    with tempfile.TemporaryDirectory() as root:
        for pkg, lang in packages.items():
            deb = sorted(glob.glob(os.path.join(args.debs, f"{pkg}_*.deb")))[-1]
            subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
            pages = glob.glob(os.path.join(root, "usr/share/man/*/man*/*.gz")) + glob.glob(
                os.path.join(root, "usr/share/man/man*/*.gz")
            )
            # At most MAX_PAGES pages, drawn in the order of their names' SHA-256.
            pages = sorted(pages, key=lambda p: hashlib.sha256(os.path.relpath(p, root).encode()).hexdigest())
            pages = pages[args.pages_from : args.pages_from + args.max_pages]
            for i, page in enumerate(pages):
                name = os.path.relpath(page, root)
                for p in paragraphs(render(page)):
                    seen[p] += 1
                    if usable(p, lang):
                        by_lang[lang].append((hashlib.sha256(p.encode()).hexdigest(), p, name))
                print(f"\r{pkg}: {i + 1}/{len(pages)} pages", end="", file=sys.stderr)
            print(file=sys.stderr)
            subprocess.run(["rm", "-rf", os.path.join(root, "usr")], check=True)
    pkg = {lang: name for name, lang in packages.items()}
    total = 0
    with open(args.out, "w", encoding="utf-8") as out:
        for lang in sorted(by_lang):
            per_page = collections.Counter()
            kept = 0
            for _, p, page in sorted(by_lang[lang]):
                if seen[p] > 1 or per_page[page] >= 2 or kept >= args.per_language:
                    continue
                per_page[page] += 1
                kept += 1
                rec = {"text": p, "label": "human", "lang": lang, "domain": "manpage", "source": pkg[lang], "page": page}
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            total += kept
            print(f"{lang}: {kept} paragraphs", file=sys.stderr)
    print(f"{args.out}: {total} human texts", file=sys.stderr)


if __name__ == "__main__":
    main()

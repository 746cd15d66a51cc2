#!/usr/bin/env bash
# The generalization benchmark for one configuration: in distribution
# (test.jsonl), out of distribution (ood_test.jsonl), with the OOD reference
# split added (TFIA), and leave-one-family-out with and without 100 added
# references. Reports go to docs/eval/NAME-{test,ood,tfia,lofo}.{json,md};
# scripts/eval_table.py turns them into the README table.
#
#   scripts/eval_views.sh NAME DB [detective eval flags: --model, --max-length, --windows, --lexical-dim, --alpha, --classifier-weight]
#   scripts/eval_views.sh NAME REFS.jsonl[,MORE.jsonl] [flags]
#
# ROWS="test lofo" runs only those rows (default: test ood tfia lofo humans).
# `humans` scores human texts the references do not cover (other languages,
# and English of another domain: scripts/foreign_human_set.py, built into
# .cache/foreign/humans.jsonl on first use, or HUMANS=FILE); its
# false-positive rates are `scripts/eval_table.py --humans NAME`.
#
# DB is a SQLite store seeded on first use with the shipped default
# references in the configuration's neural space; a .jsonl argument instead
# uses those labelled files as the references (for example the whole
# training corpus). k, the thresholds and the
# novelty threshold are calibrated on validation splits of the references,
# never on a scored file.
set -euo pipefail
name=$1 db=$2
shift 2
corpus=${CORPUS:-../shared/corpus}
bin=${DETECTIVE:-target/release/detective}
out=docs/eval
mkdir -p "$out"
rows=" ${ROWS:-test ood tfia lofo humans} "
humans=${HUMANS:-.cache/foreign/humans.jsonl}
run() {
  [[ $rows == *" $1 "* ]] || return 0
  echo "== $name: $1" >&2
  shift
  if [[ $db == *.jsonl ]]; then
    "$bin" eval --refs "$db" "$@"
  else
    "$bin" eval --db "$db" "$@"
  fi
}
run test "$@" --test "$corpus/test.jsonl" \
  --json "$out/$name-test.json" --markdown "$out/$name-test.md" >/dev/null
run ood "$@" --test "$corpus/ood_test.jsonl" \
  --json "$out/$name-ood.json" --markdown "$out/$name-ood.md" >/dev/null
run tfia "$@" --refs "$corpus/ood_refs.jsonl" --test "$corpus/ood_test.jsonl" \
  --json "$out/$name-tfia.json" --markdown "$out/$name-tfia.md" >/dev/null
run lofo "$@" --test "$corpus/test.jsonl" \
  --leave-family-out openai,meta-llama,anthropic,google,eleutherai \
  --adapt-from "$corpus/train.jsonl" --adapt-count 100 \
  --json "$out/$name-lofo.json" --markdown "$out/$name-lofo.md" >/dev/null
if [[ $rows == *" humans "* && ! -s $humans ]]; then
  python3 scripts/foreign_human_set.py --out "$humans"
fi
run humans "$@" --test "$humans" \
  --json "$out/$name-humans.json" --markdown "$out/$name-humans.md" >/dev/null

#!/usr/bin/env python3
"""Writes docker/grafana/dashboards/detective.json, the provisioned Grafana
dashboard. Each panel's queries use only metrics `detective serve` exports
(`src/metrics`); `tests/it/dashboard.rs` evaluates every query against a real
Prometheus scraping a real server.

  python3 docker/grafana/make_dashboard.py
"""
import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards" / "detective.json"
DS = {"type": "prometheus", "uid": "prometheus"}
W = "$__rate_interval"


def q(expr, legend):
    return {"expr": expr, "legendFormat": legend}


def rate(metric, by=None, sel=""):
    inner = f"rate({metric}{sel}[{W}])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def quantile(p, metric, by):
    return f"histogram_quantile({p}, sum by (le, {by}) (rate({metric}_bucket[{W}])))"


def share(num, den):
    # A counter series that has not been incremented yet does not exist; the
    # share is then 0, not "no data".
    return f"({num} or vector(0)) / {den}"


PANELS = [
    # (title, unit, kind, [queries], description)
    ("Requests per second by route", "reqps", "timeseries",
     [q(rate("detective_http_requests_total", "route"), "{{route}}")],
     "Traffic. A drop to zero with clients still running means they cannot reach the service."),
    ("Error share", "percentunit", "timeseries",
     [q(share(rate("detective_http_requests_total", sel='{status=~"5.."}'),
              rate("detective_http_requests_total")), "5xx"),
      q(share(rate("detective_http_requests_total", sel='{status=~"4.."}'),
              rate("detective_http_requests_total")), "4xx")],
     "5xx: read the service log for the request ids. 4xx: clients sending bad requests, or 429 when the queue is full."),
    ("Latency p50 / p95 / p99 by stage", "s", "timeseries",
     [q(quantile(p, "detective_stage_duration_seconds", "stage"), f"p{int(p * 100)} {{{{stage}}}}")
      for p in (0.5, 0.95, 0.99)],
     "Stages: tokenize, queue_wait, inference, search, vote, store, total. queue_wait rising: the encoder is saturated."),
    ("HTTP latency p95 by route", "s", "timeseries",
     [q(quantile(0.95, "detective_http_request_duration_seconds", "route"), "{{route}}")],
     "End-to-end time per route, as clients see it."),
    ("Machine-verdict share", "percentunit", "timeseries",
     [q(share(rate("detective_verdicts_total", sel='{label="machine"}'),
              rate("detective_verdicts_total")), "machine")],
     "Share of texts judged machine-written. A sudden shift without a change in traffic is drift: check novelty and attribution."),
    ("Novelty rate", "percentunit", "timeseries",
     [q(share(rate("detective_novel_verdicts_total"), rate("detective_verdicts_total")), "novel")],
     "Share of texts far from every reference. Rising: a new generator or domain; add references for it (POST /reference)."),
    ("Attributions by family", "ops", "timeseries",
     [q(rate("detective_attributions_total", "family"), "{{family}}")],
     "Machine verdicts per second by the family their neighbours name."),
    ("References by family", "short", "timeseries",
     [q("sum by (family) (detective_references)", "{{family}}")],
     "Active references. Grows as operators teach new models; a fall means deletions."),
    ("References added and deleted", "ops", "timeseries",
     [q(rate("detective_references_added_total", "family"), "added {{family}}"),
      q(rate("detective_references_deleted_total"), "deleted")],
     "Reference writes per second."),
    ("Queue depth", "short", "timeseries",
     [q("sum(detective_queue_depth)", "waiting jobs"),
      q(rate("detective_queue_rejected_total"), "rejected (429) per s"),
      q(rate("detective_jobs_cancelled_total"), "cancelled per s")],
     "Jobs waiting for the encoder. Sustained depth or any 429: add replicas or raise --queue-capacity."),
    ("Batch size", "short", "timeseries",
     [q(f"sum(rate(detective_batch_texts_sum[{W}])) / sum(rate(detective_batch_texts_count[{W}]))", "texts per batch"),
      q(f"sum(rate(detective_batch_tokens_sum[{W}])) / sum(rate(detective_batch_tokens_count[{W}]))", "tokens per batch")],
     "Mean texts and tokens per encoder pass after coalescing. Near 1 text under load: --coalesce-tokens is too small."),
    ("Index", "short", "stat",
     [q("sum(detective_index_vectors)", "vectors"),
      q("max(detective_index_build_duration_seconds)", "last build (s)")],
     "Vectors that vote, and how long the last index build took at start-up."),
    ("Store errors per second", "ops", "timeseries",
     [q(rate("detective_store_errors_total"), "errors")],
     "Any non-zero value: the database is failing; check its health and the service log."),
    ("Request body size p95", "bytes", "timeseries",
     [q(quantile(0.95, "detective_http_request_body_bytes", "route"), "{{route}}")],
     "Large bodies cost tokenization time; compare with --max-body-bytes."),
    ("Build", "short", "table",
     [q("max by (version, encoder, k) (detective_info)", "{{encoder}}")],
     "Version, encoder identity and k of each running instance."),
]


def panel(i, title, unit, kind, targets, desc):
    w, h = 12, 8
    p = {
        "id": i + 1,
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"x": (i % 2) * w, "y": (i // 2) * h, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [dict(t, refId=chr(65 + j), datasource=DS) for j, t in enumerate(targets)],
    }
    if kind == "table":
        p["targets"][0]["format"] = "table"
        p["targets"][0]["instant"] = True
    return p


def main():
    dash = {
        "uid": "detective",
        "title": "detective",
        "tags": ["detective"],
        "timezone": "",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": [panel(i, *p) for i, p in enumerate(PANELS)],
    }
    OUT.write_text(json.dumps(dash, indent=2) + "\n")
    print(f"wrote {OUT} ({len(PANELS)} panels)")


if __name__ == "__main__":
    main()

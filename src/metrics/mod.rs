//! The metrics catalogue: every metric the service exports, in one place,
//! with units in the names and buckets set here. Rendered in the Prometheus
//! text format at `GET /metrics`.
use std::sync::LazyLock;

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

/// Latency buckets (seconds): 0.5 ms to 30 s.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const TEXTS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
const BYTES: &[f64] = &[
    256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];
const TOKENS: &[f64] = &[
    64.0, 256.0, 1024.0, 4096.0, 8192.0, 16384.0, 32768.0, 65536.0,
];

fn register<T: prometheus::core::Collector + Clone + 'static>(m: T) -> T {
    REGISTRY
        .register(Box::new(m.clone()))
        .expect("metric names are unique");
    m
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    register(
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
            .expect("valid metric"),
    )
}

fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    register(
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
        .expect("valid metric"),
    )
}

fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help).expect("valid metric"))
}

fn gauge(name: &str, help: &str) -> IntGauge {
    register(IntGauge::new(name, help).expect("valid metric"))
}

pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "detective_http_requests_total",
        "HTTP requests by route, method and status code",
        &["route", "method", "status"],
    )
});
pub static HTTP_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "detective_http_request_duration_seconds",
        "HTTP request latency by route",
        &["route"],
        SECONDS,
    )
});
pub static HTTP_REQUEST_BYTES: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "detective_http_request_body_bytes",
        "Declared request body size (Content-Length) by route",
        &["route"],
        BYTES,
    )
});
/// Stages: tokenize, queue_wait, inference, search, vote, store, total.
pub static STAGE_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "detective_stage_duration_seconds",
        "Time spent per pipeline stage",
        &["stage"],
        SECONDS,
    )
});
pub static BATCH_TEXTS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "detective_batch_texts",
        "Texts per encoder batch (after coalescing requests)",
        TEXTS,
    )
});
pub static BATCH_TOKENS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "detective_batch_tokens",
        "Tokens per encoder batch (after coalescing requests)",
        TOKENS,
    )
});
pub static QUEUE_DEPTH: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "detective_queue_depth",
        "Encoding jobs waiting for the model",
    )
});
pub static QUEUE_REJECTED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "detective_queue_rejected_total",
        "Requests refused with 429 because the encoding queue was full",
    )
});
pub static JOBS_CANCELLED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "detective_jobs_cancelled_total",
        "Encoding jobs dropped because their client had gone",
    )
});
pub static HTTP_ABANDONED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "detective_http_abandoned_total",
        "Requests whose client went away before the answer was ready, by route",
        &["route"],
    )
});
pub static HTTP_SHED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "detective_http_shed_total",
        "Requests refused because --max-concurrent requests were already in progress",
    )
});
pub static VERDICTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "detective_verdicts_total",
        "Verdicts returned, by label",
        &["label"],
    )
});
pub static NOVEL: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "detective_novel_verdicts_total",
        "Texts judged novel (nearest reference below the novelty threshold for their length), with or without a verdict",
    )
});
pub static ATTRIBUTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "detective_attributions_total",
        "Machine verdicts by attributed family",
        &["family"],
    )
});
pub static REFERENCES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "detective_references",
                "Active references by label and family",
            ),
            &["label", "family"],
        )
        .expect("valid metric"),
    )
});
pub static REFERENCES_ADDED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "detective_references_added_total",
        "References added through the API, by label and family",
        &["label", "family"],
    )
});
pub static REFERENCES_DELETED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "detective_references_deleted_total",
        "References deleted through the API",
    )
});
pub static INDEX_VECTORS: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "detective_index_vectors",
        "Vectors that vote (indexed minus deleted)",
    )
});
pub static INDEX_TOMBSTONES: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "detective_index_tombstones",
        "Deleted references still holding an index slot (compacted in the background)",
    )
});
pub static FEED_APPLIED_SEQ: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "detective_feed_applied_seq",
        "Highest change-feed sequence number this process has applied",
    )
});
pub static FEED_SYNCED: LazyLock<Gauge> = LazyLock::new(|| {
    register(
        Gauge::new(
            "detective_feed_synced_timestamp_seconds",
            "Unix time of the last successful catch-up with the store's change feed \
             (time() minus this is the replication lag bound)",
        )
        .expect("valid metric"),
    )
});
pub static INDEX_BUILD_SECONDS: LazyLock<Gauge> = LazyLock::new(|| {
    register(
        Gauge::new(
            "detective_index_build_duration_seconds",
            "Duration of the last index build",
        )
        .expect("valid metric"),
    )
});
pub static SNAPSHOT_SEQ: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "detective_index_snapshot_seq",
        "Change-feed sequence number held by the newest index snapshot on disk",
    )
});
pub static SNAPSHOT_SECONDS: LazyLock<Gauge> = LazyLock::new(|| {
    register(
        Gauge::new(
            "detective_index_snapshot_duration_seconds",
            "Duration of the last index snapshot write",
        )
        .expect("valid metric"),
    )
});
pub static STORE_ERRORS: LazyLock<IntCounter> =
    LazyLock::new(|| counter("detective_store_errors_total", "Failed store operations"));
pub static INFO: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new("detective_info", "Build and configuration (value is 1)"),
            &["version", "encoder", "k"],
        )
        .expect("valid metric"),
    )
});

/// Records one pipeline stage: its histogram, and a debug event in the
/// current span (the request's, with its id) for per-request timings.
pub fn stage(name: &'static str, seconds: f64) {
    STAGE_SECONDS.with_label_values(&[name]).observe(seconds);
    tracing::debug!(stage = name, seconds, "stage done");
}

/// Most distinct `family` label values; later ones are reported as
/// `other`, so client-chosen family names cannot grow the series without
/// bound.
pub const MAX_FAMILIES: usize = 64;
/// Longest `family` label value, in characters.
pub const MAX_FAMILY_CHARS: usize = 48;

/// The `family` label value for a family name: cut to
/// [`MAX_FAMILY_CHARS`], and `other` once [`MAX_FAMILIES`] distinct values
/// are in use.
pub fn family_label(family: &str) -> String {
    static SEEN: LazyLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        LazyLock::new(Default::default);
    let cut: String = family.chars().take(MAX_FAMILY_CHARS).collect();
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen.contains(&cut) {
        return cut;
    }
    if seen.len() >= MAX_FAMILIES {
        return "other".into();
    }
    seen.insert(cut.clone());
    cut
}

/// Sets `detective_references` from the store's counts by family.
pub fn set_references(by_family: &std::collections::BTreeMap<String, i64>) {
    REFERENCES.reset();
    let mut values: std::collections::BTreeMap<(&str, String), i64> = Default::default();
    for (family, n) in by_family {
        let label = if family == "human" {
            "human"
        } else {
            "machine"
        };
        *values.entry((label, family_label(family))).or_default() += n;
    }
    for ((label, family), n) in values {
        REFERENCES.with_label_values(&[label, &family]).set(n);
    }
}

/// Everything in the registry, Prometheus text format.
pub fn render() -> String {
    TextEncoder::new()
        .encode_to_string(&REGISTRY.gather())
        .unwrap_or_default()
}

/// Forces registration so every metric appears in `/metrics` from the start.
pub fn init() {
    LazyLock::force(&HTTP_REQUESTS);
    LazyLock::force(&HTTP_SECONDS);
    LazyLock::force(&HTTP_REQUEST_BYTES);
    LazyLock::force(&STAGE_SECONDS);
    LazyLock::force(&BATCH_TEXTS);
    LazyLock::force(&BATCH_TOKENS);
    LazyLock::force(&QUEUE_DEPTH);
    LazyLock::force(&QUEUE_REJECTED);
    LazyLock::force(&JOBS_CANCELLED);
    LazyLock::force(&HTTP_ABANDONED);
    LazyLock::force(&HTTP_SHED);
    LazyLock::force(&INDEX_TOMBSTONES);
    LazyLock::force(&FEED_APPLIED_SEQ);
    LazyLock::force(&FEED_SYNCED);
    LazyLock::force(&VERDICTS);
    LazyLock::force(&NOVEL);
    LazyLock::force(&ATTRIBUTIONS);
    LazyLock::force(&REFERENCES);
    LazyLock::force(&REFERENCES_ADDED);
    LazyLock::force(&REFERENCES_DELETED);
    LazyLock::force(&INDEX_VECTORS);
    LazyLock::force(&INDEX_BUILD_SECONDS);
    LazyLock::force(&SNAPSHOT_SEQ);
    LazyLock::force(&SNAPSHOT_SECONDS);
    LazyLock::force(&STORE_ERRORS);
    LazyLock::force(&INFO);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_labels_are_bounded_in_length_and_number() {
        let long = "x".repeat(500);
        assert_eq!(family_label(&long).chars().count(), MAX_FAMILY_CHARS);
        assert_eq!(family_label("openai"), "openai");
        let distinct: std::collections::HashSet<String> = (0..10 * MAX_FAMILIES)
            .map(|i| family_label(&format!("family-{i}")))
            .collect();
        assert!(distinct.len() <= MAX_FAMILIES + 1, "{}", distinct.len());
        assert!(distinct.contains("other"));
        // Values admitted before the cap keep their own series.
        assert_eq!(family_label("openai"), "openai");
    }
}

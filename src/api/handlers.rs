//! Route handlers: authorise, parse, validate, then call the detector.
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::auth::{require, require_detect};
use super::error::ApiError;
use super::extract::{body, parse};
use super::validate::{check_count, check_metadata, check_texts};
use super::wire::{
    Called, Deleted, DetectBatch, DetectRequest, DetectResult, ReferenceBatchCreated,
    ReferenceBody, ReferenceCreated, ReferenceItem,
};
use super::{AppState, Overlength};
use crate::detect::keys::Scope;
use crate::detect::segments::{self, Plan};
use crate::detect::{Decision, Detector, Prepped};
use crate::store::{Label, NewReference};

type Shared = State<Arc<AppState>>;

fn detector(state: &AppState) -> Result<&Arc<Detector>, ApiError> {
    state.detector.get().ok_or(ApiError::NotReady)
}

pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub async fn ready(State(state): Shared) -> Result<Json<serde_json::Value>, ApiError> {
    let d = detector(&state)?;
    if crate::encoder::worker::is_dead() {
        return Err(ApiError::Unavailable);
    }
    let refs = d.live().snapshot();
    Ok(Json(json!({
        "status": "ready",
        "references": refs.len(),
        "applied_seq": refs.applied(),
    })))
}

pub async fn info(State(state): Shared) -> Result<Json<serde_json::Value>, ApiError> {
    let d = detector(&state)?;
    let tallied = d.counts().await?;
    let (counts, store_seq) = (tallied.counts, tallied.store_seq);
    let refs = d.live().snapshot();
    let enc = d.encoder().id();
    let cfg = d.vote_config();
    let c = &state.config;
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "encoder": {
            "id": enc.to_string(),
            "name": enc.name,
            "checksum": enc.checksum,
            "max_length": enc.max_length,
            "windows": d.encoder().tokenizer().windows(),
            "read_length": d.encoder().tokenizer().read_length(),
            "dimensions": d.encoder().dim(),
            "view": d.encoder().view(),
        },
        // What this process votes with, beside what the store holds: a
        // replica behind the store shows applied_seq < store_seq.
        "index": {
            "kind": c.index_kind,
            "voting": refs.len(),
            "tombstones": refs.tombstones(),
            "applied_seq": refs.applied(),
            "snapshot_seq": d.live().snapshot_seq(),
        },
        "k": cfg.k,
        // The calibrated decision: the group vote's m (null: the majority
        // of the k nearest) and the rule weighing its margin against the
        // classifier (null: the group vote alone).
        "group_vote": cfg.groups,
        "blend_rule": cfg.blend_rule,
        "decision": match d.decision() {
            Decision::Majority => "majority",
            Decision::OperatingPoint => "operating-point",
        },
        "languages": d.languages().describe(),
        "operating_point": cfg.operating_point,
        "classifier": d.supervised().map(|s| s.status()),
        // Texts whose nearest reference is less similar than these (by
        // length) are novel; `policy` says whether they get a verdict.
        "novelty": {
            "policy": cfg.novelty_policy.as_str(),
            "quantile": cfg.novelty.as_ref().map(|n| n.quantile),
            "by_length": cfg.novelty.as_ref().map(|n| &n.bins),
        },
        "references": {
            "store_seq": store_seq,
            "total": counts.total,
            "deleted": counts.deleted,
            "by_label": counts.by_label,
            "by_family": counts.by_family,
        },
        "limits": {
            "max_items": c.max_items,
            "max_text_chars": c.max_text_chars,
            "max_body_bytes": c.max_body_bytes,
            "max_k": c.max_k,
            "overlength": match c.overlength {
                Overlength::Truncate => "truncate",
                Overlength::Reject => "reject",
            },
        },
        "open_detect": c.open_detect,
    })))
}

pub async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI)
}

/// Tokenizes, rejecting over-long texts when so configured.
async fn tokenize(
    state: &AppState,
    d: &Detector,
    fields: Vec<String>,
    texts: Vec<String>,
    verdicts: usize,
) -> Result<Prepped, ApiError> {
    let tokens = d.tokenize(texts, verdicts).await?;
    if state.config.overlength == Overlength::Reject {
        if let Some(i) = tokens.texts.iter().position(|p| p.truncated) {
            return Err(ApiError::TooManyTokens(format!(
                "{} is longer than the {} tokens the model reads; send a shorter text \
                 (the service runs with --overlength reject)",
                fields[i],
                d.encoder().tokenizer().read_length()
            )));
        }
    }
    Ok(tokens)
}

pub async fn detect(
    State(state): Shared,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_detect(&state, &headers).await?;
    let c = &state.config;
    let req: DetectRequest = parse(&body(raw, c.max_body_bytes)?, c.max_items)?;
    let (texts, batch) = match (req.text, req.texts) {
        (Some(t), None) => (vec![t], false),
        (None, Some(ts)) => (ts, true),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("send either `text` or `texts`, not both"))
        }
        (None, None) => return Err(ApiError::invalid("missing field `text` (or `texts`)")),
    };
    if batch {
        check_count(&state, "texts", texts.len())?;
    }
    let fields: Vec<String> = if batch {
        (0..texts.len()).map(|i| format!("texts[{i}]")).collect()
    } else {
        vec!["text".into()]
    };
    check_texts(&state, &fields, texts.iter().map(String::as_str))?;
    if let Some(k) = req.k {
        let max = state.config.max_k;
        if k == 0 || k > max {
            return Err(ApiError::invalid(format!("k must be between 1 and {max}")));
        }
    }
    let d = detector(&state)?;
    let n = texts.len();
    let plans = match req.segments {
        true => Some(plan_segments(&state, d, &texts).await?),
        false => None,
    };
    // The windows of every text go to the encoder with the texts: one call.
    let (mut fields, mut all) = (fields, texts.clone());
    for (i, (plan, text)) in plans.iter().flatten().zip(&texts).enumerate() {
        for (j, w) in plan.window_texts(text).into_iter().enumerate() {
            fields.push(format!("{} (segment window {j})", fields[i]));
            all.push(w);
        }
    }
    let tokens = tokenize(&state, d, fields, all, n).await?;
    let truncated: Vec<bool> = tokens.texts.iter().map(|p| p.truncated).collect();
    let mut detections = d.detect(tokens, req.k).await?;
    let windows = detections.split_off(n);
    let mut segmented = Vec::new();
    if let Some(plans) = &plans {
        let mut at = 0;
        for ((plan, text), det) in plans.iter().zip(&texts).zip(&detections) {
            let verdicts: Vec<_> = windows[at..at + plan.windows.len()]
                .iter()
                .map(|w| &w.verdict)
                .collect();
            at += plan.windows.len();
            let threshold = d.decision().threshold(&det.verdict);
            let segments = plan.segments(text, &verdicts, threshold);
            segmented.push((segments::mixed(&segments), segments));
        }
    }
    let mut segmented = segmented.into_iter();
    let encoder = d.encoder().id().to_string();
    let mut results: Vec<DetectResult> = detections
        .into_iter()
        .zip(truncated)
        .map(|(det, truncated)| {
            let (mixed, segments) = segmented.next().unzip();
            let v = det.verdict;
            DetectResult {
                label: match det.abstained {
                    Some(_) => Called::Unknown,
                    None => det.label.into(),
                },
                abstained: det.abstained,
                score: v.score,
                classifier: v.classifier,
                majority: v.label,
                operating_point: v.operating_point,
                k: v.k,
                machine_votes: v.machine_votes,
                human_votes: v.human_votes,
                nearest_similarity: v.nearest_similarity,
                novel: v.novel,
                note: v.note,
                attribution: v.attribution,
                truncated,
                encoder: encoder.clone(),
                neighbours: req.explain.then_some(v.neighbours),
                mixed,
                segments,
            }
        })
        .collect();
    Ok(if batch {
        Json(DetectBatch { results }).into_response()
    } else {
        Json(results.remove(0)).into_response()
    })
}

/// Sentences and windows of each text, with the limit on windows checked.
async fn plan_segments(
    state: &AppState,
    d: &Detector,
    texts: &[String],
) -> Result<Vec<Plan>, ApiError> {
    let tokenizer = d.encoder().tokenizer().clone();
    let owned = texts.to_vec();
    let plans = tokio::task::spawn_blocking(move || {
        owned
            .iter()
            .map(|t| Plan::new(t, &tokenizer))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|_| ApiError::Internal)?
    .map_err(crate::detect::DetectError::Tokenize)?;
    let windows: usize = plans.iter().map(|p| p.windows.len()).sum();
    let max = state.config.max_segment_windows;
    if windows > max {
        return Err(ApiError::invalid(format!(
            "segments: the texts need {windows} windows of sentences; at most {max} per request \
             (--max-segment-windows); send shorter or fewer texts"
        )));
    }
    Ok(plans)
}

pub async fn add_reference(
    State(state): Shared,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let who = require(&state, &headers, Scope::ReferenceWrite).await?;
    let c = &state.config;
    let req: ReferenceBody = parse(&body(raw, c.max_body_bytes)?, c.max_items)?;
    let (items, batch) = req.into_items().map_err(ApiError::Invalid)?;
    if batch {
        check_count(&state, "items", items.len())?;
    }
    let fields: Vec<String> = if batch {
        (0..items.len())
            .map(|i| format!("items[{i}].text"))
            .collect()
    } else {
        vec!["text".into()]
    };
    check_texts(&state, &fields, items.iter().map(|i| i.text.as_str()))?;
    for (i, item) in items.iter().enumerate() {
        let at = if batch {
            format!("items[{i}].")
        } else {
            String::new()
        };
        check_metadata(&at, item)?;
        if item.label == Label::Human && item.model.as_deref().is_some_and(|m| m != "human") {
            return Err(ApiError::invalid(format!(
                "{at}model: a human reference cannot name a generator model"
            )));
        }
    }
    let d = detector(&state)?;
    let texts = items.iter().map(|i| i.text.clone()).collect();
    let tokens = tokenize(&state, d, fields, texts, 0).await?;

    let new: Vec<NewReference> = items.into_iter().map(|i| to_new(i, &who.name)).collect();
    let inserted = d.add(new, tokens).await?;
    let any_created = inserted.iter().any(|i| i.created);
    let status = if any_created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let out: Vec<ReferenceCreated> = inserted
        .iter()
        .map(|i| ReferenceCreated {
            id: i.id,
            created: i.created,
        })
        .collect();
    Ok(if batch {
        let ids = out.iter().map(|c| c.id).collect();
        (status, Json(ReferenceBatchCreated { ids, items: out })).into_response()
    } else {
        let one = out.into_iter().next().ok_or(ApiError::Internal)?;
        (status, Json(one)).into_response()
    })
}

fn to_new(i: ReferenceItem, added_by: &str) -> NewReference {
    let human = i.label == Label::Human;
    let or_human = |v: Option<String>| if human { Some("human".into()) } else { v };
    NewReference {
        label: i.label,
        model: or_human(i.model),
        family: or_human(i.family),
        source: i.source,
        domain: i.domain,
        attack: i.attack,
        lang: i.lang,
        group: None,
        added_by: added_by.to_owned(),
        text: i.text,
    }
}

/// The id of `/reference/{id}`; a segment that is not UTF-8 (`%FF`) gets
/// the same JSON error as one that is not a number.
fn parse_id(raw: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    let Path(raw) = raw.map_err(|_| ApiError::invalid("id must be a positive integer"))?;
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::invalid(format!("id must be a positive integer, not {raw:?}")))
}

pub async fn get_reference(
    State(state): Shared,
    headers: HeaderMap,
    raw: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    require(&state, &headers, Scope::ReferenceWrite).await?;
    let id = parse_id(raw)?;
    let d = detector(&state)?;
    match d.get(id).await? {
        Some(r) => Ok(Json(r).into_response()),
        None => Err(ApiError::NotFound(format!("no reference with id {id}"))),
    }
}

pub async fn delete_reference(
    State(state): Shared,
    headers: HeaderMap,
    raw: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    require(&state, &headers, Scope::Admin).await?;
    let id = parse_id(raw)?;
    let d = detector(&state)?;
    if d.delete(id).await? {
        Ok(Json(Deleted { id, deleted: true }).into_response())
    } else {
        Err(ApiError::NotFound(format!(
            "no active reference with id {id}"
        )))
    }
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; see GET /openapi.json".into())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

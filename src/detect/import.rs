//! Bulk import of labelled references from JSONL (the corpus record format).
//!
//! Records are read in batches. Each batch is validated as a whole, texts
//! already stored (or repeated within the batch) are skipped before any
//! embedding work, the rest are embedded and written in one transaction. A
//! killed import therefore leaves only whole batches behind, and a rerun
//! skips what is stored and continues: no duplicates, no loss. A malformed
//! line stops the import before anything of its batch is written, unless
//! invalid lines are to be skipped (and counted).
use std::collections::HashSet;
use std::io::BufRead;

use serde_json::{Map, Value};

use crate::encoder::{Embed, EncoderError};
use crate::store::{text_sha256, Label, NewReference, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {reason}")]
    Invalid { line: usize, reason: String },
    #[error("cannot read input at line {line}")]
    Read {
        line: usize,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub batch: usize,
    pub skip_invalid: bool,
    pub added_by: String,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            batch: 256,
            skip_invalid: false,
            added_by: "import".into(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub records: usize,
    pub inserted: usize,
    pub already_stored: usize,
    pub invalid: usize,
}

/// Parses one JSONL record; the error says which field is wrong.
pub fn parse_record(line: &str, added_by: &str) -> Result<NewReference, String> {
    let obj: Map<String, Value> = match serde_json::from_str(line) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return Err("expected a JSON object".into()),
        Err(e) => return Err(format!("invalid JSON: {e}")),
    };
    let text = match obj.get("text") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => return Err("field \"text\" is empty".into()),
        Some(_) => return Err("field \"text\" must be a string".into()),
        None => return Err("missing field \"text\"".into()),
    };
    let label: Label = match obj.get("label") {
        Some(Value::String(s)) => s.parse().map_err(|e| format!("field \"label\": {e}"))?,
        Some(_) => return Err("field \"label\" must be a string".into()),
        None => return Err("missing field \"label\"".into()),
    };
    let field = |name: &str| -> Result<Option<String>, String> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("field \"{name}\" must be a string or null")),
        }
    };
    let mut model = field("model")?;
    let mut family = field("family")?;
    if label == Label::Human {
        model.get_or_insert_with(|| "human".into());
        family.get_or_insert_with(|| "human".into());
    }
    Ok(NewReference {
        text,
        label,
        model,
        family,
        source: field("source")?,
        domain: field("domain")?,
        attack: field("attack")?,
        lang: field("lang")?,
        group: field("group")?,
        added_by: added_by.to_owned(),
    })
}

/// Imports every record of `input`; `progress(records_done)` after each batch.
pub async fn import(
    input: impl BufRead,
    store: &dyn Store,
    encoder: &dyn Embed,
    opts: &ImportOptions,
    mut progress: impl FnMut(&ImportReport),
) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport::default();
    let mut batch: Vec<(usize, String)> = Vec::with_capacity(opts.batch);
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|source| ImportError::Read {
            line: i + 1,
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        batch.push((i + 1, line));
        if batch.len() >= opts.batch.max(1) {
            write_batch(&batch, store, encoder, opts, &mut report).await?;
            batch.clear();
            progress(&report);
            crate::hold::wait("import");
        }
    }
    write_batch(&batch, store, encoder, opts, &mut report).await?;
    progress(&report);
    Ok(report)
}

async fn write_batch(
    lines: &[(usize, String)],
    store: &dyn Store,
    encoder: &dyn Embed,
    opts: &ImportOptions,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let mut parsed = Vec::with_capacity(lines.len());
    for (line, text) in lines {
        match parse_record(text, &opts.added_by) {
            Ok(r) => parsed.push(r),
            Err(reason) if !opts.skip_invalid => {
                return Err(ImportError::Invalid {
                    line: *line,
                    reason,
                });
            }
            Err(reason) => {
                tracing::warn!(line, %reason, "skipping invalid record");
                report.invalid += 1;
            }
        }
    }
    report.records += lines.len();
    let hashes: Vec<String> = parsed.iter().map(|r| text_sha256(&r.text)).collect();
    let stored = store.existing(&hashes).await?;
    let mut seen = HashSet::new();
    let fresh: Vec<NewReference> = parsed
        .into_iter()
        .zip(&hashes)
        .filter(|(_, h)| !stored.contains(*h) && seen.insert(h.as_str()))
        .map(|(r, _)| r)
        .collect();
    report.already_stored += hashes.len() - fresh.len();
    if fresh.is_empty() {
        return Ok(());
    }
    let texts: Vec<&str> = fresh.iter().map(|r| r.text.as_str()).collect();
    let vectors = encoder.embed(&texts)?;
    let inserted = store.insert(&fresh, &vectors, encoder.id()).await?;
    report.inserted += inserted.iter().filter(|r| r.created).count();
    report.already_stored += inserted.iter().filter(|r| !r.created).count();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_corpus_records_and_names_bad_fields() {
        let ok = r#"{"id":"x","text":"Some text.","label":"machine","model":"gpt-4","family":"openai","source":"s","domain":null,"attack":null,"lang":"en","group":"g"}"#;
        let r = parse_record(ok, "me").unwrap();
        assert_eq!(r.label, Label::Machine);
        assert_eq!(r.family.as_deref(), Some("openai"));
        assert_eq!(r.domain, None);
        assert_eq!(r.group.as_deref(), Some("g"));
        let human = parse_record(r#"{"text":"t","label":"human"}"#, "me").unwrap();
        assert_eq!(human.family.as_deref(), Some("human"));
        let err = |l: &str| parse_record(l, "me").unwrap_err();
        assert!(err(r#"{"text":"t","label":"robot"}"#).contains("unknown label"));
        assert!(err(r#"{"text":"  ","label":"human"}"#).contains("empty"));
        assert!(err(r#"{"label":"human"}"#).contains("missing field \"text\""));
        assert!(err(r#"{"text":"t"}"#).contains("missing field \"label\""));
        assert!(err(r#"{"text":"t","label":"human","model":3}"#).contains("\"model\""));
        assert!(err("[1]").contains("JSON object"));
        assert!(err("{").contains("invalid JSON"));
    }
}

//! `detective embed`: texts in, one JSON object per text out, in input order.
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::{Map, Value};

use super::input::{count_records, progress, Reader};
use super::EncoderArgs;
use crate::encoder::Embed;

#[derive(Debug, Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Input file (JSONL with a `text` field, or plain lines); stdin if absent or `-`.
    pub file: Option<PathBuf>,
    /// Texts read and embedded per step (bounds memory).
    #[arg(long, default_value_t = 1024)]
    pub chunk: usize,
}

pub fn run(args: &EmbedArgs) -> anyhow::Result<()> {
    let mut reader = Reader::open(args.file.as_deref())?;
    let encoder = args.encoder.load()?;
    let bar = progress(count_records(args.file.as_deref()), "texts");
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    loop {
        let chunk = reader.next_chunk(args.chunk.max(1))?;
        if chunk.is_empty() {
            break;
        }
        let texts: Vec<&str> = chunk.iter().map(|r| r.text.as_str()).collect();
        let vectors = encoder.embed(&texts)?;
        let n = texts.len() as u64;
        for (record, vector) in chunk.into_iter().zip(vectors) {
            let mut obj = record.object.unwrap_or_else(Map::new);
            obj.insert("text".into(), Value::String(record.text));
            write_record(&mut out, &obj, &vector)?;
        }
        bar.inc(n);
    }
    out.flush().context("cannot write output")?;
    bar.finish_and_clear();
    Ok(())
}

/// Writes `obj` with an `embedding` field appended, serialising the vector as
/// f32 so each component prints in its shortest exact form.
fn write_record(
    out: &mut impl Write,
    obj: &Map<String, Value>,
    vector: &[f32],
) -> anyhow::Result<()> {
    let head = serde_json::to_string(obj)?;
    let head = head.strip_suffix('}').unwrap_or(&head);
    let sep = if head.len() > 1 { "," } else { "" };
    write!(out, "{head}{sep}\"embedding\":")?;
    serde_json::to_writer(&mut *out, vector)?;
    out.write_all(b"}\n")?;
    Ok(())
}

//! Reading texts from plain lines or JSONL, from a file or stdin.
//!
//! The format is decided by the first non-blank line: a JSON object means
//! JSONL (every record needs a string `text`; other fields are kept), anything
//! else means one text per line. Blank lines are skipped in both formats.
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use anyhow::{bail, Context};
use serde_json::{Map, Value};

/// One input record: its line number (1-based), text, and the JSON object it
/// came from (for JSONL input).
#[derive(Debug, Clone)]
pub struct Record {
    pub line: usize,
    pub text: String,
    pub object: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Jsonl,
    Plain,
}

/// Streams records in chunks so inputs of any size run in bounded memory.
pub struct Reader {
    lines: io::Lines<Box<dyn BufRead>>,
    line_no: usize,
    format: Option<Format>,
    source: String,
}

impl Reader {
    /// `None` or `-` reads stdin.
    pub fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        let (inner, source): (Box<dyn BufRead>, String) = match path {
            Some(p) if p.as_os_str() != "-" => {
                let f = File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
                (Box::new(BufReader::new(f)), p.display().to_string())
            }
            _ => (Box::new(BufReader::new(io::stdin())), "stdin".into()),
        };
        Ok(Self {
            lines: inner.lines(),
            line_no: 0,
            format: None,
            source,
        })
    }

    /// Up to `n` records; empty at the end of input.
    pub fn next_chunk(&mut self, n: usize) -> anyhow::Result<Vec<Record>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let Some(line) = self.lines.next() else {
                break;
            };
            self.line_no += 1;
            let line = line
                .with_context(|| format!("{}: line {}: unreadable", self.source, self.line_no))?;
            if line.trim().is_empty() {
                continue;
            }
            out.push(self.parse(line)?);
        }
        Ok(out)
    }

    fn parse(&mut self, line: String) -> anyhow::Result<Record> {
        let format =
            *self
                .format
                .get_or_insert_with(|| match serde_json::from_str::<Value>(&line) {
                    Ok(Value::Object(_)) => Format::Jsonl,
                    _ => Format::Plain,
                });
        if format == Format::Plain {
            return Ok(Record {
                line: self.line_no,
                text: line,
                object: None,
            });
        }
        let at = || format!("{}: line {}", self.source, self.line_no);
        let mut object = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(o)) => o,
            Ok(_) => bail!("{}: expected a JSON object", at()),
            Err(e) => bail!("{}: invalid JSON: {e}", at()),
        };
        let text = match object.remove("text") {
            Some(Value::String(s)) => s,
            Some(_) => bail!("{}: field \"text\" must be a string", at()),
            None => bail!("{}: missing field \"text\"", at()),
        };
        object.insert("text".into(), Value::String(String::new()));
        Ok(Record {
            line: self.line_no,
            text,
            object: Some(object),
        })
    }
}

/// Counts non-blank lines of a file, for progress totals; `None` for stdin.
pub fn count_records(path: Option<&Path>) -> Option<u64> {
    let p = path.filter(|p| p.as_os_str() != "-")?;
    let f = File::open(p).ok()?;
    let n = BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.trim().is_empty())
        .count();
    Some(n as u64)
}

/// A progress bar on stderr with texts/s and ETA; a spinner when the total
/// is unknown. Hidden when stderr is not a terminal.
pub fn progress(total: Option<u64>, what: &str) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    let bar = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(&format!(
                "{{bar:40}} {{pos}}/{{len}} {what} {{per_sec}} ETA {{eta}}"
            ))
            .expect("valid template"),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template(&format!("{{spinner}} {{pos}} {what} {{per_sec}}"))
                .expect("valid template"),
        ),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

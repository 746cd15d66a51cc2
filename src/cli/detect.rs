//! `detective detect`: verdicts for texts from an argument, a file or stdin.
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::common::{open_references, open_store, runtime, IndexArgs, StoreArgs};
use super::input::Reader;
use super::EncoderArgs;
use crate::detect::classifier::Classifier;
use crate::detect::segments::{self, Plan, Segment};
use crate::detect::supervised::fit_store;
use crate::detect::{detect_vectors, Abstention, Decision, Languages, NoveltyPolicy, Verdict};
use crate::encoder::Embed;

#[derive(Debug, Args)]
pub struct DetectArgs {
    #[command(flatten)]
    pub encoder: EncoderArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub index: IndexArgs,
    /// Text to check; without it, texts are read from --file or stdin.
    pub text: Option<String>,
    /// Texts to check (JSONL with a `text` field, or plain lines).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Neighbours that vote (default: the calibrated k).
    #[arg(long)]
    pub k: Option<usize>,
    /// Label reported: majority (the k-NN vote) or operating-point (the
    /// calibrated threshold for --target-fpr); the same choice as `serve`.
    #[arg(long, env = "DETECTIVE_DECISION", default_value = "majority")]
    pub decision: String,
    /// Operating point: target false-positive rate on human text (0.01 or 0.05).
    #[arg(long, env = "DETECTIVE_TARGET_FPR", default_value_t = 0.01)]
    pub target_fpr: f64,
    /// json (one line per text) or table; default: table on a terminal.
    #[arg(long)]
    pub format: Option<String>,
    /// Include the neighbours in JSON output.
    #[arg(long)]
    pub explain: bool,
    /// Languages verdicts are given for (as `serve --languages`): texts in
    /// others are labelled unknown.
    #[arg(long, env = "DETECTIVE_LANGUAGES", default_value = "eng")]
    pub languages: String,
    /// What a text unlike every reference gets (as `serve --novel`):
    /// abstain or flag.
    #[arg(long, env = "DETECTIVE_NOVEL", default_value = "abstain")]
    pub novel: String,
    /// Also label each part of each text (runs of sentences), as `POST
    /// /detect` with `segments` does.
    #[arg(long)]
    pub segments: bool,
}

pub fn run(args: &DetectArgs) -> anyhow::Result<()> {
    let format = match args.format.as_deref() {
        Some("json") => false,
        Some("table") => true,
        Some(other) => anyhow::bail!("--format must be json or table, not {other:?}"),
        None => std::io::stdout().is_terminal(),
    };
    let decision =
        Decision::parse(&args.decision).map_err(|e| anyhow::anyhow!("--decision: {e}"))?;
    let languages =
        Languages::parse(&args.languages).map_err(|e| anyhow::anyhow!("--languages: {e}"))?;
    let novel = NoveltyPolicy::parse(&args.novel).map_err(|e| anyhow::anyhow!("--novel: {e}"))?;
    let encoder = args.encoder.load()?;
    let rt = runtime()?;
    let weight = args.index.classifier_weight()?;
    let (refs, cfg, classifier) = rt.block_on(async {
        let store = open_store(&args.store).await?;
        let opened = open_references(store.as_ref(), &encoder, &args.store, &args.index).await?;
        let (refs, cal) = (opened.refs, opened.calibration);
        let classifier = match weight > 0.0 {
            true => fit_store(store.as_ref(), &refs).await?.0,
            false => None,
        };
        let mut cfg = cal
            .map(|c| c.vote_config(Some(args.target_fpr)))
            .unwrap_or_default();
        cfg.novelty_policy = novel;
        if let Some(k) = args.k {
            anyhow::ensure!(k > 0, "--k must be positive");
            cfg.k = k;
        }
        Ok::<_, anyhow::Error>((refs, cfg, classifier))
    })?;
    let scorer = Scorer {
        refs: &refs,
        cfg: &cfg,
        classifier: classifier.as_ref().map(|c| (c, weight)),
    };
    let texts: Vec<String> = match &args.text {
        Some(t) => vec![t.clone()],
        None => {
            let mut reader = Reader::open(args.file.as_deref())?;
            let mut all = Vec::new();
            loop {
                let chunk = reader.next_chunk(1024)?;
                if chunk.is_empty() {
                    break;
                }
                all.extend(chunk.into_iter().map(|r| r.text));
            }
            all
        }
    };
    anyhow::ensure!(
        texts.iter().all(|t| !t.trim().is_empty()),
        "empty text: nothing to check"
    );
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if format {
        writeln!(
            out,
            "{:<8} {:<8} {:<8} {:>6} {:>4}  {:<14} {:<18} {:<5} text",
            "label", "majority", "op.point", "score", "k", "family", "model", "novel"
        )?;
    }
    for chunk in texts.chunks(256) {
        let refs_t: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let vectors = encoder.embed(&refs_t)?;
        for (text, verdict) in chunk.iter().zip(scorer.verdicts(&refs_t, &vectors)?) {
            let how = Output {
                decision,
                k: cfg.k,
                table: format,
                explain: args.explain,
                encoder: encoder.id().to_string(),
            };
            let abstained = languages
                .judge(text)
                .or_else(|| cfg.novelty_policy.abstention(&verdict));
            let segments = match args.segments {
                true => Some(segments_of(&encoder, &scorer, decision, text, &verdict)?),
                false => None,
            };
            print_verdict(
                &mut out,
                text,
                &verdict,
                abstained.as_ref(),
                segments.as_ref(),
                &how,
            )?;
        }
    }
    Ok(())
}

/// Verdicts as the service gives them: the vote, with the classifier
/// blended into the score when there is one.
struct Scorer<'a> {
    refs: &'a crate::detect::References,
    cfg: &'a crate::detect::VoteConfig,
    classifier: Option<(&'a Classifier, f64)>,
}

impl Scorer<'_> {
    fn verdicts(&self, texts: &[&str], vectors: &[Vec<f32>]) -> anyhow::Result<Vec<Verdict>> {
        detect_vectors(self.refs, vectors, texts, self.cfg)
            .into_iter()
            .zip(texts)
            .map(|(v, t)| {
                let mut v = v.context("no references to vote")?;
                if let Some((p, w)) = self.classifier.and_then(|(c, w)| Some((c.predict(t)?, w))) {
                    v.blend_classifier(p, w);
                }
                Ok(v)
            })
            .collect()
    }
}

/// The segments of one text and whether it is mixed, as the service
/// computes them.
fn segments_of(
    encoder: &crate::encoder::Styled<crate::encoder::Encoder>,
    scorer: &Scorer<'_>,
    decision: Decision,
    text: &str,
    verdict: &Verdict,
) -> anyhow::Result<(bool, Vec<Segment>)> {
    let plan = Plan::new(text, encoder.inner().tokenizer())?;
    let windows = plan.window_texts(text);
    let strs: Vec<&str> = windows.iter().map(String::as_str).collect();
    let vectors = encoder.embed(&strs)?;
    let verdicts = scorer.verdicts(&strs, &vectors)?;
    let threshold = decision.threshold(verdict);
    let refs: Vec<&Verdict> = verdicts.iter().collect();
    let segments = plan.segments(text, &refs, threshold);
    Ok((segments::mixed(&segments), segments))
}

/// Segments under a table row.
fn print_segments(
    out: &mut impl Write,
    text: &str,
    mixed: bool,
    segments: &[Segment],
) -> anyhow::Result<()> {
    let chars: Vec<char> = text.chars().collect();
    writeln!(
        out,
        "         segments{}:",
        if mixed { " (mixed)" } else { "" }
    )?;
    for s in segments {
        let preview: String = chars[s.start..s.end]
            .iter()
            .take(40)
            .map(|c| if c.is_control() { ' ' } else { *c })
            .collect();
        writeln!(
            out,
            "           {:>6}-{:<6} {:<8} {:>6.3} {:<14} {}",
            s.start,
            s.end,
            s.label.as_str(),
            s.score,
            s.family.as_deref().unwrap_or("-"),
            preview
        )?;
    }
    Ok(())
}

/// How verdicts are printed.
struct Output {
    decision: Decision,
    k: usize,
    table: bool,
    explain: bool,
    encoder: String,
}

fn print_verdict(
    out: &mut impl Write,
    text: &str,
    v: &Verdict,
    abstained: Option<&Abstention>,
    segments: Option<&(bool, Vec<Segment>)>,
    how: &Output,
) -> anyhow::Result<()> {
    let Output {
        decision,
        k,
        table,
        explain,
        ref encoder,
    } = *how;
    let label = match abstained {
        Some(_) => "unknown",
        None => decision.label(v).as_str(),
    };
    if table {
        let preview: String = text
            .chars()
            .take(48)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        writeln!(
            out,
            "{:<8} {:<8} {:<8} {:>6.3} {:>4}  {:<14} {:<18} {:<5} {}",
            label,
            v.label.as_str(),
            v.operating_point
                .as_ref()
                .map_or("-", |op| op.label.as_str()),
            v.score,
            k,
            v.attribution.family.as_deref().unwrap_or("-"),
            v.attribution.model.as_deref().unwrap_or("-"),
            if v.novel { "yes" } else { "no" },
            preview
        )?;
        if let Some(a) = abstained {
            writeln!(out, "         no verdict: {}", a.reason)?;
        } else if let Some(note) = &v.note {
            writeln!(out, "         note: {note}")?;
        }
        if let Some((mixed, segments)) = segments {
            print_segments(out, text, *mixed, segments)?;
        }
        return Ok(());
    }
    let mut value = serde_json::to_value(v)?;
    if let Some(obj) = value.as_object_mut() {
        if !explain {
            obj.remove("neighbours");
        }
        obj.insert("encoder".into(), encoder.as_str().into());
        // The shape of the HTTP answer: `label` is the decision.
        obj.insert("majority".into(), v.label.as_str().into());
        obj.insert("label".into(), label.into());
        if let Some(a) = abstained {
            obj.insert("abstained".into(), serde_json::to_value(a)?);
        }
        if let Some((mixed, segments)) = segments {
            obj.insert("mixed".into(), (*mixed).into());
            obj.insert("segments".into(), serde_json::to_value(segments)?);
        }
    }
    serde_json::to_writer(&mut *out, &value)?;
    writeln!(out)?;
    Ok(())
}

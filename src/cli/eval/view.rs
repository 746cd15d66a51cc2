//! `detective eval --choose-view`: style views compared on a validation
//! split of the references alone (the encoder's held-out texts where it
//! records them), in distribution, with families and domains left out and
//! added back.
use std::time::Instant;

use super::{read_records, write_reports, EvalArgs};
use crate::cli::input::progress;
use crate::encoder::{registry, Embed, Encoder, Styled};
use crate::eval::views::{self, ViewPlan};
use crate::eval::EvalOptions;
use crate::index::IndexKind;
use crate::store::VectorRow;
use crate::train::checkpoint::TrainedOn;

pub(super) fn choose_view(
    args: &EvalArgs,
    encoder: &Styled<Encoder>,
    rows: &[VectorRow],
    texts: &[&str],
    mut domains: Vec<Option<String>>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !rows.is_empty(),
        "--choose-view needs references (--db or --refs)"
    );
    let opts = EvalOptions {
        index: IndexKind::Exact,
        val_fraction: args.val_fraction,
        max_val: args.max_val,
        cache_dir: None,
        ..EvalOptions::default()
    };
    // A trained encoder validates on the texts its training held out.
    let held = encoder.held_out();
    let group = |row: &VectorRow, text: &str| {
        row.group
            .clone()
            .unwrap_or_else(|| crate::store::text_sha256(text))
    };
    let in_split = |row: &VectorRow, text: &str| match held {
        Some(h) => h.contains(&group(row, text)),
        None => views::in_validation(row, args.val_fraction),
    };
    let (mut rows, mut texts) = (rows.to_vec(), texts.to_vec());
    let extra = match &args.val_from {
        Some(path) => validation_texts(path, encoder.inner(), &texts, &in_split)?,
        None => Vec::new(),
    };
    let references = rows.len();
    let offset = rows.iter().map(|r| r.id).max().unwrap_or(0) + 1;
    for (i, (row, text, domain)) in extra.iter().enumerate() {
        rows.push(VectorRow {
            id: offset + i as i64,
            ..row.clone()
        });
        texts.push(text.as_str());
        domains.push(domain.clone());
    }
    let validates: Vec<bool> = rows
        .iter()
        .zip(&texts)
        .enumerate()
        .map(|(i, (r, t))| i >= references || in_split(r, t))
        .collect();
    let split = |i: usize| validates[i];
    let val_count = validates.iter().filter(|v| **v).count();
    let split_name = match held {
        Some(h) => format!(
            "{val_count} texts held out of the encoder's training (seed {}, {:.0}% of groups)",
            h.seed,
            h.fraction * 100.0
        ),
        None => format!(
            "{val_count} texts ({:.0}% of groups)",
            args.val_fraction * 100.0
        ),
    };
    eprintln!(
        "validation: {split_name}, {} of them from {}",
        extra.len(),
        args.val_from
            .as_deref()
            .map_or("no other file".into(), |p| p.display().to_string())
    );
    let (rows, texts) = (rows.as_slice(), texts.as_slice());
    let plan = ViewPlan {
        lexical_dims: &args.lexical_dims,
        centres: &args.lexical_centres,
        alphas: &args.alphas,
        blends: &args.classifier_weights,
        families: &args.leave_family_out,
        adapt_count: args.adapt_count,
        val_fraction: args.val_fraction,
        validation: Some(&split),
        domains: &args.leave_domain_out,
        domain_of: &domains,
    };
    let started = Instant::now();
    let candidates = views::choose(rows, texts, encoder.inner().dim(), &plan, &opts, &|c| {
        eprintln!(
            "lexical {:>5} centre {:.2} alpha {:.2} classifier {:.2}: in-distribution {:.2}, unseen family {}, added {}, unseen domain {}, added {}, mean {:.2}, AUROC {:.4} ({:.0} s)",
            c.lexical_dim,
            c.centre,
            c.alpha,
            c.blend,
            c.in_distribution,
            views::cell(c.unseen),
            views::cell(c.adapted),
            views::cell(c.new_domain),
            views::cell(c.domain_added),
            c.mean,
            c.auroc,
            started.elapsed().as_secs_f64()
        )
    })?;
    // A domain the encoder was trained on is not unseen by it: say which.
    let seen = TrainedOn::domains_of(&registry::resolve(&args.encoder.model)?.dir);
    let md = format!(
        "Style views of {} on {} references; validation: {split_name} \
         (families left out: {}; domains left out: {}; {} added back)\n\n{}",
        encoder.inner().id(),
        references,
        args.leave_family_out.join(", "),
        if args.leave_domain_out.is_empty() {
            "none".to_owned()
        } else {
            match &seen {
                // One note for all when the record cannot tell them apart.
                TrainedOn::Unrecorded => format!(
                    "{} ({})",
                    args.leave_domain_out.join(", "),
                    seen.domain_leak("")
                ),
                _ => args
                    .leave_domain_out
                    .iter()
                    .map(|x| format!("{x} ({})", seen.domain_leak(x)))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        },
        args.adapt_count,
        views::markdown(&candidates)
    );
    println!("{md}");
    write_reports(args, &candidates, &md)
}

/// The texts of `path` in the validation split (`in_split`) that are not
/// already among the references, with their neural vectors.
fn validation_texts(
    path: &std::path::Path,
    encoder: &Encoder,
    texts: &[&str],
    in_split: &dyn Fn(&VectorRow, &str) -> bool,
) -> anyhow::Result<Vec<(VectorRow, String, Option<String>)>> {
    let known: std::collections::HashSet<String> =
        texts.iter().map(|t| crate::store::text_sha256(t)).collect();
    let mut picked: Vec<(VectorRow, String, Option<String>)> = read_records(path)?
        .into_iter()
        .filter(|r| !known.contains(&crate::store::text_sha256(&r.text)))
        .map(|r| {
            let row = VectorRow {
                id: 0,
                label: r.label,
                model: r.model,
                family: r.family,
                source: r.source,
                group: Some(
                    r.group
                        .unwrap_or_else(|| crate::store::text_sha256(&r.text)),
                ),
                embedding: Vec::new(),
            };
            (row, r.text, r.domain)
        })
        .filter(|(row, text, _)| in_split(row, text))
        .collect();
    let bar = progress(Some(picked.len() as u64), "validation texts embedded");
    for chunk in picked.chunks_mut(256) {
        let batch: Vec<&str> = chunk.iter().map(|(_, t, _)| t.as_str()).collect();
        let vectors = encoder.embed(&batch)?;
        for ((row, _, _), v) in chunk.iter_mut().zip(vectors) {
            row.embedding = v;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(picked)
}

//! Which parts of a text look machine-written. A text is cut into
//! sentences; overlapping windows of whole sentences, each within a token
//! budget, are voted on by the same references as whole texts; a
//! sentence's score is the mean score of the windows that hold it; runs of
//! sentences with the same label become segments. Every window is one more
//! text to encode, so the cost grows linearly with the text's length.
use std::ops::Range;

use serde::Serialize;

use super::Verdict;
use crate::encoder::{EncoderError, Tokenizer};
use crate::store::Label;

/// Byte ranges of the sentences of `text`, in order, trimmed of
/// surrounding whitespace; together they hold every visible character.
/// A sentence ends after `.`, `!`, `?`, `…` or their CJK forms (with any
/// closing quotes or brackets) followed by whitespace and a word that is
/// not lowercase, or at a line break. A text without such marks is one
/// sentence.
pub fn sentences(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = if c == '\n' {
            Some(i)
        } else if matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？') {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if matches!(
                    d,
                    '"' | '\'' | '”' | '’' | ')' | ']' | '»' | '」' | '.' | '!' | '?'
                ) {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let cjk = matches!(c, '。' | '！' | '？');
            // A lowercase word next continues the sentence ("e.g. this",
            // "\"Is it?\" she said").
            let lower_next = text[end..]
                .trim_start()
                .chars()
                .next()
                .is_some_and(char::is_lowercase);
            match chars.peek() {
                Some(&(_, d)) if (d.is_whitespace() && !lower_next) || cjk => Some(end),
                Some(_) if glued(text, i, end) => Some(end),
                None => Some(end),
                _ => None,
            }
        } else {
            None
        };
        if let Some(end) = end {
            push_trimmed(text, start..end, &mut out);
            start = end;
        }
    }
    push_trimmed(text, start..text.len(), &mut out);
    out
}

/// A sentence mark between a lowercase word and a capitalised one with no
/// space ("found.Mortgages"), as in text whose line breaks were lost: a
/// boundary. Abbreviations ("U.S.A.") and names ("Node.JS") are not: the
/// mark must follow a lowercase letter and precede an uppercase letter
/// followed by a lowercase one.
fn glued(text: &str, mark: usize, after: usize) -> bool {
    let before = text[..mark].chars().next_back();
    let mut next = text[after..].chars();
    before.is_some_and(char::is_lowercase)
        && next.next().is_some_and(char::is_uppercase)
        && next.next().is_some_and(char::is_lowercase)
}

fn push_trimmed(text: &str, r: Range<usize>, out: &mut Vec<Range<usize>>) {
    let s = &text[r.clone()];
    let lead = s.len() - s.trim_start().len();
    let trail = s.len() - s.trim_end().len();
    if lead + trail < s.len() {
        out.push(r.start + lead..r.end - trail);
    }
}

/// Windows of consecutive sentences (ranges of sentence indices), each
/// within `budget` tokens (a longer sentence is a window of its own), one
/// starting at about every half window, so that every sentence is read in
/// context and most sentences by two windows. `tokens` holds each
/// sentence's token count.
pub fn windows(tokens: &[usize], budget: usize) -> Vec<Range<usize>> {
    let n = tokens.len();
    if n == 0 {
        return Vec::new();
    }
    let budget = budget.max(1);
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut start = 0;
    loop {
        let mut end = start + 1;
        let mut used = tokens[start];
        while end < n && used + tokens[end] <= budget {
            used += tokens[end];
            end += 1;
        }
        out.push(start..end);
        if end == n {
            return out;
        }
        // The next window starts at the sentence that begins the second
        // half of this one (always moving forward).
        let mut next = start + 1;
        let mut seen = tokens[start];
        while next < end && seen * 2 < used {
            seen += tokens[next];
            next += 1;
        }
        start = next.min(end).max(start + 1);
    }
}

/// Per sentence, the mean of the scores of the windows that hold it.
pub fn sentence_scores(n: usize, windows: &[Range<usize>], scores: &[f64]) -> Vec<f64> {
    let mut sum = vec![0.0; n];
    let mut count = vec![0usize; n];
    for (w, s) in windows.iter().zip(scores) {
        for i in w.clone() {
            sum[i] += s;
            count[i] += 1;
        }
    }
    sum.iter()
        .zip(&count)
        .map(|(s, &c)| if c == 0 { 0.0 } else { s / c as f64 })
        .collect()
}

/// Runs of consecutive sentences on the same side of `threshold`: (the
/// sentence range, whether it is machine).
pub fn runs(scores: &[f64], threshold: f64) -> Vec<(Range<usize>, bool)> {
    let mut out: Vec<(Range<usize>, bool)> = Vec::new();
    for (i, &s) in scores.iter().enumerate() {
        let machine = s >= threshold;
        match out.last_mut() {
            Some((r, m)) if *m == machine => r.end = i + 1,
            _ => out.push((i..i + 1, machine)),
        }
    }
    out
}

/// A byte offset of `text` as a character (Unicode scalar) offset.
pub fn char_offset(text: &str, byte: usize) -> usize {
    text[..byte].chars().count()
}

/// How one text is read for segments: its sentences (byte ranges) and the
/// windows over them (ranges of sentence indices).
#[derive(Debug, Clone)]
pub struct Plan {
    pub sentences: Vec<Range<usize>>,
    pub windows: Vec<Range<usize>>,
}

impl Plan {
    /// Sentences of `text`, counted in tokens by `tokenizer`, in windows of
    /// at most what the model reads.
    pub fn new(text: &str, tokenizer: &Tokenizer) -> Result<Self, EncoderError> {
        let sentences = sentences(text);
        let parts: Vec<&str> = sentences.iter().map(|r| &text[r.clone()]).collect();
        let tokens: Vec<usize> = tokenizer
            .encode_batch(&parts)?
            .iter()
            // Less the [CLS] and [SEP] every encoding carries.
            .map(|ids| ids.len().saturating_sub(2).max(1))
            .collect();
        let budget = tokenizer.max_length().saturating_sub(2).max(1);
        Ok(Self {
            windows: windows(&tokens, budget),
            sentences,
        })
    }

    /// The text of each window.
    pub fn window_texts(&self, text: &str) -> Vec<String> {
        self.windows
            .iter()
            .map(|w| text[self.sentences[w.start].start..self.sentences[w.end - 1].end].to_owned())
            .collect()
    }

    /// Segments from the verdicts of the windows, in order: runs of
    /// sentences on the same side of `threshold`, spanning from a run's
    /// first sentence to its last (character offsets).
    pub fn segments(&self, text: &str, verdicts: &[&Verdict], threshold: f64) -> Vec<Segment> {
        let scores: Vec<f64> = verdicts.iter().map(|v| v.score).collect();
        let families: Vec<Option<&str>> = verdicts
            .iter()
            .map(|v| v.attribution.family.as_deref())
            .collect();
        self.assemble(text, &scores, &families, threshold)
    }

    /// [`Plan::segments`] from window scores alone (no families).
    pub fn segments_from_scores(&self, text: &str, scores: &[f64], threshold: f64) -> Vec<Segment> {
        self.assemble(text, scores, &vec![None; scores.len()], threshold)
    }

    fn assemble(
        &self,
        text: &str,
        scores: &[f64],
        families: &[Option<&str>],
        threshold: f64,
    ) -> Vec<Segment> {
        let per_sentence = sentence_scores(self.sentences.len(), &self.windows, scores);
        runs(&per_sentence, threshold)
            .into_iter()
            .map(|(run, machine)| {
                let score = per_sentence[run.clone()].iter().sum::<f64>() / run.len().max(1) as f64;
                let family = machine
                    .then(|| {
                        let mut votes: Vec<(&str, usize)> = Vec::new();
                        for ((w, score), family) in self.windows.iter().zip(scores).zip(families) {
                            let overlaps = w.start < run.end && run.start < w.end;
                            if let (true, true, Some(f)) = (overlaps, *score >= threshold, family) {
                                match votes.iter_mut().find(|(g, _)| *g == *f) {
                                    Some((_, n)) => *n += 1,
                                    None => votes.push((f, 1)),
                                }
                            }
                        }
                        votes.sort_by_key(|v| std::cmp::Reverse(v.1));
                        votes.first().map(|(f, _)| (*f).to_owned())
                    })
                    .flatten();
                Segment {
                    start: char_offset(text, self.sentences[run.start].start),
                    end: char_offset(text, self.sentences[run.end - 1].end),
                    label: if machine {
                        Label::Machine
                    } else {
                        Label::Human
                    },
                    confident: confidence(score, threshold) >= CONFIDENT,
                    score,
                    family,
                }
            })
            .collect()
    }
}

/// A part of a text with one label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// Character (code point) offsets into the text as sent.
    pub start: usize,
    pub end: usize,
    pub label: Label,
    pub score: f64,
    /// The score is far enough from the threshold ([`CONFIDENT`]).
    pub confident: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
}

/// How far a score lies from the threshold, as a share of the room on its
/// side: 0 at the threshold, 1 at 0 (human side) or 1 (machine side). A
/// threshold of 0.9 leaves a machine score only 0.1 of room, so a plain
/// distance would never call a machine segment confident there.
pub fn confidence(score: f64, threshold: f64) -> f64 {
    let room = if score >= threshold {
        1.0 - threshold
    } else {
        threshold
    };
    if room <= 0.0 {
        return 1.0;
    }
    ((score - threshold).abs() / room).min(1.0)
}

/// The [`confidence`] a segment needs to count as confident: at a
/// threshold of 0.5, a score 0.2 away from it.
pub const CONFIDENT: f64 = 0.4;

/// Confident segments disagree: part of the text reads as machine-written,
/// part as human.
pub fn mixed(segments: &[Segment]) -> bool {
    let confident = |l: Label| segments.iter().any(|s| s.label == l && s.confident);
    confident(Label::Machine) && confident(Label::Human)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'a>(t: &'a str, r: &[Range<usize>]) -> Vec<&'a str> {
        r.iter().map(|r| &t[r.clone()]).collect()
    }

    #[test]
    fn sentences_end_at_marks_followed_by_space_and_at_line_breaks() {
        let t = "  Hello there. \"Is it?\" she said! Version 2.5 is out...  Done\nNext line\n\n";
        assert_eq!(
            texts(t, &sentences(t)),
            [
                "Hello there.",
                "\"Is it?\" she said!",
                "Version 2.5 is out...",
                "Done",
                "Next line"
            ]
        );
        let cjk = "今日は晴れです。明日は雨？そうです";
        assert_eq!(
            texts(cjk, &sentences(cjk)),
            ["今日は晴れです。", "明日は雨？", "そうです"]
        );
        let glued =
            "Demand fell.Mortgages rose in the U.S.A. as expected.Node.JS and e.g.PDF stay.";
        assert_eq!(
            texts(glued, &sentences(glued)),
            [
                "Demand fell.",
                "Mortgages rose in the U.S.A. as expected.",
                "Node.JS and e.g.PDF stay."
            ]
        );
        assert_eq!(
            texts("no marks at all", &sentences("no marks at all")),
            ["no marks at all"]
        );
        assert!(sentences(" \n\t ").is_empty());
        // Mixed scripts and multi-byte characters keep valid boundaries.
        let m = "Ünïcödé first. Второе предложение! 第三句。";
        let s = sentences(m);
        assert_eq!(
            texts(m, &s),
            ["Ünïcödé first.", "Второе предложение!", "第三句。"]
        );
        assert_eq!(char_offset(m, s[1].start), 15);
    }

    #[test]
    fn windows_cover_every_sentence_overlap_and_respect_the_budget() {
        let tokens = [10, 20, 30, 5, 5, 40, 100, 10, 10];
        let w = windows(&tokens, 50);
        for r in &w {
            let used: usize = tokens[r.clone()].iter().sum();
            assert!(used <= 50 || r.len() == 1, "{r:?}");
        }
        for i in 0..tokens.len() {
            assert!(w.iter().any(|r| r.contains(&i)), "sentence {i}");
        }
        assert_eq!(w.last().unwrap().end, tokens.len());
        assert!(w.windows(2).all(|p| p[1].start > p[0].start), "{w:?}");
        assert!(
            w.windows(2).any(|p| p[1].start < p[0].end),
            "some overlap: {w:?}"
        );
        assert_eq!(windows(&[7], 50), vec![0..1]);
        assert_eq!(windows(&[300], 50), vec![0..1]);
        assert!(windows(&[], 50).is_empty());
    }

    #[test]
    fn scores_average_over_windows_and_runs_split_at_the_threshold() {
        let w = vec![0..2, 1..3, 2..4];
        let s = sentence_scores(4, &w, &[0.0, 0.6, 1.0]);
        assert_eq!(s, vec![0.0, 0.3, 0.8, 1.0]);
        assert_eq!(runs(&s, 0.5), vec![(0..2, false), (2..4, true)]);
        assert_eq!(runs(&[], 0.5), vec![]);
    }
}

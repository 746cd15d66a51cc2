//! Reading a text longer than one window: its tokens are cut into the
//! fewest equal windows of the model's length, each framed by the special
//! tokens and embedded like a separate text, and the window vectors are
//! averaged by tokens into one unit vector.

/// The identity name of `name` read in `windows` windows.
pub fn name(name: &str, windows: usize) -> String {
    if windows > 1 {
        format!("{name}+w{windows}")
    } else {
        name.to_owned()
    }
}

/// Cuts a sequence (special tokens at both ends) longer than `window` into
/// the fewest windows of at most `window` tokens, of equal length to within
/// one token, each framed by the same special tokens; with each window's
/// count of text tokens, its weight in the pooled vector.
pub fn split(seq: &[i64], window: usize) -> Vec<(Vec<i64>, usize)> {
    if seq.len() <= window || seq.len() < 2 || window < 3 {
        let mut seq = seq.to_vec();
        seq.truncate(window.max(2));
        let n = seq.len().saturating_sub(2).max(1);
        return vec![(seq, n)];
    }
    let (head, tail) = (seq[0], seq[seq.len() - 1]);
    let body = &seq[1..seq.len() - 1];
    let per = window - 2;
    let count = body.len().div_ceil(per);
    let (base, extra) = (body.len() / count, body.len() % count);
    let mut out = Vec::with_capacity(count);
    let mut start = 0;
    for w in 0..count {
        let len = base + usize::from(w < extra);
        let mut ids = Vec::with_capacity(len + 2);
        ids.push(head);
        ids.extend_from_slice(&body[start..start + len]);
        ids.push(tail);
        out.push((ids, len));
        start += len;
    }
    out
}

/// One window of at most `window` tokens of `seq` (special tokens at both
/// ends), starting `pick % (possible starts)` tokens into its text and
/// framed by the same special tokens; a sequence that fits is returned
/// whole. Training reads random windows of a text this way.
pub fn crop(seq: &[i64], window: usize, pick: u64) -> Vec<i64> {
    if seq.len() <= window || window < 3 {
        return seq.to_vec();
    }
    let body = &seq[1..seq.len() - 1];
    let per = window - 2;
    let start = (pick % (body.len() - per + 1) as u64) as usize;
    let mut out = Vec::with_capacity(window);
    out.push(seq[0]);
    out.extend_from_slice(&body[start..start + per]);
    out.push(seq[seq.len() - 1]);
    out
}

/// One unit vector per text from its windows' vectors: `owners[j]` is the
/// text and weight of `vectors[j]`.
pub fn pool(texts: usize, owners: &[(usize, usize)], vectors: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    let mut out = vec![Vec::new(); texts];
    for (v, &(i, weight)) in vectors.into_iter().zip(owners) {
        let acc: &mut Vec<f32> = &mut out[i];
        if acc.is_empty() {
            acc.resize(v.len(), 0.0);
        }
        acc.iter_mut()
            .zip(v)
            .for_each(|(a, x)| *a += weight as f32 * x);
    }
    for v in &mut out {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= norm);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [CLS]=101, [SEP]=102 around 10 text tokens.
    fn ten_tokens() -> Vec<i64> {
        std::iter::once(101)
            .chain(1..=10)
            .chain(std::iter::once(102))
            .collect()
    }

    #[test]
    fn a_crop_is_a_framed_window_of_the_text_at_the_drawn_offset() {
        // Windows of 6 (4 text tokens): seven possible starts.
        let seq = ten_tokens();
        assert_eq!(crop(&seq, 6, 0), vec![101, 1, 2, 3, 4, 102]);
        assert_eq!(crop(&seq, 6, 6), vec![101, 7, 8, 9, 10, 102]);
        assert_eq!(crop(&seq, 6, 7), crop(&seq, 6, 0));
        // Every offset is reachable.
        let mut starts: Vec<i64> = (0..100).map(|p| crop(&seq, 6, p)[1]).collect();
        starts.sort();
        starts.dedup();
        assert_eq!(starts, (1..=7).collect::<Vec<_>>());
        // A sequence that fits is read whole.
        assert_eq!(crop(&seq, 12, 5), seq);
        assert_eq!(crop(&seq, 40, 5), seq);
    }

    #[test]
    fn long_sequences_are_cut_into_equal_framed_windows() {
        // Windows of 6 (4 text tokens).
        let seq = ten_tokens();
        let w = split(&seq, 6);
        assert_eq!(
            w,
            vec![
                (vec![101, 1, 2, 3, 4, 102], 4),
                (vec![101, 5, 6, 7, 102], 3),
                (vec![101, 8, 9, 10, 102], 3),
            ]
        );
        // Every text token once, in order.
        let body: Vec<i64> = w
            .iter()
            .flat_map(|(ids, _)| ids[1..ids.len() - 1].to_vec())
            .collect();
        assert_eq!(body, (1..=10).collect::<Vec<_>>());
        // A sequence that fits is one window, unchanged.
        assert_eq!(split(&seq, 12), vec![(seq.clone(), 10)]);
        assert_eq!(name("m", 1), "m");
        assert_eq!(name("m", 4), "m+w4");
    }

    #[test]
    fn pooling_weighs_windows_by_tokens_and_normalises() {
        let vectors = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.8]];
        let pooled = pool(2, &[(0, 3), (0, 1), (1, 5)], vectors);
        let n = (10f32).sqrt();
        assert_eq!(pooled, vec![vec![3.0 / n, 1.0 / n], vec![0.6, 0.8]]);
    }
}

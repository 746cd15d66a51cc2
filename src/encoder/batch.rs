//! Length-aware batching.
//!
//! Texts are visited longest first and cut into batches whose padded size
//! (count x longest member) stays within a token budget, so a batch of short
//! texts can hold many of them and a long text does not drag short ones to
//! its length.

/// Groups of input indices; every index appears exactly once.
pub fn plan_batches(lens: &[usize], token_budget: usize, max_batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut longest = 0;
    for i in order {
        let len = lens[i].max(1);
        let would_be = (current.len() + 1) * longest.max(len);
        if !current.is_empty() && (would_be > token_budget || current.len() >= max_batch) {
            batches.push(std::mem::take(&mut current));
            longest = 0;
        }
        longest = longest.max(len);
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_once_and_budget_respected() {
        let lens = [5, 512, 17, 3, 128, 128, 64, 9, 300, 1];
        let batches = plan_batches(&lens, 600, 4);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lens.len()).collect::<Vec<_>>());
        for b in &batches {
            let longest = b.iter().map(|&i| lens[i]).max().unwrap();
            assert!(b.len() <= 4);
            assert!(b.len() == 1 || b.len() * longest <= 600, "{b:?}");
        }
    }

    #[test]
    fn oversize_text_gets_its_own_batch() {
        let batches = plan_batches(&[1000, 10, 10], 256, 32);
        assert_eq!(batches[0], vec![0]);
        assert_eq!(batches[1], vec![1, 2]);
    }

    #[test]
    fn empty_input_gives_no_batches() {
        assert!(plan_batches(&[], 100, 8).is_empty());
    }
}

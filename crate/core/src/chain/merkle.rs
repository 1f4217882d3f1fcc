//! Merkle trees over transaction ids.
//!
//! Bitcoin's tree duplicates the last node of an odd level. That makes two different
//! transaction lists share a root (CVE-2012-2459): a list whose tail repeats. The root
//! computation reports such a *mutated* tree so that a block built that way is rejected.

use super::hash::{sha256d_pair, Hash256};

/// The Merkle root of `leaves` and whether the tree is mutated (two equal siblings on some
/// level, the CVE-2012-2459 pattern). An empty list has the zero root.
pub fn merkle_root(leaves: &[[u8; 32]]) -> (Hash256, bool) {
    if leaves.is_empty() {
        return (Hash256::ZERO, false);
    }
    let mut level: Vec<[u8; 32]> = leaves.to_vec();
    let mut mutated = false;
    while level.len() > 1 {
        for pair in level.chunks_exact(2) {
            if pair[0] == pair[1] {
                mutated = true;
            }
        }
        if level.len() % 2 == 1 {
            let last = level[level.len() - 1];
            level.push(last);
        }
        let next: Vec<[u8; 32]> = level
            .chunks_exact(2)
            .map(|pair| sha256d_pair(&pair[0], &pair[1]))
            .collect();
        level = next;
    }
    (Hash256(level[0]), mutated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_leaf_is_its_own_root() {
        assert_eq!(merkle_root(&[[5; 32]]), (Hash256([5; 32]), false));
    }

    #[test]
    fn odd_level_duplicates_last_and_duplicate_tail_is_flagged() {
        let (a, b, c) = ([1; 32], [2; 32], [3; 32]);
        let (odd, mutated) = merkle_root(&[a, b, c]);
        assert!(!mutated);
        let (dup, mutated) = merkle_root(&[a, b, c, c]);
        assert_eq!(odd, dup, "the CVE-2012-2459 collision");
        assert!(mutated, "the duplicated tail must be reported");
    }
}

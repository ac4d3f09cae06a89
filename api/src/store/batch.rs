//! Splitting a batch of rows into multi-row statements of a few fixed sizes.
//!
//! Why fixed sizes: sqlx keeps each connection's prepared statements by SQL text, and a
//! multi-row INSERT or an `IN (…)` list has a different text for every row count. Cutting
//! `n` rows into chunks of 64, 16, 4 and 1 keeps the texts to four per statement kind (they
//! stay prepared), at the price of at most nine extra statements for a batch of any size.

use std::ops::Range;

/// Rows per statement, largest first. 64 rows of the widest table (messages, 16 columns) are
/// 1,024 bound values, far below SQLite's limit of 32,766.
pub const CHUNK_SIZES: [usize; 4] = [64, 16, 4, 1];

/// Consecutive ranges covering `0..len`, each of a size in [`CHUNK_SIZES`], largest first.
pub fn chunks(len: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for size in CHUNK_SIZES {
        while len - start >= size {
            out.push(start..start + size);
            start += size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{CHUNK_SIZES, chunks};

    #[test]
    fn chunks_cover_every_row_once_with_the_fixed_sizes() {
        for len in 0..300 {
            let c = chunks(len);
            let mut next = 0;
            for r in &c {
                assert_eq!(r.start, next, "len {len}: {c:?}");
                assert!(CHUNK_SIZES.contains(&r.len()), "len {len}: {c:?}");
                next = r.end;
            }
            assert_eq!(next, len, "len {len}: {c:?}");
            // Greedy: fewer than 4 chunks of each size below the largest.
            for size in &CHUNK_SIZES[1..] {
                assert!(
                    c.iter().filter(|r| r.len() == *size).count() < 4,
                    "len {len}"
                );
            }
        }
        assert!(chunks(0).is_empty());
        assert_eq!(chunks(69), vec![0..64, 64..68, 68..69]);
    }
}

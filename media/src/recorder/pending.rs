//! One channel's samples waiting for emission: a ring of plain `i16` plus one bit per slot
//! saying whether a packet filled it.
//!
//! The timeline touches every sample of every recorded call twice (placed, emitted), so the
//! store is laid out for that: a packet is copied in as a run, emission copies runs out and
//! zeroes what it leaves behind. Slots outside the pending span are always zero and
//! unfilled, so a hole reads as silence without looking at the bits; the bits only tell a
//! duplicate from a first arrival.

/// Samples for frames `emitted..emitted + len` of one channel.
#[derive(Debug, Default)]
pub struct PendingSamples {
    /// Power-of-two sized ring (or empty); zero wherever nothing was received.
    samples: Vec<i16>,
    /// One bit per slot of `samples`: set when a packet placed that sample.
    filled: Vec<u64>,
    /// Slot of the first pending frame.
    head: usize,
    len: usize,
}

/// Samples per interleaved output frame (left, right).
pub const CHANNELS: usize = 2;

/// Smallest ring allocated (a packet's worth at 48 kHz fits several times).
const MIN_CAPACITY: usize = 1024;

impl PendingSamples {
    /// Frames pending (received or holes) from the first unemitted one.
    pub fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.samples.len().wrapping_sub(1)
    }

    /// Makes at least `len` frames pending (new ones are holes).
    pub fn ensure_len(&mut self, len: usize) {
        if len <= self.len {
            return;
        }
        if len > self.samples.len() {
            self.grow(len);
        }
        self.len = len;
    }

    /// Re-lays the pending frames from slot 0 of a ring large enough for `len` frames.
    fn grow(&mut self, len: usize) {
        let capacity = len.next_power_of_two().max(MIN_CAPACITY);
        let mut samples = vec![0i16; capacity];
        let mut filled = vec![0u64; capacity.div_ceil(64)];
        let mask = self.mask();
        for i in 0..self.len {
            let old = (self.head + i) & mask;
            if let (Some(&s), Some(dst)) = (self.samples.get(old), samples.get_mut(i)) {
                *dst = s;
            }
            if bit(&self.filled, old)
                && let Some(word) = filled.get_mut(i / 64)
            {
                *word |= 1 << (i % 64);
            }
        }
        self.samples = samples;
        self.filled = filled;
        self.head = 0;
    }

    /// Stores `run` at frames `offset..offset + run.len()` from the first pending one
    /// (the caller made them pending). Returns (samples placed, duplicates left alone).
    pub fn place(&mut self, offset: usize, run: &[i16]) -> (u64, u64) {
        if offset.saturating_add(run.len()) > self.len {
            return (0, 0);
        }
        let (mut placed, mut duplicate) = (0, 0);
        let start = (self.head + offset) & self.mask();
        // At most two contiguous stretches of the ring (the run may wrap).
        let first_len = run.len().min(self.samples.len() - start);
        let (first, second) = run.split_at(first_len);
        for (slot, part) in [(start, first), (0, second)] {
            if part.is_empty() {
                continue;
            }
            let range = slot..slot + part.len();
            if !any_bit(&mut self.filled, range.clone()) {
                // The usual case, a packet landing where nothing is yet: one copy.
                if let Some(dst) = self.samples.get_mut(range.clone()) {
                    dst.copy_from_slice(part);
                    set_bits(&mut self.filled, range);
                    placed += part.len() as u64;
                }
                continue;
            }
            for (i, &sample) in part.iter().enumerate() {
                let slot = slot + i;
                let (word, b) = (slot / 64, 1u64 << (slot % 64));
                let (Some(w), Some(s)) = (self.filled.get_mut(word), self.samples.get_mut(slot))
                else {
                    continue;
                };
                if *w & b != 0 {
                    duplicate += 1;
                } else {
                    *w |= b;
                    *s = sample;
                    placed += 1;
                }
            }
        }
        (placed, duplicate)
    }

    /// Removes the first `count` frames (missing ones read as silence). With `out`, writes
    /// them to element `channel` of consecutive `CHANNELS`-sample frames of `out`; without,
    /// discards them.
    pub fn take_front(&mut self, count: usize, mut out: Option<(&mut [i16], usize)>) {
        let take = count.min(self.len);
        let mask = self.mask();
        // The pending frames occupy at most two contiguous stretches of the ring.
        let first_end = (self.head + take).min(self.samples.len());
        let first = self.head..first_end;
        let second = 0..(take - (first_end - self.head));
        let mut written = 0usize;
        for range in [first, second] {
            if let Some(seg) = self.samples.get_mut(range.clone()) {
                match out.as_mut() {
                    Some((dst, channel)) => {
                        let frames = dst.chunks_exact_mut(CHANNELS).skip(written);
                        for (frame, s) in frames.zip(seg.iter_mut()) {
                            if let Some(d) = frame.get_mut(*channel) {
                                *d = std::mem::take(s);
                            }
                        }
                    }
                    None => seg.fill(0),
                }
                written += seg.len();
            }
            clear_bits(&mut self.filled, range);
        }
        if let Some((dst, channel)) = out {
            let frames = dst.chunks_exact_mut(CHANNELS).skip(written);
            for frame in frames.take(count - take) {
                if let Some(d) = frame.get_mut(channel) {
                    *d = 0;
                }
            }
        }
        self.head = (self.head + take) & mask;
        self.len -= take;
        if self.len == 0 {
            self.head = 0;
        }
    }
}

fn bit(words: &[u64], slot: usize) -> bool {
    words
        .get(slot / 64)
        .is_some_and(|w| w & (1 << (slot % 64)) != 0)
}

/// Calls `f` with each word touched by `range` and the mask of `range`'s bits in it.
fn for_each_word(
    words: &mut [u64],
    range: std::ops::Range<usize>,
    mut f: impl FnMut(&mut u64, u64) -> bool,
) {
    let mut i = range.start;
    while i < range.end {
        let Some(word) = words.get_mut(i / 64) else {
            return;
        };
        let from = i % 64;
        let to = (range.end - (i - from)).min(64);
        let low = if from == 0 {
            0
        } else {
            u64::MAX >> (64 - from)
        };
        let high = if to == 64 { 0 } else { u64::MAX << to };
        if !f(word, !(low | high)) {
            return;
        }
        i += to - from;
    }
}

/// Clears the bits of `range`, a word at a time.
fn clear_bits(words: &mut [u64], range: std::ops::Range<usize>) {
    for_each_word(words, range, |w, m| {
        *w &= !m;
        true
    });
}

/// Sets the bits of `range`, a word at a time.
fn set_bits(words: &mut [u64], range: std::ops::Range<usize>) {
    for_each_word(words, range, |w, m| {
        *w |= m;
        true
    });
}

/// Whether any bit of `range` is set.
fn any_bit(words: &mut [u64], range: std::ops::Range<usize>) -> bool {
    let mut any = false;
    for_each_word(words, range, |w, m| {
        any = *w & m != 0;
        !any
    });
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(p: &mut PendingSamples, n: usize) -> Vec<i16> {
        let mut out = vec![0; n * CHANNELS];
        p.take_front(n, Some((&mut out, 0)));
        out.into_iter().step_by(CHANNELS).collect()
    }

    #[test]
    fn holes_read_as_silence_and_duplicates_are_refused() {
        let mut p = PendingSamples::default();
        p.ensure_len(6);
        assert_eq!(p.place(1, &[5, 6]), (2, 0));
        assert_eq!(
            p.place(5, &[9, 7]),
            (0, 0),
            "run past the pending span is refused"
        );
        p.ensure_len(7);
        assert_eq!(p.place(2, &[9, 7, 0, 0, 3]), (4, 1));
        assert_eq!(drain(&mut p, 8), vec![0, 5, 6, 7, 0, 0, 3, 0]);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn wraps_around_and_grows_keeping_order() {
        let mut p = PendingSamples::default();
        let mut next = 0i16;
        let mut expect = Vec::new();
        let mut got = Vec::new();
        // Interleave placing and draining so the head walks around the ring, and grow
        // past the first capacity midway.
        for step in 0..40 {
            let burst = if step == 20 { 3000 } else { 160 };
            let base = p.len();
            p.ensure_len(base + burst);
            let run: Vec<i16> = (0..burst).map(|k| next.wrapping_add(k as i16)).collect();
            next = next.wrapping_add(burst as i16);
            assert_eq!(p.place(base, &run), (burst as u64, 0));
            expect.extend_from_slice(&run);
            let n = p.len().min(150 + step);
            got.extend(drain(&mut p, n));
        }
        let rest = p.len();
        got.extend(drain(&mut p, rest));
        assert_eq!(got, expect);
        // Every slot is clear again: placing anywhere counts as a first arrival.
        p.ensure_len(2000);
        assert_eq!(p.place(0, &vec![1; 2000]), (2000, 0));
    }

    #[test]
    fn discarding_and_interleaved_output() {
        let mut p = PendingSamples::default();
        p.ensure_len(4);
        p.place(0, &[1, 2, 3, 4]);
        p.take_front(2, None);
        let mut out = vec![-1; 6];
        p.take_front(3, Some((&mut out, 0)));
        assert_eq!(out, vec![3, -1, 4, -1, 0, -1]);
    }

    #[test]
    fn clear_bits_spans_words() {
        let mut w = vec![u64::MAX; 3];
        clear_bits(&mut w, 3..130);
        assert_eq!(w, vec![0b111, 0, u64::MAX << 2]);
    }
}

//! Speaker clustering by a neural speaker-embedding model, used instead of the Gaussian
//! statistics when one is configured ([`SpeakerEmbedder`], e.g. an ONNX network).
//!
//! - [`EmbeddingCollector`] embeds the channel's audio as it streams past, in overlapping
//!   windows (1.5 s every 0.75 s by default; windows too quiet to hold speech are skipped),
//!   so the audio itself is never kept: a 60-minute call keeps ≈ 4 800 vectors.
//! - [`labels`] gives each speech piece the length-weighted mean of the windows it overlaps,
//!   reduces long calls by merging the most similar neighbours, then clusters the pieces
//!   agglomeratively by cosine similarity of their centroids, stopping below
//!   `embedding_threshold` (or at the configured speaker counts).

use std::fmt;
use std::sync::Arc;

use super::SpeakerEmbedder;

/// Sample rate the embedder is fed.
const RATE: u64 = 16_000;
/// Pieces entering the O(n²) agglomerative step.
const MAX_PIECES: usize = 250;

/// A shared handle to a configured embedder; compares by identity so that option structs
/// holding one stay comparable.
#[derive(Clone)]
pub struct EmbedderRef(pub Arc<dyn SpeakerEmbedder>);

impl fmt::Debug for EmbedderRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmbedderRef({})", self.0.name())
    }
}

// A panic inside a model leaves at worst a poisoned lock, which the embedders report as an
// error; option structs holding the handle stay usable across `catch_unwind`.
impl std::panic::UnwindSafe for EmbedderRef {}
impl std::panic::RefUnwindSafe for EmbedderRef {}

impl PartialEq for EmbedderRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Windowing of the embedding stream.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingWindows {
    pub window_ms: u64,
    pub hop_ms: u64,
    /// Windows whose level (RMS, dB full scale) is below this are not embedded.
    pub min_level_db: f32,
}

impl Default for EmbeddingWindows {
    fn default() -> Self {
        Self {
            window_ms: 1_500,
            hop_ms: 750,
            min_level_db: -55.0,
        }
    }
}

/// One embedded window, on the recording's timeline; `vector` has unit length.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowEmbedding {
    pub start_ms: u64,
    pub end_ms: u64,
    pub vector: Vec<f32>,
}

/// What the collector produced: the vectors, or why the model could not be used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Embeddings {
    pub windows: Vec<WindowEmbedding>,
    /// The first error the model gave; collection stops there and the diarizer falls back
    /// to its Gaussian clustering.
    pub error: Option<String>,
}

/// Streams 16 kHz mono audio through the embedder window by window.
pub struct EmbeddingCollector {
    embedder: EmbedderRef,
    window: usize,
    hop: usize,
    min_mean_square: f32,
    /// Audio not yet consumed; starts at sample `offset` of the recording.
    pending: Vec<f32>,
    offset: u64,
    out: Embeddings,
}

impl EmbeddingCollector {
    pub fn new(embedder: EmbedderRef, windows: &EmbeddingWindows) -> Self {
        let window = ((windows.window_ms * RATE / 1000) as usize).max(1);
        let hop = ((windows.hop_ms * RATE / 1000) as usize).clamp(1, window);
        Self {
            embedder,
            window,
            hop,
            min_mean_square: 10f32.powf(windows.min_level_db / 10.0),
            pending: Vec::with_capacity(window * 2),
            offset: 0,
            out: Embeddings::default(),
        }
    }

    pub fn push(&mut self, samples: &[f32]) {
        self.pending.extend_from_slice(samples);
        let mut start = 0;
        while self.pending.len() - start >= self.window {
            let end = start + self.window;
            self.embed_span(start, end);
            start += self.hop;
        }
        self.pending.drain(..start);
        self.offset += start as u64;
    }

    /// Embeds the tail when it is at least half a window, and returns everything.
    pub fn finish(mut self) -> Embeddings {
        if self.pending.len() >= self.window / 2 && self.pending.len() < self.window {
            self.embed_span(0, self.pending.len());
        }
        self.out
    }

    fn embed_span(&mut self, start: usize, end: usize) {
        if self.out.error.is_some() {
            return;
        }
        let audio = &self.pending[start..end];
        let mean_square = audio.iter().map(|x| x * x).sum::<f32>() / audio.len().max(1) as f32;
        if mean_square < self.min_mean_square {
            return;
        }
        match self.embedder.0.embed(audio) {
            Ok(vector) => {
                let Some(vector) = unit(vector) else {
                    return;
                };
                let ms = |sample: u64| sample * 1000 / RATE;
                self.out.windows.push(WindowEmbedding {
                    start_ms: ms(self.offset + start as u64),
                    end_ms: ms(self.offset + end as u64),
                    vector,
                });
            }
            Err(e) => {
                tracing::warn!(model = self.embedder.0.name(), error = %e,
                    "speaker-embedding model failed; diarizing by voice statistics instead");
                self.out.error = Some(e.to_string());
            }
        }
    }
}

/// `v` scaled to unit length; `None` for a zero or non-finite vector.
fn unit(mut v: Vec<f32>) -> Option<Vec<f32>> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm <= f32::EPSILON {
        return None;
    }
    for x in v.iter_mut() {
        *x /= norm;
    }
    Some(v)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A run of pieces with the (unnormalised) length-weighted sum of their window vectors.
struct Group {
    pieces: Vec<usize>,
    sum: Vec<f32>,
    centroid: Vec<f32>,
}

impl Group {
    fn new(piece: usize, sum: Vec<f32>) -> Self {
        let centroid = unit(sum.clone()).unwrap_or_else(|| vec![0.0; sum.len()]);
        Self {
            pieces: vec![piece],
            sum,
            centroid,
        }
    }

    fn absorb(&mut self, other: Group) {
        self.pieces.extend(other.pieces);
        for (s, o) in self.sum.iter_mut().zip(&other.sum) {
            *s += o;
        }
        self.centroid = unit(self.sum.clone()).unwrap_or_else(|| vec![0.0; self.sum.len()]);
    }

    fn similarity(&self, other: &Group) -> f32 {
        dot(&self.centroid, &other.centroid)
    }
}

/// The summed window vectors over `[start_ms, end_ms)`, weighted by overlap; the nearest
/// window's vector when none overlaps.
fn piece_vector(windows: &[WindowEmbedding], start_ms: u64, end_ms: u64) -> Vec<f32> {
    let dims = windows.first().map_or(0, |w| w.vector.len());
    let mut sum = vec![0f32; dims];
    let mut any = false;
    for w in windows {
        let overlap = w
            .end_ms
            .min(end_ms)
            .saturating_sub(w.start_ms.max(start_ms));
        if overlap > 0 {
            any = true;
            for (s, x) in sum.iter_mut().zip(&w.vector) {
                *s += overlap as f32 * x;
            }
        }
    }
    if !any {
        let mid = start_ms / 2 + end_ms / 2;
        if let Some(w) = windows
            .iter()
            .min_by_key(|w| (w.start_ms / 2 + w.end_ms / 2).abs_diff(mid))
        {
            let weight = end_ms.saturating_sub(start_ms).max(1) as f32;
            for (s, x) in sum.iter_mut().zip(&w.vector) {
                *s += weight * x;
            }
        }
    }
    sum
}

/// Cluster the speech `pieces` (time spans, in order) by their embeddings; returns a cluster
/// index per piece. `None` when there is nothing to cluster with (no windows).
pub fn labels(
    pieces: &[(u64, u64)],
    windows: &[WindowEmbedding],
    threshold: f32,
    min_speakers: usize,
    max_speakers: usize,
) -> Option<Vec<usize>> {
    if windows.is_empty() || pieces.is_empty() {
        return None;
    }
    let mut groups: Vec<Group> = pieces
        .iter()
        .enumerate()
        .map(|(i, &(s, e))| Group::new(i, piece_vector(windows, s, e)))
        .collect();

    // Long calls: merge the most similar neighbours until few enough remain.
    while groups.len() > MAX_PIECES {
        let Some(best) = (0..groups.len() - 1).max_by(|&a, &b| {
            groups[a]
                .similarity(&groups[a + 1])
                .total_cmp(&groups[b].similarity(&groups[b + 1]))
        }) else {
            break;
        };
        let right = groups.remove(best + 1);
        groups[best].absorb(right);
    }

    let min = min_speakers.clamp(1, 16);
    let max = max_speakers.clamp(min, 16);
    while groups.len() > min {
        let mut best = (f32::NEG_INFINITY, 0, 0);
        for i in 0..groups.len() {
            for j in i + 1..groups.len() {
                let s = groups[i].similarity(&groups[j]);
                if s > best.0 {
                    best = (s, i, j);
                }
            }
        }
        let (s, i, j) = best;
        if s < threshold && groups.len() <= max {
            break;
        }
        let absorbed = groups.remove(j);
        groups[i].absorb(absorbed);
    }

    let mut out = vec![0usize; pieces.len()];
    for (k, g) in groups.iter().enumerate() {
        for &p in &g.pieces {
            out[p] = k;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start_ms: u64, v: &[f32]) -> WindowEmbedding {
        WindowEmbedding {
            start_ms,
            end_ms: start_ms + 1_500,
            vector: unit(v.to_vec()).unwrap(),
        }
    }

    #[test]
    fn pieces_follow_the_windows_they_overlap() {
        let windows = [
            window(0, &[1.0, 0.0]),
            window(1_500, &[1.0, 0.1]),
            window(3_000, &[0.0, 1.0]),
            window(4_500, &[0.1, 1.0]),
            window(6_000, &[1.0, 0.05]),
        ];
        let pieces = [
            (0, 1_500),
            (1_500, 3_000),
            (3_000, 4_500),
            (4_500, 6_000),
            (6_000, 7_500),
        ];
        let l = labels(&pieces, &windows, 0.5, 1, 6).unwrap();
        assert_eq!(l[0], l[1]);
        assert_eq!(l[0], l[4]);
        assert_eq!(l[2], l[3]);
        assert_ne!(l[0], l[2]);
    }

    #[test]
    fn speaker_bounds_override_the_threshold() {
        let windows = [window(0, &[1.0, 0.0]), window(1_500, &[0.0, 1.0])];
        let pieces = [(0, 1_500), (1_500, 3_000)];
        assert_eq!(labels(&pieces, &windows, 0.5, 1, 1).unwrap(), vec![0, 0]);
        assert_eq!(labels(&pieces, &windows, -2.0, 2, 6).unwrap(), vec![0, 1]);
        assert_eq!(labels(&pieces, &[], 0.5, 1, 6), None);
    }

    #[test]
    fn a_piece_without_a_window_takes_the_nearest() {
        let windows = [window(0, &[1.0, 0.0]), window(10_000, &[0.0, 1.0])];
        let pieces = [(0, 1_000), (9_000, 9_500), (10_000, 11_000)];
        let l = labels(&pieces, &windows, 0.5, 1, 6).unwrap();
        assert_eq!(l[1], l[2]);
        assert_ne!(l[0], l[1]);
    }

    struct Loudness;
    impl SpeakerEmbedder for Loudness {
        fn name(&self) -> &str {
            "test:loudness"
        }
        fn dimension(&self) -> usize {
            2
        }
        fn embed(&self, audio: &[f32]) -> crate::types::Result<Vec<f32>> {
            let peak = audio.iter().fold(0f32, |m, x| m.max(x.abs()));
            if peak > 0.9 {
                return Err(crate::types::TranscriptionError::Model("too loud".into()));
            }
            Ok(vec![peak, 1.0 - peak])
        }
    }

    #[test]
    fn the_collector_windows_the_stream_skips_silence_and_stops_at_an_error() {
        let embedder = EmbedderRef(Arc::new(Loudness));
        let mut c = EmbeddingCollector::new(embedder.clone(), &EmbeddingWindows::default());
        // 3 s of tone at 0.5, 3 s of silence, pushed in odd-sized chunks.
        let mut audio: Vec<f32> = (0..48_000).map(|n| 0.5 * (n as f32 * 0.1).sin()).collect();
        audio.extend(std::iter::repeat_n(0.0, 48_000));
        for chunk in audio.chunks(1_234) {
            c.push(chunk);
        }
        let out = c.finish();
        assert_eq!(out.error, None);
        let starts: Vec<u64> = out.windows.iter().map(|w| w.start_ms).collect();
        // Windows from 0 to 2250 ms hold some tone; from 3000 ms on only silence.
        assert_eq!(starts, vec![0, 750, 1_500, 2_250]);
        assert!(out.windows.iter().all(|w| w.end_ms == w.start_ms + 1_500));

        let mut c = EmbeddingCollector::new(embedder, &EmbeddingWindows::default());
        c.push(&vec![0.95; 48_000]);
        let out = c.finish();
        assert!(out.windows.is_empty());
        assert_eq!(out.error.as_deref(), Some("ASR model error: too loud"));
    }
}

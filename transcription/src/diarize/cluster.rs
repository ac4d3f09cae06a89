//! Speech selection, feature normalisation, change detection + agglomerative clustering, and
//! turning frame labels back into timed turns.

use super::embedded::{self, WindowEmbedding};
use super::features::{DIMS, Features};
use super::gaussian::{GaussStats, delta_bic};
use super::{DiarizeParams, SpeakerTurn};

/// Frame duration in ms (the feature hop).
const FRAME_MS: u64 = 16;
/// Energy speech: dips shorter than this inside speech are filled, bursts shorter are dropped.
const ENERGY_FILL_FRAMES: usize = 12;
const ENERGY_MIN_FRAMES: usize = 12;
/// Frames quieter than this are never speech (digital silence, dither).
const ABSOLUTE_FLOOR_DB: f32 = -90.0;
/// Pieces separated by more than this are not merged by change detection.
const MAX_LINEAR_GAP_FRAMES: usize = 125;
/// A new piece starts after a pause of this many frames.
const PIECE_BREAK_FRAMES: usize = 20;
/// Segments entering the agglomerative step (O(n²) pairs): long calls are first reduced by
/// merging the most similar adjacent segments.
const MAX_SEGMENTS: usize = 250;

/// Indices of the frames to cluster: inside a VAD utterance, or well above the noise floor.
pub fn speech_frames(features: &Features, utterances: &[(u64, u64)], margin_db: f32) -> Vec<usize> {
    let n = features.frames();
    let mut speech = vec![false; n];
    for &(s, e) in utterances {
        let a = Features::frame_at_ms(s).min(n);
        let b = Features::frame_at_ms(e).min(n);
        for slot in speech.get_mut(a..b).unwrap_or(&mut []) {
            *slot = true;
        }
    }
    let mut levels: Vec<f32> = features
        .level_db
        .iter()
        .copied()
        .filter(|l| *l > ABSOLUTE_FLOOR_DB)
        .collect();
    if !levels.is_empty() {
        levels.sort_by(f32::total_cmp);
        let floor = levels
            .get(levels.len() / 10)
            .copied()
            .unwrap_or(ABSOLUTE_FLOOR_DB);
        let threshold = (floor + margin_db).max(ABSOLUTE_FLOOR_DB);
        let mut loud: Vec<bool> = features.level_db.iter().map(|l| *l >= threshold).collect();
        fill_short_runs(&mut loud, false, ENERGY_FILL_FRAMES);
        fill_short_runs(&mut loud, true, ENERGY_MIN_FRAMES);
        for (s, l) in speech.iter_mut().zip(&loud) {
            *s |= *l;
        }
    }
    speech
        .iter()
        .enumerate()
        .filter_map(|(i, &s)| s.then_some(i))
        .collect()
}

/// Flip interior runs of `value` shorter than `min_len` (runs touching the ends stay).
fn fill_short_runs(v: &mut [bool], value: bool, min_len: usize) {
    let n = v.len();
    let mut i = 0;
    while i < n {
        if v[i] != value {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && v[i] == value {
            i += 1;
        }
        if start > 0 && i < n && i - start < min_len {
            for x in &mut v[start..i] {
                *x = !value;
            }
        }
    }
}

/// The speech frames' features, mean- and variance-normalised over the speech (removes the
/// channel: microphone, codec, line).
pub fn normalise(features: &Features, speech: &[usize]) -> Vec<f32> {
    let mut mean = [0f64; DIMS];
    let mut sq = [0f64; DIMS];
    for &i in speech {
        for (d, &x) in features.frame(i).iter().enumerate() {
            mean[d] += f64::from(x);
            sq[d] += f64::from(x) * f64::from(x);
        }
    }
    let n = speech.len().max(1) as f64;
    let mut scale = [1f32; DIMS];
    let mut shift = [0f32; DIMS];
    for d in 0..DIMS {
        let m = mean[d] / n;
        let var = (sq[d] / n - m * m).max(1e-6);
        shift[d] = m as f32;
        scale[d] = (1.0 / var.sqrt()) as f32;
    }
    let mut out = Vec::with_capacity(speech.len() * DIMS);
    for &i in speech {
        let frame = features.frame(i);
        for d in 0..DIMS {
            out.push((frame.get(d).copied().unwrap_or(0.0) - shift[d]) * scale[d]);
        }
    }
    out
}

fn row(x: &[f32], t: usize) -> &[f32] {
    x.get(t * DIMS..(t + 1) * DIMS).unwrap_or(&[])
}

/// A run of speech frames [a, b) (indices into the speech list) with its statistics.
struct Segment {
    a: usize,
    b: usize,
    stats: GaussStats,
    log_det: f64,
}

impl Segment {
    fn new(x: &[f32], a: usize, b: usize) -> Self {
        let mut stats = GaussStats::default();
        for t in a..b {
            stats.add(row(x, t));
        }
        let log_det = stats.log_det();
        Self {
            a,
            b,
            stats,
            log_det,
        }
    }

    fn absorb(&mut self, other: &Segment) {
        self.a = self.a.min(other.a);
        self.b = self.b.max(other.b);
        self.stats.absorb(&other.stats);
        self.log_det = self.stats.log_det();
    }
}

/// Speaker label per speech frame after change detection and agglomerative clustering.
pub fn initial_labels(x: &[f32], speech: &[usize], params: &DiarizeParams) -> Vec<usize> {
    let n = speech.len();
    // 1. Pieces: cut at pauses and every `piece_ms`.
    let bounds = pieces(speech, params);

    // 2. Change detection: merge adjacent pieces while one Gaussian fits both better.
    let mut segments: Vec<Segment> = Vec::new();
    for (a, b) in bounds {
        let next = Segment::new(x, a, b);
        match segments.last_mut() {
            Some(cur)
                if speech[a] - speech[cur.b - 1] <= MAX_LINEAR_GAP_FRAMES
                    && delta_bic(
                        &cur.stats,
                        cur.log_det,
                        &next.stats,
                        next.log_det,
                        params.change_lambda,
                    ) < 0.0 =>
            {
                cur.absorb(&next)
            }
            _ => segments.push(next),
        }
    }

    // 3. Bound the agglomerative step's cost on long recordings: merge the most alike
    //    adjacent pair until few enough remain. The pair scores are cached (`adjacent[i]`
    //    scores segments i and i + 1), so each merge recomputes only its two neighbours.
    let adjacent_bic = |l: &Segment, r: &Segment| {
        delta_bic(
            &l.stats,
            l.log_det,
            &r.stats,
            r.log_det,
            params.change_lambda,
        )
    };
    if segments.len() > MAX_SEGMENTS {
        let mut adjacent: Vec<f64> = segments
            .windows(2)
            .map(|w| adjacent_bic(&w[0], &w[1]))
            .collect();
        while segments.len() > MAX_SEGMENTS {
            let Some(best) = adjacent
                .iter()
                .enumerate()
                .min_by(|p, q| p.1.total_cmp(q.1))
                .map(|p| p.0)
            else {
                break;
            };
            let right = segments.remove(best + 1);
            segments[best].absorb(&right);
            adjacent.remove(best);
            if best > 0 {
                adjacent[best - 1] = adjacent_bic(&segments[best - 1], &segments[best]);
            }
            if best + 1 < segments.len() {
                adjacent[best] = adjacent_bic(&segments[best], &segments[best + 1]);
            }
        }
    }

    // 4. Agglomerative clustering with a BIC stop, within [min, max] speakers.
    let clusters = agglomerate(&segments, params);
    let mut labels = vec![0usize; n];
    for (k, members) in clusters.iter().enumerate() {
        for &s in members {
            let seg = &segments[s];
            for l in labels.get_mut(seg.a..seg.b).unwrap_or(&mut []) {
                *l = k;
            }
        }
    }
    labels
}

/// Speech cut into pieces (index ranges into `speech`) at pauses and every `piece_ms`; a
/// short remainder joins its piece.
fn pieces(speech: &[usize], params: &DiarizeParams) -> Vec<(usize, usize)> {
    let n = speech.len();
    let piece = ((params.piece_ms / FRAME_MS) as usize).max(8);
    let mut bounds: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for t in 1..=n {
        let pause = t == n || speech[t] - speech[t - 1] > PIECE_BREAK_FRAMES;
        if pause || t - start >= piece {
            match bounds.last_mut() {
                Some(last)
                    if last.1 == start && t - start < piece / 2 && !pause_before(speech, start) =>
                {
                    last.1 = t
                }
                _ => bounds.push((start, t)),
            }
            start = t;
        }
    }
    bounds
}

/// Speaker label per speech frame from a speaker-embedding model's windows: the same pieces
/// as [`initial_labels`], clustered by [`embedded::labels`]. `None` without windows.
pub fn embedding_labels(
    speech: &[usize],
    windows: &[WindowEmbedding],
    params: &DiarizeParams,
) -> Option<Vec<usize>> {
    let bounds = pieces(speech, params);
    let spans: Vec<(u64, u64)> = bounds
        .iter()
        .map(|&(a, b)| {
            (
                Features::frame_start_ms(speech[a]),
                Features::frame_start_ms(speech[b - 1]) + FRAME_MS,
            )
        })
        .collect();
    let piece_labels = embedded::labels(
        &spans,
        windows,
        params.embedding_threshold,
        params.min_speakers,
        params.max_speakers,
    )?;
    let mut labels = vec![0usize; speech.len()];
    for (&(a, b), &k) in bounds.iter().zip(&piece_labels) {
        for l in labels.get_mut(a..b).unwrap_or(&mut []) {
            *l = k;
        }
    }
    Some(labels)
}

fn pause_before(speech: &[usize], t: usize) -> bool {
    t > 0 && speech[t] - speech[t - 1] > PIECE_BREAK_FRAMES
}

/// Cluster segments; returns the member segment indices of each cluster.
fn agglomerate(segments: &[Segment], params: &DiarizeParams) -> Vec<Vec<usize>> {
    struct Cluster {
        members: Vec<usize>,
        stats: GaussStats,
        log_det: f64,
    }
    let mut clusters: Vec<Cluster> = segments
        .iter()
        .enumerate()
        .map(|(i, s)| Cluster {
            members: vec![i],
            stats: s.stats.clone(),
            log_det: s.log_det,
        })
        .collect();
    // At most 16 speakers: the Viterbi keeps its back-pointers in bytes.
    let min = params.min_speakers.clamp(1, 16);
    let max = params.max_speakers.clamp(min, 16);
    let bic = |a: &Cluster, b: &Cluster| {
        delta_bic(
            &a.stats,
            a.log_det,
            &b.stats,
            b.log_det,
            params.cluster_lambda,
        )
    };
    let mut dist: Vec<Vec<f64>> = clusters
        .iter()
        .map(|a| clusters.iter().map(|b| bic(a, b)).collect())
        .collect();
    while clusters.len() > min {
        let mut best = (f64::INFINITY, 0usize, 0usize);
        for (i, row) in dist.iter().enumerate() {
            for (j, &d) in row.iter().enumerate().skip(i + 1) {
                if d < best.0 {
                    best = (d, i, j);
                }
            }
        }
        let (d, i, j) = best;
        if d >= 0.0 && clusters.len() <= max {
            break;
        }
        let absorbed = clusters.remove(j);
        dist.remove(j);
        for r in dist.iter_mut() {
            r.remove(j);
        }
        let c = &mut clusters[i];
        c.members.extend(absorbed.members);
        c.stats.absorb(&absorbed.stats);
        c.log_det = c.stats.log_det();
        for k in 0..clusters.len() {
            let v = if k == i {
                0.0
            } else {
                bic(&clusters[i], &clusters[k])
            };
            dist[i][k] = v;
            dist[k][i] = v;
        }
    }
    clusters.into_iter().map(|c| c.members).collect()
}

/// Runs of one label become turns; same-speaker speech with a pause shorter than
/// `bridge_gap_ms` is one turn.
pub fn turns(speech: &[usize], labels: &[usize], bridge_gap_ms: u64) -> Vec<SpeakerTurn> {
    let bridge = (bridge_gap_ms / FRAME_MS) as usize + 1;
    let mut out: Vec<SpeakerTurn> = Vec::new();
    let mut last_frame: Option<usize> = None;
    for (&f, &k) in speech.iter().zip(labels) {
        let start_ms = Features::frame_start_ms(f);
        let end_ms = start_ms + FRAME_MS;
        let contiguous = last_frame.is_some_and(|p| f - p <= bridge);
        match out.last_mut() {
            Some(t) if t.speaker == k && contiguous => t.end_ms = end_ms,
            _ => out.push(SpeakerTurn {
                speaker: k,
                start_ms,
                end_ms,
            }),
        }
        last_frame = Some(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_runs_are_filled_but_edges_stay() {
        let mut v = [true, false, false, true, true, false];
        fill_short_runs(&mut v, false, 3);
        assert_eq!(v, [true, true, true, true, true, false]);
    }

    #[test]
    fn turns_bridge_short_same_speaker_pauses_only() {
        // Frames 0..3 speaker 0, 10..12 speaker 0 (pause 7 frames = 112 ms), then 100 speaker 1.
        let speech = [0, 1, 2, 10, 11, 100];
        let labels = [0, 0, 0, 0, 0, 1];
        let t = turns(&speech, &labels, 200);
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!((t[0].start_ms, t[0].end_ms), (8, 11 * 16 + 24));
        assert_eq!(t[1].speaker, 1);
    }
}

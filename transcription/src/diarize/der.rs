//! Diarization error rate (DER), scored the NIST way: reference and hypothesis are speaker-
//! labelled time spans; a one-to-one speaker mapping maximising the time both agree on is
//! found (Hungarian algorithm); then over the scored time (everything but a collar around each
//! reference boundary)
//!
//! DER = (missed speech + false alarm + speaker confusion) / total reference speech,
//!
//! where overlapped reference speech counts once per speaker (overlap is scored). RTTM files
//! (`SPEAKER <uri> 1 <onset_s> <duration_s> <NA> <NA> <speaker> <NA> <NA>`) are read and
//! written here too.

use std::collections::BTreeMap;

/// One speaker-labelled span, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSpan {
    pub start_s: f64,
    pub end_s: f64,
    pub speaker: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RttmError {
    #[error("RTTM line {line}: {reason}")]
    BadLine { line: usize, reason: String },
}

/// Read the `SPEAKER` lines of an RTTM file (other record types and `;;` comments are ignored).
pub fn parse_rttm(text: &str) -> Result<Vec<LabelledSpan>, RttmError> {
    let mut spans = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(";;") {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() != Some(&"SPEAKER") {
            continue;
        }
        let bad = |reason: &str| RttmError::BadLine {
            line: i + 1,
            reason: reason.to_string(),
        };
        if fields.len() < 8 {
            return Err(bad("a SPEAKER line needs at least 8 fields"));
        }
        let number = |idx: usize, what: &str| -> Result<f64, RttmError> {
            fields
                .get(idx)
                .and_then(|f| f.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad(&format!("{what} is not a non-negative number")))
        };
        let onset = number(3, "onset")?;
        let duration = number(4, "duration")?;
        let speaker = fields.get(7).copied().unwrap_or_default().to_string();
        spans.push(LabelledSpan {
            start_s: onset,
            end_s: onset + duration,
            speaker,
        });
    }
    Ok(spans)
}

/// Write spans as RTTM `SPEAKER` lines for recording `uri`.
pub fn to_rttm(uri: &str, spans: &[LabelledSpan]) -> String {
    let mut out = String::new();
    for s in spans {
        let speaker: String = s.speaker.split_whitespace().collect::<Vec<_>>().join("_");
        out.push_str(&format!(
            "SPEAKER {uri} 1 {:.3} {:.3} <NA> <NA> {speaker} <NA> <NA>\n",
            s.start_s,
            (s.end_s - s.start_s).max(0.0)
        ));
    }
    out
}

/// The parts of a DER, in seconds of scored time.
#[derive(Debug, Clone, PartialEq)]
pub struct DerReport {
    /// Reference speech scored (overlaps count once per speaker).
    pub total_s: f64,
    pub missed_s: f64,
    pub false_alarm_s: f64,
    pub confusion_s: f64,
    /// (hypothesis speaker, reference speaker) pairs of the optimal mapping.
    pub mapping: Vec<(String, String)>,
}

impl DerReport {
    /// (missed + false alarm + confusion) / total; 0 when there is no reference speech and
    /// no hypothesis speech, 1 per second of false alarm otherwise (a convention: any output on
    /// an empty reference is all error).
    pub fn der(&self) -> f64 {
        let errors = self.missed_s + self.false_alarm_s + self.confusion_s;
        if self.total_s > 0.0 {
            errors / self.total_s
        } else if errors > 0.0 {
            1.0
        } else {
            0.0
        }
    }
}

/// Score `hypothesis` against `reference`. `collar_s` is removed on each side of every
/// reference boundary (0.25 → a 0.5 s no-score zone around each start and end).
pub fn score(reference: &[LabelledSpan], hypothesis: &[LabelledSpan], collar_s: f64) -> DerReport {
    let (ref_names, ref_spans) = index_speakers(reference);
    let (hyp_names, hyp_spans) = index_speakers(hypothesis);
    let collar = collar_s.max(0.0);

    // No-score zones, merged, sorted.
    let mut zones: Vec<(f64, f64)> = Vec::new();
    if collar > 0.0 {
        for &(s, e, _) in &ref_spans {
            zones.push((s - collar, s + collar));
            zones.push((e - collar, e + collar));
        }
    }
    let zones = merge_intervals(zones);

    let mut cuts: Vec<f64> = Vec::new();
    for &(s, e, _) in ref_spans.iter().chain(&hyp_spans) {
        cuts.push(s);
        cuts.push(e);
    }
    for &(s, e) in &zones {
        cuts.push(s);
        cuts.push(e);
    }
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();

    // Elementary intervals: within each, the set of active speakers is constant.
    struct Piece {
        dur: f64,
        refs: Vec<usize>,
        hyps: Vec<usize>,
    }
    let mut pieces = Vec::new();
    let mut co = vec![vec![0.0f64; hyp_names.len()]; ref_names.len()];
    let mut zone_idx = 0usize;
    for pair in cuts.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let mid = 0.5 * (a + b);
        while zones.get(zone_idx).is_some_and(|z| z.1 <= mid) {
            zone_idx += 1;
        }
        if zones.get(zone_idx).is_some_and(|z| z.0 <= mid && mid < z.1) {
            continue;
        }
        let active = |spans: &[(f64, f64, usize)], n: usize| {
            let mut on = vec![false; n];
            for &(s, e, k) in spans {
                if s <= mid
                    && mid < e
                    && let Some(slot) = on.get_mut(k)
                {
                    *slot = true;
                }
            }
            on.iter()
                .enumerate()
                .filter_map(|(k, &x)| x.then_some(k))
                .collect::<Vec<_>>()
        };
        let refs = active(&ref_spans, ref_names.len());
        let hyps = active(&hyp_spans, hyp_names.len());
        if refs.is_empty() && hyps.is_empty() {
            continue;
        }
        let dur = b - a;
        for &r in &refs {
            for &h in &hyps {
                co[r][h] += dur;
            }
        }
        pieces.push(Piece { dur, refs, hyps });
    }

    let assignment = max_weight_matching(&co, ref_names.len(), hyp_names.len());
    // hyp index -> ref index
    let mut hyp_to_ref = vec![None; hyp_names.len()];
    let mut mapping = Vec::new();
    for (r, h) in assignment {
        if co[r][h] > 0.0 {
            hyp_to_ref[h] = Some(r);
            mapping.push((hyp_names[h].clone(), ref_names[r].clone()));
        }
    }

    let mut report = DerReport {
        total_s: 0.0,
        missed_s: 0.0,
        false_alarm_s: 0.0,
        confusion_s: 0.0,
        mapping,
    };
    for p in &pieces {
        let n_ref = p.refs.len();
        let n_hyp = p.hyps.len();
        let correct = p
            .hyps
            .iter()
            .filter(|&&h| hyp_to_ref[h].is_some_and(|r| p.refs.contains(&r)))
            .count();
        report.total_s += p.dur * n_ref as f64;
        report.missed_s += p.dur * n_ref.saturating_sub(n_hyp) as f64;
        report.false_alarm_s += p.dur * n_hyp.saturating_sub(n_ref) as f64;
        report.confusion_s += p.dur * (n_ref.min(n_hyp) - correct.min(n_ref.min(n_hyp))) as f64;
    }
    report
}

/// Speaker names in order of first appearance, and spans as (start, end, speaker index) with
/// empty or reversed spans dropped.
fn index_speakers(spans: &[LabelledSpan]) -> (Vec<String>, Vec<(f64, f64, usize)>) {
    let mut names: Vec<String> = Vec::new();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for s in spans {
        if !(s.start_s.is_finite() && s.end_s.is_finite()) || s.end_s <= s.start_s {
            continue;
        }
        let k = *index.entry(s.speaker.as_str()).or_insert_with(|| {
            names.push(s.speaker.clone());
            names.len() - 1
        });
        out.push((s.start_s, s.end_s, k));
    }
    (names, out)
}

fn merge_intervals(mut v: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// One-to-one assignment of rows to columns maximising the summed weight (Hungarian
/// algorithm with potentials, on the square matrix padded with zeros). Returns (row, column)
/// pairs for real rows and columns only.
pub fn max_weight_matching(w: &[Vec<f64>], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    let n = rows.max(cols);
    if n == 0 {
        return Vec::new();
    }
    let max_w = w
        .iter()
        .flat_map(|r| r.iter().copied())
        .fold(0.0f64, f64::max);
    // Minimise cost = max_w - weight (padding cells cost max_w: weight 0).
    let cost = |i: usize, j: usize| -> f64 {
        max_w - w.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0.0)
    };
    // 1-based arrays as in the classical formulation; index 0 is the virtual column.
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; n + 1];
    let mut p = vec![0usize; n + 1]; // p[j] = row matched to column j
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=n {
                if used[j] {
                    continue;
                }
                let cur = cost(i0 - 1, j - 1) - u[i0] - v[j];
                if cur < minv[j] {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if minv[j] < delta {
                    delta = minv[j];
                    j1 = j;
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 || j1 == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    (1..=n)
        .filter_map(|j| {
            let i = p[j];
            (i >= 1 && i - 1 < rows && j - 1 < cols).then(|| (i - 1, j - 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start_s: f64, end_s: f64, speaker: &str) -> LabelledSpan {
        LabelledSpan {
            start_s,
            end_s,
            speaker: speaker.into(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn perfect_output_with_other_names_scores_zero() {
        let r = [span(0.0, 10.0, "A"), span(10.0, 20.0, "B")];
        let h = [span(0.0, 10.0, "y"), span(10.0, 20.0, "x")];
        let rep = score(&r, &h, 0.0);
        assert!(close(rep.total_s, 20.0));
        assert!(close(rep.der(), 0.0), "{rep:?}");
        assert!(rep.mapping.contains(&("y".into(), "A".into())));
    }

    #[test]
    fn confusion_is_the_time_given_to_the_wrong_speaker() {
        // x maps to A (8 s together); y's 2 s on A's speech are confusion: 2 / 10.
        let r = [span(0.0, 10.0, "A")];
        let h = [span(0.0, 8.0, "x"), span(8.0, 10.0, "y")];
        let rep = score(&r, &h, 0.0);
        assert!(close(rep.confusion_s, 2.0), "{rep:?}");
        assert!(close(rep.der(), 0.2));
    }

    #[test]
    fn late_start_and_late_end_are_miss_and_false_alarm() {
        let r = [span(0.0, 10.0, "A")];
        let h = [span(2.0, 12.0, "x")];
        let rep = score(&r, &h, 0.0);
        assert!(
            close(rep.missed_s, 2.0) && close(rep.false_alarm_s, 2.0),
            "{rep:?}"
        );
        assert!(close(rep.der(), 0.4));
    }

    #[test]
    fn the_collar_forgives_small_boundary_errors_and_shrinks_the_total() {
        // Scored: (0.25, 9.75) = 9.5 s; the 0.2 s late start lies in the collar.
        let r = [span(0.0, 10.0, "A")];
        let h = [span(0.2, 10.1, "x")];
        let rep = score(&r, &h, 0.25);
        assert!(close(rep.total_s, 9.5), "{rep:?}");
        assert!(close(rep.der(), 0.0));
        // A 1 s late start: 0.75 s of it is outside the collar.
        let rep = score(&r, &[span(1.0, 10.0, "x")], 0.25);
        assert!(close(rep.missed_s, 0.75), "{rep:?}");
        assert!(close(rep.der(), 0.75 / 9.5));
    }

    #[test]
    fn overlap_counts_each_reference_speaker() {
        // 0..5 A alone, 5..10 A and B: total 15; one hypothesis speaker misses B's 5 s.
        let r = [span(0.0, 10.0, "A"), span(5.0, 10.0, "B")];
        let h = [span(0.0, 10.0, "x")];
        let rep = score(&r, &h, 0.0);
        assert!(close(rep.total_s, 15.0));
        assert!(
            close(rep.missed_s, 5.0) && close(rep.confusion_s, 0.0),
            "{rep:?}"
        );
        assert!(close(rep.der(), 1.0 / 3.0));
    }

    #[test]
    fn mapping_is_optimal_not_greedy() {
        // Greedy by largest overlap would pair x with A (5 s), then y with B (1 s): 6 s right.
        // The optimum pairs x with B (4 s) and y with A (4 s): 8 s right, 2 s confusion of 10.
        let r = [span(0.0, 5.0, "A"), span(5.0, 10.0, "B")];
        let h = [
            span(0.0, 1.0, "x"),
            span(1.0, 5.0, "y"),
            span(5.0, 9.0, "x"),
            span(9.0, 10.0, "y"),
        ];
        let rep = score(&r, &h, 0.0);
        assert!(close(rep.confusion_s, 2.0), "{rep:?}");
        assert!(close(rep.der(), 0.2));
    }

    #[test]
    fn more_reference_speakers_than_hypothesis_speakers() {
        // x covers A and B (4 s each), y covers C: x maps to one of A/B, the other's 4 s are
        // confusion: 4 / 10.
        let r = [
            span(0.0, 4.0, "A"),
            span(4.0, 8.0, "B"),
            span(8.0, 10.0, "C"),
        ];
        let h = [span(0.0, 8.0, "x"), span(8.0, 10.0, "y")];
        let rep = score(&r, &h, 0.0);
        assert!(close(rep.der(), 0.4), "{rep:?}");
    }

    #[test]
    fn rttm_round_trip_and_errors() {
        let text = ";; comment\nSPEAKER dev 1 1.440 11.872 <NA> <NA> MEE009 <NA> <NA>\n\
                    SPEAKER dev 1 13.152 3.770 <NA> <NA> MEE012 <NA> <NA>\n";
        let spans = parse_rttm(text).expect("parse");
        assert_eq!(spans.len(), 2);
        assert!(close(spans[0].end_s, 13.312));
        assert_eq!(spans[1].speaker, "MEE012");
        let again = parse_rttm(&to_rttm("dev", &spans)).expect("reparse");
        assert_eq!(again.len(), 2);
        assert!(close(again[1].start_s, 13.152));
        assert!(matches!(
            parse_rttm("SPEAKER dev 1 x 1 <NA> <NA> A <NA> <NA>"),
            Err(RttmError::BadLine { line: 1, .. })
        ));
        assert!(parse_rttm("SPEAKER dev 1").is_err());
        assert!(parse_rttm("SPEAKER dev 1 -1 2 <NA> <NA> A").is_err());
    }

    #[test]
    fn empty_inputs() {
        assert!(close(score(&[], &[], 0.25).der(), 0.0));
        assert!(close(score(&[], &[span(0.0, 1.0, "x")], 0.25).der(), 1.0));
        assert!(close(score(&[span(0.0, 2.0, "A")], &[], 0.0).der(), 1.0));
    }
}

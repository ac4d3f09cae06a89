//! Per-turn scores rolled up per role, per quarter of the call and per call.
//!
//! All aggregates are weighted by speaking time (a 20 s complaint outweighs a 1 s "ok");
//! turns without text are skipped (there is nothing to score), and a zero-length turn with
//! text weighs as 1 ms so that a call of zero-length turns still has a sentiment.

use serde::{Deserialize, Serialize};

use super::{SentimentAnalyser, SentimentError, label_for};
use crate::types::{Role, SentimentLabel, SentimentScore, TimeSpan, Turn};

/// |end − start| below this is a steady trend.
pub const TREND_STEADY_BAND: f32 = 0.2;
/// Share of weighted time that positive turns and negative turns must each reach for an
/// aggregate to be mixed.
const MIXED_SHARE: f32 = 0.25;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnSentiment {
    pub turn: usize,
    pub role: Role,
    pub start_ms: u64,
    pub end_ms: u64,
    pub sentiment: SentimentScore,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleSentiment {
    pub role: Role,
    /// Turns with text that were scored.
    pub turns: usize,
    pub sentiment: SentimentScore,
}

/// One quarter of the call: the sentiment timeline's point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarterSentiment {
    /// 1…4.
    pub quarter: u8,
    pub span: TimeSpan,
    /// All speech in the quarter; `None` when nobody scored speaks in it.
    pub overall: Option<SentimentScore>,
    pub per_role: Vec<RoleSentiment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrendDirection {
    Improving,
    Steady,
    Declining,
}

/// How a role's sentiment moved: its first third of turns against its last third
/// (at least one turn each; with a single turn start equals end).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SentimentTrend {
    pub start: f32,
    pub end: f32,
    pub delta: f32,
    pub direction: TrendDirection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallSentiment {
    pub analyser: String,
    pub turns: Vec<TurnSentiment>,
    pub per_role: Vec<RoleSentiment>,
    /// Four quarters of `[0, call duration]`; empty for a zero-length call.
    pub timeline: Vec<QuarterSentiment>,
    pub overall: Option<SentimentScore>,
    pub customer_trend: Option<SentimentTrend>,
}

/// Scores every turn with text and aggregates. `call_duration_ms` is the recording's length
/// when known (the call is never shorter than its last turn).
pub fn analyse_call(
    analyser: &dyn SentimentAnalyser,
    turns: &[Turn],
    call_duration_ms: Option<u64>,
) -> Result<CallSentiment, SentimentError> {
    let scored: Vec<&Turn> = turns.iter().filter(|t| !t.text.trim().is_empty()).collect();
    let texts: Vec<&str> = scored.iter().map(|t| t.text.as_str()).collect();
    let scores = analyser.analyse_batch(&texts)?;
    if scores.len() != scored.len() {
        return Err(SentimentError::CountMismatch {
            scores: scores.len(),
            turns: scored.len(),
        });
    }
    let per_turn: Vec<TurnSentiment> = scored
        .iter()
        .zip(scores)
        .map(|(t, s)| TurnSentiment {
            turn: t.index,
            role: t.role,
            start_ms: t.start_ms,
            end_ms: t.end_ms.max(t.start_ms),
            sentiment: SentimentScore {
                score: sanitise(s.score),
                label: s.label,
            },
        })
        .collect();
    let duration = call_duration_ms.unwrap_or(0).max(
        turns
            .iter()
            .map(|t| t.end_ms.max(t.start_ms))
            .max()
            .unwrap_or(0),
    );
    Ok(aggregate(analyser.name(), per_turn, duration))
}

/// A model could return NaN or a value out of range; keep the contract of [-1, 1].
fn sanitise(score: f32) -> f32 {
    if score.is_finite() {
        score.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

/// Aggregates per-turn scores (sorted here by start time) over a call of `duration_ms`.
pub fn aggregate(analyser: &str, mut turns: Vec<TurnSentiment>, duration_ms: u64) -> CallSentiment {
    turns.sort_by_key(|t| (t.start_ms, t.turn));
    let whole = |t: &TurnSentiment| t.end_ms.saturating_sub(t.start_ms).max(1);
    let roles = roles_present(&turns);
    let per_role = roles
        .iter()
        .filter_map(|&role| {
            let weighted: Vec<(f32, SentimentLabel, u64)> = turns
                .iter()
                .filter(|t| t.role == role)
                .map(|t| (t.sentiment.score, t.sentiment.label, whole(t)))
                .collect();
            weighted_score(&weighted).map(|sentiment| RoleSentiment {
                role,
                turns: weighted.len(),
                sentiment,
            })
        })
        .collect();
    let all: Vec<(f32, SentimentLabel, u64)> = turns
        .iter()
        .map(|t| (t.sentiment.score, t.sentiment.label, whole(t)))
        .collect();
    let timeline = if duration_ms == 0 {
        Vec::new()
    } else {
        quarters(&turns, &roles, duration_ms)
    };
    let customer: Vec<&TurnSentiment> = turns.iter().filter(|t| t.role == Role::Customer).collect();
    CallSentiment {
        analyser: analyser.to_string(),
        overall: weighted_score(&all),
        per_role,
        timeline,
        customer_trend: trend(&customer),
        turns,
    }
}

fn roles_present(turns: &[TurnSentiment]) -> Vec<Role> {
    let mut roles: Vec<Role> = turns.iter().map(|t| t.role).collect();
    roles.sort();
    roles.dedup();
    roles
}

/// Duration-weighted mean score; the label is mixed when clearly positive and clearly
/// negative turns each hold at least a quarter of the weight.
fn weighted_score(items: &[(f32, SentimentLabel, u64)]) -> Option<SentimentScore> {
    let total: u64 = items.iter().map(|(_, _, w)| w).sum();
    if total == 0 {
        return None;
    }
    let mean = items
        .iter()
        .map(|(s, _, w)| *s as f64 * *w as f64)
        .sum::<f64>()
        / total as f64;
    let share = |label: SentimentLabel| {
        items
            .iter()
            .filter(|(_, l, _)| *l == label)
            .map(|(_, _, w)| w)
            .sum::<u64>() as f32
            / total as f32
    };
    let score = mean as f32;
    let label = if share(SentimentLabel::Positive) >= MIXED_SHARE
        && share(SentimentLabel::Negative) >= MIXED_SHARE
    {
        SentimentLabel::Mixed
    } else {
        label_for(score)
    };
    Some(SentimentScore { score, label })
}

/// Each turn counts in a quarter by the time it overlaps it (a turn across a boundary
/// counts in both).
fn quarters(turns: &[TurnSentiment], roles: &[Role], duration_ms: u64) -> Vec<QuarterSentiment> {
    (0..4u64)
        .map(|q| {
            let at = |k: u64| (duration_ms as u128 * k as u128 / 4) as u64;
            let span = TimeSpan {
                start_ms: at(q),
                end_ms: at(q + 1),
            };
            let in_span = |t: &TurnSentiment| -> Option<(f32, SentimentLabel, u64)> {
                let overlap = t
                    .end_ms
                    .min(span.end_ms)
                    .saturating_sub(t.start_ms.max(span.start_ms));
                // A zero-length turn counts where it sits.
                let point = t.end_ms == t.start_ms
                    && t.start_ms >= span.start_ms
                    && (t.start_ms < span.end_ms || (q == 3 && t.start_ms == span.end_ms));
                (overlap > 0 || point).then_some((
                    t.sentiment.score,
                    t.sentiment.label,
                    overlap.max(1),
                ))
            };
            let all: Vec<_> = turns.iter().filter_map(in_span).collect();
            let per_role = roles
                .iter()
                .filter_map(|&role| {
                    let mine: Vec<_> = turns
                        .iter()
                        .filter(|t| t.role == role)
                        .filter_map(in_span)
                        .collect();
                    weighted_score(&mine).map(|sentiment| RoleSentiment {
                        role,
                        turns: mine.len(),
                        sentiment,
                    })
                })
                .collect();
            QuarterSentiment {
                quarter: q as u8 + 1,
                span,
                overall: weighted_score(&all),
                per_role,
            }
        })
        .collect()
}

fn trend(turns: &[&TurnSentiment]) -> Option<SentimentTrend> {
    if turns.is_empty() {
        return None;
    }
    let n = turns.len().div_ceil(3);
    let mean = |part: &[&TurnSentiment]| {
        let items: Vec<_> = part
            .iter()
            .map(|t| {
                (
                    t.sentiment.score,
                    t.sentiment.label,
                    t.end_ms.saturating_sub(t.start_ms).max(1),
                )
            })
            .collect();
        weighted_score(&items).map(|s| s.score).unwrap_or(0.0)
    };
    let start = mean(turns.get(..n).unwrap_or(&[]));
    let end = mean(turns.get(turns.len() - n..).unwrap_or(&[]));
    let delta = end - start;
    let direction = if delta >= TREND_STEADY_BAND {
        TrendDirection::Improving
    } else if delta <= -TREND_STEADY_BAND {
        TrendDirection::Declining
    } else {
        TrendDirection::Steady
    };
    Some(SentimentTrend {
        start,
        end,
        delta,
        direction,
    })
}

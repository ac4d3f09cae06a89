//! The report queries. Each starts from the same scoped set of calls (`scoped`: the caller's
//! organization, own calls only when that is all the caller may see, the window, not refused
//! at intake) and aggregates in SQL; the SQL is portable (CTEs, CASE, integer arithmetic, no
//! date or JSON functions), so a PostgreSQL store can run it unchanged.

use serde_json::{Value, json};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::window::{DAY_MS, HOUR_MS, Window};
use crate::store::calls::CallAccess;

/// Calls refused at intake (unreadable audio, a recording that could not be fetched): rows
/// kept for audit, not calls anyone handled. Mirrors `store::calls::is_rejected`.
pub const REFUSED_AT_INTAKE: &str = "(calls.status = 'failed' AND COALESCE(calls.failure_code, '') IN \
     ('unsupported_format', 'corrupt_audio', 'empty_audio', 'recording_fetch_failed', \
     'payload_too_large', 'recording_unreachable'))";

/// A call's length: the recording's measured one, else what the PBX or the SIP side claimed.
pub const CALL_DURATION_MS: &str = "COALESCE(r.duration_ms, calls.duration_ms)";

/// At most this many agents in a leaderboard.
pub const MAX_AGENTS: i64 = 500;

/// `WITH scoped AS (…) ` with the caller's and the window's conditions bound.
fn scoped(access: &CallAccess, w: &Window) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::new(format!(
        "WITH scoped AS (SELECT calls.id AS id, calls.direction AS direction, \
         calls.source AS source, calls.agent_identifier AS agent, \
         calls.call_type_override AS call_type_override, \
         COALESCE(calls.started_at, calls.created_at) AS t, {CALL_DURATION_MS} AS dur \
         FROM calls LEFT JOIN recordings r ON r.call_id = calls.id WHERE"
    ));
    access.push_condition(&mut q);
    q.push(" AND COALESCE(calls.started_at, calls.created_at) >= ");
    q.push_bind(w.from_ms);
    q.push(" AND COALESCE(calls.started_at, calls.created_at) < ");
    q.push_bind(w.to_ms);
    q.push(format!(" AND NOT {REFUSED_AT_INTAKE}) "));
    q
}

fn seconds(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |v| json!(round2(v as f64 / 1000.0)))
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn opt_round(v: Option<f64>, scale: f64) -> Value {
    v.filter(|x| x.is_finite())
        .map_or(Value::Null, |x| json!((x * scale).round() / scale))
}

/// Volume, durations, direction, source and sentiment: the dashboard's first screen.
pub async fn overview(pool: &SqlitePool, access: &CallAccess, w: &Window) -> sqlx::Result<Value> {
    // Totals and duration statistics.
    let mut q = scoped(access, w);
    q.push(
        "SELECT COUNT(*) AS calls, COUNT(dur) AS with_duration, COALESCE(SUM(dur), 0) AS total, \
         AVG(dur * 1.0) AS mean, MIN(dur) AS shortest, MAX(dur) AS longest FROM scoped",
    );
    let row = q.build().fetch_one(pool).await?;
    let calls: i64 = row.try_get("calls")?;
    let with_duration: i64 = row.try_get("with_duration")?;
    let total: i64 = row.try_get("total")?;
    let mean: Option<f64> = row.try_get("mean")?;
    let shortest: Option<i64> = row.try_get("shortest")?;
    let longest: Option<i64> = row.try_get("longest")?;
    let median = percentile(pool, access, w, with_duration, 0.5).await?;
    let p90 = percentile(pool, access, w, with_duration, 0.9).await?;

    // By day and by hour of day, in the viewer's time.
    let mut q = scoped(access, w);
    q.push("SELECT (t + ");
    q.push_bind(w.offset_ms);
    q.push(format!(
        ") / {DAY_MS} AS day, COUNT(*) AS calls, COALESCE(SUM(dur), 0) AS total \
         FROM scoped GROUP BY day ORDER BY day"
    ));
    let by_day: Vec<Value> = q
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(json!({
                "date": Window::date_of_day(r.try_get("day")?),
                "calls": r.try_get::<i64, _>("calls")?,
                "duration_seconds": seconds(Some(r.try_get("total")?)),
            }))
        })
        .collect::<sqlx::Result<_>>()?;
    let mut q = scoped(access, w);
    q.push("SELECT ((t + ");
    q.push_bind(w.offset_ms);
    q.push(format!(
        ") / {HOUR_MS}) % 24 AS hour, COUNT(*) AS calls FROM scoped GROUP BY hour"
    ));
    let mut by_hour = [0i64; 24];
    for r in q.build().fetch_all(pool).await? {
        let hour: i64 = r.try_get("hour")?;
        if let Some(slot) = usize::try_from(hour).ok().and_then(|h| by_hour.get_mut(h)) {
            *slot = r.try_get("calls")?;
        }
    }
    let by_hour: Vec<Value> = by_hour
        .iter()
        .enumerate()
        .map(|(h, n)| json!({ "hour": h, "calls": n }))
        .collect();

    let by_direction = grouped(pool, access, w, "COALESCE(direction, 'unknown')").await?;
    let by_source = grouped(pool, access, w, "source").await?;

    // Sentiment of the analysed calls.
    let mut q = scoped(access, w);
    q.push(
        "SELECT COALESCE(i.sentiment_label, 'none') AS label, COUNT(*) AS calls, \
         AVG(i.sentiment_score) AS mean FROM scoped s JOIN call_insights i ON i.call_id = s.id \
         GROUP BY label ORDER BY label",
    );
    let mut analysed = 0i64;
    let mut labels = serde_json::Map::new();
    for label in ["positive", "neutral", "negative", "mixed", "none"] {
        labels.insert(label.to_string(), json!(0));
    }
    for r in q.build().fetch_all(pool).await? {
        let n: i64 = r.try_get("calls")?;
        analysed += n;
        labels.insert(r.try_get("label")?, json!(n));
    }
    let mut q = scoped(access, w);
    q.push(
        "SELECT AVG(i.sentiment_score) AS mean FROM scoped s \
         JOIN call_insights i ON i.call_id = s.id",
    );
    let mean_sentiment: Option<f64> = q.build().fetch_one(pool).await?.try_get("mean")?;

    Ok(json!({
        "window": w.view(),
        "totals": {
            "calls": calls,
            "calls_with_duration": with_duration,
            "duration_seconds": seconds(Some(total)),
            "mean_duration_seconds": opt_round(mean.map(|m| m / 1000.0), 100.0),
            "median_duration_seconds": seconds(median),
            "p90_duration_seconds": seconds(p90),
            "shortest_seconds": seconds(shortest),
            "longest_seconds": seconds(longest),
        },
        "by_day": by_day,
        "by_hour": by_hour,
        "by_direction": by_direction,
        "by_source": by_source,
        "sentiment": {
            "analysed_calls": analysed,
            "mean_score": opt_round(mean_sentiment, 1000.0),
            "labels": labels,
        },
    }))
}

/// Nearest-rank percentile of the durations (one indexed ORDER BY … OFFSET, no full fetch).
async fn percentile(
    pool: &SqlitePool,
    access: &CallAccess,
    w: &Window,
    n: i64,
    p: f64,
) -> sqlx::Result<Option<i64>> {
    if n <= 0 {
        return Ok(None);
    }
    let rank = ((p * n as f64).ceil() as i64).clamp(1, n);
    let mut q = scoped(access, w);
    q.push("SELECT dur FROM scoped WHERE dur IS NOT NULL ORDER BY dur LIMIT 1 OFFSET ");
    q.push_bind(rank - 1);
    q.build()
        .fetch_optional(pool)
        .await?
        .map(|r| r.try_get(0))
        .transpose()
}

async fn grouped(
    pool: &SqlitePool,
    access: &CallAccess,
    w: &Window,
    key: &str,
) -> sqlx::Result<Vec<Value>> {
    let mut q = scoped(access, w);
    q.push(format!(
        "SELECT {key} AS k, COUNT(*) AS calls, COALESCE(SUM(dur), 0) AS total \
         FROM scoped GROUP BY k ORDER BY calls DESC, k"
    ));
    q.build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(json!({
                "key": r.try_get::<String, _>("k")?,
                "calls": r.try_get::<i64, _>("calls")?,
                "duration_seconds": seconds(Some(r.try_get("total")?)),
            }))
        })
        .collect()
}

/// One row per agent (`agent_identifier`; calls without one are `null`): calls, handle time,
/// the agent's own talk time, mean sentiment, mean QA percent (a reviewer's scorecards where
/// they exist, else the suggestions), flags.
pub async fn agents(
    pool: &SqlitePool,
    access: &CallAccess,
    w: &Window,
    limit: i64,
) -> sqlx::Result<Value> {
    let mut q = scoped(access, w);
    q.push(
        ", reviewed AS (SELECT call_id, AVG(percent) AS pct FROM call_scorecards \
         WHERE org_id = ",
    );
    q.push_bind(access.org_id.clone());
    q.push(
        " AND percent IS NOT NULL GROUP BY call_id) \
         SELECT s.agent AS agent, COUNT(*) AS calls, COALESCE(SUM(s.dur), 0) AS handle_ms, \
         SUM(i.agent_talk_ms) AS talk_ms, COUNT(i.call_id) AS analysed, \
         AVG(i.sentiment_score) AS sentiment, AVG(COALESCE(rv.pct, i.suggested_qa_percent)) AS qa, \
         COUNT(COALESCE(rv.pct, i.suggested_qa_percent)) AS scored, \
         COALESCE(SUM(i.flags), 0) AS flags, \
         COALESCE(SUM(CASE WHEN i.flags > 0 THEN 1 ELSE 0 END), 0) AS flagged_calls \
         FROM scoped s LEFT JOIN call_insights i ON i.call_id = s.id \
         LEFT JOIN reviewed rv ON rv.call_id = s.id \
         GROUP BY s.agent ORDER BY calls DESC, handle_ms DESC, agent LIMIT ",
    );
    q.push_bind(limit);
    let rows = q.build().fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let agent: Option<String> = r.try_get("agent")?;
        let name = match &agent {
            Some(a) => agent_name(pool, &access.org_id, a).await?,
            None => None,
        };
        let calls: i64 = r.try_get("calls")?;
        let flagged: i64 = r.try_get("flagged_calls")?;
        let analysed: i64 = r.try_get("analysed")?;
        out.push(json!({
            "agent": agent,
            "name": name,
            "calls": calls,
            "analysed_calls": analysed,
            "handle_time_seconds": seconds(Some(r.try_get("handle_ms")?)),
            "agent_talk_seconds": seconds(r.try_get("talk_ms")?),
            "mean_sentiment": opt_round(r.try_get("sentiment")?, 1000.0),
            "mean_qa_percent": opt_round(r.try_get("qa")?, 100.0),
            "scored_calls": r.try_get::<i64, _>("scored")?,
            "flags": r.try_get::<i64, _>("flags")?,
            "flagged_calls": flagged,
            "flag_rate": if analysed > 0 { json!(round4(flagged as f64 / analysed as f64)) } else { Value::Null },
        }));
    }
    Ok(json!({ "window": w.view(), "agents": out }))
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

/// The user an `agent_identifier` names (their extension or id), for display.
async fn agent_name(pool: &SqlitePool, org_id: &str, agent: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT name FROM users WHERE org_id = $1 AND (extension = $2 OR id = $2) \
         ORDER BY id LIMIT 1",
    )
    .bind(org_id)
    .bind(agent)
    .fetch_optional(pool)
    .await
}

/// Hits per tracker per day (local days), with the calls they were in and the hit rate over
/// the analysed calls of the window.
pub async fn trackers(pool: &SqlitePool, access: &CallAccess, w: &Window) -> sqlx::Result<Value> {
    let analysed = analysed_calls(pool, access, w).await?;
    let mut q = scoped(access, w);
    q.push(
        "SELECT h.tracker_id AS tracker_id, MAX(COALESCE(tr.name, h.tracker_name)) AS name, \
            MAX(tr.category) AS category, (s.t + ",
    );
    q.push_bind(w.offset_ms);
    q.push(format!(
        ") / {DAY_MS} AS day, SUM(h.hits) AS hits, COUNT(*) AS calls \
         FROM scoped s JOIN call_insight_trackers h ON h.call_id = s.id \
         LEFT JOIN trackers tr ON tr.id = h.tracker_id AND tr.org_id = h.org_id \
         GROUP BY h.tracker_id, day ORDER BY h.tracker_id, day"
    ));
    let mut trackers: Vec<Value> = Vec::new();
    for r in q.build().fetch_all(pool).await? {
        let id: String = r.try_get("tracker_id")?;
        let hits: i64 = r.try_get("hits")?;
        let calls: i64 = r.try_get("calls")?;
        let point = json!({
            "date": Window::date_of_day(r.try_get("day")?),
            "hits": hits,
            "calls": calls,
        });
        let same = trackers
            .last()
            .is_some_and(|t: &Value| t["tracker_id"].as_str() == Some(id.as_str()));
        if !same {
            trackers.push(json!({
                "tracker_id": id,
                "name": r.try_get::<Option<String>, _>("name")?,
                "category": r.try_get::<Option<String>, _>("category")?,
                "hits": 0, "calls": 0, "by_day": [],
            }));
        }
        if let Some(t) = trackers.last_mut() {
            t["hits"] = json!(t["hits"].as_i64().unwrap_or(0) + hits);
            t["calls"] = json!(t["calls"].as_i64().unwrap_or(0) + calls);
            if let Some(days) = t["by_day"].as_array_mut() {
                days.push(point);
            }
        }
    }
    for t in &mut trackers {
        let calls = t["calls"].as_i64().unwrap_or(0);
        t["call_rate"] = if analysed > 0 {
            json!(round4(calls as f64 / analysed as f64))
        } else {
            Value::Null
        };
    }
    trackers.sort_by(|a, b| {
        b["hits"]
            .as_i64()
            .cmp(&a["hits"].as_i64())
            .then_with(|| a["tracker_id"].as_str().cmp(&b["tracker_id"].as_str()))
    });
    Ok(json!({ "window": w.view(), "analysed_calls": analysed, "trackers": trackers }))
}

async fn analysed_calls(pool: &SqlitePool, access: &CallAccess, w: &Window) -> sqlx::Result<i64> {
    let mut q = scoped(access, w);
    q.push("SELECT COUNT(*) FROM scoped s JOIN call_insights i ON i.call_id = s.id");
    q.build().fetch_one(pool).await?.try_get(0)
}

/// Flagged calls, the flag rate, flags by category and severity, disclosure coverage and the
/// flagged share per day.
pub async fn compliance(pool: &SqlitePool, access: &CallAccess, w: &Window) -> sqlx::Result<Value> {
    let mut q = scoped(access, w);
    q.push(
        "SELECT COUNT(*) AS analysed, \
         COALESCE(SUM(CASE WHEN i.flags > 0 THEN 1 ELSE 0 END), 0) AS flagged, \
         COALESCE(SUM(i.flags), 0) AS flags, \
         COALESCE(SUM(i.disclosure_missing), 0) AS disclosure_missing \
         FROM scoped s JOIN call_insights i ON i.call_id = s.id",
    );
    let row = q.build().fetch_one(pool).await?;
    let analysed: i64 = row.try_get("analysed")?;
    let flagged: i64 = row.try_get("flagged")?;
    let flags: i64 = row.try_get("flags")?;
    let missing: i64 = row.try_get("disclosure_missing")?;
    let rate = |n: i64| {
        if analysed > 0 {
            json!(round4(n as f64 / analysed as f64))
        } else {
            Value::Null
        }
    };

    let mut q = scoped(access, w);
    q.push(
        "SELECT f.category AS category, f.severity AS severity, SUM(f.flags) AS flags, \
         COUNT(*) AS calls FROM scoped s JOIN call_insight_flags f ON f.call_id = s.id \
         GROUP BY f.category, f.severity ORDER BY flags DESC, category, severity",
    );
    let by_category: Vec<Value> = q
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            let calls: i64 = r.try_get("calls")?;
            Ok(json!({
                "category": r.try_get::<String, _>("category")?,
                "severity": r.try_get::<String, _>("severity")?,
                "flags": r.try_get::<i64, _>("flags")?,
                "calls": calls,
                "call_rate": rate(calls),
            }))
        })
        .collect::<sqlx::Result<_>>()?;

    let mut q = scoped(access, w);
    q.push("SELECT (s.t + ");
    q.push_bind(w.offset_ms);
    q.push(format!(
        ") / {DAY_MS} AS day, COUNT(*) AS analysed, \
         SUM(CASE WHEN i.flags > 0 THEN 1 ELSE 0 END) AS flagged \
         FROM scoped s JOIN call_insights i ON i.call_id = s.id GROUP BY day ORDER BY day"
    ));
    let by_day: Vec<Value> = q
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(json!({
                "date": Window::date_of_day(r.try_get("day")?),
                "analysed_calls": r.try_get::<i64, _>("analysed")?,
                "flagged_calls": r.try_get::<i64, _>("flagged")?,
            }))
        })
        .collect::<sqlx::Result<_>>()?;

    Ok(json!({
        "window": w.view(),
        "analysed_calls": analysed,
        "flagged_calls": flagged,
        "flags": flags,
        "flag_rate": rate(flagged),
        "by_category": by_category,
        "disclosure": {
            "analysed_calls": analysed,
            "missing": missing,
            "given": analysed - missing,
            "coverage": rate(analysed - missing),
        },
        "by_day": by_day,
    }))
}

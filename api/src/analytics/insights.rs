//! Per-call facts for reports (`call_insights`, `call_insight_flags`, `call_insight_trackers`),
//! extracted from the stored analysis JSON.
//!
//! Why a copy: reports aggregate thousands of calls, and parsing every analysis document on
//! every request would cost seconds. The facts are brought up to date lazily, before each
//! report: a re-analysis always stores a newer `analysed_at`, so only analyses stored after
//! the newest one already extracted (a watermark on an index), less a look-back margin, need a
//! look. The margin covers a worker whose transaction stamped `analysed_at` a moment before
//! another's but committed after it. This needs no hook in the code paths that store
//! analyses, so none of them can forget it.

use std::collections::BTreeMap;

use serde::Deserialize;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

/// At most this many analyses are extracted per transaction, and at most `MAX_BATCHES` per
/// request (500 000 analyses): a first report over a huge backlog stays bounded.
const BATCH: i64 = 500;
const MAX_BATCHES: usize = 1000;
/// How far before the watermark to look again: far longer than the write transaction that
/// stores an analysis is ever open (it only writes rows computed beforehand).
const LOOK_BACK_MS: i64 = 10 * 60 * 1000;

/// The parts of the analysis document reports read; everything else is skipped unparsed.
#[derive(Debug, Default, Deserialize)]
struct AnalysisFacts {
    #[serde(default)]
    stats: Option<StatsPart>,
    #[serde(default)]
    sentiment: Option<SentimentPart>,
    #[serde(default)]
    tracker_hits: Vec<TrackerHitPart>,
    #[serde(default)]
    smart_trackers: Option<SmartPart>,
    #[serde(default)]
    compliance: Vec<FlagPart>,
    #[serde(default)]
    call_type: Option<CallTypePart>,
    #[serde(default)]
    scorecard_suggestions: Vec<ScorecardPart>,
}

#[derive(Debug, Deserialize)]
struct StatsPart {
    #[serde(default)]
    per_role: Vec<RoleTalk>,
}

#[derive(Debug, Deserialize)]
struct RoleTalk {
    role: String,
    #[serde(default)]
    talk_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct SentimentPart {
    #[serde(default)]
    overall: Option<Score>,
}

#[derive(Debug, Deserialize)]
struct Score {
    score: Option<f64>,
    label: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TrackerHitPart {
    tracker_id: String,
    #[serde(default)]
    tracker_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SmartPart {
    #[serde(default)]
    hits: Vec<TrackerHitPart>,
}

#[derive(Debug, Deserialize)]
struct FlagPart {
    #[serde(default)]
    rule_id: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    severity: String,
}

#[derive(Debug, Deserialize)]
struct CallTypePart {
    call_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ScorecardPart {
    #[serde(default)]
    totals: Option<Totals>,
}

#[derive(Debug, Deserialize)]
struct Totals {
    percent: Option<f64>,
}

/// What one analysis contributes to the reports.
#[derive(Debug, Default, PartialEq)]
pub struct CallFacts {
    pub sentiment_score: Option<f64>,
    pub sentiment_label: Option<String>,
    pub call_type: Option<String>,
    pub agent_talk_ms: Option<i64>,
    pub flags: i64,
    pub disclosure_missing: bool,
    pub suggested_qa_percent: Option<f64>,
    /// (category, severity) → flags.
    pub flags_by_category: BTreeMap<(String, String), i64>,
    /// tracker id → (name if known, hits).
    pub trackers: BTreeMap<String, (Option<String>, i64)>,
}

impl CallFacts {
    pub fn tracker_hits(&self) -> i64 {
        self.trackers.values().map(|(_, n)| n).sum()
    }

    /// "Compliance:1; Escalation:2" (categories in name order, severities merged).
    pub fn flag_summary(&self) -> String {
        let mut per: BTreeMap<&str, i64> = BTreeMap::new();
        for ((category, _), n) in &self.flags_by_category {
            *per.entry(category.as_str()).or_default() += n;
        }
        per.iter()
            .map(|(c, n)| format!("{c}:{n}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// "Pricing:2; Competitor:1" with the tracker's name when the hit carried one, else its id.
    pub fn tracker_summary(&self) -> String {
        self.trackers
            .iter()
            .map(|(id, (name, n))| format!("{}:{n}", name.as_deref().unwrap_or(id)))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A rule counts as a disclosure rule when its id or category says so (the default pack's
/// `recording-disclosure`, or an organization's own "disclosure" category).
fn is_disclosure(flag: &FlagPart) -> bool {
    flag.rule_id.to_ascii_lowercase().contains("disclosure")
        || flag.category.to_ascii_lowercase().contains("disclosure")
}

/// Extracts the facts; a document that does not parse yields empty facts (it still counts as
/// analysed) rather than failing the report.
pub fn extract(result: &str) -> CallFacts {
    let doc: AnalysisFacts = serde_json::from_str(result).unwrap_or_default();
    let mut facts = CallFacts {
        sentiment_score: doc
            .sentiment
            .as_ref()
            .and_then(|s| s.overall.as_ref())
            .and_then(|o| o.score)
            .filter(|s| s.is_finite()),
        sentiment_label: doc
            .sentiment
            .as_ref()
            .and_then(|s| s.overall.as_ref())
            .and_then(|o| o.label.clone()),
        call_type: doc.call_type.and_then(|c| c.call_type),
        agent_talk_ms: doc.stats.as_ref().and_then(|s| {
            s.per_role
                .iter()
                .find(|r| r.role == "agent")
                .and_then(|r| r.talk_ms)
        }),
        flags: i64::try_from(doc.compliance.len()).unwrap_or(i64::MAX),
        disclosure_missing: doc.compliance.iter().any(is_disclosure),
        ..CallFacts::default()
    };
    let percents: Vec<f64> = doc
        .scorecard_suggestions
        .iter()
        .filter_map(|s| s.totals.as_ref().and_then(|t| t.percent))
        .filter(|p| p.is_finite())
        .collect();
    if !percents.is_empty() {
        facts.suggested_qa_percent = Some(percents.iter().sum::<f64>() / percents.len() as f64);
    }
    for flag in &doc.compliance {
        *facts
            .flags_by_category
            .entry((flag.category.clone(), flag.severity.clone()))
            .or_default() += 1;
    }
    let smart = doc.smart_trackers.map(|s| s.hits).unwrap_or_default();
    for hit in doc.tracker_hits.iter().chain(smart.iter()) {
        let entry = facts
            .trackers
            .entry(hit.tracker_id.clone())
            .or_insert((None, 0));
        if entry.0.is_none() {
            entry.0 = hit.tracker_name.clone();
        }
        entry.1 += 1;
    }
    facts
}

/// Brings the organization's facts up to date with its stored analyses.
pub async fn refresh(pool: &SqlitePool, org_id: &str) -> Result<(), sqlx::Error> {
    let watermark: Option<i64> =
        sqlx::query_scalar("SELECT MAX(analysed_at) FROM call_insights WHERE org_id = $1")
            .bind(org_id)
            .fetch_one(pool)
            .await?;
    // Keyset pagination over (analysed_at, call_id) from the look-back point: each analysis
    // is looked at once per refresh, however many are stale.
    let mut after: (i64, String) = (
        watermark.map_or(i64::MIN, |w| w.saturating_sub(LOOK_BACK_MS)),
        String::new(),
    );
    for _ in 0..MAX_BATCHES {
        // The NOT EXISTS skips those of the look-back window already extracted.
        let stale: Vec<(String, i64)> = sqlx::query_as(
            "SELECT a.call_id, a.analysed_at FROM call_analyses a \
             WHERE a.org_id = $1 \
               AND (a.analysed_at > $2 OR (a.analysed_at = $2 AND a.call_id > $3)) \
               AND NOT EXISTS (SELECT 1 FROM call_insights i \
                               WHERE i.call_id = a.call_id AND i.analysed_at = a.analysed_at) \
             ORDER BY a.analysed_at, a.call_id LIMIT $4",
        )
        .bind(org_id)
        .bind(after.0)
        .bind(&after.1)
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        let Some(last) = stale.last() else {
            return Ok(());
        };
        after = (last.1, last.0.clone());
        let ids: Vec<&str> = stale.iter().map(|(id, _)| id.as_str()).collect();
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        // Read again inside the transaction: the newest version is the one extracted.
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT call_id, result, analysed_at FROM call_analyses WHERE org_id = ",
        );
        q.push_bind(org_id.to_string());
        push_in(&mut q, "call_id", &ids);
        let rows: Vec<(String, String, i64)> = q.build_query_as().fetch_all(&mut *tx).await?;
        let extracted: Vec<(String, i64, CallFacts)> = rows
            .into_iter()
            .map(|(id, result, at)| (id, at, extract(&result)))
            .collect();
        write_batch(&mut tx, org_id, &ids, &extracted).await?;
        tx.commit().await?;
        if (stale.len() as i64) < BATCH {
            return Ok(());
        }
    }
    Ok(())
}

/// `AND <column> IN (…)` with the values bound.
fn push_in(q: &mut QueryBuilder<Sqlite>, column: &str, values: &[&str]) {
    q.push(format!(" AND {column} IN ("));
    let mut list = q.separated(", ");
    for v in values {
        list.push_bind(v.to_string());
    }
    q.push(")");
}

/// Rows per multi-row INSERT: 5 columns × 1 000 stays far below SQLite's bound-parameter limit.
const ROWS_PER_INSERT: usize = 1000;

/// Replaces the facts of `ids` with `facts` in a handful of statements (one per table, not
/// one per call: a backlog of 100 000 analyses is extracted in seconds, not minutes).
async fn write_batch(
    conn: &mut sqlx::SqliteConnection,
    org_id: &str,
    ids: &[&str],
    facts: &[(String, i64, CallFacts)],
) -> Result<(), sqlx::Error> {
    for table in [
        "call_insight_flags",
        "call_insight_trackers",
        "call_insights",
    ] {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("DELETE FROM ");
        q.push(table);
        q.push(" WHERE org_id = ");
        q.push_bind(org_id.to_string());
        push_in(&mut q, "call_id", ids);
        q.build().execute(&mut *conn).await?;
    }
    // 13 columns: at most BATCH (500) rows per statement.
    if !facts.is_empty() {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO call_insights (call_id, org_id, analysed_at, sentiment_score, \
             sentiment_label, call_type, agent_talk_ms, flags, disclosure_missing, tracker_hits, \
             suggested_qa_percent, flag_summary, tracker_summary) ",
        );
        q.push_values(facts, |mut row, (call_id, analysed_at, f)| {
            row.push_bind(call_id.clone())
                .push_bind(org_id.to_string())
                .push_bind(*analysed_at)
                .push_bind(f.sentiment_score)
                .push_bind(f.sentiment_label.clone())
                .push_bind(f.call_type.clone())
                .push_bind(f.agent_talk_ms)
                .push_bind(f.flags)
                .push_bind(i64::from(f.disclosure_missing))
                .push_bind(f.tracker_hits())
                .push_bind(f.suggested_qa_percent)
                .push_bind(f.flag_summary())
                .push_bind(f.tracker_summary());
        });
        q.build().execute(&mut *conn).await?;
    }
    let flags: Vec<(&str, &str, &str, i64)> = facts
        .iter()
        .flat_map(|(id, _, f)| {
            f.flags_by_category
                .iter()
                .map(move |((c, s), n)| (id.as_str(), c.as_str(), s.as_str(), *n))
        })
        .collect();
    for chunk in flags.chunks(ROWS_PER_INSERT) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO call_insight_flags (call_id, org_id, category, severity, flags) ",
        );
        q.push_values(chunk, |mut row, (id, category, severity, n)| {
            row.push_bind(id.to_string())
                .push_bind(org_id.to_string())
                .push_bind(category.to_string())
                .push_bind(severity.to_string())
                .push_bind(*n);
        });
        q.build().execute(&mut *conn).await?;
    }
    let trackers: Vec<(&str, &str, Option<&str>, i64)> = facts
        .iter()
        .flat_map(|(id, _, f)| {
            f.trackers
                .iter()
                .map(move |(t, (name, n))| (id.as_str(), t.as_str(), name.as_deref(), *n))
        })
        .collect();
    for chunk in trackers.chunks(ROWS_PER_INSERT) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO call_insight_trackers (call_id, org_id, tracker_id, tracker_name, hits) ",
        );
        q.push_values(chunk, |mut row, (id, tracker, name, n)| {
            row.push_bind(id.to_string())
                .push_bind(org_id.to_string())
                .push_bind(tracker.to_string())
                .push_bind(name.map(str::to_string))
                .push_bind(*n);
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_parts_reports_read() {
        let doc = serde_json::json!({
            "stats": {"per_role": [{"role": "customer", "talk_ms": 900}, {"role": "agent", "talk_ms": 2500}]},
            "sentiment": {"overall": {"score": -0.4, "label": "negative"}, "turns": []},
            "tracker_hits": [
                {"tracker_id": "t1", "tracker_name": "Price", "category": "pricing"},
                {"tracker_id": "t1", "tracker_name": "Price", "category": "pricing"},
                {"tracker_id": "t2", "tracker_name": "Rival", "category": "competitor"}
            ],
            "smart_trackers": {"status": "available", "hits": [{"tracker_id": "s1", "turn": 1}]},
            "compliance": [
                {"rule_id": "recording-disclosure", "category": "Compliance", "severity": "high"},
                {"rule_id": "profanity", "category": "Conduct", "severity": "medium"}
            ],
            "call_type": {"call_type": "complaint"},
            "scorecard_suggestions": [{"totals": {"percent": 50.0}}, {"totals": {"percent": 100.0}}, {"totals": {"percent": null}}]
        });
        let f = extract(&doc.to_string());
        assert_eq!(f.sentiment_score, Some(-0.4));
        assert_eq!(f.sentiment_label.as_deref(), Some("negative"));
        assert_eq!(f.agent_talk_ms, Some(2500));
        assert_eq!(f.flags, 2);
        assert!(f.disclosure_missing);
        assert_eq!(f.call_type.as_deref(), Some("complaint"));
        assert_eq!(f.suggested_qa_percent, Some(75.0));
        assert_eq!(f.tracker_hits(), 4);
        assert_eq!(f.tracker_summary(), "s1:1; Price:2; Rival:1");
        assert_eq!(f.flag_summary(), "Compliance:1; Conduct:1");
    }

    #[test]
    fn garbage_and_smart_unavailable_give_empty_facts() {
        assert_eq!(extract("not json"), CallFacts::default());
        let f = extract(r#"{"smart_trackers": {"status": "unavailable", "reason": "x"}}"#);
        assert_eq!(f.tracker_hits(), 0);
        assert!(!f.disclosure_missing);
    }
}

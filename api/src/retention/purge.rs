//! The purge: per organization, removes recordings, transcripts and insights of calls older
//! than the organization's periods, skipping calls on legal hold and calls still being
//! processed.
//!
//! Crash safety: each batch's row changes (deletes and the call's "purged" marks) commit in
//! one `BEGIN IMMEDIATE` transaction — immediate so that a legal hold set at the same moment
//! is either seen by the purge's reads or waits for its commit, never slips in between. Files
//! are removed only after the commit: a crash in between leaves an orphaned file (harmless,
//! and no row points at it), never a row pointing at a missing file. A file already gone is
//! not an error.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;
use sqlx::SqlitePool;

use super::call_state::mark_purged;
use super::policy::{self, DataKind, RetentionPolicy};
use crate::audit::{self, AuditActor, Target};
use crate::ids::now_ms;

/// Calls still in the pipeline are left alone: a queued or running job reads the recording
/// and writes the transcript and analysis, and a SIP call still up is being recorded. (Not
/// the status alone: a SIP call's row says `received` until its recording is processed, and
/// one that was never recorded keeps it.)
const SETTLED: &str = "c.status NOT IN ('transcribing', 'analyzing')
    AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.org_id = c.org_id
        AND j.status IN ('queued', 'running')
        AND CASE WHEN json_valid(j.payload) THEN json_extract(j.payload, '$.call_id') END = c.id)
    AND NOT EXISTS (SELECT 1 FROM call_sip s WHERE s.call_id = c.id AND s.end_at IS NULL)";
const NOT_HELD: &str = "NOT EXISTS (SELECT 1 FROM call_retention h
    WHERE h.call_id = c.id AND h.legal_hold = 1)";
/// Bounds one run per organization and kind (batches × batch size calls); the rest waits
/// for the next run.
const MAX_BATCHES: usize = 1_000;

/// What one run removed in one organization.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeCounts {
    /// Calls whose recording was purged (one recording each).
    pub recordings: u64,
    pub transcript_calls: u64,
    pub transcript_segments: u64,
    pub insights_calls: u64,
    pub analyses: u64,
    pub scorecards: u64,
    pub files: FileCounts,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileCounts {
    pub removed: u64,
    pub already_missing: u64,
    pub failed: u64,
}

impl PurgeCounts {
    pub fn is_empty(&self) -> bool {
        self.recordings == 0 && self.transcript_calls == 0 && self.insights_calls == 0
    }
}

/// One organization's run.
#[derive(Debug, Clone, Serialize)]
pub struct OrgPurge {
    pub org_id: String,
    pub policy: RetentionPolicy,
    pub purged: PurgeCounts,
}

/// Who started the run, for the audit entry.
pub enum Trigger<'a> {
    Scheduled,
    Manual(&'a AuditActor),
}

/// Runs the purge for every organization.
pub async fn purge_all(
    pool: &SqlitePool,
    recordings_dir: &Path,
    batch: u32,
) -> Result<Vec<OrgPurge>, sqlx::Error> {
    let orgs: Vec<String> = sqlx::query_scalar("SELECT id FROM organizations ORDER BY id")
        .fetch_all(pool)
        .await?;
    let mut out = Vec::with_capacity(orgs.len());
    for org in orgs {
        out.push(purge_org(pool, recordings_dir, &org, batch, Trigger::Scheduled).await?);
    }
    Ok(out)
}

/// Runs the purge for one organization, logs and audits what it did.
pub async fn purge_org(
    pool: &SqlitePool,
    recordings_dir: &Path,
    org_id: &str,
    batch: u32,
    trigger: Trigger<'_>,
) -> Result<OrgPurge, sqlx::Error> {
    let (policy, _) = policy::get(pool, org_id).await?;
    let now = now_ms();
    let batch = i64::from(batch.max(1));
    let mut counts = PurgeCounts::default();
    let mut files = Vec::new();
    if let Some(cutoff) = policy.cutoff_ms(DataKind::Recordings, now) {
        purge_recordings(pool, org_id, cutoff, now, batch, &mut counts, &mut files).await?;
    }
    if let Some(cutoff) = policy.cutoff_ms(DataKind::Transcripts, now) {
        purge_transcripts(pool, org_id, cutoff, now, batch, &mut counts, &mut files).await?;
    }
    if let Some(cutoff) = policy.cutoff_ms(DataKind::Insights, now) {
        purge_insights(pool, org_id, cutoff, now, batch, &mut counts).await?;
    }
    counts.files = remove_files(recordings_dir, &files).await;
    let manual = matches!(trigger, Trigger::Manual(_));
    if !counts.is_empty() || manual {
        tracing::info!(
            org_id,
            recordings = counts.recordings,
            transcript_calls = counts.transcript_calls,
            transcript_segments = counts.transcript_segments,
            insights_calls = counts.insights_calls,
            files_removed = counts.files.removed,
            files_missing = counts.files.already_missing,
            files_failed = counts.files.failed,
            manual,
            "retention purge"
        );
        let actor = match trigger {
            Trigger::Scheduled => AuditActor::System,
            Trigger::Manual(a) => a.clone(),
        };
        audit::record_as(
            pool,
            org_id,
            &actor,
            audit::actions::RETENTION_PURGE,
            Target::kind("organization"),
            json!({ "trigger": if manual { "manual" } else { "scheduled" }, "policy": policy, "purged": counts }),
        )
        .await;
    }
    Ok(OrgPurge {
        org_id: org_id.to_string(),
        policy,
        purged: counts,
    })
}

async fn purge_recordings(
    pool: &SqlitePool,
    org_id: &str,
    cutoff: i64,
    now: i64,
    batch: i64,
    counts: &mut PurgeCounts,
    files: &mut Vec<String>,
) -> Result<(), sqlx::Error> {
    let select = format!(
        "SELECT r.call_id, r.path FROM recordings r JOIN calls c ON c.id = r.call_id
         WHERE r.org_id = $1 AND c.org_id = $1 AND c.created_at < $2 AND {SETTLED} AND {NOT_HELD}
         LIMIT $3"
    );
    for _ in 0..MAX_BATCHES {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let rows: Vec<(String, String)> = due(&mut tx, &select, org_id, cutoff, batch).await?;
        if rows.is_empty() {
            return Ok(());
        }
        for (call_id, path) in &rows {
            sqlx::query("DELETE FROM recordings WHERE org_id = $1 AND call_id = $2")
                .bind(org_id)
                .bind(call_id)
                .execute(&mut *tx)
                .await?;
            mark_purged(&mut *tx, org_id, call_id, DataKind::Recordings, now).await?;
            files.push(path.clone());
        }
        tx.commit().await?;
        counts.recordings += rows.len() as u64;
    }
    Ok(())
}

/// One batch of due rows (`select` binds the organization, the cutoff and the batch size),
/// read inside the purge's own write transaction so nothing changes under it.
async fn due<T>(
    tx: &mut sqlx::SqliteConnection,
    select: &str,
    org_id: &str,
    cutoff: i64,
    batch: i64,
) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
{
    sqlx::query_as(sqlx::AssertSqlSafe(select))
        .bind(org_id)
        .bind(cutoff)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await
}

async fn purge_transcripts(
    pool: &SqlitePool,
    org_id: &str,
    cutoff: i64,
    now: i64,
    batch: i64,
    counts: &mut PurgeCounts,
    files: &mut Vec<String>,
) -> Result<(), sqlx::Error> {
    let select = format!(
        "SELECT c.id FROM calls c
         WHERE c.org_id = $1 AND c.created_at < $2 AND {SETTLED} AND {NOT_HELD}
           AND EXISTS (SELECT 1 FROM transcript_segments s WHERE s.call_id = c.id)
         LIMIT $3"
    );
    for _ in 0..MAX_BATCHES {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let calls: Vec<(String,)> = due(&mut tx, &select, org_id, cutoff, batch).await?;
        if calls.is_empty() {
            return Ok(());
        }
        for (call_id,) in &calls {
            let done =
                sqlx::query("DELETE FROM transcript_segments WHERE org_id = $1 AND call_id = $2")
                    .bind(org_id)
                    .bind(call_id)
                    .execute(&mut *tx)
                    .await?;
            counts.transcript_segments += done.rows_affected();
            // A transcript uploaded with the recording is kept as a file the job reads.
            let uploaded: Vec<Option<String>> = sqlx::query_scalar(
                "SELECT CASE WHEN json_valid(payload) THEN json_extract(payload, '$.transcript_path') END
                 FROM jobs WHERE org_id = $1
                   AND CASE WHEN json_valid(payload) THEN json_extract(payload, '$.call_id') END = $2",
            )
            .bind(org_id)
            .bind(call_id)
            .fetch_all(&mut *tx)
            .await?;
            files.extend(uploaded.into_iter().flatten());
            mark_purged(&mut *tx, org_id, call_id, DataKind::Transcripts, now).await?;
        }
        tx.commit().await?;
        counts.transcript_calls += calls.len() as u64;
    }
    Ok(())
}

async fn purge_insights(
    pool: &SqlitePool,
    org_id: &str,
    cutoff: i64,
    now: i64,
    batch: i64,
    counts: &mut PurgeCounts,
) -> Result<(), sqlx::Error> {
    let select = format!(
        "SELECT c.id FROM calls c
         WHERE c.org_id = $1 AND c.created_at < $2 AND {SETTLED} AND {NOT_HELD}
           AND (EXISTS (SELECT 1 FROM call_analyses a WHERE a.call_id = c.id)
             OR EXISTS (SELECT 1 FROM call_scorecards s WHERE s.call_id = c.id))
         LIMIT $3"
    );
    for _ in 0..MAX_BATCHES {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let calls: Vec<(String,)> = due(&mut tx, &select, org_id, cutoff, batch).await?;
        if calls.is_empty() {
            return Ok(());
        }
        for (call_id,) in &calls {
            let a = sqlx::query("DELETE FROM call_analyses WHERE org_id = $1 AND call_id = $2")
                .bind(org_id)
                .bind(call_id)
                .execute(&mut *tx)
                .await?;
            let s = sqlx::query("DELETE FROM call_scorecards WHERE org_id = $1 AND call_id = $2")
                .bind(org_id)
                .bind(call_id)
                .execute(&mut *tx)
                .await?;
            counts.analyses += a.rows_affected();
            counts.scorecards += s.rows_affected();
            mark_purged(&mut *tx, org_id, call_id, DataKind::Insights, now).await?;
        }
        tx.commit().await?;
        counts.insights_calls += calls.len() as u64;
    }
    Ok(())
}

/// Removes files after the rows are gone. Only files under `recordings_dir` (where callscope
/// writes recordings and uploaded transcripts) are touched: a stored path is data, not an
/// instruction.
async fn remove_files(recordings_dir: &Path, paths: &[String]) -> FileCounts {
    let mut c = FileCounts::default();
    for p in paths {
        let path = PathBuf::from(p);
        if !path.starts_with(recordings_dir) || path.components().any(|c| c.as_os_str() == "..") {
            tracing::warn!(path = %p, "retention: not removing a file outside the recordings directory");
            c.failed += 1;
            continue;
        }
        match tokio::fs::remove_file(&path).await {
            Ok(()) => c.removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => c.already_missing += 1,
            Err(e) => {
                tracing::error!(path = %p, error = %e, "retention: could not remove a file; remove it by hand");
                c.failed += 1;
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_files_inside_the_recordings_directory_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let recordings = dir.path().join("recordings");
        std::fs::create_dir_all(&recordings).unwrap();
        let inside = recordings.join("a.wav");
        let outside = dir.path().join("elsewhere.wav");
        std::fs::write(&inside, b"x").unwrap();
        std::fs::write(&outside, b"x").unwrap();
        let sneaky = recordings.join("..").join("elsewhere.wav");
        let paths = [&inside, &outside, &sneaky, &recordings.join("gone.wav")]
            .map(|p| p.to_string_lossy().into_owned());
        let c = remove_files(&recordings, &paths).await;
        assert_eq!(
            c,
            FileCounts {
                removed: 1,
                already_missing: 1,
                failed: 2
            }
        );
        assert!(!inside.exists());
        assert!(outside.exists());
    }
}

//! Erasing a contact (the right to be forgotten): the contact and everything that belongs to
//! it — its conversations (and their messages, by cascade), the calls of those conversations
//! or with the contact, with their recordings, transcript segments, analyses, scorecards,
//! media events and queued jobs, its notes, tasks and timeline events — in one transaction.
//! The recording and transcript FILES are removed after the commit: a file that cannot be
//! removed is logged and reported, and never leaves rows half-deleted.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use sqlx::{SqliteConnection, SqlitePool};

use super::{CONTACT_DELETED, CrmError, CrmResult};

const CONVERSATIONS: &str = "SELECT id FROM conversations WHERE org_id = $1 AND contact_id = $2";

fn calls_sub() -> String {
    format!(
        "SELECT id FROM calls WHERE org_id = $1 AND (contact_id = $2 OR conversation_id IN ({CONVERSATIONS}))"
    )
}

/// What is counted (and so reported) before the rows go, as `(name, SQL counting them)`.
fn counted() -> Vec<(&'static str, String)> {
    let calls = calls_sub();
    vec![
        (
            "conversations",
            "SELECT COUNT(*) FROM conversations WHERE org_id = $1 AND contact_id = $2".into(),
        ),
        ("calls", format!("SELECT COUNT(*) FROM ({calls})")),
        (
            "recordings",
            format!("SELECT COUNT(*) FROM recordings WHERE org_id = $1 AND call_id IN ({calls})"),
        ),
        (
            "transcript_segments",
            format!(
                "SELECT COUNT(*) FROM transcript_segments WHERE org_id = $1 AND call_id IN ({calls})"
            ),
        ),
        (
            "analyses",
            format!(
                "SELECT COUNT(*) FROM call_analyses WHERE org_id = $1 AND call_id IN ({calls})"
            ),
        ),
        (
            "scorecards",
            format!(
                "SELECT COUNT(*) FROM call_scorecards WHERE org_id = $1 AND call_id IN ({calls})"
            ),
        ),
        (
            "notes",
            format!(
                "SELECT COUNT(*) FROM notes WHERE org_id = $1 AND (contact_id = $2 OR conversation_id IN ({CONVERSATIONS}))"
            ),
        ),
        (
            "tasks",
            format!(
                "SELECT COUNT(*) FROM tasks WHERE org_id = $1 AND (contact_id = $2 OR conversation_id IN ({CONVERSATIONS}) OR call_id IN ({calls}))"
            ),
        ),
        (
            "timeline_events",
            format!(
                "SELECT COUNT(*) FROM timeline_events WHERE org_id = $1 AND (contact_id = $2 OR conversation_id IN ({CONVERSATIONS}) OR ref_id IN ({calls}))"
            ),
        ),
        (
            "phones",
            "SELECT COUNT(*) FROM contact_phones WHERE org_id = $1 AND contact_id = $2".into(),
        ),
        (
            "emails",
            "SELECT COUNT(*) FROM contact_emails WHERE org_id = $1 AND contact_id = $2".into(),
        ),
    ]
}

/// The deletes, in an order that leaves no row pointing at a deleted one.
fn deletes() -> Vec<String> {
    let calls = calls_sub();
    vec![
        format!(
            "DELETE FROM tasks WHERE org_id = $1 AND (contact_id = $2 OR conversation_id IN ({CONVERSATIONS}) OR call_id IN ({calls}))"
        ),
        format!(
            "DELETE FROM notes WHERE org_id = $1 AND (contact_id = $2 OR conversation_id IN ({CONVERSATIONS}))"
        ),
        format!(
            "DELETE FROM timeline_events WHERE org_id = $1 AND (contact_id = $2 OR conversation_id IN ({CONVERSATIONS}) OR ref_id IN ({calls}))"
        ),
        format!(
            "DELETE FROM jobs WHERE org_id = $1 AND CASE WHEN json_valid(payload) THEN json_extract(payload, '$.call_id') END IN ({calls})"
        ),
        // Segments, recordings' rows, analyses, scorecards and media events go by cascade.
        format!("DELETE FROM calls WHERE org_id = $1 AND id IN ({calls})"),
        // Messages (another module's table) go by cascade; deleting explicitly is what
        // triggers it (contacts → conversations is ON DELETE SET NULL).
        "DELETE FROM conversations WHERE org_id = $1 AND contact_id = $2".into(),
        "DELETE FROM contacts WHERE org_id = $1 AND id = $2".into(),
    ]
}

async fn has_table(conn: &mut SqliteConnection, name: &str) -> CrmResult<bool> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
    Ok(n > 0)
}

/// Deletes the contact and what belongs to it; returns what was deleted. Files outside
/// `recordings_dir` are never touched (a stored path is data, not an instruction).
pub async fn erase_contact(
    pool: &SqlitePool,
    recordings_dir: &Path,
    org_id: &str,
    id: &str,
) -> CrmResult<Value> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    if !super::contacts::exists(&mut tx, org_id, id).await? {
        return Err(CrmError::NotFound("contact"));
    }
    let calls = calls_sub();
    // A call on legal hold must survive (docs/retention.md); erasing the contact would delete
    // it, so the erasure waits until the holds are released. Nothing is changed.
    let held: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT call_id FROM call_retention WHERE org_id = $1 AND legal_hold = 1 AND call_id IN ({calls})"
    )))
    .bind(org_id)
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    if !held.is_empty() {
        return Err(CrmError::Conflict {
            message: "the contact has calls on legal hold; release the holds before erasing it"
                .into(),
            details: json!({ "reason": "legal_hold", "held_calls": held }),
        });
    }
    let mut files: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT path FROM recordings WHERE org_id = $1 AND call_id IN ({calls})"
    )))
    .bind(org_id)
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let transcripts: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CASE WHEN json_valid(payload) THEN json_extract(payload, '$.transcript_path') END FROM jobs
         WHERE org_id = $1 AND CASE WHEN json_valid(payload) THEN json_extract(payload, '$.call_id') END IN ({calls})"
    )))
    .bind(org_id)
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    files.extend(transcripts.into_iter().flatten());
    files.sort();
    files.dedup();

    let mut deleted = Map::new();
    for (name, sql) in counted() {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(org_id)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        deleted.insert(name.into(), json!(n));
    }
    if has_table(&mut tx, "messages").await? {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM messages WHERE conversation_id IN ({CONVERSATIONS})"
        )))
        .bind(org_id)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        deleted.insert("messages".into(), json!(n));
    }
    for sql in deletes() {
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(org_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let deleted = Value::Object(deleted);
    crate::webhooks::enqueue_event_in(
        &mut tx,
        org_id,
        CONTACT_DELETED,
        json!({ "id": id, "deleted": deleted }),
    )
    .await?;
    tx.commit().await?;

    let files = remove_files(recordings_dir, &files).await;
    Ok(json!({ "id": id, "deleted": deleted, "files": files }))
}

/// Removes the files; counts removed, already missing and failed ones.
async fn remove_files(recordings_dir: &Path, paths: &[String]) -> Value {
    let (mut removed, mut missing, mut failed) = (0u64, 0u64, 0u64);
    for p in paths {
        let path = PathBuf::from(p);
        if !path.starts_with(recordings_dir) || path.components().any(|c| c.as_os_str() == "..") {
            tracing::warn!(path = %p, "erase: not removing a file outside the recordings directory");
            failed += 1;
            continue;
        }
        match tokio::fs::remove_file(&path).await {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing += 1,
            Err(e) => {
                tracing::error!(path = %p, error = %e, "erase: could not remove a file; remove it by hand");
                failed += 1;
            }
        }
    }
    json!({ "removed": removed, "already_missing": missing, "failed": failed })
}

//! Transcript segments of a call. A processing run replaces the whole set in one transaction,
//! so a job that runs again (after a crash or a retry) never leaves duplicates.

use callscope_transcription::{Segment, SpeakerRole, Word};
use serde::Serialize;
use sqlx::{SqliteConnection, SqlitePool};

use crate::ids::new_id;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SegmentRow {
    pub id: String,
    #[serde(skip)]
    pub org_id: String,
    #[serde(skip)]
    pub call_id: String,
    pub seq: i64,
    pub speaker_role: String,
    pub speaker_label: String,
    pub channel: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: Option<String>,
    pub confidence: Option<f64>,
    /// JSON array text; decoded by [`SegmentRow::to_segment`].
    #[serde(skip)]
    pub words: String,
}

impl SegmentRow {
    /// Back to the library's type (for the transcript renderers and the API).
    pub fn to_segment(&self) -> Segment {
        let role = match self.speaker_role.as_str() {
            "agent" => SpeakerRole::Agent,
            "customer" => SpeakerRole::Customer,
            _ => SpeakerRole::Unknown,
        };
        let words: Vec<Word> = serde_json::from_str(&self.words).unwrap_or_default();
        Segment {
            channel: u16::try_from(self.channel).unwrap_or(0),
            role,
            speaker_label: self.speaker_label.clone(),
            start_ms: u64::try_from(self.start_ms).unwrap_or(0),
            end_ms: u64::try_from(self.end_ms).unwrap_or(0),
            text: self.text.clone(),
            confidence: self.confidence.map(|c| c as f32),
            words,
        }
    }
}

/// Delete the call's segments and write `segments` in their place. Runs on the caller's
/// connection so it can share the transaction that also records the call's new status.
pub async fn replace_for_call(
    conn: &mut SqliteConnection,
    org_id: &str,
    call_id: &str,
    segments: &[Segment],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM transcript_segments WHERE org_id = $1 AND call_id = $2")
        .bind(org_id)
        .bind(call_id)
        .execute(&mut *conn)
        .await?;
    for (seq, s) in segments.iter().enumerate() {
        let words = serde_json::to_string(&s.words).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO transcript_segments (id, org_id, call_id, seq, speaker_role, speaker_label,
                channel, start_ms, end_ms, text, confidence, words)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(new_id())
        .bind(org_id)
        .bind(call_id)
        .bind(seq as i64)
        .bind(s.role.as_str())
        .bind(&s.speaker_label)
        .bind(i64::from(s.channel))
        .bind(i64::try_from(s.start_ms).unwrap_or(i64::MAX))
        .bind(i64::try_from(s.end_ms).unwrap_or(i64::MAX))
        .bind(&s.text)
        .bind(s.confidence.map(f64::from))
        .bind(words)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn list_for_call(
    pool: &SqlitePool,
    org_id: &str,
    call_id: &str,
) -> Result<Vec<SegmentRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM transcript_segments WHERE org_id = $1 AND call_id = $2 ORDER BY start_ms, seq",
    )
    .bind(org_id)
    .bind(call_id)
    .fetch_all(pool)
    .await
}

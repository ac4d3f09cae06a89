//! Which answered calls are recorded: a trunk's setting wins over its organization's, which
//! wins over the server's `[sip.media] record_calls`. The B2BUA asks at the moment a call is
//! answered, on its own task, so the answer must not wait for the database: the overrides are
//! held in memory, loaded at start and reloaded whenever the API changes one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;

use callscope_sip::media::AnsweredCall;
use callscope_sip::rtp_media::RecordingPolicy;
use sqlx::SqlitePool;

#[derive(Default)]
struct Overrides {
    orgs: HashMap<String, bool>,
    trunks: HashMap<String, bool>,
}

pub struct DbRecordingPolicy {
    recordings_dir: PathBuf,
    default_on: bool,
    overrides: RwLock<Overrides>,
}

/// Where callscope writes the recording of a call it bridged (the same layout as uploads:
/// one directory per organization, the call id as the file name).
pub fn recording_path(recordings_dir: &std::path::Path, org_id: &str, call_id: &str) -> PathBuf {
    recordings_dir.join(org_id).join(format!("{call_id}.wav"))
}

impl DbRecordingPolicy {
    pub fn new(recordings_dir: PathBuf, default_on: bool) -> Self {
        Self {
            recordings_dir,
            default_on,
            overrides: RwLock::default(),
        }
    }

    /// Re-read every override from the database.
    pub async fn reload(&self, pool: &SqlitePool) -> Result<(), sqlx::Error> {
        let orgs: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, record_calls FROM organizations WHERE record_calls IS NOT NULL",
        )
        .fetch_all(pool)
        .await?;
        let trunks: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, record_calls FROM sip_trunks WHERE record_calls IS NOT NULL",
        )
        .fetch_all(pool)
        .await?;
        let fresh = Overrides {
            orgs: orgs.into_iter().map(|(id, v)| (id, v != 0)).collect(),
            trunks: trunks.into_iter().map(|(id, v)| (id, v != 0)).collect(),
        };
        *self.overrides.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// Whether a call of `org_id` through `trunk_id` is recorded.
    pub fn decides(&self, org_id: &str, trunk_id: Option<&str>) -> bool {
        let overrides = self.overrides.read().unwrap_or_else(|e| e.into_inner());
        trunk_id
            .and_then(|t| overrides.trunks.get(t).copied())
            .or_else(|| overrides.orgs.get(org_id).copied())
            .unwrap_or(self.default_on)
    }
}

impl RecordingPolicy for DbRecordingPolicy {
    fn recording_path(&self, call_id: &str, call: &AnsweredCall) -> Option<PathBuf> {
        if !self.decides(&call.org_id, call.trunk_id.as_deref()) {
            return None;
        }
        let path = recording_path(&self.recordings_dir, &call.org_id, call_id);
        // The organization's directory exists after its first upload or call; creating it
        // is one cheap syscall when it already does.
        if let Some(dir) = path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            tracing::warn!(call_id, error = %e, "cannot create the recordings directory");
            return None;
        }
        Some(path)
    }
}

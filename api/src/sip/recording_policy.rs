//! Which answered calls are recorded: the dialled route's setting wins over the trunk's, which
//! wins over the organization's, which wins over the server's `[sip.media] record_calls`. The B2BUA asks at the moment a call is
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
    /// (organization, DID in E.164) → setting.
    routes: HashMap<(String, String), bool>,
}

pub struct DbRecordingPolicy {
    recordings_dir: PathBuf,
    /// "wav" or "opus": the recorder writes the format the name says.
    extension: &'static str,
    default_on: bool,
    /// Region for reading a dialled DID written without a country code.
    region: String,
    overrides: RwLock<Overrides>,
}

/// Where callscope writes the recording of a call it bridged (the same layout as uploads:
/// one directory per organization, the call id as the file name).
pub fn recording_path(
    recordings_dir: &std::path::Path,
    org_id: &str,
    call_id: &str,
    extension: &str,
) -> PathBuf {
    recordings_dir
        .join(org_id)
        .join(format!("{call_id}.{extension}"))
}

impl DbRecordingPolicy {
    pub fn new(
        recordings_dir: PathBuf,
        extension: &'static str,
        default_on: bool,
        region: String,
    ) -> Self {
        Self {
            recordings_dir,
            extension,
            default_on,
            region,
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
        let routes: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT org_id, did_e164, record_calls FROM sip_routes WHERE record_calls IS NOT NULL",
        )
        .fetch_all(pool)
        .await?;
        let fresh = Overrides {
            orgs: orgs.into_iter().map(|(id, v)| (id, v != 0)).collect(),
            trunks: trunks.into_iter().map(|(id, v)| (id, v != 0)).collect(),
            routes: routes
                .into_iter()
                .map(|(org, did, v)| ((org, did), v != 0))
                .collect(),
        };
        *self.overrides.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// Whether a call of `org_id` through `trunk_id` to `dialled` is recorded.
    pub fn decides(&self, org_id: &str, trunk_id: Option<&str>, dialled: Option<&str>) -> bool {
        let overrides = self.overrides.read().unwrap_or_else(|e| e.into_inner());
        let route = || {
            if overrides.routes.is_empty() {
                return None;
            }
            let digits = super::numbers::dialled_digits(dialled?);
            let did = super::numbers::to_e164(&digits, &self.region)?;
            overrides.routes.get(&(org_id.to_string(), did)).copied()
        };
        route()
            .or_else(|| trunk_id.and_then(|t| overrides.trunks.get(t).copied()))
            .or_else(|| overrides.orgs.get(org_id).copied())
            .unwrap_or(self.default_on)
    }
}

impl RecordingPolicy for DbRecordingPolicy {
    fn recording_path(&self, call_id: &str, call: &AnsweredCall) -> Option<PathBuf> {
        if !self.decides(
            &call.org_id,
            call.trunk_id.as_deref(),
            call.dialled.as_deref(),
        ) {
            return None;
        }
        let path = recording_path(&self.recordings_dir, &call.org_id, call_id, self.extension);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{routes, trunks};
    use crate::store::{db, orgs};
    use callscope_sip::directory::RouteTarget;
    use callscope_sip::events::CallDirection;
    use callscope_sip::media::LegRole;

    fn answered(org_id: &str, trunk_id: Option<&str>, dialled: Option<&str>) -> AnsweredCall {
        AnsweredCall {
            org_id: org_id.into(),
            direction: CallDirection::Inbound,
            trunk_id: trunk_id.map(Into::into),
            agent_leg: LegRole::Callee,
            dialled: dialled.map(Into::into),
        }
    }

    /// route > trunk > organization > server default, each override removable (NULL).
    #[tokio::test]
    async fn the_most_specific_setting_decides() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let pool = db::connect(&url).await.unwrap();
        db::migrate(&pool).await.unwrap();
        let org = orgs::create_org(&pool, "acme").await.unwrap();
        let trunk = trunks::create_trunk(
            &pool,
            &org,
            &trunks::NewTrunk {
                name: "carrier",
                host: "127.0.0.9:5060",
                transport: "udp",
                username: None,
                password: None,
                inbound_acl: &[],
            },
        )
        .await
        .unwrap();
        let route = routes::create_route(
            &pool,
            &org,
            "+14155550100",
            &RouteTarget::Reject { status: 480 },
        )
        .await
        .unwrap();
        let policy = DbRecordingPolicy::new(dir.path().join("rec"), "wav", true, "US".into());
        let set = |table: &'static str, id: String, v: Option<i64>| {
            let pool = pool.clone();
            async move {
                let sql = match table {
                    "organizations" => "UPDATE organizations SET record_calls = $1 WHERE id = $2",
                    "sip_trunks" => "UPDATE sip_trunks SET record_calls = $1 WHERE id = $2",
                    _ => "UPDATE sip_routes SET record_calls = $1 WHERE id = $2",
                };
                sqlx::query(sql)
                    .bind(v)
                    .bind(id)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        };
        let call = answered(&org, Some(&trunk.trunk.id), Some("4155550100"));
        policy.reload(&pool).await.unwrap();
        let path = policy
            .recording_path("c1", &call)
            .expect("server default: on");
        assert_eq!(path, dir.path().join("rec").join(&org).join("c1.wav"));
        assert!(
            path.parent().unwrap().is_dir(),
            "the org directory is created"
        );

        set("organizations", org.clone(), Some(0)).await;
        policy.reload(&pool).await.unwrap();
        assert!(policy.recording_path("c1", &call).is_none(), "org off");
        set("sip_trunks", trunk.trunk.id.clone(), Some(1)).await;
        policy.reload(&pool).await.unwrap();
        assert!(
            policy.recording_path("c1", &call).is_some(),
            "trunk on beats org off"
        );
        // Another DID through the same trunk: the trunk decides.
        assert!(policy.decides(&org, Some(&trunk.trunk.id), Some("+1 415 555 0199")));
        set("sip_routes", route.id.clone(), Some(0)).await;
        policy.reload(&pool).await.unwrap();
        // The route matches the DID whatever its format.
        assert!(!policy.decides(&org, Some(&trunk.trunk.id), Some("+1 (415) 555-0100")));
        assert!(policy.decides(&org, Some(&trunk.trunk.id), Some("4155550199")));
        // No trunk (an internal call): the organization decides.
        assert!(!policy.decides(&org, None, Some("1002")));
        set("organizations", org.clone(), None).await;
        policy.reload(&pool).await.unwrap();
        assert!(
            policy.decides(&org, None, Some("1002")),
            "back to the server default"
        );
    }
}

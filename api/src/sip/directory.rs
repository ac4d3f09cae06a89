//! The SIP side's view of the database: [`callscope_sip::directory::Directory`] over the
//! store. Realm → organization, extension → user, source address → trunk, dialled number →
//! destination.

use std::net::{IpAddr, SocketAddr};

use callscope_sip::directory::{
    Destination, DirResult, Directory, DirectoryError, RingStrategy, RouteTarget, SipTrunk, SipUser,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::SqlitePool;

use super::routes::{self, Route};
use super::trunks::{self, TrunkWithAcl};
use super::users::{self, User};
use super::{domains, numbers};

pub struct DbDirectory {
    pool: SqlitePool,
    /// Region for numbers dialled without a country code (CLDR id, e.g. "US").
    default_region: String,
}

fn db_err(e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError(e.to_string())
}

fn to_sip_user(u: User) -> SipUser {
    SipUser {
        org_id: u.org_id,
        user_id: u.id,
        extension: u.extension,
        display_name: u.name,
        ha1_md5: u.sip_ha1_md5,
        ha1_sha256: u.sip_ha1_sha256,
    }
}

/// The trunk as the SIP side needs it, with its host resolved. A host name that does not
/// resolve is an error (the call fails 503), not "no trunk".
async fn to_sip_trunk(t: TrunkWithAcl) -> DirResult<SipTrunk> {
    let port = u16::try_from(t.trunk.port).map_err(db_err)?;
    let outbound_proxy = match t.trunk.host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => tokio::net::lookup_host((t.trunk.host.as_str(), port))
            .await
            .map_err(|e| DirectoryError(format!("resolving trunk host {}: {e}", t.trunk.host)))?
            .next()
            .ok_or_else(|| DirectoryError(format!("trunk host {} has no address", t.trunk.host)))?,
    };
    Ok(SipTrunk {
        org_id: t.trunk.org_id,
        trunk_id: t.trunk.id,
        name: t.trunk.name,
        outbound_proxy,
        username: t.trunk.username,
        password: t.trunk.password,
        inbound_acl: t.acl.iter().map(|c| (c.network, c.prefix_len)).collect(),
    })
}

impl DbDirectory {
    pub fn new(pool: SqlitePool, default_region: impl Into<String>) -> Self {
        Self {
            pool,
            default_region: default_region.into(),
        }
    }

    /// A route's target, with a longest-idle ring group's members in ringing order.
    async fn target_of(&self, org_id: &str, route: Route) -> DirResult<RouteTarget> {
        Ok(match route.target {
            RouteTarget::RingGroup {
                members,
                strategy: RingStrategy::LongestIdle,
                member_timeout_s,
                total_timeout_s,
            } => RouteTarget::RingGroup {
                members: self.longest_idle_first(org_id, members).await?,
                strategy: RingStrategy::LongestIdle,
                member_timeout_s,
                total_timeout_s,
            },
            other => other,
        })
    }

    /// Members ordered by the end of their last call, oldest first; never-called first of all.
    /// Ties keep the configured order.
    async fn longest_idle_first(
        &self,
        org_id: &str,
        members: Vec<String>,
    ) -> DirResult<Vec<String>> {
        let mut keyed = Vec::with_capacity(members.len());
        for (pos, m) in members.into_iter().enumerate() {
            let last: Option<i64> = users::get_user(&self.pool, org_id, &m)
                .await
                .map_err(db_err)?
                .and_then(|u| u.last_call_ended_at);
            keyed.push((last.unwrap_or(i64::MIN), pos, m));
        }
        keyed.sort();
        Ok(keyed.into_iter().map(|(_, _, m)| m).collect())
    }

    async fn by_extension(&self, org_id: &str, dialled: &str) -> DirResult<Option<Destination>> {
        if !users::is_valid_extension(dialled) {
            return Ok(None);
        }
        Ok(users::get_by_extension(&self.pool, org_id, dialled)
            .await
            .map_err(db_err)?
            .map(|u| Destination::Internal(RouteTarget::User { user_id: u.id })))
    }

    async fn by_did(&self, org_id: &str, e164: &str) -> DirResult<Option<Destination>> {
        match routes::route_for_did(&self.pool, org_id, e164)
            .await
            .map_err(db_err)?
        {
            Some(route) => Ok(Some(Destination::Internal(
                self.target_of(org_id, route).await?,
            ))),
            None => Ok(None),
        }
    }
}

impl Directory for DbDirectory {
    fn user_by_username<'a>(
        &'a self,
        realm: &'a str,
        username: &'a str,
    ) -> BoxFuture<'a, DirResult<Option<SipUser>>> {
        async move {
            if !users::is_valid_extension(username) {
                return Ok(None);
            }
            let Some(org_id) = domains::org_by_realm(&self.pool, realm)
                .await
                .map_err(db_err)?
            else {
                return Ok(None);
            };
            Ok(users::get_by_extension(&self.pool, &org_id, username)
                .await
                .map_err(db_err)?
                .map(to_sip_user))
        }
        .boxed()
    }

    fn trunk_by_source(&self, source: IpAddr) -> BoxFuture<'_, DirResult<Option<SipTrunk>>> {
        async move {
            match trunks::trunk_by_source(&self.pool, source)
                .await
                .map_err(db_err)?
            {
                Some(t) => Ok(Some(to_sip_trunk(t).await?)),
                None => Ok(None),
            }
        }
        .boxed()
    }

    fn route_from_user<'a>(
        &'a self,
        org_id: &'a str,
        dialled: &'a str,
    ) -> BoxFuture<'a, DirResult<Destination>> {
        async move {
            let dialled = numbers::dialled_digits(dialled);
            if let Some(d) = self.by_extension(org_id, &dialled).await? {
                return Ok(d);
            }
            let Some(e164) = numbers::to_e164(&dialled, &self.default_region) else {
                return Ok(Destination::NotFound);
            };
            // One of our own DIDs: route it internally instead of out and back in.
            if let Some(d) = self.by_did(org_id, &e164).await? {
                return Ok(d);
            }
            let first_trunk = trunks::list_trunks(&self.pool, org_id)
                .await
                .map_err(db_err)?
                .into_iter()
                .next();
            match first_trunk {
                Some(t) => Ok(Destination::External {
                    number_e164: e164,
                    trunk: to_sip_trunk(t).await?,
                }),
                None => Ok(Destination::NotFound),
            }
        }
        .boxed()
    }

    fn route_inbound<'a>(
        &'a self,
        trunk: &'a SipTrunk,
        did: &'a str,
    ) -> BoxFuture<'a, DirResult<Destination>> {
        async move {
            let did = numbers::dialled_digits(did);
            if let Some(e164) = numbers::to_e164(&did, &self.default_region)
                && let Some(d) = self.by_did(&trunk.org_id, &e164).await?
            {
                return Ok(d);
            }
            // A PBX trunk may send calls straight to an extension.
            if let Some(d) = self.by_extension(&trunk.org_id, &did).await? {
                return Ok(d);
            }
            Ok(Destination::NotFound)
        }
        .boxed()
    }

    fn realm_of_org<'a>(&'a self, org_id: &'a str) -> BoxFuture<'a, DirResult<Option<String>>> {
        async move {
            if let Some(r) = domains::realm_of_org(&self.pool, org_id)
                .await
                .map_err(db_err)?
            {
                return Ok(Some(r));
            }
            let mut conn = self.pool.acquire().await.map_err(db_err)?;
            match domains::ensure_realm(&mut conn, org_id).await {
                Ok(r) => Ok(Some(r)),
                Err(domains::DomainError::NoOrg) => Ok(None),
                Err(e) => Err(db_err(e)),
            }
        }
        .boxed()
    }
}

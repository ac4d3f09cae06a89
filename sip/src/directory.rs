//! What the SIP side asks the application: who may register, which trunks exist, where a
//! dialled number goes. Implemented by the api crate over the store; tests may implement it
//! in memory (an in-memory directory is a real implementation, not a double).

use std::net::{IpAddr, SocketAddr};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// A SIP user (an agent's phone or softphone): registers and places/receives calls.
/// Only digest HA1 values are stored, never the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipUser {
    pub org_id: String,
    pub user_id: String,
    /// The digest username and the extension other users dial.
    pub extension: String,
    pub display_name: String,
    /// hex MD5(username ":" realm ":" password)
    pub ha1_md5: String,
    /// hex SHA-256(username ":" realm ":" password) (RFC 8760)
    pub ha1_sha256: String,
}

/// An upstream SIP trunk: calls to external numbers go out through it; calls from its
/// addresses (ACL) are inbound calls to our DIDs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipTrunk {
    pub org_id: String,
    pub trunk_id: String,
    pub name: String,
    /// Where outbound INVITEs go.
    pub outbound_proxy: SocketAddr,
    /// Credentials for the trunk's 401/407 challenges (outbound), if it asks.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Source networks allowed to send us inbound calls, as (address, prefix length).
    pub inbound_acl: Vec<(IpAddr, u8)>,
}

/// How a ring group rings its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingStrategy {
    /// Ring every available member at once; the first to answer wins.
    RingAll,
    /// Ring members one at a time, longest idle first, each for `member_timeout_s`.
    LongestIdle,
}

/// Where an inbound call to a DID goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RouteTarget {
    User {
        user_id: String,
    },
    RingGroup {
        members: Vec<String>,
        strategy: RingStrategy,
        member_timeout_s: u32,
        total_timeout_s: u32,
    },
    Reject {
        status: u16,
    },
}

/// The result of asking where a dialled number goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A user of the same organization (by extension or through a DID route).
    Internal(RouteTarget),
    /// An external number (E.164) to be sent out through this trunk.
    External {
        number_e164: String,
        trunk: SipTrunk,
    },
    /// Nothing matches: answer 404.
    NotFound,
}

#[derive(Debug, thiserror::Error)]
#[error("directory lookup failed: {0}")]
pub struct DirectoryError(pub String);

pub type DirResult<T> = Result<T, DirectoryError>;

/// The application's side of SIP lookups. All methods are scoped to an organization except
/// the two that establish it (`user_by_extension` within a realm, `trunk_by_source`).
pub trait Directory: Send + Sync + 'static {
    /// The user registering or calling as `username` in `realm` (realm = the organization's
    /// SIP domain). `None` for unknown users — the caller must not reveal that difference.
    fn user_by_username<'a>(
        &'a self,
        realm: &'a str,
        username: &'a str,
    ) -> BoxFuture<'a, DirResult<Option<SipUser>>>;
    /// The trunk whose inbound ACL contains `source`.
    fn trunk_by_source(&self, source: IpAddr) -> BoxFuture<'_, DirResult<Option<SipTrunk>>>;
    /// Where a user of `org_id` dialling `dialled` goes (extension, or external via trunk).
    fn route_from_user<'a>(
        &'a self,
        org_id: &'a str,
        dialled: &'a str,
    ) -> BoxFuture<'a, DirResult<Destination>>;
    /// Where a call arriving on `trunk` for `did` goes.
    fn route_inbound<'a>(
        &'a self,
        trunk: &'a SipTrunk,
        did: &'a str,
    ) -> BoxFuture<'a, DirResult<Destination>>;
    /// The organization's SIP realm (digest realm and domain).
    fn realm_of_org<'a>(&'a self, org_id: &'a str) -> BoxFuture<'a, DirResult<Option<String>>>;
}

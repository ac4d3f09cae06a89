//! What a caller may do: permissions, the roles that bundle them, and API keys' own sets.
//!
//! A permission names one capability of the API ("read every call", "configure trackers and
//! rules"). Users get theirs from their role; an API key carries an explicit set chosen when
//! it is created (legacy keys made before permissions existed keep full access). Handlers ask
//! for a permission with [`crate::auth::OrgCtx::require`]; which calls a caller can see at all
//! is decided in the store ([`crate::store::calls::CallAccess`]), so a handler cannot forget
//! to filter.

use serde::Serialize;

/// One capability. The string form (`as_str`) is what the API shows and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Permission {
    /// Read every call of the organization (list, detail, transcript, recording).
    CallsReadAll,
    /// Read the calls the user took part in (as the answering or assigned agent).
    CallsReadOwn,
    /// Upload recordings, post PBX webhooks, request re-analysis.
    CallsWrite,
    /// Hang up, hold, transfer and pause recording of live calls the caller can see.
    CallsControl,
    /// See call intelligence: the analysis (sentiment, trackers, flags, summary).
    IntelligenceRead,
    /// Score calls with scorecards and override the call type.
    ScorecardsReview,
    /// Configure trackers, compliance rules, scorecard templates, analysis and recording
    /// settings.
    CallSettingsManage,
    /// Read contacts, conversations and their timelines.
    ContactsRead,
    /// Create, edit, merge and delete contacts; notes and tasks.
    ContactsWrite,
    /// Send and post messages in conversations.
    MessagesWrite,
    /// Create and delete users, change roles.
    UsersManage,
    /// Create, rename and delete teams; add and remove their members and leads.
    TeamsManage,
    /// SIP trunks, routes and the SIP domain.
    TelephonyManage,
    /// Outbound webhook endpoints and their delivery log.
    WebhooksManage,
    /// Create, list and revoke API keys.
    ApiKeysManage,
    /// Organization-wide reports and exports.
    AnalyticsRead,
    /// Messaging channels (API inboxes, WhatsApp numbers) and their secrets.
    ChannelsManage,
    /// The organization's retention policy and running its purge (deletes data).
    RetentionManage,
    /// Put calls on legal hold and release them (a held call is never purged).
    LegalHoldManage,
    /// Read the audit log.
    AuditRead,
}

impl Permission {
    pub const ALL: [Permission; 20] = [
        Permission::CallsReadAll,
        Permission::CallsReadOwn,
        Permission::CallsWrite,
        Permission::CallsControl,
        Permission::IntelligenceRead,
        Permission::ScorecardsReview,
        Permission::CallSettingsManage,
        Permission::ContactsRead,
        Permission::ContactsWrite,
        Permission::MessagesWrite,
        Permission::UsersManage,
        Permission::TeamsManage,
        Permission::TelephonyManage,
        Permission::WebhooksManage,
        Permission::ApiKeysManage,
        Permission::AnalyticsRead,
        Permission::ChannelsManage,
        Permission::RetentionManage,
        Permission::LegalHoldManage,
        Permission::AuditRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::CallsReadAll => "calls.read_all",
            Permission::CallsReadOwn => "calls.read_own",
            Permission::CallsWrite => "calls.write",
            Permission::CallsControl => "calls.control",
            Permission::IntelligenceRead => "intelligence.read",
            Permission::ScorecardsReview => "scorecards.review",
            Permission::CallSettingsManage => "call_settings.manage",
            Permission::ContactsRead => "contacts.read",
            Permission::ContactsWrite => "contacts.write",
            Permission::MessagesWrite => "messages.write",
            Permission::UsersManage => "users.manage",
            Permission::TeamsManage => "teams.manage",
            Permission::TelephonyManage => "telephony.manage",
            Permission::WebhooksManage => "webhooks.manage",
            Permission::ApiKeysManage => "api_keys.manage",
            Permission::AnalyticsRead => "analytics.read",
            Permission::ChannelsManage => "channels.manage",
            Permission::RetentionManage => "retention.manage",
            Permission::LegalHoldManage => "legal_hold.manage",
            Permission::AuditRead => "audit.read",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(u32);

impl Permissions {
    pub fn none() -> Self {
        Permissions(0)
    }

    pub fn all() -> Self {
        Permission::ALL.into_iter().collect()
    }

    pub fn has(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// True if every permission of `other` is in `self` (a caller may hand out only what it
    /// holds).
    pub fn covers(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn names(self) -> Vec<&'static str> {
        Permission::ALL
            .into_iter()
            .filter(|p| self.has(*p))
            .map(Permission::as_str)
            .collect()
    }

    /// Parses a list of names; the first unknown name is the error.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        names
            .into_iter()
            .map(|n| Permission::parse(n.trim()).ok_or_else(|| n.to_string()))
            .collect()
    }

    /// The stored form: names separated by spaces (as OAuth scopes are).
    pub fn to_stored(self) -> String {
        self.names().join(" ")
    }

    /// Reads the stored form; unknown names (from a newer version) are skipped, never widened.
    pub fn from_stored(stored: &str) -> Self {
        stored
            .split_whitespace()
            .filter_map(Permission::parse)
            .collect()
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Permissions(iter.into_iter().fold(0, |acc, p| acc | p.bit()))
    }
}

/// A user's role, from least to most powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agent,
    /// The QA manager: reads every call, scores them, configures call intelligence.
    Supervisor,
    Admin,
    Owner,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "agent" => Some(Role::Agent),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// What the role may do. Admins and owners differ only in who may appoint whom
    /// ([`Role::may_assign`]).
    pub fn permissions(self) -> Permissions {
        use Permission::*;
        match self {
            Role::Agent => [
                CallsReadOwn,
                CallsControl,
                IntelligenceRead,
                ContactsRead,
                ContactsWrite,
                MessagesWrite,
            ]
            .into_iter()
            .collect(),
            Role::Supervisor => [
                CallsReadAll,
                CallsReadOwn,
                CallsWrite,
                CallsControl,
                IntelligenceRead,
                ScorecardsReview,
                CallSettingsManage,
                ContactsRead,
                ContactsWrite,
                MessagesWrite,
                AnalyticsRead,
                LegalHoldManage,
            ]
            .into_iter()
            .collect(),
            Role::Admin | Role::Owner => Permissions::all(),
        }
    }

    /// Whether a user of this role may give `other` to someone: nobody appoints above
    /// themselves, and only owners appoint owners.
    pub fn may_assign(self, other: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => other <= Role::Admin,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        let set = Permissions::parse(["calls.read_own", "contacts.read"]).unwrap();
        assert_eq!(Permissions::from_stored(&set.to_stored()), set);
        assert_eq!(set.names(), vec!["calls.read_own", "contacts.read"]);
    }

    #[test]
    fn unknown_names_are_refused_on_input_and_skipped_when_stored() {
        assert_eq!(
            Permissions::parse(["calls.read_all", "calls.delete_everything"]),
            Err("calls.delete_everything".to_string())
        );
        assert_eq!(
            Permissions::from_stored("calls.read_all future.thing"),
            [Permission::CallsReadAll].into_iter().collect()
        );
    }

    #[test]
    fn agents_see_only_their_calls_and_configure_nothing() {
        let agent = Role::Agent.permissions();
        assert!(agent.has(Permission::CallsReadOwn));
        assert!(!agent.has(Permission::CallsReadAll));
        assert!(!agent.has(Permission::CallSettingsManage));
        assert!(!agent.has(Permission::UsersManage));
        let supervisor = Role::Supervisor.permissions();
        assert!(supervisor.has(Permission::CallsReadAll));
        assert!(supervisor.has(Permission::CallSettingsManage));
        assert!(!supervisor.has(Permission::UsersManage));
        assert!(Role::Admin.permissions().covers(supervisor));
        assert!(Permissions::all().covers(Role::Owner.permissions()));
    }

    #[test]
    fn nobody_appoints_above_themselves() {
        assert!(Role::Owner.may_assign(Role::Owner));
        assert!(Role::Admin.may_assign(Role::Admin));
        assert!(!Role::Admin.may_assign(Role::Owner));
        assert!(!Role::Supervisor.may_assign(Role::Agent));
        assert!(!Role::Agent.may_assign(Role::Agent));
    }
}

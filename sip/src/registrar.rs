//! The registrar (RFC 3261 §10.3) and the in-memory location service it keeps.
//!
//! A REGISTER is digest-authenticated (401 challenge, see [`crate::auth`]); the
//! authenticated user may only register its own address-of-record (To URI user = its
//! extension, else 403). Bindings: several contacts per user, each with its own expiry
//! (contact `expires` param, else the Expires header, else the default), clamped to
//! `max_expires`; a non-zero expiry below `min_expires` gets 423 with Min-Expires.
//! `Contact: *` with `Expires: 0` removes all bindings; a contact with expiry 0 removes that
//! one; a REGISTER without Contact only lists. Every 200 lists the current bindings with
//! their remaining seconds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rsipstack::sip::headers::{Header, MinExpires};
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Request, StatusCode, Transport};
use rsipstack::transaction::transaction::Transaction;

use crate::auth::DigestAuthenticator;
use crate::config::RegistrarConfig;
use crate::directory::SipUser;
use crate::handler::{AuthOutcome, Locator, RegisteredContact};
use crate::server::response_for;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Debug, Clone)]
struct Binding {
    contact: RegisteredContact,
    /// Order of registration (later = larger); ms timestamps tie too easily.
    sequence: u64,
}

type UserKey = (String, String);

/// Live registrations, in memory. Expired bindings are invisible at once and removed by
/// [`LocationService::sweep`] (the server runs it every few seconds).
#[derive(Debug, Default)]
pub struct LocationService {
    bindings: Mutex<HashMap<UserKey, Vec<Binding>>>,
    sequence: std::sync::atomic::AtomicU64,
}

impl LocationService {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<UserKey, Vec<Binding>>) -> T) -> T {
        let mut map = self.bindings.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut map)
    }

    /// Drop expired bindings (and users left without any).
    pub fn sweep(&self, now_ms: i64) {
        self.with(|map| {
            map.retain(|_, list| {
                list.retain(|b| b.contact.expires_at_ms > now_ms);
                !list.is_empty()
            })
        });
    }

    /// Total live bindings (all users).
    pub fn binding_count(&self, now_ms: i64) -> usize {
        self.with(|map| {
            map.values()
                .flat_map(|l| l.iter())
                .filter(|b| b.contact.expires_at_ms > now_ms)
                .count()
        })
    }

    fn contacts_at(&self, org_id: &str, user_id: &str, now_ms: i64) -> Vec<RegisteredContact> {
        let mut list: Vec<Binding> = self.with(|map| {
            map.get(&(org_id.to_string(), user_id.to_string()))
                .map(|l| {
                    l.iter()
                        .filter(|b| b.contact.expires_at_ms > now_ms)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        });
        list.sort_by_key(|b| std::cmp::Reverse(b.sequence));
        list.into_iter().map(|b| b.contact).collect()
    }

    fn apply(&self, key: &UserKey, changes: Vec<Change>, now_ms: i64, max_per_user: usize) {
        let sequence = self
            .sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.with(|map| {
            let list = map.entry(key.clone()).or_default();
            list.retain(|b| b.contact.expires_at_ms > now_ms);
            for change in changes {
                match change {
                    Change::RemoveAll => list.clear(),
                    Change::Remove(uri) => list.retain(|b| b.contact.uri != uri),
                    Change::Upsert(contact) => {
                        list.retain(|b| b.contact.uri != contact.uri);
                        list.push(Binding { contact, sequence });
                        // Oldest first out when a user piles up bindings.
                        while list.len() > max_per_user.max(1) {
                            list.remove(0);
                        }
                    }
                }
            }
            if list.is_empty() {
                map.remove(key);
            }
        });
    }
}

impl Locator for LocationService {
    fn contacts(&self, org_id: &str, user_id: &str) -> Vec<RegisteredContact> {
        self.contacts_at(org_id, user_id, now_ms())
    }
}

enum Change {
    RemoveAll,
    Remove(String),
    Upsert(RegisteredContact),
}

/// Why a REGISTER's bindings were refused.
#[derive(Debug, PartialEq, Eq)]
enum BindingError {
    /// 400
    Malformed(&'static str),
    /// 423 with Min-Expires
    TooBrief,
}

pub struct Registrar {
    config: RegistrarConfig,
    authenticator: Arc<DigestAuthenticator>,
    location: Arc<LocationService>,
    server_name: String,
}

impl Registrar {
    pub fn new(
        config: RegistrarConfig,
        authenticator: Arc<DigestAuthenticator>,
        location: Arc<LocationService>,
        server_name: String,
    ) -> Self {
        Self {
            config,
            authenticator,
            location,
            server_name,
        }
    }

    /// Handle one REGISTER server transaction to its final response.
    pub async fn handle(&self, mut tx: Transaction, source: SocketAddr) {
        let user = match self
            .authenticator
            .authenticate_user(&tx.original, source, false)
            .await
        {
            AuthOutcome::User(user) => user,
            AuthOutcome::Respond(response) => {
                let _ = tx.respond(response).await;
                return;
            }
            AuthOutcome::Trunk(_) => {
                let response = response_for(&tx.original, StatusCode::Forbidden, &self.server_name);
                let _ = tx.respond(response).await;
                return;
            }
        };
        let transport = tx
            .connection
            .as_ref()
            .and_then(|c| c.get_addr().r#type)
            .unwrap_or(Transport::Udp);
        let response = self.register(&tx.original, &user, source, transport, now_ms());
        let _ = tx.respond(response).await;
    }

    fn register(
        &self,
        request: &Request,
        user: &SipUser,
        source: SocketAddr,
        transport: Transport,
        now: i64,
    ) -> rsipstack::sip::Response {
        // Only your own address-of-record.
        let aor_user = request
            .to_header()
            .ok()
            .and_then(|t| t.uri().ok())
            .and_then(|u| u.auth.map(|a| a.user));
        if aor_user.as_deref() != Some(user.extension.as_str()) {
            return response_for(request, StatusCode::Forbidden, &self.server_name);
        }
        let key = (user.org_id.clone(), user.user_id.clone());
        match self.changes(request, source, transport, now) {
            Ok(changes) => {
                self.location
                    .apply(&key, changes, now, self.config.max_contacts_per_user);
            }
            Err(BindingError::Malformed(why)) => {
                tracing::debug!(why, "bad REGISTER");
                return response_for(request, StatusCode::BadRequest, &self.server_name);
            }
            Err(BindingError::TooBrief) => {
                let mut response =
                    response_for(request, StatusCode::IntervalTooBrief, &self.server_name);
                response.headers.push(Header::MinExpires(MinExpires::new(
                    self.config.min_expires.to_string(),
                )));
                return response;
            }
        }
        let mut response = response_for(request, StatusCode::OK, &self.server_name);
        for contact in self.location.contacts_at(&key.0, &key.1, now) {
            let remaining = ((contact.expires_at_ms - now).max(0) + 999) / 1000;
            response.headers.push(Header::Contact(
                format!("<{}>;expires={remaining}", contact.uri).into(),
            ));
        }
        response
    }

    fn changes(
        &self,
        request: &Request,
        source: SocketAddr,
        transport: Transport,
        now: i64,
    ) -> Result<Vec<Change>, BindingError> {
        let header_expires = match request.expires_header() {
            Some(e) => Some(
                e.value()
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| BindingError::Malformed("Expires is not a number"))?,
            ),
            None => None,
        };
        let contact_headers = request.contact_headers();
        if contact_headers.iter().any(|c| c.value().trim() == "*") {
            // RFC 3261 §10.3 step 6: "*" only alone, and only with Expires: 0.
            if contact_headers.len() != 1 || header_expires != Some(0) {
                return Err(BindingError::Malformed(
                    "Contact: * needs Expires: 0 and no other contact",
                ));
            }
            return Ok(vec![Change::RemoveAll]);
        }
        let mut contacts = Vec::new();
        for header in &contact_headers {
            contacts.extend(
                crate::validate::parse_contact_list(header.value())
                    .map_err(|_| BindingError::Malformed("unreadable Contact"))?,
            );
        }
        let mut changes = Vec::with_capacity(contacts.len());
        for contact in contacts {
            let requested = contact
                .expires()
                .or(header_expires)
                .unwrap_or(self.config.default_expires);
            let uri = contact.uri.to_string();
            if requested == 0 {
                changes.push(Change::Remove(uri));
                continue;
            }
            if requested < self.config.min_expires {
                return Err(BindingError::TooBrief);
            }
            let granted = requested.min(self.config.max_expires);
            changes.push(Change::Upsert(RegisteredContact {
                uri,
                received: source,
                transport,
                expires_at_ms: now + i64::from(granted) * 1000,
            }));
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(uri: &str, expires_at_ms: i64) -> RegisteredContact {
        RegisteredContact {
            uri: uri.into(),
            received: "127.0.0.1:5070".parse().unwrap(),
            transport: Transport::Udp,
            expires_at_ms,
        }
    }

    #[test]
    fn location_keeps_several_contacts_most_recent_first_and_sweeps_expired() {
        let loc = LocationService::new();
        let key = ("org".to_string(), "u1".to_string());
        loc.apply(
            &key,
            vec![Change::Upsert(contact("sip:a@h", 10_000))],
            0,
            10,
        );
        loc.apply(&key, vec![Change::Upsert(contact("sip:b@h", 5_000))], 1, 10);
        let got: Vec<String> = loc
            .contacts_at("org", "u1", 2)
            .into_iter()
            .map(|c| c.uri)
            .collect();
        assert_eq!(got, vec!["sip:b@h", "sip:a@h"]);
        assert_eq!(loc.contacts_at("org", "u1", 6_000).len(), 1);
        loc.sweep(11_000);
        assert_eq!(loc.binding_count(0), 0);
    }

    #[test]
    fn per_user_cap_drops_the_oldest() {
        let loc = LocationService::new();
        let key = ("org".to_string(), "u1".to_string());
        for i in 0..5 {
            loc.apply(
                &key,
                vec![Change::Upsert(contact(&format!("sip:{i}@h"), 100_000))],
                i,
                3,
            );
        }
        let got: Vec<String> = loc
            .contacts_at("org", "u1", 10)
            .into_iter()
            .map(|c| c.uri)
            .collect();
        assert_eq!(got, vec!["sip:4@h", "sip:3@h", "sip:2@h"]);
    }
}

//! The seams inside the sip crate between the server (transports, dispatcher, registrar,
//! authentication — `server`, `registrar`, `auth`) and call control (`call`, the B2BUA).
//! The server owns the rsipstack endpoint and dispatches: REGISTER → registrar, OPTIONS →
//! 200, INVITE and every in-dialog or call-related request (ACK, BYE, CANCEL, REFER, UPDATE,
//! INFO, NOTIFY, re-INVITE) → the [`CallHandler`].

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::{Request, Response};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::transaction::Transaction;

use crate::directory::{Directory, SipTrunk, SipUser};
use crate::events::CallEvent;
use crate::media::MediaControl;

/// A registered contact of a user (from REGISTER), where INVITEs to that user go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredContact {
    /// The Contact URI as registered.
    pub uri: String,
    /// Where the REGISTER really came from (NAT / rport): send requests here.
    pub received: SocketAddr,
    pub transport: rsipstack::sip::Transport,
    pub expires_at_ms: i64,
}

/// The location service: live registrations, kept by the registrar.
pub trait Locator: Send + Sync + 'static {
    /// Unexpired contacts of a user, most recent first.
    fn contacts(&self, org_id: &str, user_id: &str) -> Vec<RegisteredContact>;
}

/// Who sent a request, after authentication.
#[derive(Debug, Clone)]
pub enum AuthOutcome {
    /// A user proved its credentials (digest).
    User(SipUser),
    /// The request came from a trunk's inbound ACL.
    Trunk(SipTrunk),
    /// Send this 401/407 challenge (or a 403/429/503 when banned or rate-limited) and stop.
    Respond(Response),
}

/// Authenticates requests (digest MD5/SHA-256, trunk ACLs, failure counting and bans).
pub trait RequestAuthenticator: Send + Sync + 'static {
    /// `proxy`: challenge with 407/Proxy-Authenticate (INVITE) instead of 401 (REGISTER).
    fn authenticate<'a>(
        &'a self,
        request: &'a Request,
        source: SocketAddr,
        proxy: bool,
    ) -> BoxFuture<'a, AuthOutcome>;
}

/// Everything call control needs from the server. Built once by `server::SipServer::start`.
pub struct SipContext {
    pub endpoint: EndpointInnerRef,
    pub dialog_layer: Arc<DialogLayer>,
    pub directory: Arc<dyn Directory>,
    pub locator: Arc<dyn Locator>,
    pub authenticator: Arc<dyn RequestAuthenticator>,
    pub media: Arc<dyn MediaControl>,
    /// Call events for the application; a full channel drops (counted), never blocks SIP.
    pub events: tokio::sync::mpsc::Sender<CallEvent>,
    /// Our address as peers should see it (Via, Contact, Record-Route).
    pub public_addr: SocketAddr,
}

/// Call control's entry point: the server hands it every call-related transaction.
pub trait CallHandler: Send + Sync + 'static {
    fn on_transaction(
        &self,
        transaction: Transaction,
        source: SocketAddr,
    ) -> BoxFuture<'static, ()>;
}

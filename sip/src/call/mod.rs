//! The back-to-back user agent: every call is two SIP dialogs (the caller's leg, which we
//! answer, and the callee's leg, which we place with a new Call-ID and tags), joined by one
//! task per call that relays what must cross (ringing, answer, hold, hang-up) and owns the
//! call's state. [`CallManager`] receives transactions from the server ([`CallHandler`]) and
//! commands from the API ([`CallControl`]).
//!
//! Every task the manager starts is counted ([`CallManager::live_tasks`]) so tests can show
//! that a call leaves nothing behind.

mod headers;
mod routing;
mod session;
mod trunk_auth;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Method, StatusCode, Uri};
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::control::{CallControl, ControlError, ControlResult, DeviceCommand, DeviceReply};
use crate::events::CallEvent;
use crate::handler::{CallHandler, SipContext};
use crate::softphones::{NoSoftphones, Softphones};

/// Tunables of call control. Defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// How long a destination without its own timeout rings before 480.
    pub no_answer_timeout: Duration,
    /// Smallest Session-Expires we accept (RFC 4028 Min-SE; smaller gets 422).
    pub min_session_expires: u32,
    /// Largest session interval we grant (a larger request is lowered to it).
    pub max_session_expires: u32,
    /// In-dialog OPTIONS to both legs of an answered call at this interval: a leg that does
    /// not answer (or answers 408/481) ends the call with cause "timeout". `None` disables
    /// it (some test UAs treat an unexpected OPTIONS as an error).
    pub keepalive_interval: Option<Duration>,
    /// How long one keepalive OPTIONS may take.
    pub keepalive_timeout: Duration,
    /// How long a BYE we send may wait for its answer before the leg is forgotten anyway
    /// (a dead peer would otherwise keep a task for 64*T1).
    pub bye_timeout: Duration,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            no_answer_timeout: Duration::from_secs(60),
            min_session_expires: 90,
            max_session_expires: 7200,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_timeout: Duration::from_secs(10),
            bye_timeout: Duration::from_secs(8),
        }
    }
}

/// Commands the API sends to a call's task.
pub(crate) enum Command {
    Hangup(oneshot::Sender<ControlResult<()>>),
    Hold(oneshot::Sender<ControlResult<()>>),
    Resume(oneshot::Sender<ControlResult<()>>),
    Transfer(String, oneshot::Sender<ControlResult<()>>),
    /// From the browser softphone of a user (who must be in the call).
    Device(DeviceRequest),
}

pub(crate) struct DeviceRequest {
    pub(crate) user_id: String,
    pub(crate) command: DeviceCommand,
    pub(crate) reply: oneshot::Sender<ControlResult<DeviceReply>>,
}

pub(crate) struct CallEntry {
    org_id: String,
    commands: mpsc::Sender<Command>,
}

pub(crate) struct Inner {
    pub(crate) ctx: SipContext,
    pub(crate) config: CallConfig,
    pub(crate) softphones: Arc<dyn Softphones>,
    calls: Mutex<HashMap<String, CallEntry>>,
    tasks: AtomicUsize,
    /// user id → number of answered calls the user is in.
    busy: Mutex<HashMap<String, usize>>,
    /// user id → when the user's last call ended (ms since epoch).
    idle_since: Mutex<HashMap<String, i64>>,
    dropped_events: AtomicU64,
}

/// Counts a running task for as long as it lives.
pub(crate) struct TaskGuard(Arc<Inner>);

impl TaskGuard {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        inner.tasks.fetch_add(1, Ordering::SeqCst);
        Self(inner)
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.tasks.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps stay valid even if a holder panicked; keep serving calls.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    pub(crate) fn emit(&self, event: CallEvent) {
        if self.ctx.events.try_send(event).is_err() {
            self.dropped_events.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Spawn a task that is counted in `live_tasks`.
    pub(crate) fn spawn<F>(self: &Arc<Self>, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let guard = TaskGuard::new(self.clone());
        tokio::spawn(async move {
            let _guard = guard;
            future.await;
        });
    }

    pub(crate) fn our_contact(&self) -> Uri {
        Uri {
            scheme: Some(rsipstack::sip::Scheme::Sip),
            auth: Some(rsipstack::sip::Auth {
                user: "callscope".to_string(),
                password: None,
            }),
            host_with_port: self.ctx.public_addr.into(),
            params: vec![],
            headers: vec![],
        }
    }

    pub(crate) fn register_call(
        &self,
        call_id: &str,
        org_id: &str,
        commands: mpsc::Sender<Command>,
    ) {
        lock(&self.calls).insert(
            call_id.to_string(),
            CallEntry {
                org_id: org_id.to_string(),
                commands,
            },
        );
    }

    pub(crate) fn unregister_call(&self, call_id: &str) {
        lock(&self.calls).remove(call_id);
    }

    pub(crate) fn is_busy(&self, user_id: &str) -> bool {
        lock(&self.busy).get(user_id).copied().unwrap_or(0) > 0
    }

    pub(crate) fn idle_since_ms(&self, user_id: &str) -> i64 {
        lock(&self.idle_since).get(user_id).copied().unwrap_or(0)
    }

    pub(crate) fn mark_busy(&self, user_id: &str) {
        *lock(&self.busy).entry(user_id.to_string()).or_insert(0) += 1;
    }

    pub(crate) fn mark_idle(&self, user_id: &str, at_ms: i64) {
        let mut busy = lock(&self.busy);
        if let Some(count) = busy.get_mut(user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                busy.remove(user_id);
            }
        }
        drop(busy);
        lock(&self.idle_since).insert(user_id.to_string(), at_ms);
    }

    async fn device_command(
        &self,
        org_id: &str,
        user_id: &str,
        call_id: &str,
        command: DeviceCommand,
    ) -> ControlResult<DeviceReply> {
        let sender = {
            let calls = lock(&self.calls);
            match calls.get(call_id) {
                Some(entry) if entry.org_id == org_id => entry.commands.clone(),
                _ => return Err(ControlError::NotFound),
            }
        };
        let (reply, answer) = oneshot::channel();
        sender
            .send(Command::Device(DeviceRequest {
                user_id: user_id.to_string(),
                command,
                reply,
            }))
            .await
            .map_err(|_| ControlError::NotFound)?;
        match tokio::time::timeout(Duration::from_secs(120), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ControlError::NotFound),
            Err(_) => Err(ControlError::Failed(
                "the call did not answer in time".into(),
            )),
        }
    }

    async fn command(
        &self,
        org_id: &str,
        call_id: &str,
        make: impl FnOnce(oneshot::Sender<ControlResult<()>>) -> Command,
    ) -> ControlResult<()> {
        let sender = {
            let calls = lock(&self.calls);
            match calls.get(call_id) {
                Some(entry) if entry.org_id == org_id => entry.commands.clone(),
                // Another organization's call is "not found", never "forbidden".
                _ => return Err(ControlError::NotFound),
            }
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        sender
            .send(make(reply_tx))
            .await
            .map_err(|_| ControlError::NotFound)?;
        // Bounded: a re-INVITE or a transfer's ringing ends well within this.
        match tokio::time::timeout(Duration::from_secs(120), reply_rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ControlError::NotFound),
            Err(_) => Err(ControlError::Failed(
                "the call did not answer in time".into(),
            )),
        }
    }
}

/// The B2BUA. Cheap to clone (shared state).
#[derive(Clone)]
pub struct CallManager {
    inner: Arc<Inner>,
}

impl CallManager {
    pub fn new(ctx: SipContext, config: CallConfig) -> Self {
        Self::with_softphones(ctx, config, Arc::new(NoSoftphones))
    }

    /// A B2BUA that also rings agents' browser softphones.
    pub fn with_softphones(
        ctx: SipContext,
        config: CallConfig,
        softphones: Arc<dyn Softphones>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                ctx,
                config,
                softphones,
                calls: Mutex::new(HashMap::new()),
                tasks: AtomicUsize::new(0),
                busy: Mutex::new(HashMap::new()),
                idle_since: Mutex::new(HashMap::new()),
                dropped_events: AtomicU64::new(0),
            }),
        }
    }

    /// Tasks the manager is running right now (transaction handlers, call tasks, ringing
    /// forks, BYEs in flight). Zero when idle: anything else is a leak.
    pub fn live_tasks(&self) -> usize {
        self.inner.tasks.load(Ordering::SeqCst)
    }

    /// Calls in progress (ringing or answered).
    pub fn live_calls(&self) -> usize {
        lock(&self.inner.calls).len()
    }

    /// Events dropped because the application's channel was full.
    pub fn dropped_events(&self) -> u64 {
        self.inner.dropped_events.load(Ordering::Relaxed)
    }

    pub fn context(&self) -> &SipContext {
        &self.inner.ctx
    }
}

impl CallHandler for CallManager {
    fn on_transaction(&self, mut tx: Transaction, source: SocketAddr) -> BoxFuture<'static, ()> {
        let inner = self.inner.clone();
        async move {
            let _guard = TaskGuard::new(inner.clone());
            let has_to_tag = tx
                .original
                .to_header()
                .ok()
                .and_then(|to| to.tag().ok().flatten())
                .is_some();
            if tx.original.method == Method::Invite && !has_to_tag {
                session::accept_inbound(inner, tx, source).await;
                return;
            }
            match inner.ctx.dialog_layer.match_dialog(&tx) {
                Some(mut dialog) => {
                    if let Err(e) = dialog.handle(&mut tx).await {
                        debug!(error = %e, method = %tx.original.method, "in-dialog request failed");
                    }
                }
                None => {
                    if tx.original.method != Method::Ack {
                        tx.reply(StatusCode::CallTransactionDoesNotExist).await.ok();
                    }
                }
            }
        }
        .boxed()
    }
}

impl CallControl for CallManager {
    fn click_to_call<'a>(
        &'a self,
        org_id: &'a str,
        agent_user_id: &'a str,
        number: &'a str,
    ) -> BoxFuture<'a, ControlResult<String>> {
        session::click_to_call(self.inner.clone(), org_id, agent_user_id, number).boxed()
    }

    fn hangup<'a>(&'a self, org_id: &'a str, call_id: &'a str) -> BoxFuture<'a, ControlResult<()>> {
        self.inner.command(org_id, call_id, Command::Hangup).boxed()
    }

    fn hold<'a>(&'a self, org_id: &'a str, call_id: &'a str) -> BoxFuture<'a, ControlResult<()>> {
        self.inner.command(org_id, call_id, Command::Hold).boxed()
    }

    fn resume<'a>(&'a self, org_id: &'a str, call_id: &'a str) -> BoxFuture<'a, ControlResult<()>> {
        self.inner.command(org_id, call_id, Command::Resume).boxed()
    }

    fn transfer<'a>(
        &'a self,
        org_id: &'a str,
        call_id: &'a str,
        target: &'a str,
    ) -> BoxFuture<'a, ControlResult<()>> {
        let target = target.to_string();
        self.inner
            .command(org_id, call_id, move |reply| {
                Command::Transfer(target, reply)
            })
            .boxed()
    }

    fn device<'a>(
        &'a self,
        org_id: &'a str,
        user_id: &'a str,
        call_id: &'a str,
        command: DeviceCommand,
    ) -> BoxFuture<'a, ControlResult<DeviceReply>> {
        self.inner
            .device_command(org_id, user_id, call_id, command)
            .boxed()
    }

    fn browser_dial<'a>(
        &'a self,
        org_id: &'a str,
        user_id: &'a str,
        number: &'a str,
        offer: &'a str,
    ) -> BoxFuture<'a, ControlResult<(String, String)>> {
        session::browser_dial(self.inner.clone(), org_id, user_id, number, offer).boxed()
    }

    fn active_calls(&self, org_id: &str) -> Vec<String> {
        lock(&self.inner.calls)
            .iter()
            .filter(|(_, entry)| entry.org_id == org_id)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

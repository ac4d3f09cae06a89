//! One call: accepting the caller's INVITE, ringing the destination (forks, ring groups),
//! relaying progress and answer, then relaying hold/resume, transfer and hang-up until both
//! legs are gone. One task per call owns all of this state; the dialogs report to it over
//! one channel.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rsipstack::dialog::DialogId;
use rsipstack::dialog::dialog::{
    DialogState, DialogStateReceiver, DialogStateSender, TerminatedReason,
};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, Response, StatusCode, StatusCodeKind, Uri};
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

mod device;

pub(super) use device::browser_dial_impl as browser_dial;

use super::headers;
use super::routing::{self, NoPlan, Plan, PlanInput, Reach};
use super::trunk_auth;
use super::{Command, Inner};
use crate::control::{ControlError, ControlResult};
use crate::directory::{Destination, RouteTarget};
use crate::events::{CallDirection, CallEvent, HangupSide};
use crate::handler::AuthOutcome;
use crate::media::{AnsweredCall, Direction, LegRole, MediaError};
use crate::sdp;
use crate::softphones::{DeviceNotice, EndReason};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn new_call_id() -> String {
    rsipstack::transaction::make_uuid_v4()
}

fn sdp_header() -> Header {
    Header::ContentType("application/sdp".into())
}

fn is_hold(direction: Direction) -> bool {
    matches!(direction, Direction::SendOnly | Direction::Inactive)
}

/// Keep a URI user part to characters that cannot break a header.
fn safe_user(user: &str) -> String {
    let cleaned: String = user
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '*' | '#' | '.' | '_' | '-'))
        .take(32)
        .collect();
    if cleaned.is_empty() {
        "anonymous".to_string()
    } else {
        cleaned
    }
}

fn safe_display(display: Option<String>) -> Option<String> {
    display
        .map(|d| {
            d.chars()
                .filter(|c| !matches!(c, '"' | '\\' | '\r' | '\n' | '<' | '>'))
                .take(64)
                .collect::<String>()
        })
        .filter(|d| !d.trim().is_empty())
}

fn body_string(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        None
    } else {
        String::from_utf8(body.to_vec()).ok()
    }
}

/// Cause text for a failed attempt's final status.
fn failure_cause(status: u16) -> &'static str {
    match status {
        486 | 600 => "busy",
        408 | 480 => "no_answer",
        404 | 484 | 604 => "not_found",
        487 => "cancelled",
        status if trunk_auth::is_challenge(status) => trunk_auth::AUTH_FAILED_CAUSE,
        _ => "rejected",
    }
}

/// The status to give the caller when every attempt failed (RFC 3261 §16.7 in spirit:
/// a global failure first, then busy, then unavailable, else the lowest code).
fn best_failure(statuses: &[u16]) -> u16 {
    if let Some(code) = statuses.iter().find(|s| (600..700).contains(*s)) {
        return *code;
    }
    if statuses.contains(&486) {
        return 486;
    }
    if statuses.is_empty() || statuses.iter().any(|s| matches!(s, 408 | 480 | 487)) {
        return 480;
    }
    statuses.iter().copied().min().unwrap_or(480)
}

/// RFC 4028 decision for the caller's INVITE: `Err(min)` means answer 422 with Min-SE.
fn session_timer(request: &rsipstack::sip::Request, inner: &Inner) -> Result<Option<u32>, u32> {
    let Some(requested) = headers::session_expires(request) else {
        return Ok(None);
    };
    let min = inner.config.min_session_expires;
    if requested.seconds < min {
        return Err(min.max(headers::min_se(request).unwrap_or(0)));
    }
    // We never refresh ourselves: only a caller that refreshes (supports timer and did not
    // ask us to) gets a timer; otherwise we decline by leaving Session-Expires out (§9).
    if !headers::supports(request, "timer") || requested.refresher_uas {
        return Ok(None);
    }
    Ok(Some(
        requested.seconds.min(inner.config.max_session_expires),
    ))
}

/// Who is at the other end of a leg.
enum Peer {
    /// A SIP user agent, through its dialog.
    Sip(InviteDialog),
    /// An agent's browser softphone (WebRTC media, signalling over the app's WebSocket).
    Browser,
}

struct Leg {
    peer: Peer,
    user_id: Option<String>,
    /// The direction the far end last offered (hold state).
    remote_direction: Direction,
    /// The far end's last SDP (offer or answer): what restores this leg's media state when
    /// a transfer that re-offered the leg fails.
    remote_sdp: Option<String>,
}

impl Leg {
    fn dialog(&self) -> Option<&InviteDialog> {
        match &self.peer {
            Peer::Sip(dialog) => Some(dialog),
            Peer::Browser => None,
        }
    }

    /// The agent whose softphone this leg is.
    fn browser_user(&self) -> Option<&str> {
        match self.peer {
            Peer::Browser => self.user_id.as_deref(),
            Peer::Sip(_) => None,
        }
    }
}

enum RingResult {
    Answered {
        peer: Peer,
        /// The SDP answer of a SIP target (a browser's media is set up by then).
        answer_sdp: Option<String>,
        user_id: Option<String>,
    },
    NotConnected(RingFailure),
}

/// Why ringing did not connect anyone.
enum RingFailure {
    /// Every destination answered with a final failure; the status to report.
    Failed(u16),
    /// The watched leg (the caller, or the party kept during a transfer) went away.
    Aborted,
    /// The API hung up while ringing.
    ApiHangup,
    /// The agent whose own call this is hung up from the softphone while it rang.
    AgentHangup,
    /// No media port for the leg being rung.
    NoMedia,
}

impl RingFailure {
    /// How the call ends when ringing its callee side fails (an inbound call's callee, or
    /// the customer of a click-to-call): a refusal by the callee (busy, declined) is the
    /// callee's doing, any other failure the system's.
    fn callee_ending(&self) -> Ending {
        match *self {
            Self::Failed(status) => Ending {
                status,
                side: if matches!(status, 486 | 600 | 603) {
                    HangupSide::Callee
                } else {
                    HangupSide::System
                },
                cause: failure_cause(status),
            },
            Self::Aborted => Ending {
                status: 487,
                side: HangupSide::Caller,
                cause: "cancelled",
            },
            Self::ApiHangup => Ending {
                status: 487,
                side: HangupSide::Api,
                cause: "cancelled",
            },
            Self::AgentHangup => Ending {
                status: 487,
                side: HangupSide::Caller,
                cause: "cancelled",
            },
            Self::NoMedia => Ending {
                status: 503,
                side: HangupSide::System,
                cause: "media_unavailable",
            },
        }
    }

    /// The final response owed to a caller whose INVITE is still pending; `None` when the
    /// caller went away (nothing left to answer).
    fn caller_response(&self) -> Option<StatusCode> {
        match *self {
            // A trunk's challenge is for callscope's credentials, never relayed to the caller.
            Self::Failed(status) => Some(StatusCode::from(trunk_auth::caller_status(status))),
            Self::Aborted => None,
            Self::ApiHangup | Self::AgentHangup => Some(StatusCode::RequestTerminated),
            Self::NoMedia => Some(StatusCode::ServiceUnavailable),
        }
    }
}

struct Fork {
    /// None for a browser softphone.
    dialog: Option<InviteDialog>,
    sip_call_id: String,
    user_id: Option<String>,
    done: bool,
}

struct Ending {
    status: u16,
    side: HangupSide,
    cause: &'static str,
}

struct Call {
    inner: Arc<Inner>,
    id: String,
    org_id: String,
    state_tx: DialogStateSender,
    state_rx: DialogStateReceiver,
    commands: mpsc::Receiver<Command>,
    legs: [Option<Leg>; 2],
    /// Dialogs to remove from the dialog layer at the end (even if never connected).
    dialogs: Vec<InviteDialog>,
    from_user: String,
    from_display: Option<String>,
    /// Our SDP for the caller when the caller made an offer (sent in 183 and 200).
    caller_answer: Option<String>,
    /// The caller's SDP offer from its INVITE, until its leg is set up.
    caller_offer: Option<String>,
    /// The caller sent no offer: our offer goes in the 200, its answer in the ACK.
    caller_delayed_offer: bool,
    caller_answer_applied: bool,
    session_expires: Option<u32>,
    last_refresh: Instant,
    answered: bool,
    agent_user_id: Option<String>,
    direction: CallDirection,
    trunk_id: Option<String>,
    /// What the caller dialled (the DID of an inbound call; the number of an outbound one).
    dialled: Option<String>,
    /// The agent muted its audio (softphone or API).
    muted: bool,
    /// The call is on hold.
    held: bool,
}

/// Handle a new INVITE from outside: authenticate, route, answer 4xx or start the call.
pub(super) async fn accept_inbound(
    inner: Arc<Inner>,
    mut tx: Transaction,
    source: std::net::SocketAddr,
) {
    // 100 at once (RFC 3261 §16.2 spirit): authentication and routing may take a lookup.
    tx.send_trying().await.ok();
    let request = tx.original.clone();
    let outcome = inner
        .ctx
        .authenticator
        .authenticate(&request, source, true)
        .await;
    let dialled = headers::dialled_user(&request);
    let (org_id, direction, agent, trunk_id, destination) = match outcome {
        AuthOutcome::Respond(response) => {
            tx.respond(response).await.ok();
            return;
        }
        AuthOutcome::User(user) => {
            let Some(dialled) = dialled.as_deref() else {
                tx.reply(StatusCode::NotFound).await.ok();
                return;
            };
            match inner
                .ctx
                .directory
                .route_from_user(&user.org_id, dialled)
                .await
            {
                Ok(destination) => {
                    // An external number leaves through a trunk: the record names it (as
                    // click-to-call does), or outbound calls could not be told apart by trunk.
                    let (direction, trunk_id) = match &destination {
                        Destination::External { trunk, .. } => {
                            (CallDirection::Outbound, Some(trunk.trunk_id.clone()))
                        }
                        _ => (CallDirection::Internal, None),
                    };
                    (
                        user.org_id.clone(),
                        direction,
                        Some(user.user_id.clone()),
                        trunk_id,
                        destination,
                    )
                }
                Err(e) => {
                    warn!(error = %e, "routing lookup failed");
                    tx.reply(StatusCode::ServerInternalError).await.ok();
                    return;
                }
            }
        }
        AuthOutcome::Trunk(trunk) => {
            let Some(did) = dialled.as_deref() else {
                tx.reply(StatusCode::NotFound).await.ok();
                return;
            };
            match inner.ctx.directory.route_inbound(&trunk, did).await {
                Ok(destination) => (
                    trunk.org_id.clone(),
                    CallDirection::Inbound,
                    None,
                    Some(trunk.trunk_id.clone()),
                    destination,
                ),
                Err(e) => {
                    warn!(error = %e, "inbound routing lookup failed");
                    tx.reply(StatusCode::ServerInternalError).await.ok();
                    return;
                }
            }
        }
    };

    let session_expires = match session_timer(&request, &inner) {
        Ok(granted) => granted,
        Err(min) => {
            let min_se = Header::MinSE(min.to_string().into());
            tx.reply_with(StatusCode::from(422), vec![min_se], None)
                .await
                .ok();
            return;
        }
    };

    let busy = |user: &str| inner.is_busy(user);
    let idle = |user: &str| inner.idle_since_ms(user);
    let softphone = |user: &str| inner.softphones.can_ring(&org_id, user);
    let plan_input = PlanInput {
        locator: inner.ctx.locator.as_ref(),
        org_id: &org_id,
        default_timeout: inner.config.no_answer_timeout,
        busy: &busy,
        idle_since_ms: &idle,
        softphone: &softphone,
    };
    let planned = routing::plan(&destination, &plan_input);
    let (from_user, from_display) = headers::from_user(&request).unwrap_or_default();
    let to = dialled.clone().unwrap_or_default();
    let call_id = new_call_id();
    let sip_call_id = request
        .call_id_header()
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let started = || CallEvent::Started {
        call_id: call_id.clone(),
        org_id: org_id.clone(),
        direction,
        from: safe_user(&from_user),
        to: safe_user(&to),
        sip_call_id: sip_call_id.clone(),
        agent_user_id: agent.clone(),
        trunk_id: trunk_id.clone(),
        at_ms: now_ms(),
    };
    let plan = match planned {
        Ok(plan) => plan,
        Err(NoPlan::NotFound) => {
            tx.reply(StatusCode::NotFound).await.ok();
            return;
        }
        Err(NoPlan::Reject(status)) => {
            tx.reply(StatusCode::from(status)).await.ok();
            return;
        }
        Err(NoPlan::Unavailable) => {
            inner.emit(started());
            tx.reply(StatusCode::TemporarilyUnavailable).await.ok();
            inner.emit(CallEvent::Ended {
                call_id: call_id.clone(),
                at_ms: now_ms(),
                sip_status: 480,
                hangup_side: HangupSide::System,
                cause: "unavailable".into(),
            });
            return;
        }
    };

    let (state_tx, state_rx) = inner.ctx.dialog_layer.new_dialog_state_channel();
    let mut dialog_a = match inner.ctx.dialog_layer.get_or_create_server_invite(
        &tx,
        state_tx.clone(),
        None,
        Some(inner.our_contact()),
    ) {
        Ok(dialog) => dialog,
        Err(e) => {
            warn!(error = %e, "cannot create the caller's dialog");
            tx.reply(StatusCode::ServerInternalError).await.ok();
            return;
        }
    };
    let offer = body_string(&request.body);
    let caller_sdp = match inner
        .ctx
        .media
        .open_leg(&call_id, LegRole::Caller, offer.as_deref())
        .await
    {
        Ok(sdp) => sdp,
        Err(e) => {
            let status = match e {
                MediaError::NotAcceptable(_) => StatusCode::NotAcceptableHere,
                _ => StatusCode::ServiceUnavailable,
            };
            debug!(error = %e, "caller's SDP refused");
            inner.ctx.dialog_layer.remove_dialog(&dialog_a.id());
            tx.reply(status).await.ok();
            inner.ctx.media.close_call(&call_id).await;
            return;
        }
    };

    inner.emit(started());
    let (command_tx, command_rx) = mpsc::channel(8);
    inner.register_call(&call_id, &org_id, command_tx);
    let call = Call {
        inner: inner.clone(),
        id: call_id.clone(),
        org_id,
        state_tx,
        state_rx,
        commands: command_rx,
        legs: [None, None],
        dialogs: vec![dialog_a.clone()],
        from_user: safe_user(&from_user),
        from_display: safe_display(from_display),
        caller_answer: offer.as_ref().map(|_| caller_sdp.clone()),
        caller_offer: offer.clone(),
        caller_delayed_offer: offer.is_none(),
        caller_answer_applied: offer.is_some(),
        session_expires,
        last_refresh: Instant::now(),
        answered: false,
        agent_user_id: agent,
        direction,
        trunk_id: trunk_id.clone(),
        dialled: dialled.clone(),
        muted: false,
        held: false,
    };
    let a = dialog_a.clone();
    inner.spawn(call.run_inbound(a, caller_sdp, plan));
    // Drive the caller's INVITE transaction (CANCEL → 487, ACK → confirmed) here.
    if let Err(e) = dialog_a.handle(&mut tx).await {
        debug!(error = %e, "caller INVITE transaction ended with an error");
    }
}

/// Click-to-call: ring the agent first, then the number, and bridge.
pub(super) async fn click_to_call(
    inner: Arc<Inner>,
    org_id: &str,
    agent_user_id: &str,
    number: &str,
) -> ControlResult<String> {
    let busy = |user: &str| inner.is_busy(user);
    let idle = |user: &str| inner.idle_since_ms(user);
    let softphone = |user: &str| inner.softphones.can_ring(org_id, user);
    let plan_input = PlanInput {
        locator: inner.ctx.locator.as_ref(),
        org_id,
        default_timeout: inner.config.no_answer_timeout,
        busy: &busy,
        idle_since_ms: &idle,
        softphone: &softphone,
    };
    let agent_plan = routing::plan(
        &Destination::Internal(RouteTarget::User {
            user_id: agent_user_id.to_string(),
        }),
        &plan_input,
    )
    .map_err(|_| ControlError::Unreachable("the agent has no registered phone".into()))?;
    let destination = inner
        .ctx
        .directory
        .route_from_user(org_id, number)
        .await
        .map_err(|e| ControlError::Failed(e.to_string()))?;
    let customer_plan = routing::plan(&destination, &plan_input).map_err(|e| match e {
        NoPlan::NotFound => ControlError::Unreachable("unknown destination".into()),
        NoPlan::Reject(status) => {
            ControlError::Unreachable(format!("destination rejects ({status})"))
        }
        NoPlan::Unavailable => ControlError::Unreachable("destination unavailable".into()),
    })?;
    let direction = match destination {
        Destination::External { .. } => CallDirection::Outbound,
        _ => CallDirection::Internal,
    };
    let trunk_id = match &destination {
        Destination::External { trunk, .. } => Some(trunk.trunk_id.clone()),
        _ => None,
    };
    let call_id = new_call_id();
    let (state_tx, state_rx) = inner.ctx.dialog_layer.new_dialog_state_channel();
    let (command_tx, command_rx) = mpsc::channel(8);
    inner.register_call(&call_id, org_id, command_tx);
    inner.emit(CallEvent::Started {
        call_id: call_id.clone(),
        org_id: org_id.to_string(),
        direction,
        from: safe_user(agent_user_id),
        to: safe_user(number),
        sip_call_id: String::new(),
        agent_user_id: Some(agent_user_id.to_string()),
        trunk_id: trunk_id.clone(),
        at_ms: now_ms(),
    });
    let call = Call {
        inner: inner.clone(),
        id: call_id.clone(),
        org_id: org_id.to_string(),
        state_tx,
        state_rx,
        commands: command_rx,
        legs: [None, None],
        dialogs: Vec::new(),
        // The agent's phone shows the number it is about to be connected to.
        from_user: safe_user(number),
        from_display: None,
        caller_answer: None,
        caller_offer: None,
        caller_delayed_offer: false,
        caller_answer_applied: true,
        session_expires: None,
        last_refresh: Instant::now(),
        answered: false,
        agent_user_id: Some(agent_user_id.to_string()),
        direction,
        trunk_id: trunk_id.clone(),
        dialled: Some(number.to_string()),
        muted: false,
        held: false,
    };
    inner.spawn(call.run_click_to_call(agent_plan, customer_plan));
    Ok(call_id)
}

impl Call {
    async fn run_inbound(mut self, dialog_a: InviteDialog, caller_sdp: String, plan: Plan) {
        let watch = dialog_a.id();
        match self
            .ring(plan, LegRole::Callee, Some(dialog_a.clone()), Some(watch))
            .await
        {
            RingResult::Answered {
                peer,
                answer_sdp,
                user_id,
            } => {
                self.adopt_answer(LegRole::Callee, &peer, answer_sdp.as_deref())
                    .await;
                let mut response_headers = vec![sdp_header()];
                if let Some(seconds) = self.session_expires {
                    response_headers.push(Header::SessionExpires(
                        format!("{seconds};refresher=uac").into(),
                    ));
                    response_headers.push(Header::Require("timer".into()));
                }
                if let Err(e) =
                    dialog_a.accept(Some(response_headers), Some(caller_sdp.into_bytes()))
                {
                    // The caller is gone (e.g. CANCEL crossed the answer): end the callee.
                    debug!(error = %e, "could not answer the caller");
                }
                self.last_refresh = Instant::now();
                if let Some(user) = &self.agent_user_id {
                    // A calling user is busy too.
                    self.inner.mark_busy(user);
                }
                self.legs[0] = Some(Leg {
                    peer: Peer::Sip(dialog_a),
                    user_id: self.agent_user_id.clone(),
                    remote_direction: Direction::SendRecv,
                    remote_sdp: self.caller_offer.take(),
                });
                self.connect_callee(peer, user_id, answer_sdp).await;
                self.connected().await
            }
            RingResult::NotConnected(failure) => {
                if let Some(code) = failure.caller_response() {
                    dialog_a.reject(Some(code), None).ok();
                }
                self.finish(failure.callee_ending()).await
            }
        }
    }

    async fn run_click_to_call(mut self, agent_plan: Plan, customer_plan: Plan) {
        let (agent_peer, agent_user, agent_sdp) =
            match self.ring(agent_plan, LegRole::Caller, None, None).await {
                RingResult::Answered {
                    peer,
                    answer_sdp,
                    user_id,
                } => {
                    self.adopt_answer(LegRole::Caller, &peer, answer_sdp.as_deref())
                        .await;
                    (peer, user_id, answer_sdp)
                }
                RingResult::NotConnected(RingFailure::Failed(status)) => {
                    return self
                        .finish(Ending {
                            status,
                            side: HangupSide::Caller,
                            cause: failure_cause(status),
                        })
                        .await;
                }
                RingResult::NotConnected(RingFailure::NoMedia) => {
                    return self.finish(RingFailure::NoMedia.callee_ending()).await;
                }
                RingResult::NotConnected(
                    RingFailure::Aborted | RingFailure::ApiHangup | RingFailure::AgentHangup,
                ) => {
                    return self
                        .finish(Ending {
                            status: 487,
                            side: HangupSide::Api,
                            cause: "cancelled",
                        })
                        .await;
                }
            };
        if let Some(user) = &agent_user {
            self.inner.mark_busy(user);
        }
        let agent_watch = match &agent_peer {
            Peer::Sip(dialog) => Some(dialog.id()),
            Peer::Browser => None,
        };
        self.legs[0] = Some(Leg {
            peer: agent_peer,
            user_id: agent_user,
            remote_direction: Direction::SendRecv,
            remote_sdp: agent_sdp,
        });

        self.inner.emit(CallEvent::Ringing {
            call_id: self.id.clone(),
            at_ms: now_ms(),
        });
        // The agent's leg is the caller of the customer leg from here on (its From).
        if let Some(agent) = &self.agent_user_id {
            self.from_user = safe_user(agent);
        }
        self.dial_customer(customer_plan, agent_watch).await
    }

    /// The agent's leg (the caller slot) is up: ring the customer and bridge, or end.
    /// `watch`: the agent's dialog when it is a SIP phone (its hang-up cancels the ringing).
    async fn dial_customer(mut self, customer_plan: Plan, watch: Option<DialogId>) {
        let result = self.ring(customer_plan, LegRole::Callee, None, watch).await;
        self.ringback(false);
        match result {
            RingResult::Answered {
                peer,
                answer_sdp,
                user_id,
            } => {
                self.adopt_answer(LegRole::Callee, &peer, answer_sdp.as_deref())
                    .await;
                self.connect_callee(peer, user_id, answer_sdp).await;
                self.connected().await
            }
            // The agent's leg is up: it is ended by `finish`, never rejected.
            RingResult::NotConnected(failure) => self.finish(failure.callee_ending()).await,
        }
    }

    /// A ringing target answered for `slot`: a SIP answer goes to the media and its dialog
    /// is kept for clean-up (a browser's media was set up when it answered).
    async fn adopt_answer(&mut self, slot: LegRole, peer: &Peer, answer_sdp: Option<&str>) {
        let Peer::Sip(dialog) = peer else { return };
        if let Some(answer) = answer_sdp
            && let Err(e) = self
                .inner
                .ctx
                .media
                .remote_answer(&self.id, slot, answer)
                .await
        {
            warn!(error = %e, ?slot, "the answer's SDP was refused");
        }
        self.dialogs.push(dialog.clone());
    }

    async fn connect_callee(
        &mut self,
        peer: Peer,
        user_id: Option<String>,
        remote_sdp: Option<String>,
    ) {
        self.answered = true;
        if let Some(user) = &user_id {
            self.inner.mark_busy(user);
        }
        self.inner.emit(CallEvent::Answered {
            call_id: self.id.clone(),
            answered_by_user_id: user_id.clone(),
            at_ms: now_ms(),
        });
        self.legs[1] = Some(Leg {
            peer,
            user_id,
            remote_direction: Direction::SendRecv,
            remote_sdp,
        });
        self.notify_devices(DeviceNotice::Answered);
        // An inbound call's agent is who answered (the callee); otherwise the agent placed
        // the call (a phone's outbound call, click-to-call's first leg).
        let agent_leg = match self.direction {
            CallDirection::Inbound => LegRole::Callee,
            CallDirection::Outbound | CallDirection::Internal => LegRole::Caller,
        };
        let answered = AnsweredCall {
            org_id: self.org_id.clone(),
            direction: self.direction,
            trunk_id: self.trunk_id.clone(),
            agent_leg,
            dialled: self.dialled.clone(),
        };
        self.inner
            .ctx
            .media
            .call_answered(&self.id, &answered)
            .await;
    }

    fn invite_option(
        &self,
        request_uri: &Uri,
        destination: &rsipstack::transport::SipAddr,
        credential: Option<&rsipstack::dialog::authenticate::Credential>,
        offer: &str,
    ) -> InviteOption {
        let caller = Uri {
            scheme: Some(rsipstack::sip::Scheme::Sip),
            auth: Some(rsipstack::sip::Auth {
                user: self.from_user.clone(),
                password: None,
            }),
            host_with_port: self.inner.ctx.public_addr.into(),
            params: vec![],
            headers: vec![],
        };
        InviteOption {
            caller_display_name: self.from_display.clone(),
            caller,
            callee: request_uri.clone(),
            destination: Some(destination.clone()),
            content_type: Some("application/sdp".into()),
            offer: Some(offer.as_bytes().to_vec()),
            contact: self.inner.our_contact(),
            credential: credential.cloned(),
            call_id: Some(new_call_id()),
            ..Default::default()
        }
    }

    /// Ring the plan's steps until one target answers, all fail, time runs out or the
    /// watched dialog ends. Progress is relayed to `relay_to` (the caller's dialog).
    async fn ring(
        &mut self,
        plan: Plan,
        slot: LegRole,
        relay_to: Option<InviteDialog>,
        watch: Option<DialogId>,
    ) -> RingResult {
        // Our SDP offer for phones, made when the first phone is rung: a softphone brings
        // its own offer, so a call that only rings browsers never binds an RTP port for them.
        let mut offer: Option<String> = None;
        let (fork_tx, mut fork_rx) = mpsc::unbounded_channel::<(usize, Option<Response>)>();
        let mut forks: Vec<Fork> = Vec::new();
        let mut statuses: Vec<u16> = Vec::new();
        let total_deadline = Instant::now() + plan.total_timeout;
        let mut ringing_relayed = false;
        for step in plan.steps {
            let now = Instant::now();
            if now >= total_deadline {
                break;
            }
            let step_deadline = (now + step.timeout).min(total_deadline);
            let first = forks.len();
            for target in &step.targets {
                let (request_uri, destination, credential) = match &target.reach {
                    Reach::Sip {
                        request_uri,
                        destination,
                        credential,
                    } => (request_uri, destination, credential.as_ref()),
                    Reach::Browser => {
                        if let Some(user) = &target.user_id {
                            self.ring_browser(user);
                            forks.push(Fork {
                                dialog: None,
                                sip_call_id: String::new(),
                                user_id: Some(user.clone()),
                                done: false,
                            });
                            // A page rings silently for SIP: the caller hears its own
                            // ringback from our 180, as it would from a phone's.
                            if let Some(relay) = relay_to.as_ref()
                                && !ringing_relayed
                            {
                                ringing_relayed = true;
                                relay.ringing(None, None).ok();
                                self.inner.emit(CallEvent::Ringing {
                                    call_id: self.id.clone(),
                                    at_ms: now_ms(),
                                });
                            }
                        }
                        continue;
                    }
                };
                let offer = match &offer {
                    Some(offer) => offer.clone(),
                    None => match self.inner.ctx.media.open_leg(&self.id, slot, None).await {
                        Ok(made) => offer.insert(made).clone(),
                        Err(e) => {
                            warn!(error = %e, ?slot, "no media for the leg being rung");
                            self.cancel_forks(&mut forks, EndReason::Failed);
                            return RingResult::NotConnected(RingFailure::NoMedia);
                        }
                    },
                };
                let option = self.invite_option(request_uri, destination, credential, &offer);
                match self
                    .inner
                    .ctx
                    .dialog_layer
                    .do_invite_async(option, self.state_tx.clone())
                {
                    Ok((dialog, handle)) => {
                        let index = forks.len();
                        let sip_call_id = dialog.id().call_id;
                        let fork_tx = fork_tx.clone();
                        self.inner.spawn(async move {
                            let response = match handle.await {
                                Ok(Ok((_, response))) => response,
                                _ => None,
                            };
                            fork_tx.send((index, response)).ok();
                        });
                        forks.push(Fork {
                            dialog: Some(dialog),
                            sip_call_id,
                            user_id: target.user_id.clone(),
                            done: false,
                        });
                    }
                    Err(e) => {
                        warn!(error = %e, "could not send INVITE to a target");
                        statuses.push(503);
                    }
                }
            }
            loop {
                if forks
                    .get(first..)
                    .is_none_or(|step_forks| step_forks.iter().all(|f| f.done))
                {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(step_deadline) => {
                        for fork in forks.iter_mut().skip(first).filter(|f| !f.done) {
                            fork.done = true;
                            statuses.push(480);
                            self.cancel_fork(fork, EndReason::NoAnswer);
                        }
                        break;
                    }
                    Some((index, response)) = fork_rx.recv() => {
                        let Some(fork) = forks.get_mut(index) else { continue };
                        fork.done = true;
                        match response {
                            Some(response) if response.status_code.kind() == StatusCodeKind::Successful => {
                                let Some(dialog) = fork.dialog.clone() else { continue };
                                let user_id = fork.user_id.clone();
                                self.cancel_forks(&mut forks, EndReason::AnsweredElsewhere);
                                return RingResult::Answered {
                                    peer: Peer::Sip(dialog),
                                    answer_sdp: body_string(&response.body),
                                    user_id,
                                };
                            }
                            Some(response) => statuses.push(response.status_code.code()),
                            // No final response (timeout, transport error).
                            None => statuses.push(408),
                        }
                    }
                    state = self.state_rx.recv() => {
                        let Some(state) = state else { return RingResult::NotConnected(RingFailure::Aborted) };
                        match state {
                            DialogState::Early(id, response) => {
                                let from_fork = forks.iter().any(|f| f.dialog.is_some() && f.sip_call_id == id.call_id);
                                if let (true, Some(relay)) = (from_fork, relay_to.as_ref()) {
                                    self.relay_progress(relay, &response, slot, &mut ringing_relayed).await;
                                } else if from_fork {
                                    self.progress_to_agent(&response, slot, &mut ringing_relayed).await;
                                }
                            }
                            DialogState::Terminated(id, _) if watch.as_ref() == Some(&id) => {
                                self.cancel_forks(&mut forks, EndReason::CallerCancelled);
                                return RingResult::NotConnected(RingFailure::Aborted);
                            }
                            DialogState::Updated(_, _, handle) => {
                                // A re-INVITE while we ring someone else: try again later.
                                handle.reply(StatusCode::from(491)).await.ok();
                            }
                            DialogState::Refer(_, _, handle) => {
                                handle.reply(StatusCode::from(491)).await.ok();
                            }
                            DialogState::Info(_, _, handle)
                            | DialogState::Options(_, _, handle)
                            | DialogState::Message(_, _, handle)
                            | DialogState::Notify(_, _, handle) => {
                                handle.reply(StatusCode::OK).await.ok();
                            }
                            _ => {}
                        }
                    }
                    command = self.commands.recv() => {
                        match command {
                            Some(Command::Hangup(reply)) => {
                                self.cancel_forks(&mut forks, EndReason::CallerCancelled);
                                reply.send(Ok(())).ok();
                                return RingResult::NotConnected(RingFailure::ApiHangup);
                            }
                            Some(Command::MediaLost(reply)) => {
                                self.cancel_forks(&mut forks, EndReason::Failed);
                                reply.send(Ok(())).ok();
                                return RingResult::NotConnected(RingFailure::NoMedia);
                            }
                            Some(Command::Hold(reply)) | Some(Command::Resume(reply)) | Some(Command::Transfer(_, reply)) => {
                                reply.send(Err(ControlError::InvalidState("the call is not answered".into()))).ok();
                            }
                            Some(Command::Device(request)) => {
                                if let Some(result) = self
                                    .device_while_ringing(slot, &mut forks, &mut statuses, offer.is_some(), request)
                                    .await
                                {
                                    return result;
                                }
                            }
                            None => {}
                        }
                    }
                }
            }
        }
        RingResult::NotConnected(RingFailure::Failed(best_failure(&statuses)))
    }

    /// Stop ringing one target: CANCEL a phone, tell a softphone why.
    fn cancel_fork(&self, fork: &Fork, reason: EndReason) {
        match (&fork.dialog, &fork.user_id) {
            (Some(dialog), _) => {
                let dialog = dialog.clone();
                self.inner.spawn(async move {
                    if let Err(e) = dialog.cancel().await {
                        debug!(error = %e, "CANCEL of a losing fork failed");
                    }
                });
            }
            (None, Some(user)) => self.notify_device(user, DeviceNotice::Ended(reason)),
            (None, None) => {}
        }
    }

    /// Stop ringing every target still ringing.
    fn cancel_forks(&self, forks: &mut [Fork], reason: EndReason) {
        for fork in forks.iter_mut().filter(|f| !f.done) {
            fork.done = true;
            self.cancel_fork(fork, reason);
        }
    }

    async fn relay_progress(
        &mut self,
        relay: &InviteDialog,
        response: &Response,
        slot: LegRole,
        relayed: &mut bool,
    ) {
        let early_sdp = body_string(&response.body);
        if let (Some(sdp), Some(answer)) = (early_sdp, self.caller_answer.clone()) {
            // Early media: the callee's 183 SDP goes to our callee leg, the caller gets our
            // own answer in a 183.
            if self
                .inner
                .ctx
                .media
                .remote_answer(&self.id, slot, &sdp)
                .await
                .is_ok()
            {
                relay
                    .ringing(Some(vec![sdp_header()]), Some(answer.into_bytes()))
                    .ok();
            }
        } else if !*relayed {
            relay.ringing(None, None).ok();
        }
        if !*relayed {
            *relayed = true;
            self.inner.emit(CallEvent::Ringing {
                call_id: self.id.clone(),
                at_ms: now_ms(),
            });
        }
    }

    fn slot_of(&self, id: &DialogId) -> Option<LegRole> {
        for role in [LegRole::Caller, LegRole::Callee] {
            if let Some(leg) = &self.legs[role.index()]
                && leg.dialog().is_some_and(|d| &d.id() == id)
            {
                return Some(role);
            }
        }
        None
    }

    /// The answered call: relay until one side goes.
    async fn connected(mut self) {
        let keepalive_every = self.inner.config.keepalive_interval;
        let mut next_keepalive = keepalive_every.map(|every| Instant::now() + every);
        loop {
            let far_future = Instant::now() + Duration::from_secs(86_400);
            let timer_deadline = self
                .session_expires
                .map(|seconds| {
                    let seconds = u64::from(seconds);
                    // RFC 4028 §10: give up at expiry minus min(32 s, interval / 3).
                    let grace = (seconds / 3).min(32);
                    self.last_refresh + Duration::from_secs(seconds - grace)
                })
                .unwrap_or(far_future);
            let keepalive_deadline = next_keepalive.unwrap_or(far_future);
            let ending = tokio::select! {
                state = self.state_rx.recv() => match state {
                    Some(state) => self.on_state(state).await,
                    None => Some(Ending { status: 200, side: HangupSide::System, cause: "internal" }),
                },
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => None,
                },
                _ = tokio::time::sleep_until(timer_deadline) => {
                    info!(call_id = %self.id, "session timer expired without refresh");
                    Some(Ending { status: 200, side: HangupSide::System, cause: "timeout" })
                }
                _ = tokio::time::sleep_until(keepalive_deadline) => {
                    next_keepalive = keepalive_every.map(|every| Instant::now() + every);
                    if self.legs_alive().await {
                        None
                    } else {
                        info!(call_id = %self.id, "a leg stopped answering keepalives");
                        Some(Ending { status: 200, side: HangupSide::System, cause: "timeout" })
                    }
                }
            };
            if let Some(ending) = ending {
                return self.finish(ending).await;
            }
        }
    }

    async fn legs_alive(&self) -> bool {
        let timeout = self.inner.config.keepalive_timeout;
        // A softphone's liveness is its media's business (ICE consent), not OPTIONS.
        let probes = self
            .legs
            .iter()
            .flatten()
            .filter_map(Leg::dialog)
            .map(|dialog| {
                let dialog = dialog.clone();
                async move {
                    match tokio::time::timeout(timeout, dialog.request(Method::Options, None, None))
                        .await
                    {
                        Ok(Ok(Some(response))) => !matches!(response.status_code.code(), 408 | 481),
                        Ok(Ok(None)) => true, // not confirmed (yet/anymore): its own events decide
                        Ok(Err(_)) | Err(_) => false,
                    }
                }
            });
        futures::future::join_all(probes)
            .await
            .into_iter()
            .all(|alive| alive)
    }

    async fn on_state(&mut self, state: DialogState) -> Option<Ending> {
        match state {
            DialogState::Terminated(id, reason) => {
                let slot = self.slot_of(&id)?;
                let side = match slot {
                    LegRole::Caller => HangupSide::Caller,
                    LegRole::Callee => HangupSide::Callee,
                };
                let ending = match reason {
                    TerminatedReason::Timeout => Ending {
                        status: 200,
                        side: HangupSide::System,
                        cause: "timeout",
                    },
                    _ => Ending {
                        status: 200,
                        side,
                        cause: "normal_clearing",
                    },
                };
                Some(ending)
            }
            DialogState::Confirmed(id, _) => {
                if self.slot_of(&id) == Some(LegRole::Caller)
                    && self.caller_delayed_offer
                    && !self.caller_answer_applied
                {
                    let ack = self.legs[0]
                        .as_ref()
                        .and_then(|leg| leg.dialog())
                        .and_then(|dialog| dialog.last_remote_ack());
                    if let Some(answer) = ack.and_then(|ack| body_string(&ack.body)) {
                        self.caller_answer_applied = true;
                        if let Some(leg) = self.legs[0].as_mut() {
                            leg.remote_sdp = Some(answer.clone());
                        }
                        if let Err(e) = self
                            .inner
                            .ctx
                            .media
                            .remote_answer(&self.id, LegRole::Caller, &answer)
                            .await
                        {
                            warn!(error = %e, "caller's answer in ACK refused");
                        }
                    }
                }
                None
            }
            DialogState::Updated(id, request, handle) => {
                let Some(slot) = self.slot_of(&id) else {
                    handle
                        .reply(StatusCode::CallTransactionDoesNotExist)
                        .await
                        .ok();
                    return None;
                };
                self.on_reoffer(slot, request, handle).await;
                None
            }
            DialogState::Refer(id, request, handle) => {
                let Some(slot) = self.slot_of(&id) else {
                    handle
                        .reply(StatusCode::CallTransactionDoesNotExist)
                        .await
                        .ok();
                    return None;
                };
                self.on_refer(slot, request, handle).await
            }
            DialogState::Info(_, _, handle)
            | DialogState::Options(_, _, handle)
            | DialogState::Message(_, _, handle)
            | DialogState::Notify(_, _, handle) => {
                handle.reply(StatusCode::OK).await.ok();
                None
            }
            _ => None,
        }
    }

    /// A re-INVITE or UPDATE from one leg: answer it, and pass a hold/resume to the other.
    async fn on_reoffer(
        &mut self,
        slot: LegRole,
        request: rsipstack::sip::Request,
        handle: rsipstack::dialog::dialog::TransactionHandle,
    ) {
        if slot == LegRole::Caller {
            // Any re-INVITE/UPDATE from the caller refreshes the session (RFC 4028 §10).
            self.last_refresh = Instant::now();
        }
        let mut response_headers = vec![sdp_header()];
        if slot == LegRole::Caller
            && let Some(seconds) = self.session_expires
        {
            response_headers.push(Header::SessionExpires(
                format!("{seconds};refresher=uac").into(),
            ));
            response_headers.push(Header::Require("timer".into()));
        }
        let current = self.legs[slot.index()]
            .as_ref()
            .map(|l| l.remote_direction)
            .unwrap_or(Direction::SendRecv);
        let Some(offer) = body_string(&request.body) else {
            // No offer: we offer our current session; the answer comes in the ACK.
            match self
                .inner
                .ctx
                .media
                .set_direction(&self.id, slot, sdp::answer_direction(current))
                .await
            {
                Ok(ours) => handle
                    .respond(
                        StatusCode::OK,
                        Some(response_headers),
                        Some(ours.into_bytes()),
                    )
                    .await
                    .ok(),
                Err(_) => handle.reply(StatusCode::ServerInternalError).await.ok(),
            };
            return;
        };
        let offered = match sdp::parse(offer.as_bytes()) {
            Ok(parsed) => parsed.audio_direction(),
            Err(_) => {
                handle.reply(StatusCode::NotAcceptableHere).await.ok();
                return;
            }
        };
        if self
            .inner
            .ctx
            .media
            .remote_answer(&self.id, slot, &offer)
            .await
            .is_err()
        {
            handle.reply(StatusCode::NotAcceptableHere).await.ok();
            return;
        }
        match self
            .inner
            .ctx
            .media
            .set_direction(&self.id, slot, sdp::answer_direction(offered))
            .await
        {
            Ok(ours) => {
                handle
                    .respond(
                        StatusCode::OK,
                        Some(response_headers),
                        Some(ours.into_bytes()),
                    )
                    .await
                    .ok();
            }
            Err(_) => {
                handle.reply(StatusCode::ServerInternalError).await.ok();
                return;
            }
        }
        if let Some(leg) = self.legs[slot.index()].as_mut() {
            leg.remote_direction = offered;
            leg.remote_sdp = Some(offer);
        }
        if is_hold(current) == is_hold(offered) {
            return; // a refresh or a codec change: nothing for the other leg
        }
        let toward_other = if is_hold(offered) {
            offered
        } else {
            Direction::SendRecv
        };
        self.reinvite_leg(slot.other(), toward_other).await;
        let event = if is_hold(offered) {
            CallEvent::Held {
                call_id: self.id.clone(),
                at_ms: now_ms(),
            }
        } else {
            CallEvent::Resumed {
                call_id: self.id.clone(),
                at_ms: now_ms(),
            }
        };
        self.inner.emit(event);
    }

    /// Hold (`SendOnly`) or resume (`SendRecv`) the whole call: both legs are re-INVITEd, and
    /// the call counts as held or resumed only if both accept — half a hold is a failure.
    async fn set_call_direction(&mut self, direction: Direction) -> Result<(), ControlError> {
        self.held = direction != Direction::SendRecv;
        let a = self.reinvite_leg(LegRole::Caller, direction).await;
        let b = self.reinvite_leg(LegRole::Callee, direction).await;
        let (call_id, at_ms) = (self.id.clone(), now_ms());
        let (what, event) = if direction == Direction::SendRecv {
            ("resume", CallEvent::Resumed { call_id, at_ms })
        } else {
            ("hold", CallEvent::Held { call_id, at_ms })
        };
        self.notify_devices(DeviceNotice::Updated {
            muted: self.muted,
            held: self.held,
        });
        if a && b {
            self.inner.emit(event);
            Ok(())
        } else {
            Err(ControlError::Failed(legs_refused(what, a, b)))
        }
    }

    /// Send a re-INVITE with our SDP in `direction` to a leg and apply its answer.
    async fn reinvite_leg(&mut self, slot: LegRole, direction: Direction) -> bool {
        let Some(leg) = self.legs[slot.index()].as_ref() else {
            return false;
        };
        let Some(dialog) = leg.dialog().cloned() else {
            // A softphone is not re-INVITEd: holding it means its audio stops here.
            let muted = direction != Direction::SendRecv || self.muted;
            return self
                .inner
                .ctx
                .media
                .set_muted(&self.id, slot, muted)
                .is_ok();
        };
        if !wait_confirmed(&dialog, self.inner.config.bye_timeout).await {
            debug!(?slot, "leg never confirmed: no re-INVITE sent");
            return false;
        }
        let ours = match self
            .inner
            .ctx
            .media
            .set_direction(&self.id, slot, direction)
            .await
        {
            Ok(ours) => ours,
            Err(_) => return false,
        };
        match dialog
            .reinvite(Some(vec![sdp_header()]), Some(ours.into_bytes()))
            .await
        {
            Ok(Some(response)) if response.status_code.kind() == StatusCodeKind::Successful => {
                if let Some(answer) = body_string(&response.body) {
                    self.inner
                        .ctx
                        .media
                        .remote_answer(&self.id, slot, &answer)
                        .await
                        .ok();
                }
                true
            }
            other => {
                debug!(
                    ?slot,
                    ok = other.is_ok(),
                    "re-INVITE to the other leg not accepted"
                );
                false
            }
        }
    }

    /// REFER (blind transfer, RFC 3515): the referring party's place goes to the target.
    async fn on_refer(
        &mut self,
        slot: LegRole,
        request: rsipstack::sip::Request,
        handle: rsipstack::dialog::dialog::TransactionHandle,
    ) -> Option<Ending> {
        let Some(target) = headers::refer_to_user(&request) else {
            handle.reply(StatusCode::BadRequest).await.ok();
            return None;
        };
        handle.reply(StatusCode::Accepted).await.ok();
        // The 202 leaves through the dialog's transaction task; give it a moment so the
        // first NOTIFY follows it on the wire. RFC 6665 lets a NOTIFY overtake the 202, but
        // some phones drop a NOTIFY for a subscription they do not know yet.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let transferor = self.legs[slot.index()].as_ref()?.dialog()?.clone();
        notify_sipfrag(&transferor, 100, "Trying", "active;expires=60").await;
        match self.transfer(slot, &target).await {
            TransferOutcome::Done(old) => {
                notify_sipfrag(&transferor, 200, "OK", "terminated;reason=noresource").await;
                if let Some(old) = old {
                    self.hang_up_leg(old, EndReason::Transferred);
                }
                None
            }
            TransferOutcome::Failed(status) => {
                notify_sipfrag(
                    &transferor,
                    status,
                    "Failed",
                    "terminated;reason=noresource",
                )
                .await;
                if transferor.state().is_terminated() {
                    // The transferor already left: the kept party has nobody.
                    return Some(Ending {
                        status: 200,
                        side: slot_side(slot),
                        cause: "normal_clearing",
                    });
                }
                None
            }
            // Only a softphone leaves before its target answers, and softphones do not REFER.
            TransferOutcome::NobodyLeft(_) => Some(Ending {
                status: 200,
                side: HangupSide::System,
                cause: "transfer_failed",
            }),
            TransferOutcome::KeptPartyGone => Some(Ending {
                status: 200,
                side: slot_side(slot.other()),
                cause: "normal_clearing",
            }),
        }
    }

    /// Ring `target` for `slot`; on answer the new party replaces the old one.
    async fn transfer(&mut self, slot: LegRole, target: &str) -> TransferOutcome {
        let destination = match self
            .inner
            .ctx
            .directory
            .route_from_user(&self.org_id, target)
            .await
        {
            Ok(destination) => destination,
            Err(_) => return TransferOutcome::Failed(500),
        };
        let inner = self.inner.clone();
        let busy = |user: &str| inner.is_busy(user);
        let idle = |user: &str| inner.idle_since_ms(user);
        let org_id = self.org_id.clone();
        let softphone = |user: &str| inner.softphones.can_ring(&org_id, user);
        let plan_input = PlanInput {
            locator: inner.ctx.locator.as_ref(),
            org_id: &self.org_id,
            default_timeout: inner.config.no_answer_timeout,
            busy: &busy,
            idle_since_ms: &idle,
            softphone: &softphone,
        };
        let plan = match routing::plan(&destination, &plan_input) {
            Ok(plan) => plan,
            Err(NoPlan::NotFound) => return TransferOutcome::Failed(404),
            Err(NoPlan::Reject(status)) => return TransferOutcome::Failed(status),
            Err(NoPlan::Unavailable) => return TransferOutcome::Failed(480),
        };
        // A softphone's leg cannot stay up while its port offers media to the target: the
        // agent leaves at once (a blind transfer) and the kept party hears ringback.
        let left_early = if self.legs[slot.index()]
            .as_ref()
            .is_some_and(|l| matches!(l.peer, Peer::Browser))
        {
            self.inner.ctx.media.release_leg(&self.id, slot).await;
            let old = self.legs[slot.index()].take();
            if let Some(old) = &old
                && let Some(user) = &old.user_id
            {
                self.inner.mark_idle(user, now_ms());
                self.notify_device(user, DeviceNotice::Ended(EndReason::Transferred));
            }
            self.inner
                .ctx
                .media
                .play_ringback(&self.id, slot.other(), true)
                .ok();
            true
        } else {
            false
        };
        let kept = self.legs[slot.other().index()]
            .as_ref()
            .and_then(|l| l.dialog())
            .map(|d| d.id());
        let result = self.ring(plan, slot, None, kept).await;
        if left_early {
            self.inner
                .ctx
                .media
                .play_ringback(&self.id, slot.other(), false)
                .ok();
        }
        match result {
            RingResult::Answered {
                peer,
                answer_sdp,
                user_id,
            } => {
                self.adopt_answer(slot, &peer, answer_sdp.as_deref()).await;
                if let Some(user) = &user_id {
                    self.inner.mark_busy(user);
                }
                let new_leg = Leg {
                    peer,
                    user_id,
                    remote_direction: Direction::SendRecv,
                    remote_sdp: answer_sdp,
                };
                let old = self.legs[slot.index()].replace(new_leg);
                if let Some(user) = old.as_ref().and_then(|o| o.user_id.as_ref()) {
                    self.inner.mark_idle(user, now_ms());
                }
                self.inner.emit(CallEvent::Transferred {
                    call_id: self.id.clone(),
                    to: safe_user(target),
                    at_ms: now_ms(),
                });
                self.notify_devices(DeviceNotice::Answered);
                TransferOutcome::Done(old)
            }
            RingResult::NotConnected(RingFailure::NoMedia) if left_early => {
                TransferOutcome::NobodyLeft(503)
            }
            RingResult::NotConnected(RingFailure::NoMedia) => TransferOutcome::Failed(503),
            RingResult::NotConnected(RingFailure::Failed(status)) if left_early => {
                TransferOutcome::NobodyLeft(status)
            }
            RingResult::NotConnected(RingFailure::Failed(status)) => {
                self.restore_leg_media(slot).await;
                TransferOutcome::Failed(status)
            }
            RingResult::NotConnected(
                RingFailure::Aborted | RingFailure::ApiHangup | RingFailure::AgentHangup,
            ) => TransferOutcome::KeptPartyGone,
        }
    }

    /// A transfer re-offered `slot`'s media for the target and failed: put the leg back as
    /// its (still connected) far end negotiated it.
    async fn restore_leg_media(&self, slot: LegRole) {
        let Some(leg) = self.legs[slot.index()].as_ref() else {
            return;
        };
        let media = &self.inner.ctx.media;
        if let Some(sdp) = &leg.remote_sdp
            && let Err(e) = media.remote_answer(&self.id, slot, sdp).await
        {
            warn!(error = %e, ?slot, "could not restore the leg's media after a failed transfer");
        }
        if leg.remote_direction != Direction::SendRecv {
            media
                .set_direction(&self.id, slot, sdp::answer_direction(leg.remote_direction))
                .await
                .ok();
        }
    }

    fn hang_up_leg(&self, leg: Leg, reason: EndReason) {
        match leg.peer {
            Peer::Sip(dialog) => self.send_bye(dialog),
            Peer::Browser => {
                if let Some(user) = &leg.user_id {
                    self.notify_device(user, DeviceNotice::Ended(reason));
                }
            }
        }
    }

    /// BYE a leg in the background and forget its dialog. The wait is bounded by
    /// `bye_timeout`: a peer that died (the usual reason a call ends with "timeout") never
    /// answers, and its BYE must not hold a task for the whole transaction timer.
    fn send_bye(&self, dialog: InviteDialog) {
        let layer = self.inner.ctx.dialog_layer.clone();
        let limit = self.inner.config.bye_timeout;
        self.inner.spawn(async move {
            // rsipstack refuses a BYE while the dialog is busy with another in-dialog
            // request (its state is then e.g. Updated or Info): wait for it to settle.
            let deadline = Instant::now() + limit;
            while !matches!(
                dialog.state(),
                DialogState::Confirmed(..) | DialogState::WaitAck(..) | DialogState::Terminated(..)
            ) && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if !dialog.state().is_terminated()
                && tokio::time::timeout(limit, dialog.bye()).await.is_err()
            {
                debug!("BYE not answered in time; dialog dropped");
            }
            layer.remove_dialog(&dialog.id());
        });
    }

    async fn on_command(&mut self, command: Command) -> Option<Ending> {
        match command {
            Command::Hangup(reply) => {
                reply.send(Ok(())).ok();
                Some(Ending {
                    status: 200,
                    side: HangupSide::Api,
                    cause: "normal_clearing",
                })
            }
            Command::Hold(reply) => {
                reply
                    .send(self.set_call_direction(Direction::SendOnly).await)
                    .ok();
                None
            }
            Command::Resume(reply) => {
                reply
                    .send(self.set_call_direction(Direction::SendRecv).await)
                    .ok();
                None
            }
            Command::Transfer(target, reply) => {
                // The agent's place goes to the target; the remote party stays.
                let agent_slot = [LegRole::Callee, LegRole::Caller]
                    .into_iter()
                    .find(|role| {
                        self.legs[role.index()]
                            .as_ref()
                            .is_some_and(|l| l.user_id.is_some() && l.user_id == self.agent_user_id)
                    })
                    .or_else(|| {
                        [LegRole::Callee, LegRole::Caller].into_iter().find(|role| {
                            self.legs[role.index()]
                                .as_ref()
                                .is_some_and(|l| l.user_id.is_some())
                        })
                    })
                    .unwrap_or(LegRole::Callee);
                let (result, ending) = self.transfer_away(agent_slot, &target).await;
                reply.send(result).ok();
                ending
            }
            Command::Device(request) => self.device_in_call(request).await,
            Command::MediaLost(reply) => {
                reply.send(Ok(())).ok();
                Some(Ending {
                    status: 200,
                    side: HangupSide::System,
                    cause: "media_failed",
                })
            }
        }
    }

    /// Blind transfer of the party opposite `slot` to `target`, `slot`'s party leaving: the
    /// command's result, and how the call ends if it must.
    async fn transfer_away(
        &mut self,
        slot: LegRole,
        target: &str,
    ) -> (ControlResult<()>, Option<Ending>) {
        match self.transfer(slot, target).await {
            TransferOutcome::Done(old) => {
                if let Some(old) = old {
                    self.hang_up_leg(old, EndReason::Transferred);
                }
                (Ok(()), None)
            }
            TransferOutcome::Failed(status) => (
                Err(ControlError::Unreachable(format!(
                    "transfer target answered {status}"
                ))),
                None,
            ),
            TransferOutcome::NobodyLeft(status) => (
                Err(ControlError::Unreachable(format!(
                    "transfer target answered {status}"
                ))),
                Some(Ending {
                    status: 200,
                    side: HangupSide::System,
                    cause: "transfer_failed",
                }),
            ),
            TransferOutcome::KeptPartyGone => (
                Err(ControlError::InvalidState(
                    "the remote party hung up".into(),
                )),
                Some(Ending {
                    status: 200,
                    side: slot_side(slot.other()),
                    cause: "normal_clearing",
                }),
            ),
        }
    }

    /// End the call: hang up what is still up, release media, report.
    async fn finish(mut self, ending: Ending) {
        let at_ms = now_ms();
        for slot in [LegRole::Caller, LegRole::Callee] {
            let Some(leg) = self.legs[slot.index()].take() else {
                continue;
            };
            if let Some(user) = &leg.user_id
                && self.answered
            {
                self.inner.mark_idle(user, at_ms);
            }
            match leg.peer {
                Peer::Sip(dialog) if dialog.state().is_terminated() => {
                    self.inner.ctx.dialog_layer.remove_dialog(&dialog.id());
                }
                Peer::Sip(dialog) => self.send_bye(dialog),
                Peer::Browser => {
                    if let Some(user) = &leg.user_id {
                        let reason = device_end_reason(&ending, slot);
                        self.notify_device(user, DeviceNotice::Ended(reason));
                    }
                }
            }
        }
        for dialog in &self.dialogs {
            // Unanswered or already-ended dialogs: just forget them.
            if dialog.state().is_terminated() || !dialog.state().is_confirmed() {
                self.inner.ctx.dialog_layer.remove_dialog(&dialog.id());
            }
        }
        self.inner.ctx.media.close_call(&self.id).await;
        self.inner.unregister_call(&self.id);
        // Commands that raced the end get "not found".
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Hangup(r)
                | Command::Hold(r)
                | Command::Resume(r)
                | Command::MediaLost(r)
                | Command::Transfer(_, r) => {
                    r.send(Err(ControlError::NotFound)).ok();
                }
                Command::Device(request) => {
                    request.reply.send(Err(ControlError::NotFound)).ok();
                }
            }
        }
        self.inner.emit(CallEvent::Ended {
            call_id: self.id.clone(),
            at_ms,
            sip_status: ending.status,
            hangup_side: ending.side,
            cause: ending.cause.to_string(),
        });
    }
}

/// Wait (bounded) until a dialog is confirmed. Right after an answer the caller's ACK may
/// still be on its way, and a re-INVITE before it is not allowed (RFC 3261 §14.1):
/// rsipstack then sends nothing and reports no response, so a hold issued at once would
/// silently skip that leg.
async fn wait_confirmed(dialog: &InviteDialog, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let state = dialog.state();
        if state.is_confirmed() {
            return true;
        }
        if state.is_terminated() || Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

enum TransferOutcome {
    /// The target took the place; the old leg (if still there) is to be hung up.
    Done(Option<Leg>),
    /// The target did not answer; the old leg is still in the call.
    Failed(u16),
    /// The target did not answer and the old leg had already left (a softphone's blind
    /// transfer): the kept party has nobody and the call ends.
    NobodyLeft(u16),
    KeptPartyGone,
}

/// Which leg(s) did not accept a hold or resume re-INVITE.
fn legs_refused(what: &str, caller_ok: bool, callee_ok: bool) -> String {
    let legs = match (caller_ok, callee_ok) {
        (false, false) => "neither leg",
        (false, true) => "the caller's leg",
        _ => "the callee's leg",
    };
    if caller_ok != callee_ok {
        format!("{legs} did not accept the {what}")
    } else {
        format!("{legs} accepted the {what}")
    }
}

/// Why the call ended, as the agent on `slot`'s softphone is told.
fn device_end_reason(ending: &Ending, slot: LegRole) -> EndReason {
    match ending.cause {
        "busy" => return EndReason::Busy,
        "no_answer" => return EndReason::NoAnswer,
        "rejected" => return EndReason::Rejected,
        "not_found" | "unavailable" => return EndReason::Unavailable,
        "media_failed" => return EndReason::MediaFailed,
        "transfer_failed" | "media_unavailable" | "internal" => return EndReason::Failed,
        _ => {}
    }
    if ending.side == slot_side(slot) {
        EndReason::AgentHangup
    } else if ending.side == slot_side(slot.other()) {
        EndReason::RemoteHangup
    } else {
        EndReason::Failed
    }
}

fn slot_side(slot: LegRole) -> HangupSide {
    match slot {
        LegRole::Caller => HangupSide::Caller,
        LegRole::Callee => HangupSide::Callee,
    }
}

/// NOTIFY of the implicit REFER subscription with a message/sipfrag status line.
async fn notify_sipfrag(dialog: &InviteDialog, status: u16, reason: &str, state: &str) {
    let headers = vec![
        Header::Event("refer".into()),
        Header::SubscriptionState(state.into()),
        Header::ContentType("message/sipfrag;version=2.0".into()),
    ];
    let body = format!("SIP/2.0 {status} {reason}\r\n").into_bytes();
    match tokio::time::timeout(
        Duration::from_secs(10),
        dialog.notify(Some(headers), Some(body)),
    )
    .await
    {
        Ok(Ok(_)) => {}
        other => debug!(ok = other.is_ok(), "NOTIFY for REFER not answered"),
    }
}

//! Browser softphones inside a call: ringing an agent's page, its answer (a WebRTC offer)
//! becoming the call's leg, the commands its page sends (mute, hold, transfer, DTMF,
//! hang-up) and what the page is told back. Also click-to-call started from the page.

use std::sync::Arc;
use tokio::time::Instant;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::super::routing::{self, NoPlan, PlanInput};
use super::super::{DeviceRequest, Inner};
use super::{
    Call, Ending, Fork, Leg, Peer, RingFailure, RingResult, body_string, new_call_id, now_ms,
    safe_user, slot_side,
};
use crate::control::{ControlError, ControlResult, DeviceCommand, DeviceReply};
use crate::directory::Destination;
use crate::events::{CallDirection, CallEvent};
use crate::media::{Direction, LegRole};
use crate::softphones::{DeviceCall, DeviceNotice, EndReason};

impl Call {
    fn device_call(&self) -> DeviceCall {
        DeviceCall {
            call_id: self.id.clone(),
            org_id: self.org_id.clone(),
            direction: self.direction,
            from: self.from_user.clone(),
            from_display: self.from_display.clone(),
            to: self.dialled.clone().unwrap_or_default(),
        }
    }

    pub(super) fn notify_device(&self, user_id: &str, notice: DeviceNotice) {
        self.inner
            .softphones
            .notify(&self.org_id, user_id, &self.id, notice);
    }

    /// Tell every softphone in the call (not the ones only ringing).
    pub(super) fn notify_devices(&self, notice: DeviceNotice) {
        for leg in self.legs.iter().flatten() {
            if let Some(user) = leg.browser_user() {
                self.notify_device(user, notice.clone());
            }
        }
    }

    pub(super) fn ring_browser(&self, user_id: &str) {
        self.notify_device(user_id, DeviceNotice::Incoming(self.device_call()));
    }

    /// The slot of `user_id`'s softphone leg, if it is in the call.
    fn browser_slot(&self, user_id: &str) -> Option<LegRole> {
        [LegRole::Caller, LegRole::Callee].into_iter().find(|slot| {
            self.legs[slot.index()]
                .as_ref()
                .and_then(Leg::browser_user)
                .is_some_and(|u| u == user_id)
        })
    }

    /// Ringback into a softphone that waits alone for the party it dialled.
    pub(super) fn ringback(&self, on: bool) {
        for slot in [LegRole::Caller, LegRole::Callee] {
            let alone = self.legs[slot.other().index()].is_none();
            let browser = self.legs[slot.index()]
                .as_ref()
                .is_some_and(|l| l.browser_user().is_some());
            if browser
                && (alone || !on)
                && let Err(e) = self.inner.ctx.media.play_ringback(&self.id, slot, on)
            {
                debug!(error = %e, "no ringback");
            }
        }
    }

    /// Progress (180/183) of the party dialled for an agent whose leg is already up: the
    /// agent hears the far end's early media when it sends some, else our ringback.
    pub(super) async fn progress_to_agent(
        &mut self,
        response: &rsipstack::sip::Response,
        slot: LegRole,
        relayed: &mut bool,
    ) {
        let agent_is_browser = self.legs[slot.other().index()]
            .as_ref()
            .is_some_and(|l| l.browser_user().is_some());
        if let Some(sdp) = body_string(&response.body)
            && agent_is_browser
        {
            match self
                .inner
                .ctx
                .media
                .remote_answer(&self.id, slot, &sdp)
                .await
            {
                // Its audio now flows to the agent, which stops our tone.
                Ok(()) => self.ringback(false),
                Err(e) => debug!(error = %e, "early media refused"),
            }
        }
        if !*relayed {
            *relayed = true;
            if agent_is_browser {
                self.notify_devices(DeviceNotice::Ringing);
                if body_string(&response.body).is_none() {
                    self.ringback(true);
                }
                self.inner.emit(CallEvent::Ringing {
                    call_id: self.id.clone(),
                    at_ms: now_ms(),
                });
            }
        }
    }

    /// A softphone's command while the call rings. `Some` ends the ringing.
    pub(super) async fn device_while_ringing(
        &mut self,
        slot: LegRole,
        forks: &mut [Fork],
        statuses: &mut Vec<u16>,
        offered: bool,
        request: DeviceRequest,
    ) -> Option<RingResult> {
        let DeviceRequest {
            user_id,
            command,
            reply,
        } = request;
        let user_id = user_id.as_str();
        let ringing = forks
            .iter()
            .position(|f| !f.done && f.dialog.is_none() && f.user_id.as_deref() == Some(user_id));
        match (ringing, command) {
            (Some(index), DeviceCommand::Answer { offer }) => {
                // The slot holds the SIP offer made for phones; a browser brings its own.
                if offered {
                    self.inner.ctx.media.release_leg(&self.id, slot).await;
                }
                let opened = self
                    .inner
                    .ctx
                    .media
                    .open_browser_leg(&self.id, slot, &offer)
                    .await;
                if let Some(fork) = forks.get_mut(index) {
                    fork.done = true;
                }
                match opened {
                    Ok(answer) => {
                        self.cancel_forks(forks, EndReason::AnsweredElsewhere);
                        reply.send(Ok(DeviceReply::Answer(answer))).ok();
                        Some(RingResult::Answered {
                            peer: Peer::Browser,
                            answer_sdp: None,
                            user_id: Some(user_id.to_string()),
                        })
                    }
                    Err(e) => {
                        warn!(error = %e, "a softphone's offer was refused");
                        statuses.push(488);
                        self.notify_device(user_id, DeviceNotice::Ended(EndReason::MediaFailed));
                        reply
                            .send(Err(ControlError::Failed(format!("your offer: {e}"))))
                            .ok();
                        None
                    }
                }
            }
            (Some(index), DeviceCommand::Reject | DeviceCommand::Hangup) => {
                if let Some(fork) = forks.get_mut(index) {
                    fork.done = true;
                }
                // A declining agent is busy for this call; the group goes on ringing.
                statuses.push(486);
                self.notify_device(user_id, DeviceNotice::Ended(EndReason::Rejected));
                reply.send(Ok(DeviceReply::Done)).ok();
                None
            }
            (Some(_), _) => {
                reply
                    .send(Err(ControlError::InvalidState(
                        "the call is ringing: answer or reject it".into(),
                    )))
                    .ok();
                None
            }
            (None, command) => {
                let Some(own) = self.browser_slot(user_id) else {
                    reply.send(Err(ControlError::NotFound)).ok();
                    return None;
                };
                // The agent's own call, still ringing the other party.
                match command {
                    DeviceCommand::Hangup => {
                        self.cancel_forks(forks, EndReason::CallerCancelled);
                        reply.send(Ok(DeviceReply::Done)).ok();
                        Some(RingResult::NotConnected(RingFailure::AgentHangup))
                    }
                    DeviceCommand::Candidate(line) => {
                        reply.send(self.add_candidate(own, &line)).ok();
                        None
                    }
                    DeviceCommand::Mute(muted) => {
                        reply.send(self.mute(own, muted)).ok();
                        None
                    }
                    _ => {
                        reply
                            .send(Err(ControlError::InvalidState(
                                "the call is not answered yet".into(),
                            )))
                            .ok();
                        None
                    }
                }
            }
        }
    }

    /// A softphone's command during the connected call. `Some` ends the call.
    pub(super) async fn device_in_call(&mut self, request: DeviceRequest) -> Option<Ending> {
        let DeviceRequest {
            user_id,
            command,
            reply,
        } = request;
        let Some(slot) = self.browser_slot(&user_id) else {
            reply.send(Err(ControlError::NotFound)).ok();
            return None;
        };
        let (result, ending) = match command {
            DeviceCommand::Answer { .. } | DeviceCommand::Reject => (
                Err(ControlError::InvalidState(
                    "the call is already answered".into(),
                )),
                None,
            ),
            DeviceCommand::Candidate(line) => (self.add_candidate(slot, &line), None),
            DeviceCommand::Hangup => (
                Ok(DeviceReply::Done),
                Some(Ending {
                    status: 200,
                    side: slot_side(slot),
                    cause: "normal_clearing",
                }),
            ),
            DeviceCommand::Mute(muted) => (self.mute(slot, muted), None),
            DeviceCommand::Hold(hold) => {
                let direction = if hold {
                    Direction::SendOnly
                } else {
                    Direction::SendRecv
                };
                let result = self.set_call_direction(direction).await;
                (result.map(|()| DeviceReply::Done), None)
            }
            DeviceCommand::Transfer(target) => {
                let (result, ending) = self.transfer_away(slot, &target).await;
                (result.map(|()| DeviceReply::Done), ending)
            }
            DeviceCommand::Dtmf(digits) => (
                self.inner
                    .ctx
                    .media
                    .send_dtmf(&self.id, slot.other(), &digits)
                    .map(|()| DeviceReply::Done)
                    .map_err(|e| ControlError::InvalidState(e.to_string())),
                None,
            ),
        };
        reply.send(result).ok();
        ending
    }

    fn add_candidate(&self, slot: LegRole, line: &str) -> ControlResult<DeviceReply> {
        self.inner
            .ctx
            .media
            .add_browser_candidate(&self.id, slot, line)
            .map(|()| DeviceReply::Done)
            .map_err(|e| ControlError::InvalidState(e.to_string()))
    }

    /// The agent's audio stops (or starts again) reaching the other party; on hold it stays
    /// stopped whatever the mute button says.
    fn mute(&mut self, slot: LegRole, muted: bool) -> ControlResult<DeviceReply> {
        self.inner
            .ctx
            .media
            .set_muted(&self.id, slot, muted || self.held)
            .map_err(|e| ControlError::Failed(e.to_string()))?;
        self.muted = muted;
        self.notify_devices(DeviceNotice::Updated {
            muted: self.muted,
            held: self.held,
        });
        Ok(DeviceReply::Done)
    }
}

/// Click-to-call from a softphone: the browser's leg is set up from its offer now, the
/// number is dialled in the background (see [`Call::dial_customer`]). Presence does not
/// matter: an agent who is away (not taking calls) may still place one.
pub(in crate::call) async fn browser_dial_impl(
    inner: Arc<Inner>,
    org_id: &str,
    user_id: &str,
    number: &str,
    offer: &str,
) -> ControlResult<(String, String)> {
    let destination = inner
        .ctx
        .directory
        .route_from_user(org_id, number)
        .await
        .map_err(|e| ControlError::Failed(e.to_string()))?;
    let busy = |user: &str| inner.is_busy(user);
    let idle = |user: &str| inner.idle_since_ms(user);
    let softphone = |user: &str| user != user_id && inner.softphones.can_ring(org_id, user);
    let plan_input = PlanInput {
        locator: inner.ctx.locator.as_ref(),
        org_id,
        default_timeout: inner.config.no_answer_timeout,
        busy: &busy,
        idle_since_ms: &idle,
        softphone: &softphone,
    };
    let plan = routing::plan(&destination, &plan_input).map_err(|e| match e {
        NoPlan::NotFound => ControlError::Unreachable("unknown destination".into()),
        NoPlan::Reject(status) => {
            ControlError::Unreachable(format!("destination rejects ({status})"))
        }
        NoPlan::Unavailable => ControlError::Unreachable("destination unavailable".into()),
    })?;
    let (direction, trunk_id) = match &destination {
        Destination::External { trunk, .. } => {
            (CallDirection::Outbound, Some(trunk.trunk_id.clone()))
        }
        _ => (CallDirection::Internal, None),
    };
    let call_id = new_call_id();
    let answer = match inner
        .ctx
        .media
        .open_browser_leg(&call_id, LegRole::Caller, offer)
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            inner.ctx.media.close_call(&call_id).await;
            return Err(ControlError::InvalidState(format!("your offer: {e}")));
        }
    };
    let (state_tx, state_rx) = inner.ctx.dialog_layer.new_dialog_state_channel();
    let (command_tx, command_rx) = mpsc::channel(8);
    inner.register_call(&call_id, org_id, command_tx);
    inner.emit(CallEvent::Started {
        call_id: call_id.clone(),
        org_id: org_id.to_string(),
        direction,
        from: safe_user(user_id),
        to: safe_user(number),
        sip_call_id: String::new(),
        agent_user_id: Some(user_id.to_string()),
        trunk_id: trunk_id.clone(),
        at_ms: now_ms(),
    });
    inner.mark_busy(user_id);
    let call = Call {
        inner: inner.clone(),
        id: call_id.clone(),
        org_id: org_id.to_string(),
        state_tx,
        state_rx,
        commands: command_rx,
        legs: [
            Some(Leg {
                peer: Peer::Browser,
                user_id: Some(user_id.to_string()),
                remote_direction: Direction::SendRecv,
                remote_sdp: None,
            }),
            None,
        ],
        dialogs: Vec::new(),
        from_user: safe_user(user_id),
        from_display: None,
        caller_answer: None,
        caller_offer: None,
        caller_delayed_offer: false,
        caller_answer_applied: true,
        session_expires: None,
        last_refresh: Instant::now(),
        // The agent is in the call from the start: it ends as an answered leg would.
        answered: true,
        agent_user_id: Some(user_id.to_string()),
        direction,
        trunk_id,
        dialled: Some(number.to_string()),
        muted: false,
        held: false,
    };
    let mut dialing = call.device_call();
    dialing.from = safe_user(number);
    call.notify_device(user_id, DeviceNotice::Dialing(dialing));
    inner.spawn(call.dial_customer(plan, None));
    Ok((call_id, answer))
}

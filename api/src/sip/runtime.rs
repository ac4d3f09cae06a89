//! Starting and stopping the SIP side inside `callscope serve`: the SIP server (registrar,
//! digest auth, transports) with the database directory, the B2BUA as call handler and call
//! control, signalling-only media (ports and SDP; real media is issue 4), and the call-event
//! consumer on the other end of a bounded channel.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use callscope_media::engine::{EngineConfig, LegSide, MediaEngine, MediaEvent, WebRtcState};
use callscope_sip::call::{CallConfig, CallManager};
use callscope_sip::handler::{CallHandler, SipContext};
use callscope_sip::media::Codec;
use callscope_sip::rtp_media::{RtpMedia, codec_available};
use callscope_sip::{SipConfig, SipServer};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{DbDirectory, consumer};
use crate::http::state::AppState;

#[derive(Debug, thiserror::Error)]
#[error("SIP: {0}")]
pub struct SipStartError(pub String);

/// The running SIP side; [`SipHandle::shutdown`] stops it.
pub struct SipHandle {
    server: Arc<Mutex<Option<SipServer>>>,
    manager: CallManager,
    /// Dropped at shutdown after the calls: closes the report channel, ending `reports`.
    media: Arc<RtpMedia>,
    reports: JoinHandle<()>,
    media_event_log: JoinHandle<()>,
    consumer: JoinHandle<()>,
    stop_consumer: watch::Sender<bool>,
    pub udp_addr: Option<std::net::SocketAddr>,
    pub tcp_addr: Option<std::net::SocketAddr>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Start SIP when `[sip] enabled`; `None` otherwise.
pub async fn start(state: &AppState) -> Result<Option<SipHandle>, SipStartError> {
    let settings = &state.config.sip;
    if !settings.enabled {
        return Ok(None);
    }
    let region = settings.region(&state.config.default_region).to_string();
    let sip_config = SipConfig {
        udp_addr: settings.udp_addr,
        tcp_addr: settings.tcp_addr,
        public_addr: settings.public_addr,
        registrar: settings.registrar.clone(),
        auth: settings.auth.clone(),
        security: settings.security.clone(),
        ..SipConfig::default()
    };
    let media_settings = &settings.media;
    let media_ip = media_ip(settings);
    let engine_config = engine_config(settings);
    let (engine, media_events) = MediaEngine::new(engine_config);
    let codecs = configured_codecs(&media_settings.codecs)?;
    let policy = Arc::new(super::recording_policy::DbRecordingPolicy::new(
        state.recordings_dir.clone(),
        media_settings.recording_format.extension(),
        media_settings.record_calls,
        region.clone(),
    ));
    policy
        .reload(&state.pool)
        .await
        .map_err(|e| SipStartError(format!("recording settings: {e}")))?;
    let (reports_tx, reports_rx) = mpsc::channel(super::call_media::REPORT_CHANNEL_CAPACITY);
    let reports = super::call_media::spawn(state.clone(), reports_rx);
    let ringback = match media_settings.ringback {
        crate::config::Ringback::Us => callscope_media::engine::Tone::RingbackUs,
        crate::config::Ringback::Eu => callscope_media::engine::Tone::Ringback,
    };
    let mut rtp_media = RtpMedia::new(engine.clone(), media_ip, codecs, policy.clone(), reports_tx)
        .with_ringback(ringback);
    if media_settings.live_utterances {
        rtp_media = rtp_media.with_live_audio(Arc::new(super::live_audio::LiveUtteranceSink::new(
            state.clone(),
        )));
    }
    let media = Arc::new(rtp_media);
    let directory = Arc::new(DbDirectory::new(state.pool.clone(), region.clone()));

    let (events_tx, events_rx) = mpsc::channel(consumer::EVENT_CHANNEL_CAPACITY);
    let (stop_consumer, stop_rx) = watch::channel(false);
    let consumer = consumer::spawn(state.pool.clone(), events_rx, region, stop_rx);

    let calls = &settings.calls;
    let call_config = CallConfig {
        no_answer_timeout: Duration::from_secs(calls.no_answer_timeout_s),
        keepalive_interval: (calls.keepalive_interval_s > 0)
            .then(|| Duration::from_secs(calls.keepalive_interval_s)),
        keepalive_timeout: Duration::from_secs(calls.keepalive_timeout_s.max(1)),
        ..CallConfig::default()
    };
    // Browser agents ring like phones (see agent::softphone).
    let softphones: Arc<dyn callscope_sip::softphones::Softphones> =
        Arc::new(crate::agent::softphone::AgentSoftphones::new(state));
    let manager_slot: Arc<Mutex<Option<CallManager>>> = Arc::default();
    let slot = manager_slot.clone();
    let server = SipServer::start(
        sip_config,
        directory,
        media.clone(),
        events_tx.clone(),
        move |ctx| {
            // The B2BUA owns its own copy of the context (all fields are shared handles).
            let own = SipContext {
                endpoint: ctx.endpoint.clone(),
                dialog_layer: ctx.dialog_layer.clone(),
                directory: ctx.directory.clone(),
                locator: ctx.locator.clone(),
                authenticator: ctx.authenticator.clone(),
                media: ctx.media.clone(),
                events: ctx.events.clone(),
                public_addr: ctx.public_addr,
            };
            let manager =
                CallManager::with_softphones(own, call_config.clone(), softphones.clone());
            *lock(&slot) = Some(manager.clone());
            Arc::new(manager) as Arc<dyn CallHandler>
        },
    )
    .await
    .map_err(|e| {
        let _ = stop_consumer.send(true);
        SipStartError(e.to_string())
    })?;
    let manager = lock(&manager_slot)
        .take()
        .ok_or_else(|| SipStartError("the SIP server did not create a call handler".into()))?;
    let media_event_log = tokio::spawn(watch_media_events(
        media_events,
        manager.clone(),
        engine.clone(),
        Duration::from_secs(state.config.agent.media_grace_s),
    ));
    let (udp_addr, tcp_addr) = (server.udp_addr(), server.tcp_addr());
    let server = Arc::new(Mutex::new(Some(server)));

    state.sip.set_control(Arc::new(manager.clone()));
    state.sip.set_media(engine.clone(), policy);
    state.sip.set_events(&events_tx);
    let (srv, mgr) = (server.clone(), manager.clone());
    // Weak: the stats must not keep the channel open after the SIP side is gone.
    let events_weak = events_tx.downgrade();
    state.sip.set_stats(Arc::new(move || {
        // Events waiting for the consumer: near zero when it keeps up, growing when the
        // database falls behind (drops start when it reaches the channel's capacity).
        let queued = events_weak
            .upgrade()
            .map_or(0, |tx| (tx.max_capacity() - tx.capacity()) as u64);
        let mut out = vec![
            ("live_calls", mgr.live_calls() as u64),
            ("call_tasks", mgr.live_tasks() as u64),
            ("call_events_dropped", mgr.dropped_events()),
            ("call_events_queued", queued),
        ];
        out.extend([
            ("media_calls", engine.open_calls() as u64),
            ("media_ports_in_use", engine.ports_in_use() as u64),
            ("media_packets_relayed", engine.packets_relayed()),
        ]);
        if let Some(s) = lock(&srv).as_ref() {
            let c = s.counters();
            out.extend([
                ("messages_received", c.messages_received),
                ("parse_errors", c.parse_errors),
                ("bad_requests_sent", c.bad_requests_sent),
                ("auth_failures", c.auth_failures),
                ("bans", c.bans),
                ("banned_drops", c.banned_drops),
                ("rate_limited", c.rate_limited),
                ("method_not_allowed", c.method_not_allowed),
            ]);
        }
        out
    }));
    tracing::info!(udp = ?udp_addr, tcp = ?tcp_addr, "SIP listening");
    Ok(Some(SipHandle {
        server,
        manager,
        media,
        reports,
        media_event_log,
        consumer,
        stop_consumer,
        udp_addr,
        tcp_addr,
    }))
}

impl SipHandle {
    pub fn manager(&self) -> &CallManager {
        &self.manager
    }

    /// Stop the transports, then let the consumer apply the events already queued.
    pub async fn shutdown(self) {
        let server = lock(&self.server).take();
        if let Some(s) = server {
            s.shutdown().await;
        }
        let _ = self.stop_consumer.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.consumer).await;
        // The B2BUA still holds the media (through the server's context) until it is gone;
        // reports of calls that ended are already queued and get stored before we return.
        drop(self.media);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.reports).await;
        self.media_event_log.abort();
    }
}

/// The address written into SDP: the public SIP address, else the one SIP listens on.
fn media_ip(settings: &crate::config::SipSettings) -> std::net::IpAddr {
    settings
        .public_addr
        .or(settings.udp_addr)
        .or(settings.tcp_addr)
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]))
}

/// The media engine's settings from `[sip]` and `[sip.media]`.
fn engine_config(settings: &crate::config::SipSettings) -> EngineConfig {
    let media_ip = media_ip(settings);
    let media_settings = &settings.media;
    let mut engine_config = EngineConfig::local(media_settings.bind_ip.unwrap_or(media_ip));
    engine_config.port_min = settings.rtp_port_min;
    engine_config.port_max = settings.rtp_port_max;
    engine_config.tap_capacity = media_settings.tap_capacity.max(1);
    engine_config.webrtc_public_ip = media_settings.webrtc_address;
    engine_config.rtcp_interval = Duration::from_secs(media_settings.rtcp_interval_s.max(1));
    engine_config.opus_recording_rate = media_settings.opus_recording_rate.hz();
    engine_config.webrtc_audio_rate = media_settings.webrtc_audio_rate.hz();
    if let Some(n) = media_settings.media_threads {
        engine_config.media_threads = n.get();
    }
    if let Some(n) = media_settings.recording_threads {
        engine_config.recording_threads = n.get();
    }
    // Twice a second: a crash loses at most this much plus the recorder's playout delay,
    // inside the promised second; two small writes a second per call cost little.
    engine_config.flush_interval = Duration::from_millis(500);
    engine_config
}

/// The configured codecs this build can carry, in order; unknown names are an error.
fn configured_codecs(names: &[String]) -> Result<Vec<Codec>, SipStartError> {
    let mut codecs = Vec::new();
    for name in names {
        let codec = Codec::from_name(name).ok_or_else(|| {
            SipStartError(format!("unknown codec {name:?} in [sip.media] codecs"))
        })?;
        if codec_available(codec) {
            codecs.push(codec);
        } else {
            tracing::warn!(codec = %name, "codec not available in this build; not offered");
        }
    }
    if !codecs.iter().any(|c| *c != Codec::TelephoneEvent) {
        return Err(SipStartError(
            "[sip.media] codecs names no voice codec this build supports".into(),
        ));
    }
    Ok(codecs)
}

/// Live media events. DTMF digits and pauses are stored from each call's final report;
/// here they are logged and counted as they happen (the agents' live view comes later).
/// Logs and counts what the media engine reports, and ends calls whose browser leg is gone:
/// at once when its WebRTC connection failed, after `grace` when it stays disconnected (a
/// closed tab, a lost network; the page's WebSocket says nothing about the media).
async fn watch_media_events(
    mut events: mpsc::Receiver<MediaEvent>,
    manager: CallManager,
    engine: MediaEngine,
    grace: Duration,
) {
    while let Some(event) = events.recv().await {
        match &event {
            MediaEvent::WebRtc {
                call_id,
                side,
                state: WebRtcState::Failed,
                error,
            } => {
                tracing::info!(%call_id, ?side, ?error, "browser media failed; ending the call");
                let _ = manager.end_for_lost_media(call_id).await;
            }
            MediaEvent::WebRtc {
                call_id,
                side,
                state: WebRtcState::Disconnected,
                ..
            } => {
                let (manager, engine, call_id, side) =
                    (manager.clone(), engine.clone(), call_id.clone(), *side);
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    let leg = engine.snapshot(&call_id).and_then(|s| match side {
                        LegSide::A => s.a,
                        LegSide::B => s.b,
                    });
                    if leg.and_then(|l| l.webrtc) == Some(WebRtcState::Disconnected) {
                        tracing::info!(%call_id, ?side, "browser media gone; ending the call");
                        let _ = manager.end_for_lost_media(&call_id).await;
                    }
                });
            }
            MediaEvent::Dtmf { call_id, digit, .. } => {
                metrics::counter!("callscope_media_dtmf_digits_total").increment(1);
                tracing::debug!(%call_id, %digit, "DTMF");
            }
            MediaEvent::TapOverflow {
                call_id,
                dropped_total,
                ..
            } => {
                tracing::warn!(%call_id, dropped_total, "live audio tap lagging; frames dropped");
            }
            MediaEvent::RecordingFailed { call_id, error } => {
                metrics::counter!("callscope_media_recording_failures_total").increment(1);
                tracing::error!(%call_id, %error, "recording failed; the call goes on");
            }
            other => tracing::debug!(event = ?other, "media event"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SipSettings, ThreadCount};

    #[test]
    fn thread_counts_reach_the_engine_only_when_set() {
        let mut settings = SipSettings::default();
        let defaults = EngineConfig::local(std::net::IpAddr::from([127, 0, 0, 1]));
        let config = engine_config(&settings);
        assert_eq!(
            (config.media_threads, config.recording_threads),
            (defaults.media_threads, defaults.recording_threads)
        );
        settings.media.media_threads = Some(ThreadCount::try_from(3).unwrap());
        settings.media.recording_threads = Some(ThreadCount::try_from(7).unwrap());
        let config = engine_config(&settings);
        assert_eq!((config.media_threads, config.recording_threads), (3, 7));
    }
}

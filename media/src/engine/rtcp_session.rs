//! RTCP for one leg: the periodic compound report we send (SR when we sent media in the
//! interval, RR otherwise, with a report block on what we received and our SDES CNAME),
//! and what we learn from the far end's reports (their SR for our DLSR, RTT from blocks
//! about our stream).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::rtcp::{
    self, ReceiverReport, ReportBlock, RtcpPacket, SDES_CNAME, SdesChunk, SdesItem, SenderReport,
};

use super::leg::Leg;

/// Seconds from 1900 (NTP era 0) to 1970.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The wall clock as a 64-bit NTP timestamp.
pub fn ntp_now() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// Writes the leg's next compound report into `out` (cleared first).
pub fn build_report(leg: &mut Leg, now: Instant, now_ms: u64, cname: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let ssrc = leg.out.ssrc();
    let mut blocks = Vec::new();
    if let Some(source) = leg.inbound_ssrc
        && leg.stats.received() > 0
    {
        let f = leg.stats.take_report_block();
        let (last_sr, dlsr) = match leg.last_sr {
            Some((lsr, at)) => {
                let waited = now.saturating_duration_since(at);
                let dlsr = (waited.as_secs_f64() * 65536.0).min(f64::from(u32::MAX)) as u32;
                (lsr, dlsr)
            }
            None => (0, 0),
        };
        blocks.push(ReportBlock {
            ssrc: source,
            fraction_lost: f.fraction_lost,
            cumulative_lost: f.cumulative_lost,
            extended_highest_seq: f.extended_highest_seq,
            jitter: f.jitter,
            last_sr,
            delay_since_last_sr: dlsr,
        });
    }
    let first = if leg.out.packets > 0 {
        let (last_ts, last_ms) = leg.out.last_timestamp();
        // The RTP time that corresponds to "now" on our sending clock.
        let ticks = now_ms.saturating_sub(last_ms) * u64::from(leg.out.clock_rate()) / 1000;
        RtcpPacket::SenderReport(SenderReport {
            ssrc,
            ntp_timestamp: ntp_now(),
            rtp_timestamp: last_ts.wrapping_add(ticks as u32),
            packet_count: leg.out.packets as u32,
            octet_count: leg.out.octets as u32,
            reports: blocks,
        })
    } else {
        RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc,
            reports: blocks,
        })
    };
    let sdes = RtcpPacket::SourceDescription(vec![SdesChunk {
        ssrc,
        items: vec![SdesItem {
            kind: SDES_CNAME,
            value: cname,
        }],
    }]);
    if let Err(e) = rtcp::write_compound(&[first, sdes], out) {
        tracing::debug!(error = %e, "could not build RTCP report");
        out.clear();
    }
}

/// A reported fraction lost (0..=1) as whole percent, rounded up so that any loss at all
/// counts (1/256 is 0.4 %).
pub fn loss_percent(fraction: f32) -> u8 {
    if fraction.is_nan() || fraction <= 0.0 {
        0
    } else {
        (fraction.min(1.0) * 100.0).ceil() as u8
    }
}

/// Takes in one RTCP compound from the leg's far end.
pub fn on_rtcp(leg: &mut Leg, datagram: &[u8], now: Instant) {
    let ours = leg.out.ssrc();
    let mut any = false;
    for packet in rtcp::iter_compound(datagram) {
        let Ok(packet) = packet else {
            leg.malformed += 1;
            break;
        };
        any = true;
        let blocks = match &packet {
            RtcpPacket::SenderReport(sr) => {
                leg.last_sr = Some((rtcp::compact_ntp(sr.ntp_timestamp), now));
                &sr.reports
            }
            RtcpPacket::ReceiverReport(rr) => &rr.reports,
            _ => continue,
        };
        for block in blocks.iter().filter(|b| b.ssrc == ours) {
            if let Some(rtt) = block.round_trip(rtcp::compact_ntp(ntp_now())) {
                leg.rtt_ms = Some(f64::from(rtt) * 1000.0 / 65536.0);
            }
            leg.loss_report = Some(loss_percent(f32::from(block.fraction_lost) / 256.0));
        }
    }
    if any {
        leg.rtcp_received += 1;
    }
}

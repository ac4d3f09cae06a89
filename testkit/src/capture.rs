//! Packet capture on loopback with tshark (dumpcap underneath), and counting RTP per flow
//! in the capture: the independent witness that media really flowed, and how much.

use crate::process::{ChildGuard, wait_until};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A running capture, stopped (and its file completed) by [`Capture::stop`] or on drop.
#[derive(Debug)]
pub struct Capture {
    guard: ChildGuard,
    pcap: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Capture {
    /// Captures on `iface` (e.g. `lo`) with a BPF `filter` (e.g. `udp portrange 6000-6999`)
    /// into a temporary pcap file; returns once tshark reports it is capturing.
    pub fn start(iface: &str, filter: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("capture-")
            .tempdir()
            .map_err(|e| Error::io("creating capture temp dir", e))?;
        let pcap = dir.path().join("capture.pcap");
        let mut me = Self::start_to(iface, filter, &pcap)?;
        me._dir = Some(dir);
        Ok(me)
    }

    /// Like [`Capture::start`], writing to `pcap` (kept after the capture ends).
    pub fn start_to(iface: &str, filter: &str, pcap: &Path) -> Result<Self> {
        let log = pcap.with_extension("log");
        let mut cmd = Command::new("tshark");
        cmd.args(["-i", iface, "-f", filter, "-F", "pcap", "-q", "-w"])
            .arg(pcap)
            .stdin(Stdio::null());
        let mut guard = ChildGuard::spawn_logged("tshark", &mut cmd, &log)?;
        wait_until(
            "tshark to start capturing",
            Duration::from_secs(10),
            Some(&log),
            || {
                guard.ensure_running()?;
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                Ok(text.contains("Capturing on").then_some(()))
            },
        )?;
        Ok(Capture {
            guard,
            pcap: pcap.to_path_buf(),
            _dir: None,
        })
    }

    /// Stops the capture (SIGTERM lets dumpcap flush) and summarises its RTP.
    pub fn stop(mut self) -> Result<RtpFlows> {
        // dumpcap writes packets in batches: a short pause lets the last ones land.
        std::thread::sleep(Duration::from_millis(300));
        self.guard.terminate(Duration::from_secs(3))?;
        rtp_flows(&self.pcap)
    }

    pub fn pcap(&self) -> &Path {
        &self.pcap
    }
}

/// One direction of RTP: packets from `src` port to `dst` port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtpFlow {
    pub packets: u64,
    /// Packets per RTP payload type (0 PCMU, 8 PCMA, 101 telephone-event, ...).
    pub payload_types: BTreeMap<u8, u64>,
    /// Packets per SSRC: several calls may share one port pair (SIPp's `rtp_stream` does),
    /// each with its own SSRC.
    pub ssrcs: BTreeMap<u32, u64>,
}

/// Every RTP flow in a capture, keyed by (source port, destination port).
#[derive(Debug, Clone, Default)]
pub struct RtpFlows {
    pub flows: BTreeMap<(u16, u16), RtpFlow>,
}

impl RtpFlows {
    /// Packets of all flows from `src_port` (any destination).
    pub fn from_port(&self, src_port: u16) -> u64 {
        self.flows
            .iter()
            .filter(|((s, _), _)| *s == src_port)
            .map(|(_, f)| f.packets)
            .sum()
    }

    /// Packets of all flows to `dst_port` (any source).
    pub fn to_port(&self, dst_port: u16) -> u64 {
        self.flows
            .iter()
            .filter(|((_, d), _)| *d == dst_port)
            .map(|(_, f)| f.packets)
            .sum()
    }

    pub fn total_packets(&self) -> u64 {
        self.flows.values().map(|f| f.packets).sum()
    }

    /// Streams (SSRCs in flows) from `src_port` that carried at least `min_packets`.
    pub fn streams_from(&self, src_port: u16, min_packets: u64) -> usize {
        self.flows
            .iter()
            .filter(|((s, _), _)| *s == src_port)
            .flat_map(|(_, f)| f.ssrcs.values())
            .filter(|&&n| n >= min_packets)
            .count()
    }

    /// Packets of one payload type over all flows.
    pub fn packets_of_type(&self, pt: u8) -> u64 {
        self.flows
            .values()
            .filter_map(|f| f.payload_types.get(&pt))
            .sum()
    }
}

/// Reads a pcap with tshark's RTP heuristic (RTP on any UDP port, version 2 headers) and
/// counts packets per UDP port pair, payload type and SSRC.
pub fn rtp_flows(pcap: &Path) -> Result<RtpFlows> {
    let out = Command::new("tshark")
        .args(["-n", "-o", "rtp.heuristic_rtp:TRUE", "-r"])
        .arg(pcap)
        .args(["-Y", "rtp && !rtcp", "-T", "fields", "-E", "separator=,"])
        .args(["-e", "udp.srcport", "-e", "udp.dstport", "-e", "rtp.p_type"])
        .args(["-e", "rtp.ssrc"])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::ToolMissing {
            tool: "tshark",
            source,
        })?;
    if !out.status.success() {
        return Err(Error::CommandFailed {
            tool: "tshark",
            command: format!("reading {}", pcap.display()),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(parse_rtp_fields(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `srcport,dstport,payload type,ssrc` lines (lines that do not parse are skipped:
/// the heuristic occasionally claims a non-RTP datagram with odd fields).
pub fn parse_rtp_fields(text: &str) -> RtpFlows {
    let mut flows: BTreeMap<(u16, u16), RtpFlow> = BTreeMap::new();
    for line in text.lines() {
        let mut cols = line.split(',').map(str::trim);
        let (Some(s), Some(d), Some(pt), Some(ssrc)) =
            (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            continue;
        };
        let (Ok(s), Ok(d), Ok(pt)) = (s.parse::<u16>(), d.parse::<u16>(), pt.parse::<u8>()) else {
            continue;
        };
        let ssrc = u32::from_str_radix(ssrc.trim_start_matches("0x"), 16).unwrap_or(0);
        let flow = flows.entry((s, d)).or_default();
        flow.packets += 1;
        *flow.payload_types.entry(pt).or_default() += 1;
        *flow.ssrcs.entry(ssrc).or_default() += 1;
    }
    RtpFlows { flows }
}

#[cfg(test)]
mod tests {
    use super::parse_rtp_fields;

    #[test]
    fn fields_are_counted_per_flow_and_type() {
        let f = parse_rtp_fields(
            "6000,7000,8,0x11\n6000,7000,8,0x11\n6000,7000,101,0x11\n7000,6000,0,0x22\nx,y\n",
        );
        assert_eq!(f.from_port(6000), 3);
        assert_eq!(f.to_port(6000), 1);
        assert_eq!(f.packets_of_type(101), 1);
        assert_eq!(f.flows[&(6000, 7000)].ssrcs.get(&0x11), Some(&3));
        assert_eq!(f.total_packets(), 4);
    }
}

//! SIPp (package `sip-tester`) as a load generator (`uac`) or far end (`uas`).
//!
//! Each run gets a temporary working directory holding the scenario file, SIPp's statistics
//! CSV (`-trace_stat`, dumped every second and at exit), per-call response times
//! (`-trace_rtt`), the error log and the final screen. [`SippRun::wait`] parses them into a
//! [`SippOutcome`]: calls created/succeeded/failed, retransmissions and the setup-latency
//! samples of every `rtd` in the scenario.

use crate::process::{ChildGuard, wait_until};
use crate::{Error, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Which scenario SIPp runs.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// One of SIPp's built-in scenarios by name (`uac`, `uas`, `regexp`, ...).
    Builtin(String),
    /// Scenario XML written to the run's directory and passed with `-sf`.
    Xml(String),
}

/// SIP transport for SIPp's signalling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

/// Everything a SIPp run needs. Unset options keep SIPp's defaults.
#[derive(Debug, Clone)]
pub struct SippConfig {
    pub scenario: Scenario,
    /// Where a UAC sends its first request; `None` for a UAS.
    pub remote: Option<SocketAddr>,
    /// Local address (`-i`, `-mi`): 127.0.0.1 unless a test needs a second loopback source
    /// (e.g. 127.0.0.2 for a trunk, told apart from phones by source address).
    pub local_ip: std::net::Ipv4Addr,
    /// Local SIP port (`-p`); 0 picks a free one.
    pub local_port: u16,
    /// Request-URI user (`-s`), the dialled number or extension.
    pub service: Option<String>,
    /// Digest credentials (`-au` / `-ap`) for scenarios with `auth="true"`.
    pub auth: Option<(String, String)>,
    /// Total calls before SIPp exits (`-m`).
    pub max_calls: Option<u64>,
    /// Call rate in calls per second (`-r`, with `-rp 1000`).
    pub rate: Option<f64>,
    /// Concurrent-call limit (`-l`).
    pub limit: Option<u64>,
    pub transport: Transport,
    /// Per-call response times (needs an `rtd` in the scenario).
    pub trace_rtt: bool,
    /// SIPp's own global timeout (`-timeout`), a second safety net besides [`SippRun::wait`].
    pub global_timeout: Option<Duration>,
    /// Anything else, passed verbatim (e.g. `-key`, `-inf`, `-aa`).
    pub extra_args: Vec<String>,
    /// Local media port (`-mp`): where `-rtp_echo` listens, `[media_port]` in SDP, and the
    /// one port SIPp 3.6.1's `rtp_stream` sends every call's stream from and receives on
    /// (calls are told apart by SSRC). Set it: the default, 6000, is shared by every SIPp.
    pub media_port: Option<u16>,
    /// Echo RTP received on the media port back to its sender (`-rtp_echo`).
    pub rtp_echo: bool,
    /// Symlinks made in the run's working directory (name, target) before SIPp starts:
    /// built-in scenarios find their pcaps by relative path.
    pub links: Vec<(String, PathBuf)>,
}

impl SippConfig {
    pub fn uac(scenario: Scenario, remote: SocketAddr) -> Self {
        SippConfig {
            scenario,
            remote: Some(remote),
            ..SippConfig::uas(Scenario::Builtin("uac".into()))
        }
    }

    pub fn uas(scenario: Scenario) -> Self {
        SippConfig {
            scenario,
            remote: None,
            local_ip: std::net::Ipv4Addr::LOCALHOST,
            local_port: 0,
            service: None,
            auth: None,
            max_calls: None,
            rate: None,
            limit: None,
            transport: Transport::Udp,
            trace_rtt: false,
            global_timeout: None,
            extra_args: Vec::new(),
            media_port: None,
            rtp_echo: false,
            links: Vec::new(),
        }
    }

    /// SIPp's built-in `uac_pcap`: one call whose audio is `g711a.pcap` (236 PCMA packets,
    /// 30 ms each, 7.08 s) followed by an RFC 2833 DTMF digit from `dtmf_2833_1.pcap`, then BYE.
    pub fn uac_pcap(remote: SocketAddr) -> Self {
        let mut c = SippConfig::uac(Scenario::Builtin("uac_pcap".into()), remote);
        c.links = vec![("pcap".into(), PathBuf::from(SIPP_PCAP_DIR))];
        c.max_calls = Some(1);
        c
    }

    /// SIPp's built-in `uas` echoing every RTP packet it receives on `media_port` back.
    pub fn uas_rtp_echo(media_port: u16) -> Self {
        let mut c = SippConfig::uas(Scenario::Builtin("uas".into()));
        c.media_port = Some(media_port);
        c.rtp_echo = true;
        c
    }
}

/// Where Debian's `sip-tester` keeps SIPp's sample pcaps (`g711a.pcap`, `dtmf_2833_*.pcap`).
pub const SIPP_PCAP_DIR: &str = "/usr/share/sip-tester";

/// RTP packets in SIPp's `g711a.pcap` (PCMA, 240 bytes = 30 ms each: 7.08 s of audio).
pub const G711A_PCAP_PACKETS: u64 = 236;

/// A running SIPp, killed when dropped.
#[derive(Debug)]
pub struct SippRun {
    guard: ChildGuard,
    dir: tempfile::TempDir,
    local_ip: std::net::Ipv4Addr,
    local_port: u16,
}

/// What a finished (or still running) SIPp has counted, from its statistics CSV.
#[derive(Debug, Clone, Default)]
pub struct SippOutcome {
    /// SIPp's exit code (0: every call succeeded; 1: at least one failed; ≥ 97: error).
    pub exit_code: Option<i32>,
    pub total_calls: u64,
    pub successful_calls: u64,
    pub failed_calls: u64,
    pub current_calls: u64,
    pub retransmissions: u64,
    pub unexpected_messages: u64,
    pub timeouts_on_recv: u64,
    /// Response-time samples in milliseconds per `rtd` name (SIPp resolves 1 ms).
    pub rtt_ms: HashMap<String, Vec<f64>>,
    /// The last statistics row, all columns, for anything not pulled out above.
    pub raw: HashMap<String, String>,
    /// SIPp's error log and final screen (filled by [`SippRun::wait`] and
    /// [`SippRun::stop`], which consume the run and its directory), for assertion messages.
    pub errors: String,
    pub screen: String,
}

impl SippOutcome {
    pub fn rtt(&self, name: &str) -> &[f64] {
        self.rtt_ms.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

impl SippRun {
    /// Writes the scenario and starts SIPp on 127.0.0.1.
    pub fn start(config: &SippConfig) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sipp-")
            .tempdir()
            .map_err(|e| Error::io("creating SIPp temp dir", e))?;
        let local_port = if config.local_port == 0 {
            crate::ports::free_port()?
        } else {
            config.local_port
        };
        for (name, target) in &config.links {
            std::os::unix::fs::symlink(target, dir.path().join(name))
                .map_err(|e| Error::io(format!("linking {name} in the SIPp dir"), e))?;
        }
        let mut cmd = Command::new("sipp");
        cmd.current_dir(dir.path()).stdin(Stdio::null());
        match &config.scenario {
            Scenario::Builtin(name) => {
                cmd.args(["-sn", name]);
            }
            Scenario::Xml(xml) => {
                let path = dir.path().join("scenario.xml");
                std::fs::write(&path, xml).map_err(|e| Error::io("writing SIPp scenario", e))?;
                cmd.arg("-sf").arg(&path);
            }
        }
        if let Some(remote) = config.remote {
            cmd.arg(remote.to_string());
        }
        let ip = config.local_ip.to_string();
        cmd.args(["-i", &ip, "-mi", &ip, "-p"])
            .arg(local_port.to_string());
        cmd.args(["-nostdin", "-trace_stat", "-stf", "stats.csv", "-fd", "1"]);
        cmd.args(["-trace_err", "-error_file", "errors.log"]);
        cmd.args(["-trace_screen", "-screen_file", "screen.log"]);
        if config.trace_rtt {
            cmd.args(["-trace_rtt", "-rtt_freq", "1"]);
        }
        if config.transport == Transport::Tcp {
            cmd.args(["-t", "t1"]);
        }
        if let Some(s) = &config.service {
            cmd.args(["-s", s]);
        }
        if let Some((user, pass)) = &config.auth {
            cmd.args(["-au", user, "-ap", pass]);
        }
        if let Some(m) = config.max_calls {
            cmd.arg("-m").arg(m.to_string());
        }
        if let Some(r) = config.rate {
            cmd.arg("-r").arg(format!("{r}")).args(["-rp", "1000"]);
        }
        if let Some(l) = config.limit {
            cmd.arg("-l").arg(l.to_string());
        }
        if let Some(t) = config.global_timeout {
            cmd.arg("-timeout").arg(format!("{}s", t.as_secs().max(1)));
            cmd.arg("-timeout_error");
        }
        if let Some(mp) = config.media_port {
            cmd.arg("-mp").arg(mp.to_string());
        }
        if config.rtp_echo {
            cmd.arg("-rtp_echo");
        }
        cmd.args(&config.extra_args);
        let log = dir.path().join("sipp.log");
        let guard = ChildGuard::spawn_logged("sipp", &mut cmd, &log)?;
        Ok(SippRun {
            guard,
            dir,
            local_ip: config.local_ip,
            local_port,
        })
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// The address SIPp listens on (where a UAS receives calls).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.local_ip, self.local_port))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn guard_mut(&mut self) -> &mut ChildGuard {
        &mut self.guard
    }

    /// Waits until SIPp is listening (its first statistics row is written at start-up),
    /// so a UAS is ready before anything calls it.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let stats = self.dir.path().join("stats.csv");
        let log = self.dir.path().join("sipp.log");
        let guard = &mut self.guard;
        wait_until("SIPp to start", timeout, Some(&log), || {
            guard.ensure_running()?;
            Ok(stats.exists().then_some(()))
        })
    }

    /// Waits at most `timeout` for SIPp to finish by itself (a UAC after `-m` calls).
    pub fn wait(mut self, timeout: Duration) -> Result<SippOutcome> {
        let status = self.guard.wait_timeout(timeout)?;
        let mut outcome = self.outcome_now()?;
        outcome.exit_code = status.code();
        outcome.errors = self.errors();
        outcome.screen = self.screen();
        Ok(outcome)
    }

    /// Stops SIPp (SIGTERM makes it write its final statistics) and returns the counts.
    pub fn stop(mut self) -> Result<SippOutcome> {
        let status = self.guard.terminate(Duration::from_secs(3))?;
        let mut outcome = self.outcome_now()?;
        outcome.exit_code = status.code();
        outcome.errors = self.errors();
        outcome.screen = self.screen();
        Ok(outcome)
    }

    /// The counts as of SIPp's latest statistics dump (every second while running).
    pub fn outcome_now(&self) -> Result<SippOutcome> {
        let mut outcome = parse_stats_csv(&self.dir.path().join("stats.csv"))?;
        outcome.rtt_ms = parse_rtt_files(self.dir.path())?;
        Ok(outcome)
    }

    /// SIPp's error log, for assertion messages.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("errors.log")).unwrap_or_default()
    }

    /// SIPp's final screen, for assertion messages.
    pub fn screen(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("screen.log")).unwrap_or_default()
    }
}

/// Parses the last data row of SIPp's `;`-separated statistics file. Cumulative columns end
/// in `(C)`.
pub fn parse_stats_csv(path: &Path) -> Result<SippOutcome> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let last_row = lines.clone().next_back();
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| Error::Parse {
            what: path.display().to_string(),
            detail: "empty statistics file".into(),
        })?
        .split(';')
        .collect();
    let last: Vec<&str> = last_row
        .filter(|_| lines.next().is_some())
        .ok_or_else(|| Error::Parse {
            what: path.display().to_string(),
            detail: "no data row yet".into(),
        })?
        .split(';')
        .collect();
    let raw: HashMap<String, String> = header
        .iter()
        .zip(last.iter())
        .map(|(h, v)| (h.to_string(), v.to_string()))
        .collect();
    let count = |name: &str| -> u64 {
        raw.get(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Ok(SippOutcome {
        exit_code: None,
        total_calls: count("TotalCallCreated"),
        successful_calls: count("SuccessfulCall(C)"),
        failed_calls: count("FailedCall(C)"),
        current_calls: count("CurrentCall"),
        retransmissions: count("Retransmissions(C)"),
        unexpected_messages: count("FailedUnexpectedMessage(C)"),
        timeouts_on_recv: count("FailedTimeoutOnRecv(C)"),
        rtt_ms: HashMap::new(),
        raw,
        errors: String::new(),
        screen: String::new(),
    })
}

/// Reads every `*_rtt.csv` in `dir`: rows `date_ms;response_time_ms;rtd_name`.
pub fn parse_rtt_files(dir: &Path) -> Result<HashMap<String, Vec<f64>>> {
    let mut out: HashMap<String, Vec<f64>> = HashMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing SIPp dir", e))?;
    let files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("_rtt.csv"))
        })
        .collect();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error::io(format!("reading {}", file.display()), e))?;
        for line in text.lines().skip(1) {
            let mut cols = line.split(';');
            let (_, Some(ms), Some(name)) = (cols.next(), cols.next(), cols.next()) else {
                continue;
            };
            if let Ok(ms) = ms.trim().parse::<f64>() {
                out.entry(name.trim().to_string()).or_default().push(ms);
            }
        }
    }
    Ok(out)
}

/// A UAC scenario: INVITE with an SDP offer (no media is sent), optional 100/180/183, 200
/// timed as rtd `setup`, ACK, a pause of `hold_ms`, BYE, 200. `auth` adds a digest retry
/// when challenged with 401/407 (SIPp computes the answer from `-au`/`-ap`).
pub fn uac_call_scenario(hold_ms: u64, auth: bool) -> String {
    let challenge = if auth {
        r#"
  <recv response="100" optional="true"/>
  <recv response="401" optional="true" auth="true" next="auth"/>
  <recv response="407" auth="true" next="auth"/>
  <label id="auth"/>
  <send>
    <![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:load@[local_ip]:[local_port]>;tag=[pid]T[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:load@[local_ip]:[local_port]>;tag=[pid]T[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:load@[local_ip]:[local_port]>
[authentication]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

    ]]>
  </send>"#
    } else {
        ""
    };
    let bye_cseq = if auth { 3 } else { 2 };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callscope uac">
  <send retrans="500" start_rtd="setup">
    <![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:load@[local_ip]:[local_port]>;tag=[pid]T[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:load@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

    ]]>
  </send>{challenge}
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="setup" rrs="true"/>
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:load@[local_ip]:[local_port]>;tag=[pid]T[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {ack_cseq} ACK
[routes]
Contact: <sip:load@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="{hold_ms}"/>
  <send retrans="500">
    <![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:load@[local_ip]:[local_port]>;tag=[pid]T[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {bye_cseq} BYE
[routes]
Contact: <sip:load@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
  <ResponseTimeRepartition value="1, 2, 5, 10, 20, 50, 100, 200"/>
  <CallLengthRepartition value="100, 500, 1000, 5000, 10000"/>
</scenario>
"#,
        ack_cseq = bye_cseq - 1,
    )
}

/// A REGISTER with digest authentication (`-au`/`-ap`), binding the caller's own address
/// (the port SIPp runs on) for `expires` seconds. Run it with `-m 1` from the port a UAS
/// will listen on afterwards, and calls to that user reach the UAS.
pub fn register_scenario(expires: u32) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callscope register">
  <send retrans="500">
    <![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[service]@[remote_ip]>;tag=[pid]R[call_number]
To: <sip:[service]@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[service]@[local_ip]:[local_port]>
Expires: {expires}
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[service]@[remote_ip]>;tag=[pid]R[call_number]
To: <sip:[service]@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:[service]@[local_ip]:[local_port]>
[authentication]
Expires: {expires}
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#
    )
}

/// A UAS scenario answering every INVITE at once (100, 180, 200 with SDP), then waiting
/// for the caller's BYE. No media. The far end of a trunk in tests and benchmarks.
pub fn uas_answer_scenario() -> String {
    r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callscope uas">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]U[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:far@[local_ip]:[local_port]>
Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]U[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:far@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 2 2 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
</scenario>
"#
    .to_string()
}

/// G.711 flavour of a streamed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711 {
    /// PCMU, payload type 0.
    Ulaw,
    /// PCMA, payload type 8.
    Alaw,
}

impl G711 {
    pub fn payload_type(self) -> u8 {
        match self {
            G711::Ulaw => 0,
            G711::Alaw => 8,
        }
    }
    fn rtpmap(self) -> &'static str {
        match self {
            G711::Ulaw => "PCMU/8000",
            G711::Alaw => "PCMA/8000",
        }
    }
}

/// A UAC scenario for load with media: INVITE offering `codec` on SIPp's per-call RTP
/// stream port, ACK, then streams `raw_file` (headerless G.711, see
/// [`crate::audio_compare::raw_g711`]; looped) to the answerer's SDP address for `hold_ms`,
/// stops, and hangs up. SIPp 3.6.1 reads no WAV headers, hence raw G.711.
pub fn uac_rtp_stream_scenario(raw_file: &Path, codec: G711, hold_ms: u64) -> String {
    let pt = codec.payload_type();
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callscope uac rtp_stream">
  <send retrans="500" start_rtd="setup">
    <![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:load@[local_ip]:[local_port]>;tag=[pid]T[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:load@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [rtpstream_audio_port] RTP/AVP {pt}
a=rtpmap:{pt} {rtpmap}
a=sendrecv

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="setup" rrs="true"/>
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:load@[local_ip]:[local_port]>;tag=[pid]T[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
[routes]
Contact: <sip:load@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <nop><action><exec rtp_stream="{file},-1,{pt}"/></action></nop>
  <pause milliseconds="{hold_ms}"/>
  <nop><action><exec rtp_stream="pause"/></action></nop>
  <send retrans="500">
    <![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:load@[local_ip]:[local_port]>;tag=[pid]T[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
[routes]
Contact: <sip:load@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
  <ResponseTimeRepartition value="1, 2, 5, 10, 20, 50, 100, 200"/>
  <CallLengthRepartition value="100, 500, 1000, 5000, 10000, 60000"/>
</scenario>
"#,
        rtpmap = codec.rtpmap(),
        file = raw_file.display(),
    )
}

/// A UAS scenario for load with media: answers every INVITE with `codec` on SIPp's per-call
/// RTP stream port and, once ACKed, streams `raw_file` (looped) back to the caller's SDP
/// address until the caller's BYE.
pub fn uas_rtp_stream_scenario(raw_file: &Path, codec: G711) -> String {
    let pt = codec.payload_type();
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callscope uas rtp_stream">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]U[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:far@[local_ip]:[local_port]>
Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]U[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:far@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 2 2 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [rtpstream_audio_port] RTP/AVP {pt}
a=rtpmap:{pt} {rtpmap}
a=sendrecv

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <nop><action><exec rtp_stream="{file},-1,{pt}"/></action></nop>
  <recv request="BYE"/>
  <nop><action><exec rtp_stream="pause"/></action></nop>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
</scenario>
"#,
        rtpmap = codec.rtpmap(),
        file = raw_file.display(),
    )
}

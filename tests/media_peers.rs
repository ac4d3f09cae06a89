//! Real peers of different kinds through the real `callscope serve`, checked on the audio and
//! the stored rows: baresip on PCMU calling baresip on Opus (and back), so callscope
//! transcodes; linphonec (belle-sip/mediastreamer2) with baresip; SIPp's `uac_pcap` (PCMA and
//! an RFC 2833 digit from the pcaps SIPp ships) on a trunk; and 5 % random loss on one
//! phone's RTP into callscope (an iptables `statistic` rule on loopback).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use callscope_testkit::audio_compare::{
    Mono, active_span, best_lag, lag_spread, lag_stability, read_wav_mono, rms_dbfs, speech_wav,
};
use callscope_testkit::capture::Capture;
use callscope_testkit::linphone::{Linphone, LinphoneAccount, LinphoneConfig};
use callscope_testkit::sipp::{G711A_PCAP_PACKETS, SIPP_PCAP_DIR, SippConfig, SippRun};
use support::{
    AGENT, CUSTOMER, EXACT, Match, WAIT, answered_ms, assert_matches_as, dtmf_events, media_report,
    phone, phone_with, server_builder, sources, start_server, stored_recording, the_call_id,
};

/// Audio that went through an Opus encoder once: a waveform codec no more, so the match is
/// looser (Opus shifts phase a little), and it was played out through the transcoder's
/// adaptive jitter buffer, which may add one frame of delay once (see `Match::frame_steps`).
const OPUS: Match = Match {
    min_xcorr: 0.8,
    window_xcorr: 0.7,
    max_lag_spread: 2,
    frame_steps: 1,
    frames_per_step: 1,
};

/// The figures for audio callscope transcoded to a leg speaking `codec` (as named in the
/// media report): its own Opus encoder (narrowband voice, 32 kbit/s) is the one lossy step,
/// and every transcoded stream is played out through the adaptive jitter buffer, which may
/// add whole frames of delay after a stall (see `Match::frame_steps`), whatever the codec.
fn expected_for(codec: &str) -> Match {
    let m = if codec == "Opus" { OPUS } else { EXACT };
    Match {
        // One stall of the machine delays packets by however long it lasts; the buffer
        // grows by that many whole frames at once: two, and once five (100 ms, with a
        // release build and a benchmark sharing the 2 cores), were seen. The windows
        // around the step must still be the source at full correlation.
        frame_steps: 2,
        frames_per_step: 5,
        ..m
    }
}

fn leg_codec(media: &serde_json::Value, leg: &str) -> String {
    media[leg]["codec"].as_str().unwrap_or("?").to_string()
}

/// Baresip A offering only `a_codec` calls baresip B offering only `b_codec` through
/// callscope: each hears the other, the recording's channels are the right sources, and the
/// report names each leg's codec.
fn transcoded_call(a_codec: &str, b_codec: &str, a_name: &str, b_name: &str) {
    let src = sources();
    let server = start_server(&[("1001", "alice-pw-0001"), ("1002", "bob-pw-00002")]);
    let mut a = phone(&server, "1001", "alice-pw-0001", &src.a, &[a_codec]);
    let mut b = phone(&server, "1002", "bob-pw-00002", &src.b, &[b_codec]);
    a.dial(&format!("sip:1002@{}", server.realm())).unwrap();
    a.wait_event("CALL_ESTABLISHED", WAIT)
        .unwrap_or_else(|e| panic!("no answer: {e}\n{}", server.log()));
    b.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    std::thread::sleep(Duration::from_secs(10));
    let (a_stats, b_stats) = (a.rtp_stats().unwrap(), b.rtp_stats().unwrap());
    eprintln!("A's RTP: {a_stats:?}; B's RTP: {b_stats:?}");
    a.hangup().unwrap();
    a.wait_event("CALL_CLOSED", WAIT).unwrap();
    b.wait_event("CALL_CLOSED", WAIT).unwrap();
    // Each phone received a steady stream from callscope (50 packets a second).
    assert!(a_stats.received >= 450, "A: {a_stats:?}");
    assert!(b_stats.received >= 450, "B: {b_stats:?}");

    let call_id = the_call_id(&server, 0);
    let media = media_report(&server, &call_id);
    assert_eq!(leg_codec(&media, "caller"), a_name, "{media}");
    assert_eq!(leg_codec(&media, "callee"), b_name, "{media}");
    for leg in ["caller", "callee"] {
        let q = &media[leg];
        assert!(q["packets_received"].as_u64().unwrap() >= 450, "{leg}: {q}");
        assert_eq!(q["lost"].as_i64(), Some(0), "{leg}: {q}");
    }

    let a_src = read_wav_mono(&src.a).unwrap();
    let b_src = read_wav_mono(&src.b).unwrap();
    let b_heard = read_wav_mono(&b.received_recordings()[0]).unwrap();
    let a_heard = read_wav_mono(&a.received_recordings()[0]).unwrap();
    let (to_b, to_a) = (expected_for(b_name), expected_for(a_name));
    assert_matches_as(&format!("B ({b_name}) heard A"), &a_src, &b_heard, to_b);
    assert_matches_as(&format!("A ({a_name}) heard B"), &b_src, &a_heard, to_a);

    // Recorded as each leg's decoded input (baresip's Opus runs at 48 kHz and 64 kbit/s
    // or so: no loss a waveform match sees): the left channel is the caller (the agent).
    let rec = stored_recording(&server, &call_id);
    eprintln!(
        "recording: {} Hz, {} channels",
        rec.sample_rate, rec.channels
    );
    assert_eq!(rec.channels, 2);
    let left = assert_matches_as("recording left = A", &a_src, &rec.audio[0], EXACT);
    let right = assert_matches_as("recording right = B", &b_src, &rec.audio[1], EXACT);
    assert!(
        (left.lag_s(a_src.rate) - right.lag_s(b_src.rate)).abs() < 0.5,
        "{left:?} vs {right:?}"
    );
    let call_ms = answered_ms(&server, &call_id);
    let rec_ms = rec.audio[0].duration_s() * 1000.0;
    eprintln!("call {call_ms} ms, recording {rec_ms:.0} ms");
    assert!((rec_ms - call_ms).abs() < 500.0, "{rec_ms} vs {call_ms}");
    a.quit().unwrap();
    b.quit().unwrap();
}

#[test]
fn pcmu_caller_and_opus_callee_are_transcoded_both_ways() {
    transcoded_call("PCMU", "opus", "Pcmu", "Opus");
}

#[test]
fn opus_caller_and_pcmu_callee_are_transcoded_both_ways() {
    transcoded_call("opus", "PCMU", "Opus", "Pcmu");
}

/// linphonec (registered as 1001, playing one voice, recording what it hears) calls baresip
/// 1002 (another voice) through callscope: both hear each other and the recording's left
/// channel (linphonec, the caller and agent) and right channel (baresip) are their sources.
#[test]
fn linphonec_and_baresip_hear_each_other_through_callscope() {
    let dir = tempfile::tempdir().unwrap();
    let l_src = speech_wav(&dir.path().join("l.wav"), "en-us", AGENT, 16000, 40.0).unwrap();
    let b_src = speech_wav(&dir.path().join("b.wav"), "en-gb+f3", CUSTOMER, 8000, 40.0).unwrap();
    let l_heard = dir.path().join("linphone-heard.wav");
    let server = start_server(&[("1001", "linphone-pw-01"), ("1002", "bob-pw-00002")]);
    let mut config = LinphoneConfig::new("1001");
    config.play_wav = Some(l_src.clone());
    config.record_wav = Some(l_heard.clone());
    config.account = Some(LinphoneAccount {
        domain: server.realm().to_string(),
        proxy: server.sip_addr(),
        password: "linphone-pw-01".into(),
    });
    let mut l = Linphone::start(&config).expect("linphonec");
    l.wait_registered(WAIT)
        .unwrap_or_else(|e| panic!("linphonec did not register: {e}\n{}", l.output()));
    let mut b = phone(&server, "1002", "bob-pw-00002", &b_src, &["PCMU"]);

    l.call(&format!("sip:1002@{}", server.realm()), WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    b.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    std::thread::sleep(Duration::from_secs(10));
    let b_stats = b.rtp_stats().unwrap();
    eprintln!("baresip's RTP: {b_stats:?}");
    l.terminate_all().unwrap();
    b.wait_event("CALL_CLOSED", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    l.wait_line("the call to end", WAIT, |s| s.contains("ended"))
        .unwrap();
    l.quit().unwrap();
    assert!(b_stats.received >= 450, "{b_stats:?}");

    let call_id = the_call_id(&server, 0);
    let media = media_report(&server, &call_id);
    let (l_codec, b_codec) = (leg_codec(&media, "caller"), leg_codec(&media, "callee"));
    eprintln!("linphonec's leg: {l_codec}; baresip's leg: {b_codec}");
    assert_eq!(b_codec, "Pcmu", "{media}");
    assert_eq!(media["agent_leg"], "caller", "{media}");
    // linphonec's own audio path (file player, resampling) moves its lag by a sample or so
    // even peer to peer (the testkit's self-test allows 2).
    let with_linphone = |m: Match| Match {
        max_lag_spread: m.max_lag_spread.max(2),
        ..m
    };
    // Live audio from or to linphonec: when the machine deschedules its sender, the burst
    // that follows makes the playout buffer after it grow by as many frames (a 160 ms stall
    // was seen while a benchmark shared the 2 cores); what linphonec heard went through its
    // own adaptive buffer as well (a 60 ms step was seen in CI). The recording follows RTP
    // timestamps and stays exact.
    let linphone_live = |m: Match| Match {
        frame_steps: m.frame_steps + 2,
        frames_per_step: m.frames_per_step.max(10),
        ..with_linphone(m)
    };

    let l_src = read_wav_mono(&l_src).unwrap();
    let b_src = read_wav_mono(&b_src).unwrap();
    assert_matches_as(
        "baresip heard linphonec",
        &l_src,
        &read_wav_mono(&b.received_recordings()[0]).unwrap(),
        linphone_live(expected_for(&b_codec)),
    );
    assert_matches_as(
        "linphonec heard baresip",
        &b_src,
        &read_wav_mono(&l_heard).unwrap(),
        linphone_live(expected_for(&l_codec)),
    );
    let rec = stored_recording(&server, &call_id);
    assert_eq!(rec.channels, 2);
    assert_matches_as(
        "recording left = linphonec",
        &l_src,
        &rec.audio[0],
        with_linphone(EXACT),
    );
    assert_matches_as("recording right = baresip", &b_src, &rec.audio[1], EXACT);
    let wrong = best_lag(&b_src, &rec.audio[0], 2.0).unwrap();
    assert!(wrong.xcorr < 0.3, "left channel matches baresip: {wrong:?}");
    b.quit().unwrap();
}

/// The audio of SIPp's `g711a.pcap`, decoded from its RTP payloads (tshark, then sox from
/// A-law): the reference for what SIPp sends.
fn pcap_audio(dir: &Path) -> Mono {
    let out = Command::new("tshark")
        .args(["-n", "-o", "rtp.heuristic_rtp:TRUE", "-r"])
        .arg(Path::new(SIPP_PCAP_DIR).join("g711a.pcap"))
        .args(["-Y", "rtp.p_type == 8", "-T", "fields", "-e", "rtp.payload"])
        .stdin(Stdio::null())
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut alaw = Vec::new();
    let mut packets = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        packets += 1;
        // Plain hex (older tshark separates the bytes with colons).
        let hex: Vec<u8> = line.bytes().filter(u8::is_ascii_hexdigit).collect();
        for pair in hex.chunks(2) {
            let pair = std::str::from_utf8(pair).unwrap();
            alaw.push(u8::from_str_radix(pair, 16).expect("hex payload"));
        }
    }
    assert_eq!(packets, G711A_PCAP_PACKETS);
    let raw = dir.join("g711a.al");
    let wav = dir.join("g711a.wav");
    std::fs::write(&raw, &alaw).unwrap();
    let status = Command::new("sox")
        .args(["-t", "al", "-r", "8000", "-c", "1"])
        .arg(&raw)
        .args(["-b", "16", "-e", "signed"])
        .arg(&wav)
        .status()
        .expect("run sox");
    assert!(status.success());
    read_wav_mono(&wav).unwrap()
}

/// An even start of `n` free consecutive ports (RTP wants an even port, RTCP the next).
fn even_port_run(n: u16) -> u16 {
    let start = callscope_testkit::ports::free_port_run(n + 1).unwrap();
    start + start % 2
}

/// SIPp's `uac_pcap` on a trunk (127.0.0.2) calls a DID routed to baresip 1002: PCMA relayed
/// to baresip packet for packet; the RFC 2833 digit after the audio becomes a stored DTMF
/// event; the recording's SIPp channel holds the pcap's audio and is silent at the digit.
#[test]
fn sipp_uac_pcap_audio_and_rfc2833_digit_through_a_trunk() {
    const DID: &str = "+14155550177";
    let dir = tempfile::tempdir().unwrap();
    let reference = pcap_audio(dir.path());
    eprintln!("g711a.pcap: {:.2} s of audio", reference.duration_s());
    let trunk_ip = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let server = server_builder(&[("1002", "bob-pw-00002")])
        .trunk((trunk_ip, 5999).into(), &["127.0.0.2"])
        .route_to_user(DID, "1002")
        .start()
        .expect("start callscope");
    let tone = support::tone_wav(dir.path(), "b.wav", 660);
    let b_rtp = even_port_run(2);
    let mut b = phone_with(&server, "1002", "bob-pw-00002", &tone, &["PCMA"], |c| {
        c.rtp_ports = Some((b_rtp, b_rtp + 1));
    });
    // What callscope sends to baresip's RTP port, counted on the wire.
    let capture = Capture::start("lo", &format!("udp and dst port {b_rtp}")).unwrap();

    let mut sipp = SippConfig::uac_pcap(server.sip_addr());
    sipp.local_ip = trunk_ip;
    sipp.service = Some(DID.into());
    sipp.media_port = Some(even_port_run(4));
    sipp.global_timeout = Some(Duration::from_secs(40));
    let started = Instant::now();
    let out = SippRun::start(&sipp)
        .unwrap()
        .wait(Duration::from_secs(45))
        .unwrap();
    eprintln!("SIPp ran {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(
        out.successful_calls,
        1,
        "{out:?}\n{}\n{}",
        out.errors,
        server.log()
    );
    // The digit reached baresip too, as RFC 4733 on its leg.
    let relayed = b.wait_event("CALL_DTMF_START", WAIT).unwrap();
    assert_eq!(relayed.param.as_deref(), Some("1"), "{relayed:?}");
    b.wait_event("CALL_CLOSED", WAIT).unwrap();
    let flows = capture.stop().unwrap();
    eprintln!("to baresip: {:?}", flows.flows);
    let pcma_to_b: u64 = flows
        .flows
        .iter()
        .filter(|((_, d), _)| *d == b_rtp)
        .map(|(_, f)| f.payload_types.get(&8).copied().unwrap_or(0))
        .sum();
    assert_eq!(pcma_to_b, G711A_PCAP_PACKETS, "{:?}", flows.flows);
    // dtmf_2833_1.pcap's 10 packets (7 updates, the end sent 3 times), each relayed.
    assert_eq!(flows.packets_of_type(101), 10, "{:?}", flows.flows);

    // baresip heard the pcap's audio (relayed PCMA: sample for sample).
    let b_heard = read_wav_mono(&b.received_recordings()[0]).unwrap();
    assert_matches_as("baresip heard the pcap", &reference, &b_heard, EXACT);

    let call_id = the_call_id(&server, 0);
    let media = media_report(&server, &call_id);
    assert_eq!(leg_codec(&media, "caller"), "Pcma", "{media}");
    assert_eq!(leg_codec(&media, "callee"), "Pcma", "{media}");
    assert_eq!(media["agent_leg"], "callee", "{media}");
    let caller = &media["caller"];
    assert!(
        caller["packets_received"].as_u64().unwrap() >= G711A_PCAP_PACKETS,
        "{caller}"
    );

    // The digit: SIPp's dtmf_2833_1.pcap holds one event, "1" (event 1, 280 ms by its
    // duration field), played 8 s after the ACK.
    let dtmf = dtmf_events(&server, &call_id);
    eprintln!("DTMF events: {dtmf:?}");
    assert_eq!(dtmf.len(), 1, "{dtmf:?}");
    let (digit, offset_ms, len_ms) = dtmf[0].clone();
    assert_eq!(digit, "1");
    assert!(
        (7500.0..9000.0).contains(&offset_ms),
        "digit at {offset_ms} ms"
    );

    // The recording: baresip (the agent) left, SIPp right. The right channel is the pcap's
    // audio for its length, then nothing: the digit was kept out.
    let rec = stored_recording(&server, &call_id);
    assert_eq!(rec.channels, 2);
    let right = &rec.audio[1];
    assert_matches_as("recording right = the pcap", &reference, right, EXACT);
    let span = active_span(right, 20, -50.0).expect("audio on SIPp's channel");
    eprintln!(
        "SIPp's channel: active {:.2}..{:.2} s ({:.2} s), recording {:.2} s",
        span.start_s,
        span.end_s,
        span.len_s(),
        right.duration_s()
    );
    let pcap_span = active_span(&reference, 20, -50.0).unwrap();
    assert!(
        (span.len_s() - pcap_span.len_s()).abs() < 0.1,
        "{span:?} vs the pcap's {pcap_span:?}"
    );
    let (from, to) = (offset_ms / 1000.0, (offset_ms + len_ms.max(100.0)) / 1000.0);
    let at_digit = right.slice_s(from - 0.1, to + 0.1);
    let level = rms_dbfs(&at_digit.samples);
    eprintln!("SIPp's channel around the digit ({from:.2}..{to:.2} s): {level:.1} dBFS");
    assert!(at_digit.duration_s() > 0.2 && level < -60.0, "{level} dBFS");
    // baresip's tone fills the left channel, the digit's time included.
    let left_at_digit = rms_dbfs(&rec.audio[0].slice_s(from, to).samples);
    assert!(left_at_digit > -20.0, "{left_at_digit} dBFS");
    b.quit().unwrap();
}

/// An iptables rule on the root namespace's INPUT (all peers are on loopback) that drops UDP
/// from one source port at random, with a counting rule before it; both deleted exactly
/// when dropped (also when the test panics).
struct LoopbackLoss {
    /// The arguments after `-A`/`-D INPUT` of each rule, counting rule first.
    rules: [Vec<String>; 2],
    tag: String,
}

impl LoopbackLoss {
    /// Why the rule cannot be used here, if it cannot.
    fn unavailable() -> Option<String> {
        callscope_testkit::netns::unavailable_reason()
    }

    fn add(src_port: u16, probability: f64) -> Self {
        let tag = format!("callscope-loss-{}-{src_port}", std::process::id());
        let base = |tag: &str| -> Vec<String> {
            [
                "-i",
                "lo",
                "-p",
                "udp",
                "--sport",
                &src_port.to_string(),
                "-m",
                "comment",
                "--comment",
                tag,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        };
        let count = base(&format!("{tag}-seen"));
        let mut drop = base(&format!("{tag}-drop"));
        drop.extend(
            [
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &format!("{probability:.4}"),
                "-j",
                "DROP",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let me = LoopbackLoss {
            rules: [count, drop],
            tag,
        };
        for rule in &me.rules {
            iptables("-A", rule).expect("add the loss rule");
        }
        me
    }

    /// (packets seen, packets dropped) from the two rules' counters.
    fn counters(&self) -> (u64, u64) {
        let out = Command::new("iptables")
            .args(["-w", "-L", "INPUT", "-v", "-x", "-n"])
            .output()
            .expect("run iptables");
        let text = String::from_utf8_lossy(&out.stdout);
        let count = |comment: &str| -> u64 {
            text.lines()
                .find(|l| l.contains(&format!("/* {comment} */")))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no rule {comment} in {text}"))
        };
        (
            count(&format!("{}-seen", self.tag)),
            count(&format!("{}-drop", self.tag)),
        )
    }
}

impl Drop for LoopbackLoss {
    fn drop(&mut self) {
        for rule in &self.rules {
            if let Err(e) = iptables("-D", rule) {
                eprintln!("could not delete the loss rule {rule:?}: {e}");
            }
        }
    }
}

fn iptables(op: &str, rule: &[String]) -> Result<(), String> {
    let out = Command::new("iptables")
        .args(["-w", op, "INPUT"])
        .args(rule)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// 5 % of phone A's RTP into callscope is lost at random: the recording still lasts exactly
/// as long as the call, A's channel keeps one lag throughout (what was lost became silence
/// of its own length), and the loss callscope stores for A's leg is the kernel's.
#[test]
fn five_percent_loss_from_one_phone_is_measured_and_recorded_in_time() {
    if let Some(why) = LoopbackLoss::unavailable() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let src = sources();
    let server = start_server(&[("1001", "alice-pw-0001"), ("1002", "bob-pw-00002")]);
    let a_rtp = even_port_run(2);
    let mut a = phone_with(&server, "1001", "alice-pw-0001", &src.a, &["PCMU"], |c| {
        c.rtp_ports = Some((a_rtp, a_rtp + 1));
    });
    let mut b = phone(&server, "1002", "bob-pw-00002", &src.b, &["PCMU"]);
    let loss = LoopbackLoss::add(a_rtp, 0.05);

    a.dial(&format!("sip:1002@{}", server.realm())).unwrap();
    a.wait_event("CALL_ESTABLISHED", WAIT)
        .unwrap_or_else(|e| panic!("no answer: {e}\n{}", server.log()));
    b.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    std::thread::sleep(Duration::from_secs(20));
    a.hangup().unwrap();
    a.wait_event("CALL_CLOSED", WAIT).unwrap();
    b.wait_event("CALL_CLOSED", WAIT).unwrap();
    let (seen, dropped) = loss.counters();
    drop(loss);
    let kernel_pct = 100.0 * dropped as f64 / seen.max(1) as f64;
    eprintln!("iptables: {seen} packets from A's RTP port, {dropped} dropped ({kernel_pct:.2} %)");
    assert!(seen >= 950, "A sent only {seen}");

    let call_id = the_call_id(&server, 0);
    let media = media_report(&server, &call_id);
    let caller = &media["caller"];
    let stored_pct = caller["loss_percent"].as_f64().unwrap();
    eprintln!(
        "stored for A's leg: loss {stored_pct:.2} % (lost {}, expected {}, received {})",
        caller["lost"], caller["expected"], caller["packets_received"]
    );
    assert!((2.0..=9.0).contains(&stored_pct), "{caller}");
    assert!(
        (stored_pct - kernel_pct).abs() <= 1.0,
        "stored {stored_pct} % vs iptables {kernel_pct} %"
    );
    assert_eq!(media["callee"]["lost"].as_i64(), Some(0), "{media}");
    // What the network lost never reached callscope; everything that did arrive has its
    // place in the recording.
    for channel in ["agent", "customer"] {
        for reason in ["late_ms", "overrun_ms"] {
            assert_eq!(
                media["recording_loss"][channel][reason].as_u64(),
                Some(0),
                "{media}"
            );
        }
    }

    let call_ms = answered_ms(&server, &call_id);
    let rec = stored_recording(&server, &call_id);
    let rec_ms = rec.audio[0].duration_s() * 1000.0;
    eprintln!("call {call_ms} ms, recording {rec_ms:.0} ms");
    assert!(
        (rec_ms - call_ms).abs() <= 100.0,
        "call {call_ms} ms vs recording {rec_ms:.0} ms"
    );
    assert_eq!(rec.audio[1].duration_s(), rec.audio[0].duration_s());

    // A's channel: the source at one lag in every spoken window, lost packets or not.
    let a_src = read_wav_mono(&src.a).unwrap();
    let left = &rec.audio[0];
    let windows = lag_stability(
        &a_src.slice_s(0.0, left.duration_s() + 2.0),
        left,
        2.0,
        0.5,
        -40.0,
    )
    .unwrap();
    let (n, lo, hi) = lag_spread(&windows, 0.8);
    eprintln!("A's channel under loss: {n} windows aligned, lags {lo}..={hi} samples");
    assert!(n >= 5, "{windows:?}");
    assert!(hi - lo <= 1, "lag drifts {lo}..{hi}: {windows:?}");
    let m = best_lag(&a_src, left, 2.0).unwrap();
    eprintln!("A's channel: xcorr {:.4} at {} samples", m.xcorr, m.lag);
    assert!(m.xcorr >= 0.9, "{m:?}");
    // Each lost packet is one 20 ms frame of silence where A spoke, and nothing else is:
    // the share of silent frames in speech is the kernel's drop rate.
    let lost_share = silent_share_where_spoken(&a_src, left, m.lag);
    eprintln!("A's channel: {lost_share:.2} % of spoken 20 ms frames silent");
    assert!(
        (lost_share - kernel_pct).abs() <= 2.0,
        "{lost_share} % of frames silent vs {kernel_pct} % dropped"
    );
    // B's channel had no loss: the plain match.
    support::assert_matches(
        "recording right = B",
        &read_wav_mono(&src.b).unwrap(),
        &rec.audio[1],
    );
    a.quit().unwrap();
    b.quit().unwrap();
}

/// Of the 20 ms frames (packets) of `source` with speech in them, the percentage whose
/// counterpart in `recorded` (`lag` samples later, same rate) is digital silence.
fn silent_share_where_spoken(source: &Mono, recorded: &Mono, lag: isize) -> f64 {
    assert_eq!(source.rate, recorded.rate);
    let frame = (source.rate / 50) as usize;
    let (mut spoken, mut silent) = (0u32, 0u32);
    for (k, src) in source.samples.chunks_exact(frame).enumerate() {
        let Some(start) = (k * frame).checked_add_signed(lag) else {
            continue;
        };
        let Some(rec) = recorded.samples.get(start..start + frame) else {
            break;
        };
        if rms_dbfs(src) < -45.0 {
            continue;
        }
        spoken += 1;
        if rec.iter().all(|s| s.abs() < 1e-3) {
            silent += 1;
        }
    }
    assert!(spoken >= 300, "only {spoken} spoken frames");
    100.0 * f64::from(silent) / f64::from(spoken)
}

//! SIPp with media, SIPp against SIPp, no callscope: `uac_pcap` (PCMA + RFC 2833 from the
//! pcaps SIPp ships) against a UAS echoing RTP, and the `rtp_stream` load scenarios with
//! several concurrent calls streaming both ways. tshark on `lo` counts what really flowed.
//! Each test uses a loopback address of its own, so the capture sees only its SIPp pair.

use callscope_testkit::audio_compare::{raw_g711, speech_wav};
use callscope_testkit::capture::Capture;
use callscope_testkit::sipp::{
    G711, G711A_PCAP_PACKETS, Scenario, SippConfig, SippRun, uac_rtp_stream_scenario,
    uas_rtp_stream_scenario,
};
use std::net::Ipv4Addr;
use std::time::Duration;

/// 127.77.x.y from this process and a test number: no other test or peer uses it.
fn own_loopback(test: u8) -> Ipv4Addr {
    let pid = std::process::id();
    Ipv4Addr::new(127, 77 + test, (pid >> 8) as u8, (pid as u8) | 1)
}

#[test]
fn uac_pcap_plays_pcma_and_dtmf_and_the_echo_returns_it() {
    let ip = own_loopback(0);
    let mp = callscope_testkit::ports::free_port_run(4).unwrap();
    let cap = Capture::start("lo", &format!("udp and host {ip} and port {mp}")).unwrap();

    let mut uas_cfg = SippConfig::uas_rtp_echo(mp);
    uas_cfg.local_ip = ip;
    let mut uas = SippRun::start(&uas_cfg).unwrap();
    uas.wait_ready(Duration::from_secs(5)).unwrap();
    let mut uac_cfg = SippConfig::uac_pcap(uas.addr());
    uac_cfg.local_ip = ip;
    uac_cfg.global_timeout = Some(Duration::from_secs(30));
    let out = SippRun::start(&uac_cfg)
        .unwrap()
        .wait(Duration::from_secs(40))
        .unwrap();
    assert_eq!(out.successful_calls, 1, "{out:?}");
    let flows = cap.stop().unwrap();
    let _ = uas.stop();
    eprintln!("uac_pcap flows: {:#?}", flows.flows);

    let to_uas = flows.to_port(mp);
    let from_uas = flows.from_port(mp);
    let pcma = flows
        .flows
        .iter()
        .filter(|((_, d), _)| *d == mp)
        .map(|(_, f)| f.payload_types.get(&8).copied().unwrap_or(0))
        .sum::<u64>();
    let dtmf = flows
        .flows
        .iter()
        .filter(|((_, d), _)| *d == mp)
        .map(|(_, f)| f.payload_types.get(&101).copied().unwrap_or(0))
        .sum::<u64>();
    assert_eq!(pcma, G711A_PCAP_PACKETS, "every PCMA packet of the pcap");
    assert!(dtmf >= 3, "RFC 2833 packets: {dtmf}");
    assert_eq!(from_uas, to_uas, "the echo returns every packet");
}

#[test]
fn rtp_stream_calls_stream_both_ways_concurrently() {
    const CALLS: u64 = 5;
    const HOLD_MS: u64 = 3000;
    let dir = tempfile::tempdir().unwrap();
    let wav = speech_wav(
        &dir.path().join("s.wav"),
        "en-us",
        "This is the load test speaking, one two three four five six seven.",
        8000,
        8.0,
    )
    .unwrap();
    let raw = dir.path().join("s.ulaw");
    raw_g711(&wav, &raw, true).unwrap();
    let ip = own_loopback(1);
    let cap = Capture::start("lo", &format!("udp and host {ip}")).unwrap();

    let mut uas_cfg = SippConfig::uas(Scenario::Xml(uas_rtp_stream_scenario(&raw, G711::Ulaw)));
    uas_cfg.local_ip = ip;
    let uas_mp = callscope_testkit::ports::free_port_run(2).unwrap();
    uas_cfg.media_port = Some(uas_mp);
    let mut uas = SippRun::start(&uas_cfg).unwrap();
    uas.wait_ready(Duration::from_secs(5)).unwrap();
    let mut uac_cfg = SippConfig::uac(
        Scenario::Xml(uac_rtp_stream_scenario(&raw, G711::Ulaw, HOLD_MS)),
        uas.addr(),
    );
    uac_cfg.local_ip = ip;
    let uac_mp = callscope_testkit::ports::free_port_run(2).unwrap();
    uac_cfg.media_port = Some(uac_mp);
    uac_cfg.service = Some("load".into());
    uac_cfg.max_calls = Some(CALLS);
    uac_cfg.rate = Some(50.0);
    uac_cfg.limit = Some(CALLS);
    uac_cfg.global_timeout = Some(Duration::from_secs(30));
    let out = SippRun::start(&uac_cfg)
        .unwrap()
        .wait(Duration::from_secs(40))
        .unwrap();
    assert_eq!(out.successful_calls, CALLS, "{out:?}");
    let far = uas.stop().unwrap();
    assert_eq!(far.successful_calls, CALLS, "{:?}", far.raw);
    let flows = cap.stop().unwrap();
    eprintln!(
        "rtp_stream flows (mp {uac_mp}/{uas_mp}): {:#?}",
        flows.flows
    );

    // SIPp 3.6.1 streams every call from one port (its -mp) to one port, each call
    // with its own SSRC: ~50 PCMU packets/s per call each way for the 3 s the caller
    // streams (the answerer streams from ACK to BYE).
    let expected = HOLD_MS * 50 / 1000;
    let uac_port = uac_mp;
    let uas_port = uas_mp;
    assert_eq!(
        flows.streams_from(uac_port, expected * 9 / 10),
        CALLS as usize,
        "caller's streams: {:#?}",
        flows.flows
    );
    assert_eq!(
        flows.streams_from(uas_port, expected * 9 / 10),
        CALLS as usize,
        "answerer's streams: {:#?}",
        flows.flows
    );
    assert_eq!(flows.to_port(uac_port), flows.from_port(uas_port));
    assert_eq!(flows.packets_of_type(0), flows.total_packets(), "all PCMU");
    assert!(
        flows.total_packets() <= CALLS * 2 * (expected + 50),
        "streams stop at BYE: {}",
        flows.total_packets()
    );
}

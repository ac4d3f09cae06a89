//! SDP parsing, negotiation and writing, including hostile input.

use callscope_sip::media::{Codec, Direction, LegRole, MediaControl};
use callscope_sip::sdp::{self, SdpError};
use callscope_sip::signalling_media::{SignallingMediaConfig, SignallingOnlyMedia};

const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

const BROWSER_LIKE: &str = "v=0\no=- 4611731400430051336 2 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=audio 9 RTP/AVP 111 63 9 0 8 13 110 126\nc=IN IP4 10.0.0.7\na=rtpmap:111 opus/48000/2\na=fmtp:111 minptime=10;useinbandfec=1\na=rtpmap:63 red/48000/2\na=rtpmap:9 G722/8000\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\na=rtpmap:13 CN/8000\na=rtpmap:110 telephone-event/48000\na=rtpmap:126 telephone-event/8000\na=sendonly\n";

#[test]
fn parses_a_sipp_offer() {
    let parsed = sdp::parse(SIPP_OFFER.as_bytes()).unwrap();
    assert_eq!(parsed.origin_version, 2353687637);
    assert_eq!(parsed.audio_address(), Some("127.0.0.1".parse().unwrap()));
    let audio = parsed.audio().unwrap();
    assert_eq!(audio.port, 6000);
    assert_eq!(audio.formats[0].codec(), Some(Codec::Pcmu));
    assert_eq!(parsed.audio_direction(), Direction::SendRecv);
}

#[test]
fn media_level_connection_direction_and_codecs_win() {
    let parsed = sdp::parse(BROWSER_LIKE.as_bytes()).unwrap();
    assert_eq!(parsed.audio_address(), Some("10.0.0.7".parse().unwrap()));
    assert_eq!(parsed.audio_direction(), Direction::SendOnly);
    let negotiated = sdp::answer_formats(
        &parsed,
        &[Codec::Pcmu, Codec::Pcma, Codec::Opus, Codec::TelephoneEvent],
    )
    .unwrap();
    let pts: Vec<u8> = negotiated.formats.iter().map(|f| f.payload_type).collect();
    // Offerer's order kept; red/G722/CN dropped; telephone-event once per clock rate (48000
    // for Opus, 8000 for G.711), so the leg can take the one on its voice codec's clock.
    assert_eq!(pts, vec![111, 0, 8, 110, 126]);
    let clocks: Vec<u32> = negotiated.formats[3..]
        .iter()
        .map(|f| f.clock_rate)
        .collect();
    assert_eq!(clocks, vec![48000, 8000]);
}

#[test]
fn zero_address_hold_is_sendonly_and_explicit_inactive_is_kept() {
    let old_hold = SIPP_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    assert_eq!(
        sdp::parse(old_hold.as_bytes()).unwrap().audio_direction(),
        Direction::SendOnly
    );
    let inactive = format!("{SIPP_OFFER}a=inactive\r\n");
    assert_eq!(
        sdp::parse(inactive.as_bytes()).unwrap().audio_direction(),
        Direction::Inactive
    );
}

#[test]
fn no_common_codec_is_refused() {
    let g729 = SIPP_OFFER
        .replace("RTP/AVP 0", "RTP/AVP 18")
        .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000");
    let parsed = sdp::parse(g729.as_bytes()).unwrap();
    assert!(matches!(
        sdp::answer_formats(&parsed, &[Codec::Pcmu]),
        Err(SdpError::NoCommonCodec(_))
    ));
    // telephone-event alone is not a voice codec.
    let dtmf_only = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let parsed = sdp::parse(dtmf_only.as_bytes()).unwrap();
    assert!(sdp::answer_formats(&parsed, &[Codec::Pcmu, Codec::TelephoneEvent]).is_err());
}

#[test]
fn built_sdp_round_trips() {
    let local = sdp::LocalSdp {
        session_id: 42,
        version: 7,
        address: "127.0.0.1".parse().unwrap(),
        port: 30000,
        formats: sdp::default_formats(&[Codec::Pcma, Codec::Opus, Codec::TelephoneEvent]),
        direction: Direction::RecvOnly,
        ptime: Some(20),
        rtcp_mux: true,
    };
    let text = sdp::build(&local);
    let parsed = sdp::parse(text.as_bytes()).unwrap();
    assert_eq!(parsed.origin_session_id, 42);
    assert_eq!(parsed.origin_version, 7);
    let audio = parsed.audio().unwrap();
    assert_eq!(audio.port, 30000);
    assert_eq!(audio.ptime, Some(20));
    let codecs: Vec<_> = audio.formats.iter().filter_map(|f| f.codec()).collect();
    // telephone-event twice: on 8000 (beside PCMA) and on 48000 (beside Opus).
    assert_eq!(
        codecs,
        vec![
            Codec::Pcma,
            Codec::Opus,
            Codec::TelephoneEvent,
            Codec::TelephoneEvent
        ]
    );
    assert_eq!(parsed.audio_direction(), Direction::RecvOnly);
    assert!(parsed.audio().unwrap().rtcp_mux);
    assert!(text.ends_with("\r\n") && !text.contains("\n\n"));
}

#[test]
fn hostile_input_is_an_error_never_a_panic() {
    let huge = "a".repeat(sdp::MAX_SDP_BYTES + 1);
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        b"\xff\xfe\x00".to_vec(),
        b"v=1\r\n".to_vec(),
        b"o=- 1 1 IN IP4 1.2.3.4\r\n".to_vec(),
        b"v=0\r\n".to_vec(),
        b"v=0\r\no=- x 1 IN IP4 1.2.3.4\r\n".to_vec(),
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 999.1.1.1\r\n".to_vec(),
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n".to_vec(),
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 300\r\n".to_vec(),
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/abc\r\n"
            .to_vec(),
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0\r\n".to_vec(),
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio\r\n".to_vec(),
        b"v=0\r\nnonsense\r\n".to_vec(),
        huge.into_bytes(),
        format!(
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n{}",
            "a=x\r\n".repeat(1000)
        )
        .into_bytes(),
        format!(
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP {}\r\n",
            vec!["0"; 100].join(" ")
        )
        .into_bytes(),
    ];
    for (i, case) in cases.iter().enumerate() {
        assert!(sdp::parse(case).is_err(), "case {i} should be refused");
    }
    // Pseudo-random bytes and mutations of a valid offer: any result, no panic.
    let mut seed: u64 = 0x1234_5678;
    for round in 0..5000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut bytes = SIPP_OFFER.as_bytes().to_vec();
        let flips = (seed % 8) as usize + 1;
        for k in 0..flips {
            let pos = ((seed >> (k * 5)) as usize + round) % bytes.len();
            bytes[pos] = (seed >> (k * 3)) as u8;
        }
        if let Ok(parsed) = sdp::parse(&bytes) {
            let _ = sdp::answer_formats(&parsed, &[Codec::Pcmu, Codec::Opus]);
            let _ = parsed.audio_direction();
        }
    }
}

#[tokio::test]
async fn signalling_media_allocates_even_ports_answers_and_releases() {
    let media = SignallingOnlyMedia::new(SignallingMediaConfig::loopback(40000, 40005));
    let answer = media
        .open_leg("c1", LegRole::Caller, Some(SIPP_OFFER))
        .await
        .unwrap();
    let parsed = sdp::parse(answer.as_bytes()).unwrap();
    assert_eq!(parsed.audio().unwrap().port, 40000);
    assert_eq!(
        parsed.audio().unwrap().formats.len(),
        1,
        "answer keeps only PCMU"
    );
    let offer = media.open_leg("c1", LegRole::Callee, None).await.unwrap();
    let offer = sdp::parse(offer.as_bytes()).unwrap();
    assert_eq!(offer.audio().unwrap().port, 40002);
    // The callee offer puts the caller's codec first.
    assert_eq!(offer.audio().unwrap().formats[0].codec(), Some(Codec::Pcmu));
    // 40004 is the last usable even port (RTCP needs 40005); then the range is exhausted.
    media
        .open_leg("c2", LegRole::Caller, Some(SIPP_OFFER))
        .await
        .unwrap();
    assert!(
        media
            .open_leg("c3", LegRole::Caller, Some(SIPP_OFFER))
            .await
            .is_err()
    );
    // Hold: our direction towards a leg changes and the o= version increases.
    let held = media
        .set_direction("c1", LegRole::Callee, Direction::SendOnly)
        .await
        .unwrap();
    let held = sdp::parse(held.as_bytes()).unwrap();
    assert_eq!(held.audio_direction(), Direction::SendOnly);
    assert!(held.origin_version > offer.origin_version);
    // Hostile SDP from a peer is refused, not a panic.
    assert!(
        media
            .open_leg("c9", LegRole::Caller, Some("v=0\r\nm=audio x"))
            .await
            .is_err()
    );
    media.close_call("c1").await;
    media.close_call("c2").await;
    assert_eq!(media.ports_in_use(), 0);
    assert_eq!(media.open_calls(), 0);
}

#[test]
fn rtcp_attributes_are_read() {
    let offer = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtcp:4011 IN IP4 1.2.3.4\r\na=rtcp-mux\r\n";
    let parsed = sdp::parse(offer.as_bytes()).unwrap();
    let audio = parsed.audio().unwrap();
    assert!(audio.rtcp_mux);
    assert_eq!(audio.rtcp_port, Some(4011));
    // Without the attributes: no mux, RTCP on the default port.
    let plain = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtcp:zero\r\n";
    let parsed = sdp::parse(plain.as_bytes()).unwrap();
    let audio = parsed.audio().unwrap();
    assert!(!audio.rtcp_mux);
    assert_eq!(audio.rtcp_port, None);
}

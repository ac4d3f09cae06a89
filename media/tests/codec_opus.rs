//! Opus through libopus behind the codec traits, on real speech (espeak-ng → SoX) and on
//! hostile payloads.

mod common;

use callscope_media::codec::{
    AudioDecoder, AudioEncoder, CodecError, CodecSpec, OpusDecoder, OpusEncoder, OpusEncoderConfig,
    OpusMode, decoder_at_rate, decoder_for, encoder_at_rate, encoder_for, packet_has_lbrr,
    packet_mode,
};
use common::{Rng, best_correlation, correlation_at, sine, speech};

fn encode_all(enc: &mut dyn AudioEncoder, pcm: &[i16]) -> Vec<Vec<u8>> {
    let frame = enc.frame_samples();
    pcm.chunks_exact(frame)
        .map(|f| {
            let mut payload = Vec::new();
            enc.encode(f, &mut payload).unwrap();
            payload
        })
        .collect()
}

fn decode_all(dec: &mut dyn AudioDecoder, payloads: &[Vec<u8>]) -> Vec<i16> {
    let mut out = Vec::new();
    for p in payloads {
        dec.decode(p, &mut out).unwrap();
    }
    out
}

/// The encoder a transcoder points at a browser: 8 kHz input, complexity 1, no FEC until
/// loss is reported; `celt_while_clean` as the engine sets it (true) or not.
fn narrowband_encoder(celt_while_clean: bool) -> OpusEncoder {
    OpusEncoder::new(OpusEncoderConfig {
        rate: 8000,
        complexity: 1,
        inband_fec: false,
        expected_loss_percent: 0,
        celt_while_clean,
        ..OpusEncoderConfig::default()
    })
    .unwrap()
}

#[test]
fn speech_round_trip_correlates_at_the_codec_delay() {
    let dir = tempfile::tempdir().unwrap();
    let source = speech(dir.path(), 48000);
    assert!(
        source.len() > 48000 * 3,
        "espeak-ng produced {} samples",
        source.len()
    );
    let spec = CodecSpec::opus(111);
    let mut enc = OpusEncoder::new(OpusEncoderConfig::default()).unwrap();
    let lookahead = enc.lookahead().unwrap();
    let payloads = encode_all(&mut enc, &source);
    let mut dec = decoder_for(&spec).unwrap();
    assert_eq!(dec.sample_rate(), 48000);
    let decoded = decode_all(dec.as_mut(), &payloads);
    assert_eq!(decoded.len(), payloads.len() * 960);
    let (lag, corr) = best_correlation(&source, &decoded, 2000);
    assert!(corr >= 0.9, "correlation {corr:.3} at lag {lag}");
    eprintln!("48 kHz speech: correlation {corr:.4} at lag {lag} (look-ahead {lookahead})");
    // The decoded audio lags by the encoder's look-ahead, give or take the few samples
    // by which SILK's resampler shifts the best match.
    assert!(
        lag.abs_diff(lookahead) <= 8,
        "lag {lag}, look-ahead {lookahead}"
    );
    // 32 kbit/s: 80 bytes per 20 ms on average (VBR, so allow slack).
    let mean = payloads.iter().map(Vec::len).sum::<usize>() / payloads.len();
    assert!((40..=120).contains(&mean), "mean payload {mean} bytes");
}

#[test]
fn decoding_at_telephone_rates_matches_the_source_at_that_rate() {
    let dir = tempfile::tempdir().unwrap();
    let source48 = speech(dir.path(), 48000);
    let mut enc = OpusEncoder::new(OpusEncoderConfig::default()).unwrap();
    let payloads = encode_all(&mut enc, &source48);
    for rate in [8000u32, 16000, 24000] {
        let source = speech(dir.path(), rate);
        let mut dec = decoder_at_rate(&CodecSpec::opus(111), rate).unwrap();
        let decoded = decode_all(dec.as_mut(), &payloads);
        assert_eq!(decoded.len(), payloads.len() * rate as usize / 50);
        let (lag, corr) = best_correlation(&source, &decoded, rate as usize / 20);
        eprintln!("{rate} Hz speech: correlation {corr:.4} at lag {lag}");
        assert!(corr >= 0.9, "{rate} Hz: correlation {corr:.3} at lag {lag}");
    }
    assert!(matches!(
        decoder_at_rate(&CodecSpec::opus(111), 44100),
        Err(CodecError::UnsupportedRates { .. })
    ));
    assert!(decoder_at_rate(&CodecSpec::pcmu(), 16000).is_err());
    assert!(encoder_at_rate(&CodecSpec::pcma(), 48000).is_err());
    let narrowband = encoder_at_rate(&CodecSpec::opus(111), 8000).unwrap();
    assert_eq!(
        (narrowband.sample_rate(), narrowband.frame_samples()),
        (8000, 160)
    );
}

#[test]
fn encoder_at_16k_round_trips_a_sine() {
    let config = OpusEncoderConfig {
        rate: 16000,
        bitrate: 24000,
        ..OpusEncoderConfig::default()
    };
    let mut enc = OpusEncoder::new(config).unwrap();
    assert_eq!(enc.frame_samples(), 320);
    let tone = sine(440.0, 16000, 16000, 8000.0);
    let payloads = encode_all(&mut enc, &tone);
    let mut dec = OpusDecoder::new(16000).unwrap();
    let decoded = decode_all(&mut dec, &payloads);
    let (_, corr) = best_correlation(&tone, &decoded, 800);
    assert!(corr >= 0.95, "sine correlation {corr:.3}");
}

#[test]
fn wrong_frame_size_and_bad_settings_are_errors() {
    let mut enc = encoder_for(&CodecSpec::opus(111)).unwrap();
    assert_eq!(
        enc.encode(&[0; 480], &mut Vec::new()),
        Err(CodecError::FrameSize {
            expected: 960,
            got: 480
        })
    );
    let bad_rate = OpusEncoderConfig {
        rate: 22050,
        ..OpusEncoderConfig::default()
    };
    assert!(OpusEncoder::new(bad_rate).is_err());
    let bad_bitrate = OpusEncoderConfig {
        bitrate: 10,
        ..OpusEncoderConfig::default()
    };
    assert!(OpusEncoder::new(bad_bitrate).is_err());
    assert!(OpusDecoder::new(11025).is_err());
}

#[test]
fn malformed_packets_are_corrupt_errors() {
    let mut dec = OpusDecoder::new(48000).unwrap();
    let cases: [&[u8]; 4] = [
        // Code 1 (two equal frames) needs an even number of frame bytes.
        &[0x01, 0xAA, 0xBB, 0xCC],
        // Code 3 with a frame count of zero.
        &[0x03, 0x00],
        // Code 2: the first frame claims 200 bytes, the packet has 2.
        &[0x02, 200, 0x11, 0x22],
        // Code 3 with 48 frames of 20 ms (960 ms > the 120 ms limit).
        &[0x1B, 48],
    ];
    for payload in cases {
        let mut out = vec![7i16; 3];
        let result = dec.decode(payload, &mut out);
        assert!(
            matches!(result, Err(CodecError::Corrupt(_))),
            "{payload:?} gave {result:?}"
        );
        assert_eq!(out, vec![7; 3], "a failed decode appends nothing");
    }
    // The decoder still works afterwards.
    let mut enc = OpusEncoder::new(OpusEncoderConfig::default()).unwrap();
    let mut payload = Vec::new();
    enc.encode(&sine(300.0, 48000, 960, 5000.0), &mut payload)
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(dec.decode(&payload, &mut out), Ok(960));
}

#[test]
fn seeded_random_payloads_never_panic_and_stay_bounded() {
    let mut dec = OpusDecoder::new(48000).unwrap();
    let mut rng = Rng(0x5eed_0f0a_05c0);
    let (mut ok, mut corrupt) = (0, 0);
    for i in 0..20_000 {
        let len = (rng.next_u64() % 1500) as usize;
        let payload = rng.bytes(len);
        let mut out = Vec::new();
        match dec.decode(&payload, &mut out) {
            Ok(n) => {
                ok += 1;
                assert_eq!(n, out.len());
                assert!(n <= 5760, "case {i}: {n} samples from {len} bytes");
            }
            Err(CodecError::Corrupt(_)) => {
                corrupt += 1;
                assert!(out.is_empty());
            }
            Err(other) => panic!("case {i}: unexpected {other:?}"),
        }
        if i % 100 == 0 {
            // Interleave concealment so PLC runs on whatever state garbage left behind.
            dec.conceal(960, &mut out);
        }
    }
    // Random bytes are often structurally valid Opus; both outcomes must occur.
    eprintln!("random payloads: {ok} decoded, {corrupt} corrupt");
    assert!(ok > 1000 && corrupt > 1000, "ok {ok}, corrupt {corrupt}");
}

#[test]
fn concealment_returns_exactly_the_requested_length() {
    for rate in [8000u32, 16000, 48000] {
        let mut dec = OpusDecoder::new(rate).unwrap();
        let mut enc = OpusEncoder::new(OpusEncoderConfig {
            rate,
            ..OpusEncoderConfig::default()
        })
        .unwrap();
        let frame = (rate / 50) as usize;
        let tone = sine(500.0, rate, frame * 10, 8000.0);
        let payloads = encode_all(&mut enc, &tone);
        let mut out = decode_all(&mut dec, &payloads);
        for samples in [0, 1, 100, frame, frame + 7, 3 * frame, 6000] {
            let before = out.len();
            dec.conceal(samples, &mut out);
            assert_eq!(out.len() - before, samples, "{rate} Hz, {samples} samples");
        }
        // PLC right after a tone continues it rather than dropping to silence.
        let mut fresh = OpusDecoder::new(rate).unwrap();
        let mut plc = decode_all(&mut fresh, &payloads);
        let start = plc.len();
        fresh.conceal(frame, &mut plc);
        let energy: f64 = plc[start..].iter().map(|&s| f64::from(s).powi(2)).sum();
        assert!(energy > 0.0, "{rate} Hz: PLC produced pure silence");
    }
}

/// Two seconds of speech as 20 ms Opus packets, and what a decoder makes of them in order.
fn speech_packets_and_their_decoding() -> (Vec<Vec<u8>>, Vec<i16>) {
    let dir = tempfile::tempdir().unwrap();
    let source = speech(dir.path(), 48000);
    let mut enc = OpusEncoder::new(OpusEncoderConfig::default()).unwrap();
    let payloads = encode_all(&mut enc, &source[..48000 * 2]);
    let reference = decode_all(&mut OpusDecoder::new(48000).unwrap(), &payloads);
    (payloads, reference)
}

/// A source decoded on arrival is concealed later, at playout, when its decoder has
/// already decoded the packets after the gap. Concealment then must leave the decoder as it
/// was: the packets after it decode exactly as without it, while plain PLC slipped in
/// between (what the transcoder did before) changes them, on speech far beyond rounding.
#[test]
fn concealment_apart_leaves_the_next_packets_decoding_as_without_it() {
    let (payloads, reference) = speech_packets_and_their_decoding();

    let frame = 960;
    let decode_with_gaps = |conceal: &dyn Fn(&mut OpusDecoder, &mut Vec<i16>)| {
        let mut dec = OpusDecoder::new(48000).unwrap();
        let (mut kept, mut concealed) = (Vec::new(), Vec::new());
        for (i, p) in payloads.iter().enumerate() {
            dec.decode(p, &mut kept).unwrap();
            if i % 10 == 5 {
                // Two slots in a row, as a burst loss gives.
                let start = concealed.len();
                conceal(&mut dec, &mut concealed);
                conceal(&mut dec, &mut concealed);
                assert_eq!(concealed.len() - start, 2 * frame);
            }
        }
        (kept, concealed)
    };

    let (apart, concealed) = decode_with_gaps(&|d, out| d.conceal_apart(frame, out));
    assert_eq!(apart, reference, "decoding changed by concealment apart");
    let energy: f64 = concealed.iter().map(|&s| f64::from(s).powi(2)).sum();
    assert!(energy > 0.0, "concealment apart produced pure silence");

    let (slipped_in, _) = decode_with_gaps(&|d, out| d.conceal(frame, out));
    let differing = slipped_in
        .iter()
        .zip(&reference)
        .filter(|(a, b)| a.abs_diff(**b) > 64)
        .count();
    eprintln!(
        "plain PLC in between: {differing} of {} samples differ",
        reference.len()
    );
    assert!(
        differing > reference.len() / 100,
        "plain PLC left decoding as it was ({differing} samples differ): the check above proves nothing"
    );
}

/// A packet older than one already decoded (reordered or duplicated) is decoded apart: it
/// gets its audio, and the packets after it decode exactly as without it.
#[test]
fn a_stale_packet_decoded_apart_leaves_the_stream_as_it_was() {
    let (payloads, reference) = speech_packets_and_their_decoding();

    let mut dec = OpusDecoder::new(48000).unwrap();
    let mut kept = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        dec.decode(p, &mut kept).unwrap();
        if i % 10 == 5 {
            // The packet before this one, arriving again late.
            let mut stale = Vec::new();
            assert_eq!(dec.decode_apart(&payloads[i - 1], &mut stale).unwrap(), 960);
            let energy: f64 = stale.iter().map(|&s| f64::from(s).powi(2)).sum();
            assert!(energy > 0.0, "packet {i}: stale packet decoded to silence");
        }
    }
    assert_eq!(
        kept, reference,
        "decoding changed by a packet decoded apart"
    );
}

/// The transcoder's encoder toward a browser starts without FEC and follows the receiver's
/// loss reports: LBRR data only while some loss is reported.
#[test]
fn reported_loss_switches_in_band_fec_on_and_off() {
    let dir = tempfile::tempdir().unwrap();
    let source = speech(dir.path(), 8000);
    let mut enc = narrowband_encoder(false);
    let third = source.len() / 3 / 160 * 160;
    let lbrr_packets = |enc: &mut OpusEncoder, pcm: &[i16]| {
        encode_all(enc, pcm)
            .iter()
            .filter(|p| packet_has_lbrr(p))
            .count()
    };
    let frames = third / 160;
    assert_eq!(
        lbrr_packets(&mut enc, &source[..third]),
        0,
        "no loss: no FEC"
    );
    enc.set_reported_loss(5);
    let with_loss = lbrr_packets(&mut enc, &source[third..2 * third]);
    // Silence between words may go without LBRR; speech frames carry it.
    assert!(
        with_loss * 3 > frames,
        "5 % loss: {with_loss} of {frames} packets carry FEC"
    );
    enc.set_reported_loss(0);
    // The packet right after the switch may still carry the LBRR copy of the frame encoded
    // before it (LBRR rides one packet late); none after that.
    let after: Vec<bool> = encode_all(&mut enc, &source[2 * third..3 * third])
        .iter()
        .map(|p| packet_has_lbrr(p))
        .collect();
    let late = after.iter().skip(1).filter(|&&l| l).count();
    assert_eq!(late, 0, "loss gone: FEC off again ({after:?})");
    assert!(!packet_has_lbrr(&[]) && !packet_has_lbrr(&[0xff]));
}

#[test]
fn in_band_fec_rebuilds_a_lost_frame_better_than_plc() {
    let dir = tempfile::tempdir().unwrap();
    let source = speech(dir.path(), 16000);
    let config = OpusEncoderConfig {
        rate: 16000,
        bitrate: 24000,
        expected_loss_percent: 20,
        ..OpusEncoderConfig::default()
    };
    let mut enc = OpusEncoder::new(config).unwrap();
    let payloads = encode_all(&mut enc, &source);
    let reference = decode_all(&mut OpusDecoder::new(16000).unwrap(), &payloads);

    // Lose every 10th packet (while speech is loud) and recover it with FEC or with PLC.
    let mut with_fec = OpusDecoder::new(16000).unwrap();
    let mut with_plc = OpusDecoder::new(16000).unwrap();
    let (mut fec_out, mut plc_out) = (Vec::new(), Vec::new());
    let (mut fec_score, mut plc_score, mut frames) = (0.0, 0.0, 0);
    for (i, p) in payloads.iter().enumerate() {
        let lost = i % 10 == 5 && i + 1 < payloads.len();
        if lost {
            let at = fec_out.len();
            with_fec.conceal_with_next(&payloads[i + 1], 320, &mut fec_out);
            with_plc.conceal(320, &mut plc_out);
            assert_eq!(fec_out.len() - at, 320);
            let truth = &reference[at..at + 320];
            let energy: f64 = truth.iter().map(|&s| f64::from(s).powi(2)).sum();
            if energy / 320.0 > 500.0 * 500.0 {
                fec_score += correlation_at(truth, &fec_out[at..], 0);
                plc_score += correlation_at(truth, &plc_out[at..], 0);
                frames += 1;
            }
        } else {
            with_fec.decode(p, &mut fec_out).unwrap();
            with_plc.decode(p, &mut plc_out).unwrap();
        }
    }
    eprintln!(
        "FEC vs PLC over {frames} frames: {:.3} vs {:.3}",
        fec_score / frames as f64,
        plc_score / frames as f64
    );
    assert!(frames >= 5, "only {frames} loud lost frames");
    let (fec_mean, plc_mean) = (fec_score / frames as f64, plc_score / frames as f64);
    assert!(
        fec_mean > 0.8 && fec_mean > plc_mean + 0.1,
        "FEC {fec_mean:.3} vs PLC {plc_mean:.3} over {frames} frames"
    );
}

#[test]
fn dtx_packets_and_empty_payloads_keep_the_timeline() {
    let mut enc = OpusEncoder::new(OpusEncoderConfig {
        dtx: true,
        ..OpusEncoderConfig::default()
    })
    .unwrap();
    let mut dec = OpusDecoder::new(48000).unwrap();
    let silence = vec![0i16; 960];
    let mut small = 0;
    let mut out = Vec::new();
    for _ in 0..100 {
        let mut payload = Vec::new();
        enc.encode(&silence, &mut payload).unwrap();
        if payload.len() <= 2 {
            small += 1;
        }
        let before = out.len();
        assert_eq!(dec.decode(&payload, &mut out), Ok(960));
        assert_eq!(out.len() - before, 960);
    }
    assert!(small > 50, "DTX produced only {small} tiny packets");
    // An empty payload stands for one lost frame of the last frame length.
    let before = out.len();
    assert_eq!(dec.decode(&[], &mut out), Ok(960));
    assert_eq!(out.len() - before, 960);
}

/// A transcoder's encoder toward a browser: CELT frames while the receiver reports no loss,
/// SILK (or hybrid) with in-band FEC while it does, CELT again once the loss is gone. The
/// CELT frames still carry the speech (checked by correlation at the best lag).
#[test]
fn celt_while_clean_gives_way_to_silk_fec_under_loss() {
    let dir = tempfile::tempdir().unwrap();
    let source = speech(dir.path(), 8000);
    let mut enc = narrowband_encoder(true);
    let third = source.len() / 3 / 160 * 160;
    let frames = third / 160;
    let modes = |payloads: &[Vec<u8>]| -> Vec<OpusMode> {
        payloads.iter().filter_map(|p| packet_mode(p)).collect()
    };

    let clean = encode_all(&mut enc, &source[..third]);
    assert_eq!(modes(&clean).len(), frames);
    assert!(
        modes(&clean).iter().all(|m| *m == OpusMode::Celt),
        "no loss: CELT only ({:?})",
        modes(&clean)
    );
    let mut dec = OpusDecoder::new(8000).unwrap();
    let decoded = decode_all(&mut dec, &clean);
    let (lag, corr) = best_correlation(&source[..third], &decoded, 800);
    assert!(
        corr >= 0.9,
        "CELT at 8 kHz: correlation {corr:.3} at lag {lag}"
    );

    enc.set_reported_loss(5);
    let lossy = encode_all(&mut enc, &source[third..2 * third]);
    let silk = modes(&lossy)
        .iter()
        .filter(|m| **m != OpusMode::Celt)
        .count();
    let with_fec = lossy.iter().filter(|p| packet_has_lbrr(p)).count();
    // The first packets after the switch are the mode transition; speech frames after it
    // are SILK with their LBRR copy (silence between words may go without).
    assert!(silk + 3 >= frames, "5 % loss: {silk} of {frames} SILK");
    assert!(
        with_fec * 3 > frames,
        "5 % loss: {with_fec} of {frames} with FEC"
    );

    enc.set_reported_loss(0);
    let again = encode_all(&mut enc, &source[2 * third..3 * third]);
    let celt_again = modes(&again).iter().skip(2).all(|m| *m == OpusMode::Celt);
    assert!(celt_again, "loss gone: CELT again ({:?})", modes(&again));

    assert_eq!(packet_mode(&[]), None);
}

#[test]
fn without_celt_while_clean_libopus_picks_silk_for_narrowband_speech() {
    let dir = tempfile::tempdir().unwrap();
    let source = speech(dir.path(), 8000);
    let mut enc = narrowband_encoder(false);
    let payloads = encode_all(&mut enc, &source);
    let silk = payloads
        .iter()
        .filter(|p| packet_mode(p) == Some(OpusMode::Silk))
        .count();
    assert!(
        silk * 10 >= payloads.len() * 9,
        "{silk} of {} SILK",
        payloads.len()
    );
}

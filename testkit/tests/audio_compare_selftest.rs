//! The audio comparison tools on real speech made by espeak-ng and passed through sox's
//! G.711: the checks the media end-to-end tests rely on must tell a match from a mismatch.

use callscope_testkit::audio_compare::{
    Mono, best_lag, best_lag_xcorr, g711_round_trip, lag_spread, lag_stability, read_wav_channels,
    read_wav_mono, resample, silence_intervals, speech_wav, sweep_wav, to_pcm16_wav, wav_encoding,
    write_wav,
};
use std::time::Instant;

const AGENT: &str = "Thank you for calling the support line, my name is Alex. \
    Could you please confirm the account number and the postcode on the account?";
const CUSTOMER: &str = "Hello, yes, I was charged twice for the same order last week \
    and nobody has answered my emails about the refund so far.";

#[test]
fn shifted_copy_of_speech_is_found_at_its_lag() {
    let dir = tempfile::tempdir().unwrap();
    let a =
        read_wav_mono(&speech_wav(&dir.path().join("a.wav"), "en-us", AGENT, 8000, 40.0).unwrap())
            .unwrap();
    assert!(a.duration_s() >= 40.0, "{}", a.duration_s());
    // The candidate starts 0.25 s late (2000 samples of silence first).
    let mut late = vec![0.0f32; 2000];
    late.extend_from_slice(&a.samples);

    let t = Instant::now();
    let m = best_lag_xcorr(&a.samples, &late, 8000).unwrap();
    let took = t.elapsed();
    assert_eq!(m.lag, 2000, "{m:?}");
    assert!(m.xcorr > 0.999, "{m:?}");
    // 40 s at 8 kHz against ±1 s of lag, in a debug build.
    assert!(took.as_millis() < 1000, "took {took:?}");
    eprintln!("40 s @ 8 kHz, ±1 s lags: {took:?}, {m:?}");

    // Per-window lags are the same 2000 samples everywhere there is speech.
    let late = Mono::new(8000, late);
    let windows = lag_stability(&a, &late, 5.0, 0.5, -45.0).unwrap();
    let (n, lo, hi) = lag_spread(&windows, 0.9);
    assert!(n >= 7, "{windows:?}");
    assert_eq!((lo, hi), (2000, 2000), "{windows:?}");
}

#[test]
fn different_voices_and_sentences_do_not_match() {
    let dir = tempfile::tempdir().unwrap();
    let a =
        read_wav_mono(&speech_wav(&dir.path().join("a.wav"), "en-us", AGENT, 8000, 20.0).unwrap())
            .unwrap();
    let b = read_wav_mono(
        &speech_wav(&dir.path().join("b.wav"), "en-gb+f3", CUSTOMER, 8000, 20.0).unwrap(),
    )
    .unwrap();
    let m = best_lag(&a, &b, 1.0).unwrap();
    assert!(m.xcorr < 0.3, "unrelated speech correlates: {m:?}");
    eprintln!("agent vs customer: {m:?}");
    let s = read_wav_mono(&sweep_wav(&dir.path().join("s.wav"), 8000, 20.0, 200, 3000).unwrap())
        .unwrap();
    let m = best_lag(&a, &s, 1.0).unwrap();
    assert!(m.xcorr < 0.3, "speech vs sweep: {m:?}");
}

#[test]
fn g711_round_trip_still_matches_and_16k_compares_with_8k() {
    let dir = tempfile::tempdir().unwrap();
    let src16 = speech_wav(&dir.path().join("a16.wav"), "en-us", AGENT, 16000, 15.0).unwrap();
    let a16 = read_wav_mono(&src16).unwrap();
    for ulaw in [true, false] {
        let out = dir.path().join(if ulaw { "u.wav" } else { "a.wav" });
        g711_round_trip(&src16, &out, ulaw).unwrap();
        let coded = read_wav_mono(&out).unwrap();
        assert_eq!(coded.rate, 8000);
        // Compared at the reference's 16 kHz: the candidate is resampled up, and G.711's
        // 4 kHz band limit is all that differs.
        let m = best_lag(&a16, &coded, 0.5).unwrap();
        assert!(m.xcorr >= 0.9, "ulaw={ulaw}: {m:?}");
        assert!(m.lag.abs() <= 2, "ulaw={ulaw}: {m:?}");
        eprintln!("G.711 (ulaw={ulaw}) round trip vs 16 kHz source: {m:?}");
        // And the other way round, at 8 kHz.
        let a8 = resample(&a16, 8000).unwrap();
        let m = best_lag(&coded, &a8, 0.5).unwrap();
        assert!(m.xcorr >= 0.95, "ulaw={ulaw} at 8 kHz: {m:?}");
    }
}

#[test]
fn stereo_and_float_files_read_back_per_channel_with_gaps_found() {
    let dir = tempfile::tempdir().unwrap();
    let a =
        read_wav_mono(&speech_wav(&dir.path().join("a.wav"), "en-us", AGENT, 8000, 6.0).unwrap())
            .unwrap();
    // Right channel: 2 s of silence in the middle of the agent's speech (a hold).
    let mut held = a.clone();
    for s in &mut held.samples[16000..32000] {
        *s = 0.0;
    }
    let path = dir.path().join("stereo.wav");
    write_wav(&path, &[a.clone(), held]).unwrap();
    let left = callscope_testkit::audio_compare::read_wav_channel(&path, 0).unwrap();
    let right = callscope_testkit::audio_compare::read_wav_channel(&path, 1).unwrap();
    assert!(callscope_testkit::audio_compare::read_wav_channel(&path, 2).is_err());
    assert!(best_lag(&a, &left, 0.1).unwrap().xcorr > 0.999);
    let gaps = silence_intervals(&right, 20, -50.0, 1.0);
    assert!(
        gaps.iter().any(|g| g.start_s <= 2.05 && g.end_s >= 3.95),
        "{gaps:?}"
    );
    // 32-bit float at 48 kHz reads back too (sox converts).
    let f = dir.path().join("f.wav");
    let st = std::process::Command::new("sox")
        .arg(dir.path().join("a.wav"))
        .args(["-r", "48000", "-e", "floating-point", "-b", "32"])
        .arg(&f)
        .status()
        .unwrap();
    assert!(st.success());
    let fl = read_wav_mono(&f).unwrap();
    assert_eq!(fl.rate, 48000);
    let m = best_lag(&a, &fl, 0.1).unwrap();
    assert!(m.xcorr > 0.98 && m.lag.abs() <= 1, "{m:?}");
    // Random bytes are a clear error.
    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, b"RIFF\x10\x00\x00\x00WAVEjunkjunk").unwrap();
    assert!(read_wav_mono(&junk).is_err());
}

/// Another server's recording in G.711 (RustPBX writes μ-law WAV, as the media benchmark
/// found): its encoding is named from the header, and it reads back through sox per channel,
/// each channel still the audio that went in.
#[test]
fn g711_wav_files_are_named_and_read_through_sox() {
    let dir = tempfile::tempdir().unwrap();
    let left = speech_wav(&dir.path().join("l.wav"), "en-us", AGENT, 8000, 4.0).unwrap();
    let right = speech_wav(&dir.path().join("r.wav"), "en-gb+f3", CUSTOMER, 8000, 4.0).unwrap();
    let pcm = dir.path().join("stereo.wav");
    let sources = [
        read_wav_mono(&left).unwrap(),
        read_wav_mono(&right).unwrap(),
    ];
    let len = sources[0].samples.len().min(sources[1].samples.len());
    let trimmed: Vec<Mono> = sources
        .iter()
        .map(|m| Mono::new(8000, m.samples[..len].to_vec()))
        .collect();
    write_wav(&pcm, &trimmed).unwrap();
    assert_eq!(wav_encoding(&pcm), "PCM");
    for (encoding, sox_name) in [("μ-law", "u-law"), ("A-law", "a-law")] {
        let coded = dir.path().join(format!("{sox_name}.wav"));
        let status = std::process::Command::new("sox")
            .arg(&pcm)
            .args(["-e", sox_name])
            .arg(&coded)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(wav_encoding(&coded), encoding);
        assert!(
            read_wav_channels(&coded).is_err(),
            "{encoding}: the PCM reader takes it directly, so the fallback is never used"
        );
        let back = dir.path().join(format!("{sox_name}-pcm.wav"));
        to_pcm16_wav(&coded, &back).unwrap();
        let channels = read_wav_channels(&back).unwrap();
        assert_eq!(channels.len(), 2, "{encoding}");
        for (channel, source) in channels.iter().zip(&trimmed) {
            assert_eq!(channel.rate, 8000);
            assert_eq!(channel.samples.len(), len, "{encoding}");
            let m = best_lag(source, channel, 0.05).unwrap();
            assert!(m.xcorr >= 0.95 && m.lag == 0, "{encoding}: {m:?}");
        }
    }
    let not_wav = dir.path().join("not.wav");
    std::fs::write(&not_wav, b"RIFF....WAVEdata").unwrap();
    assert_eq!(wav_encoding(&not_wav), "unknown");
}

//! User-space codec work of one transcoded, recorded WebRTC (Opus) ⇄ SIP (PCMU) call, per
//! 20 ms of call, without sockets, DTLS or timers: what the engine's call task does for
//! each packet of both directions, with the same codec and resampler types.
//!
//! `cargo run --release -p callscope-media --example bench_call_path -- [variant ...]`
//!
//! Variants (default: all of them), each printed as ns per 20 ms of call:
//! - `48k-c1-fec`: the engine before session 9 (recording at 48 kHz, Opus encoder toward
//!   the browser at complexity 1 with in-band FEC always on);
//! - `48k-c1`: FEC off (no loss reported);  `48k-c0`: and complexity 0;
//! - `16k-c1`, `16k-c0`: the 16 kHz recording timeline (`opus_recording_rate = 16000`);
//! - `-celt` after the complexity (`48k-c1-celt`, `16k-c0-celt`): the encoder toward the
//!   browser pinned to CELT while no loss is reported (the engine's default since session 10;
//!   at complexity 0, `48k-c0-celt`, since session 13);
//! - `+taps` on any variant: also the two 16 kHz transcription taps.
//!
//! Per 20 ms: browser → SIP: one Opus packet decoded at the recording rate (that PCM is
//! the recording's agent channel), resampled to 8 kHz, PCMU-encoded; SIP → browser: one PCMU
//! packet decoded for the recording and resampled 8 kHz → recording rate, decoded again at
//! playout and Opus-encoded at 8 kHz. The browser's packets are speech (espeak-ng) encoded
//! at 48 kHz, 32 kbit/s, complexity 10 with FEC, as a browser sends. Run it under
//! `valgrind --tool=callgrind` for instruction counts that do not depend on the load.

use std::hint::black_box;
use std::time::Instant;

use callscope_media::codec::{
    AudioDecoder, AudioEncoder, OpusDecoder, OpusEncoder, OpusEncoderConfig, Resampler,
};
use callscope_media::g711;

/// 20 ms frames run per variant (a minute of call); `BENCH_FRAMES` overrides (fewer under
/// valgrind).
fn frames() -> usize {
    std::env::var("BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

struct Variant {
    name: String,
    rate: u32,
    complexity: u8,
    fec: bool,
    taps: bool,
    celt: bool,
}

fn parse(name: &str) -> Option<Variant> {
    let (base, taps) = match name.strip_suffix("+taps") {
        Some(b) => (b, true),
        None => (name, false),
    };
    let (base, celt) = match base.strip_suffix("-celt") {
        Some(b) => (b, true),
        None => (base, false),
    };
    let (rate, complexity, fec) = match base {
        "48k-c1-fec" => (48000, 1, true),
        "48k-c1" => (48000, 1, false),
        "48k-c0" => (48000, 0, false),
        "16k-c1" => (16000, 1, false),
        "16k-c0" => (16000, 0, false),
        _ => return None,
    };
    Some(Variant {
        name: name.to_string(),
        rate,
        complexity,
        fec,
        taps,
        celt,
    })
}

fn speech_48k() -> Vec<i16> {
    let dir = tempfile::tempdir().expect("tmp");
    let wav = callscope_testkit::audio_compare::speech_wav(
        &dir.path().join("speech.wav"),
        "en-us",
        "Thank you for calling. My name is Alice, how can I help you today? \
         Your reference number is four seven one two.",
        48000,
        8.0,
    )
    .expect("espeak-ng speech");
    let reader = hound::WavReader::open(wav).expect("wav");
    reader
        .into_samples::<i16>()
        .map(|s| s.unwrap_or(0))
        .collect()
}

/// The browser's Opus packets and the phone's PCMU packets, one each per 20 ms.
fn packets(speech: &[i16]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut browser = OpusEncoder::new(OpusEncoderConfig {
        rate: 48000,
        bitrate: 32000,
        complexity: 10,
        ..OpusEncoderConfig::default()
    })
    .expect("encoder");
    let mut to_8k = Resampler::new(48000, 8000).expect("resampler");
    let (mut opus, mut pcmu) = (Vec::new(), Vec::new());
    let mut narrow = Vec::new();
    for frame in speech.chunks_exact(960) {
        let mut payload = Vec::new();
        browser.encode(frame, &mut payload).expect("encode");
        opus.push(payload);
        narrow.clear();
        to_8k.process(frame, &mut narrow);
        let mut law = Vec::new();
        g711::encode_ulaw(&narrow, &mut law);
        law.resize(160, 0xff);
        pcmu.push(law);
    }
    (opus, pcmu)
}

// Not inlined: `valgrind --toggle-collect=bench_call_path::run` counts exactly this.
#[inline(never)]
fn run(v: &Variant, opus: &[Vec<u8>], pcmu: &[Vec<u8>]) -> f64 {
    let mut decoder = OpusDecoder::new(v.rate).expect("decoder");
    let mut down = Resampler::new(v.rate, 8000).expect("resampler");
    let mut up = Resampler::new(8000, v.rate).expect("resampler");
    let mut taps = [
        Resampler::new(v.rate, 16000).ok(),
        Resampler::new(v.rate, 16000).ok(),
    ];
    let mut encoder = OpusEncoder::new(OpusEncoderConfig {
        rate: 8000,
        complexity: v.complexity,
        inband_fec: v.fec,
        expected_loss_percent: if v.fec { 10 } else { 0 },
        celt_while_clean: v.celt,
        ..OpusEncoderConfig::default()
    })
    .expect("encoder");
    let (mut pcm, mut narrow, mut law, mut rec, mut payload, mut tap) = (
        Vec::with_capacity(2048),
        Vec::with_capacity(2048),
        Vec::with_capacity(512),
        Vec::with_capacity(2048),
        Vec::with_capacity(1500),
        Vec::with_capacity(2048),
    );
    let frames = frames();
    let started = Instant::now();
    for i in 0..frames {
        // Browser → SIP.
        pcm.clear();
        let _ = decoder.decode(&opus[i % opus.len()], &mut pcm);
        narrow.clear();
        down.process(&pcm, &mut narrow);
        law.clear();
        g711::encode_ulaw(&narrow, &mut law);
        // SIP → browser: once for the recording (to its rate), once at playout.
        let packet = &pcmu[i % pcmu.len()];
        narrow.clear();
        g711::decode_ulaw(packet, &mut narrow);
        rec.clear();
        if v.rate == 8000 {
            rec.extend_from_slice(&narrow);
        } else {
            up.process(&narrow, &mut rec);
        }
        narrow.clear();
        g711::decode_ulaw(packet, &mut narrow);
        let _ = encoder.encode(&narrow, &mut payload);
        if v.taps {
            for (resampler, channel) in taps.iter_mut().zip([&pcm, &rec]) {
                tap.clear();
                match resampler {
                    Some(r) => r.process(channel, &mut tap),
                    None => tap.extend_from_slice(channel),
                }
                black_box(&tap);
            }
        }
        black_box((&law, &payload, &rec));
    }
    started.elapsed().as_nanos() as f64 / frames as f64
}

fn main() {
    let names: Vec<String> = std::env::args().skip(1).collect();
    let variants: Vec<Variant> = if names.is_empty() {
        [
            "48k-c1-fec",
            "48k-c1",
            "48k-c1-celt",
            "48k-c0",
            "16k-c1",
            "16k-c1-celt",
            "16k-c0",
            "16k-c0-celt",
        ]
        .iter()
        .filter_map(|n| parse(n))
        .collect()
    } else {
        names.iter().filter_map(|n| parse(n)).collect()
    };
    let speech = speech_48k();
    let (opus, pcmu) = packets(&speech);
    println!("bench_call_path: {} frames per variant", frames());
    for v in &variants {
        let ns = run(v, &opus, &pcmu);
        // 50 frames of each direction per second of call.
        println!(
            "{:<16} {ns:>8.0} ns per 20 ms of call ({:.3} % of a core per call)",
            v.name,
            ns * 50.0 / 1e7
        );
    }
}

//! Cost and output of the Opus encoder a transcoding call runs toward the browser, for each
//! setting worth choosing between: bitrate, complexity, and CELT-only (what a clean path
//! uses, `OpusEncoderConfig::celt_while_clean`) or libopus' own mode choice (SILK, what a
//! lossy path gets, with its FEC).
//!
//! Run through `scripts/bench-opus-encoder`, which feeds it real speech passed through G.711
//! (what a phone leg delivers) and scores each decoded output against that input with
//! PESQ (ITU-T P.862, narrowband), so cost and quality are read side by side.
//!
//! `bench_opus_encoder --recording [--rate <Hz>] <input.raw> <output dir>` measures the other
//! Opus encoder: the one a recording with `recording_format = "opus"` runs on the writer
//! threads (two channels, libopus' own mode choice, no FEC), through the recorder's own
//! `OggOpusWriter`, at the input's rate (8 kHz unless `--rate` says otherwise: 16000 for a
//! softphone's call).
//! Two layouts of the input over the channels (see `recordings`); for each it prints
//! `<bitrate> <complexity> <layout> <µs per 20 ms stereo frame> <bytes per frame> <file>`,
//! the file being the finished `.opus` recording.
//!
//! By hand: `bench_opus_encoder <input.raw> <output dir>`, the input raw signed 16-bit
//! little-endian mono at 8 kHz. For every setting it prints one line
//! `<bitrate> <complexity> <mode> <µs per 20 ms frame> <bytes per frame> <output file>` and
//! writes the decoded audio (8 kHz, same raw format) to the output file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use callscope_media::codec::{
    AudioDecoder, AudioEncoder, OpusDecoder, OpusEncoder, OpusEncoderConfig,
};
use callscope_media::recorder::{OggOpusWriter, WriterConfig};

const RATE: u32 = 8000;
const FRAME: usize = (RATE / 50) as usize;
/// Encodes of the whole input per setting; the fastest is reported (the machine is shared).
const ROUNDS: usize = 5;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let recording = args.first().is_some_and(|a| a == "--recording");
    if recording {
        args.remove(0);
    }
    // A recording's rate is its legs' (8 kHz for G.711, 16 kHz for a softphone's call).
    let mut rate = RATE;
    if recording && args.first().is_some_and(|a| a == "--rate") {
        rate = args
            .get(1)
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| fail("--rate takes a rate in Hz"));
        args.drain(..2);
    }
    let (Some(input), Some(out_dir)) = (args.first(), args.get(1)) else {
        eprintln!(
            "usage: bench_opus_encoder [--recording [--rate <Hz>]] <input.raw (s16le, mono; \
             8 kHz unless --rate)> <output dir>"
        );
        std::process::exit(2);
    };
    let bytes = std::fs::read(input).unwrap_or_else(|e| fail(&format!("read {input}: {e}")));
    let pcm: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let frames = pcm.len() / FRAME;
    if frames == 0 {
        fail("the input holds less than one 20 ms frame");
    }
    if recording {
        recordings(&pcm, Path::new(out_dir), rate);
        return;
    }
    for bitrate in [16_000u32, 24_000, 32_000] {
        for complexity in [0u8, 1, 3] {
            for celt in [true, false] {
                let mode = if celt { "celt" } else { "auto" };
                let config = OpusEncoderConfig {
                    rate: RATE,
                    bitrate,
                    complexity,
                    inband_fec: false,
                    expected_loss_percent: 0,
                    celt_while_clean: celt,
                    ..OpusEncoderConfig::default()
                };
                let (us_per_frame, payload_bytes, decoded) = run(config, &pcm);
                let path =
                    PathBuf::from(out_dir).join(format!("{bitrate}_c{complexity}_{mode}.raw"));
                let raw: Vec<u8> = decoded.iter().flat_map(|s| s.to_le_bytes()).collect();
                std::fs::write(&path, raw)
                    .unwrap_or_else(|e| fail(&format!("write {}: {e}", path.display())));
                println!(
                    "{bitrate} {complexity} {mode} {us_per_frame:.1} {:.0} {}",
                    payload_bytes as f64 / frames as f64,
                    path.display()
                );
            }
        }
    }
}

/// Turns of the `turns` layout: each channel talks for this long, then listens as long.
const TURN: Duration = Duration::from_millis(2500);

/// The recorder's encoder at each bitrate and complexity worth choosing between, written
/// through `OggOpusWriter` in 20 ms chunks as the writer threads feed it, for two layouts:
/// `overlap`, the input on the left and the input rotated by half on the right (both
/// talking all the time, the hardest case for a shared bitrate), and `turns`, the input in
/// 2.5 s turns, even ones on the left and odd ones on the right, the other channel silent
/// (a conversation).
fn recordings(pcm: &[i16], out_dir: &Path, rate: u32) {
    let turn = (TURN.as_millis() as usize) * rate as usize / 1000;
    let half = pcm.len() / 2;
    let overlap: Vec<i16> = (0..pcm.len())
        .flat_map(|i| [pcm[i], pcm[(i + half) % pcm.len()]])
        .collect();
    let turns: Vec<i16> = (0..pcm.len())
        .flat_map(|i| match (i / turn) % 2 {
            0 => [pcm[i], 0],
            _ => [0, pcm[i]],
        })
        .collect();
    let frames = pcm.len() / (rate / 50) as usize;
    for (layout, stereo) in [("overlap", &overlap), ("turns", &turns)] {
        for bitrate in [32_000u32, 48_000] {
            for complexity in [0u8, 1, 3, 5] {
                let path = out_dir.join(format!("recording_{layout}_{bitrate}_c{complexity}.opus"));
                let (us, size) = record(stereo, &path, rate, bitrate, complexity);
                println!(
                    "{bitrate} {complexity} {layout} {us:.1} {:.0} {}",
                    size as f64 / frames as f64,
                    path.display()
                );
            }
        }
    }
}

/// Writes `stereo` as a recording `ROUNDS` times: the fastest round's µs per 20 ms frame
/// and the file's size.
fn record(stereo: &[i16], path: &Path, rate: u32, bitrate: u32, complexity: u8) -> (f64, u64) {
    let frame = (rate / 50) as usize;
    let frames = stereo.len() / 2 / frame;
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        // The recorder never overwrites a recording; each round writes it anew.
        let _ = std::fs::remove_file(path);
        let mut config = WriterConfig::new(rate);
        // Not the server's 500 ms: the page writes would time the disk, not the encoder.
        config.flush_interval = Duration::from_secs(3600);
        let start = Instant::now();
        let mut writer = OggOpusWriter::create_with(path, config, start, bitrate, complexity)
            .unwrap_or_else(|e| fail(&format!("create {}: {e}", path.display())));
        let started = Instant::now();
        for chunk in stereo.chunks(frame * 2) {
            writer
                .write(chunk, start)
                .unwrap_or_else(|e| fail(&format!("write: {e}")));
        }
        best = best.min(started.elapsed().as_secs_f64() * 1e6 / frames as f64);
        writer
            .finish(start)
            .unwrap_or_else(|e| fail(&format!("finish: {e}")));
    }
    (best, std::fs::metadata(path).map_or(0, |m| m.len()))
}

/// Encodes the input `ROUNDS` times with a fresh encoder each time: the fastest round's time
/// per frame, the first round's payload bytes, and the first round's packets decoded.
fn run(config: OpusEncoderConfig, pcm: &[i16]) -> (f64, usize, Vec<i16>) {
    let mut best = f64::MAX;
    let mut payload_bytes = 0;
    let mut decoded = Vec::with_capacity(pcm.len());
    let mut payload = Vec::new();
    for round in 0..ROUNDS {
        let mut encoder =
            OpusEncoder::new(config).unwrap_or_else(|e| fail(&format!("encoder: {e}")));
        let mut packets = Vec::new();
        let started = Instant::now();
        for frame in pcm.chunks_exact(FRAME) {
            encoder
                .encode(frame, &mut payload)
                .unwrap_or_else(|e| fail(&format!("encode: {e}")));
            if round == 0 {
                packets.push(payload.clone());
            }
        }
        let frames = pcm.len() / FRAME;
        best = best.min(started.elapsed().as_secs_f64() * 1e6 / frames as f64);
        if round == 0 {
            let mut decoder =
                OpusDecoder::new(RATE).unwrap_or_else(|e| fail(&format!("decoder: {e}")));
            for packet in &packets {
                payload_bytes += packet.len();
                decoder
                    .decode(packet, &mut decoded)
                    .unwrap_or_else(|e| fail(&format!("decode: {e}")));
            }
        }
    }
    (best, payload_bytes, decoded)
}

fn fail(message: &str) -> ! {
    eprintln!("bench_opus_encoder: {message}");
    std::process::exit(1);
}

//! Cost and output of the Opus encoder a transcoding call runs toward the browser, for each
//! setting worth choosing between: bitrate, complexity, and CELT-only (what a clean path
//! uses, `OpusEncoderConfig::celt_while_clean`) or libopus' own mode choice (SILK, what a
//! lossy path gets, with its FEC).
//!
//! Run through `scripts/bench-opus-encoder`, which feeds it real speech passed through G.711
//! (what a phone leg delivers) and scores each decoded output against that input with
//! PESQ (ITU-T P.862, narrowband), so cost and quality are read side by side.
//!
//! By hand: `bench_opus_encoder <input.raw> <output dir>`, the input raw signed 16-bit
//! little-endian mono at 8 kHz. For every setting it prints one line
//! `<bitrate> <complexity> <mode> <µs per 20 ms frame> <bytes per frame> <output file>` and
//! writes the decoded audio (8 kHz, same raw format) to the output file.

use std::path::PathBuf;
use std::time::Instant;

use callscope_media::codec::{
    AudioDecoder, AudioEncoder, OpusDecoder, OpusEncoder, OpusEncoderConfig,
};

const RATE: u32 = 8000;
const FRAME: usize = (RATE / 50) as usize;
/// Encodes of the whole input per setting; the fastest is reported (the machine is shared).
const ROUNDS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(input), Some(out_dir)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: bench_opus_encoder <input.raw (s16le, 8 kHz, mono)> <output dir>");
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

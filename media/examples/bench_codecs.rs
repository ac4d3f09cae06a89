//! Cost of the media path's codec and resampler work per 20 ms frame of one call.
//!
//! Run: `cargo run --release -p callscope-media --example bench_codecs`
//!
//! Each path is fed 20 ms chunks of a speech-like signal (a few harmonics with a slow
//! envelope, so codecs do real work rather than encoding silence) and timed over many
//! frames; the figure is wall time per frame on one thread. For comparison the same
//! resampling is also run through rubato's synchronous FFT resampler.

use std::hint::black_box;
use std::time::Instant;

use callscope_media::codec::{self, CodecKind, CodecSpec, Resampler};
use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler as _};

const FRAMES: usize = 5000;

fn speechlike(rate: u32, samples: usize) -> Vec<i16> {
    (0..samples)
        .map(|n| {
            let t = n as f64 / f64::from(rate);
            let envelope = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            let voice: f64 = [
                (180.0, 1.0),
                (360.0, 0.6),
                (720.0, 0.4),
                (1500.0, 0.25),
                (2900.0, 0.1),
            ]
            .iter()
            .map(|(f, a)| a * (2.0 * std::f64::consts::PI * f * t).sin())
            .sum();
            (6000.0 * envelope * voice) as i16
        })
        .collect()
}

fn report(name: &str, started: Instant, frames: usize) {
    let ns = started.elapsed().as_nanos() as f64 / frames as f64;
    // A call produces 50 frames per second per direction.
    println!(
        "{name:<28} {ns:>9.0} ns/frame  ({:.4} % of a core at 50 frames/s)",
        ns * 50.0 / 1e7
    );
}

fn bench_resampler(from: u32, to: u32) {
    let chunk = (from / 50) as usize;
    let input = speechlike(from, chunk * 50);
    let mut r = match Resampler::new(from, to) {
        Ok(r) => r,
        Err(e) => {
            println!("resample {from}->{to}: {e}");
            return;
        }
    };
    let mut out = Vec::with_capacity(4096);
    let started = Instant::now();
    for i in 0..FRAMES {
        let at = (i % 50) * chunk;
        out.clear();
        r.process(black_box(&input[at..at + chunk]), &mut out);
        black_box(&out);
    }
    report(&format!("resample {from}->{to} (own)"), started, FRAMES);
    println!("    own FIR delay {} output samples", r.delay_samples());
}

fn bench_rubato(from: u32, to: u32) {
    let chunk = (from / 50) as usize;
    let input: Vec<f32> = speechlike(from, chunk * 50)
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect();
    let Ok(mut fft) = Fft::<f32>::new(from as usize, to as usize, chunk, 1, FixedSync::Input)
    else {
        println!("rubato {from}->{to}: cannot build");
        return;
    };
    let mut in_buf = vec![vec![0.0f32; chunk]];
    let mut out_buf = vec![vec![0.0f32; fft.output_frames_max()]];
    let out_len = out_buf[0].len();
    let started = Instant::now();
    for i in 0..FRAMES {
        let at = (i % 50) * chunk;
        in_buf[0].copy_from_slice(&input[at..at + chunk]);
        let (Ok(inp), Ok(mut outp)) = (
            SequentialSliceOfVecs::new(&in_buf, 1, chunk),
            SequentialSliceOfVecs::new_mut(&mut out_buf, 1, out_len),
        ) else {
            return;
        };
        if fft.process_into_buffer(&inp, &mut outp, None).is_err() {
            println!("rubato {from}->{to}: process failed");
            return;
        }
        black_box(&out_buf);
    }
    report(&format!("resample {from}->{to} (rubato)"), started, FRAMES);
    println!("    rubato Fft delay {} output samples", fft.output_delay());
}

fn bench_codec(name: &str, spec: CodecSpec) {
    let (mut enc, mut dec) = match (codec::encoder_for(&spec), codec::decoder_for(&spec)) {
        (Ok(e), Ok(d)) => (e, d),
        (Err(e), _) | (_, Err(e)) => {
            println!("{name}: {e}");
            return;
        }
    };
    let frame = enc.frame_samples();
    let input = speechlike(enc.sample_rate(), frame * 50);
    let mut payloads = Vec::with_capacity(50);
    let mut payload = Vec::new();
    let started = Instant::now();
    for i in 0..FRAMES {
        let at = (i % 50) * frame;
        if enc
            .encode(black_box(&input[at..at + frame]), &mut payload)
            .is_err()
        {
            println!("{name}: encode failed");
            return;
        }
        if payloads.len() < 50 {
            payloads.push(payload.clone());
        }
    }
    report(&format!("{name} encode"), started, FRAMES);
    let mut pcm = Vec::with_capacity(4096);
    let started = Instant::now();
    for i in 0..FRAMES {
        pcm.clear();
        if dec
            .decode(black_box(&payloads[i % payloads.len()]), &mut pcm)
            .is_err()
        {
            println!("{name}: decode failed");
            return;
        }
        black_box(&pcm);
    }
    report(&format!("{name} decode"), started, FRAMES);
    let started = Instant::now();
    for _ in 0..FRAMES {
        pcm.clear();
        dec.conceal(frame, &mut pcm);
        black_box(&pcm);
    }
    report(&format!("{name} conceal"), started, FRAMES);
}

fn main() {
    for (from, to) in [
        (48000, 8000),
        (8000, 48000),
        (8000, 16000),
        (16000, 8000),
        (48000, 16000),
        (16000, 48000),
    ] {
        bench_resampler(from, to);
        bench_rubato(from, to);
    }
    let opus = |clock: u32, channels: u8| CodecSpec {
        kind: CodecKind::Opus,
        payload_type: 111,
        clock_rate: clock,
        channels,
    };
    bench_codec("PCMU", CodecSpec::pcmu());
    bench_codec("PCMA", CodecSpec::pcma());
    bench_codec("Opus 48k", opus(48000, 2));
    bench_codec(
        "G.722",
        CodecSpec {
            kind: CodecKind::G722,
            payload_type: 9,
            clock_rate: 8000,
            channels: 1,
        },
    );
}

//! Decode + resample to 16 kHz + VAD + utterance cutting of one file, no ASR; prints the
//! real-time factor. Used by `scripts/bench-pipeline`.
//!
//! Usage: bench_pipeline FILE [mono|stereo_agent_left] [full|decode-resample]
//!
//! `decode-resample` stops after the 16 kHz conversion: the like-for-like comparison with
//! `ffmpeg -i FILE -ar 16000 -f s16le /dev/null`.
//!
//! With `BENCH_PRINT_UTTERANCES` set, `full` also prints every utterance (channel, start..end
//! ms), so the edges found by two builds can be compared line by line.

use std::path::PathBuf;
use std::time::Instant;

use callscope_transcription::ChannelLayout;
use callscope_transcription::pipeline::{PipelineOptions, run_file_utterances};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: bench_pipeline FILE [mono|stereo_agent_left]");
        std::process::exit(2);
    };
    let layout = match args.next().as_deref() {
        Some("stereo_agent_left") => ChannelLayout::StereoAgentLeft,
        _ => ChannelLayout::Mono,
    };
    let opts = PipelineOptions {
        layout,
        ..Default::default()
    };
    let started = Instant::now();
    if args.next().as_deref() == Some("decode-resample") {
        match decode_resample(&path) {
            Ok((audio_ms, samples)) => {
                let wall = started.elapsed().as_secs_f64();
                let audio = audio_ms as f64 / 1000.0;
                println!(
                    "file={} stage=decode-resample audio_s={audio:.1} samples_16k={samples} wall_s={wall:.3} rtf={:.5}",
                    path.display(),
                    wall / audio.max(1e-9)
                );
                return;
            }
            Err(e) => {
                eprintln!("error: {e} ({})", e.code());
                std::process::exit(1);
            }
        }
    }
    match run_file_utterances(&path, &opts, &mut |_| {}) {
        Ok((info, utterances)) => {
            // Edge-by-edge comparisons between builds: BENCH_PRINT_UTTERANCES=1 lists them.
            if std::env::var_os("BENCH_PRINT_UTTERANCES").is_some() {
                for u in &utterances {
                    println!("utt ch={} {}..{}", u.channel, u.start_ms, u.end_ms);
                }
            }
            let wall = started.elapsed().as_secs_f64();
            let audio = info.duration_ms as f64 / 1000.0;
            println!(
                "file={} container={} codec={} channels={} rate={} audio_s={audio:.1} utterances={} wall_s={wall:.3} rtf={:.5} speed=x{:.0}",
                path.display(),
                info.container,
                info.codec,
                info.channels,
                info.sample_rate,
                utterances.len(),
                wall / audio.max(1e-9),
                audio / wall.max(1e-9)
            );
        }
        Err(e) => {
            eprintln!("error: {e} ({})", e.code());
            std::process::exit(1);
        }
    }
}

/// Decode and resample every channel to 16 kHz, nothing more.
fn decode_resample(path: &std::path::Path) -> callscope_transcription::Result<(u64, u64)> {
    use callscope_transcription::decode::StreamDecoder;
    use callscope_transcription::resample::StreamResampler;
    let mut decoder = StreamDecoder::open(path)?;
    let mut chunk = Vec::new();
    let mut more = decoder.next_chunk(&mut chunk)?;
    let channels = usize::from(decoder.info().channels).max(1);
    let mut resampler = StreamResampler::new(decoder.info().sample_rate, channels)?;
    let mut out: Vec<Vec<f32>> = vec![Vec::new(); channels];
    let mut samples = 0u64;
    while more {
        resampler.push(&chunk, &mut out)?;
        samples += out[0].len() as u64;
        out.iter_mut().for_each(Vec::clear);
        more = decoder.next_chunk(&mut chunk)?;
    }
    resampler.finish(&mut out)?;
    samples += out[0].len() as u64;
    Ok((decoder.decoded_ms(), samples))
}

//! Decode + resample to 16 kHz + VAD + utterance cutting of one file, no ASR; prints the
//! real-time factor. Used by `scripts/bench-pipeline`.
//!
//! Usage: bench_pipeline FILE [mono|stereo_agent_left]

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
    match run_file_utterances(&path, &opts, &mut |_| {}) {
        Ok((info, utterances)) => {
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

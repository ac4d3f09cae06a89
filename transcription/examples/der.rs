//! Diarize a recording (mono path of the pipeline) and score it against an RTTM reference.
//!
//! Usage: der FILE.wav FILE.rttm [COLLAR_S]   (collar default 0.25 s each side, overlap scored)
//!
//! Prints DER, missed speech, false alarm, confusion, the speaker mapping and the timing.
//! With `DER_PRINT_TURNS` set, also prints the hypothesis as RTTM.

use std::path::PathBuf;
use std::time::Instant;

use callscope_transcription::diarize::{DiarizeParams, der};
use callscope_transcription::pipeline::{PipelineOptions, diarize_file};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(audio), Some(rttm)) = (args.first(), args.get(1)) else {
        eprintln!("usage: der FILE.wav FILE.rttm [COLLAR_S]");
        std::process::exit(2);
    };
    let collar: f64 = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(0.25);
    let reference = match std::fs::read_to_string(rttm)
        .map_err(|e| e.to_string())
        .and_then(|t| der::parse_rttm(&t).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {rttm}: {e}");
            std::process::exit(1);
        }
    };
    let opts = PipelineOptions {
        diarize: Some(params_from_env()),
        ..Default::default()
    };
    let started = Instant::now();
    let (info, diarization) = match diarize_file(&PathBuf::from(audio), &opts, &mut |_| {}) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e} ({})", e.code());
            std::process::exit(1);
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let hypothesis = diarization.spans();
    if std::env::var_os("DER_PRINT_TURNS").is_some() {
        print!("{}", der::to_rttm("hyp", &hypothesis));
    }
    let r = der::score(&reference, &hypothesis, collar);
    // With no reference speech (e.g. an empty RTTM for a timing run) shares are meaningless.
    let pct = |x: f64| {
        if r.total_s > 0.0 {
            100.0 * x / r.total_s
        } else {
            f64::NAN
        }
    };
    println!(
        "file={audio} speakers={} DER={:.2}% miss={:.2}% fa={:.2}% confusion={:.2}% scored_s={:.2} collar_s={collar}",
        diarization.speakers(),
        100.0 * r.der(),
        pct(r.missed_s),
        pct(r.false_alarm_s),
        pct(r.confusion_s),
        r.total_s
    );
    println!("mapping={:?}", r.mapping);
    let audio_s = info.duration_ms as f64 / 1000.0;
    println!(
        "audio_s={audio_s:.1} wall_s={wall:.3} rtf={:.5} (decode+VAD+features+diarization)",
        wall / audio_s.max(1e-9)
    );
}

/// `DER_PARAMS="cluster_lambda=2,switch_penalty=40"` overrides defaults (for tuning runs).
fn params_from_env() -> DiarizeParams {
    let mut p = DiarizeParams::default();
    let spec = std::env::var("DER_PARAMS").unwrap_or_default();
    for kv in spec.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let f: f64 = v.parse().unwrap_or(f64::NAN);
        match k {
            "min_speakers" => p.min_speakers = f as usize,
            "max_speakers" => p.max_speakers = f as usize,
            "piece_ms" => p.piece_ms = f as u64,
            "change_lambda" => p.change_lambda = f,
            "cluster_lambda" => p.cluster_lambda = f,
            "energy_margin_db" => p.energy_margin_db = f as f32,
            "resegment_passes" => p.resegment_passes = f as usize,
            "switch_penalty" => p.switch_penalty = f as f32,
            "bridge_gap_ms" => p.bridge_gap_ms = f as u64,
            _ => eprintln!("ignoring unknown parameter {k}"),
        }
    }
    p
}

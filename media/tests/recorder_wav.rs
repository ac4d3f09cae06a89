//! WAV writer and repair: files read back by `hound` (and `sox`), valid while growing, a
//! crash (writer vanishing without finish, or a file cut at arbitrary byte offsets) repaired
//! to whole frames with at most one second lost, and hostile files refused without panic.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use callscope_media::recorder::{
    Channel, RepairError, StreamTime, Timeline, TimelineConfig, WavWriter, WriterConfig,
    WriterError, repair,
};

const RATE: u32 = 8000;

/// `frames` stereo frames: a 440 Hz tone left, a sawtooth right, both deterministic.
fn test_audio(frames: usize) -> Vec<i16> {
    let mut v = Vec::with_capacity(frames * 2);
    for i in 0..frames {
        let t = i as f64 / f64::from(RATE);
        v.push((f64::sin(t * 440.0 * std::f64::consts::TAU) * 12_000.0) as i16);
        v.push(((i % 200) as i16 - 100) * 150);
    }
    v
}

fn read_all(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    let samples = reader
        .samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (spec, samples)
}

/// Writes `audio` in 20 ms chunks with the clock advancing in step, like a live call.
fn write_live(writer: &mut WavWriter, audio: &[i16], t0: Instant) -> Instant {
    let mut now = t0;
    for chunk in audio.chunks(320) {
        now += Duration::from_millis(20);
        writer.write(chunk, now).unwrap();
    }
    now
}

#[test]
fn finished_file_reads_back_exactly_and_part_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.wav");
    let t0 = Instant::now();
    let mut w = WavWriter::create(&path, WriterConfig::new(RATE), t0).unwrap();
    assert!(w.part_path().ends_with("call.wav.part"));
    let audio = test_audio(3 * RATE as usize + 17);
    let now = write_live(&mut w, &audio, t0);
    let done = w.finish(now).unwrap();
    assert_eq!(done.path, path);
    assert_eq!(done.frames, audio.len() as u64 / 2);
    assert!(!dir.path().join("call.wav.part").exists());
    let (spec, samples) = read_all(&path);
    assert_eq!(spec.channels, 2);
    assert_eq!(spec.sample_rate, RATE);
    assert_eq!(spec.bits_per_sample, 16);
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    assert_eq!(samples, audio);
}

#[test]
fn part_file_is_valid_while_growing_and_never_more_than_a_second_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.wav");
    let t0 = Instant::now();
    let mut w = WavWriter::create(&path, WriterConfig::new(RATE), t0).unwrap();
    let audio = test_audio(10 * RATE as usize);
    let mut now = t0;
    for (i, chunk) in audio.chunks(320).enumerate() {
        now += Duration::from_millis(20);
        w.write(chunk, now).unwrap();
        if i % 37 == 0 {
            // Any reader, at any moment, sees a well-formed file holding a prefix of the audio.
            let (spec, samples) = read_all(w.part_path());
            assert_eq!(spec.channels, 2);
            let written = (i + 1) * 160;
            let readable = samples.len() / 2;
            assert!(
                readable + RATE as usize >= written,
                "{readable} readable of {written}"
            );
            assert_eq!(samples[..], audio[..samples.len()]);
        }
    }
    w.finish(now).unwrap();
}

#[test]
fn writer_vanishing_without_finish_is_repaired_with_at_most_a_second_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.wav");
    let t0 = Instant::now();
    let mut w = WavWriter::create(&path, WriterConfig::new(RATE), t0).unwrap();
    let audio = test_audio(7 * RATE as usize + 123);
    write_live(&mut w, &audio, t0);
    let part = w.part_path().to_path_buf();
    // kill -9: no finish, no Drop, whatever was buffered in memory is gone.
    std::mem::forget(w);
    let report = repair(&part).unwrap();
    assert_eq!(report.path, path);
    assert!(!part.exists());
    let written = audio.len() as u64 / 2;
    assert!(
        report.frames + u64::from(RATE) >= written,
        "{} of {written}",
        report.frames
    );
    assert_eq!(
        report.duration,
        Duration::from_secs_f64(report.frames as f64 / f64::from(RATE))
    );
    let (_, samples) = read_all(&path);
    assert_eq!(samples.len() as u64, report.frames * 2);
    assert_eq!(samples[..], audio[..samples.len()]);
}

#[test]
fn writer_dropped_without_finish_keeps_everything_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropped.wav");
    let t0 = Instant::now();
    let mut w = WavWriter::create(&path, WriterConfig::new(RATE), t0).unwrap();
    let audio = test_audio(2 * RATE as usize + 5);
    write_live(&mut w, &audio, t0);
    let part = w.part_path().to_path_buf();
    drop(w);
    let report = repair(&part).unwrap();
    assert_eq!(report.frames, audio.len() as u64 / 2);
    assert_eq!(read_all(&path).1, audio);
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// A finished recording's bytes, to cut at arbitrary places.
fn finished_bytes(dir: &Path, audio: &[i16]) -> Vec<u8> {
    let path = dir.join("source.wav");
    let t0 = Instant::now();
    let mut w = WavWriter::create(&path, WriterConfig::new(RATE), t0).unwrap();
    write_live(&mut w, audio, t0);
    w.finish(t0).unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn files_cut_at_random_byte_offsets_repair_to_every_whole_frame_present() {
    let dir = tempfile::tempdir().unwrap();
    let audio = test_audio(3 * RATE as usize);
    let bytes = finished_bytes(dir.path(), &audio);
    let mut rng = Lcg(42);
    let mut offsets: Vec<usize> = vec![
        0,
        1,
        43,
        44,
        45,
        46,
        47,
        48,
        49,
        bytes.len() - 1,
        bytes.len(),
    ];
    offsets.extend((0..60).map(|_| rng.next() as usize % bytes.len()));
    for (i, &cut) in offsets.iter().enumerate() {
        let final_path = dir.path().join(format!("cut{i}.wav"));
        let part: PathBuf = dir.path().join(format!("cut{i}.wav.part"));
        std::fs::write(&part, &bytes[..cut]).unwrap();
        let result = repair(&part);
        if cut < 44 {
            assert!(
                matches!(result, Err(RepairError::NoHeader(_))),
                "cut {cut}: {result:?}"
            );
            continue;
        }
        let report = result.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let frames = (cut - 44) / 4;
        assert_eq!(report.frames, frames as u64, "cut {cut}");
        assert_eq!(report.truncated_bytes, ((cut - 44) % 4) as u64);
        assert_eq!(
            std::fs::metadata(&final_path).unwrap().len(),
            44 + frames as u64 * 4
        );
        let (spec, samples) = read_all(&final_path);
        assert_eq!((spec.channels, spec.sample_rate), (2, RATE));
        assert_eq!(samples[..], audio[..frames * 2], "cut {cut}");
    }
}

#[test]
fn sox_reads_a_repaired_recording_with_the_reported_duration() {
    let dir = tempfile::tempdir().unwrap();
    let audio = test_audio(2 * RATE as usize);
    let bytes = finished_bytes(dir.path(), &audio);
    let part = dir.path().join("s.wav.part");
    std::fs::write(&part, &bytes[..bytes.len() - 4001]).unwrap();
    let report = repair(&part).unwrap();
    let out = std::process::Command::new("soxi")
        .arg("-s")
        .arg(&report.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(samples, report.frames);
    assert_eq!(report.frames, (2 * RATE as u64 * 4 - 4001) / 4);
}

#[test]
fn hostile_files_get_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Lcg(7);
    for i in 0..50u32 {
        let part = dir.path().join(format!("junk{i}.wav.part"));
        let len = rng.next() as usize % 3000;
        let mut junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i.is_multiple_of(2) && junk.len() >= 44 {
            // Right magic words, nonsense fields.
            junk[..4].copy_from_slice(b"RIFF");
            junk[8..16].copy_from_slice(b"WAVEfmt ");
            junk[36..40].copy_from_slice(b"data");
        }
        std::fs::write(&part, &junk).unwrap();
        let result = repair(&part);
        assert!(
            matches!(
                result,
                Err(RepairError::NoHeader(_) | RepairError::NotARecording(_))
            ),
            "junk {i}: {result:?}"
        );
    }
    assert!(matches!(
        repair(&dir.path().join("missing.wav.part")),
        Err(RepairError::Io { .. })
    ));
}

#[test]
fn repair_never_overwrites_an_existing_recording() {
    let dir = tempfile::tempdir().unwrap();
    let audio = test_audio(RATE as usize);
    let bytes = finished_bytes(dir.path(), &audio);
    std::fs::write(dir.path().join("x.wav"), b"keep me").unwrap();
    std::fs::write(dir.path().join("x.wav.part"), &bytes).unwrap();
    assert!(matches!(
        repair(&dir.path().join("x.wav.part")),
        Err(RepairError::FinalExists { .. })
    ));
    assert_eq!(std::fs::read(dir.path().join("x.wav")).unwrap(), b"keep me");
}

#[test]
fn writer_refuses_partial_frames_and_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wav");
    let t0 = Instant::now();
    let mut w = WavWriter::create(&path, WriterConfig::new(RATE), t0).unwrap();
    assert!(matches!(
        w.write(&[1, 2, 3], t0),
        Err(WriterError::PartialFrame(3))
    ));
    assert!(matches!(
        WavWriter::create(&path, WriterConfig::new(RATE), t0),
        Err(WriterError::AlreadyExists(_))
    ));
    w.finish(t0).unwrap();
    assert!(matches!(
        WavWriter::create(&path, WriterConfig::new(RATE), t0),
        Err(WriterError::AlreadyExists(_))
    ));
    assert!(matches!(
        WavWriter::create(dir.path().join("z.wav"), WriterConfig::new(0), t0),
        Err(WriterError::ZeroRate)
    ));
}

#[test]
fn timeline_into_writer_gives_a_recording_as_long_as_the_call() {
    // 5 s call, 48 kHz, 10 % of customer packets lost, agent silent for the first second:
    // the file is exactly 5 s, both channels in place.
    let rate = 48_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.wav");
    let t0 = Instant::now();
    let mut tl = Timeline::new(TimelineConfig::new(rate), t0).unwrap();
    let mut w = WavWriter::create(&path, WriterConfig::new(rate), t0).unwrap();
    let mut frames = Vec::new();
    let pkt = 960;
    for k in 0..250u32 {
        let now = t0 + Duration::from_millis(20 * (u64::from(k) + 1));
        if k >= 50 {
            let ts = StreamTime::Rtp {
                timestamp: k * 960,
                clock_rate: 48_000,
            };
            tl.push(Channel::Agent, ts, &vec![1000; pkt], now).unwrap();
        }
        if k % 10 != 3 {
            let ts = StreamTime::Rtp {
                timestamp: 12345 + k * 960,
                clock_rate: 48_000,
            };
            tl.push(Channel::Customer, ts, &vec![-1000; pkt], now)
                .unwrap();
        }
        frames.clear();
        tl.advance(now, &mut frames);
        w.write(&frames, now).unwrap();
    }
    let end = t0 + Duration::from_secs(5);
    frames.clear();
    tl.finish(end, &mut frames);
    w.write(&frames, end).unwrap();
    let done = w.finish(end).unwrap();
    assert_eq!(done.duration, Duration::from_secs(5));
    let (_, samples) = read_all(&path);
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert!(left[..48_000].iter().all(|&s| s == 0));
    assert!(left[48_000..].iter().all(|&s| s == 1000));
    for (k, chunk) in right.chunks(pkt).enumerate() {
        let want = if k % 10 == 3 { 0 } else { -1000 };
        assert!(chunk.iter().all(|&s| s == want), "customer packet {k}");
    }
}

#[test]
fn a_file_without_the_part_suffix_is_repaired_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let audio = test_audio(RATE as usize);
    let bytes = finished_bytes(dir.path(), &audio);
    let path = dir.path().join("inplace.wav");
    let mut cut = bytes[..bytes.len() - 402].to_vec();
    // A header still announcing zero samples, as right after `create`.
    cut[4..8].copy_from_slice(&36u32.to_le_bytes());
    cut[40..44].copy_from_slice(&0u32.to_le_bytes());
    std::fs::write(&path, &cut).unwrap();
    let report = repair(&path).unwrap();
    assert_eq!(report.path, path);
    assert_eq!(report.frames, (RATE as u64 * 4 - 402) / 4);
    assert_eq!(read_all(&path).1[..], audio[..report.frames as usize * 2]);
}

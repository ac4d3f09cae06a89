//! The Opus-in-Ogg recorder against an independent decoder (ffmpeg): the file it finishes
//! decodes to exactly the audio it was given (length to the sample, each channel the right
//! signal), and a file cut off mid-write is repaired into a valid stream holding what was
//! flushed.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use callscope_media::recorder::{OggOpusWriter, WriterConfig, ogg, repair};

mod common;

const RATE: u32 = 8000;

/// Left: 440 Hz, right: a 300→1200 Hz chirp (different, non-periodic signals).
fn source(seconds: f64) -> (Vec<f32>, Vec<f32>) {
    let n = (seconds * f64::from(RATE)) as usize;
    let mut left = Vec::with_capacity(n);
    let mut right = Vec::with_capacity(n);
    let mut phase = 0.0f64;
    for i in 0..n {
        let t = i as f64 / f64::from(RATE);
        left.push((0.3 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as f32);
        let f = 300.0 + 900.0 * (t / seconds);
        phase += 2.0 * std::f64::consts::PI * f / f64::from(RATE);
        right.push((0.3 * phase.sin()) as f32);
    }
    (left, right)
}

fn interleave(left: &[f32], right: &[f32]) -> Vec<i16> {
    left.iter()
        .zip(right)
        .flat_map(|(l, r)| [(*l * 32767.0) as i16, (*r * 32767.0) as i16])
        .collect()
}

/// ffmpeg's decode as (left, right) at 8 kHz; panics with ffmpeg's stderr on any error.
fn ffmpeg_decode(path: &Path) -> (Vec<f32>, Vec<f32>) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-ar", "8000", "-ac", "2", "-f", "s16le", "-"])
        .output()
        .expect("run ffmpeg");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffmpeg: {stderr}"
    );
    let samples: Vec<f32> = out
        .stdout
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    let left = samples.iter().step_by(2).copied().collect();
    let right = samples.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

/// Best normalised correlation of `b` against `a` over lags in ±`max_lag`.
fn best_xcorr(a: &[f32], b: &[f32], max_lag: isize) -> f64 {
    let mut best = f64::MIN;
    for lag in -max_lag..=max_lag {
        let (mut dot, mut ea, mut eb) = (0.0f64, 0.0f64, 0.0f64);
        for (i, &x) in a.iter().enumerate() {
            let j = i as isize + lag;
            if j < 0 || j as usize >= b.len() {
                continue;
            }
            let y = b[j as usize];
            dot += f64::from(x) * f64::from(y);
            ea += f64::from(x) * f64::from(x);
            eb += f64::from(y) * f64::from(y);
        }
        if ea > 0.0 && eb > 0.0 {
            best = best.max(dot / (ea * eb).sqrt());
        }
    }
    best
}

#[test]
fn finished_file_decodes_to_the_same_length_and_signals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.opus");
    let (left, right) = source(5.0);
    let frames = interleave(&left, &right);
    let now = Instant::now();
    let mut writer = OggOpusWriter::create(&path, WriterConfig::new(RATE), now).unwrap();
    // Uneven chunks, as the engine hands them over.
    for (i, chunk) in frames.chunks(2 * 333).enumerate() {
        writer
            .write(chunk, now + Duration::from_millis(40 * i as u64))
            .unwrap();
    }
    let finished = writer.finish(now + Duration::from_secs(6)).unwrap();
    assert_eq!(finished.frames, left.len() as u64);
    assert!(!dir.path().join("call.opus.part").exists());
    let size = std::fs::metadata(&path).unwrap().len();
    // ≈ 48 kbit/s for 5 s (30 kB) plus headers: a fraction of the 160 kB a WAV would take.
    assert!(size < 40_000, "{size} bytes");

    let (dl, dr) = ffmpeg_decode(&path);
    // The granule position trims the encoder's padding: the exact input length comes back.
    assert_eq!(dl.len(), left.len(), "decoded length");
    // Pre-skip removes the encoder delay: the signals line up within a couple of samples.
    let l = best_xcorr(&left[800..32000], &dl[800..32000], 4);
    let r = best_xcorr(&right[800..32000], &dr[800..32000], 4);
    let swapped = best_xcorr(&left[800..32000], &dr[800..32000], 4);
    eprintln!("xcorr left {l:.4}, right {r:.4}, swapped {swapped:.4}, {size} bytes");
    assert!(l > 0.95 && r > 0.95, "left {l} right {r}");
    assert!(swapped < 0.3, "channels swapped? {swapped}");
}

/// Records `seconds` of `source` as `<dir>/<name>` in 200 ms chunks at 200 ms intervals
/// (flushed every 500 ms), then crashes: no finish, no drop-time flush. The `.part` left
/// behind, and the source's two channels.
fn crash_while_recording(
    dir: &Path,
    name: &str,
    seconds: f64,
) -> (std::path::PathBuf, Vec<f32>, Vec<f32>) {
    let path = dir.join(name);
    let (left, right) = source(seconds);
    let frames = interleave(&left, &right);
    let now = Instant::now();
    let mut config = WriterConfig::new(RATE);
    config.flush_interval = Duration::from_millis(500);
    let mut writer = OggOpusWriter::create(&path, config, now).unwrap();
    for (i, chunk) in frames.chunks(2 * 1600).enumerate() {
        writer
            .write(chunk, now + Duration::from_millis(200 * (i as u64 + 1)))
            .unwrap();
    }
    std::mem::forget(writer);
    (dir.join(format!("{name}.part")), left, right)
}

#[test]
fn cut_off_file_is_repaired_to_what_was_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.opus");
    let (part, left, _) = crash_while_recording(dir.path(), "cut.opus", 3.0);
    // Half a page of garbage, as if the process died mid-write.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&part)
        .unwrap();
    f.write_all(b"OggS\0\0garbage-of-a-page-cut-short").unwrap();
    drop(f);

    let report = repair(&part).unwrap();
    assert_eq!(report.path, path);
    assert!(path.exists() && !part.exists());
    assert_eq!((report.channels, report.sample_rate), (2, RATE));
    assert!(report.truncated_bytes >= 20, "{report:?}");
    let kept = report.duration.as_secs_f64();
    // Flushed at 0.6, 1.2 (…) s of a 3 s write: at least 2.4 s, at most what was written.
    assert!((2.3..=3.0).contains(&kept), "{report:?}");
    let (dl, _) = ffmpeg_decode(&path);
    let decoded = dl.len() as f64 / f64::from(RATE);
    assert!(
        (decoded - kept).abs() < 0.03,
        "ffmpeg {decoded} s vs report {kept} s"
    );
    let l = best_xcorr(&left[800..16000], &dl[800..16000], 4);
    assert!(l > 0.95, "{l}");
}

#[test]
fn a_rate_opus_cannot_take_is_an_error_without_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.opus");
    assert!(OggOpusWriter::create(&path, WriterConfig::new(44_100), Instant::now()).is_err());
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn garbage_named_opus_is_refused_not_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("x.opus.part");
    std::fs::write(&part, b"not an ogg file at all").unwrap();
    assert!(repair(&part).is_err());
    assert!(part.exists(), "a file we cannot read is left as it was");
}

/// A `.part` as a crash leaves it: 2 s written, flushed every 500 ms, the writer gone.
fn crashed_part(dir: &Path) -> Vec<u8> {
    let (part, _, _) = crash_while_recording(dir, "base.opus", 2.0);
    let bytes = std::fs::read(&part).unwrap();
    std::fs::remove_file(&part).unwrap();
    bytes
}

/// Every page of an Ogg file, in order, up to the first bytes that are not one.
fn pages(bytes: &[u8]) -> Vec<ogg::PageInfo> {
    let mut pages = Vec::new();
    let mut offset = 0;
    while let Some(page) = ogg::read_page(bytes, offset) {
        offset += page.len;
        pages.push(page);
    }
    pages
}

/// Gives `page` another granule position, with a CRC that matches: a page only a writer
/// that is not ours (or a hostile one) makes.
fn set_granule(bytes: &mut [u8], page: &ogg::PageInfo, granule: u64) {
    let at = page.offset;
    bytes[at + 6..at + 14].copy_from_slice(&granule.to_le_bytes());
    bytes[at + 22..at + 26].fill(0);
    let crc = ogg::crc32(&bytes[at..at + page.len]);
    bytes[at + 22..at + 26].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn hostile_parts_are_repaired_or_refused_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let base = crashed_part(dir.path());
    let base_pages = pages(&base);
    assert!(base_pages.len() >= 4, "head, tags and audio pages");
    let whole = {
        let part = dir.path().join("whole.opus.part");
        std::fs::write(&part, &base).unwrap();
        repair(&part).unwrap().duration
    };
    assert!(whole >= Duration::from_millis(1500), "{whole:?}");

    let mut rng = common::Rng(0x9e37_79b9_7f4a_7c15);
    let (mut repaired, mut refused) = (0, 0);
    for case in 0..400 {
        let mut bytes = base.clone();
        match case % 4 {
            // Cut anywhere, as a crash mid-write does.
            0 => bytes.truncate(rng.below(base.len() + 1)),
            // Bit rot; a quarter of it in the OpusHead page, which nothing can stand in for.
            1 => {
                let span = if rng.below(4) == 0 {
                    base_pages[0].len
                } else {
                    bytes.len()
                };
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(span);
                    bytes[i] ^= 1 << rng.below(8);
                }
            }
            // A page whose CRC holds but whose granule does not fit the stream.
            2 => {
                let page = &base_pages[rng.below(base_pages.len())];
                let granule = [
                    u64::MAX,
                    rng.next_u64(),
                    page.granule.wrapping_add(1_000_000),
                    page.granule.wrapping_sub(960),
                ][rng.below(4)];
                set_granule(&mut bytes, page, granule);
            }
            // Garbage spliced in.
            _ => {
                let at = rng.below(bytes.len() + 1);
                let garbage: Vec<u8> = (0..rng.below(300)).map(|_| rng.next_u64() as u8).collect();
                bytes.splice(at..at, garbage);
            }
        }
        let part = dir.path().join(format!("case{case}.opus.part"));
        std::fs::write(&part, &bytes).unwrap();
        match repair(&part) {
            Ok(report) => {
                repaired += 1;
                assert!(report.path.exists() && !part.exists(), "case {case}");
                assert!(
                    report.duration <= whole + Duration::from_millis(20),
                    "case {case}: {report:?} from a {whole:?} recording"
                );
                // Repair only cuts, and marks the last page it kept as the end (writing the
                // OpusTags page again when only the OpusHead page survived).
                let kept = std::fs::read(&report.path).unwrap();
                let kept_pages = pages(&kept);
                assert!(kept_pages.len() >= 2, "case {case}: head and tags");
                let last = kept_pages.last().unwrap();
                assert_eq!(last.offset + last.len, kept.len(), "case {case}");
                assert_ne!(last.flags & 0x04, 0, "case {case}: end of stream marked");
                let changed = |i: usize| {
                    i == last.offset + 5 || (last.offset + 22..last.offset + 26).contains(&i)
                };
                let written = if kept_pages.len() == 2 && !bytes.starts_with(&kept) {
                    kept_pages[0].len // the OpusTags page was written anew
                } else {
                    kept.len()
                };
                assert!(
                    kept[..written]
                        .iter()
                        .zip(&bytes)
                        .enumerate()
                        .all(|(i, (a, b))| a == b || changed(i)),
                    "case {case}: repair changed more than the last page's flag"
                );
            }
            Err(_) => {
                refused += 1;
                assert_eq!(
                    std::fs::read(&part).unwrap(),
                    bytes,
                    "case {case}: a refused file is left as it was"
                );
            }
        }
    }
    // Both outcomes were exercised, so neither branch's checks are vacuous.
    assert!(
        repaired > 100 && refused > 10,
        "{repaired} repaired, {refused} refused"
    );
}

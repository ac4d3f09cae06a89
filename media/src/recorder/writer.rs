//! Crash-safe two-channel WAV writer.
//!
//! Choice: the header is kept TRUE at every flush rather than left as a placeholder for repair
//! to fix. The file is created as `<name>.part` with a header announcing zero samples; each
//! flush appends the buffered frames and only then rewrites the RIFF and data sizes, so at any
//! moment the header claims at most what is on disk and any player opens the file. A crash
//! between the two writes leaves a few trailing bytes the header does not count yet (still a
//! valid file); `repair` claims them. At most one flush interval (1 s by default) of audio
//! is lost on a process crash.
//!
//! Flushes hand the data to the OS (which survives the process being killed); `fsync` on every
//! flush is optional (`fsync_each_flush`) because at hundreds of concurrent calls it is the
//! dominant cost, and only power loss needs it. `finish` always fsyncs the file, renames it
//! atomically to its final name and fsyncs the directory so the rename itself is durable.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::wav::{DATA_SIZE_OFFSET, HEADER_LEN, RIFF_SIZE_OFFSET, WavFormat};

/// The suffix of a recording still being written (or cut off by a crash).
pub const PART_SUFFIX: &str = ".part";

/// Writer settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterConfig {
    pub sample_rate: u32,
    /// Longest time buffered frames may wait before reaching the file.
    pub flush_interval: Duration,
    /// fsync the file at every flush, not only at `finish`.
    pub fsync_each_flush: bool,
}

impl WriterConfig {
    pub fn new(sample_rate: u32) -> Self {
        WriterConfig {
            sample_rate,
            flush_interval: Duration::from_secs(1),
            fsync_each_flush: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("recording {0} already exists")]
    AlreadyExists(PathBuf),
    #[error("{0} frames is not whole stereo frames (odd number of samples)")]
    PartialFrame(usize),
    #[error("recording would exceed the WAV size limit of 4 GiB")]
    TooLarge,
    #[error("sample rate must be non-zero")]
    ZeroRate,
    #[error("i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedRecording {
    pub path: PathBuf,
    pub frames: u64,
    pub duration: Duration,
}

/// Appends interleaved left/right 16-bit frames to `<final>.part`, keeping the file valid.
#[derive(Debug)]
pub struct WavWriter {
    file: Option<File>,
    part_path: PathBuf,
    final_path: PathBuf,
    format: WavFormat,
    config: WriterConfig,
    /// Encoded samples not yet written.
    buffer: Vec<u8>,
    /// Sample bytes already in the file (after the header).
    data_len: u64,
    last_flush: Instant,
}

/// Largest data chunk the 32-bit size fields can describe, in whole stereo frames.
const MAX_DATA_LEN: u64 = (u32::MAX as u64 - 36) / 4 * 4;

impl WavWriter {
    /// Creates `<final_path>.part` with a header announcing no samples. Refuses to overwrite
    /// an existing recording or part file.
    pub fn create(
        final_path: impl Into<PathBuf>,
        config: WriterConfig,
        now: Instant,
    ) -> Result<Self, WriterError> {
        let final_path = final_path.into();
        let (mut file, part_path) = create_part_file(&final_path, &config)?;
        let io = |source| WriterError::Io {
            path: part_path.clone(),
            source,
        };
        let format = WavFormat {
            channels: 2,
            sample_rate: config.sample_rate,
        };
        file.write_all(&format.header(0)).map_err(io)?;
        Ok(WavWriter {
            file: Some(file),
            part_path,
            final_path,
            format,
            config,
            buffer: Vec::new(),
            data_len: 0,
            last_flush: now,
        })
    }

    pub fn part_path(&self) -> &Path {
        &self.part_path
    }

    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Frames accepted so far (written or buffered).
    pub fn frames(&self) -> u64 {
        (self.data_len + self.buffer.len() as u64) / 4
    }

    /// Frames already in the file.
    pub fn flushed_frames(&self) -> u64 {
        self.data_len / 4
    }

    /// Buffers interleaved left/right samples; flushes if the flush interval has passed or a
    /// flush interval's worth of audio is waiting.
    pub fn write(&mut self, interleaved: &[i16], now: Instant) -> Result<(), WriterError> {
        if !interleaved.len().is_multiple_of(2) {
            return Err(WriterError::PartialFrame(interleaved.len()));
        }
        let added = interleaved.len() as u64 * 2;
        if self.data_len + self.buffer.len() as u64 + added > MAX_DATA_LEN {
            return Err(WriterError::TooLarge);
        }
        // Sized once, then filled in place: an `extend_from_slice` of two bytes per sample
        // was a third of the recording thread's instructions.
        let start = self.buffer.len();
        self.buffer.resize(start + interleaved.len() * 2, 0);
        for (bytes, s) in self.buffer[start..].chunks_exact_mut(2).zip(interleaved) {
            bytes.copy_from_slice(&s.to_le_bytes());
        }
        let interval_bytes =
            self.config.flush_interval.as_secs_f64() * f64::from(self.config.sample_rate) * 4.0;
        if now.saturating_duration_since(self.last_flush) >= self.config.flush_interval
            || self.buffer.len() as f64 >= interval_bytes.max(4.0)
        {
            self.flush(now)?;
        }
        Ok(())
    }

    /// Appends the buffered frames, then rewrites the header sizes to cover them.
    pub fn flush(&mut self, now: Instant) -> Result<(), WriterError> {
        self.last_flush = now;
        let part_path = self.part_path.clone();
        let io = |source| WriterError::Io {
            path: part_path.clone(),
            source,
        };
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        if !self.buffer.is_empty() {
            file.seek(SeekFrom::Start(HEADER_LEN + self.data_len))
                .map_err(io)?;
            file.write_all(&self.buffer).map_err(io)?;
            self.data_len += self.buffer.len() as u64;
            self.buffer.clear();
            // Sizes only after the data: the header never claims bytes that are not there.
            write_sizes(file, self.data_len).map_err(io)?;
        }
        if self.config.fsync_each_flush {
            file.sync_data().map_err(io)?;
        }
        Ok(())
    }

    /// Final flush, fsync, atomic rename to the final name, fsync of the directory.
    pub fn finish(mut self, now: Instant) -> Result<FinishedRecording, WriterError> {
        self.flush(now)?;
        if let Some(file) = self.file.take() {
            commit_part(file, &self.part_path, &self.final_path)
                .map_err(|(path, source)| WriterError::Io { path, source })?;
        }
        let frames = self.data_len / 4;
        Ok(FinishedRecording {
            path: self.final_path.clone(),
            frames,
            duration: frames_duration(frames, self.format.sample_rate),
        })
    }
}

impl Drop for WavWriter {
    /// A writer dropped without `finish` (a panic unwinding, a task cancelled) still gets its
    /// buffered audio into the `.part` file; the startup scan repairs and recovers it.
    fn drop(&mut self) {
        if self.file.is_some() {
            let now = self.last_flush;
            if let Err(e) = self.flush(now) {
                tracing::warn!(path = %self.part_path.display(), error = %e, "recording flush on drop failed");
            }
        }
    }
}

/// Rewrites the RIFF and data sizes for `data_len` bytes of samples.
pub(crate) fn write_sizes(file: &mut File, data_len: u64) -> std::io::Result<()> {
    let data = u32::try_from(data_len).unwrap_or(u32::MAX - 36);
    file.seek(SeekFrom::Start(RIFF_SIZE_OFFSET))?;
    file.write_all(&data.saturating_add(36).to_le_bytes())?;
    file.seek(SeekFrom::Start(DATA_SIZE_OFFSET))?;
    file.write_all(&data.to_le_bytes())?;
    Ok(())
}

/// Checks the config and creates `<final>.part` for writing, refusing to overwrite either
/// the final file or a part file (a crash's leftovers are for repair, not for reuse).
pub(crate) fn create_part_file(
    final_path: &Path,
    config: &WriterConfig,
) -> Result<(File, PathBuf), WriterError> {
    if config.sample_rate == 0 {
        return Err(WriterError::ZeroRate);
    }
    if final_path.exists() {
        return Err(WriterError::AlreadyExists(final_path.to_path_buf()));
    }
    let part_path = part_path_for(final_path);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part_path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                WriterError::AlreadyExists(part_path.clone())
            } else {
                WriterError::Io {
                    path: part_path.clone(),
                    source: e,
                }
            }
        })?;
    Ok((file, part_path))
}

/// `<final>.part`.
pub fn part_path_for(final_path: &Path) -> PathBuf {
    let mut name = final_path.as_os_str().to_owned();
    name.push(PART_SUFFIX);
    PathBuf::from(name)
}

pub(crate) fn frames_duration(frames: u64, rate: u32) -> Duration {
    let rate = u64::from(rate.max(1));
    Duration::from_secs(frames / rate)
        + Duration::from_nanos((frames % rate) * 1_000_000_000 / rate)
}

/// Makes a finished `.part` file the recording: fsync it, rename it atomically to its final
/// name, fsync the directory so the rename survives power loss. On failure, the path the
/// failed step was about.
pub(crate) fn commit_part(
    file: File,
    part_path: &Path,
    final_path: &Path,
) -> Result<(), (PathBuf, std::io::Error)> {
    file.sync_all().map_err(|e| (part_path.to_path_buf(), e))?;
    drop(file);
    std::fs::rename(part_path, final_path).map_err(|e| (part_path.to_path_buf(), e))?;
    sync_parent_dir(final_path).map_err(|e| (final_path.to_path_buf(), e))
}

/// fsync the directory holding `path`, so a rename into it survives power loss.
pub(crate) fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

//! Repair of a recording cut off mid-write (the `.part` file a crash leaves behind). WAV is
//! handled here; Opus in Ogg by `ogg_opus::repair_ogg_opus`, chosen by the file name.
//!
//! Everything after the 44-byte header is taken as audio, cut down to whole frames (a crash
//! can stop a write mid-frame), the header sizes are set to match, the file is fsynced and
//! renamed to its final name. The result says how long the recovered audio is, for the
//! startup scan to mark the call `recovered`.

use std::fs::OpenOptions;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::wav::{HEADER_LEN, WavFormat};
use super::writer::{PART_SUFFIX, frames_duration, sync_parent_dir, write_sizes};

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("{0} ends before the end of its WAV header: no audio to recover")]
    NoHeader(PathBuf),
    #[error("{0} does not start with a PCM 16-bit WAV header written by the recorder")]
    NotARecording(PathBuf),
    #[error("cannot rename {from} to {to}: a file of that name exists")]
    FinalExists { from: PathBuf, to: PathBuf },
    #[error("i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What `repair` recovered.
#[derive(Debug, Clone, PartialEq)]
pub struct RepairReport {
    /// Where the repaired file now is (the `.part` suffix removed).
    pub path: PathBuf,
    pub channels: u16,
    pub sample_rate: u32,
    pub frames: u64,
    pub duration: Duration,
    /// Bytes of a partial last frame (or beyond the 4 GiB limit) that were cut off.
    pub truncated_bytes: u64,
}

/// Repairs the recording at `path` (normally `*.part`; a file without the suffix is repaired
/// in place). Never overwrites an existing file of the final name.
pub fn repair(path: &Path) -> Result<RepairReport, RepairError> {
    let io = |source| RepairError::Io {
        path: path.to_path_buf(),
        source,
    };
    let final_path = final_path_for(path);
    if final_path != path && final_path.exists() {
        return Err(RepairError::FinalExists {
            from: path.to_path_buf(),
            to: final_path,
        });
    }
    if is_ogg_opus(&final_path) {
        return super::ogg_opus::repair_ogg_opus(path, &final_path);
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let mut header = Vec::with_capacity(HEADER_LEN as usize);
    (&mut file)
        .take(HEADER_LEN)
        .read_to_end(&mut header)
        .map_err(io)?;
    if (header.len() as u64) < HEADER_LEN {
        return Err(RepairError::NoHeader(path.to_path_buf()));
    }
    let format =
        WavFormat::parse(&header).ok_or_else(|| RepairError::NotARecording(path.to_path_buf()))?;
    let block = u64::from(format.block_align());
    let len = file.metadata().map_err(io)?.len();
    let available = len.saturating_sub(HEADER_LEN);
    let max_data = (u64::from(u32::MAX) - 36) / block * block;
    let data_len = (available - available % block).min(max_data);
    if HEADER_LEN + data_len != len {
        file.set_len(HEADER_LEN + data_len).map_err(io)?;
    }
    write_sizes(&mut file, data_len).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    if final_path != path {
        std::fs::rename(path, &final_path).map_err(io)?;
        sync_parent_dir(&final_path).map_err(io)?;
    }
    let frames = data_len / block;
    Ok(RepairReport {
        path: final_path,
        channels: format.channels,
        sample_rate: format.sample_rate,
        frames,
        duration: frames_duration(frames, format.sample_rate),
        truncated_bytes: available - data_len,
    })
}

/// Recordings named `*.opus` or `*.ogg` are Opus in Ogg; everything else is WAV.
pub fn is_ogg_opus(final_path: &Path) -> bool {
    final_path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("opus") || e.eq_ignore_ascii_case("ogg"))
}

fn final_path_for(path: &Path) -> PathBuf {
    // `with_extension` works on the raw file name, so non-UTF-8 names are handled too.
    if path
        .extension()
        .is_some_and(|e| e == PART_SUFFIX.trim_start_matches('.'))
    {
        path.with_extension("")
    } else {
        path.to_path_buf()
    }
}

//! The canonical 44-byte header of a PCM 16-bit WAV file, written and read back.
//!
//! The recorder only ever writes this layout (RIFF, `fmt ` of 16 bytes, then `data` to the
//! end of the file), which is what lets the writer patch the two size fields in place and
//! lets `repair` trust that everything after byte 44 is audio.

/// Bytes before the first sample.
pub const HEADER_LEN: u64 = 44;
/// Byte offset of the RIFF chunk size (file length − 8).
pub const RIFF_SIZE_OFFSET: u64 = 4;
/// Byte offset of the data chunk size.
pub const DATA_SIZE_OFFSET: u64 = 40;
pub const BITS_PER_SAMPLE: u16 = 16;

/// Format of a PCM 16-bit WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    pub channels: u16,
    pub sample_rate: u32,
}

impl WavFormat {
    /// Bytes per frame (one sample on every channel).
    pub fn block_align(&self) -> u16 {
        self.channels.saturating_mul(BITS_PER_SAMPLE / 8)
    }

    /// The header for `data_len` bytes of samples (sizes saturate at the format's 4 GiB cap;
    /// the writer refuses to grow past it).
    pub fn header(&self, data_len: u32) -> [u8; HEADER_LEN as usize] {
        let mut h = [0u8; HEADER_LEN as usize];
        let byte_rate = self
            .sample_rate
            .saturating_mul(u32::from(self.block_align()));
        let fields: [&[u8]; 13] = [
            b"RIFF",
            &data_len.saturating_add(36).to_le_bytes(),
            b"WAVE",
            b"fmt ",
            &16u32.to_le_bytes(),
            &1u16.to_le_bytes(), // PCM
            &self.channels.to_le_bytes(),
            &self.sample_rate.to_le_bytes(),
            &byte_rate.to_le_bytes(),
            &self.block_align().to_le_bytes(),
            &BITS_PER_SAMPLE.to_le_bytes(),
            b"data",
            &data_len.to_le_bytes(),
        ];
        let mut at = 0;
        for field in fields {
            if let Some(dst) = h.get_mut(at..at + field.len()) {
                dst.copy_from_slice(field);
            }
            at += field.len();
        }
        h
    }

    /// Reads the format back from a header written by [`WavFormat::header`]; `None` if the
    /// bytes are not such a header (another layout, a foreign file, garbage).
    pub fn parse(header: &[u8]) -> Option<WavFormat> {
        let u16_at = |at: usize| -> Option<u16> {
            Some(u16::from_le_bytes(header.get(at..at + 2)?.try_into().ok()?))
        };
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(header.get(at..at + 4)?.try_into().ok()?))
        };
        let tag = |at: usize, want: &[u8; 4]| header.get(at..at + 4) == Some(&want[..]);
        if !(tag(0, b"RIFF") && tag(8, b"WAVE") && tag(12, b"fmt ") && tag(36, b"data")) {
            return None;
        }
        let format = WavFormat {
            channels: u16_at(22)?,
            sample_rate: u32_at(24)?,
        };
        let valid = u32_at(16)? == 16
            && u16_at(20)? == 1
            && u16_at(34)? == BITS_PER_SAMPLE
            && format.channels > 0
            && format.sample_rate > 0
            && u16_at(32)? == format.block_align();
        valid.then_some(format)
    }
}

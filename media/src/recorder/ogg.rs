//! Ogg pages (RFC 3533), as much as a recorder needs: writing whole packets into pages and
//! reading pages back to find where a cut-off file stops being valid.
//!
//! Each page carries only whole packets (a voice packet is at most a few hundred bytes, so
//! no packet needs to continue across pages): a file cut anywhere loses at most the page
//! being written, and every earlier page stands on its own.

/// The fixed part of a page header; the segment table follows.
pub const PAGE_HEADER_LEN: usize = 27;
/// A page holds at most 255 lacing values.
pub const MAX_SEGMENTS: usize = 255;

pub const FLAG_BOS: u8 = 0x02;
pub const FLAG_EOS: u8 = 0x04;
/// The page starts with the continuation of a packet from the previous page.
pub const FLAG_CONTINUED: u8 = 0x01;

const CRC_OFFSET: usize = 22;

/// CRC-32 with polynomial 0x04c11db7, no reflection, initial value 0 (RFC 3533 §6).
const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            r = if r & 0x8000_0000 != 0 {
                (r << 1) ^ 0x04c1_1db7
            } else {
                r << 1
            };
            bit += 1;
        }
        table[i] = r;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

pub fn crc32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ CRC_TABLE[((crc >> 24) as u8 ^ b) as usize]
    })
}

/// Lacing values needed for a packet of `len` bytes (a multiple of 255 ends with a 0).
pub fn segments_for(len: usize) -> usize {
    len / 255 + 1
}

/// Appends one page holding `packets` (whole packets only) to `out`.
///
/// `granule` is the position after the last packet on the page; `sequence` the page's
/// number in the stream. The caller keeps the segment count within [`MAX_SEGMENTS`].
pub fn write_page(
    out: &mut Vec<u8>,
    flags: u8,
    granule: u64,
    serial: u32,
    sequence: u32,
    packets: &[&[u8]],
) {
    let start = out.len();
    out.extend_from_slice(b"OggS");
    out.push(0); // stream structure version
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&serial.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // CRC, filled in below
    let segments: usize = packets.iter().map(|p| segments_for(p.len())).sum();
    out.push(segments.min(MAX_SEGMENTS) as u8);
    for packet in packets {
        let mut left = packet.len();
        while left >= 255 {
            out.push(255);
            left -= 255;
        }
        out.push(left as u8);
    }
    for packet in packets {
        out.extend_from_slice(packet);
    }
    let crc = crc32(&out[start..]);
    out[start + CRC_OFFSET..start + CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
}

/// A page found by [`read_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageInfo {
    pub flags: u8,
    pub granule: u64,
    pub serial: u32,
    pub sequence: u32,
    /// Offset of the page in the buffer and its total length (header, table, body).
    pub offset: usize,
    pub len: usize,
    /// The packets' bodies as (offset, length) in the buffer; the last may be unfinished
    /// (continued on the next page) when `last_complete` is false.
    pub packets: Vec<(usize, usize)>,
    pub last_complete: bool,
}

/// Reads the page at `offset`, checking its structure and CRC. `None` if the bytes there are
/// not a whole, valid page (the end of a cut-off file, or corruption).
pub fn read_page(buf: &[u8], offset: usize) -> Option<PageInfo> {
    let header = buf.get(offset..offset.checked_add(PAGE_HEADER_LEN)?)?;
    if &header[..4] != b"OggS" || header[4] != 0 {
        return None;
    }
    let flags = header[5];
    let granule = u64::from_le_bytes(header[6..14].try_into().ok()?);
    let serial = u32::from_le_bytes(header[14..18].try_into().ok()?);
    let sequence = u32::from_le_bytes(header[18..22].try_into().ok()?);
    let stored_crc = u32::from_le_bytes(header[22..26].try_into().ok()?);
    let n_segments = usize::from(header[26]);
    let table_start = offset + PAGE_HEADER_LEN;
    let table = buf.get(table_start..table_start + n_segments)?;
    let body_len: usize = table.iter().map(|&l| usize::from(l)).sum();
    let body_start = table_start + n_segments;
    let len = PAGE_HEADER_LEN + n_segments + body_len;
    let page = buf.get(offset..offset + len)?;
    let mut crc = 0u32;
    for (i, &b) in page.iter().enumerate() {
        let b = if (CRC_OFFSET..CRC_OFFSET + 4).contains(&i) {
            0
        } else {
            b
        };
        crc = (crc << 8) ^ CRC_TABLE[((crc >> 24) as u8 ^ b) as usize];
    }
    if crc != stored_crc {
        return None;
    }
    let mut packets = Vec::new();
    let mut at = body_start;
    let mut current = 0usize;
    let mut last_complete = true;
    for &lacing in table {
        current += usize::from(lacing);
        if lacing < 255 {
            packets.push((at, current));
            at += current;
            current = 0;
            last_complete = true;
        } else {
            last_complete = false;
        }
    }
    if !last_complete {
        packets.push((at, current));
    }
    Some(PageInfo {
        flags,
        granule,
        serial,
        sequence,
        offset,
        len,
        packets,
        last_complete,
    })
}

/// Sets or clears flags of the page at `offset` and recomputes its CRC.
pub fn set_page_flags(buf: &mut [u8], page: &PageInfo, flags: u8) {
    let Some(bytes) = buf.get_mut(page.offset..page.offset + page.len) else {
        return;
    };
    bytes[5] = flags;
    bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&[0; 4]);
    let crc = crc32(bytes);
    bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_ogg_reference_value() {
        // The CRC of "OggS" + zeros as used by libogg's table (checked against a page
        // written by ffmpeg in the writer's tests); here the algebraic property: a
        // one-bit change changes the CRC.
        assert_ne!(crc32(b"abc"), crc32(b"abd"));
        assert_eq!(crc32(&[]), 0);
    }

    #[test]
    fn pages_round_trip_with_long_and_exact_255_packets() {
        let a = vec![1u8; 10];
        let b = vec![2u8; 255];
        let c = vec![3u8; 600];
        let mut out = Vec::new();
        write_page(&mut out, FLAG_BOS, 960, 7, 0, &[&a, &b, &c]);
        let page = read_page(&out, 0).expect("valid page");
        assert_eq!(page.len, out.len());
        assert_eq!((page.granule, page.serial, page.sequence), (960, 7, 0));
        let lens: Vec<usize> = page.packets.iter().map(|p| p.1).collect();
        assert_eq!(lens, vec![10, 255, 600]);
        assert!(page.last_complete);
        let (off, len) = page.packets[2];
        assert!(out[off..off + len].iter().all(|&x| x == 3));
    }

    #[test]
    fn truncated_or_corrupt_pages_are_not_pages() {
        let mut out = Vec::new();
        write_page(&mut out, 0, 1, 1, 1, &[&[9u8; 40]]);
        for cut in 0..out.len() {
            assert!(read_page(&out[..cut], 0).is_none(), "cut at {cut}");
        }
        let mut bad = out.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(read_page(&bad, 0).is_none());
        let page = read_page(&out, 0).unwrap();
        set_page_flags(&mut out, &page, FLAG_EOS);
        assert_eq!(read_page(&out, 0).unwrap().flags, FLAG_EOS);
        assert!(read_page(&out, usize::MAX - 3).is_none());
    }
}

//! Start-up repair of a cut-off Opus recording (`<call>.opus.part`). A page's CRC turns
//! almost every random byte string into "not a page", so raw bytes would never get past
//! the first page; the harness therefore frames the input as pages with valid CRCs (the
//! recorder's own OpusHead first, then pages whose flags, granule, serial, sequence and
//! packets come from the input), appends the rest raw, and repairs the file. Whatever the
//! pages say, repair must keep a prefix or refuse, never panic, and never report a length
//! the kept pages cannot hold.
#![no_main]

use callscope_media::recorder::{ogg, repair};
use libfuzzer_sys::fuzz_target;

/// The serial the recorder writes, so that some pages continue the stream.
const SERIAL: u32 = 0x6373_6370;

/// OpusHead: version 1, two channels, pre-skip 312, 8 kHz input, no gain, mapping 0.
fn opus_head() -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.extend_from_slice(&[1, 2]);
    head.extend_from_slice(&312u16.to_le_bytes());
    head.extend_from_slice(&8000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]);
    head
}

/// Takes `n` bytes off the front of `data`, or None when it holds fewer.
fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (front, rest) = data.split_at_checked(n)?;
    *data = rest;
    Some(front)
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let mut file = Vec::new();
    ogg::write_page(&mut file, ogg::FLAG_BOS, 0, SERIAL, 0, &[&opus_head()]);
    // Pages: a control byte (flags in its low bits; its top bit picks the recorder's serial
    // or one from the input), a granule, maybe a serial, a sequence, then up to 7 packets.
    for sequence in 1..64u32 {
        let Some(&[control]) = take(&mut data, 1) else {
            break;
        };
        let Some(granule) = take(&mut data, 8) else {
            break;
        };
        let granule = u64::from_le_bytes(granule.try_into().unwrap_or_default());
        let serial = if control & 0x80 == 0 {
            SERIAL
        } else {
            let Some(s) = take(&mut data, 4) else { break };
            u32::from_le_bytes(s.try_into().unwrap_or_default())
        };
        let packets = usize::from(control >> 3 & 0x7);
        let mut bodies = Vec::new();
        for _ in 0..packets {
            let Some(&[len]) = take(&mut data, 1) else {
                break;
            };
            let Some(body) = take(&mut data, usize::from(len)) else {
                break;
            };
            bodies.push(body);
        }
        ogg::write_page(&mut file, control & 0x7, granule, serial, sequence, &bodies);
    }
    // Whatever is left: a cut-off page or garbage after the last whole one.
    file.extend_from_slice(data);

    let Ok(dir) = tempfile::tempdir() else { return };
    let part = dir.path().join("call.opus.part");
    if std::fs::write(&part, &file).is_err() {
        return;
    }
    if let Ok(report) = repair(&part) {
        let kept = std::fs::read(&report.path).unwrap_or_default();
        assert!(
            kept.len() <= file.len() + 64,
            "repair only cuts (or adds OpusTags)"
        );
        // At most 120 ms per packet: 255 packets a page, one page per 28 bytes at least.
        let pages = kept.len() as u128 / 28 + 1;
        let most_us = pages * 255 * 120_000;
        assert!(report.duration.as_micros() <= most_us, "{report:?}");
    }
});

//! Every RTP payload of a transcoding (or recorded) call goes through its codec's decoder,
//! and a lost packet through its concealment, with the next payload when it is already
//! here (Opus rebuilds the lost frame from that packet's in-band FEC). A decoder fed in
//! arrival order also conceals a gap before a packet with its output dropped, decodes a
//! stale packet and conceals at playout on a copy of its state (`skip_lost`,
//! `decode_apart`, `conceal_apart`). Whatever the payloads, decoding must give samples or
//! an error, never panic, and an Opus decoder must never hand back more than a packet can
//! hold (120 ms) plus the 40 ms concealed around it.
#![no_main]

use callscope_media::codec::{AudioDecoder, G711Decoder, G711Law, G722Decoder, OpusDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, mut rest)) = data.split_first() else {
        return;
    };
    let (mut decoder, rate, opus): (Box<dyn AudioDecoder>, u32, bool) = match choice % 7 {
        0 => (Box::new(G711Decoder::new(G711Law::Ulaw)), 8000, false),
        1 => (Box::new(G711Decoder::new(G711Law::Alaw)), 8000, false),
        2 => (Box::new(G722Decoder::new()), 16000, false),
        n => {
            let rate = [8000, 16000, 24000, 48000][usize::from(n - 3)];
            let Ok(decoder) = OpusDecoder::new(rate) else {
                return;
            };
            (Box::new(decoder), rate, true)
        }
    };
    let frame = (rate / 50) as usize;
    let most = rate as usize * 160 / 1000;
    let mut out = Vec::new();
    // Payloads: two bytes of length (up to 2047) and flags, then the payload. The flags:
    // 0x8000 the packet before was lost and is concealed with this one at hand; 0x4000 the
    // packets before (one to eight frames) were lost and the decoder skips them in order;
    // 0x2000 a slot is concealed apart first; 0x1000 this packet is stale (decoded apart).
    while let Some((head, tail)) = rest.split_first_chunk::<2>() {
        let word = u16::from_be_bytes(*head);
        let len = usize::from(word & 0x07ff).min(tail.len());
        let (payload, next) = tail.split_at(len);
        if word & 0x8000 != 0 {
            decoder.conceal_with_next(payload, frame, &mut out);
        }
        if word & 0x4000 != 0 {
            let lost_frames = usize::from(payload.first().copied().unwrap_or(0) % 8) + 1;
            decoder.skip_lost(frame * lost_frames, payload);
        }
        if word & 0x2000 != 0 {
            decoder.conceal_apart(frame, &mut out);
        }
        let _ = if word & 0x1000 != 0 {
            decoder.decode_apart(payload, &mut out)
        } else {
            decoder.decode(payload, &mut out)
        };
        if opus {
            assert!(out.len() <= most, "{} samples from {len} bytes", out.len());
        }
        out.clear();
        rest = next;
    }
    decoder.conceal(frame, &mut out);
    assert_eq!(out.len(), frame, "concealment gives what was asked");
});

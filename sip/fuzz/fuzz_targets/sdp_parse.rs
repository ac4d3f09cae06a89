//! SDP bodies arrive from anyone who can send an INVITE: parsing and negotiating an offer
//! must return an answer or an error for any bytes.
#![no_main]

use callscope_sip::media::Codec;
use callscope_sip::sdp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(offer) = sdp::parse(data) {
        let _ = offer.audio_direction();
        let _ = offer.audio_address();
        let _ = sdp::answer_formats(
            &offer,
            &[Codec::Pcmu, Codec::Pcma, Codec::Opus, Codec::TelephoneEvent],
        );
    }
});

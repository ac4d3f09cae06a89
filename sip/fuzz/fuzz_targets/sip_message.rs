//! Every datagram the SIP server receives goes through this entry point first: whatever
//! the bytes, it must return (accept or reject), never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rsipstack::sip::HeadersExt;
use rsipstack::sip::SipMessage;
use rsipstack::sip::headers::untyped::ToTypedHeader;

fuzz_target!(|data: &[u8]| {
    // rsipstack's parser and the typed accessors the transaction layer uses. Switch to
    // `callscope_sip::classify_message` once the SIP core's gate is in this branch.
    if let Ok(msg) = SipMessage::try_from(data.to_vec()) {
        let _ = msg.via_header().map(|v| v.typed());
        let _ = msg.from_header().map(|v| v.typed());
        let _ = msg.to_header().map(|v| v.typed());
        let _ = msg.cseq_header().map(|v| v.typed());
        let _ = msg.typed_contact_headers();
        let _ = msg.to_string();
    }
});

//! Every datagram the SIP server receives goes through `classify_message` first: whatever
//! the bytes, it must accept or reject, never panic or hang. rsipstack's own parser and
//! typed accessors are exercised too, since the transaction layer calls them after the gate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rsipstack::sip::HeadersExt;
use rsipstack::sip::SipMessage;
use rsipstack::sip::headers::untyped::ToTypedHeader;

fuzz_target!(|data: &[u8]| {
    let _ = callscope_sip::classify_message(data);
    if let Ok(msg) = SipMessage::try_from(data.to_vec()) {
        let _ = msg.via_header().map(|v| v.typed());
        let _ = msg.from_header().map(|v| v.typed());
        let _ = msg.to_header().map(|v| v.typed());
        let _ = msg.cseq_header().map(|v| v.typed());
        let _ = msg.typed_contact_headers();
        let _ = msg.to_string();
    }
});

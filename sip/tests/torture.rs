//! The RFC 4475 ("SIP torture test messages") corpus in `tests/torture/`: our own messages
//! exercising each property the RFC describes (see `tests/torture/README.md`).
//!
//! `valid_*.sip` must be accepted, `invalid_*.sip` rejected; `tolerated_*.sip` are cases
//! where the RFC lets a tolerant parser go either way, so only "no panic" is asserted.
//!
//! The entry point under test is `callscope_sip::classify_message`, the gate every received
//! message passes. A valid message may still be refused with an application-level status
//! the RFC asks for (416 for an unknown Request-URI scheme) but never with 400; an invalid
//! one must be refused with 400 (or 505 for an unknown SIP version).
//!
//! Two lists pin down, exactly, where things stand: [`GATE_GAPS`] (cases the gate still gets
//! wrong: the goal is an empty list) and [`RSIPSTACK_GAPS`] (where rsipstack's own parser
//! plus its typed accessors would get it wrong: why the gate exists). Both tests fail when
//! behaviour changes in either direction, so the lists cannot go stale.

use callscope_sip::classify_message;
use callscope_sip::media::Codec;
use callscope_sip::sdp;
use rsipstack::sip::headers::untyped::ToTypedHeader;
use rsipstack::sip::{HeadersExt, SipMessage};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Valid,
    Invalid,
    Tolerated,
}

pub struct Case {
    pub name: String,
    pub expect: Expect,
    pub bytes: Vec<u8>,
}

pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/torture")
}

/// Every `.sip` file of the corpus, sorted by name.
pub fn corpus() -> Vec<Case> {
    let mut cases: Vec<Case> = std::fs::read_dir(corpus_dir())
        .expect("corpus directory exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sip"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            let expect = if name.starts_with("valid_") {
                Expect::Valid
            } else if name.starts_with("invalid_") {
                Expect::Invalid
            } else if name.starts_with("tolerated_") {
                Expect::Tolerated
            } else {
                panic!("corpus file {name} must start with valid_, invalid_ or tolerated_")
            };
            Case {
                bytes: std::fs::read(&p).unwrap(),
                name,
                expect,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// rsipstack 0.7.14 as a server would use it: parse the message, then read the headers
/// every transaction needs (Via, From, To, Call-ID, CSeq) through its typed accessors.
fn rsipstack_baseline(bytes: &[u8]) -> Result<(), String> {
    let msg = SipMessage::try_from(bytes.to_vec()).map_err(|e| e.to_string())?;
    let check = |m: &dyn Fn() -> Result<(), rsipstack::sip::Error>| m().map_err(|e| e.to_string());
    match &msg {
        SipMessage::Request(r) => check(&|| {
            r.via_header()?.typed()?;
            r.from_header()?.typed()?;
            r.to_header()?.typed()?;
            r.call_id_header()?;
            r.cseq_header()?.typed()?;
            Ok(())
        }),
        SipMessage::Response(r) => check(&|| {
            r.via_header()?.typed()?;
            r.from_header()?.typed()?;
            r.to_header()?.typed()?;
            r.call_id_header()?;
            r.cseq_header()?.typed()?;
            Ok(())
        }),
    }
}

/// Where rsipstack 0.7.14's baseline disagrees with RFC 4475 (measured by the test below):
/// the SIP core's `classify_message` must add these checks itself.
const RSIPSTACK_GAPS: &[&str] = &[
    "invalid_contact_params_without_angles",
    "invalid_content_length_not_a_number",
    "invalid_content_length_too_large",
    "invalid_cseq_method_mismatch",
    "invalid_display_name_non_token",
    "invalid_escaped_headers_in_request_uri",
    "invalid_extra_header_separators",
    "invalid_max_forwards_overlarge",
    "invalid_multiple_content_lengths",
    "invalid_multiple_single_value_headers",
    "invalid_negative_content_length",
    "invalid_request_uri_in_angles",
    "invalid_spaces_in_addr_spec",
    "invalid_unknown_sip_version",
    "invalid_unterminated_quote",
    "valid_unknown_method_wide_chars",
];

#[test]
fn corpus_is_complete() {
    let cases = corpus();
    let count = |e| cases.iter().filter(|c| c.expect == e).count();
    assert!(
        count(Expect::Valid) >= 25,
        "valid cases: {}",
        count(Expect::Valid)
    );
    assert!(
        count(Expect::Invalid) >= 20,
        "invalid cases: {}",
        count(Expect::Invalid)
    );
    // Every file is documented in the README's table.
    let readme = std::fs::read_to_string(corpus_dir().join("README.md")).unwrap();
    for c in &cases {
        assert!(
            readme.contains(&format!("`{}.sip`", c.name)),
            "{} missing from README",
            c.name
        );
    }
}

/// Cases `classify_message` gets wrong today (measured by the test below). Each is a bug
/// in the gate to fix; remove the name when it is fixed.
const GATE_GAPS: &[&str] = &[];

/// `Ok(())` when the gate's verdict is what RFC 4475 asks for, else what happened.
fn gate_verdict_is_right(case: &Case) -> Result<(), String> {
    let verdict = classify_message(&case.bytes);
    match (case.expect, &verdict) {
        (Expect::Tolerated, _) | (Expect::Valid, Ok(())) => Ok(()),
        (Expect::Valid, Err(r)) if r.status() != 400 => Ok(()),
        (Expect::Invalid, Err(r)) if matches!(r.status(), 400 | 505) => Ok(()),
        _ => Err(format!("expected {:?}, gate says {verdict:?}", case.expect)),
    }
}

#[test]
fn gate_accepts_valid_and_rejects_invalid_except_recorded_gaps() {
    let mut wrong = Vec::new();
    for case in corpus() {
        if let Err(why) = gate_verdict_is_right(&case) {
            eprintln!("{}: {why}", case.name);
            wrong.push(case.name);
        }
    }
    assert_eq!(
        wrong, GATE_GAPS,
        "the gate's RFC 4475 verdicts changed: update GATE_GAPS"
    );
}

#[test]
fn rsipstack_baseline_disagrees_exactly_where_recorded() {
    let mut wrong = Vec::new();
    for case in corpus() {
        let verdict = rsipstack_baseline(&case.bytes);
        let right = match case.expect {
            Expect::Valid => verdict.is_ok(),
            Expect::Invalid => verdict.is_err(),
            Expect::Tolerated => true,
        };
        if !right {
            eprintln!(
                "{}: expected {:?}, rsipstack says {:?}",
                case.name, case.expect, verdict
            );
            wrong.push(case.name);
        }
    }
    assert_eq!(
        wrong, RSIPSTACK_GAPS,
        "update RSIPSTACK_GAPS (and tell the SIP core)"
    );
}

/// A small deterministic PRNG (xorshift64*) so the mutation run is the same every time.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to SIP's grammar, so mutations hit separators rather than letters.
const INTERESTING: &[u8] = b":;,<>\"\\@%= \t\r\n0123456789-+/?[]";

fn mutate(rng: &mut XorShift, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if at < out.len() => out[at] = rng.next() as u8,
            1 if at < out.len() => out[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => out.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            3 if at < out.len() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            4 => {
                // Duplicate a slice: repeated headers, doubled separators.
                let start = rng.below(out.len().max(1));
                let end = (start + rng.below(64)).min(out.len());
                let chunk = out[start..end].to_vec();
                out.splice(at..at, chunk);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// Runs one input through everything a server does with an incoming datagram, outside
/// the network: parse, read the transaction headers, serialise back, parse the SDP body.
fn exercise(bytes: &[u8]) {
    let _ = classify_message(bytes);
    let _ = rsipstack_baseline(bytes);
    if let Ok(msg) = SipMessage::try_from(bytes.to_vec()) {
        let _ = msg.to_string();
    }
    // The SDP parser and negotiation see whatever follows the headers.
    let body = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes, |at| &bytes[at + 4..]);
    for input in [body, bytes] {
        if let Ok(offer) = sdp::parse(input) {
            let _ = offer.audio_direction();
            let _ = sdp::answer_formats(&offer, &[Codec::Pcmu, Codec::Pcma, Codec::Opus]);
        }
    }
}

/// The corpus plus a fixed number of seeded mutations of it: nothing may panic.
#[test]
fn corpus_and_mutations_never_panic() {
    const MUTATIONS_PER_CASE: usize = 400;
    let mut rng = XorShift(0x5EED_CA11_0000_E000 ^ 0x9E37_79B9_7F4A_7C15);
    let mut panics = Vec::new();
    let mut runs = 0usize;
    for case in corpus() {
        let mut inputs = vec![case.bytes.clone()];
        inputs.extend((0..MUTATIONS_PER_CASE).map(|_| mutate(&mut rng, &case.bytes)));
        for input in inputs {
            runs += 1;
            if std::panic::catch_unwind(|| exercise(&input)).is_err() {
                panics.push((
                    case.name.clone(),
                    String::from_utf8_lossy(&input).into_owned(),
                ));
            }
        }
    }
    assert!(runs > 20_000, "only {runs} inputs ran");
    assert!(
        panics.is_empty(),
        "{} inputs panicked; first from {}:\n{}",
        panics.len(),
        panics[0].0,
        panics[0].1
    );
}

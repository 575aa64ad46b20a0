//! Mutation fuzzing of everything that reads network input, seeded from the RFC 4475
//! torture messages: random flips, insertions, deletions and truncations must parse
//! or fail, never panic. Deterministic (fixed seed), so a failure reproduces.

use super::headers::{Via, parse_cseq, parse_delta_seconds};
use super::message::Message;
use super::stack::RequestCtx;
use super::stack::request::raw_headers;
use super::syntax;
use super::uri::{self, NameAddr};
use crate::auth::digest::Credentials;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"<",
    b">",
    b"\"",
    b"\\",
    b"%",
    b"@",
    b"[",
    b"]",
    b"=",
    b"/",
    b"?",
    b"\0",
    b"\xff",
    b"SIP/2.0",
    b"z9hG4bK",
    b"Content-Length: 99999\r\n",
    b"l: -1\r\n",
    b"v: SIP/2.0/UDP [::1]:0\r\n",
    b"CSeq: 4294967296 REGISTER\r\n",
];

fn mutate(rng: &mut XorShift, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            2 if at < out.len() => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            3 => out.truncate(at),
            _ => {
                let b = (rng.next() & 0xff) as u8;
                out.insert(at, b);
            }
        }
    }
    out
}

/// Runs every reader of network input over one message.
fn exercise(bytes: &[u8]) {
    let _ = super::stack::transport::stream_frame_len(bytes);
    let _ = raw_headers(bytes);
    let Ok(Message::Request(req)) = Message::parse(bytes) else {
        return;
    };
    let _ = RequestCtx::parse(&req);
    for h in req.headers.iter() {
        let _ = Via::parse(&h.value);
        let _ = NameAddr::parse(&h.value);
        let _ = Credentials::parse(&h.value);
        let _ = parse_cseq(&h.value);
        let _ = parse_delta_seconds(&h.value);
        for item in syntax::split_list(&h.value) {
            let _ = uri::Uri::parse(item);
        }
    }
    let _ = req.uri.user_unescaped();
    let _ = req.to_bytes();
}

/// The deterministic corpus both parser tests read: the RFC 4475 messages, each
/// mutated in turn with a fixed seed, `SIP_FUZZ_ITERATIONS` (30,000) in all.
pub(super) fn fuzzed_messages() -> impl Iterator<Item = Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rfc4475");
    let mut named: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("fixtures")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "sip"))
        .map(|e| (e.path(), std::fs::read(e.path()).unwrap_or_default()))
        .collect();
    // In file-name order, so the corpus is the same on every machine.
    named.sort();
    let seeds: Vec<Vec<u8>> = named.into_iter().map(|(_, bytes)| bytes).collect();
    assert!(seeds.len() >= 49);
    let iterations: usize = std::env::var("SIP_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let mut rng = XorShift(0x5eed_cafe_f00d_d00d);
    (0..iterations).map(move |i| mutate(&mut rng, &seeds[i % seeds.len()]))
}

#[test]
fn fuzzed_messages_never_panic() {
    for input in fuzzed_messages() {
        exercise(&input);
    }
}

//! Media: RTP sessions, codecs (G.711, G.722, telephone-event), the jitter buffer, and
//! the building blocks media applications use (player, mixer and rooms, two-party
//! bridge, SDP media negotiation); plus voicemail's recorder and WAV files. Knows no SIP.

pub mod audio;
pub mod bridge;
pub mod codec;
pub mod dtmf;
pub mod g711;
pub mod g722;
pub mod jitter;
pub mod mixer;
pub mod negotiate;
pub mod player;
pub mod ports;
pub mod room;
pub mod rtp;
pub mod session;

#[cfg(test)]
mod e2e;

//! Media for voicemail: G.711, RTP sessions (play a greeting, record the caller), the
//! RTP port pool, and WAV files.

pub mod audio;
pub mod g711;
pub mod ports;
pub mod rtp;

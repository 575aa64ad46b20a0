//! The engine's codecs (PCMU, PCMA, G.722) on 20 ms frames of linear i16, and the
//! 8↔16 kHz half-band resampler used where narrowband and wideband audio meet.
//!
//! G.711 lives in [`super::g711`] and G.722 in [`super::g722`]; the tests below pin
//! G.722 bit-exactly against Sippy's libg722 (the spandsp C coder) on a generated
//! signal (see `testdata/README.md`).

use super::g711;
use super::g722::{G722Decoder, G722Encoder};

/// Every codec here runs an 8 kHz RTP clock (RFC 3551 §4.5.2 keeps G.722 at 8000 for
/// historical reasons), and every one puts one payload byte per clock tick: so a
/// payload's length is its duration in timestamp units, whatever the codec.
pub const RTP_CLOCK: u32 = 8000;
/// One 20 ms frame in RTP timestamp units (and payload bytes).
pub const FRAME_TS: usize = 160;
/// The most samples a 20 ms frame holds (16 kHz).
pub const MAX_FRAME: usize = 320;

/// An audio codec the engine encodes and decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
    G722,
}

impl Codec {
    /// In the order we prefer them when nothing else decides.
    pub const ALL: [Codec; 3] = [Codec::G722, Codec::Pcmu, Codec::Pcma];

    /// The static RTP payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::G722 => 9,
        }
    }

    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            9 => Some(Codec::G722),
            _ => None,
        }
    }

    /// The encoding name as SDP writes it.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
        }
    }

    /// The audio sample rate (not the RTP clock).
    pub fn sample_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::G722 => 16000,
        }
    }

    pub fn is_wideband(self) -> bool {
        self == Codec::G722
    }

    /// Samples in a 20 ms frame.
    pub fn frame_samples(self) -> usize {
        (self.sample_rate() / 50) as usize
    }

    /// A payload byte that decodes to (near) silence, to fill gaps inside a frame.
    pub fn silence_byte(self) -> u8 {
        match self {
            Codec::Pcmu => 0xff,
            Codec::Pcma => 0xd5,
            // The smallest low-band step with no high band; only fills partial frames.
            Codec::G722 => 0x7f,
        }
    }
}

impl From<g711::Codec> for Codec {
    fn from(c: g711::Codec) -> Self {
        match c {
            g711::Codec::Pcmu => Codec::Pcmu,
            g711::Codec::Pcma => Codec::Pcma,
        }
    }
}

/// An encoder for one outgoing stream (G.722 keeps adaptive state between frames).
pub struct Encoder {
    codec: Codec,
    g722: Option<G722Encoder>,
}

impl Encoder {
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            g722: (codec == Codec::G722).then(G722Encoder::default),
        }
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Encodes `pcm` (at the codec's sample rate) into `out`; returns the bytes written.
    /// `out` must hold one byte per RTP clock tick of `pcm`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        match (self.codec, &mut self.g722) {
            (Codec::G722, Some(enc)) => enc.encode(pcm, out),
            (codec, _) => {
                let g711 = if codec == Codec::Pcma {
                    g711::Codec::Pcma
                } else {
                    g711::Codec::Pcmu
                };
                let n = pcm.len().min(out.len());
                for (o, s) in out[..n].iter_mut().zip(pcm) {
                    *o = g711.encode(*s);
                }
                n
            }
        }
    }
}

/// A decoder for one incoming stream.
pub struct Decoder {
    codec: Codec,
    g722: Option<G722Decoder>,
}

impl Decoder {
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            g722: (codec == Codec::G722).then(G722Decoder::default),
        }
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Decodes `payload` into `out` (at the codec's sample rate); returns the samples
    /// written. `out` must hold `payload.len()` samples (G.711) or twice that (G.722).
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        match (self.codec, &mut self.g722) {
            (Codec::G722, Some(dec)) => dec.decode(payload, out),
            (codec, _) => {
                let g711 = if codec == Codec::Pcma {
                    g711::Codec::Pcma
                } else {
                    g711::Codec::Pcmu
                };
                let n = payload.len().min(out.len());
                for (o, b) in out[..n].iter_mut().zip(payload) {
                    *o = g711.decode(*b);
                }
                n
            }
        }
    }
}

/// Taps of the half-band low-pass (Kaiser-windowed sinc, β = 6, cut at a quarter of
/// the 16 kHz rate). 55 taps give a 3.4 kHz passband flat within a fraction of a dB
/// and ≥ 55 dB of rejection from 4.6 kHz up, which is what telephone audio needs.
const TAPS: usize = 55;

fn half_band() -> &'static [(usize, f32)] {
    static TABLE: std::sync::OnceLock<Vec<(usize, f32)>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let center = (TAPS - 1) as f64 / 2.0;
        let beta = 6.0;
        let i0 = |x: f64| {
            // Modified Bessel function of the first kind, order 0 (series).
            let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
            while term > 1e-12 * sum {
                term *= (x / (2.0 * k)).powi(2);
                sum += term;
                k += 1.0;
            }
            sum
        };
        let taps: Vec<f64> = (0..TAPS)
            .map(|n| {
                let t = n as f64 - center;
                let sinc = if t == 0.0 {
                    0.5
                } else {
                    (std::f64::consts::PI * t / 2.0).sin() / (std::f64::consts::PI * t)
                };
                let r = t / center;
                sinc * i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0(beta)
            })
            .collect();
        let gain: f64 = taps.iter().sum();
        // Half the taps are zero (a half-band filter's gift): skip them.
        taps.iter()
            .enumerate()
            .filter(|(_, h)| h.abs() > 1e-9)
            .map(|(k, h)| (k, (h / gain) as f32))
            .collect()
    })
}

fn to_i16(v: f32) -> i16 {
    v.round().clamp(-32768.0, 32767.0) as i16
}

/// 16 kHz → 8 kHz for one stream (keeps the filter's history between frames).
pub struct Downsampler {
    /// The last `TAPS - 1` input samples, then room for one frame.
    buf: [f32; TAPS - 1 + MAX_FRAME],
}

impl Default for Downsampler {
    fn default() -> Self {
        Self {
            buf: [0.0; TAPS - 1 + MAX_FRAME],
        }
    }
}

impl Downsampler {
    /// `input` (at most 320 samples, even) becomes half as many in `out`.
    pub fn process(&mut self, input: &[i16], out: &mut [i16]) -> usize {
        let n = input.len().min(MAX_FRAME) & !1;
        for (b, s) in self.buf[TAPS - 1..TAPS - 1 + n].iter_mut().zip(input) {
            *b = f32::from(*s);
        }
        let taps = half_band();
        let produced = (n / 2).min(out.len());
        for (j, o) in out[..produced].iter_mut().enumerate() {
            let newest = TAPS - 1 + 2 * j + 1;
            let acc: f32 = taps.iter().map(|(k, h)| h * self.buf[newest - k]).sum();
            *o = to_i16(acc);
        }
        self.buf.copy_within(n..n + TAPS - 1, 0);
        produced
    }
}

/// 8 kHz → 16 kHz for one stream.
pub struct Upsampler {
    /// Zero-stuffed 16 kHz history, then room for one frame.
    buf: [f32; TAPS - 1 + MAX_FRAME],
}

impl Default for Upsampler {
    fn default() -> Self {
        Self {
            buf: [0.0; TAPS - 1 + MAX_FRAME],
        }
    }
}

impl Upsampler {
    /// `input` (at most 160 samples) becomes twice as many in `out`.
    pub fn process(&mut self, input: &[i16], out: &mut [i16]) -> usize {
        let n = input.len().min(MAX_FRAME / 2);
        for (i, s) in input[..n].iter().enumerate() {
            self.buf[TAPS - 1 + 2 * i] = f32::from(*s);
            self.buf[TAPS - 1 + 2 * i + 1] = 0.0;
        }
        let taps = half_band();
        let produced = (2 * n).min(out.len());
        for (m, o) in out[..produced].iter_mut().enumerate() {
            let newest = TAPS - 1 + m;
            // ×2: zero-stuffing halves the energy.
            let acc: f32 = taps.iter().map(|(k, h)| h * self.buf[newest - k]).sum();
            *o = to_i16(2.0 * acc);
        }
        self.buf.copy_within(2 * n..2 * n + TAPS - 1, 0);
        produced
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The signal the reference vectors were made from (see testdata/README.md):
    /// a triangle sweep plus LCG noise, with a quiet stretch; integer-only so Python
    /// and Rust make the same samples.
    fn reference_signal() -> Vec<i16> {
        let (mut phase, mut lcg) = (0i64, 1i64);
        (0..8000i64)
            .map(|n| {
                phase = (phase + 100 + 3 * n) & 0xffff;
                let tri = if phase < 32768 {
                    phase - 16384
                } else {
                    49151 - phase
                };
                lcg = (lcg * 1_103_515_245 + 12345) & 0x7fff_ffff;
                let noise = ((lcg >> 16) & 0x7fff) - 16384;
                let mut x = tri.div_euclid(2) + noise.div_euclid(8);
                if (4000..5000).contains(&n) {
                    x = x.div_euclid(64);
                }
                x as i16
            })
            .collect()
    }

    const REF_ENCODED: &[u8] = include_bytes!("testdata/g722_ref.g722");
    const REF_DECODED: &[u8] = include_bytes!("testdata/g722_ref_decoded.s16le");

    /// Goertzel power of `freq` in `samples`, normalised to the mean square of a
    /// full-scale sine of unit amplitude (so a sine of amplitude A gives ≈ A²/2).
    pub(crate) fn tone_power(samples: &[i16], rate: u32, freq: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for x in samples {
            let s0 = f64::from(*x) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        2.0 * power / (samples.len() as f64).powi(2)
    }

    pub(crate) fn sine(rate: u32, freq: f64, amplitude: f64, n: usize, start: usize) -> Vec<i16> {
        (start..start + n)
            .map(|i| {
                (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn g722_encoding_matches_the_libg722_reference_bit_for_bit() {
        let input = reference_signal();
        let mut enc = Encoder::new(Codec::G722);
        let mut out = Vec::new();
        // In 20 ms frames, as the engine feeds it: state must carry across frames.
        for frame in input.chunks(320) {
            let mut buf = [0u8; 160];
            let n = enc.encode(frame, &mut buf);
            assert_eq!(n, 160);
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out.len(), REF_ENCODED.len());
        let first_diff = out.iter().zip(REF_ENCODED).position(|(a, b)| a != b);
        assert_eq!(first_diff, None, "first differing byte");
    }

    #[test]
    fn g722_decoding_matches_the_libg722_reference_sample_for_sample() {
        let mut dec = Decoder::new(Codec::G722);
        let mut out = Vec::new();
        for frame in REF_ENCODED.chunks(160) {
            let mut buf = [0i16; 320];
            let n = dec.decode(frame, &mut buf);
            assert_eq!(n, 320);
            out.extend_from_slice(&buf[..n]);
        }
        let reference: Vec<i16> = REF_DECODED
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(out.len(), reference.len());
        let first_diff = out.iter().zip(&reference).position(|(a, b)| a != b);
        assert_eq!(first_diff, None, "first differing sample");
    }

    #[test]
    fn a_g722_tone_survives_the_round_trip_with_good_snr() {
        for freq in [300.0, 1000.0, 3000.0, 6000.0] {
            let input = sine(16000, freq, 10000.0, 16000, 0);
            let (mut enc, mut dec) = (Encoder::new(Codec::G722), Decoder::new(Codec::G722));
            let mut output = Vec::new();
            for frame in input.chunks(320) {
                let (mut bytes, mut pcm) = ([0u8; 160], [0i16; 320]);
                let n = enc.encode(frame, &mut bytes);
                let m = dec.decode(&bytes[..n], &mut pcm);
                output.extend_from_slice(&pcm[..m]);
            }
            // The QMF pair delays by 22 samples; compare after settling.
            let delay = (0..40)
                .min_by_key(|d| {
                    (4000..6000)
                        .map(|i| (i64::from(output[i + d]) - i64::from(input[i])).abs())
                        .sum::<i64>()
                })
                .unwrap_or(0);
            let (mut signal, mut noise) = (0.0f64, 0.0f64);
            for i in 4000..15000 {
                let s = f64::from(input[i]);
                let e = f64::from(output[i + delay]) - s;
                signal += s * s;
                noise += e * e;
            }
            let snr = 10.0 * (signal / noise).log10();
            assert!(snr > 25.0, "{freq} Hz: SNR {snr:.1} dB (delay {delay})");
        }
    }

    #[test]
    fn the_g711_silence_bytes_decode_to_near_silence() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut pcm = [0i16; 1];
            Decoder::new(codec).decode(&[codec.silence_byte()], &mut pcm);
            assert!(pcm[0].abs() <= 8, "{codec:?}");
        }
    }

    #[test]
    fn g711_frames_round_trip_through_the_codec_api() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let input = sine(8000, 1000.0, 8000.0, 160, 0);
            let (mut bytes, mut pcm) = ([0u8; 160], [0i16; 160]);
            assert_eq!(Encoder::new(codec).encode(&input, &mut bytes), 160);
            assert_eq!(Decoder::new(codec).decode(&bytes, &mut pcm), 160);
            for (a, b) in input.iter().zip(&pcm) {
                assert!((a - b).abs() <= 8000 / 16 + 16, "{codec:?}");
            }
            assert_eq!(Codec::from_payload_type(codec.payload_type()), Some(codec));
        }
    }

    fn resample_down(input: &[i16]) -> Vec<i16> {
        let mut d = Downsampler::default();
        let mut out = Vec::new();
        for frame in input.chunks(320) {
            let mut buf = [0i16; 160];
            let n = d.process(frame, &mut buf);
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    fn resample_up(input: &[i16]) -> Vec<i16> {
        let mut u = Upsampler::default();
        let mut out = Vec::new();
        for frame in input.chunks(160) {
            let mut buf = [0i16; 320];
            let n = u.process(frame, &mut buf);
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    fn db(ratio: f64) -> f64 {
        10.0 * ratio.log10()
    }

    #[test]
    fn downsampling_passes_speech_band_and_rejects_what_would_alias() {
        let amplitude = 10000.0;
        let full = amplitude * amplitude / 2.0;
        // Passband: within 0.5 dB up to 3.4 kHz.
        for freq in [300.0, 1000.0, 2000.0, 3000.0, 3400.0] {
            let out = resample_down(&sine(16000, freq, amplitude, 16000, 0));
            let gain = db(tone_power(&out[400..], 8000, freq) / full);
            assert!(gain.abs() < 0.5, "{freq} Hz: {gain:.2} dB");
        }
        // Stopband: a 4.6–7.5 kHz tone would fold to 3.4–0.5 kHz; ≥ 50 dB down.
        for freq in [4600.0, 5000.0, 6000.0, 7500.0] {
            let out = resample_down(&sine(16000, freq, amplitude, 16000, 0));
            let alias = 8000.0 - freq;
            let gain = db(tone_power(&out[400..], 8000, alias) / full);
            assert!(gain < -50.0, "{freq} Hz leaks at {alias} Hz: {gain:.1} dB");
        }
    }

    #[test]
    fn upsampling_keeps_the_tone_and_adds_no_image() {
        let amplitude = 10000.0;
        let full = amplitude * amplitude / 2.0;
        for freq in [300.0, 1000.0, 3000.0, 3400.0] {
            let out = resample_up(&sine(8000, freq, amplitude, 8000, 0));
            let gain = db(tone_power(&out[800..], 16000, freq) / full);
            assert!(gain.abs() < 0.5, "{freq} Hz: {gain:.2} dB");
            // Zero-stuffing mirrors the tone around 4 kHz; the filter must remove it.
            let image = 8000.0 - freq;
            let leak = db(tone_power(&out[800..], 16000, image) / full);
            assert!(leak < -50.0, "{freq} Hz images at {image} Hz: {leak:.1} dB");
        }
    }
}

//! G.711 μ-law (PCMU) and A-law (PCMA), ITU-T G.711 by the usual segment arithmetic.

/// The two G.711 codings, with their static RTP payload types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Codec::Pcmu => ulaw_encode(sample),
            Codec::Pcma => alaw_encode(sample),
        }
    }

    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Codec::Pcmu => ulaw_decode(byte),
            Codec::Pcma => alaw_decode(byte),
        }
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

pub fn ulaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(ULAW_CLIP) + ULAW_BIAS;
    // The segment: the highest set bit from 14 down to 7.
    let (mut exponent, mut mask) = (7, 0x4000);
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !((sign | (exponent << 4) | mantissa) as u8)
}

pub fn ulaw_decode(byte: u8) -> i16 {
    let b = !byte;
    let sign = b & 0x80;
    let exponent = i32::from((b >> 4) & 0x07);
    let mantissa = i32::from(b & 0x0f);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// Segment end points of A-law on 13-bit magnitudes.
const ALAW_SEGMENT_END: [i32; 8] = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];

pub fn alaw_encode(sample: i16) -> u8 {
    let mut v = i32::from(sample) >> 3;
    let mask: u8 = if v >= 0 {
        0xd5
    } else {
        v = -v - 1;
        0x55
    };
    let Some(segment) = ALAW_SEGMENT_END.iter().position(|end| v <= *end) else {
        return 0x7f ^ mask;
    };
    let mantissa = if segment < 2 {
        (v >> 1) & 0x0f
    } else {
        (v >> segment) & 0x0f
    };
    (((segment as i32) << 4 | mantissa) as u8) ^ mask
}

pub fn alaw_decode(byte: u8) -> i16 {
    let b = byte ^ 0x55;
    let sign = b & 0x80;
    let exponent = i32::from((b >> 4) & 0x07);
    let mantissa = i32::from(b & 0x0f);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_code_points() {
        // ITU-T G.711 tables: μ-law 0xff and A-law 0xd5 are (near) zero.
        assert_eq!(ulaw_decode(0xff), 0);
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_decode(0xd5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xaa), 32256);
    }

    #[test]
    fn round_trips_stay_within_the_quantisation_step() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for s in (-32768i32..=32767).step_by(7) {
                let s = s as i16;
                let back = codec.decode(codec.encode(s));
                let err = (i32::from(back) - i32::from(s)).abs();
                // Logarithmic coding: the error grows with the magnitude (≤ 1/16 + a bit).
                let allowed = (i32::from(s).abs() / 16).max(16) + 136;
                assert!(err <= allowed, "{codec:?} {s} -> {back} (err {err})");
            }
        }
    }

    #[test]
    fn every_byte_decodes_and_reencodes_to_itself() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for b in 0..=255u8 {
                let s = codec.decode(b);
                let again = codec.encode(s);
                // μ-law has two zeros (0x7f and 0xff); everything else is exact.
                assert!(again == b || codec.decode(again) == s, "{codec:?} {b:#04x}");
            }
        }
    }
}

//! G.722 (ITU-T, 64 kbit/s mode, 16 kHz linear in, one unpacked byte per sample
//! pair out): sub-band ADPCM, the algorithm of the ITU reference as spandsp writes it.
//!
//! Ours rather than a crate's: the one lean pure-Rust candidate (`audio-codec` 0.4)
//! starts both coders from the wrong state (DETL 128/0 instead of the standard's 32),
//! so its decoder's output drifts from the reference for hundreds of milliseconds
//! after every call starts. `codec.rs` pins this one bit-exactly against libg722.

/// Quantiser decision levels of the low band (Q6 of the standard).
const Q6: [i32; 32] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
];
const ILN: [i32; 32] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4, 0,
];
const ILP: [i32; 32] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32, 0,
];
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const RL42: [i32; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
const IHN: [i32; 3] = [0, 1, 0];
const IHP: [i32; 3] = [0, 3, 2];
const WH: [i32; 3] = [0, -214, 798];
const RH2: [i32; 4] = [2, 1, 2, 1];
const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

fn sat(v: i32) -> i32 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// The adaptive predictor and scale factor of one sub-band.
#[derive(Debug, Clone, Copy)]
struct Band {
    s: i32,
    sp: i32,
    sz: i32,
    r: [i32; 3],
    a: [i32; 3],
    ap: [i32; 3],
    p: [i32; 3],
    d: [i32; 7],
    b: [i32; 7],
    bp: [i32; 7],
    nb: i32,
    det: i32,
}

impl Band {
    fn new(det: i32) -> Self {
        Self {
            s: 0,
            sp: 0,
            sz: 0,
            r: [0; 3],
            a: [0; 3],
            ap: [0; 3],
            p: [0; 3],
            d: [0; 7],
            b: [0; 7],
            bp: [0; 7],
            nb: 0,
            det,
        }
    }

    /// Blocks 3L/3H: the scale factor from the log step `nb` (`shift` 8 low, 10 high).
    fn scale(&mut self, shift: i32) {
        let wd1 = (self.nb >> 6) & 31;
        let wd2 = shift - (self.nb >> 11);
        let wd3 = if wd2 < 0 {
            ILB[wd1 as usize] << -wd2
        } else {
            ILB[wd1 as usize] >> wd2
        };
        self.det = wd3 << 2;
    }

    /// Block 4: reconstruct, adapt the pole and zero predictors, predict.
    fn block4(&mut self, d: i32) {
        self.d[0] = d;
        self.r[0] = sat(self.s + d);
        self.p[0] = sat(self.sz + d);

        // UPPOL2
        let s0 = self.p[0] >> 15;
        let s1 = self.p[1] >> 15;
        let s2 = self.p[2] >> 15;
        let mut wd1 = sat(self.a[1] << 2);
        let mut wd2 = if s0 == s1 { -wd1 } else { wd1 };
        if wd2 > 32767 {
            wd2 = 32767;
        }
        let mut wd3 = (wd2 >> 7) + if s0 == s2 { 128 } else { -128 };
        wd3 += (self.a[2] * 32512) >> 15;
        self.ap[2] = wd3.clamp(-12288, 12288);

        // UPPOL1
        wd1 = if s0 == s1 { 192 } else { -192 };
        wd2 = (self.a[1] * 32640) >> 15;
        self.ap[1] = sat(wd1 + wd2);
        let limit = sat(15360 - self.ap[2]);
        self.ap[1] = self.ap[1].clamp(-limit, limit);

        // UPZERO
        let step = if d == 0 { 0 } else { 128 };
        let sd = d >> 15;
        for i in 1..7 {
            let adj = if (self.d[i] >> 15) == sd { step } else { -step };
            self.bp[i] = sat(adj + ((self.b[i] * 32640) >> 15));
        }

        // DELAYA
        for i in (1..7).rev() {
            self.d[i] = self.d[i - 1];
            self.b[i] = self.bp[i];
        }
        for i in (1..3).rev() {
            self.r[i] = self.r[i - 1];
            self.p[i] = self.p[i - 1];
            self.a[i] = self.ap[i];
        }

        // FILTEP
        let pole1 = (self.a[1] * sat(self.r[1] << 1)) >> 15;
        let pole2 = (self.a[2] * sat(self.r[2] << 1)) >> 15;
        self.sp = sat(pole1 + pole2);

        // FILTEZ
        let mut sz = 0;
        for i in 1..7 {
            sz += (self.b[i] * sat(self.d[i] << 1)) >> 15;
        }
        self.sz = sat(sz);

        // PREDIC
        self.s = sat(self.sp + self.sz);
    }
}

/// A G.722 encoder (one per outgoing stream: the state follows the signal).
#[derive(Debug, Clone)]
pub struct G722Encoder {
    x: [i32; 24],
    band: [Band; 2],
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self {
            x: [0; 24],
            band: [Band::new(32), Band::new(8)],
        }
    }
}

impl G722Encoder {
    /// Encodes 16 kHz samples (an even count; a trailing odd one is ignored) into
    /// `out`, one byte per pair. Returns the bytes written.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        let mut n = 0;
        for (pair, o) in pcm.chunks_exact(2).zip(out.iter_mut()) {
            // Transmit QMF: split into the low and high band.
            self.x.copy_within(2..24, 0);
            self.x[22] = i32::from(pair[0]);
            self.x[23] = i32::from(pair[1]);
            let (mut sumodd, mut sumeven) = (0, 0);
            for i in 0..12 {
                sumodd += self.x[2 * i] * QMF[i];
                sumeven += self.x[2 * i + 1] * QMF[11 - i];
            }
            let xlow = (sumeven + sumodd) >> 14;
            let xhigh = (sumeven - sumodd) >> 14;

            // Low band: SUBTRA, QUANTL, INVQAL, LOGSCL, SCALEL, block 4.
            let low = &mut self.band[0];
            let el = sat(xlow - low.s);
            let wd = if el >= 0 { el } else { -(el + 1) };
            let mut i = 1;
            while i < 30 && wd >= (Q6[i] * low.det) >> 12 {
                i += 1;
            }
            let ilow = if el < 0 { ILN[i] } else { ILP[i] };
            let ril = (ilow >> 2) as usize;
            let dlow = (low.det * QM4[ril]) >> 15;
            low.nb = (((low.nb * 127) >> 7) + WL[RL42[ril] as usize]).clamp(0, 18432);
            low.scale(8);
            low.block4(dlow);

            // High band: SUBTRA, QUANTH, INVQAH, LOGSCH, SCALEH, block 4.
            let high = &mut self.band[1];
            let eh = sat(xhigh - high.s);
            let wd = if eh >= 0 { eh } else { -(eh + 1) };
            let mih = if wd >= (564 * high.det) >> 12 { 2 } else { 1 };
            let ihigh = if eh < 0 { IHN[mih] } else { IHP[mih] };
            let dhigh = (high.det * QM2[ihigh as usize]) >> 15;
            high.nb = (((high.nb * 127) >> 7) + WH[RH2[ihigh as usize] as usize]).clamp(0, 22528);
            high.scale(10);
            high.block4(dhigh);

            *o = ((ihigh << 6) | ilow) as u8;
            n += 1;
        }
        n
    }
}

/// A G.722 decoder (one per incoming stream).
#[derive(Debug, Clone)]
pub struct G722Decoder {
    x: [i32; 24],
    band: [Band; 2],
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self {
            x: [0; 24],
            band: [Band::new(32), Band::new(8)],
        }
    }
}

impl G722Decoder {
    /// Decodes bytes into 16 kHz samples, two per byte. Returns the samples written.
    pub fn decode(&mut self, bytes: &[u8], out: &mut [i16]) -> usize {
        let mut n = 0;
        for (code, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
            let code = i32::from(*code);
            let ilow = code & 0x3f;
            let ihigh = (code >> 6) & 0x03;

            // Low band: INVQBL, RECONS, LIMIT, then adaptation as the encoder does.
            let low = &mut self.band[0];
            let rlow = (low.s + ((low.det * QM6[ilow as usize]) >> 15)).clamp(-16384, 16383);
            let ril = (ilow >> 2) as usize;
            let dlow = (low.det * QM4[ril]) >> 15;
            low.nb = (((low.nb * 127) >> 7) + WL[RL42[ril] as usize]).clamp(0, 18432);
            low.scale(8);
            low.block4(dlow);

            // High band.
            let high = &mut self.band[1];
            let dhigh = (high.det * QM2[ihigh as usize]) >> 15;
            let rhigh = (dhigh + high.s).clamp(-16384, 16383);
            high.nb = (((high.nb * 127) >> 7) + WH[RH2[ihigh as usize] as usize]).clamp(0, 22528);
            high.scale(10);
            high.block4(dhigh);

            // Receive QMF: rebuild the 16 kHz pair.
            self.x.copy_within(2..24, 0);
            self.x[22] = rlow + rhigh;
            self.x[23] = rlow - rhigh;
            let (mut xout1, mut xout2) = (0, 0);
            for i in 0..12 {
                xout2 += self.x[2 * i] * QMF[i];
                xout1 += self.x[2 * i + 1] * QMF[11 - i];
            }
            pair[0] = sat(xout1 >> 11) as i16;
            pair[1] = sat(xout2 >> 11) as i16;
            n += 2;
        }
        n
    }
}

//! WAV in and out (with `hound`): messages are stored as 8 kHz 16-bit mono, and an
//! uploaded greeting in any PCM/float WAV is mixed down and resampled to that.

use std::io::Cursor;

pub const RATE: u32 = 8000;

/// The greeting callers hear before the beep when a mailbox has none of its own.
pub static DEFAULT_GREETING: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/voicemail/default-greeting.wav"
));

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("not a WAV file: {0}")]
    NotWav(String),
    #[error("WAV with no audio")]
    Empty,
    #[error("audio too long ({0} s)")]
    TooLong(u32),
}

/// Decodes a WAV (PCM 8–32 bit or 32-bit float, any rate and channel count) into 8 kHz
/// mono samples.
pub fn decode_wav(bytes: &[u8], max_seconds: u32) -> Result<Vec<i16>, AudioError> {
    let mut reader =
        hound::WavReader::new(Cursor::new(bytes)).map_err(|e| AudioError::NotWav(e.to_string()))?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(AudioError::NotWav("no channels or no sample rate".into()));
    }
    let seconds = reader.duration() / spec.sample_rate;
    if seconds > max_seconds {
        return Err(AudioError::TooLong(seconds));
    }
    let channels = usize::from(spec.channels);
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| AudioError::NotWav(e.to_string()))?,
        hound::SampleFormat::Int => {
            let scale = 2f32.powi(i32::from(spec.bits_per_sample) - 1);
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 / scale))
                .collect::<Result<_, _>>()
                .map_err(|e| AudioError::NotWav(e.to_string()))?
        }
    };
    let mono: Vec<f32> = interleaved
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32)
        .collect();
    if mono.is_empty() {
        return Err(AudioError::Empty);
    }
    Ok(resample(&mono, spec.sample_rate)
        .into_iter()
        .map(|v| (v.clamp(-1.0, 1.0) * 32767.0) as i16)
        .collect())
}

/// Linear-interpolation resampling to 8 kHz (speech-grade; telephone audio is
/// band-limited to 3.4 kHz anyway, and uploads are usually 8–48 kHz speech).
fn resample(input: &[f32], rate: u32) -> Vec<f32> {
    if rate == RATE {
        return input.to_vec();
    }
    let ratio = f64::from(rate) / f64::from(RATE);
    let out_len = ((input.len() as f64) / ratio).floor() as usize;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * ratio;
            let at = pos.floor() as usize;
            let frac = (pos - at as f64) as f32;
            let a = input[at.min(input.len() - 1)];
            let b = input[(at + 1).min(input.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

/// 8 kHz 16-bit mono WAV bytes.
pub fn encode_wav(samples: &[i16]) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    {
        // Writing into memory cannot fail.
        if let Ok(mut writer) = hound::WavWriter::new(&mut cursor, spec) {
            for s in samples {
                let _ = writer.write_sample(*s);
            }
            let _ = writer.finalize();
        }
    }
    cursor.into_inner()
}

/// A 1 kHz beep (the tone after the greeting).
pub fn beep(ms: u32) -> Vec<i16> {
    let n = RATE * ms / 1000;
    (0..n)
        .map(|i| {
            (9000.0 * (2.0 * std::f64::consts::PI * 1000.0 * f64::from(i) / f64::from(RATE)).sin())
                as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, channels: u16, bits: u16, seconds: f32) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let mut cursor = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
        let frames = (rate as f32 * seconds) as u32;
        for i in 0..frames {
            let v = ((i as f32 / 10.0).sin() * 0.5 * (2f32.powi(i32::from(bits) - 1) - 1.0)) as i32;
            for _ in 0..channels {
                w.write_sample(v).unwrap();
            }
        }
        w.finalize().unwrap();
        cursor.into_inner()
    }

    #[test]
    fn any_pcm_wav_becomes_8k_mono_of_the_same_length() {
        for (rate, channels, bits) in [
            (8000, 1, 16),
            (44100, 2, 16),
            (16000, 1, 24),
            (48000, 2, 32),
            (11025, 1, 8),
        ] {
            let samples = decode_wav(&wav(rate, channels, bits, 2.0), 60).unwrap();
            let secs = samples.len() as f32 / 8000.0;
            assert!(
                (secs - 2.0).abs() < 0.01,
                "{rate}/{channels}/{bits}: {secs}"
            );
        }
    }

    #[test]
    fn other_formats_and_overlong_audio_are_refused() {
        assert!(matches!(
            decode_wav(b"ID3\x03 not a wav at all", 60),
            Err(AudioError::NotWav(_))
        ));
        assert!(matches!(decode_wav(b"", 60), Err(AudioError::NotWav(_))));
        assert!(matches!(
            decode_wav(&wav(8000, 1, 16, 3.0), 2),
            Err(AudioError::TooLong(3))
        ));
    }

    #[test]
    fn encoded_wavs_read_back() {
        let samples: Vec<i16> = (0..8000).map(|i| (i % 200) as i16).collect();
        assert_eq!(decode_wav(&encode_wav(&samples), 60).unwrap().len(), 8000);
        assert_eq!(beep(250).len(), 2000);
        assert!(decode_wav(DEFAULT_GREETING, 60).unwrap().len() > 8000 * 3);
    }
}

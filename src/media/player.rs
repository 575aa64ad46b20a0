//! What the engine plays into calls: tones (one or two frequencies with a cadence:
//! join and leave beeps, ringback) and clips (prompts, music on hold) from WAV files,
//! queued, once or looping, produced a 20 ms frame at a time at 8 or 16 kHz.

use super::audio::AudioError;
use super::codec::{Downsampler, MAX_FRAME, Upsampler};
use std::collections::VecDeque;
use std::io::Cursor;
use std::sync::{Arc, OnceLock};

/// Decoded audio, shared by every call that plays it.
#[derive(Debug, Clone)]
pub struct Clip {
    samples: Arc<[i16]>,
    rate: u32,
}

impl Clip {
    /// A 16-bit mono WAV at 8 or 16 kHz is taken as it is; anything else is mixed
    /// down and resampled to 8 kHz (as voicemail greetings are).
    pub fn from_wav(bytes: &[u8]) -> Result<Clip, AudioError> {
        if let Ok(mut reader) = hound::WavReader::new(Cursor::new(bytes)) {
            let spec = reader.spec();
            if spec.channels == 1
                && spec.bits_per_sample == 16
                && spec.sample_format == hound::SampleFormat::Int
                && (spec.sample_rate == 8000 || spec.sample_rate == 16000)
            {
                let samples: Vec<i16> = reader
                    .samples::<i16>()
                    .collect::<Result<_, _>>()
                    .map_err(|e| AudioError::NotWav(e.to_string()))?;
                if samples.is_empty() {
                    return Err(AudioError::Empty);
                }
                return Ok(Clip {
                    samples: samples.into(),
                    rate: spec.sample_rate,
                });
            }
        }
        Ok(Clip {
            samples: super::audio::decode_wav(bytes, 600)?.into(),
            rate: 8000,
        })
    }

    pub fn from_samples(samples: Vec<i16>, rate: u32) -> Clip {
        Clip {
            samples: samples.into(),
            rate,
        }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(self.rate)
    }
}

/// The prompts and music shipped in `assets/media/` (8 kHz, espeak-ng and sox).
pub mod prompts {
    use super::Clip;
    use std::sync::OnceLock;

    macro_rules! asset {
        ($fn:ident, $file:literal, $doc:literal) => {
            #[doc = $doc]
            pub fn $fn() -> Clip {
                static CLIP: OnceLock<Clip> = OnceLock::new();
                CLIP.get_or_init(|| {
                    let bytes = include_bytes!(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/assets/media/",
                        $file
                    ));
                    // Shipped files are checked by a test; a bad one plays as silence.
                    Clip::from_wav(bytes).unwrap_or_else(|_| Clip::from_samples(vec![0; 160], 8000))
                })
                .clone()
            }
        };
    }

    asset!(
        enter_pin,
        "enter-pin.wav",
        "\"Please enter the conference PIN, followed by the pound key.\""
    );
    asset!(wrong_pin, "wrong-pin.wav", "\"That PIN is not correct.\"");
    asset!(
        first_participant,
        "first-participant.wav",
        "\"You are the first participant.\""
    );
    asset!(slot, "slot.wav", "\"Slot\" (parking: \"slot 7 0 1\").");
    asset!(
        music_on_hold,
        "music-on-hold.wav",
        "An 8 s loop of plucked chords."
    );
    asset!(digit_0, "digit-0.wav", "\"Zero\".");
    asset!(digit_1, "digit-1.wav", "\"One\".");
    asset!(digit_2, "digit-2.wav", "\"Two\".");
    asset!(digit_3, "digit-3.wav", "\"Three\".");
    asset!(digit_4, "digit-4.wav", "\"Four\".");
    asset!(digit_5, "digit-5.wav", "\"Five\".");
    asset!(digit_6, "digit-6.wav", "\"Six\".");
    asset!(digit_7, "digit-7.wav", "\"Seven\".");
    asset!(digit_8, "digit-8.wav", "\"Eight\".");
    asset!(digit_9, "digit-9.wav", "\"Nine\".");

    /// The spoken digit, for `0`–`9`.
    pub fn digit(d: char) -> Option<Clip> {
        Some(match d {
            '0' => digit_0(),
            '1' => digit_1(),
            '2' => digit_2(),
            '3' => digit_3(),
            '4' => digit_4(),
            '5' => digit_5(),
            '6' => digit_6(),
            '7' => digit_7(),
            '8' => digit_8(),
            '9' => digit_9(),
            _ => return None,
        })
    }
}

/// One step of a tone: up to two frequencies (0 = none) for `ms` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneStep {
    pub freqs: [f32; 2],
    pub ms: u32,
}

/// A cadenced tone: its steps, and its level (peak amplitude per frequency).
#[derive(Debug, Clone, PartialEq)]
pub struct Tone {
    pub steps: Arc<[ToneStep]>,
    pub amplitude: f32,
}

impl Tone {
    fn of(steps: &[ToneStep], amplitude: f32) -> Tone {
        Tone {
            steps: steps.into(),
            amplitude,
        }
    }

    fn step(f: f32, ms: u32) -> ToneStep {
        ToneStep {
            freqs: [f, 0.0],
            ms,
        }
    }

    /// A continuous single frequency (e.g. a 400 or 425 Hz dial tone).
    pub fn steady(freq: f32, ms: u32) -> Tone {
        Tone::of(&[Tone::step(freq, ms)], 6000.0)
    }

    /// Someone joined: two short rising beeps.
    pub fn join() -> Tone {
        static T: OnceLock<Tone> = OnceLock::new();
        T.get_or_init(|| {
            Tone::of(
                &[
                    Tone::step(600.0, 80),
                    Tone::step(0.0, 40),
                    Tone::step(900.0, 80),
                ],
                5000.0,
            )
        })
        .clone()
    }

    /// Someone left: two short falling beeps.
    pub fn leave() -> Tone {
        static T: OnceLock<Tone> = OnceLock::new();
        T.get_or_init(|| {
            Tone::of(
                &[
                    Tone::step(900.0, 80),
                    Tone::step(0.0, 40),
                    Tone::step(600.0, 80),
                ],
                5000.0,
            )
        })
        .clone()
    }

    /// European ringback: 425 Hz, 1 s on, 4 s off (loop it).
    pub fn ringback_eu() -> Tone {
        Tone::of(&[Tone::step(425.0, 1000), Tone::step(0.0, 4000)], 5000.0)
    }

    /// North American ringback: 440 + 480 Hz, 2 s on, 4 s off (loop it).
    pub fn ringback_us() -> Tone {
        Tone::of(
            &[
                ToneStep {
                    freqs: [440.0, 480.0],
                    ms: 2000,
                },
                Tone::step(0.0, 4000),
            ],
            3500.0,
        )
    }

    fn duration_ms(&self) -> u64 {
        self.steps.iter().map(|s| u64::from(s.ms)).sum()
    }
}

/// Something to play.
#[derive(Debug, Clone)]
pub enum Sound {
    Clip(Clip),
    Tone(Tone),
    Silence { ms: u32 },
}

impl Sound {
    pub fn duration_ms(&self) -> u64 {
        match self {
            Sound::Clip(c) => c.duration_ms(),
            Sound::Tone(t) => t.duration_ms(),
            Sound::Silence { ms } => u64::from(*ms),
        }
    }
}

#[derive(Debug)]
struct Item {
    sound: Sound,
    looping: bool,
    /// Samples played (at the clip's rate, or the output rate for tones).
    pos: u64,
}

/// Plays a queue of sounds, 20 ms at a time. Queue changes allocate; playing does not.
pub struct Player {
    queue: VecDeque<Item>,
    phase: [f64; 2],
    up: Upsampler,
    down: Downsampler,
    scratch: [i16; MAX_FRAME],
}

impl Default for Player {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            phase: [0.0; 2],
            up: Upsampler::default(),
            down: Downsampler::default(),
            scratch: [0; MAX_FRAME],
        }
    }
}

impl Player {
    /// Appends a sound; a looping one plays until [`Player::clear`] or [`Player::skip`].
    pub fn play(&mut self, sound: Sound, looping: bool) {
        self.queue.push_back(Item {
            sound,
            looping,
            pos: 0,
        });
    }

    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// Ends the current sound (e.g. music on hold when the next one is queued).
    pub fn skip(&mut self) {
        self.queue.pop_front();
    }

    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// Writes the next 20 ms at `rate` (8000 or 16000) into `out`. Returns false (and
    /// silence) when there is nothing to play.
    pub fn fill(&mut self, out: &mut [i16], rate: u32) -> bool {
        let n = ((rate / 50) as usize).min(out.len());
        let out = &mut out[..n];
        let Some(item) = self.queue.front_mut() else {
            out.fill(0);
            return false;
        };
        let finished = match &item.sound {
            Sound::Silence { ms } => {
                out.fill(0);
                item.pos += n as u64;
                item.pos >= u64::from(*ms) * u64::from(rate) / 1000
            }
            Sound::Tone(tone) => {
                let total: u64 = tone.duration_ms() * u64::from(rate) / 1000;
                for o in out.iter_mut() {
                    let at_ms = if total == 0 {
                        0
                    } else {
                        (item.pos % total) * 1000 / u64::from(rate)
                    };
                    let mut acc = 0u64;
                    let mut step = tone.steps.first().copied();
                    for s in tone.steps.iter() {
                        acc += u64::from(s.ms);
                        if at_ms < acc {
                            step = Some(*s);
                            break;
                        }
                    }
                    let mut v = 0.0f64;
                    if let Some(step) = step {
                        for (k, f) in step.freqs.iter().enumerate() {
                            if *f > 0.0 {
                                self.phase[k] += f64::from(*f) / f64::from(rate);
                                self.phase[k] -= self.phase[k].floor();
                                v += (self.phase[k] * std::f64::consts::TAU).sin();
                            } else {
                                self.phase[k] = 0.0;
                            }
                        }
                    }
                    *o = (v * f64::from(tone.amplitude)) as i16;
                    item.pos += 1;
                }
                !item.looping && item.pos >= total
            }
            Sound::Clip(clip) => {
                let want = (clip.rate / 50) as usize;
                let len = clip.samples.len() as u64;
                let src = &mut self.scratch[..want.min(MAX_FRAME)];
                for s in src.iter_mut() {
                    *s = if item.looping || item.pos < len {
                        clip.samples[(item.pos % len.max(1)) as usize]
                    } else {
                        0
                    };
                    item.pos += 1;
                }
                match (clip.rate, rate) {
                    (a, b) if a == b => out.copy_from_slice(&src[..n]),
                    (8000, _) => {
                        self.up.process(src, out);
                    }
                    _ => {
                        self.down.process(src, out);
                    }
                }
                !item.looping && item.pos >= len
            }
        };
        if finished {
            self.queue.pop_front();
            self.phase = [0.0; 2];
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::tests::tone_power;

    fn render(p: &mut Player, rate: u32, frames: usize) -> Vec<i16> {
        let mut all = Vec::new();
        for _ in 0..frames {
            let mut buf = [0i16; MAX_FRAME];
            p.fill(&mut buf, rate);
            all.extend_from_slice(&buf[..(rate / 50) as usize]);
        }
        all
    }

    #[test]
    fn tones_have_their_frequency_and_cadence_at_both_rates() {
        for rate in [8000, 16000] {
            let mut p = Player::default();
            p.play(Sound::Tone(Tone::ringback_eu()), true);
            let audio = render(&mut p, rate, 300); // 6 s
            let per_ms = (rate / 1000) as usize;
            let on = &audio[100 * per_ms..900 * per_ms];
            let off = &audio[1500 * per_ms..4500 * per_ms];
            assert!(
                tone_power(on, rate, 425.0) > 1e6,
                "425 Hz while on at {rate}"
            );
            assert!(off.iter().all(|s| *s == 0), "silent while off");
            // Looping: on again after 5 s.
            assert!(tone_power(&audio[5100 * per_ms..5900 * per_ms], rate, 425.0) > 1e6);
            assert!(!p.is_idle());
        }
        let mut p = Player::default();
        p.play(Sound::Tone(Tone::join()), false);
        let audio = render(&mut p, 8000, 15);
        assert!(tone_power(&audio[..640], 8000, 600.0) > 1e6);
        assert!(tone_power(&audio[960..1600], 8000, 900.0) > 1e6);
        assert!(p.is_idle(), "a 200 ms beep is over after 300 ms");
    }

    #[test]
    fn shipped_prompts_decode_and_clips_play_once_or_loop() {
        for clip in [
            prompts::enter_pin(),
            prompts::wrong_pin(),
            prompts::first_participant(),
            prompts::slot(),
            prompts::music_on_hold(),
        ]
        .into_iter()
        .chain(('0'..='9').filter_map(prompts::digit))
        {
            assert_eq!(clip.rate(), 8000);
            assert!(clip.duration_ms() >= 250, "{} ms", clip.duration_ms());
        }
        let clip = Clip::from_samples(vec![1000; 800], 8000); // 100 ms
        let mut p = Player::default();
        p.play(Sound::Clip(clip.clone()), false);
        p.play(Sound::Silence { ms: 40 }, false);
        let audio = render(&mut p, 8000, 8);
        assert!(audio[..800].iter().all(|s| *s == 1000));
        assert!(audio[800..].iter().all(|s| *s == 0));
        assert!(p.is_idle());
        // A looping 8 kHz clip into a 16 kHz mix keeps going, upsampled.
        p.play(Sound::Clip(clip), true);
        let audio = render(&mut p, 16000, 20);
        assert_eq!(audio.len(), 20 * 320);
        assert!(audio[6000..].iter().all(|s| (*s - 1000).abs() < 30));
        assert!(!p.is_idle());
        p.clear();
        assert!(!p.fill(&mut [0; 320], 16000));
    }
}

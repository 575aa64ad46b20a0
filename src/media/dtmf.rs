//! RFC 4733 telephone-events: the 4-byte payload, a receiver that turns a stream of
//! event packets into each digit once, and a sender that plays a digit as packets.

/// Why a telephone-event payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    #[error("telephone-event payload shorter than 4 bytes")]
    Short,
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// 0–9, 10 = `*`, 11 = `#`, 12–15 = A–D.
    pub event: u8,
    /// The E bit: this is (one of the three copies of) the event's last packet.
    pub end: bool,
    /// Power level in −dBm0 (0–63).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Reads the first event of a payload (RFC 4733 §2.5.1.5: redundant events may
    /// follow in RFC 2198 blocks, which we do not negotiate).
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let [event, flags, hi, lo, ..] = *payload else {
            return Err(DtmfError::Short);
        };
        Ok(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([hi, lo]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let [hi, lo] = self.duration.to_be_bytes();
        [
            self.event,
            (if self.end { 0x80 } else { 0 }) | (self.volume & 0x3f),
            hi,
            lo,
        ]
    }
}

/// The digit a DTMF event code stands for.
pub fn digit_of(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The event code of a digit (`0-9 * # A-D`, lower-case letters too).
pub fn event_of(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}

/// Turns incoming telephone-event packets into digits, once per key press.
///
/// An event is named by its RTP timestamp (RFC 4733 §2.5.1.2: every packet of one
/// event carries the event's start time), so updates and the three end packets of
/// the same press are recognised and ignored; a press whose first packets were lost
/// is still reported from whichever packet arrives first. Old timestamps (reordered
/// packets of an earlier press) are ignored too.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    /// The SSRC and start timestamp of the last event reported.
    last: Option<(u32, u32)>,
}

impl DtmfReceiver {
    /// Feeds one packet; returns the digit when this packet starts a new press.
    pub fn on_packet(&mut self, ssrc: u32, timestamp: u32, event: &TelephoneEvent) -> Option<char> {
        if let Some((last_ssrc, last_ts)) = self.last
            && last_ssrc == ssrc
        {
            // Same or earlier start time: the same press or a straggler of an old one.
            if (timestamp.wrapping_sub(last_ts) as i32) <= 0 {
                return None;
            }
        }
        let digit = digit_of(event.event)?;
        self.last = Some((ssrc, timestamp));
        Some(digit)
    }
}

/// Plays one digit as RFC 4733 packets, one call per 20 ms tick.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    /// Total length of the tone in timestamp units.
    length: u16,
    /// Duration reported so far.
    sent: u16,
    finished: bool,
}

/// What to send on one tick: up to three payloads (the end packet goes three times,
/// RFC 4733 §2.5.1.4), and whether the first carries the marker bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfTick {
    pub payload: [u8; 4],
    pub copies: usize,
    pub marker: bool,
}

impl DtmfSender {
    /// A sender for `digit` held for `ms` milliseconds (at least one 20 ms packet).
    pub fn new(digit: char, ms: u32) -> Option<Self> {
        let event = event_of(digit)?;
        let length = (ms.clamp(20, 5000) * 8) as u16;
        Some(Self {
            event,
            length,
            sent: 0,
            finished: false,
        })
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The packets for the next 20 ms, or `None` once the end has been sent.
    pub fn tick(&mut self) -> Option<DtmfTick> {
        if self.finished {
            return None;
        }
        let marker = self.sent == 0;
        self.sent = self.sent.saturating_add(160).min(self.length);
        let end = self.sent >= self.length;
        self.finished = end;
        let payload = TelephoneEvent {
            event: self.event,
            end,
            volume: 10,
            duration: self.sent,
        }
        .to_bytes();
        Some(DtmfTick {
            payload,
            copies: if end { 3 } else { 1 },
            marker,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_and_build_per_rfc_4733() {
        // RFC 4733 figure 1 layout: event 5, E bit, volume 10, duration 800.
        let bytes = [0x05, 0x8a, 0x03, 0x20];
        let ev = TelephoneEvent::parse(&bytes).unwrap();
        assert_eq!(
            ev,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(ev.to_bytes(), bytes);
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), Err(DtmfError::Short));
        assert_eq!(digit_of(11), Some('#'));
        assert_eq!(digit_of(10), Some('*'));
        assert_eq!(digit_of(15), Some('D'));
        assert_eq!(digit_of(16), None);
        for d in "0123456789*#ABCD".chars() {
            assert_eq!(digit_of(event_of(d).unwrap()), Some(d));
        }
        assert_eq!(event_of('x'), None);
    }

    fn ev(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
    }

    #[test]
    fn a_press_with_updates_and_three_end_packets_is_one_digit() {
        let mut rx = DtmfReceiver::default();
        let mut digits = Vec::new();
        let press = |rx: &mut DtmfReceiver, digits: &mut Vec<char>, ts: u32, event: u8| {
            for d in [160, 320, 480] {
                digits.extend(rx.on_packet(7, ts, &ev(event, false, d)));
            }
            for _ in 0..3 {
                digits.extend(rx.on_packet(7, ts, &ev(event, true, 640)));
            }
        };
        press(&mut rx, &mut digits, 1000, 1);
        // The same key again is a new press (a new timestamp).
        press(&mut rx, &mut digits, 3000, 1);
        press(&mut rx, &mut digits, 5000, 11);
        assert_eq!(digits, vec!['1', '1', '#']);
    }

    #[test]
    fn a_press_heard_only_by_its_end_packets_still_counts_once() {
        let mut rx = DtmfReceiver::default();
        let got: Vec<char> = (0..3)
            .filter_map(|_| rx.on_packet(1, 800, &ev(9, true, 800)))
            .collect();
        assert_eq!(got, vec!['9']);
    }

    #[test]
    fn stragglers_of_an_old_press_and_wrapped_timestamps_are_handled() {
        let mut rx = DtmfReceiver::default();
        let near_wrap = u32::MAX - 100;
        assert_eq!(rx.on_packet(1, near_wrap, &ev(2, false, 160)), Some('2'));
        assert_eq!(rx.on_packet(1, 500, &ev(3, false, 160)), Some('3'));
        // A reordered end packet of the earlier press.
        assert_eq!(rx.on_packet(1, near_wrap, &ev(2, true, 800)), None);
        // A new stream (SSRC) may reuse any timestamp.
        assert_eq!(rx.on_packet(2, 500, &ev(4, false, 160)), Some('4'));
        // Events that are not DTMF (e.g. 32, modem tones) are no digits.
        assert_eq!(rx.on_packet(2, 900, &ev(32, false, 160)), None);
    }

    #[test]
    fn the_sender_grows_the_duration_and_ends_three_times() {
        let mut tx = DtmfSender::new('#', 100).unwrap();
        let mut ticks = Vec::new();
        while let Some(t) = tx.tick() {
            ticks.push(t);
        }
        assert_eq!(ticks.len(), 5);
        assert!(ticks[0].marker && !ticks[1].marker);
        let durations: Vec<u16> = ticks
            .iter()
            .map(|t| TelephoneEvent::parse(&t.payload).unwrap().duration)
            .collect();
        assert_eq!(durations, vec![160, 320, 480, 640, 800]);
        let last = TelephoneEvent::parse(&ticks[4].payload).unwrap();
        assert!(last.end && last.event == 11);
        assert_eq!(ticks[4].copies, 3);
        assert!(ticks[..4].iter().all(|t| t.copies == 1));
        assert!(tx.is_finished());
        assert!(DtmfSender::new('x', 100).is_none());

        // What the sender makes, the receiver reads as one digit.
        let mut rx = DtmfReceiver::default();
        let mut got = Vec::new();
        for t in &ticks {
            for _ in 0..t.copies {
                got.extend(rx.on_packet(5, 42, &TelephoneEvent::parse(&t.payload).unwrap()));
            }
        }
        assert_eq!(got, vec!['#']);
    }
}

//! Unfinished websocket messages. A connection is watched once it has become a
//! websocket (the server answered `101 Switching Protocols`): a peer that starts a
//! websocket message and does not finish it within the message timeout has its
//! connection closed, while a socket idle between messages stays open as long as the
//! peer likes. tungstenite waits for a frame's announced length without limit, so this
//! is where an unfinished frame can be seen: the watcher follows the frame headers in
//! the bytes read (RFC 6455 §5.2) without copying or buffering them.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose websocket frames are followed once it has switched protocols.
pub struct Watched<IO> {
    io: IO,
    message_timeout: Duration,
    websocket: bool,
    frames: FrameTracker,
    /// Set while a message is unfinished: when it must be complete.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<IO> Watched<IO> {
    pub fn new(io: IO, message_timeout: Duration) -> Self {
        Self {
            io,
            message_timeout,
            websocket: false,
            frames: FrameTracker::default(),
            deadline: None,
        }
    }

    /// After `written` went out: a 101 answer turns the connection into a websocket.
    fn saw_written(&mut self, written: &[u8]) {
        if !self.websocket && written.starts_with(b"HTTP/1.1 101 ") {
            self.websocket = true;
        }
    }

    fn timed_out() -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "websocket message not finished within the message timeout",
        )
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.websocket {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        if this.deadline.as_ref().is_some_and(|d| d.is_elapsed()) {
            return Poll::Ready(Err(Self::timed_out()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.frames.feed(&buf.filled()[before..]);
                if !this.frames.unfinished() {
                    this.deadline = None;
                } else if this.deadline.is_none() {
                    this.deadline = Some(Box::pin(tokio::time::sleep(this.message_timeout)));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                // Waiting for the rest of a message: wake at its deadline, and fail then.
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(Self::timed_out()))
                } else {
                    Poll::Pending
                }
            }
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &written {
            this.saw_written(&buf[..*n]);
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &written
            && *n > 0
            && let Some(first) = bufs.iter().find(|b| !b.is_empty())
        {
            this.saw_written(&first[..(*n).min(first.len())]);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Follows websocket frame boundaries in a byte stream (RFC 6455 §5.2): a frame header
/// of 2–14 bytes, then its payload; a data message may span frames until one with FIN.
#[derive(Debug, Default)]
struct FrameTracker {
    header: [u8; 14],
    header_len: usize,
    payload_left: u64,
    /// A data message whose last frame (FIN) has not come yet.
    fragmented: bool,
}

impl FrameTracker {
    /// Header bytes this frame needs, once its first two are known.
    fn header_size(&self) -> usize {
        let extended = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        2 + extended + mask
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len() as u64);
                self.payload_left -= n;
                // `n` is at most `bytes.len()`, so it fits in usize.
                bytes = &bytes[n as usize..];
                continue;
            }
            self.header[self.header_len] = bytes[0];
            self.header_len += 1;
            bytes = &bytes[1..];
            if self.header_len < 2 || self.header_len < self.header_size() {
                continue;
            }
            let fin = self.header[0] & 0x80 != 0;
            let opcode = self.header[0] & 0x0f;
            self.payload_left = match self.header[1] & 0x7f {
                126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                127 => {
                    let mut len = [0u8; 8];
                    len.copy_from_slice(&self.header[2..10]);
                    u64::from_be_bytes(len)
                }
                short => u64::from(short),
            };
            self.header_len = 0;
            // Continuation, text and binary frames make up messages; control frames
            // (close, ping, pong) come whole between them.
            if opcode <= 2 {
                self.fragmented = !fin;
            }
        }
    }

    /// Whether a frame or a fragmented message has started and not ended.
    fn unfinished(&self) -> bool {
        self.header_len > 0 || self.payload_left > 0 || self.fragmented
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame with `len` payload bytes announced.
    fn frame_header(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match len {
            0..=125 => out.push(0x80 | len as u8),
            126..=65535 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out
    }

    #[test]
    fn whole_frames_leave_nothing_unfinished_whatever_the_chunking() {
        let mut stream = frame_header(true, 1, 5);
        stream.extend_from_slice(b"hello");
        stream.extend(frame_header(true, 9, 0)); // ping
        stream.extend(frame_header(true, 2, 300));
        stream.extend(vec![0u8; 300]);
        stream.extend(frame_header(true, 2, 70_000));
        stream.extend(vec![0u8; 70_000]);
        for chunk in [1, 2, 3, 7, 64, 4096, stream.len()] {
            let mut tracker = FrameTracker::default();
            for piece in stream.chunks(chunk) {
                tracker.feed(piece);
            }
            assert!(!tracker.unfinished(), "chunks of {chunk}");
        }
    }

    #[test]
    fn a_short_payload_a_partial_header_or_a_fragmented_message_is_unfinished() {
        let mut tracker = FrameTracker::default();
        let mut partial = frame_header(true, 1, 9999);
        partial.extend_from_slice(&[0u8; 10]);
        tracker.feed(&partial);
        assert!(tracker.unfinished(), "payload short of its length");

        let mut tracker = FrameTracker::default();
        tracker.feed(&frame_header(true, 1, 200)[..3]);
        assert!(tracker.unfinished(), "header cut short");

        let mut tracker = FrameTracker::default();
        let mut first = frame_header(false, 1, 2);
        first.extend_from_slice(b"ab");
        tracker.feed(&first);
        assert!(tracker.unfinished(), "first fragment only");
        let mut ping = frame_header(true, 9, 1);
        ping.push(0);
        tracker.feed(&ping);
        assert!(
            tracker.unfinished(),
            "a ping in between does not end the message"
        );
        let mut last = frame_header(true, 0, 1);
        last.push(b'c');
        tracker.feed(&last);
        assert!(!tracker.unfinished(), "the final fragment ends it");
    }
}

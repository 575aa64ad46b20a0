//! hyper's own error answers, given a JSON body.
//!
//! hyper answers a few requests itself, before any of our layers runs, and with an empty
//! body: a request it cannot parse (400), a request target over 65,534 bytes (414), a
//! head larger than its read buffer (431). Nothing in hyper lets the application supply
//! that answer, so each connection's IO passes through [`JsonErrorIo`], which swaps
//! exactly those answers for the same status with the `{"error","message"}` body every
//! other error has.
//!
//! How it tells them apart: hyper writes such an answer as a bare head (`HTTP/1.1 414
//! URI Too Long`, `connection: close`, `content-length: 0`, `date: …`) in one write, and
//! then shuts the connection down. A write that is exactly such a head is held back. If
//! the connection is shut down next, the head was hyper's error answer and the JSON one
//! goes out instead; if anything else is written first, the held bytes go out unchanged
//! and in order (they were body bytes that merely looked like a head). Our own error
//! responses never match: they all have JSON bodies. After a `101 Switching Protocols`
//! the bytes are websocket frames and are passed through untouched.
//!
//! Limits: a head that hyper appends to the unflushed end of an earlier pipelined
//! response (possible only while the socket pushes back) goes out as hyper wrote it.

use super::{ApiError, MAX_URI_BYTES};
use axum::http::StatusCode;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longer writes are never one of hyper's error heads (they are about 100 bytes).
const MAX_ERROR_HEAD: usize = 512;

/// A connection's IO: reads pass through; writes pass through except hyper's own error
/// heads, which are replaced by the same status with a JSON body (see the module doc).
pub struct JsonErrorIo<T> {
    inner: T,
    /// A write that is exactly one of hyper's error heads, not passed on yet.
    held: Option<Vec<u8>>,
    /// Bytes owed to `inner` before anything newer: released held bytes, or the JSON
    /// answer at shutdown; `owed_from` of them are written.
    owed: Vec<u8>,
    owed_from: usize,
    /// Set once a `101` went out: what follows is another protocol, never inspected.
    upgraded: bool,
}

impl<T> JsonErrorIo<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            held: None,
            owed: Vec::new(),
            owed_from: 0,
            upgraded: false,
        }
    }
}

impl<T: AsyncWrite + Unpin> JsonErrorIo<T> {
    /// Writes what is owed, if anything.
    fn poll_owed(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.owed_from < self.owed.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.owed[self.owed_from..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.owed_from += n;
        }
        self.owed.clear();
        self.owed_from = 0;
        Poll::Ready(Ok(()))
    }

    /// Gets ready to pass a write starting with `first` on: the debt paid, held bytes
    /// released (something followed them, so they were not hyper's last word).
    fn poll_before_write(&mut self, cx: &mut Context<'_>, first: &[u8]) -> Poll<io::Result<()>> {
        ready!(self.poll_owed(cx))?;
        if let Some(held) = self.held.take() {
            self.owed = held;
            ready!(self.poll_owed(cx))?;
        }
        if !self.upgraded && first.starts_with(b"HTTP/1.1 101 ") {
            self.upgraded = true;
        }
        Poll::Ready(Ok(()))
    }

    /// Holds `buf` back when it is one of hyper's error heads; `true` if held.
    fn hold(&mut self, buf: &[u8]) -> bool {
        if self.upgraded || self.held.is_some() || ErrorHead::parse(buf).is_none() {
            return false;
        }
        self.held = Some(buf.to_vec());
        true
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrorIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrorIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_owed(cx))?;
        if this.hold(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        ready!(this.poll_before_write(cx, buf))?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if !this.upgraded && total <= MAX_ERROR_HEAD {
            // Small enough to be a head: look at it whole. The bytes written are a prefix
            // of the concatenation, as a vectored write's count must be.
            let flat: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            return Pin::new(this).poll_write(cx, &flat);
        }
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        ready!(this.poll_before_write(cx, first))?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Held bytes stay held: only what comes next tells what they were.
        ready!(self.poll_owed(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(held) = this.held.take() {
            // The last thing written before the close: hyper's own answer.
            this.owed = ErrorHead::parse(&held).map_or(held, |head| head.json_answer());
            this.owed_from = 0;
        }
        ready!(this.poll_owed(cx))?;
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// One of the answers hyper writes on its own.
#[derive(Debug, PartialEq, Eq)]
struct ErrorHead {
    status: StatusCode,
    date: Option<String>,
}

impl ErrorHead {
    /// `buf` if it is exactly a bare 400, 414 or 431 head with `connection: close` and
    /// `content-length: 0` and no header but those and `date`, as hyper writes them.
    fn parse(buf: &[u8]) -> Option<ErrorHead> {
        if buf.len() > MAX_ERROR_HEAD {
            return None;
        }
        let text = std::str::from_utf8(buf).ok()?.strip_suffix("\r\n\r\n")?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next()?;
        let rest = status_line
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?;
        let status = StatusCode::from_bytes(rest.get(..3)?.as_bytes()).ok()?;
        if !matches!(status.as_u16(), 400 | 414 | 431)
            || rest.get(3..)
                != status
                    .canonical_reason()
                    .map(|r| format!(" {r}"))
                    .as_deref()
        {
            return None;
        }
        let (mut close, mut empty, mut date) = (false, false, None);
        for line in lines {
            let (name, value) = line.split_once(':')?;
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "connection" if value.eq_ignore_ascii_case("close") => close = true,
                "content-length" if value == "0" => empty = true,
                "date" if date.is_none() => date = Some(value.to_owned()),
                _ => return None,
            }
        }
        (close && empty).then_some(ErrorHead { status, date })
    }

    /// The same answer with our JSON body.
    fn json_answer(&self) -> Vec<u8> {
        let error = match self.status {
            StatusCode::URI_TOO_LONG => ApiError::uri_too_long(MAX_URI_BYTES),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
                ApiError::from_status(self.status, "The request headers are too large")
            }
            _ => ApiError::bad_request("The request is not valid HTTP/1.1"),
        };
        let body = error.body().to_string();
        let date = self
            .date
            .as_deref()
            .map(|d| format!("date: {d}\r\n"))
            .unwrap_or_default();
        let mut out = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{date}\r\n",
            self.status.as_str(),
            self.status.canonical_reason().unwrap_or_default(),
            body.len(),
        )
        .into_bytes();
        out.extend_from_slice(body.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const HYPER_414: &[u8] = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 23:41:46 GMT\r\n\r\n";
    const HYPER_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 23:41:46 GMT\r\n\r\n";
    const HYPER_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 23:41:46 GMT\r\n\r\n";

    /// Runs `writes` (each a list of slices for one vectored write, or one plain write)
    /// through a `JsonErrorIo`, shuts it down, and returns what the peer received.
    async fn peer_sees(writes: &[&[&[u8]]]) -> Vec<u8> {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut io = JsonErrorIo::new(near);
        for parts in writes {
            if let [one] = parts {
                io.write_all(one).await.unwrap();
            } else {
                let slices: Vec<io::IoSlice<'_>> =
                    parts.iter().map(|p| io::IoSlice::new(p)).collect();
                let total: usize = parts.iter().map(|p| p.len()).sum();
                let n = io.write_vectored(&slices).await.unwrap();
                assert_eq!(n, total, "small vectored writes go whole");
            }
            io.flush().await.unwrap();
        }
        io.shutdown().await.unwrap();
        drop(io);
        let mut out = Vec::new();
        far.read_to_end(&mut out).await.unwrap();
        out
    }

    fn split(answer: &[u8]) -> (String, serde_json::Value) {
        let text = String::from_utf8(answer.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_owned(), serde_json::from_str(body).unwrap())
    }

    #[tokio::test]
    async fn hypers_own_answers_get_a_json_body_with_the_same_status() {
        for (raw, status, code) in [
            (HYPER_414, "414 URI Too Long", "uri_too_long"),
            (HYPER_400, "400 Bad Request", "bad_request"),
            (
                HYPER_431,
                "431 Request Header Fields Too Large",
                "request_header_fields_too_large",
            ),
        ] {
            let (head, body) = split(&peer_sees(&[&[raw]]).await);
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{head}"
            );
            assert!(head.contains("content-type: application/json"), "{head}");
            assert!(head.contains("connection: close"), "{head}");
            assert!(
                head.contains("date: Tue, 01 Dec 2026 23:41:46 GMT"),
                "{head}"
            );
            assert_eq!(body["error"], code);
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(length, body.to_string().len());
        }
    }

    #[tokio::test]
    async fn a_vectored_error_head_is_recognised_too() {
        let (head_end, rest) = HYPER_414.split_at(30);
        let (head, body) = split(&peer_sees(&[&[head_end, rest]]).await);
        assert!(head.starts_with("HTTP/1.1 414 "));
        assert_eq!(body["error"], "uri_too_long");
    }

    #[tokio::test]
    async fn a_look_alike_followed_by_more_bytes_goes_out_unchanged_and_in_order() {
        let before = b"HTTP/1.1 200 OK\r\ncontent-length: 101\r\n\r\n".as_slice();
        let after = b"more body".as_slice();
        let seen = peer_sees(&[&[before], &[HYPER_400], &[after]]).await;
        assert_eq!(seen, [before, HYPER_400, after].concat());
    }

    #[tokio::test]
    async fn ordinary_responses_pass_through_untouched() {
        let response = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}".as_slice();
        assert_eq!(peer_sees(&[&[response]]).await, response);
        let empty_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n".as_slice();
        assert_eq!(
            peer_sees(&[&[empty_400]]).await,
            empty_400,
            "no connection: close"
        );
    }

    #[tokio::test]
    async fn after_a_101_nothing_is_inspected() {
        let upgrade = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n".as_slice();
        let seen = peer_sees(&[&[upgrade], &[HYPER_414]]).await;
        assert_eq!(seen, [upgrade, HYPER_414].concat());
    }

    #[test]
    fn only_hypers_exact_error_heads_match() {
        for ok in [HYPER_400, HYPER_414, HYPER_431] {
            assert!(
                ErrorHead::parse(ok).is_some(),
                "{}",
                String::from_utf8_lossy(ok)
            );
        }
        let no_date =
            b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            ErrorHead::parse(no_date),
            Some(ErrorHead {
                status: StatusCode::URI_TOO_LONG,
                date: None
            })
        );
        for bad in [
            &b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 5\r\n\r\n",
            b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\nx-other: 1\r\n\r\n",
            b"HTTP/1.1 414 Too Long\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\n\r\n{}",
            b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\n",
            b"",
        ] {
            assert!(ErrorHead::parse(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }
}

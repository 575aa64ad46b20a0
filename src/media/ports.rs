//! The RTP port pool (`--rtp-ports`, default 10000-20000): even ports (RTP; RTCP would
//! take the odd one above), handed out round-robin and given back when dropped.

use crate::sync::MutexExt;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct PortPool {
    first: u16,
    last: u16,
    state: Mutex<(u16, BTreeSet<u16>)>,
}

/// A bound RTP socket whose port returns to the pool when this is dropped.
///
/// The socket is non-blocking and not registered with tokio's reactor: an owner that
/// reads on a timer (a conference room drains each socket once per 20 ms tick) would
/// otherwise have the reactor woken by every datagram, which costs more than the
/// packet's own processing. An owner that awaits readiness asks for [`Lease::registered`].
pub struct Lease {
    pub socket: std::net::UdpSocket,
    pub port: u16,
    pool: Arc<PortPool>,
}

impl Lease {
    /// The same socket registered with the current tokio runtime, for owners that
    /// await it. Read through it only (tokio's readiness is cleared by its own reads).
    pub fn registered(&self) -> std::io::Result<tokio::net::UdpSocket> {
        tokio::net::UdpSocket::from_std(self.socket.try_clone()?)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.state.lock_unpoisoned().1.remove(&self.port);
    }
}

impl PortPool {
    /// `first` and `last` inclusive; `first` is rounded up to even.
    pub fn new(first: u16, last: u16) -> Arc<Self> {
        let first = first + first % 2;
        Arc::new(Self {
            first,
            last: last.max(first),
            state: Mutex::new((first, BTreeSet::new())),
        })
    }

    /// Parses `10000-20000`.
    pub fn parse(raw: &str) -> Result<Arc<Self>, String> {
        let (a, b) = raw
            .split_once('-')
            .ok_or("expected FIRST-LAST, e.g. 10000-20000")?;
        let a: u16 = a.trim().parse().map_err(|_| "bad first port")?;
        let b: u16 = b.trim().parse().map_err(|_| "bad last port")?;
        if a == 0 || b < a + 1 {
            return Err("the range needs at least one even port above 0".into());
        }
        Ok(Self::new(a, b))
    }

    /// Binds the next free even port on `ip`.
    pub fn lease(self: &Arc<Self>, ip: IpAddr) -> std::io::Result<Lease> {
        let count = (u32::from(self.last) - u32::from(self.first)) / 2 + 1;
        for _ in 0..count {
            let port = {
                let mut state = self.state.lock_unpoisoned();
                let port = state.0;
                state.0 = if u32::from(port) + 2 > u32::from(self.last) {
                    self.first
                } else {
                    port + 2
                };
                if !state.1.insert(port) {
                    continue;
                }
                port
            };
            match std::net::UdpSocket::bind(SocketAddr::new(ip, port)) {
                Ok(socket) => {
                    socket.set_nonblocking(true)?;
                    return Ok(Lease {
                        socket,
                        port,
                        pool: self.clone(),
                    });
                }
                Err(_) => {
                    // Taken by someone else: skip it.
                    self.state.lock_unpoisoned().1.remove(&port);
                }
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "no free RTP port",
        ))
    }

    pub fn in_use(&self) -> usize {
        self.state.lock_unpoisoned().1.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leases_are_even_distinct_and_given_back() {
        let pool = PortPool::parse("41001-41010").unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = pool.lease(ip).unwrap();
        let b = pool.lease(ip).unwrap();
        assert!(a.port.is_multiple_of(2) && b.port.is_multiple_of(2) && a.port != b.port);
        assert!((41002..=41010).contains(&a.port));
        assert_eq!(pool.in_use(), 2);
        drop(a);
        drop(b);
        assert_eq!(pool.in_use(), 0);
        let all: Vec<Lease> = (0..5).map(|_| pool.lease(ip).unwrap()).collect();
        assert!(pool.lease(ip).is_err(), "five even ports in 41002..=41010");
        drop(all);
        assert!(PortPool::parse("20000-10000").is_err());
        assert!(PortPool::parse("nope").is_err());
    }
}

//! The simulated network ([`SimNet`]) as tokio streams on tokio's clock (feature `tokio`): a
//! pump task advances the network as (paused) tokio time passes; each link is an `AsyncRead
//! + AsyncWrite` stream ([`SimStream`]). The async drivers' tests (umqtt-tokio, and
//! umqtt-embedded through `embedded-io-adapters`) open their links with [`Sim::open`].

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::sim::{ClientEvent, ConnId, SimNet};

struct Inner {
    net: SimNet,
    epoch: Instant,
    wakers: Vec<Waker>,
}

impl Inner {
    fn now(&self) -> umqtt_core::Instant {
        let millis = Instant::now()
            .saturating_duration_since(self.epoch)
            .as_millis();
        umqtt_core::Instant::from_millis(millis as u64)
    }

    /// Delivers what is due (the pump then wakes the streams).
    fn advance(&mut self) -> umqtt_core::Instant {
        let now = self.now();
        self.net.advance(now);
        now
    }

    /// Wakes every stream waiting for input (never from a stream's own poll: it would wake
    /// itself forever).
    fn wake(&mut self) {
        for waker in self.wakers.drain(..) {
            waker.wake();
        }
    }
}

/// A `SimNet` shared by the test and the client's streams.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

impl Sim {
    /// Wraps `net` (its clock starts now, on tokio's clock) and spawns the pump.
    pub fn new(net: SimNet) -> Sim {
        let sim = Sim {
            inner: Arc::new(Mutex::new(Inner {
                net,
                epoch: Instant::now(),
                wakers: Vec::new(),
            })),
            changed: Arc::new(Notify::new()),
        };
        let pump = sim.clone();
        tokio::spawn(async move { pump.pump().await });
        sim
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the network at the current virtual time.
    pub fn with<T>(&self, f: impl FnOnce(&mut SimNet, umqtt_core::Instant) -> T) -> T {
        let result = {
            let mut inner = self.lock();
            let now = inner.advance();
            let result = f(&mut inner.net, now);
            inner.wake();
            result
        };
        self.changed.notify_one();
        result
    }

    async fn pump(self) {
        loop {
            let next = {
                let mut inner = self.lock();
                inner.advance();
                inner.wake();
                let epoch = inner.epoch;
                inner
                    .net
                    .next_timeout()
                    .map(|at| epoch + Duration::from_millis(at.as_millis()))
            };
            let changed = self.changed.notified();
            match next {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at.max(Instant::now())) => {}
                        () = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// The instant virtual time 0 is (for the client's clock).
    pub fn epoch(&self) -> Instant {
        self.lock().epoch
    }

    /// Opens a link to `server` (as a connector would).
    pub async fn open(&self, server: usize) -> io::Result<SimStream> {
        let conn = self.with(|net, now| net.open(now, server));
        // Closes the link if the open is abandoned (a black hole never answers).
        let mut guard = Some(SimStream {
            sim: self.clone(),
            conn,
            rest: Vec::new(),
            ended: false,
        });
        std::future::poll_fn(|cx| {
            let mut inner = self.lock();
            inner.advance();
            match inner.net.poll_client_event(conn) {
                Some(ClientEvent::Opened) => Poll::Ready(Ok(())),
                Some(_) => Poll::Ready(Err(io::Error::from(io::ErrorKind::ConnectionRefused))),
                None => {
                    inner.wakers.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await?;
        guard
            .take()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

/// One link, client side.
pub struct SimStream {
    sim: Sim,
    conn: ConnId,
    rest: Vec<u8>,
    ended: bool,
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.rest.is_empty() && !this.ended {
            let mut inner = this.sim.lock();
            inner.advance();
            match inner.net.poll_client_event(this.conn) {
                Some(ClientEvent::Data(bytes)) => this.rest = bytes,
                Some(ClientEvent::Closed { reset: true }) => {
                    this.ended = true;
                    return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
                }
                Some(_) => this.ended = true,
                None => {
                    inner.wakers.push(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        }
        let n = this.rest.len().min(buf.remaining());
        buf.put_slice(&this.rest[..n]);
        this.rest.drain(..n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let conn = self.conn;
        self.sim.with(|net, now| net.send(now, conn, buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let conn = self.conn;
        self.sim.with(|net, now| net.close(now, conn));
        Poll::Ready(Ok(()))
    }
}

impl Drop for SimStream {
    fn drop(&mut self) {
        let conn = self.conn;
        self.sim.with(|net, now| net.close(now, conn));
    }
}

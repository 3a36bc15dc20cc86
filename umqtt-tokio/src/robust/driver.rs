//! The driver task: opens and closes the connection as the engine asks, writes what it
//! transmits, reads while it wants input, and sleeps until its next timer. The call order is
//! the engine's (see [`umqtt_core::robust`]); no rule is decided here.

use std::future::{pending, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use umqtt::robust::{classify, LinkFailure};
use umqtt_core::robust::Action;

use super::Shared;
use crate::connect::{BoxStream, ConnectFuture, Connector};

const READ_CHUNK: usize = 16 * 1024;

/// The future that drives a client: spawn it on a tokio runtime (see `Client::build`). It
/// completes after every `Handle` was dropped and the connection was closed. Dropping it ends
/// the connection at once (no DISCONNECT).
#[must_use = "the client does nothing unless its driver is polled"]
pub struct Driver {
    future: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Driver")
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.future.as_mut().poll(cx)
    }
}

impl Driver {
    pub(super) fn new(
        shared: Arc<Shared>,
        connector: Box<dyn Connector>,
        write_stall: Duration,
    ) -> Self {
        let guard = Finish(shared.clone());
        let link = Link {
            shared,
            connector,
            stream: None,
            opening: None,
            write_stall,
            out: Vec::new(),
            ops: Vec::new(),
        };
        Driver {
            future: Box::pin(async move {
                link.run().await;
                drop(guard);
            }),
        }
    }
}

/// Marks the driver ended however it ends (completed, dropped, aborted): receipts still
/// waiting learn it, the event stream ends after what is left, publishers stop waiting.
struct Finish(Arc<Shared>);

impl Drop for Finish {
    fn drop(&mut self) {
        {
            let mut state = self.0.lock();
            state.driver_done = true;
            if state.events_dropped {
                while state.take_event().is_some() {}
            }
            state.wake_all_receipts();
            // Settlements so far are kept (a restart would otherwise send them again).
            state.apply_store_ops(true);
        }
        self.0.events.notify_one();
        self.0.progress.notify_waiters();
    }
}

/// One step the engine asked for, carried out without holding the lock.
enum Op {
    /// Server index, and the address when it is one a Server Reference named.
    Open(usize, Option<umqtt_core::robust::ServerAddress>),
    Write(Vec<u8>),
    Close,
}

struct Link {
    shared: Arc<Shared>,
    connector: Box<dyn Connector>,
    stream: Option<BoxStream>,
    opening: Option<ConnectFuture>,
    write_stall: Duration,
    /// Reused buffer for the bytes of one write.
    out: Vec<u8>,
    /// Reused list of the steps of one pass.
    ops: Vec<Op>,
}

/// What the driver waits for next.
struct Wait {
    timeout: Option<umqtt_core::Instant>,
    read: bool,
    done: bool,
}

impl Link {
    async fn run(mut self) {
        let mut buffer = vec![0u8; READ_CHUNK].into_boxed_slice();
        let mut shutting_down = false;
        loop {
            let wait = self.service(&mut shutting_down).await;
            if wait.done {
                return;
            }
            let clock = self.shared.lock().clock;
            let Link {
                shared,
                stream,
                opening,
                ..
            } = &mut self;
            let read = async {
                match stream.as_mut() {
                    Some(stream) if wait.read => stream.read(&mut buffer).await,
                    _ => pending().await,
                }
            };
            let open = async {
                match opening.as_mut() {
                    Some(open) => open.await,
                    None => pending().await,
                }
            };
            let timer = async {
                match wait.timeout {
                    Some(at) => tokio::time::sleep_until(clock.tokio(at)).await,
                    None => pending().await,
                }
            };
            // Every branch is cancel-safe: `read` loses no bytes when dropped, the open
            // future is kept in `opening` until it completes, the rest are wake-ups.
            tokio::select! {
                biased;
                result = open => {
                    self.opening = None;
                    let mut state = self.shared.lock();
                    let now = state.clock.now();
                    match result {
                        Ok(stream) => {
                            self.stream = Some(stream);
                            state.engine.handle_opened(now);
                        }
                        Err(error) => {
                            let kind = classify(&error);
                            state.engine.handle_open_failed(now, kind, LinkFailure::new(error));
                        }
                    }
                }
                result = read => {
                    let mut state = self.shared.lock();
                    let now = state.clock.now();
                    match result {
                        Ok(0) => {
                            drop(state);
                            self.lost(umqtt::Error::ConnectionClosed);
                        }
                        Ok(n) => state.engine.handle_read(now, &buffer[..n]),
                        Err(error) => {
                            drop(state);
                            self.lost(umqtt::Error::Io(error));
                        }
                    }
                }
                () = timer => {
                    let mut state = self.shared.lock();
                    let now = state.clock.now();
                    state.engine.handle_timeout(now);
                }
                () = shared.driver.notified() => {}
            }
        }
    }

    /// Carries out everything the engine asks (opens, writes, closes), hands events to
    /// receipts when nobody reads the stream, and says what to wait for next.
    async fn service(&mut self, shutting_down: &mut bool) -> Wait {
        loop {
            let (mut ops, wait) = self.plan(shutting_down);
            if ops.is_empty() {
                self.ops = ops;
                return wait;
            }
            for op in ops.drain(..) {
                match op {
                    Op::Open(server, address) => {
                        self.stream = None;
                        let referenced = address.and_then(|a| self.connector.connect_address(&a));
                        self.opening =
                            Some(referenced.unwrap_or_else(|| self.connector.connect(server)));
                    }
                    Op::Write(bytes) => {
                        self.write(&bytes).await;
                        self.out = bytes;
                    }
                    Op::Close => {
                        self.opening = None;
                        if let Some(mut stream) = self.stream.take() {
                            // Best effort (FIN, TLS close_notify): the link is over anyway.
                            let _ = tokio::time::timeout(self.write_stall, stream.shutdown()).await;
                        }
                    }
                }
            }
            self.ops = ops;
        }
    }

    /// Under the lock: what to do now, and what to wait for after.
    fn plan(&mut self, shutting_down: &mut bool) -> (Vec<Op>, Wait) {
        let shared = self.shared.clone();
        let mut state = shared.lock();
        let now = state.clock.now();
        if state.handles == 0 && !*shutting_down {
            *shutting_down = true;
            state.deferred.disconnect = true;
        }
        // Inputs that may end the connection, now that no write is under way. Events are
        // drained first when nobody reads them (their messages free room in the receive
        // bound too).
        loop {
            if state.events_dropped {
                while state.take_event().is_some() {}
            }
            if state.deferred.is_empty() {
                break;
            }
            let deferred = std::mem::take(&mut state.deferred);
            for payload_len in deferred.consumed {
                state.engine.handle_consumed(now, payload_len);
            }
            if deferred.nudge {
                state.engine.nudge(now);
            }
            if deferred.disconnect {
                state.engine.disconnect(now);
            }
        }
        let mut ops = std::mem::take(&mut self.ops);
        ops.clear();
        // Whether a stream will be open when the ops run: bytes are taken from the engine
        // only when they can be written (else the session keeps them).
        let mut open = self.stream.is_some();
        while let Some(action) = state.engine.poll_action() {
            match action {
                Action::Open { server } => {
                    open = false;
                    // Past the configured list: an MQTT 5 Server Reference's address.
                    let address = state.engine.server_address(server).cloned();
                    ops.push(Op::Open(server, address));
                }
                Action::Close => {
                    if open {
                        if let Some(bytes) = transmit(&mut self.out, &mut state.engine, now) {
                            ops.push(Op::Write(bytes));
                        }
                    }
                    open = false;
                    ops.push(Op::Close);
                }
            }
        }
        if open {
            if let Some(bytes) = transmit(&mut self.out, &mut state.engine, now) {
                ops.push(Op::Write(bytes));
            }
        }
        state.apply_store_ops(false);
        state.route_outcomes();
        state.serviced += 1;
        let wait = Wait {
            timeout: state.engine.poll_timeout(),
            read: state.engine.wants_read(),
            done: *shutting_down
                && ops.is_empty()
                && !state.engine.is_connected()
                && !state.engine.is_connecting(),
        };
        drop(state);
        shared.events.notify_one();
        shared.progress.notify_waiters();
        (ops, wait)
    }

    /// Writes `bytes`; a write that makes no progress for the write-stall time (a peer that
    /// stopped reading) counts as a lost link.
    async fn write(&mut self, bytes: &[u8]) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let result = tokio::time::timeout(self.write_stall, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await;
        match result {
            Ok(Ok(())) => {
                let mut state = self.shared.lock();
                let now = state.clock.now();
                state.engine.handle_written(now);
            }
            Ok(Err(error)) => self.lost(umqtt::Error::Io(error)),
            Err(_) => self.lost(umqtt::Error::WriteStalled),
        }
    }

    fn lost(&mut self, error: umqtt::Error) {
        self.stream = None;
        let kind = classify(&error);
        let mut state = self.shared.lock();
        let now = state.clock.now();
        state
            .engine
            .handle_connection_lost(now, kind, LinkFailure::new(error));
    }
}

/// Everything the engine has to write, in one buffer (`spare`'s allocation reused).
fn transmit(
    spare: &mut Vec<u8>,
    engine: &mut umqtt_core::robust::Engine<super::PolicyBox, LinkFailure>,
    now: umqtt_core::Instant,
) -> Option<Vec<u8>> {
    let mut bytes = std::mem::take(spare);
    bytes.clear();
    while let Some(chunk) = engine.poll_transmit(now) {
        bytes.extend_from_slice(chunk);
    }
    if bytes.is_empty() {
        *spare = bytes;
        None
    } else {
        Some(bytes)
    }
}

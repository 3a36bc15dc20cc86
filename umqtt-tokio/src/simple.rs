//! The simple async client: one method per MQTT operation over the core's [`Session`], like
//! the blocking [`umqtt::simple::Client`] (and MicroPython's `umqtt.simple`): no reconnecting,
//! no background task. Calls take `&mut self`; the connection is driven only while a call
//! runs, so call [`Client::wait_msg`] / [`Client::check_msg`] (or [`Client::flush`]) often
//! enough for the keepalive.
//!
//! ```no_run
//! # async fn run() -> Result<(), umqtt::Error> {
//! use umqtt_tokio::simple::Client;
//! use umqtt_tokio::{ClientConfig, QoS};
//! let mut client = Client::new(ClientConfig { client_id: "c1".into(), server: "localhost".into(), ..Default::default() });
//! client.connect(true).await?;
//! client.subscribe("greetings/#", QoS::AtLeastOnce).await?;
//! client.publish("greetings/en", b"hello", QoS::AtLeastOnce, false).await?;
//! let message = client.wait_msg().await?;
//! # let _ = message;
//! # Ok(())
//! # }
//! ```
//!
//! # Cancel safety
//! Every call is cancel-safe in this sense: dropping its future never corrupts the session or
//! the stream, and never loses or duplicates a message.
//! - Bytes the session produced are kept in the client until written: a write cut short by a
//!   dropped future is finished by the next call (never a half packet followed by another).
//! - Input is handed to the session as soon as it is read, in the same step.
//! - [`Client::publish`], [`Client::subscribe`], [`Client::unsubscribe`], [`Client::ping`]:
//!   the packet is queued in the session at the first poll; dropped later, it is still sent
//!   (by the next call) and its acknowledgement is processed when it comes — a QoS 1/2
//!   message is delivered exactly as if the call had waited. Dropped before the first poll,
//!   nothing happened.
//! - [`Client::wait_msg`], [`Client::check_msg`]: a message leaves the client's queue only in
//!   the step that returns it; messages that arrived meanwhile stay queued.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use umqtt::{ClientConfig, Error, Message, PacketId, QoS, UsageError};
use umqtt_core::packet::ReasonCode;
use umqtt_core::session::{Event, Session, Will};

use crate::connect::{self, AsyncStream, BoxStream};
use crate::time::Clock;

const READ_CHUNK: usize = 16 * 1024;

/// What a session event meant, owned.
enum Notice {
    Connected(bool),
    Message,
    Published(PacketId),
    PublishRefused(PacketId, ReasonCode),
    Subscribed(PacketId, Vec<u8>),
    /// The UNSUBACK's MQTT 5 reason codes (none with 3.1.1).
    Unsubscribed(PacketId, Vec<ReasonCode>),
    Pong,
    Other,
}

/// A simple async MQTT 3.1.1 client over any `AsyncRead + AsyncWrite` stream (TCP / TLS by
/// default).
pub struct Client<S: AsyncStream = BoxStream> {
    config: ClientConfig,
    session: Session,
    will: Option<Will>,
    stream: Option<S>,
    clock: Clock,
    inbox: VecDeque<Message>,
    inbox_bytes: usize,
    /// Bytes taken from the session, written up to `written` (kept across cancelled calls).
    out: Vec<u8>,
    written: usize,
    /// The session closed the connection: write what it queued, then drop the stream.
    closing: bool,
    read_buffer: Box<[u8]>,
    write_stall: Duration,
}

impl<S: AsyncStream> std::fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("connected", &self.is_connected())
            .field("queued_messages", &self.inbox.len())
            .finish_non_exhaustive()
    }
}

impl Client<BoxStream> {
    /// Opens the configured transport (TCP, TLS with tokio-rustls and the same
    /// [`umqtt::TlsConfig`], WebSocket, Unix socket, proxy: `ClientConfig::transport`),
    /// sends CONNECT and waits for CONNACK, all within the connect timeout. Returns
    /// `session_present`.
    ///
    /// # Errors
    /// [`Error::Transport`], [`Error::ConnectTimeout`], [`Error::ConnectionRefused`]…
    pub async fn connect(&mut self, clean_session: bool) -> Result<bool, Error> {
        let timeout = self.config.connect_timeout;
        let started = tokio::time::Instant::now();
        let open = connect::open_transport(
            &self.config.server,
            self.config.effective_port(),
            self.config.tls.as_ref(),
            &self.config.transport,
        );
        let stream = tokio::time::timeout(timeout, open)
            .await
            .map_err(|_| Error::ConnectTimeout)??;
        let left = timeout.saturating_sub(started.elapsed());
        self.connect_over(stream, clean_session, left).await
    }
}

impl<S: AsyncStream> Client<S> {
    /// A client with `config`; nothing is sent until `connect`.
    pub fn new(config: ClientConfig) -> Self {
        let session = Session::new(config.session_config(None));
        Client {
            write_stall: umqtt::transport::write_stall(config.response_timeout, session.config()),
            config,
            session,
            will: None,
            stream: None,
            clock: Clock::new(),
            inbox: VecDeque::new(),
            inbox_bytes: 0,
            out: Vec::new(),
            written: 0,
            closing: false,
            read_buffer: vec![0; READ_CHUNK].into_boxed_slice(),
        }
    }

    /// Sets the last will (from the next `connect` on).
    pub fn set_last_will(&mut self, topic: &str, payload: &[u8], retain: bool, qos: QoS) {
        self.will = Some(Will {
            topic: topic.to_string(),
            payload: payload.to_vec(),
            qos,
            retain,
            properties: Vec::new(),
        });
    }

    /// Sends CONNECT over a stream you opened (a Unix socket, a proxy tunnel, a test pipe)
    /// and waits for CONNACK; returns `session_present`.
    ///
    /// # Errors
    /// As [`Client::connect`], minus opening.
    pub async fn connect_with_stream(
        &mut self,
        stream: S,
        clean_session: bool,
    ) -> Result<bool, Error> {
        let timeout = self.config.connect_timeout;
        self.connect_over(stream, clean_session, timeout).await
    }

    async fn connect_over(
        &mut self,
        stream: S,
        clean_session: bool,
        timeout: Duration,
    ) -> Result<bool, Error> {
        if self.stream.is_some() {
            return Err(Error::Usage(UsageError::AlreadyConnected));
        }
        *self.session.config_mut() = self.config.session_config(self.will.clone());
        self.session.config_mut().connect_timeout = timeout;
        self.write_stall =
            umqtt::transport::write_stall(self.config.response_timeout, self.session.config());
        let now = self.clock.now();
        self.session.connect(now, clean_session)?;
        self.out.clear();
        self.written = 0;
        self.stream = Some(stream);
        let deadline = tokio::time::Instant::now() + timeout;
        self.run_until(Some(deadline), |notice| match notice {
            Notice::Connected(session_present) => Some(*session_present),
            _ => None,
        })
        .await
    }

    /// Whether a connection is established.
    pub fn is_connected(&self) -> bool {
        self.stream.is_some() && self.session.is_connected()
    }

    /// The session (packet ids, messages in flight).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Publishes; QoS 0 returns once written, QoS 1/2 once acknowledged (PUBACK / PUBCOMP)
    /// within the response timeout. Returns the packet id for QoS 1/2.
    ///
    /// # Errors
    /// [`Error::Usage`] (not connected, invalid topic…), [`Error::Timeout`], link errors.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<Option<PacketId>, Error> {
        self.require_connection()?;
        let packet_id = self.session.publish(topic, payload, qos, retain)?;
        match packet_id {
            Some(id) => {
                let deadline = self.response_deadline();
                self.run_until(Some(deadline), |notice| match notice {
                    Notice::Published(done) if *done == id => Some(Ok(())),
                    Notice::PublishRefused(done, reason_code) if *done == id => {
                        Some(Err(Error::PublishRefused {
                            packet_id: id,
                            reason_code: *reason_code,
                        }))
                    }
                    _ => None,
                })
                .await??;
            }
            None => self.flush().await?,
        }
        Ok(packet_id)
    }

    /// Subscribes to one filter; returns the granted QoS ([`Error::SubscribeRefused`] for
    /// 0x80).
    ///
    /// # Errors
    /// [`Error::SubscribeRefused`], [`Error::Timeout`], link errors.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<QoS, Error> {
        self.require_connection()?;
        let id = self.session.subscribe(&[(filter, qos)])?;
        let deadline = self.response_deadline();
        let codes = self
            .run_until(Some(deadline), |notice| match notice {
                Notice::Subscribed(done, codes) if *done == id => Some(codes.clone()),
                _ => None,
            })
            .await?;
        Error::subscribe_outcome(codes.first().copied().unwrap_or(0x80), filter)
    }

    /// Unsubscribes from one filter and waits for UNSUBACK; returns its reason code: with MQTT
    /// 5 [`ReasonCode::Success`] or [`ReasonCode::NoSubscriptionExisted`] (informational: the
    /// filter is not subscribed either way), with 3.1.1 always `Success`.
    ///
    /// # Errors
    /// [`Error::UnsubscribeRefused`] for a refusal (0x80 or above), [`Error::Timeout`], link
    /// errors.
    pub async fn unsubscribe(&mut self, filter: &str) -> Result<ReasonCode, Error> {
        self.require_connection()?;
        let id = self.session.unsubscribe(&[filter])?;
        let deadline = self.response_deadline();
        let codes = self
            .run_until(Some(deadline), |notice| match notice {
                Notice::Unsubscribed(done, codes) if *done == id => Some(codes.clone()),
                _ => None,
            })
            .await?;
        // 3.1.1's UNSUBACK carries no codes: success.
        let code = codes.first().copied().unwrap_or(ReasonCode::Success);
        Error::unsubscribe_outcome(code, filter)
    }

    /// Sends PINGREQ and waits for PINGRESP.
    ///
    /// # Errors
    /// [`Error::Timeout`], link errors.
    pub async fn ping(&mut self) -> Result<(), Error> {
        self.require_connection()?;
        let now = self.clock.now();
        self.session.ping(now)?;
        let deadline = self.response_deadline();
        self.run_until(Some(deadline), |notice| {
            matches!(notice, Notice::Pong).then_some(())
        })
        .await
    }

    /// Waits for a message (keepalive runs meanwhile).
    ///
    /// # Errors
    /// Link errors ([`Error::KeepAliveTimeout`], [`Error::ConnectionClosed`]…).
    pub async fn wait_msg(&mut self) -> Result<Message, Error> {
        loop {
            if let Some(message) = self.pop() {
                return Ok(message);
            }
            self.require_connection()?;
            self.run_until(None, |notice| {
                matches!(notice, Notice::Message).then_some(())
            })
            .await?;
        }
    }

    /// A message if one is queued or readable now, without waiting for the network.
    ///
    /// # Errors
    /// Link errors.
    pub async fn check_msg(&mut self) -> Result<Option<Message>, Error> {
        if let Some(message) = self.pop() {
            return Ok(Some(message));
        }
        self.require_connection()?;
        let deadline = tokio::time::Instant::now();
        match self
            .run_until(Some(deadline), |notice| {
                matches!(notice, Notice::Message).then_some(())
            })
            .await
        {
            Ok(()) | Err(Error::Timeout) => Ok(self.pop()),
            Err(error) => Err(error),
        }
    }

    /// Writes what is pending (pipelined acknowledgements, a due keepalive).
    ///
    /// # Errors
    /// Link errors.
    pub async fn flush(&mut self) -> Result<(), Error> {
        let now = self.clock.now();
        self.session.handle_timeout(now);
        self.events(&mut |_| None::<()>).await?;
        self.write_pending().await
    }

    /// Sends DISCONNECT and closes the connection (the broker discards the will).
    ///
    /// # Errors
    /// [`Error::Usage`] when not connected, write errors.
    pub async fn disconnect(&mut self) -> Result<(), Error> {
        self.require_connection()?;
        self.session.disconnect()?;
        let result = self.write_pending().await;
        if let Some(mut stream) = self.stream.take() {
            let _ = tokio::time::timeout(self.write_stall, stream.shutdown()).await;
        }
        self.session.handle_connection_lost();
        result
    }

    fn pop(&mut self) -> Option<Message> {
        let message = self.inbox.pop_front()?;
        self.inbox_bytes = self
            .inbox_bytes
            .saturating_sub(message.topic.len() + message.payload.len());
        Some(message)
    }

    fn inbox_full(&self) -> bool {
        self.inbox.len() >= self.config.max_queued_messages
            || (self.inbox_bytes >= self.config.max_queued_bytes && !self.inbox.is_empty())
    }

    fn response_deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.config.response_timeout
    }

    fn require_connection(&self) -> Result<(), Error> {
        if self.is_connected()
            || (self.stream.is_some() && self.session.is_connecting_or_connected())
        {
            Ok(())
        } else {
            Err(Error::Usage(UsageError::NotConnected))
        }
    }

    /// Drives the connection until `done` says so or `deadline` passes ([`Error::Timeout`]).
    async fn run_until<R>(
        &mut self,
        deadline: Option<tokio::time::Instant>,
        mut done: impl FnMut(&Notice) -> Option<R>,
    ) -> Result<R, Error> {
        loop {
            let now = self.clock.now();
            self.session.handle_timeout(now);
            let result = self.events(&mut done).await?;
            self.write_pending().await?;
            if let Some(result) = result {
                return Ok(result);
            }
            if self.inbox_full() && self.session.has_unprocessed_input() {
                return Err(Error::MessageQueueFull);
            }
            let timer = self.session.poll_timeout().map(|at| self.clock.tokio(at));
            let wake = match (deadline, timer) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // A full inbox stops reading (the broker is pushed back by TCP); timers still run.
            let full = self.inbox_full();
            let Some(stream) = self.stream.as_mut() else {
                return Err(Error::Usage(UsageError::NotConnected));
            };
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let read = if full {
                sleep.await;
                None
            } else {
                tokio::select! {
                    // Cancel-safe: `read` either read bytes (handed over below, in the same
                    // step) or nothing.
                    result = stream.read(&mut self.read_buffer) => Some(result),
                    () = sleep => None,
                }
            };
            match read {
                Some(Ok(0)) => {
                    self.connection_lost();
                    return Err(Error::ConnectionClosed);
                }
                Some(Ok(n)) => {
                    let now = self.clock.now();
                    self.session.handle_read(now, &self.read_buffer[..n]);
                }
                Some(Err(error)) => {
                    self.connection_lost();
                    return Err(Error::Io(error));
                }
                None => {
                    if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                        // Whatever is due now is still processed first.
                        let result = self.events(&mut done).await?;
                        self.write_pending().await?;
                        return result.ok_or(Error::Timeout);
                    }
                }
            }
        }
    }

    /// [`Client::process_events`]; when the session closed the connection, what it sends on
    /// its way out is written (best effort) before the stream is dropped.
    async fn events<R>(
        &mut self,
        done: &mut impl FnMut(&Notice) -> Option<R>,
    ) -> Result<Option<R>, Error> {
        let result = self.process_events(done);
        if std::mem::take(&mut self.closing) {
            let _ = self.write_pending().await;
            self.stream = None;
            self.out.clear();
            self.written = 0;
        }
        result
    }

    /// Turns session events into notices; queues messages; stops at `done` or when the inbox
    /// is full (no message is dropped: decoding waits).
    fn process_events<R>(
        &mut self,
        done: &mut impl FnMut(&Notice) -> Option<R>,
    ) -> Result<Option<R>, Error> {
        while !self.inbox_full() || !self.session.is_connected() {
            let notice = match self.session.poll_event() {
                None => return Ok(None),
                Some(Event::Closed(reason)) => {
                    // The stream is dropped by `events` once what the session sends on its
                    // way out (an MQTT 5 DISCONNECT with the reason of a violation) is written.
                    self.closing = true;
                    return Err(reason.into());
                }
                Some(Event::Message(publish)) => {
                    let message = Message::from(&publish);
                    self.inbox_bytes += message.topic.len() + message.payload.len();
                    self.inbox.push_back(message);
                    Notice::Message
                }
                Some(Event::Connected { session_present }) => Notice::Connected(session_present),
                Some(Event::Published(id)) => Notice::Published(id),
                Some(Event::PublishRefused {
                    packet_id,
                    reason_code,
                }) => Notice::PublishRefused(packet_id, reason_code),
                Some(Event::Subscribed(suback)) => {
                    Notice::Subscribed(suback.packet_id, suback.return_codes.to_vec())
                }
                Some(Event::Unsubscribed(unsuback)) => {
                    Notice::Unsubscribed(unsuback.packet_id, unsuback.codes().collect())
                }
                Some(Event::PingResponse) => Notice::Pong,
                Some(_) => Notice::Other,
            };
            if let Some(result) = done(&notice) {
                return Ok(Some(result));
            }
        }
        Ok(None)
    }

    /// Writes what the session has to send, finishing first what a cancelled call left.
    async fn write_pending(&mut self) -> Result<(), Error> {
        let now = self.clock.now();
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        }
        while let Some(bytes) = self.session.poll_transmit(now) {
            self.out.extend_from_slice(bytes);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        while self.written < self.out.len() {
            // Cancel-safe: `write` wrote some bytes or none; `written` records them at once.
            match tokio::time::timeout(self.write_stall, stream.write(&self.out[self.written..]))
                .await
            {
                Ok(Ok(0)) => {
                    self.connection_lost();
                    return Err(Error::ConnectionClosed);
                }
                Ok(Ok(n)) => self.written += n,
                Ok(Err(error)) => {
                    self.connection_lost();
                    return Err(Error::Io(error));
                }
                Err(_) => {
                    self.connection_lost();
                    return Err(Error::WriteStalled);
                }
            }
        }
        if let Err(error) = stream.flush().await {
            self.connection_lost();
            return Err(Error::Io(error));
        }
        Ok(())
    }

    fn connection_lost(&mut self) {
        self.stream = None;
        self.out.clear();
        self.written = 0;
        self.session.handle_connection_lost();
    }
}

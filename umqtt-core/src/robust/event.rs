//! What the engine tells its driver and the application: events, outcomes, counters.

use core::fmt;
use core::time::Duration;

use super::policy::FailureKind;
use super::reference::ServerAddress;
use crate::packet::{PacketId, QoS, ReasonCode};
use crate::session::{CloseReason, UsageError};
use crate::storage::{DefaultStorage, Storage, TextStorage};

/// How robust one message must be: its delivery contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Sent only if the link is up, or comes up at the attempt this publish starts; dropped
    /// (and reported) otherwise or if the link breaks before the acknowledgement. The
    /// temperature reading.
    NoRetry,
    /// Retried until acknowledged or until this long after `publish`, then expired (and
    /// reported). The button press.
    Within(Duration),
    /// Kept until acknowledged, across any outage. The burglar alarm.
    Guaranteed,
}

/// A handle for one published message, named by the events about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub u64);

/// The final fate of one published message: exactly one per message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The broker acknowledged it (QoS 1/2), or it was written (QoS 0).
    Delivered,
    /// Its [`Delivery::Within`] deadline passed first (not confirmed; it may have arrived).
    Expired,
    /// Dropped without an acknowledgement.
    Dropped(DropReason),
}

/// Why a message was dropped. Like [`Event::Expired`], a drop means *not confirmed*: a message
/// whose PUBLISH was already written may still have reached the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// A [`Delivery::NoRetry`] message found no link.
    NotConnected,
    /// The link broke before a [`Delivery::NoRetry`] message was acknowledged.
    LinkLost,
    /// The policy stopped retrying and the message is not guaranteed.
    PolicyStopped,
    /// The offline queue was full (see [`Overflow`]).
    QueueOverflow,
    /// The broker refused the message with this MQTT 5 PUBACK/PUBREC reason code (0x80 or
    /// above, e.g. Not authorized, Quota exceeded): sending it again would not help.
    Refused(ReasonCode),
    /// Its PUBLISH is larger than the Maximum Packet Size of the broker's MQTT 5 CONNACK
    /// (found when it was due to be sent or resent, e.g. after a reconnection to a broker
    /// with a smaller limit): the broker would close the connection at every attempt.
    TooLarge {
        /// The PUBLISH packet's size, fixed header included.
        size: usize,
        /// The broker's Maximum Packet Size.
        max: u32,
    },
    /// The broker's MQTT 5 CONNACK says it does not take this kind of message: its QoS is
    /// above the broker's Maximum QoS, or it is retained and Retain Available is 0. Sending
    /// it would make the broker close the connection [MQTT-3.2.2-11], [MQTT-3.2.2-14].
    NotSupported(Unsupported),
}

/// What a broker's MQTT 5 CONNACK ruled out, for [`DropReason::NotSupported`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unsupported {
    /// The message's QoS is above the broker's Maximum QoS (`max`).
    QoS {
        /// The broker's Maximum QoS.
        max: QoS,
    },
    /// The message is retained and the broker's Retain Available is 0.
    Retain,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::NotConnected => "not connected (no-retry message)",
            DropReason::LinkLost => "link lost before the acknowledgement (no-retry message)",
            DropReason::PolicyStopped => "the reconnect policy gave up",
            DropReason::QueueOverflow => "the offline queue was full",
            DropReason::Refused(code) => return write!(f, "the broker refused it: {code}"),
            DropReason::TooLarge { size, max } => {
                return write!(
                    f,
                    "its packet of {size} bytes exceeds the broker's maximum packet size of {max}"
                )
            }
            DropReason::NotSupported(Unsupported::QoS { max }) => {
                return write!(f, "the broker's maximum QoS is {}", *max as u8)
            }
            DropReason::NotSupported(Unsupported::Retain) => {
                "the broker does not accept retained messages"
            }
        })
    }
}

/// What the offline queue does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop the oldest waiting message (reported) to make room.
    DropOldest,
    /// Drop the new message (reported); `publish` still returns its id.
    DropNewest,
    /// `publish` fails with [`UsageError::OutgoingFull`](crate::session::UsageError).
    #[default]
    RefuseNew,
}

/// Why a link or an attempt ended: a rule the core enforced, or the driver's transport error
/// (`E`, e.g. an I/O or TLS error; cloneable so events can be cloned).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkError<E> {
    /// The session closed the connection (refused, malformed bytes, protocol violation,
    /// keepalive, CONNACK timeout).
    Closed(CloseReason),
    /// The transport could not be opened, or failed, as the driver reported.
    Transport(E),
    /// The attempt (opening the transport and the CONNECT/CONNACK handshake together) took
    /// longer than the connect timeout.
    AttemptTimeout,
    /// The settings cannot make a valid CONNECT (e.g. an empty client id with a persistent
    /// session); found before any network traffic.
    Usage(UsageError),
}

impl<E: fmt::Display> fmt::Display for LinkError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Closed(reason) => reason.fmt(f),
            LinkError::Transport(error) => error.fmt(f),
            LinkError::AttemptTimeout => {
                f.write_str("connection attempt timed out (transport and CONNACK)")
            }
            LinkError::Usage(error) => error.fmt(f),
        }
    }
}

/// What an [`Event`] holds beyond plain values: a storage's text (a followed server's host),
/// topic filter and received message. Every [`Storage`] is one, with its
/// [`TextStorage::Text`], [`Storage::Filter`] and [`Storage::Message`]. Sealed.
pub trait Payloads: sealed::Sealed {
    /// A server's host name ([`Event::Redirected`]).
    type Text;
    /// A topic filter.
    type Filter;
    /// A received message.
    type Message;
}

impl<S: Storage> Payloads for S {
    type Text = <S as TextStorage>::Text;
    type Filter = S::Filter;
    type Message = S::Message;
}

pub(crate) mod sealed {
    /// Only the storages, and fixed storage's events as its event list keeps them, are
    /// [`Payloads`](super::Payloads).
    pub trait Sealed {}
    impl<S: crate::storage::Storage> Sealed for S {}
    impl Sealed for crate::storage::Stashed {}
}

/// Changes what an event holds, one payload at a time ([`Event::map_payloads`]).
pub(crate) trait PayloadMap<S: Payloads, T: Payloads> {
    fn text(&mut self, text: S::Text) -> T::Text;
    fn filter(&mut self, filter: S::Filter) -> T::Filter;
    fn message(&mut self, message: S::Message) -> T::Message;
}

/// Something the application may want to show (blink an LED), log or act on. One stream
/// carries the link's life, every message's outcome and the messages received. `S` is the
/// engine's storage: it says what holds a topic filter ([`Storage::Filter`]: a `String` on the
/// heap) and a received message ([`Storage::Message`]:
/// [`Message`](crate::message::Message) on the heap).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<E, S: Payloads = DefaultStorage> {
    /// A connection was established (CONNACK accepted it).
    Connected {
        /// The broker resumed the stored session.
        session_present: bool,
        /// Index of the server used (0 is the first configured; `EngineSettings::servers`, one
        /// past the list, is the one a Server Reference named).
        server: usize,
    },
    /// An established connection ended.
    Disconnected {
        /// Why, as a policy sees it.
        kind: FailureKind,
        /// The error.
        error: LinkError<E>,
    },
    /// A connection attempt failed.
    AttemptFailed {
        /// Why, as a policy sees it.
        kind: FailureKind,
        /// Attempts failed in a row.
        consecutive: u32,
        /// Index of the server tried.
        server: usize,
        /// The error.
        error: LinkError<E>,
    },
    /// The broker sent the client elsewhere (MQTT 5 CONNACK or DISCONNECT 0x9C Use another
    /// server / 0x9D Server moved with a Server Reference, followed with
    /// [`EngineSettings::follow_server_references`](super::EngineSettings::follow_server_references)):
    /// the next attempt, when the policy schedules one, opens this address (server index
    /// [`EngineSettings::servers`](super::EngineSettings::servers)).
    Redirected {
        /// Where.
        address: ServerAddress<S::Text>,
        /// 0x9C Use another server or 0x9D Server moved.
        reason_code: ReasonCode,
    },
    /// The next attempt is due after this delay.
    RetryScheduled {
        /// Delay chosen by the policy.
        delay: Duration,
    },
    /// The policy stopped retrying, for messages and subscriptions; the next publish,
    /// subscribe, connect or nudge tries again.
    GaveUp {
        /// The last failure.
        kind: FailureKind,
    },
    /// The broker acknowledged the message (PUBACK for QoS 1, PUBCOMP for QoS 2), or it was
    /// written to the transport (QoS 0).
    Delivered {
        /// The message.
        id: MessageId,
    },
    /// The message's delivery deadline passed before the broker acknowledged it. Not
    /// confirmed, which is not the same as not delivered: a PUBLISH already written may have
    /// reached the broker.
    Expired {
        /// The message.
        id: MessageId,
    },
    /// The message was dropped without an acknowledgement (see [`DropReason`]).
    Dropped {
        /// The message.
        id: MessageId,
        /// Why.
        reason: DropReason,
    },
    /// The broker had no session although a persistent one was used before: subscriptions
    /// are renewed and owed messages republished, but messages queued for us meanwhile are
    /// gone. A broker that keeps doing this is not persistent.
    SessionLost {
        /// How often it happened so far.
        count: u32,
    },
    /// The broker granted a subscription (also after renewing it).
    Subscribed {
        /// The topic filter.
        filter: S::Filter,
        /// The QoS granted.
        granted: QoS,
    },
    /// The broker refused a subscription (SUBACK 0x80); it is no longer kept.
    SubscriptionRefused {
        /// The topic filter.
        filter: S::Filter,
    },
    /// The broker acknowledged an UNSUBSCRIBE.
    Unsubscribed {
        /// The topic filter.
        filter: S::Filter,
        /// The MQTT 5 UNSUBACK reason code for it ([`ReasonCode::Success`] with 3.1.1): 0x11
        /// No subscription existed is informational, 0x80 or above a refusal (e.g. Not
        /// authorized: the broker may still deliver on it). The engine no longer keeps the
        /// filter either way.
        reason_code: ReasonCode,
    },
    /// An application message arrived. With manual acknowledgement (QoS 1/2), the broker
    /// gets its PUBACK/PUBREC only when the application acknowledges it.
    Message(S::Message),
}

impl<E, S: Payloads> Event<E, S> {
    /// The same event holding its payloads as `T` does.
    pub(crate) fn map_payloads<T: Payloads>(self, map: &mut impl PayloadMap<S, T>) -> Event<E, T> {
        match self {
            Event::Connected {
                session_present,
                server,
            } => Event::Connected {
                session_present,
                server,
            },
            Event::Disconnected { kind, error } => Event::Disconnected { kind, error },
            Event::AttemptFailed {
                kind,
                consecutive,
                server,
                error,
            } => Event::AttemptFailed {
                kind,
                consecutive,
                server,
                error,
            },
            Event::Redirected {
                address,
                reason_code,
            } => Event::Redirected {
                address: ServerAddress {
                    host: map.text(address.host),
                    port: address.port,
                },
                reason_code,
            },
            Event::RetryScheduled { delay } => Event::RetryScheduled { delay },
            Event::GaveUp { kind } => Event::GaveUp { kind },
            Event::Delivered { id } => Event::Delivered { id },
            Event::Expired { id } => Event::Expired { id },
            Event::Dropped { id, reason } => Event::Dropped { id, reason },
            Event::SessionLost { count } => Event::SessionLost { count },
            Event::Subscribed { filter, granted } => Event::Subscribed {
                filter: map.filter(filter),
                granted,
            },
            Event::SubscriptionRefused { filter } => Event::SubscriptionRefused {
                filter: map.filter(filter),
            },
            Event::Unsubscribed {
                filter,
                reason_code,
            } => Event::Unsubscribed {
                filter: map.filter(filter),
                reason_code,
            },
            Event::Message(message) => Event::Message(map.message(message)),
        }
    }
}

/// Counts per [`DropReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DropCounts {
    /// [`DropReason::NotConnected`].
    pub not_connected: u64,
    /// [`DropReason::LinkLost`].
    pub link_lost: u64,
    /// [`DropReason::PolicyStopped`].
    pub policy_stopped: u64,
    /// [`DropReason::QueueOverflow`].
    pub queue_overflow: u64,
    /// [`DropReason::Refused`], whatever the reason code.
    pub refused: u64,
    /// [`DropReason::TooLarge`].
    pub too_large: u64,
    /// [`DropReason::NotSupported`].
    pub not_supported: u64,
}

impl DropCounts {
    /// The count for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::NotConnected => self.not_connected,
            DropReason::LinkLost => self.link_lost,
            DropReason::PolicyStopped => self.policy_stopped,
            DropReason::QueueOverflow => self.queue_overflow,
            DropReason::Refused(_) => self.refused,
            DropReason::TooLarge { .. } => self.too_large,
            DropReason::NotSupported(_) => self.not_supported,
        }
    }

    pub(super) fn add(&mut self, reason: DropReason) {
        let count = match reason {
            DropReason::NotConnected => &mut self.not_connected,
            DropReason::LinkLost => &mut self.link_lost,
            DropReason::PolicyStopped => &mut self.policy_stopped,
            DropReason::QueueOverflow => &mut self.queue_overflow,
            DropReason::Refused(_) => &mut self.refused,
            DropReason::TooLarge { .. } => &mut self.too_large,
            DropReason::NotSupported(_) => &mut self.not_supported,
        };
        *count += 1;
    }
}

/// Counters for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connection attempts made.
    pub attempts: u64,
    /// Attempts that succeeded.
    pub connects: u64,
    /// Server References followed ([`Event::Redirected`]).
    pub redirects: u64,
    /// Established connections that ended.
    pub disconnects: u64,
    /// Times the broker had lost the session.
    pub sessions_lost: u32,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages expired.
    pub expired: u64,
    /// Messages dropped (all reasons).
    pub dropped: u64,
    /// Messages dropped, by reason.
    pub dropped_by: DropCounts,
    /// Application messages received.
    pub received: u64,
    /// Events discarded because nobody drained them (never messages: reading from the
    /// network pauses instead).
    pub events_overflowed: u64,
}

/// What the driver must do with its transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open a transport (TCP, TLS…) to server `server` (an index into the driver's list; one
    /// past its end, the address a broker's Server Reference named: see
    /// [`Engine::server_address`](super::Engine::server_address)),
    /// then call [`Engine::handle_opened`](super::Engine::handle_opened) or
    /// [`Engine::handle_open_failed`](super::Engine::handle_open_failed). Abandon any open in
    /// progress first.
    Open {
        /// Which server.
        server: usize,
    },
    /// Close the transport (after writing what [`poll_transmit`](super::Engine::poll_transmit)
    /// returned), or abandon an open in progress.
    Close,
}

/// A change a durable outbox must record for a message published as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// The message was handed to the session with this packet id (a restart resends it with
    /// the same id).
    Assigned {
        /// The message.
        id: MessageId,
        /// Its packet id.
        packet_id: PacketId,
    },
    /// The message is settled (delivered, expired or dropped): forget it.
    Settled {
        /// The message.
        id: MessageId,
    },
}

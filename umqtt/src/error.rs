//! The std client's error type: the core's typed errors plus I/O, TLS and timeouts.

use std::fmt;
use std::io;

use umqtt_core::packet::{
    ConnectReturnCode, DecodeError, PacketId, QoS, ReasonCode, SubscribeReturnCode,
};
use umqtt_core::session::{CloseReason, ProtocolError, UsageError};

use crate::transport::TransportError;

/// Everything that can go wrong in a client call.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Opening the connection failed: DNS, TCP, or the TLS handshake.
    Transport(TransportError),
    /// Reading or writing the established connection failed.
    Io(io::Error),
    /// The broker closed the connection (end of stream).
    ConnectionClosed,
    /// The broker refused the connection with this CONNACK return code.
    ConnectionRefused(ConnectReturnCode),
    /// The broker refused an MQTT 5 connection with this CONNACK reason code.
    ConnectionRejected(ReasonCode),
    /// The broker closed the connection with an MQTT 5 DISCONNECT and this reason code.
    ServerDisconnected(ReasonCode),
    /// The broker refused a QoS 1/2 message with an MQTT 5 PUBACK/PUBREC reason code (0x80
    /// or above): the exchange is over, the message was not accepted.
    PublishRefused {
        /// The message's packet id.
        packet_id: PacketId,
        /// Why.
        reason_code: ReasonCode,
    },
    /// The broker sent bytes that are not a valid MQTT packet.
    Decode(DecodeError),
    /// The broker broke a protocol rule.
    Protocol(ProtocolError),
    /// No CONNACK arrived within the connect timeout.
    ConnectTimeout,
    /// No PINGRESP arrived in time: the link is dead or half-open.
    KeepAliveTimeout,
    /// A write made no progress within the response timeout, or within 1.5 × keepalive when
    /// that is shorter: the broker or the network stopped taking data (the send buffer is
    /// full). The connection is closed.
    WriteStalled,
    /// The broker announced a packet larger than
    /// [`ClientConfig::max_packet_size`](crate::simple::ClientConfig::max_packet_size): a local
    /// limit (MQTT allows up to 256 MiB), checked from the fixed header before anything is
    /// stored. The connection is closed; raise the limit to receive such messages.
    PacketTooLarge {
        /// Total size announced, fixed header included.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The expected acknowledgement did not arrive within the response timeout; the connection
    /// stays open.
    Timeout,
    /// The broker refused a subscription (SUBACK return code 0x80, or an MQTT 5 reason code
    /// of 0x80 or above such as 0x87 Not authorized).
    SubscribeRefused {
        /// The refused filter.
        filter: String,
        /// The SUBACK code (3.1.1's 0x80 reads as [`ReasonCode::UnspecifiedError`]).
        reason_code: ReasonCode,
    },
    /// The broker refused to unsubscribe a filter (an MQTT 5 UNSUBACK reason code of 0x80 or
    /// above, e.g. 0x87 Not authorized): the subscription may still be in place.
    UnsubscribeRefused {
        /// The filter.
        filter: String,
        /// The UNSUBACK reason code.
        reason_code: ReasonCode,
    },
    /// The call is not possible in the current state or its arguments are invalid.
    Usage(UsageError),
    /// The durable outbox failed (open, read or write).
    Outbox(crate::outbox::StoreError),
    /// A connection attempt of the robust client failed with this error (shared with the
    /// event that reported it).
    Connect(std::sync::Arc<Error>),
    /// The queue of received messages is full: drain it with `check_msg`/`wait_msg` before
    /// waiting for anything else. No message was dropped.
    MessageQueueFull,
}

impl Error {
    /// The outcome of one SUBACK code for `filter`: the granted QoS (codes below 0x80, the
    /// same in 3.1.1 and MQTT 5), or [`Error::SubscribeRefused`] with the code (3.1.1's 0x80
    /// reads as [`ReasonCode::UnspecifiedError`]).
    pub fn subscribe_outcome(code: u8, filter: &str) -> Result<QoS, Error> {
        match SubscribeReturnCode::from_u8(code) {
            Some(SubscribeReturnCode::Success(qos)) => Ok(qos),
            _ => Err(Error::SubscribeRefused {
                filter: filter.to_string(),
                reason_code: ReasonCode::from_u8(code).unwrap_or(ReasonCode::UnspecifiedError),
            }),
        }
    }

    /// What one UNSUBACK reason code means for `filter`: the code when the filter is not
    /// subscribed any more (0x00 Success, or 0x11 No subscription existed, which is
    /// informational), or [`Error::UnsubscribeRefused`] for a refusal (0x80 or above).
    pub fn unsubscribe_outcome(code: ReasonCode, filter: &str) -> Result<ReasonCode, Error> {
        if code.is_error() {
            return Err(Error::UnsubscribeRefused {
                filter: filter.to_string(),
                reason_code: code,
            });
        }
        Ok(code)
    }

    /// Whether the connection is gone after this error (reconnecting may help), as opposed to
    /// a refusal, a usage error or an operation timeout on a live connection.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            Error::Transport(_)
                | Error::Io(_)
                | Error::ConnectionClosed
                | Error::Decode(_)
                | Error::Protocol(_)
                | Error::ConnectTimeout
                | Error::KeepAliveTimeout
                | Error::WriteStalled
                | Error::Connect(_)
                | Error::PacketTooLarge { .. }
                | Error::ServerDisconnected(_)
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport(e) => write!(f, "{e}"),
            Error::Io(e) => write!(f, "connection I/O error: {e}"),
            Error::ConnectionClosed => f.write_str("connection closed by the broker"),
            Error::ConnectionRefused(code) => write!(f, "connection refused by broker: {code}"),
            Error::ConnectionRejected(code) => write!(f, "connection refused by broker: {code}"),
            Error::ServerDisconnected(code) => write!(f, "broker sent DISCONNECT: {code}"),
            Error::PublishRefused {
                packet_id,
                reason_code,
            } => write!(f, "broker refused message {packet_id}: {reason_code}"),
            Error::Decode(e) => write!(f, "malformed packet from broker: {e}"),
            Error::Protocol(e) => write!(f, "protocol violation by broker: {e}"),
            Error::ConnectTimeout => f.write_str("no CONNACK within the connect timeout"),
            Error::KeepAliveTimeout => f.write_str("no PINGRESP within the ping timeout"),
            Error::WriteStalled => {
                f.write_str("the broker stopped reading: a write made no progress in time")
            }
            Error::PacketTooLarge { size, max } => write!(
                f,
                "incoming packet of {size} bytes exceeds the configured maximum of {max} \
                 (raise max_packet_size)"
            ),
            Error::Timeout => f.write_str("timed out waiting for the broker's response"),
            Error::SubscribeRefused {
                filter,
                reason_code,
            } => write!(
                f,
                "broker refused subscription to {filter:?}: {reason_code}"
            ),
            Error::UnsubscribeRefused {
                filter,
                reason_code,
            } => write!(f, "broker refused to unsubscribe {filter:?}: {reason_code}"),
            Error::Usage(e) => write!(f, "{e}"),
            Error::Outbox(e) => write!(f, "{e}"),
            Error::MessageQueueFull => f.write_str("received-message queue is full"),
            Error::Connect(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Transport(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Decode(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Usage(e) => Some(e),
            Error::Outbox(e) => Some(e),
            Error::Connect(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Error::Transport(e)
    }
}

impl From<crate::outbox::StoreError> for Error {
    fn from(e: crate::outbox::StoreError) -> Self {
        Error::Outbox(e)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<UsageError> for Error {
    fn from(e: UsageError) -> Self {
        Error::Usage(e)
    }
}

impl From<CloseReason> for Error {
    fn from(reason: CloseReason) -> Self {
        match reason {
            CloseReason::Refused(code) => Error::ConnectionRefused(code),
            CloseReason::Rejected(code) => Error::ConnectionRejected(code),
            CloseReason::ServerDisconnected(code) => Error::ServerDisconnected(code),
            CloseReason::Decode(e) => Error::Decode(e),
            CloseReason::Protocol(e) => Error::Protocol(e),
            CloseReason::ConnectTimeout => Error::ConnectTimeout,
            CloseReason::KeepAliveTimeout => Error::KeepAliveTimeout,
            CloseReason::PacketTooLarge { size, max } => Error::PacketTooLarge { size, max },
            _ => Error::Usage(UsageError::NotConnected),
        }
    }
}

//! The errors of the async client.

use std::fmt;
use std::sync::Arc;

use umqtt::outbox::StoreError;
use umqtt::UsageError;

/// Why a call of the async client failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The call was refused by the engine: an invalid topic or filter, a payload too large, or
    /// (only from the `try_*` calls, or with an overflow rule that cannot make room) a full
    /// offline queue ([`UsageError::OutgoingFull`]).
    Usage(UsageError),
    /// The driver has stopped (every [`Handle`](crate::robust::Handle) was dropped, or its
    /// task was dropped or aborted), so nothing more can be sent or settled.
    DriverStopped,
    /// `spawn` was called outside a tokio runtime; use `build` and spawn the driver yourself.
    NoRuntime,
    /// The durable outbox failed to load, store or forget a message (see
    /// `robust::Client::outbox`).
    Outbox(OutboxError),
}

/// A failure of the durable outbox, shareable (errors of the async client are `Clone`).
#[derive(Debug, Clone)]
pub struct OutboxError(pub Arc<StoreError>);

impl PartialEq for OutboxError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for OutboxError {}

impl fmt::Display for OutboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Error::Outbox(OutboxError(Arc::new(error)))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(error) => error.fmt(f),
            Error::DriverStopped => f.write_str("the client's driver task has stopped"),
            Error::NoRuntime => f.write_str("not inside a tokio runtime"),
            Error::Outbox(error) => write!(f, "outbox: {error}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Usage(error) => Some(error),
            Error::Outbox(error) => Some(&*error.0),
            _ => None,
        }
    }
}

impl From<UsageError> for Error {
    fn from(error: UsageError) -> Self {
        Error::Usage(error)
    }
}

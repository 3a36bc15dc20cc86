//! The errors of the async client.

use std::fmt;

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
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(error) => error.fmt(f),
            Error::DriverStopped => f.write_str("the client's driver task has stopped"),
            Error::NoRuntime => f.write_str("not inside a tokio runtime"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Usage(error) => Some(error),
            _ => None,
        }
    }
}

impl From<UsageError> for Error {
    fn from(error: UsageError) -> Self {
        Error::Usage(error)
    }
}

//! tokio's clock as the core's [`umqtt_core::Instant`]: milliseconds since the client was made.

use std::time::Duration;

use tokio::time::Instant;

const MAX_MILLIS: u64 = 1_000_000_000_000;

/// Converts between tokio's clock (which a test may pause) and the core's millisecond instants.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            epoch: Instant::now(),
        }
    }

    /// Now, as the core counts.
    pub(crate) fn now(&self) -> umqtt_core::Instant {
        self.core(Instant::now())
    }

    /// A tokio instant as the core counts (whole milliseconds, rounded down).
    pub(crate) fn core(&self, at: Instant) -> umqtt_core::Instant {
        let millis = at.saturating_duration_since(self.epoch).as_millis();
        umqtt_core::Instant::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
    }

    /// A core instant on tokio's clock: a sleep until it wakes when the core's timer is due.
    pub(crate) fn tokio(&self, at: umqtt_core::Instant) -> Instant {
        // Capped at ~30 years: no timer is that far, and tokio's clock cannot overflow then.
        let since = Duration::from_millis(at.as_millis().min(MAX_MILLIS));
        self.epoch.checked_add(since).unwrap_or(self.epoch)
    }
}

//! The session's notion of time: an opaque millisecond counter supplied by the driver.

use core::time::Duration;

/// A point in time, in milliseconds since an epoch chosen by the driver.
///
/// The core never reads a clock: every call that depends on time takes an `Instant`, so tests
/// can replay hours of keepalive traffic in microseconds. The std layer converts
/// `std::time::Instant` into this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This instant plus `duration`, saturating at the far future.
    // Out of line: inlined, its 64-bit saturating arithmetic is repeated at each of the
    // engine's and session's deadlines (about 400 bytes of a microcontroller's flash).
    #[inline(never)]
    pub fn saturating_add(self, duration: Duration) -> Self {
        // `duration.as_millis()` saturated to u64, without its u128 multiplication.
        let millis = duration
            .as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(duration.subsec_millis()));
        Instant(self.0.saturating_add(millis))
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `saturating_add` adds whole milliseconds (sub-millisecond parts dropped), saturating at
    /// the far future: the same as `Duration::as_millis` saturated to u64.
    #[test]
    fn saturating_add_matches_as_millis_saturated() {
        let durations = [
            Duration::ZERO,
            Duration::from_nanos(999_999),
            Duration::from_micros(1_500),
            Duration::from_millis(u64::MAX),
            Duration::new(u64::MAX / 1000, 999_999_999),
            Duration::new(u64::MAX / 1000 + 1, 0),
            Duration::MAX,
        ];
        for start in [0, 7, u64::MAX - 1] {
            for duration in durations {
                let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
                assert_eq!(
                    Instant::from_millis(start).saturating_add(duration),
                    Instant::from_millis(start.saturating_add(millis)),
                    "{start} + {duration:?}"
                );
            }
        }
    }
}

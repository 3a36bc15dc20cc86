//! Time from the caller: the driver reads the clock and sleeps only through [`Clock`].

use umqtt_core::Instant;

/// The time source and timer of a driver, implemented by the caller (a hardware timer,
/// `embassy-time` with the `embassy-time` feature: `EmbassyClock`, tokio's clock in tests).
///
/// Its epoch is arbitrary but fixed; it must never go backwards.
#[allow(async_fn_in_trait)] // Embedded executors are single-threaded: no `Send` bound wanted.
pub trait Clock {
    /// The current time.
    fn now(&self) -> Instant;

    /// Completes at `at` (at once if it passed). Dropping it early must be harmless: the
    /// driver drops it whenever something else happens first.
    async fn sleep_until(&self, at: Instant);
}

impl<C: Clock> Clock for &C {
    fn now(&self) -> Instant {
        C::now(self)
    }

    async fn sleep_until(&self, at: Instant) {
        C::sleep_until(self, at).await;
    }
}

/// `embassy-time`'s clock: milliseconds since boot, timers on its time driver.
#[cfg(feature = "embassy-time")]
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct EmbassyClock;

#[cfg(feature = "embassy-time")]
impl EmbassyClock {
    /// The clock (the firmware must link an `embassy-time` driver, as every embassy HAL does).
    pub fn new() -> Self {
        EmbassyClock
    }
}

#[cfg(feature = "embassy-time")]
impl Clock for EmbassyClock {
    fn now(&self) -> Instant {
        let now = embassy_time::Instant::now();
        // `as_millis`, without a 64-bit division at the usual tick rates (`from_ticks`).
        match u32::try_from(embassy_time::TICK_HZ) {
            Ok(hz) => Instant::from_ticks(now.as_ticks(), hz),
            Err(_) => Instant::from_millis(now.as_millis()),
        }
    }

    async fn sleep_until(&self, at: Instant) {
        embassy_time::Timer::at(embassy_time::Instant::from_millis(at.as_millis())).await;
    }
}

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
        // `Duration::from_millis`, without its 64-bit division.
        let (secs, millis) = div_rem(self.0.saturating_sub(earlier.0), 1000);
        Duration::new(secs, millis * 1_000_000)
    }

    /// The instant `ticks` ticks of a `hz` timer after the epoch, in whole milliseconds
    /// (rounded down, as `ticks × 1000 / hz`): for a driver's clock over a hardware timer or
    /// `embassy-time`'s tick count. Common rates (multiples of 1 kHz up to 65.5 MHz, or
    /// 32 768 Hz) need no 64-bit division, which on a 32-bit microcontroller is a library
    /// routine of close to 1 KB of flash. `hz` = 0 gives the epoch.
    #[inline(always)]
    pub const fn from_ticks(ticks: u64, hz: u32) -> Self {
        if hz == 0 {
            return Instant(0);
        }
        let g = gcd(hz, 1000);
        Instant(div_rem(ticks.saturating_mul((1000 / g) as u64), hz / g).0)
    }
}

const fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        let r = a % b;
        a = b;
        b = r;
    }
    a
}

/// `x / d` and `x % d` (`d` > 0; 0 gives `(u64::MAX, 0)`). On a 32-bit target it never
/// calls the 64-bit division routine (close to 1 KB of a microcontroller's flash): a divisor
/// below 2^16 takes three 32-bit divisions ([`div_rem_halves`]), a larger one a bit-by-bit
/// long division ([`div_rem_bits`]; only the reconnect policies' rare arithmetic meets one).
#[inline(always)]
pub(crate) const fn div_rem(x: u64, d: u32) -> (u64, u32) {
    if d == 0 {
        (u64::MAX, 0)
    } else if usize::BITS >= 64 {
        (x / d as u64, (x % d as u64) as u32)
    } else if d <= 0xFFFF {
        div_rem_halves(x, d)
    } else {
        div_rem_bits(x, d)
    }
}

/// Long division of `x` by `d` (> 0) one bit at a time: 64 shift-and-subtract steps, a few
/// instructions of code.
#[inline(never)]
const fn div_rem_bits(x: u64, d: u32) -> (u64, u32) {
    let d = d as u64;
    let mut quotient = 0u64;
    // Under `d` < 2^32 before each shift, so it never overflows.
    let mut remainder = 0u64;
    let mut bit = 64;
    while bit > 0 {
        bit -= 1;
        remainder = (remainder << 1) | ((x >> bit) & 1);
        if remainder >= d {
            remainder -= d;
            quotient |= 1 << bit;
        }
    }
    (quotient, remainder as u32)
}

/// Long division of `x` by `d` (0 < `d` < 2^16) in 16-bit digits, every step a 32-bit
/// division: the high word, then each half of the low word with the remainder before it
/// (under `d`, so each partial dividend fits 32 bits and each digit 16 bits).
const fn div_rem_halves(x: u64, d: u32) -> (u64, u32) {
    let high = (x >> 32) as u32;
    let low = x as u32;
    let (q0, r0) = (high / d, high % d);
    let t1 = (r0 << 16) | (low >> 16);
    let (q1, r1) = (t1 / d, t1 % d);
    let t2 = (r1 << 16) | (low & 0xFFFF);
    let (q2, r2) = (t2 / d, t2 % d);
    (((q0 as u64) << 32) | ((q1 as u64) << 16) | q2 as u64, r2)
}

/// `duration / by` (`by` > 0; 0 gives `Duration::MAX`), as `Duration`'s `Div<u32>` computes
/// it (nanoseconds rounded down) but without a 64-bit division for `by` below 2^16 on a
/// 32-bit target.
pub(crate) fn duration_div(duration: Duration, by: u32) -> Duration {
    if by == 0 {
        return Duration::MAX;
    }
    let (secs, carry) = div_rem(duration.as_secs(), by);
    // `carry` < `by`, so `carry × 10^9 + nanos` < 2^64.
    let (extra, _) = div_rem(
        u64::from(carry) * 1_000_000_000 + u64::from(duration.subsec_nanos()),
        by,
    );
    // `extra` < 10^9: the quotient of something under `by × 10^9`.
    Duration::new(secs, extra as u32)
}

/// `Duration::from_nanos`, without a 64-bit division on a 32-bit target.
pub(crate) fn duration_from_nanos(nanos: u64) -> Duration {
    let (secs, nanos) = div_rem(nanos, 1_000_000_000);
    Duration::new(secs, nanos)
}

/// `duration × 2^times`, at most `max`: what `saturating_mul(1 << times).min(max)` gives, by
/// doubling (additions only: `Duration`'s multiplication divides by 10^9, a 64-bit division
/// on a 32-bit microcontroller).
pub(crate) fn doubled(mut duration: Duration, times: u32, max: Duration) -> Duration {
    for _ in 0..times {
        if duration >= max {
            break;
        }
        duration = duration.saturating_add(duration);
    }
    duration.min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values at the edges of each 16-bit digit, and a spread of others.
    fn samples() -> impl Iterator<Item = u64> {
        let edges = [
            0u64,
            1,
            999,
            1000,
            0xFFFF,
            0x1_0000,
            0xFFFF_FFFF,
            0x1_0000_0000,
        ];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let random = (0..2000).map(move |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x >> (x % 64)
        });
        edges
            .into_iter()
            .chain([u64::MAX, u64::MAX - 1, u64::MAX / 1000 * 1000])
            .chain(random)
    }

    #[test]
    fn division_by_halves_matches_64_bit_division() {
        for d in [1u32, 2, 3, 7, 1000, 3600, 4096, 0x7FFF, 0xFFFF] {
            for x in samples() {
                let d64 = u64::from(d);
                assert_eq!(
                    div_rem_halves(x, d),
                    (x / d64, (x % d64) as u32),
                    "{x} / {d}"
                );
                assert_eq!(div_rem_bits(x, d), (x / d64, (x % d64) as u32), "{x} / {d}");
                assert_eq!(div_rem(x, d), (x / d64, (x % d64) as u32), "{x} / {d}");
            }
        }
        for d in [0x1_0000u32, 1_000_000, u32::MAX] {
            let d64 = u64::from(d);
            for x in samples() {
                assert_eq!(div_rem_bits(x, d), (x / d64, (x % d64) as u32), "{x} / {d}");
                assert_eq!(div_rem(x, d), (x / d64, (x % d64) as u32), "{x} / {d}");
            }
        }
        assert_eq!(div_rem(5, 0), (u64::MAX, 0));
    }

    #[test]
    fn durations_divide_and_double_as_core_does() {
        let durations = samples()
            .take(300)
            .map(|x| Duration::new(x >> 2, (x % 1_000_000_000) as u32))
            .chain([Duration::ZERO, Duration::from_secs(3600), Duration::MAX]);
        for duration in durations {
            for by in [1u32, 2, 7, 60, 3600, 0xFFFF, 0x1_0000, 1_000_003, u32::MAX] {
                assert_eq!(
                    duration_div(duration, by),
                    duration / by,
                    "{duration:?} / {by}"
                );
            }
            for times in [0, 1, 5, 20, 31] {
                for max in [
                    Duration::from_secs(60),
                    Duration::from_secs(3600),
                    Duration::MAX,
                ] {
                    assert_eq!(
                        doubled(duration, times, max),
                        duration.saturating_mul(1 << times).min(max),
                        "{duration:?} << {times} max {max:?}"
                    );
                }
            }
        }
        assert_eq!(duration_div(Duration::from_secs(1), 0), Duration::MAX);
    }

    #[test]
    fn durations_since_and_ticks_match_core_and_embassy() {
        for x in samples() {
            assert_eq!(
                Instant::from_millis(x).saturating_duration_since(Instant::from_millis(0)),
                Duration::from_millis(x)
            );
            assert_eq!(duration_from_nanos(x), Duration::from_nanos(x));
            // embassy-time's `as_millis`: ticks × (1000 / g) / (hz / g), g = gcd(hz, 1000).
            for hz in [1000u32, 32_768, 1_000_000, 16_000_000, 100_000_000, 7] {
                let g = u64::from(gcd(hz, 1000));
                let expected = x.saturating_mul(1000 / g) / (u64::from(hz) / g);
                assert_eq!(
                    Instant::from_ticks(x, hz).as_millis(),
                    expected,
                    "{x} at {hz}"
                );
            }
        }
        assert_eq!(Instant::from_ticks(5, 0), Instant::from_millis(0));
        assert_eq!(
            Instant::from_millis(5).saturating_duration_since(Instant::from_millis(9)),
            Duration::ZERO
        );
    }

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

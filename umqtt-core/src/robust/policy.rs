//! Reconnect policies: how hard to try, chosen by the application.
//!
//! The seed note of MicroPython's `umqtt.robust` argues there is no single meaning of
//! "robust". A policy is the Rust form of its overridable `delay(i)` / `reconnect()`: given why
//! the last attempt failed, how many attempts failed in a row, how long the outage lasts and
//! what is still waiting to be delivered, it decides when to try again — or to stop.
//!
//! Policies are pure: they never read a clock, sleep or draw random numbers (jitter comes from
//! [`Failure::random`], drawn by the engine from the seed its driver passed in), so they are
//! tested with made-up times and replay identically.

#[cfg(feature = "alloc")]
use alloc::boxed::Box;
use core::time::Duration;

use crate::packet::ConnectReturnCode;

use super::Delivery;

/// Why a connection attempt failed or an established connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The broker refused the connection with this CONNACK code.
    Refused(ConnectReturnCode),
    /// The host name did not resolve.
    Dns,
    /// The TCP connection was refused or could not be opened.
    TcpConnect,
    /// TCP connect, TLS handshake or CONNACK took longer than the connect timeout.
    Timeout,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// No PINGRESP: the link was dead or half-open.
    KeepAliveExpired,
    /// Reading or writing an established connection failed, or the broker closed it.
    ConnectionLost,
    /// The broker sent malformed bytes or broke the protocol.
    Protocol,
    /// The local configuration is unusable (unreadable CA or key file, invalid server name,
    /// empty client id with a persistent session, an incoming message larger than the
    /// configured maximum packet size).
    Configuration,
}

impl FailureKind {
    /// Whether retrying cannot help until someone changes the configuration: bad credentials,
    /// not authorized, protocol version or client id rejected. No shipped policy retries these
    /// in a tight loop.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            FailureKind::Configuration
                | FailureKind::Refused(
                    ConnectReturnCode::BadUserNameOrPassword
                        | ConnectReturnCode::NotAuthorized
                        | ConnectReturnCode::UnacceptableProtocolVersion
                        | ConnectReturnCode::IdentifierRejected
                )
        )
    }
}

/// What a policy knows when it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Why the last attempt failed.
    pub kind: FailureKind,
    /// Attempts failed in a row, including this one (1 for the first failure).
    pub consecutive: u32,
    /// Time since the connection was last lost (or since the first attempt if it never
    /// connected).
    pub outage: Duration,
    /// What waits for the link.
    pub pending: PendingSummary,
    /// Subscriptions the application keeps (they need the link even when no message waits).
    pub subscriptions: usize,
    /// A random number for jitter, drawn from the engine's seeded generator.
    pub random: u64,
}

impl Failure {
    /// A failure with nothing pending and no subscriptions, for policy tests and simulations.
    pub fn new(kind: FailureKind, consecutive: u32, outage: Duration) -> Self {
        Failure {
            kind,
            consecutive,
            outage,
            pending: PendingSummary::default(),
            subscriptions: 0,
            random: 0,
        }
    }

    /// `random` as a fraction in `[0, 1)`.
    pub fn random_unit(&self) -> f64 {
        (self.random >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The messages waiting for delivery, as a policy sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PendingSummary {
    /// Messages not yet delivered.
    pub messages: usize,
    /// How many of them are guaranteed.
    pub guaranteed: usize,
    /// Time left until the earliest delivery deadline among them, if any has one.
    pub earliest_deadline: Option<Duration>,
}

/// A policy's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this delay.
    RetryAfter(Duration),
    /// Stop trying for the messages: those whose contract allows dropping are dropped (and
    /// reported). Subscriptions still keep the link alive through
    /// [`ReconnectPolicy::keep_listening`]; once that stops too, the next `publish`,
    /// `subscribe` or nudge tries once more.
    Stop,
}

/// The spacing [`ReconnectPolicy::keep_listening`] uses by default: backoff from 1 s to 60 s
/// (paho's), ±20 % jitter; never for a failure retrying cannot fix.
pub fn listening_backoff(failure: &Failure) -> Decision {
    if failure.kind.is_permanent() {
        return Decision::Stop;
    }
    let base = backoff_delay(
        Duration::from_secs(1),
        Duration::from_secs(60),
        failure.consecutive,
    );
    Decision::RetryAfter(jittered(base, 200, Duration::from_secs(60), failure))
}

fn backoff_delay(initial: Duration, max: Duration, consecutive: u32) -> Duration {
    crate::time::doubled(initial, consecutive.saturating_sub(1).min(31), max)
}

/// `delay` spread by ±`permille`/1000, drawn from `failure.random`, at most `max`. Integer
/// arithmetic only: no floating point on a microcontroller without a double-precision FPU.
///
/// With `draw` uniform in [-2^32, 2^32) from the top 32 bits of the random word, the spread is
/// `nanos × permille × draw / (1000 × 2^32)`, truncated toward zero. It is computed without
/// a 128-bit division (a long inlined sequence on a 32-bit microcontroller): with
/// `nanos = 1000 q + r` (`q`, `r` from the duration's seconds and sub-second nanoseconds) and
/// `q × permille × |draw| = A × 2^32 + B`, the product is `1000 A × 2^32 + S` with
/// `S = 1000 B + r × permille × |draw|` (under 2^59), so its quotient is `A + (S >> 32) / 1000`.
fn jittered(delay: Duration, permille: u16, max: Duration, failure: &Failure) -> Duration {
    if permille == 0 {
        return delay.min(max);
    }
    // `draw` = 2 × top − 2^32: its sign and magnitude.
    let top = failure.random >> 32;
    let (negative, magnitude) = match (2 * top).checked_sub(1 << 32) {
        Some(up) => (false, up),
        None => (true, (1 << 32) - 2 * top),
    };
    // Under 2^48; `r × factor` under 2^58.
    let factor = u64::from(permille) * magnitude;
    let subsec = delay.subsec_nanos();
    let q = u128::from(delay.as_secs()) * 1_000_000 + u128::from(subsec / 1000);
    let r = u64::from(subsec % 1000);
    let y = q * u128::from(factor);
    let s = 1000 * (y as u64 & 0xFFFF_FFFF) + r * factor;
    // `s >> 32` < 2^27: a 32-bit division.
    let spread = (y >> 32) + u128::from(((s >> 32) as u32) / 1000);
    let nanos = delay.as_nanos();
    let jittered = if negative {
        nanos.saturating_sub(spread)
    } else {
        nanos + spread
    };
    crate::time::duration_from_nanos(u64::try_from(jittered).unwrap_or(u64::MAX)).min(max)
}

/// Decides when to reconnect. Implement it to encode an application's own idea of robustness.
pub trait ReconnectPolicy: Send {
    /// Called after every failed attempt and when an established connection ends.
    fn on_failure(&mut self, failure: &Failure) -> Decision;

    /// Called when a connection is established; reset any backoff here.
    fn on_connected(&mut self) {}

    /// The application knows the network is back (e.g. a Wi-Fi up event): the client tries at
    /// once; the policy may reset its spacing.
    fn on_nudge(&mut self) {}

    /// The delivery contract of a message published without one.
    fn default_delivery(&self) -> Delivery {
        Delivery::Guaranteed
    }

    /// Called when [`ReconnectPolicy::on_failure`] said [`Decision::Stop`] but the application
    /// keeps subscriptions: a subscriber must not go deaf because nothing waits to be sent.
    /// The default retries with [`listening_backoff`]; a policy that should give up on
    /// subscriptions too (see [`OutageLimit`]) returns [`Decision::Stop`].
    fn keep_listening(&mut self, failure: &Failure) -> Decision {
        listening_backoff(failure)
    }
}

/// A boxed policy is a policy, so one can be chosen at run time (e.g. from a command-line flag).
#[cfg(feature = "alloc")]
impl<P: ReconnectPolicy + ?Sized> ReconnectPolicy for Box<P> {
    fn on_failure(&mut self, failure: &Failure) -> Decision {
        (**self).on_failure(failure)
    }

    fn on_connected(&mut self) {
        (**self).on_connected()
    }

    fn on_nudge(&mut self) {
        (**self).on_nudge()
    }

    fn default_delivery(&self) -> Delivery {
        (**self).default_delivery()
    }

    fn keep_listening(&mut self, failure: &Failure) -> Decision {
        (**self).keep_listening(failure)
    }
}

/// **Temperature**: a reading sent every minute. A failed send is dropped — the next reading
/// replaces it — and no retry drains the battery. Each `publish` makes at most one connection
/// attempt.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRetry;

impl ReconnectPolicy for NoRetry {
    fn on_failure(&mut self, _failure: &Failure) -> Decision {
        Decision::Stop
    }

    fn default_delivery(&self) -> Delivery {
        Delivery::NoRetry
    }
}

/// `umqtt.robust`'s behaviour, for compatibility: the same delay between every attempt
/// (2 s by default), forever — except for refusals retrying cannot fix.
#[derive(Debug, Clone, Copy)]
pub struct FixedDelay {
    /// Delay between attempts.
    pub delay: Duration,
}

impl Default for FixedDelay {
    fn default() -> Self {
        FixedDelay {
            delay: Duration::from_secs(2),
        }
    }
}

impl ReconnectPolicy for FixedDelay {
    fn on_failure(&mut self, failure: &Failure) -> Decision {
        if failure.kind.is_permanent() {
            Decision::Stop
        } else {
            Decision::RetryAfter(self.delay)
        }
    }
}

/// Exponential backoff with jitter and a cap: `initial × 2^(n−1)`, at most `max`, each delay
/// spread by ±`jitter` (a fraction) so a fleet of devices does not reconnect in lockstep.
#[derive(Debug, Clone)]
pub struct ExponentialBackoff {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Relative spread of each delay in thousandths (200: ±20 %), at most 1000.
    jitter_permille: u16,
}

impl ExponentialBackoff {
    /// Backoff from `initial` to `max` with ±20 % jitter.
    pub fn new(initial: Duration, max: Duration) -> Self {
        ExponentialBackoff {
            initial,
            max,
            jitter_permille: 200,
        }
    }

    /// Sets the jitter fraction, 0.0..=1.0 (0 disables it); kept to thousandths.
    pub fn with_jitter(self, jitter: f64) -> Self {
        // `as` saturates (and maps NaN to 0): no panic for any input.
        self.with_jitter_permille((jitter * 1000.0 + 0.5) as u16)
    }

    /// Sets the jitter in thousandths (100: ±10 %), at most 1000; no floating point.
    pub fn with_jitter_permille(mut self, permille: u16) -> Self {
        self.jitter_permille = permille.min(1000);
        self
    }

    /// The jitter fraction.
    pub fn jitter(&self) -> f64 {
        f64::from(self.jitter_permille) / 1000.0
    }

    /// The delay after `consecutive` failures, before jitter.
    pub fn base_delay(&self, consecutive: u32) -> Duration {
        backoff_delay(self.initial, self.max, consecutive)
    }
}

impl Default for ExponentialBackoff {
    fn default() -> Self {
        ExponentialBackoff::new(Duration::from_secs(1), Duration::from_secs(60))
    }
}

impl ReconnectPolicy for ExponentialBackoff {
    fn on_failure(&mut self, failure: &Failure) -> Decision {
        if failure.kind.is_permanent() {
            return Decision::Stop;
        }
        let delay = self.base_delay(failure.consecutive);
        Decision::RetryAfter(jittered(delay, self.jitter_permille, self.max, failure))
    }
}

/// **Button**: a press is worth retrying, but only while it is still relevant. Messages carry
/// a delivery deadline (`max_age`, 15 s by default); the client retries with a short backoff
/// while any pending message is younger than its deadline, then stops. Expired messages are
/// dropped and reported.
#[derive(Debug, Clone)]
pub struct Deadline {
    /// How long a message stays relevant.
    pub max_age: Duration,
    backoff: ExponentialBackoff,
}

impl Deadline {
    /// Messages expire `max_age` after `publish`.
    pub fn new(max_age: Duration) -> Self {
        let cap = (max_age / 4).max(Duration::from_millis(500));
        Deadline {
            max_age,
            backoff: ExponentialBackoff::new(Duration::from_millis(500), cap)
                .with_jitter_permille(100),
        }
    }
}

impl Default for Deadline {
    fn default() -> Self {
        Deadline::new(Duration::from_secs(15))
    }
}

impl ReconnectPolicy for Deadline {
    fn on_failure(&mut self, failure: &Failure) -> Decision {
        if failure.kind.is_permanent() {
            return Decision::Stop;
        }
        let Some(left) = failure.pending.earliest_deadline else {
            // Nothing with a deadline waits; guaranteed messages would, without a deadline.
            return if failure.pending.guaranteed > 0 {
                self.backoff.on_failure(failure)
            } else {
                Decision::Stop
            };
        };
        if left.is_zero() {
            return Decision::Stop;
        }
        match self.backoff.on_failure(failure) {
            // Never sleep past the deadline: one last attempt just before it.
            Decision::RetryAfter(delay) => Decision::RetryAfter(delay.min(left)),
            Decision::Stop => Decision::Stop,
        }
    }

    fn default_delivery(&self) -> Delivery {
        Delivery::Within(self.max_age)
    }
}

/// **Burglar alarm**: delivered no matter what, retried smartly so the battery lasts. Never
/// gives up on a message. Attempts start quickly (backoff from `initial`), then are rationed
/// by an hourly budget that halves for every hour the outage lasts, down to `min_per_hour` —
/// so a six-hour outage costs a handful of attempts, not thousands.
/// [`ReconnectPolicy::on_nudge`] (the application saw the network come back) triggers an
/// attempt at once and restarts the quick phase.
///
/// When an established link ends while nothing waits — no message, no subscription — nobody
/// needs the link, so it does not retry ([`Decision::Stop`]): the next `publish` (or a nudge)
/// reconnects at once, and only then, if the broker is still unreachable, does the rationed
/// retrying start. An alarm that fires rarely thus pays nothing for an outage it has nothing
/// to say during (`umqtt simulate` measures this: on its outage mix the other never-give-up
/// rules spend their attempts on links nobody uses).
/// `reconnect_when_idle` turns this off (keep the link up even with nothing to send).
#[derive(Debug, Clone)]
pub struct BatteryAware {
    /// First delay of the quick phase.
    pub initial: Duration,
    /// Attempts allowed in the first hour of an outage.
    pub attempts_per_hour: u32,
    /// Attempts per hour never fall below this.
    pub min_per_hour: u32,
    /// Spacing for refusals retrying cannot fix (bad credentials): slow, never a tight loop.
    pub permanent_refusal_delay: Duration,
    /// Retry even when a link ends with nothing waiting (default false: wait for the next
    /// publish or nudge).
    pub reconnect_when_idle: bool,
    nudged: bool,
}

impl BatteryAware {
    /// Quick phase from 1 s, 60 attempts in the first hour, never fewer than 2 per hour; no
    /// retry for an idle link.
    pub fn new() -> Self {
        BatteryAware {
            initial: Duration::from_secs(1),
            attempts_per_hour: 60,
            min_per_hour: 2,
            permanent_refusal_delay: Duration::from_secs(3600),
            reconnect_when_idle: false,
            nudged: false,
        }
    }

    /// The attempts per hour allowed after `outage` has lasted this long.
    pub fn budget_per_hour(&self, outage: Duration) -> u32 {
        let hours = crate::time::div_rem(outage.as_secs(), 3600).0.min(31) as u32;
        (self.attempts_per_hour >> hours).max(self.min_per_hour.max(1))
    }
}

impl Default for BatteryAware {
    fn default() -> Self {
        BatteryAware::new()
    }
}

impl ReconnectPolicy for BatteryAware {
    fn on_failure(&mut self, failure: &Failure) -> Decision {
        if failure.kind.is_permanent() {
            return Decision::RetryAfter(self.permanent_refusal_delay);
        }
        let idle = failure.pending.messages == 0 && failure.subscriptions == 0;
        let link_ended = matches!(
            failure.kind,
            FailureKind::ConnectionLost | FailureKind::KeepAliveExpired
        );
        if idle && link_ended && !self.reconnect_when_idle {
            // Nobody needs the link: the next publish or nudge reconnects at once.
            self.nudged = false;
            return Decision::Stop;
        }
        let consecutive = if self.nudged { 1 } else { failure.consecutive };
        self.nudged = false;
        // Quick phase: initial × 2^(n−1) until it reaches the rationed spacing, which then
        // rules: 3600 s / budget, the budget halving with every hour of outage.
        let rationed = crate::time::duration_div(
            Duration::from_secs(3600),
            self.budget_per_hour(failure.outage),
        );
        let doublings = consecutive.saturating_sub(1).min(20);
        Decision::RetryAfter(crate::time::doubled(self.initial, doublings, rationed))
    }

    fn on_nudge(&mut self) {
        self.nudged = true;
    }

    fn default_delivery(&self) -> Delivery {
        Delivery::Guaranteed
    }
}

/// Gives up once the broker has been unreachable for `limit`, on messages *and*
/// subscriptions: the shape of a command-line tool that should end instead of waiting forever.
/// Until then it retries with `inner`'s spacing (and `inner`'s delivery contract).
#[derive(Debug, Clone)]
pub struct OutageLimit<P> {
    /// How long an outage may last before giving up.
    pub limit: Duration,
    /// The policy whose spacing is used until then.
    pub inner: P,
}

impl<P: ReconnectPolicy> OutageLimit<P> {
    /// Gives up after `limit` of outage, retrying with `inner` until then.
    pub fn new(limit: Duration, inner: P) -> Self {
        OutageLimit { limit, inner }
    }

    fn within_limit(&self, failure: &Failure, decision: Decision) -> Decision {
        match decision {
            Decision::RetryAfter(delay)
                if !failure.kind.is_permanent() && failure.outage < self.limit =>
            {
                // One last attempt just at the limit, never past it.
                Decision::RetryAfter(delay.min(self.limit - failure.outage))
            }
            _ => Decision::Stop,
        }
    }
}

impl<P: ReconnectPolicy> ReconnectPolicy for OutageLimit<P> {
    fn on_failure(&mut self, failure: &Failure) -> Decision {
        let decision = self.inner.on_failure(failure);
        self.within_limit(failure, decision)
    }

    fn on_connected(&mut self) {
        self.inner.on_connected();
    }

    fn on_nudge(&mut self) {
        self.inner.on_nudge();
    }

    fn default_delivery(&self) -> Delivery {
        self.inner.default_delivery()
    }

    fn keep_listening(&mut self, failure: &Failure) -> Decision {
        let decision = self.inner.keep_listening(failure);
        self.within_limit(failure, decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The jitter as first written, in 128-bit signed arithmetic: the reference the
    /// division-free form must match exactly.
    fn jittered_reference(delay: Duration, permille: u16, max: Duration, random: u64) -> Duration {
        if permille == 0 {
            return delay.min(max);
        }
        let nanos = delay.as_nanos() as i128;
        let draw = 2 * i128::from((random >> 32) as u32) - (1i128 << 32);
        let spread = nanos * i128::from(permille) * draw / (1000i128 << 32);
        let jittered = (nanos + spread).clamp(0, i128::from(u64::MAX)) as u64;
        Duration::from_nanos(jittered).min(max)
    }

    #[test]
    fn jitter_matches_the_128_bit_reference() {
        let delays = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(999),
            Duration::from_nanos(1_001),
            Duration::from_millis(1500),
            Duration::from_secs(60),
            Duration::from_secs(6 * 3600),
            Duration::new(1 << 40, 999_999_999),
            Duration::from_nanos(u64::MAX),
        ];
        let permilles = [1, 200, 999, 1000, 1001, 65_535];
        let tops: [u64; 6] = [0, 1, (1 << 31) - 1, 1 << 31, (1 << 31) + 1, u32::MAX.into()];
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for delay in delays {
            for permille in permilles {
                let randoms = tops.iter().map(|t| t << 32).chain((0..200).map(|_| next()));
                for random in randoms.collect::<alloc::vec::Vec<_>>() {
                    let failure = Failure {
                        random,
                        ..Failure::new(FailureKind::ConnectionLost, 1, Duration::ZERO)
                    };
                    assert_eq!(
                        jittered(delay, permille, Duration::MAX, &failure),
                        jittered_reference(delay, permille, Duration::MAX, random),
                        "{delay:?} ±{permille}‰, random {random:#x}"
                    );
                }
            }
        }
        // Random delays and permilles too.
        for _ in 0..20_000 {
            let delay = Duration::from_nanos(next() >> (next() % 64));
            let permille = (next() % 2001) as u16;
            let random = next();
            let failure = Failure {
                random,
                ..Failure::new(FailureKind::ConnectionLost, 1, Duration::ZERO)
            };
            let max = Duration::from_secs(60);
            assert_eq!(
                jittered(delay, permille, max, &failure),
                jittered_reference(delay, permille, max, random),
                "{delay:?} ±{permille}‰, random {random:#x}"
            );
        }
    }
}

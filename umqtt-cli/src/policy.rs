//! The `--policy` flag: what to do when the connection is lost.
//!
//! Parsed here so that bad syntax is reported before anything connects, and mapped onto the
//! robust client's policies ([`PolicySpec::for_publishing`], [`PolicySpec::for_subscribing`]).
//! Without `--policy` the commands use the simple client: a lost connection ends them.
//!
//! Syntax: `none`, `fixed:2s`, `backoff:1s..60s`, `deadline:15s`, `guaranteed`. Durations
//! take a unit: `ms`, `s`, `m` or `h` (`250ms`, `1.5s` is not accepted: use `1500ms`).
//!
//! | policy | robust policy | a published message |
//! |---|---|---|
//! | `none` | `NoRetry` | sent if the link is up, else dropped (and reported) |
//! | `fixed:D` | `FixedDelay(D)` | kept until delivered |
//! | `backoff:A..B` | `ExponentialBackoff(A, B)` | kept until delivered |
//! | `deadline:D` | `Deadline(D)` | expires (reported) if not delivered within D |
//! | `guaranteed` | `BatteryAware` | kept until delivered, attempts rationed |
//!
//! `umqtt sub` has no messages of its own to deliver, so there `deadline:D` means: keep
//! reconnecting, but give up once the broker has been unreachable for D.

use std::fmt;
use std::time::Duration;

use umqtt::robust::{
    BatteryAware, Deadline, ExponentialBackoff, FixedDelay, NoRetry, OutageLimit, ReconnectPolicy,
};

/// A reconnection policy as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicySpec {
    /// Do not reconnect: a lost connection is an error (the simple client).
    #[default]
    None,
    /// Reconnect after this fixed delay, forever.
    Fixed(Duration),
    /// Reconnect with exponential backoff from `min` up to `max`.
    Backoff {
        /// First delay.
        min: Duration,
        /// Largest delay.
        max: Duration,
    },
    /// Publishing: each message expires if not delivered within this long. Subscribing: keep
    /// reconnecting, but give up once this long has passed without a connection.
    Deadline(Duration),
    /// Reconnect until delivered, rationing attempts during long outages (battery-aware).
    Guaranteed,
}

impl PolicySpec {
    /// The accepted forms, for error messages and `--help`.
    pub const SYNTAX: &'static str = "none, fixed:2s, backoff:1s..60s, deadline:15s, guaranteed";

    /// Whether a message published under this policy is kept until delivered (so that it
    /// belongs in a durable outbox).
    pub fn guarantees_delivery(self) -> bool {
        matches!(
            self,
            PolicySpec::Fixed(_) | PolicySpec::Backoff { .. } | PolicySpec::Guaranteed
        )
    }

    /// The robust client's policy for publishing.
    pub fn for_publishing(self) -> CliPolicy {
        match self {
            PolicySpec::None => Box::new(NoRetry),
            PolicySpec::Fixed(delay) => Box::new(FixedDelay { delay }),
            PolicySpec::Backoff { min, max } => Box::new(ExponentialBackoff::new(min, max)),
            PolicySpec::Deadline(max_age) => Box::new(Deadline::new(max_age)),
            PolicySpec::Guaranteed => Box::new(BatteryAware::new()),
        }
    }

    /// The robust client's policy for subscribing: as for publishing (whose policies keep a
    /// subscriber connected whatever becomes of messages), except `none`, which ends at the
    /// first failure, and `deadline:D`, which gives up once the broker has been unreachable
    /// for D.
    pub fn for_subscribing(self) -> CliPolicy {
        match self {
            PolicySpec::None => Box::new(OutageLimit::new(Duration::ZERO, NoRetry)),
            PolicySpec::Deadline(limit) => {
                // A short backoff, never sleeping past the limit, then stop.
                let cap = (limit / 4).max(Duration::from_millis(500));
                let spacing =
                    ExponentialBackoff::new(Duration::from_millis(500), cap).with_jitter(0.1);
                Box::new(OutageLimit::new(limit, spacing))
            }
            other => other.for_publishing(),
        }
    }

    /// Parses the `--policy` value.
    pub fn parse(text: &str) -> Result<PolicySpec, String> {
        let (name, argument) = match text.split_once(':') {
            Some((name, argument)) => (name, Some(argument)),
            None => (text, None),
        };
        let needs_argument = |example: &str| {
            format!(
                "'{name}' needs a duration, e.g. '{example}' (expected one of: {})",
                Self::SYNTAX
            )
        };
        match (name, argument) {
            ("none", None) => Ok(PolicySpec::None),
            ("guaranteed", None) => Ok(PolicySpec::Guaranteed),
            ("none" | "guaranteed", Some(_)) => Err(format!("'{name}' takes no argument")),
            ("fixed", Some(argument)) => Ok(PolicySpec::Fixed(positive_duration(argument)?)),
            ("fixed", None) => Err(needs_argument("fixed:2s")),
            ("deadline", Some(argument)) => Ok(PolicySpec::Deadline(positive_duration(argument)?)),
            ("deadline", None) => Err(needs_argument("deadline:15s")),
            ("backoff", Some(argument)) => {
                let Some((min, max)) = argument.split_once("..") else {
                    return Err(format!(
                        "'backoff' needs a range MIN..MAX, e.g. 'backoff:1s..60s', not '{argument}'"
                    ));
                };
                let (min, max) = (positive_duration(min)?, positive_duration(max)?);
                if min > max {
                    return Err(format!(
                        "backoff minimum {} is larger than its maximum {}",
                        DurationText(min),
                        DurationText(max)
                    ));
                }
                Ok(PolicySpec::Backoff { min, max })
            }
            ("backoff", None) => Err(needs_argument("backoff:1s..60s")),
            _ => Err(format!(
                "unknown policy '{name}' (expected one of: {})",
                Self::SYNTAX
            )),
        }
    }
}

impl fmt::Display for PolicySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySpec::None => f.write_str("none"),
            PolicySpec::Fixed(delay) => write!(f, "fixed:{}", DurationText(*delay)),
            PolicySpec::Backoff { min, max } => {
                write!(f, "backoff:{}..{}", DurationText(*min), DurationText(*max))
            }
            PolicySpec::Deadline(limit) => write!(f, "deadline:{}", DurationText(*limit)),
            PolicySpec::Guaranteed => f.write_str("guaranteed"),
        }
    }
}

/// One of the policies above, chosen at run time.
pub type CliPolicy = Box<dyn ReconnectPolicy>;

/// A duration with a unit, greater than zero: a zero delay would reconnect in a busy loop.
fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("duration '{text}' must be greater than zero"));
    }
    Ok(duration)
}

/// `250ms`, `2s`, `5m`, `1h`. The unit is required so that `2` cannot mean two different
/// things to two readers.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(format!(
            "invalid duration '{text}': expected a whole number with a unit (ms, s, m, h), e.g. '2s'"
        ));
    }
    let value: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration '{text}': number too large"))?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => {
            return Err(format!(
                "duration '{text}' needs a unit (ms, s, m, h), e.g. '{text}s'"
            ))
        }
        _ => {
            return Err(format!(
                "invalid duration '{text}': unknown unit '{unit}' (use ms, s, m or h)"
            ))
        }
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("invalid duration '{text}': too large"))
}

/// Prints a duration the way [`parse_duration`] reads it back.
pub struct DurationText(pub Duration);

impl fmt::Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis % 3_600_000 == 0 {
            write!(f, "{}h", millis / 3_600_000)
        } else if millis % 60_000 == 0 {
            write!(f, "{}m", millis / 60_000)
        } else if millis % 1_000 == 0 {
            write!(f, "{}s", millis / 1_000)
        } else {
            write!(f, "{millis}ms")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use umqtt::robust::Delivery;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn accepted_forms() {
        let cases = [
            ("none", PolicySpec::None),
            ("guaranteed", PolicySpec::Guaranteed),
            ("fixed:2s", PolicySpec::Fixed(secs(2))),
            ("fixed:250ms", PolicySpec::Fixed(Duration::from_millis(250))),
            ("deadline:15s", PolicySpec::Deadline(secs(15))),
            ("deadline:1h", PolicySpec::Deadline(secs(3600))),
            (
                "backoff:1s..60s",
                PolicySpec::Backoff {
                    min: secs(1),
                    max: secs(60),
                },
            ),
            (
                "backoff:500ms..2m",
                PolicySpec::Backoff {
                    min: Duration::from_millis(500),
                    max: secs(120),
                },
            ),
            (
                "backoff:5s..5s",
                PolicySpec::Backoff {
                    min: secs(5),
                    max: secs(5),
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(PolicySpec::parse(text), Ok(expected), "{text}");
            // Display round-trips.
            assert_eq!(
                PolicySpec::parse(&expected.to_string()),
                Ok(expected),
                "{text}"
            );
        }
    }

    #[test]
    fn mapping_to_robust_policies() {
        use umqtt::robust::{Decision, Failure, FailureKind};
        let failure =
            |consecutive, outage| Failure::new(FailureKind::TcpConnect, consecutive, outage);
        let none = PolicySpec::None.for_publishing();
        assert_eq!(none.default_delivery(), Delivery::NoRetry);
        let deadline = PolicySpec::Deadline(secs(15)).for_publishing();
        assert_eq!(deadline.default_delivery(), Delivery::Within(secs(15)));
        for spec in [
            PolicySpec::Fixed(secs(2)),
            PolicySpec::Backoff {
                min: secs(1),
                max: secs(2),
            },
            PolicySpec::Guaranteed,
        ] {
            assert!(spec.guarantees_delivery());
            assert_eq!(
                spec.for_publishing().default_delivery(),
                Delivery::Guaranteed
            );
        }
        assert!(!PolicySpec::None.guarantees_delivery());
        assert!(!PolicySpec::Deadline(secs(1)).guarantees_delivery());
        let mut fixed = PolicySpec::Fixed(secs(2)).for_subscribing();
        assert_eq!(
            fixed.on_failure(&failure(5, secs(100))),
            Decision::RetryAfter(secs(2))
        );
        // A subscriber's deadline bounds the outage.
        let mut sub = PolicySpec::Deadline(secs(10)).for_subscribing();
        match sub.on_failure(&failure(1, secs(9))) {
            Decision::RetryAfter(delay) => assert!(delay <= secs(1), "{delay:?}"),
            Decision::Stop => panic!("stopped before the deadline"),
        }
        assert_eq!(sub.on_failure(&failure(9, secs(10))), Decision::Stop);
    }

    #[test]
    fn rejected_forms_say_why() {
        let cases = [
            ("", "unknown policy"),
            ("retry", "unknown policy 'retry'"),
            ("None", "unknown policy"),
            ("none:1s", "takes no argument"),
            ("guaranteed:1s", "takes no argument"),
            ("fixed", "needs a duration"),
            ("fixed:", "invalid duration ''"),
            ("fixed:2", "needs a unit"),
            ("fixed:2sec", "unknown unit 'sec'"),
            ("fixed:0s", "greater than zero"),
            ("fixed:-1s", "invalid duration"),
            ("fixed:1.5s", "unknown unit '.5s'"),
            ("deadline", "needs a duration"),
            ("deadline:0ms", "greater than zero"),
            ("backoff", "needs a duration"),
            ("backoff:1s", "needs a range"),
            ("backoff:1s-60s", "needs a range"),
            ("backoff:60s..1s", "larger than its maximum"),
            ("backoff:0s..1s", "greater than zero"),
            ("backoff:1s..", "invalid duration ''"),
            ("fixed:99999999999999999999s", "too large"),
            ("fixed:18446744073709551615h", "too large"),
        ];
        for (text, expected) in cases {
            let error = PolicySpec::parse(text).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error:?}");
            assert!(!error.contains('\n'), "{text:?}: {error:?}");
        }
    }
}

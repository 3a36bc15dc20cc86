//! The policies compared: every policy umqtt ships, custom `--policy` specs, and the
//! reconnect rules of the clients people use, written as [`ReconnectPolicy`] impls here (not
//! in the library) on top of the library's spacing rules, so no rule is written twice.
//!
//! | rule | spacing | where it comes from |
//! |---|---|---|
//! | umqtt.robust | fixed 2 s, forever | MicroPython `umqtt/robust.py`: `DELAY = 2`, `delay(i)` sleeps it |
//! | paho | backoff 1 s → 60 s, doubling, no jitter | Paho C `MQTTAsync_connectOptions`: `minRetryInterval = 1`, `maxRetryInterval = 60` |
//! | HiveMQ | backoff 1 s → 120 s, ±25 % jitter | HiveMQ MQTT Client automatic reconnect defaults (1 s, 120 s, randomized; the ±25 % is an assumption) |
//! | MQTT.js | fixed 1 s | MQTT.js option `reconnectPeriod: 1000` |
//! | rumqttc | fixed 1 s | rumqttc's documented loop: keep calling `poll`, sleep 1 s after an error |
//!
//! None of these clients classifies failures: they retry a refusal for bad credentials as any
//! other, so the rules here do too.

use std::fmt;
use std::time::Duration;

use umqtt::robust::{
    BatteryAware, Deadline, Decision, ExponentialBackoff, Failure, FailureKind, FixedDelay,
    NoRetry, OutageLimit, ReconnectPolicy,
};

use crate::policy::PolicySpec;

/// A policy in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `NoRetry`.
    NoRetry,
    /// `FixedDelay::default()` (2 s).
    FixedDelay,
    /// `ExponentialBackoff::default()` (1 s → 60 s, ±20 % jitter).
    Backoff,
    /// `Deadline::default()` (15 s).
    Deadline,
    /// `BatteryAware::new()`.
    BatteryAware,
    /// `OutageLimit::new(1 h, ExponentialBackoff::default())`.
    OutageLimit,
    /// A client's rule.
    Client(Client),
    /// A `--policy` spec.
    Custom(PolicySpec),
}

/// The clients whose rules are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// MicroPython umqtt.robust.
    UmqttRobust,
    /// Eclipse paho.
    Paho,
    /// HiveMQ MQTT Client.
    HiveMq,
    /// MQTT.js.
    MqttJs,
    /// rumqttc's documented event loop.
    Rumqttc,
}

impl Rule {
    /// Every shipped policy and every client rule, in report order.
    pub fn builtin() -> Vec<Rule> {
        vec![
            Rule::NoRetry,
            Rule::FixedDelay,
            Rule::Backoff,
            Rule::Deadline,
            Rule::BatteryAware,
            Rule::OutageLimit,
            Rule::Client(Client::UmqttRobust),
            Rule::Client(Client::Paho),
            Rule::Client(Client::HiveMq),
            Rule::Client(Client::MqttJs),
            Rule::Client(Client::Rumqttc),
        ]
    }

    /// A fresh policy object for one simulated device.
    pub fn build(self) -> Box<dyn ReconnectPolicy> {
        match self {
            Rule::NoRetry => Box::new(NoRetry),
            Rule::FixedDelay => Box::new(FixedDelay::default()),
            Rule::Backoff => Box::new(ExponentialBackoff::default()),
            Rule::Deadline => Box::new(Deadline::default()),
            Rule::BatteryAware => Box::new(BatteryAware::new()),
            Rule::OutageLimit => Box::new(OutageLimit::new(
                Duration::from_secs(3600),
                ExponentialBackoff::default(),
            )),
            Rule::Client(client) => Box::new(ClientRule::new(client)),
            Rule::Custom(spec) => spec.for_publishing(),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::NoRetry => f.write_str("NoRetry"),
            Rule::FixedDelay => f.write_str("FixedDelay(2s)"),
            Rule::Backoff => f.write_str("ExponentialBackoff(1s..60s)"),
            Rule::Deadline => f.write_str("Deadline(15s)"),
            Rule::BatteryAware => f.write_str("BatteryAware"),
            Rule::OutageLimit => f.write_str("OutageLimit(1h)"),
            Rule::Client(Client::UmqttRobust) => f.write_str("umqtt.robust"),
            Rule::Client(Client::Paho) => f.write_str("paho"),
            Rule::Client(Client::HiveMq) => f.write_str("HiveMQ"),
            Rule::Client(Client::MqttJs) => f.write_str("MQTT.js"),
            Rule::Client(Client::Rumqttc) => f.write_str("rumqttc"),
            Rule::Custom(spec) => write!(f, "--policy {spec}"),
        }
    }
}

/// A client's reconnect rule: the library's fixed or backoff spacing, applied to every
/// failure (these clients do not tell a permanent refusal from a transient one).
pub struct ClientRule {
    spacing: Box<dyn ReconnectPolicy>,
}

impl ClientRule {
    /// The rule of `client`.
    pub fn new(client: Client) -> ClientRule {
        let secs = Duration::from_secs;
        let spacing: Box<dyn ReconnectPolicy> = match client {
            Client::UmqttRobust => Box::new(FixedDelay { delay: secs(2) }),
            Client::Paho => Box::new(ExponentialBackoff::new(secs(1), secs(60)).with_jitter(0.0)),
            Client::HiveMq => {
                Box::new(ExponentialBackoff::new(secs(1), secs(120)).with_jitter(0.25))
            }
            Client::MqttJs | Client::Rumqttc => Box::new(FixedDelay { delay: secs(1) }),
        };
        ClientRule { spacing }
    }
}

impl ReconnectPolicy for ClientRule {
    fn on_failure(&mut self, failure: &Failure) -> Decision {
        let retryable = Failure {
            kind: FailureKind::TcpConnect,
            ..*failure
        };
        self.spacing.on_failure(&retryable)
    }

    fn on_connected(&mut self) {
        self.spacing.on_connected();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use umqtt::ConnectReturnCode;

    #[test]
    fn client_rules_space_attempts_as_documented() {
        let failure = |n| Failure::new(FailureKind::TcpConnect, n, Duration::ZERO);
        let mut robust = ClientRule::new(Client::UmqttRobust);
        assert_eq!(
            robust.on_failure(&failure(9)),
            Decision::RetryAfter(Duration::from_secs(2))
        );
        let mut paho = ClientRule::new(Client::Paho);
        assert_eq!(
            paho.on_failure(&failure(3)),
            Decision::RetryAfter(Duration::from_secs(4))
        );
        assert_eq!(
            paho.on_failure(&failure(30)),
            Decision::RetryAfter(Duration::from_secs(60))
        );
        let mut hivemq = ClientRule::new(Client::HiveMq);
        match hivemq.on_failure(&failure(30)) {
            Decision::RetryAfter(d) => {
                assert!(d >= Duration::from_secs(90) && d <= Duration::from_secs(120))
            }
            Decision::Stop => panic!("HiveMQ never stops"),
        }
        // A refusal that retrying cannot fix is retried all the same.
        let mut js = ClientRule::new(Client::MqttJs);
        let refused = Failure::new(
            FailureKind::Refused(ConnectReturnCode::NotAuthorized),
            1,
            Duration::ZERO,
        );
        assert_eq!(
            js.on_failure(&refused),
            Decision::RetryAfter(Duration::from_secs(1))
        );
    }
}

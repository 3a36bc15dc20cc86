//! The simulated devices: the seed note's three and custom ones from `--device`.

use std::fmt;
use std::time::Duration;

use umqtt::robust::Delivery;
use umqtt::QoS;

use crate::policy::{parse_duration, DurationText};

use super::rng::Rng;

/// When a device publishes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pattern {
    /// Every `period` ms (a reading), from a random phase.
    Periodic,
    /// At random times: exponential gaps with mean `period` ms (presses, alarms).
    Random,
}

/// One kind of device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSpec {
    /// Its name in the report.
    pub name: String,
    /// Mean time between two messages, ms.
    pub period: u64,
    /// Periodic or random.
    pub pattern: Pattern,
    /// QoS of its messages.
    pub qos: QoS,
    /// Delivery contract of its messages.
    pub delivery: Delivery,
}

impl DeviceSpec {
    /// The seed's temperature sensor: a QoS 1 reading every minute, never retried.
    pub fn temperature() -> Self {
        DeviceSpec {
            name: "temperature".into(),
            period: 60_000,
            pattern: Pattern::Periodic,
            qos: QoS::AtLeastOnce,
            delivery: Delivery::NoRetry,
        }
    }

    /// The seed's button: about 20 presses a day at random times, relevant for 15 s.
    pub fn button() -> Self {
        DeviceSpec {
            name: "button".into(),
            period: 72 * 60_000,
            pattern: Pattern::Random,
            qos: QoS::AtLeastOnce,
            delivery: Delivery::Within(Duration::from_secs(15)),
        }
    }

    /// The seed's burglar alarm: rare events (4 a day on average), delivered no matter what.
    pub fn alarm() -> Self {
        DeviceSpec {
            name: "alarm".into(),
            period: 6 * 3_600_000,
            pattern: Pattern::Random,
            qos: QoS::AtLeastOnce,
            delivery: Delivery::Guaranteed,
        }
    }

    /// The seed's three devices.
    pub fn seed_devices() -> Vec<DeviceSpec> {
        vec![Self::temperature(), Self::button(), Self::alarm()]
    }

    /// `NAME[:key=value,…]` with keys `rate` (`N/s`, `N/min`, `N/h`, `N/day`), `every`
    /// (a duration: periodic), `qos` (0, 1, 2), `delivery` (`none`, `within:15s`,
    /// `guaranteed`), `pattern` (`periodic`, `random`). The names `temperature`, `button`
    /// and `alarm` start from the seed's devices; other names must give a rate and a delivery.
    pub fn parse(text: &str) -> Result<DeviceSpec, String> {
        let (name, options) = match text.split_once(':') {
            Some((name, options)) => (name, Some(options)),
            None => (text, None),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "device name '{name}' must be letters, digits, '-', '_' or '.' (e.g. 'door:rate=1/h,qos=1,delivery=guaranteed')"
            ));
        }
        let base = match name {
            "temperature" => Some(Self::temperature()),
            "button" => Some(Self::button()),
            "alarm" => Some(Self::alarm()),
            _ => None,
        };
        let mut spec = base.clone().unwrap_or(DeviceSpec {
            name: name.into(),
            period: 0,
            pattern: Pattern::Random,
            qos: QoS::AtLeastOnce,
            delivery: Delivery::Guaranteed,
        });
        let (mut has_rate, mut has_delivery) = (base.is_some(), base.is_some());
        for option in options.unwrap_or("").split(',').filter(|o| !o.is_empty()) {
            let Some((key, value)) = option.split_once('=') else {
                return Err(format!("device option '{option}' must be KEY=VALUE (keys: rate, every, qos, delivery, pattern)"));
            };
            match key {
                "rate" => {
                    spec.period = parse_rate(value)?;
                    has_rate = true;
                }
                "every" => {
                    let period = parse_duration(value)?;
                    if period.is_zero() {
                        return Err(format!("device period '{value}' must be greater than zero"));
                    }
                    spec.period = period.as_millis() as u64;
                    spec.pattern = Pattern::Periodic;
                    has_rate = true;
                }
                "qos" => {
                    spec.qos = match value {
                        "0" => QoS::AtMostOnce,
                        "1" => QoS::AtLeastOnce,
                        "2" => QoS::ExactlyOnce,
                        _ => return Err(format!("device qos '{value}' must be 0, 1 or 2")),
                    }
                }
                "delivery" => {
                    spec.delivery = parse_delivery(value)?;
                    has_delivery = true;
                }
                "pattern" => {
                    spec.pattern = match value {
                        "periodic" => Pattern::Periodic,
                        "random" => Pattern::Random,
                        _ => {
                            return Err(format!(
                                "device pattern '{value}' must be 'periodic' or 'random'"
                            ))
                        }
                    }
                }
                _ => {
                    return Err(format!(
                        "unknown device option '{key}' (keys: rate, every, qos, delivery, pattern)"
                    ))
                }
            }
        }
        if !has_rate {
            return Err(format!(
                "device '{name}' needs a rate, e.g. '{name}:rate=1/min,delivery=guaranteed'"
            ));
        }
        if !has_delivery {
            return Err(format!(
                "device '{name}' needs a delivery (none, within:15s, guaranteed), e.g. '{name}:rate=1/min,delivery=within:15s'"
            ));
        }
        Ok(spec)
    }

    /// The next publish time after `now` for this device.
    pub fn next_after(&self, now: u64, rng: &mut Rng) -> u64 {
        match self.pattern {
            Pattern::Periodic => now + self.period,
            Pattern::Random => now + (rng.exponential(self.period as f64) as u64).max(1),
        }
    }

    /// The first publish time.
    pub fn first(&self, rng: &mut Rng) -> u64 {
        match self.pattern {
            Pattern::Periodic => (rng.unit() * self.period as f64) as u64,
            Pattern::Random => self.next_after(0, rng),
        }
    }
}

/// What the device does (its name is printed apart).
impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = match self.pattern {
            Pattern::Periodic => {
                format!("every {}", DurationText(Duration::from_millis(self.period)))
            }
            Pattern::Random => format!(
                "random, mean gap {}",
                DurationText(Duration::from_millis(self.period))
            ),
        };
        let delivery = match self.delivery {
            Delivery::NoRetry => "NoRetry".to_string(),
            Delivery::Within(d) => format!("Within({})", DurationText(d)),
            Delivery::Guaranteed => "Guaranteed".to_string(),
        };
        write!(f, "{rate}, QoS {}, {delivery}", self.qos as u8)
    }
}

/// `N/s`, `N/min`, `N/h`, `N/day` → mean gap in ms.
fn parse_rate(text: &str) -> Result<u64, String> {
    let Some((count, unit)) = text.split_once('/') else {
        return Err(format!(
            "device rate '{text}' must be N/UNIT, e.g. '1/min' (units: s, min, h, day)"
        ));
    };
    let count: u64 =
        count.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
            format!("device rate '{text}': count must be a whole number above zero")
        })?;
    let per: u64 = match unit {
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "day" => 86_400_000,
        _ => {
            return Err(format!(
                "device rate '{text}': unknown unit '{unit}' (use s, min, h or day)"
            ))
        }
    };
    let period = per / count;
    if period == 0 {
        return Err(format!(
            "device rate '{text}' is above one message per millisecond"
        ));
    }
    Ok(period)
}

/// `none`, `within:15s`, `guaranteed`.
fn parse_delivery(text: &str) -> Result<Delivery, String> {
    match text.split_once(':') {
        None if text == "none" => Ok(Delivery::NoRetry),
        None if text == "guaranteed" => Ok(Delivery::Guaranteed),
        Some(("within", limit)) => {
            let limit = parse_duration(limit)?;
            if limit.is_zero() {
                return Err(format!("delivery '{text}' needs a time greater than zero"));
            }
            Ok(Delivery::Within(limit))
        }
        _ => Err(format!(
            "unknown delivery '{text}' (expected none, within:15s or guaranteed)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_and_seed_devices_parse() {
        let door = DeviceSpec::parse("door:rate=2/h,qos=2,delivery=within:30s").unwrap();
        assert_eq!(door.period, 1_800_000);
        assert_eq!(door.qos, QoS::ExactlyOnce);
        assert_eq!(door.delivery, Delivery::Within(Duration::from_secs(30)));
        assert_eq!(DeviceSpec::parse("alarm").unwrap(), DeviceSpec::alarm());
        let fast = DeviceSpec::parse("temperature:every=10s,qos=0").unwrap();
        assert_eq!((fast.period, fast.qos), (10_000, QoS::AtMostOnce));
        for (text, expected) in [
            ("door", "needs a rate"),
            ("door:rate=1/h", "needs a delivery"),
            ("door:rate=1/week,delivery=none", "unknown unit 'week'"),
            ("door:rate=0/h,delivery=none", "above zero"),
            ("door:rate=1/h,delivery=sometimes", "unknown delivery"),
            ("door:rate=1/h,delivery=none,qos=3", "must be 0, 1 or 2"),
            ("door:colour=red", "unknown device option 'colour'"),
            ("door:rate", "KEY=VALUE"),
            ("a b:rate=1/h", "device name"),
        ] {
            let error = DeviceSpec::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}

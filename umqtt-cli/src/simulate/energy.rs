//! The energy model: what each radio action costs, in millijoules.
//!
//! energy = attempts × (wake + tcp) + opened × tls + writes × (wake + packet)
//!
//! - every connection attempt wakes the radio and tries a TCP handshake (a refused one is a
//!   SYN and an RST; a black-holed one is a SYN and its retransmissions — this model charges
//!   both the same, so it flatters black-holed attempts);
//! - every transport that opens pays a TLS handshake (the CONNECT/CONNACK exchange is counted
//!   as writes);
//! - every burst of bytes written — a publish, an acknowledgement, a keepalive PINGREQ (with
//!   its PINGRESP) — wakes the radio and sends one packet: the idle keepalive traffic.
//!
//! Defaults are for an ESP32-class Wi-Fi device at 3.3 V. The currents are from Espressif's
//! *ESP32 Series Datasheet* (RF power consumption: TX 802.11b ≈ 240 mA, RX ≈ 100 mA;
//! modem-sleep 20–68 mA); the durations are **assumptions** of this model, not measurements:
//!
//! | item | default | how |
//! |---|---|---|
//! | `wake` | 10 mJ | radio from modem-sleep to ready, ≈ 30 ms at ≈ 100 mA × 3.3 V (assumed time) |
//! | `tcp` | 20 mJ | SYN → SYN-ACK/RST with ARP/DTIM waits, ≈ 50 ms at ≈ 120 mA (assumed time) |
//! | `tls` | 200 mJ | TLS 1.2 ECDHE handshake (mbedTLS), ≈ 0.5 s of CPU and radio at ≈ 120 mA (assumed time; reported figures for ESP32-class chips vary from 0.3 s to over 1 s) |
//! | `packet` | 5 mJ | one small packet out and its answer in, ≈ 12 ms at ≈ 130 mA (assumed time) |
//!
//! Change any with `--energy wake=10,tcp=20,tls=200,packet=5` (mJ).

use std::fmt;

/// Millijoules per radio action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyModel {
    /// Waking the radio.
    pub wake: f64,
    /// One TCP handshake attempt.
    pub tcp: f64,
    /// One TLS handshake.
    pub tls: f64,
    /// One packet out and its answer.
    pub packet: f64,
}

impl Default for EnergyModel {
    fn default() -> Self {
        EnergyModel {
            wake: 10.0,
            tcp: 20.0,
            tls: 200.0,
            packet: 5.0,
        }
    }
}

impl EnergyModel {
    /// Millijoules for these counts.
    pub fn millijoules(&self, attempts: u64, opened: u64, writes: u64) -> f64 {
        attempts as f64 * (self.wake + self.tcp)
            + opened as f64 * self.tls
            + writes as f64 * (self.wake + self.packet)
    }

    /// Parses `wake=10,tcp=20,tls=200,packet=5` (any subset; the rest keep their defaults).
    pub fn parse(text: &str) -> Result<EnergyModel, String> {
        let mut model = EnergyModel::default();
        for item in text.split(',') {
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!(
                    "energy item '{item}' must be KEY=MILLIJOULES (keys: wake, tcp, tls, packet)"
                ));
            };
            let value: f64 = value
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    format!("energy '{item}': the value must be a number of millijoules ≥ 0")
                })?;
            match key {
                "wake" => model.wake = value,
                "tcp" => model.tcp = value,
                "tls" => model.tls = value,
                "packet" => model.packet = value,
                _ => {
                    return Err(format!(
                        "unknown energy item '{key}' (keys: wake, tcp, tls, packet)"
                    ))
                }
            }
        }
        Ok(model)
    }
}

impl fmt::Display for EnergyModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wake={},tcp={},tls={},packet={} (mJ)",
            self.wake, self.tcp, self.tls, self.packet
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_parses_and_adds_up() {
        let model = EnergyModel::parse("tls=100,packet=1").unwrap();
        assert_eq!(model.tls, 100.0);
        assert_eq!(model.wake, 10.0);
        assert_eq!(model.millijoules(2, 1, 3), 2.0 * 30.0 + 100.0 + 3.0 * 11.0);
        for (text, expected) in [
            ("tls", "KEY=MILLIJOULES"),
            ("tls=-1", "≥ 0"),
            ("tls=x", "number"),
            ("radio=3", "unknown energy item"),
        ] {
            let error = EnergyModel::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}

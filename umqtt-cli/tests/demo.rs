//! `umqtt demo` with short settings: it runs on its embedded broker (no mosquitto needed),
//! exits 0, and its table holds the invariants the seed note's story implies.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::*;

/// One parsed row of the results table.
#[derive(Debug)]
struct Row {
    qos: u8,
    sent: u64,
    delivered: u64,
    received: u64,
    dropped: u64,
    expired: u64,
    pending: u64,
    attempts: u64,
    kept: u64,
    recovery: Option<f64>,
}

fn parse_table(stdout: &str) -> HashMap<String, Row> {
    let table = stdout
        .split_once("\nscenario ")
        .expect("no results table")
        .1;
    let number = |text: &str| -> u64 {
        text.parse()
            .unwrap_or_else(|_| panic!("not a number: {text:?}"))
    };
    let seconds = |text: &str| -> Option<f64> {
        (text != "-").then(|| text.trim_end_matches('s').parse().expect("seconds"))
    };
    let mut rows = HashMap::new();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            break;
        }
        assert_eq!(fields.len(), 14, "row {line:?}");
        rows.insert(
            fields[0].to_owned(),
            Row {
                qos: number(fields[1]) as u8,
                sent: number(fields[3]),
                delivered: number(fields[4]),
                received: number(fields[5]),
                dropped: number(fields[7]),
                expired: number(fields[8]),
                pending: number(fields[9]),
                attempts: number(fields[10]),
                kept: number(fields[11]),
                recovery: seconds(fields[13]),
            },
        );
    }
    rows
}

#[test]
fn demo_tells_the_three_stories() {
    let out = spawn(&[
        "demo",
        "--duration",
        "8",
        "--outage-start",
        "2",
        "--outage",
        "3",
    ])
    .finish_within(Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
    let stdout = out.stdout_text();
    assert!(stdout.contains("network DOWN"), "{stdout}");
    assert!(
        stdout.contains("network UP: the alarm is nudged"),
        "{stdout}"
    );
    let rows = parse_table(&stdout);
    assert_eq!(rows.len(), 3, "{stdout}");
    for (name, row) in &rows {
        // Every message ends one way or another.
        assert_eq!(row.pending, 0, "{name}: {stdout}");
        assert_eq!(
            row.delivered + row.dropped + row.expired,
            row.sent,
            "{name}: {stdout}"
        );
        assert!(row.attempts >= 1, "{name}: {stdout}");
        if row.qos == 0 {
            // Written is not received: QoS 0 may vanish with the link.
            assert!(row.received <= row.delivered, "{name}: {stdout}");
        } else {
            // Acknowledged by the broker means the observer gets it (maybe twice).
            assert!(row.received >= row.delivered, "{name}: {stdout}");
        }
    }
    let temperature = &rows["temperature"];
    assert_eq!(temperature.qos, 0);
    assert!(temperature.sent >= 7, "{stdout}");
    assert!(
        temperature.dropped > 0,
        "readings during the outage: {stdout}"
    );
    assert!(temperature.delivered > 0, "{stdout}");
    let button = &rows["button"];
    assert_eq!(button.qos, 1);
    // A 3 s outage is shorter than the 15 s deadline: every press arrives.
    assert_eq!(button.delivered, button.sent, "{stdout}");
    let alarm = &rows["alarm"];
    assert_eq!(alarm.qos, 1);
    assert!(alarm.sent >= 1, "{stdout}");
    assert_eq!(alarm.delivered, alarm.sent, "{stdout}");
    if alarm.kept > 0 {
        // Nudged when the network came back: delivered at once, not at the next backoff
        // (after a 3 s outage that would be ~4 s away); 2 s leaves room for a loaded machine.
        let recovery = alarm.recovery.expect("kept alarms were delivered");
        assert!(recovery < 2.0, "alarm recovery {recovery}: {stdout}");
    }
}

#[test]
fn demo_rejects_an_outage_past_the_end() {
    let out = run(&[
        "demo",
        "--duration",
        "5",
        "--outage-start",
        "3",
        "--outage",
        "3",
    ]);
    let line = out.assert_one_line_error();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(line.contains("must end within --duration"), "{line}");
}

//! `umqtt simulate`: the arithmetic of umqtt.robust's rule, determinism, the battery-aware
//! policy on the Pareto frontier, nudged delivery, well-formed JSON and SVG, clear errors.
//! Everything runs on the simulator's virtual clock: no broker, no sleeps.

use std::process::{Command, Output};

use serde_json::Value;

fn simulate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_umqtt"))
        .arg("simulate")
        .args(args)
        .output()
        .expect("run umqtt")
}

fn json(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let output = simulate(&all);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("well-formed JSON")
}

fn row<'a>(report: &'a Value, device: &str, policy: &str, nudge: bool) -> &'a Value {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["device"] == device && r["policy"] == policy && r["nudge"] == nudge)
        .unwrap_or_else(|| panic!("no row {device} / {policy} / nudge {nudge}"))
}

/// 6 h at one attempt per 2 s: 21 600 s / 2 s = 10 800 attempts, the one that finds the
/// broker back included (zero latency, refused at once).
#[test]
fn umqtt_robust_rule_makes_10800_attempts_in_six_hours() {
    let report = json(&["--outage", "6h", "--device", "alarm"]);
    for nudge in [false, true] {
        let robust = row(&report, "alarm", "umqtt.robust", nudge);
        assert_eq!(robust["outage_attempts"], 10_800, "{robust}");
        assert_eq!(robust["attempts_per_outage_hour"], 1800.0);
    }
    // The same rule as the library's FixedDelay default, and MQTT.js at one per second.
    assert_eq!(
        row(&report, "alarm", "FixedDelay(2s)", false)["outage_attempts"],
        10_800
    );
    assert_eq!(
        row(&report, "alarm", "MQTT.js", false)["outage_attempts"],
        21_600
    );
    // The table says so too.
    let output = simulate(&["--outage", "6h", "--device", "alarm"]);
    let table = String::from_utf8(output.stdout).unwrap();
    let line = table
        .lines()
        .find(|l| l.starts_with("alarm") && l.contains("umqtt.robust ") && !l.contains("+nudge"))
        .expect("umqtt.robust row");
    assert!(line.split_whitespace().any(|f| f == "10800"), "{line}");
}

#[test]
fn same_seed_same_report() {
    let args = [
        "--json",
        "--days",
        "2",
        "--mix-gap",
        "4h",
        "--seed",
        "9",
        "--keepalive",
        "600",
    ];
    let a = simulate(&args);
    let b = simulate(&args);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    let c = simulate(&[
        "--json",
        "--days",
        "2",
        "--mix-gap",
        "4h",
        "--seed",
        "10",
        "--keepalive",
        "600",
    ]);
    assert_ne!(a.stdout, c.stdout, "another seed, another mix");
    // One thread or two: the same report.
    let mut one = args.to_vec();
    one.extend(["--jobs", "1"]);
    assert_eq!(simulate(&one).stdout, a.stdout);
}

/// On a small built-in mix (outages every hour on average, the default log-normal lengths,
/// half of them local; an alarm busy enough to give a few dozen delay samples in one day), no
/// policy beats the shipped battery-aware one on both energy and p99 delivery delay of the
/// burglar alarm.
#[test]
fn battery_aware_is_on_the_pareto_frontier_of_the_mix() {
    for seed in ["1", "3", "5"] {
        let report = json(&[
            "--device",
            "alarm:rate=6/h",
            "--days",
            "1",
            "--mix-gap",
            "1h",
            "--keepalive",
            "1200",
            "--seed",
            seed,
        ]);
        let battery = row(&report, "alarm", "BatteryAware", false);
        assert_eq!(battery["pareto"], true, "seed {seed}: {battery}");
        assert!(
            battery["delay_samples"].as_u64().unwrap() >= 10,
            "{battery}"
        );
        // Every alarm is delivered.
        assert_eq!(battery["delivered"], battery["published"]);
        // The frontier is a real one: the retry-every-second rules are not cheaper.
        let js = row(&report, "alarm", "MQTT.js", false);
        assert!(js["energy_j"].as_f64() > battery["energy_j"].as_f64());
    }
}

#[test]
fn a_nudge_delivers_within_a_second_of_the_return() {
    let report = json(&[
        "--outage",
        "6h",
        "--device",
        "alarm:rate=1/h",
        "--latency",
        "20ms",
    ]);
    let nudged = row(&report, "alarm", "BatteryAware", true);
    assert!(nudged["delay_samples"].as_u64().unwrap() >= 3, "{nudged}");
    assert!(nudged["delay_max_s"].as_f64().unwrap() < 1.0, "{nudged}");
    // Without the nudge it waits for its rationed next attempt.
    let alone = row(&report, "alarm", "BatteryAware", false);
    assert!(alone["delay_max_s"].as_f64().unwrap() > 1.0, "{alone}");
}

#[test]
fn json_and_svg_are_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let svg_path = dir.path().join("chart.svg");
    let output = simulate(&[
        "--json",
        "--outages",
        "10m@1h,2h@3h",
        "--svg",
        svg_path.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        3 * 11 * 2,
        "3 devices × 11 policies × nudge or not"
    );
    let hours = report["outage_hours"].as_f64().unwrap();
    assert!((hours - (2.0 + 10.0 / 60.0)).abs() < 0.001, "{hours}");
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
    assert!(svg.trim_end().ends_with("</svg>"));
    for name in [
        "umqtt.robust",
        "paho",
        "HiveMQ",
        "MQTT.js",
        "rumqttc",
        "BatteryAware",
    ] {
        assert!(svg.contains(name), "{name} missing from the chart");
    }
    // The table has every policy too.
    let table = simulate(&["--outages", "10m@1h,2h@3h", "--policy", "fixed:5s"]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("--policy fixed:5s"), "{table}");
}

#[test]
fn bad_arguments_are_clear_errors() {
    for (args, expected) in [
        (&["--outage", "6"][..], "needs a unit"),
        (&["--outage", "0s"], "greater than zero"),
        (
            &["--outages", "1h@1h,1h@90m"],
            "starts before the previous one ends",
        ),
        (&["--outage", "30h"], "raise --days"),
        (
            &["--outage", "1h", "--outages", "1h@2h"],
            "cannot be used with",
        ),
        (&["--device", "door:rate=1/h"], "needs a delivery"),
        (&["--device", "alarm", "--device", "alarm"], "given twice"),
        (&["--policy", "sometimes"], "unknown policy"),
        (&["--energy", "tls=much"], "millijoules"),
        (&["--mix-sigma", "9"], "from 0 to 5"),
        (&["--local-share", "2"], "from 0 to 1"),
        (&["--outage-kind", "flood"], "invalid value"),
        (
            &["--pareto-device", "toaster"],
            "not one of the simulated devices",
        ),
        (&["--days", "0"], "--days"),
    ] {
        let output = simulate(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("Error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

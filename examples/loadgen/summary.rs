//! `loadgen --summary FILE`: one table over a whole `scripts/bench.sh` run.
//!
//! Reads the JSON lines that runs appended to FILE (`--json-out`) and
//! prints, per scenario, the figures issues 5 and 11 set targets for, each
//! next to its target and marked `ok` or `MISSED`. The targets live here, in one
//! table, so the script and docs/performance.md can both point at them.

use serde_json::Value;

/// A figure one scenario is judged by.
struct Target {
    /// The scenario it judges: that exact label, or, ending in `-`, every
    /// label starting with it (`idle-` covers idle-1000 and idle-10000).
    label: &'static str,
    /// What is shown.
    name: &'static str,
    /// How to read it from the JSON line.
    read: fn(&Value) -> Option<f64>,
    /// The bound, and whether it is a ceiling (true) or a floor (false).
    bound: f64,
    at_most: bool,
    unit: &'static str,
}

fn number(line: &Value, key: &str) -> Option<f64> {
    line.get(key)?.as_f64()
}

/// Microseconds in the JSON line, milliseconds in the table.
fn millis(line: &Value, key: &str) -> Option<f64> {
    number(line, key).map(|micros| micros / 1000.0)
}

/// Problems that void a delivery figure: anything lost, repeated, out of
/// order, or a client that never connected or was dropped.
fn faults(line: &Value) -> Option<f64> {
    let count = |key: &str| number(line, key).unwrap_or(0.0);
    let dropped: f64 = line
        .get("disconnects")
        .and_then(Value::as_object)
        .map_or(0.0, |map| map.values().filter_map(Value::as_f64).sum());
    Some(
        count("lost")
            + count("out_of_order")
            + count("duplicates")
            + count("connections_failed")
            + dropped,
    )
}

const TARGETS: &[Target] = &[
    Target {
        label: "idle-",
        name: "RSS per idle connection",
        read: |l| number(l, "rss_per_idle_conn_kib"),
        bound: 24.0,
        at_most: true,
        unit: "KiB",
    },
    Target {
        label: "idle-",
        name: "connections not held",
        read: |l| Some(number(l, "clients")? - number(l, "connections_open")?),
        bound: 0.0,
        at_most: true,
        unit: "",
    },
    Target {
        label: "fanout-1000",
        name: "lost, dup, out of order, dropped",
        read: faults,
        bound: 0.0,
        at_most: true,
        unit: "",
    },
    Target {
        label: "fanout-1000",
        name: "latency p99",
        read: |l| millis(l, "latency_us_p99"),
        bound: 10.0,
        at_most: true,
        unit: "ms",
    },
    Target {
        label: "fanout-100",
        name: "lost, dup, out of order, dropped",
        read: faults,
        bound: 0.0,
        at_most: true,
        unit: "",
    },
    Target {
        label: "fanout-100",
        name: "latency p99",
        read: |l| millis(l, "latency_us_p99"),
        bound: 1.5,
        at_most: true,
        unit: "ms",
    },
    Target {
        label: "saturation-",
        name: "lost, dup, out of order, dropped",
        read: faults,
        bound: 0.0,
        at_most: true,
        unit: "",
    },
    Target {
        label: "saturation-",
        name: "deliveries/s",
        read: |l| number(l, "deliveries_per_s"),
        bound: 500_000.0,
        at_most: false,
        unit: "/s",
    },
    Target {
        label: "ws-pipeline-100",
        name: "lost, dup, out of order, dropped",
        read: faults,
        bound: 0.0,
        at_most: true,
        unit: "",
    },
    Target {
        label: "ws-pipeline-100",
        name: "deliveries/s",
        read: |l| number(l, "deliveries_per_s"),
        bound: 500_000.0,
        at_most: false,
        unit: "/s",
    },
    Target {
        label: "ws-publish-0",
        name: "publishes acknowledged/s",
        read: |l| number(l, "published_per_s"),
        bound: 50_000.0,
        at_most: false,
        unit: "/s",
    },
    Target {
        label: "http-keepalive-8",
        name: "requests/s",
        read: |l| number(l, "requests_per_s"),
        bound: 15_000.0,
        at_most: false,
        unit: "/s",
    },
    Target {
        label: "http-",
        name: "publish errors",
        read: |l| number(l, "publish_errors"),
        bound: 0.0,
        at_most: true,
        unit: "",
    },
    Target {
        label: "cpu-1000x30",
        name: "lost, dup, out of order, dropped",
        read: faults,
        bound: 0.0,
        at_most: true,
        unit: "",
    },
    Target {
        label: "cpu-1000x30",
        name: "hub CPU per delivery",
        read: |l| number(l, "hub_cpu_us_per_delivery"),
        bound: 15.0,
        at_most: true,
        unit: "µs",
    },
    Target {
        label: "storm-",
        name: "connections failed",
        read: |l| number(l, "connections_failed"),
        bound: 0.0,
        at_most: true,
        unit: "",
    },
    Target {
        label: "storm-",
        name: "connect p99",
        read: |l| number(l, "connect_ms_p99"),
        bound: 20.0,
        at_most: true,
        unit: "ms",
    },
    Target {
        label: "storm-",
        name: "hub peak RSS",
        read: |l| number(l, "hub_rss_peak_kib").map(|kib| kib / 1024.0),
        bound: 80.0,
        at_most: true,
        unit: "MiB",
    },
];

/// The summary of every JSON line in `text`; lines that are not JSON are
/// skipped with a note.
pub fn summary(text: &str) -> String {
    let mut out =
        String::from("── bench summary ───────────────────────────────────────────────\n");
    out.push_str(&format!(
        "{:<16} {:<34} {:>12} {:>14}  {}\n",
        "scenario", "figure", "measured", "target", ""
    ));
    let mut missed = 0;
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let Ok(run) = serde_json::from_str::<Value>(line) else {
            out.push_str("(a line that is not JSON was skipped)\n");
            continue;
        };
        let label = run.get("label").and_then(Value::as_str).unwrap_or("?");
        for target in TARGETS.iter().filter(|t| judges(t.label, label)) {
            let measured = (target.read)(&run);
            let verdict = match measured {
                Some(value) if target.at_most && value <= target.bound => "ok",
                Some(value) if !target.at_most && value >= target.bound => "ok",
                Some(_) => "MISSED",
                None => "no figure",
            };
            if verdict != "ok" {
                missed += 1;
            }
            let shown = measured.map_or("-".to_string(), format_value);
            let bound = format!(
                "{} {}{}",
                if target.at_most { "≤" } else { "≥" },
                format_value(target.bound),
                if target.unit.is_empty() { "" } else { " " }
            ) + target.unit;
            out.push_str(&format!(
                "{label:<16} {:<34} {shown:>12} {bound:>14}  {verdict}\n",
                target.name
            ));
        }
    }
    out.push_str(&format!(
        "{missed} figure(s) missed or missing; each scenario's full table is above\n"
    ));
    out
}

/// True if a target written for `pattern` applies to scenario `label`.
fn judges(pattern: &str, label: &str) -> bool {
    if pattern.ends_with('-') {
        label.starts_with(pattern)
    } else {
        label == pattern
    }
}

/// Big numbers as whole numbers, small ones with one or two decimals.
fn format_value(value: f64) -> String {
    if value.abs() >= 1000.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_each_scenario_by_its_own_targets() {
        let text = concat!(
            r#"{"label":"fanout-100","lost":0,"latency_us_p99":1200}"#,
            "\n",
            r#"{"label":"saturation-100","lost":3,"deliveries_per_s":600000}"#,
            "\n"
        );
        let table = summary(text);
        assert!(table.contains("fanout-100"));
        assert!(table.contains("1.20"));
        // The saturation run lost events: one figure missed.
        assert!(table.contains("1 figure(s) missed"));
        // fanout-100's targets are not applied to fanout-1000.
        assert!(!summary(r#"{"label":"fanout-1000"}"#).contains("1.50"));
    }
}

//! Metrics in CloudWatch's embedded metric format: one JSON line on standard output per metric,
//! which Lambda sends to CloudWatch Logs and CloudWatch turns into metrics. No API call, nothing
//! to wait for. Namespace `mailbridge`, dimension `Function`.

use mailbridge_core::ports::{Metric, Metrics};
use serde_json::{json, Value};
use std::io::Write;

pub struct EmfMetrics {
    function: &'static str,
}

impl EmfMetrics {
    pub fn new(function: &'static str) -> Self {
        Self { function }
    }

    /// The EMF document of one metric, at `timestamp_ms`.
    pub fn document(&self, metric: Metric, timestamp_ms: i64) -> Value {
        let mut values: Vec<(&str, &str, f64)> = match metric {
            Metric::Imported { bytes, latency_ms } => {
                let mut v = vec![
                    ("MessagesImported", "Count", 1.0),
                    ("BytesImported", "Bytes", bytes as f64),
                ];
                if let Some(ms) = latency_ms {
                    v.push(("NotificationToStored", "Milliseconds", ms as f64));
                }
                v
            }
            Metric::Refused => vec![("ImportsRefused", "Count", 1.0)],
            Metric::GraphThrottled => vec![("GraphThrottled", "Count", 1.0)],
            Metric::GraphFailed => vec![("GraphFailed", "Count", 1.0)],
            Metric::AlertRaised => vec![("AlertsRaised", "Count", 1.0)],
            Metric::NeedsPerson => vec![("JobsWaitingForAPerson", "Count", 1.0)],
        };
        let definitions: Vec<Value> = values
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
            .collect();
        let mut doc = json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": "mailbridge",
                    "Dimensions": [["Function"]],
                    "Metrics": definitions,
                }],
            },
            "Function": self.function,
        });
        for (name, _, value) in values.drain(..) {
            doc[name] = json!(value);
        }
        doc
    }
}

impl Metrics for EmfMetrics {
    fn record(&self, metric: Metric) {
        let line = self.document(metric, chrono::Utc::now().timestamp_millis());
        // One write of one line, so that it is not interleaved with the log's.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_is_three_metrics_in_one_document() {
        let doc = EmfMetrics::new("import").document(
            Metric::Imported {
                bytes: 2048,
                latency_ms: Some(180),
            },
            1_700_000_000_000,
        );
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "mailbridge");
        assert_eq!(directive["Dimensions"][0][0], "Function");
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["MessagesImported", "BytesImported", "NotificationToStored"]
        );
        // Every metric named has its value at the top level, as EMF requires.
        for name in names {
            assert!(doc[name].is_number(), "{name}");
        }
        assert_eq!(doc["Function"], "import");
        assert_eq!(doc["BytesImported"], 2048.0);
    }

    #[test]
    fn counts_have_a_value_of_one() {
        let doc = EmfMetrics::new("import").document(Metric::GraphThrottled, 0);
        assert_eq!(doc["GraphThrottled"], 1.0);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Count"
        );
    }
}

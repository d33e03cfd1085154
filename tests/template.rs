//! Invariants of `template.yaml` that `sam validate` and `cfn-lint` do not check.

const TEMPLATE: &str = include_str!("../template.yaml");

#[test]
fn every_function_binary_is_a_workspace_binary() {
    for f in ["oauth", "webhook", "import", "maintenance", "admin"] {
        let binary = format!("Binary: mailbridge-{f} }}");
        assert!(
            TEMPLATE.contains(&binary),
            "template.yaml does not build mailbridge-{f}"
        );
        let manifest = std::fs::read_to_string(format!(
            "{}/../functions/{f}/Cargo.toml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert!(
            manifest.contains(&format!("name = \"mailbridge-{f}\"")),
            "functions/{f} is not the package mailbridge-{f}"
        );
    }
}

#[test]
fn import_queue_reports_partial_failures_and_has_a_watched_dead_letter_queue() {
    assert!(TEMPLATE.contains("FunctionResponseTypes: [ReportBatchItemFailures]"));
    // A backlog cannot take the account's concurrency from the webhook.
    assert!(TEMPLATE.contains("ScalingConfig: { MaximumConcurrency: !Ref ImportConcurrency }"));
    assert!(TEMPLATE.contains("deadLetterTargetArn: !GetAtt ImportDeadLetterQueue.Arn"));
    assert!(TEMPLATE.contains("QueueName, Value: !GetAtt ImportDeadLetterQueue.QueueName"));
}

/// The dead-letter limit is the one the core settles jobs by (and the local runner uses).
#[test]
fn the_dead_letter_limit_is_the_cores() {
    let max = mailbridge_core::services::worker::MAX_RECEIVES;
    assert!(TEMPLATE.contains(&format!("maxReceiveCount: {max}")));
}

#[test]
fn the_token_key_is_outside_the_profile_namespace() {
    // The key's secret keeps its generated name, which has no "/"; the prefix must end with one.
    let key = TEMPLATE
        .split("  TokenKeySecret:")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    assert!(!key.contains("Name:"), "{key}");
    assert!(TEMPLATE.contains("Default: mailbridge/profiles/"));
    assert!(TEMPLATE.contains("AllowedPattern: \"^[A-Za-z0-9_+=.@-]+(/[A-Za-z0-9_+=.@-]+)*/$\""));
}

/// The alarms the README explains, and a dashboard that shows every metric the functions emit.
#[test]
fn alarms_and_a_dashboard_of_every_metric() {
    for alarm in [
        "ImportBacklogAlarm:",
        "FunctionErrorsAlarm:",
        "Webhook5xxAlarm:",
        "DeadLetterAlarm:",
        "MetricName: ApproximateAgeOfOldestMessage",
        "Route, Value: POST /notifications",
    ] {
        assert!(TEMPLATE.contains(alarm), "template.yaml lacks {alarm}");
    }
    use mailbridge_core::ports::Metric;
    let emf = mailbridge_edge::metrics::EmfMetrics::new("import");
    for metric in [
        Metric::Imported {
            bytes: 1,
            latency_ms: Some(1),
        },
        Metric::Refused,
        Metric::GraphThrottled,
        Metric::GraphFailed,
        Metric::AlertRaised,
        Metric::NeedsPerson,
    ] {
        let doc = emf.document(metric, 0);
        for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
        {
            let name = m["Name"].as_str().unwrap();
            assert!(
                TEMPLATE.contains(&format!("[\"mailbridge\", \"{name}\"")),
                "the dashboard does not show {name}"
            );
        }
    }
}

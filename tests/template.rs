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
    assert!(TEMPLATE.contains("deadLetterTargetArn: !GetAtt ImportDeadLetterQueue.Arn"));
    assert!(TEMPLATE.contains("maxReceiveCount: 8"));
    assert!(TEMPLATE.contains("QueueName, Value: !GetAtt ImportDeadLetterQueue.QueueName"));
}

#[test]
fn webhook_cannot_write_state_and_answers_within_graphs_three_seconds() {
    let webhook = TEMPLATE
        .split("  WebhookFunction:")
        .nth(1)
        .unwrap()
        .split("\n  ImportFunction:")
        .next()
        .unwrap();
    assert!(webhook.contains("DynamoDBReadPolicy"));
    assert!(!webhook.contains("DynamoDBCrudPolicy"));
    assert!(!webhook.contains("secretsmanager"));
    assert!(webhook.contains("Timeout: 3"));
}

/// Every variable the functions' wiring requires is set by the template.
#[test]
fn every_required_environment_variable_is_set() {
    let env_rs = include_str!("../functions/lib/aws/src/env.rs");
    let required: Vec<&str> = env_rs
        .split("var(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(required.contains(&"EVENT_BUS_NAME"), "{required:?}");
    for name in required {
        assert!(
            TEMPLATE.contains(&format!("        {name}: ")),
            "template.yaml does not set {name}"
        );
    }
    assert!(TEMPLATE.contains("MAX_MESSAGE_MB: !Ref MaxMessageMb"));
    assert!(TEMPLATE.contains("EventBridgePutEventsPolicy: { EventBusName: !Ref EventBusName }"));
}

//! Least privilege, checked: each function's wiring takes exactly the ports it declares (`PORTS`
//! in `functions/<name>/src/lib.rs`) and reads exactly the variables the template sets for it, and
//! its role in `template.yaml` grants exactly the statements of those ports (`Port::grant`),
//! nothing more. A port added without its permission, or a permission left after its port is
//! gone, fails here.

use mailbridge_aws::{AwsEnv, BoxError, Port};
use mailbridge_tests::template_yaml::{
    function_and_role, parse as template, strings, written, TEMPLATE,
};
use serde_yaml::Value;
use std::collections::BTreeSet;

/// A function: its binary, its declared ports, and its wiring run against an environment.
struct Function {
    binary: &'static str,
    ports: &'static [Port],
    wire: fn(&AwsEnv) -> Result<(), BoxError>,
}

fn functions() -> Vec<Function> {
    vec![
        Function {
            binary: "mailbridge-oauth",
            ports: mailbridge_oauth::PORTS,
            wire: |env| mailbridge_oauth::wire(env).map(drop),
        },
        Function {
            binary: "mailbridge-webhook",
            ports: mailbridge_webhook::PORTS,
            wire: |env| mailbridge_webhook::wire(env).map(drop),
        },
        Function {
            binary: "mailbridge-import",
            ports: mailbridge_import::PORTS,
            wire: |env| mailbridge_import::wire(env).map(drop),
        },
        Function {
            binary: "mailbridge-maintenance",
            ports: mailbridge_maintenance::PORTS,
            wire: |env| mailbridge_maintenance::wire(env).map(drop),
        },
        Function {
            binary: "mailbridge-admin",
            ports: mailbridge_admin::PORTS,
            wire: |env| mailbridge_admin::wire(env).map(drop),
        },
    ]
}

/// A statement as a comparable row: sorted actions, resource, its condition (operator, key,
/// values).
type Row = (Vec<String>, String, Vec<String>);

fn row_of_port(p: Port) -> Row {
    let g = p.grant();
    let mut actions: Vec<String> = g.actions.iter().map(|a| a.to_string()).collect();
    actions.sort();
    let mut condition = Vec::new();
    if let Some(keys) = g.leading_keys {
        condition.push("ForAllValues:StringEquals".to_string());
        condition.push("dynamodb:LeadingKeys".to_string());
        condition.extend(keys.iter().map(|s| s.to_string()));
    }
    if let Some((op, key, value)) = g.condition {
        condition.extend([op.to_string(), key.to_string(), value.to_string()]);
    }
    (actions, g.resource.to_string(), condition)
}

fn row_of_statement(s: &Value) -> Row {
    assert_eq!(s["Effect"].as_str(), Some("Allow"), "{s:?}");
    assert!(s.get("NotAction").is_none() && s.get("NotResource").is_none());
    let mut actions = strings(&s["Action"]);
    actions.sort();
    let condition = s
        .get("Condition")
        .map(|c| {
            let c = c.as_mapping().expect("a condition map");
            assert_eq!(c.len(), 1, "one condition operator: {c:?}");
            let (op, body) = c.iter().next().unwrap();
            let body = body.as_mapping().unwrap();
            assert_eq!(body.len(), 1);
            let (key, values) = body.iter().next().unwrap();
            let mut row = vec![
                op.as_str().unwrap().to_string(),
                key.as_str().unwrap().to_string(),
            ];
            row.extend(strings(values));
            row
        })
        .unwrap_or_default();
    (actions, written(&s["Resource"]), condition)
}

fn dummy_env(ports: &'static [Port]) -> AwsEnv {
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    AwsEnv::new(config, ports, |name| {
        Some(mailbridge_tests::template_yaml::deployed_value(name))
    })
}

#[test]
fn each_role_grants_exactly_the_ports_of_its_wiring() {
    let t = template();
    for f in functions() {
        let (_, role) = function_and_role(&t, f.binary);
        assert_eq!(
            role["Type"].as_str(),
            Some("AWS::IAM::Role"),
            "{}",
            f.binary
        );
        let p = &role["Properties"];
        let managed = strings(&p["ManagedPolicyArns"]);
        assert_eq!(
            managed,
            [
                "!Sub arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
                "!Sub arn:${AWS::Partition}:iam::aws:policy/AWSXrayWriteOnlyAccess",
            ],
            "{}: logs and traces are the only managed policies",
            f.binary
        );
        let policies = p["Policies"].as_sequence().unwrap();
        assert_eq!(policies.len(), 1, "{}: one inline policy", f.binary);
        let mut granted: Vec<Row> = policies[0]["PolicyDocument"]["Statement"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(row_of_statement)
            .collect();
        let mut declared: Vec<Row> = f.ports.iter().map(|p| row_of_port(*p)).collect();
        granted.sort();
        declared.sort();
        assert_eq!(
            granted, declared,
            "{}: template.yaml's role differs from the ports its wiring declares",
            f.binary
        );
    }
}

#[test]
fn each_wiring_takes_exactly_its_declared_ports_and_reads_exactly_its_variables() {
    let t = template();
    for f in functions() {
        let env = dummy_env(f.ports);
        (f.wire)(&env).unwrap_or_else(|e| panic!("{} does not wire: {e}", f.binary));
        let declared: BTreeSet<Port> = f
            .ports
            .iter()
            .copied()
            .filter(|p| !p.by_trigger())
            .collect();
        assert_eq!(
            env.used(),
            declared,
            "{}: a declared port the wiring does not use keeps a permission nobody needs",
            f.binary
        );
        let set: BTreeSet<String> = mailbridge_tests::template_yaml::variables(&t, f.binary)
            .into_keys()
            .collect();
        assert_eq!(
            env.variables(),
            set,
            "{}: the template sets other variables than the wiring reads",
            f.binary
        );
    }
}

#[test]
fn a_port_used_without_being_declared_fails_the_wiring() {
    // The webhook's wiring, given the import function's ports minus the queue: it must refuse.
    const TOO_FEW: &[Port] = &[Port::SubscriptionLookup];
    let err = mailbridge_webhook::wire(&dummy_env(TOO_FEW)).unwrap_err();
    assert!(err.to_string().contains("QueueSend"), "{err}");
}

#[test]
fn the_webhook_only_reads_subscriptions_and_sends_jobs() {
    let t = template();
    let (function, role) = function_and_role(&t, "mailbridge-webhook");
    let statements = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap();
    let rows: Vec<Row> = statements.iter().map(row_of_statement).collect();
    assert_eq!(
        rows,
        vec![
            (
                vec!["dynamodb:GetItem".to_string()],
                "!GetAtt StateTable.Arn".to_string(),
                vec![
                    "ForAllValues:StringEquals".to_string(),
                    "dynamodb:LeadingKeys".to_string(),
                    "subscription".to_string()
                ]
            ),
            (
                vec!["sqs:SendMessage".to_string()],
                "!GetAtt ImportQueue.Arn".to_string(),
                vec![]
            ),
        ]
    );
    assert_eq!(written(&function["Properties"]["Timeout"]), "3");
    // The partition the webhook may read is the one the core keeps subscriptions in.
    let store = std::sync::Arc::new(mailbridge_core::fakes::InMemoryStateStore::default());
    let subscriptions: mailbridge_core::repo::Repo<mailbridge_core::model::SubscriptionRecord> =
        mailbridge_core::repo::Repo::new(store);
    assert_eq!(
        Port::SubscriptionLookup.grant().leading_keys,
        Some(&[subscriptions.partition()][..])
    );
}

#[test]
fn the_import_function_can_abort_its_uploads_and_no_bundle_policy_is_left() {
    let t = template();
    let (_, role) = function_and_role(&t, "mailbridge-import");
    let rows: Vec<Row> = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(row_of_statement)
        .collect();
    assert!(rows.iter().any(|(actions, resource, _)| actions
        .contains(&"s3:AbortMultipartUpload".to_string())
        && resource.ends_with("/messages/*")));
    for bundle in [
        "CrudPolicy",
        "ReadPolicy",
        "PollerPolicy",
        "SendMessagePolicy",
        "PutEventsPolicy",
        "GetSecretValuePolicy",
    ] {
        assert!(
            !TEMPLATE.contains(bundle),
            "template.yaml still uses {bundle}"
        );
    }
    // Only the roles above: no function lets SAM make (and widen) its role.
    let resources = t["Resources"].as_mapping().unwrap();
    for (name, r) in resources {
        if r["Type"].as_str() == Some("AWS::Serverless::Function") {
            assert!(
                r["Properties"].get("Policies").is_none(),
                "{name:?} has SAM policies besides its role"
            );
        }
    }
}

/// The SDK crate each port's adapter is built on.
fn sdk_of(p: Port) -> &'static str {
    match p {
        Port::SubscriptionLookup | Port::StateScan | Port::State => "aws-sdk-dynamodb",
        Port::MessageStore => "aws-sdk-s3",
        Port::QueueSend | Port::QueueRedelivery | Port::QueueTrigger => "aws-sdk-sqs",
        Port::Events => "aws-sdk-eventbridge",
        Port::SealingKey | Port::ProfileSecrets | Port::AdminToken => "aws-sdk-secretsmanager",
        Port::CertificateKeys => "aws-sdk-kms",
    }
}

#[test]
fn each_binary_links_only_the_clients_of_its_ports_and_never_the_simulator() {
    for f in functions() {
        let out = std::process::Command::new(env!("CARGO"))
            .args(["tree", "-e", "normal", "--prefix", "none", "-p"])
            .arg(f.binary)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo tree runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tree = String::from_utf8(out.stdout).unwrap();
        let crates: BTreeSet<&str> = tree
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let clients: BTreeSet<&str> = crates
            .iter()
            .copied()
            .filter(|c| c.starts_with("aws-sdk-") && *c != "aws-sdk-sts")
            .collect();
        let expected: BTreeSet<&str> = f.ports.iter().map(|p| sdk_of(*p)).collect();
        assert_eq!(clients, expected, "{} links other AWS clients", f.binary);
        for never in [
            "m365-sim",
            "mailbridge-local",
            "mailbridge-embedded",
            "rusqlite",
        ] {
            assert!(!crates.contains(never), "{} links {never}", f.binary);
        }
        // Only a function that holds client secrets talks to Microsoft (the webhook does not).
        assert_eq!(
            crates.contains("mailbridge-graph"),
            f.ports.contains(&Port::ProfileSecrets),
            "{}",
            f.binary
        );
    }
}

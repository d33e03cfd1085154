//! `template.yaml`, read as the tests need it: a function's resource, its role, its variables as
//! the template writes them.

use serde_yaml::Value;
use std::collections::BTreeMap;

pub const TEMPLATE: &str = include_str!("../template.yaml");

pub fn parse() -> Value {
    serde_yaml::from_str(TEMPLATE).expect("template.yaml parses")
}

/// A value as the template writes it: `!GetAtt A.B`, `!Sub text`, `!Ref X`, or the plain text.
pub fn written(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Tagged(t) => {
            let inner = match &t.value {
                Value::Sequence(parts) => parts.iter().map(written).collect::<Vec<_>>().join("."),
                other => written(other),
            };
            format!("{} {inner}", t.tag)
        }
        Value::Sequence(items) => items.iter().map(written).collect::<Vec<_>>().join(","),
        other => serde_yaml::to_string(other).unwrap().trim().to_string(),
    }
}

/// The items of a list, or the one value, as written.
pub fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().map(written).collect(),
        other => vec![written(other)],
    }
}

/// The function resource that builds `binary`, and its role.
pub fn function_and_role<'a>(t: &'a Value, binary: &str) -> (&'a Value, &'a Value) {
    let resources = t["Resources"].as_mapping().unwrap();
    let function = resources
        .values()
        .find(|r| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
        .unwrap_or_else(|| panic!("template.yaml builds no {binary}"));
    let role_ref = written(&function["Properties"]["Role"]);
    let role_name = role_ref
        .strip_prefix("!GetAtt ")
        .and_then(|r| r.strip_suffix(".Arn"))
        .unwrap_or_else(|| {
            panic!("{binary} must name its own role (Role: !GetAtt X.Arn), not {role_ref}")
        });
    (function, &t["Resources"][role_name])
}

/// The environment variables the template sets for the function that builds `binary`, each as
/// written (`!Ref StateTable`, `!Sub ...`, or plain text).
pub fn variables(t: &Value, binary: &str) -> BTreeMap<String, String> {
    let (function, _) = function_and_role(t, binary);
    function["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), written(v)))
                .collect()
        })
        .unwrap_or_default()
}

/// A plausible deployed value for a variable the template sets with `!Ref` or `!Sub`, as
/// CloudFormation would give it in eu-west-1: for the tests and benchmarks that need a function's
/// environment without a stack.
pub fn deployed_value(variable: &str) -> String {
    match variable {
        "PUBLIC_BASE_URL" => "https://abc123.execute-api.eu-west-1.amazonaws.com".into(),
        "TABLE_NAME" => "mailbridge-StateTable-1ABC".into(),
        "QUEUE_URL" => {
            "https://sqs.eu-west-1.amazonaws.com/123456789012/mailbridge-ImportQueue".into()
        }
        "BUCKET_NAME" => "mailbridge-messagebucket-1abc".into(),
        "TOKEN_KEY_SECRET" | "ADMIN_TOKEN_SECRET" => {
            let logical = if variable == "TOKEN_KEY_SECRET" {
                "TokenKeySecret"
            } else {
                "AdminTokenSecret"
            };
            format!("arn:aws:secretsmanager:eu-west-1:123456789012:secret:{logical}-x1Y2z3A4b5C6-AbCdEf")
        }
        "PROFILE_SECRET_PREFIX" => "mailbridge/profiles/".into(),
        "CUSTOM_CLOUD_HOSTS" => "".into(),
        "EVENT_BUS_NAME" => "default".into(),
        "MAX_MESSAGE_MB" => "150".into(),
        other => format!("value-of-{other}"),
    }
}

//! The deployed shape, run as AWS runs it: the resources `template.yaml` declares, created in moto
//! from the template's own properties; the five real function binaries, each under a Lambda
//! Runtime API with the variables the template sets for it; API Gateway's HTTP API in front
//! (payload 2.0 events, routes from the template); the SQS event source mapping behind the import
//! function (batches of up to 10, `ReportBatchItemFailures`, the queue's redrive policy); the
//! schedule's event for maintenance; the event bus rule to the consumer's queue. Moto enforces
//! IAM: each binary runs with a session of its own role from the template. Microsoft is the
//! simulator.
//!
//! Needs a moto server (`AWS_ENDPOINT_URL`) and the binaries (`cargo build --bins`): `scripts/test.sh`
//! provides both.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use mailbridge_aws::DynamoStateStore;
use mailbridge_core::model::SubscriptionRecord;
use mailbridge_core::repo::Repos;
use mailbridge_tests::lambda::{binary, http_api_event, LambdaHost, Outcome};
use mailbridge_tests::template_yaml::{self, written};
use mailbridge_tests::wasi_host::{self, ComponentHost};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const REGION: &str = "us-east-1";

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
    )
}

/// The resources of the template, as moto created them: physical ids by logical id.
struct Stack {
    table: String,
    queue_url: String,
    queue_arn: String,
    dlq_url: String,
    bucket: String,
    secrets: BTreeMap<String, String>,
    max_receives: u32,
    /// The consuming application's queue, fed by the rule on the event bus.
    events_queue_url: String,
    /// A queue in the alerts topic's place, fed by the alerts rule.
    alerts_queue_url: String,
}

/// A queue with `attributes`, and the template's rule `logical` on the bus, targeting it.
async fn rule_to_queue(
    config: &aws_config::SdkConfig,
    t: &serde_yaml::Value,
    logical: &str,
    attributes: &[(QueueAttributeName, String)],
) -> String {
    let sqs = aws_sdk_sqs::Client::new(config);
    let mut create = sqs
        .create_queue()
        .queue_name(unique(&format!("{logical}-queue")));
    for (k, v) in attributes {
        create = create.attributes(k.clone(), v);
    }
    let url = create.send().await.unwrap().queue_url.unwrap();
    let arn = queue_arn(&sqs, &url).await;
    let p = &t["Resources"][logical]["Properties"];
    assert_eq!(written(&p["EventBusName"]), "!Ref EventBusName");
    let bus = written(&t["Parameters"]["EventBusName"]["Default"]);
    let eb = aws_sdk_eventbridge::Client::new(config);
    let rule = unique(&format!("mailbridge-{logical}"));
    eb.put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(serde_json::to_string(&p["EventPattern"]).unwrap())
        .send()
        .await
        .unwrap();
    eb.put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id(p["Targets"][0]["Id"].as_str().unwrap())
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    url
}

async fn create_stack(config: &aws_config::SdkConfig, t: &serde_yaml::Value) -> Stack {
    let r = &t["Resources"];
    // The table: its keys, billing and TTL as the template declares them.
    let ddb = aws_sdk_dynamodb::Client::new(config);
    let table = unique("mailbridge-StateTable");
    let p = &r["StateTable"]["Properties"];
    let mut create = ddb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::from(p["BillingMode"].as_str().unwrap()));
    for a in p["AttributeDefinitions"].as_sequence().unwrap() {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(a["AttributeName"].as_str().unwrap())
                .attribute_type(ScalarAttributeType::from(
                    a["AttributeType"].as_str().unwrap(),
                ))
                .build()
                .unwrap(),
        );
    }
    for k in p["KeySchema"].as_sequence().unwrap() {
        create = create.key_schema(
            KeySchemaElement::builder()
                .attribute_name(k["AttributeName"].as_str().unwrap())
                .key_type(KeyType::from(k["KeyType"].as_str().unwrap()))
                .build()
                .unwrap(),
        );
    }
    create.send().await.unwrap();
    let ttl = &p["TimeToLiveSpecification"];
    ddb.update_time_to_live()
        .table_name(&table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(ttl["AttributeName"].as_str().unwrap())
                .enabled(ttl["Enabled"].as_bool().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // The queue and its dead-letter queue, with the template's redrive policy and timeout.
    let sqs = aws_sdk_sqs::Client::new(config);
    let dlq_url = sqs
        .create_queue()
        .queue_name(unique("mailbridge-ImportDeadLetterQueue"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = queue_arn(&sqs, &dlq_url).await;
    let q = &r["ImportQueue"]["Properties"];
    let max_receives = q["RedrivePolicy"]["maxReceiveCount"].as_u64().unwrap() as u32;
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives});
    let queue_url = sqs
        .create_queue()
        .queue_name(unique("mailbridge-ImportQueue"))
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            written(&q["VisibilityTimeout"]),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let import_queue_arn = queue_arn(&sqs, &queue_url).await;

    // The bucket, with the template's lifecycle rule.
    let s3 = s3_client(config);
    let bucket = unique("mailbridge-messagebucket").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let rule = &r["MessageBucket"]["Properties"]["LifecycleConfiguration"]["Rules"][0];
    s3.put_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .lifecycle_configuration(
            aws_sdk_s3::types::BucketLifecycleConfiguration::builder()
                .rules(
                    aws_sdk_s3::types::LifecycleRule::builder()
                        .id(rule["Id"].as_str().unwrap())
                        .status(aws_sdk_s3::types::ExpirationStatus::Enabled)
                        .filter(
                            aws_sdk_s3::types::LifecycleRuleFilter::builder()
                                .prefix("")
                                .build(),
                        )
                        .abort_incomplete_multipart_upload(
                            aws_sdk_s3::types::AbortIncompleteMultipartUpload::builder()
                                .days_after_initiation(
                                    rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
                                        .as_i64()
                                        .unwrap() as i32,
                                )
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // The consuming application's feed: its queue, and the rule on the bus that targets it.
    let p = &r["ImportedEventsQueue"]["Properties"];
    let events_queue_url = rule_to_queue(
        config,
        t,
        "ImportedEventsRule",
        &[(
            QueueAttributeName::MessageRetentionPeriod,
            written(&p["MessageRetentionPeriod"]),
        )],
    )
    .await;
    assert_eq!(
        written(&r["ImportedEventsRule"]["Properties"]["Targets"][0]["Arn"]),
        "!GetAtt ImportedEventsQueue.Arn"
    );
    // The alerts rule targets an SNS topic (with a sentence for e-mail); here a queue takes the
    // topic's place, to read what the rule's pattern lets through.
    assert_eq!(
        written(&r["AlertsRule"]["Properties"]["Targets"][0]["Arn"]),
        "!Ref AlertsTopic"
    );
    let alerts_queue_url = rule_to_queue(config, t, "AlertsRule", &[]).await;

    // The generated secrets: a generated value of the template's length, under a generated name.
    let sm = aws_sdk_secretsmanager::Client::new(config);
    let mut secrets = BTreeMap::new();
    for logical in ["TokenKeySecret", "AdminTokenSecret"] {
        let length = r[logical]["Properties"]["GenerateSecretString"]["PasswordLength"]
            .as_u64()
            .unwrap();
        let value = sm
            .get_random_password()
            .password_length(length as i64)
            .exclude_punctuation(true)
            .send()
            .await
            .unwrap()
            .random_password
            .unwrap();
        let arn = sm
            .create_secret()
            .name(unique(logical))
            .secret_string(value)
            .send()
            .await
            .unwrap()
            .arn
            .unwrap();
        secrets.insert(logical.to_string(), arn);
    }
    Stack {
        table,
        queue_url,
        queue_arn: import_queue_arn,
        dlq_url,
        bucket,
        secrets,
        max_receives,
        events_queue_url,
        alerts_queue_url,
    }
}

fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone()
}

/// Moto's IAM and STS, called before it enforces anything: unsigned query calls, XML answers.
async fn moto_query(
    endpoint: &str,
    service: &str,
    action: &str,
    params: &[(&str, &str)],
) -> String {
    let version = if service == "iam" {
        "2010-05-08"
    } else {
        "2011-06-15"
    };
    let mut form = vec![("Action", action), ("Version", version)];
    form.extend_from_slice(params);
    let response = reqwest::Client::new()
        .post(endpoint)
        // Moto routes a call by the service its credential scope names.
        .header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/{service}/aws4_request, \
                 SignedHeaders=host, Signature=unsigned"
            ),
        )
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{service} {action}: {text}");
    text
}

fn xml_value<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>")).unwrap();
    &xml[start..end]
}

/// A role's policies from the template, as moto can enforce them. Moto checks the action of every
/// call, but the resource only of SQS and S3 calls (it checks the others' against "*"), and no
/// condition of an identity policy; and it asks for `sqs:SendMessageBatch` (and the other batch
/// calls) where AWS authorises a batch with its single action. So the actions stay exactly as
/// written, SQS and S3 resources are resolved as CloudFormation would, the others become "*", and
/// conditions are left out: `tests/iam.rs` checks resources and conditions as written.
fn enforceable_policy(role: &serde_yaml::Value, stack: &Stack) -> Value {
    let mut statements = Vec::new();
    for policy in role["Properties"]["Policies"].as_sequence().unwrap() {
        for st in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
            let mut actions = template_yaml::strings(&st["Action"]);
            let batches: Vec<String> = actions
                .iter()
                .filter(|a| {
                    [
                        "sqs:SendMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                    ]
                    .contains(&a.as_str())
                })
                .map(|a| format!("{a}Batch"))
                .collect();
            actions.extend(batches);
            let service = actions[0].split(':').next().unwrap();
            let resources: Vec<String> = match service {
                "sqs" | "s3" => template_yaml::strings(&st["Resource"])
                    .iter()
                    .map(|r| arn_of(r, stack))
                    .collect(),
                _ => vec!["*".into()],
            };
            statements.push(json!({
                "Effect": written(&st["Effect"]), "Action": actions, "Resource": resources
            }));
        }
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// A queue's or the bucket's ARN as the template writes it, resolved.
fn arn_of(written: &str, stack: &Stack) -> String {
    let arn = match written {
        "!GetAtt ImportQueue.Arn" => stack.queue_arn.clone(),
        other => other
            .strip_prefix("!Sub ")
            .unwrap_or_else(|| panic!("the test cannot resolve {other}"))
            .replace(
                "${MessageBucket.Arn}",
                &format!("arn:aws:s3:::{}", stack.bucket),
            ),
    };
    assert!(!arn.contains("${"), "the test cannot resolve {written}");
    arn
}

/// A session of `binary`'s role, created in moto from the template: the variables Lambda gives
/// the function for its credentials.
async fn role_session(
    endpoint: &str,
    t: &serde_yaml::Value,
    stack: &Stack,
    binary: &str,
) -> Vec<(String, String)> {
    let (_, role) = template_yaml::function_and_role(t, binary);
    let name = unique(binary);
    let trust = serde_json::to_string(&role["Properties"]["AssumeRolePolicyDocument"]).unwrap();
    let created = moto_query(
        endpoint,
        "iam",
        "CreateRole",
        &[("RoleName", &name), ("AssumeRolePolicyDocument", &trust)],
    )
    .await;
    let arn = xml_value(&created, "Arn").to_string();
    let policy = enforceable_policy(role, stack).to_string();
    moto_query(
        endpoint,
        "iam",
        "PutRolePolicy",
        &[
            ("RoleName", &name),
            ("PolicyName", "ports"),
            ("PolicyDocument", &policy),
        ],
    )
    .await;
    let session = moto_query(
        endpoint,
        "sts",
        "AssumeRole",
        &[("RoleArn", &arn), ("RoleSessionName", binary)],
    )
    .await;
    ["AccessKeyId", "SecretAccessKey", "SessionToken"]
        .iter()
        .zip([
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ])
        .map(|(tag, var)| (var.to_string(), xml_value(&session, tag).to_string()))
        .collect()
}

/// The test's own credentials once moto enforces IAM: a user allowed everything.
async fn administrator(endpoint: &str) -> aws_sdk_sqs::config::Credentials {
    let name = unique("tester");
    moto_query(endpoint, "iam", "CreateUser", &[("UserName", &name)]).await;
    let everything = json!({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    .to_string();
    moto_query(
        endpoint,
        "iam",
        "PutUserPolicy",
        &[
            ("UserName", &name),
            ("PolicyName", "everything"),
            ("PolicyDocument", &everything),
        ],
    )
    .await;
    let key = moto_query(endpoint, "iam", "CreateAccessKey", &[("UserName", &name)]).await;
    aws_sdk_sqs::config::Credentials::new(
        xml_value(&key, "AccessKeyId"),
        xml_value(&key, "SecretAccessKey"),
        None,
        None,
        "moto-administrator",
    )
}

/// Moto enforces IAM while this lives: every call must be signed by a key it knows and be allowed
/// by that key's policies. Dropping it (also when the test fails) turns enforcement off again for
/// the other tests that share the server.
struct Enforced(String);

impl Enforced {
    fn start(endpoint: &str) -> Self {
        let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
        reset_auth(host, "0");
        Enforced(host.to_string())
    }
}

impl Drop for Enforced {
    fn drop(&mut self) {
        reset_auth(&self.0, "inf");
    }
}

/// Moto's control call that sets how many calls go unchecked before it enforces IAM.
fn reset_auth(host: &str, count: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST /moto-api/reset-auth HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{count}",
        count.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// The events the rule delivered to the consuming application's queue since the last call.
async fn delivered_events(sqs: &aws_sdk_sqs::Client, stack: &Stack) -> Vec<Value> {
    drain_events(sqs, &stack.events_queue_url).await
}

/// The events a rule delivered to `queue_url` since the last call.
async fn drain_events(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            return events;
        }
        for m in messages {
            events.push(serde_json::from_str(m.body.as_deref().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// A function's variables, resolved as CloudFormation would: resources to their physical ids,
/// parameters to their defaults unless the test deploys with another value.
fn resolve(
    t: &serde_yaml::Value,
    stack: &Stack,
    api_url: &str,
    overrides: &BTreeMap<&str, String>,
    written: &str,
) -> String {
    if let Some(name) = written.strip_prefix("!Ref ") {
        return match name {
            "StateTable" => stack.table.clone(),
            "ImportQueue" => stack.queue_url.clone(),
            "MessageBucket" => stack.bucket.clone(),
            other if stack.secrets.contains_key(other) => stack.secrets[other].clone(),
            parameter => overrides.get(parameter).cloned().unwrap_or_else(|| {
                written_default(&t["Parameters"][parameter]["Default"])
                    .unwrap_or_else(|| panic!("no value for {parameter}"))
            }),
        };
    }
    if let Some(sub) = written.strip_prefix("!Sub ") {
        assert!(
            sub.starts_with("https://${HttpApi}.execute-api"),
            "an unexpected !Sub: {sub}"
        );
        return format!(
            "{api_url}{}",
            sub.split_once("${AWS::URLSuffix}").unwrap().1
        );
    }
    written.to_string()
}

fn written_default(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::Null => None,
        other => Some(written(other)),
    }
}

/// API Gateway's HTTP API in front of the functions: each request becomes a payload 2.0 event for
/// the function whose route (from the template) matches, and its answer the HTTP response.
/// Where API Gateway sends a route: a Lambda function (payload 2.0 events), or an HTTP server (an
/// HTTP proxy integration: the webhook component on its host).
#[derive(Clone)]
enum Target {
    Lambda(Arc<LambdaHost>),
    Http(String),
}

async fn api_gateway(routes: Vec<(String, String, Target)>) -> String {
    let routes = Arc::new(routes);
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let routes = routes.clone();
        async move {
            let method = req.method().as_str().to_string();
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or("").to_string();
            let headers: Vec<(String, String)> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            let body = axum::body::to_bytes(req.into_body(), 10 << 20)
                .await
                .unwrap();
            let Some((_, _, target)) = routes.iter().find(|(m, p, _)| {
                (m == "ANY" || *m == method)
                    && match p.strip_suffix("{proxy+}") {
                        Some(prefix) => path.starts_with(prefix),
                        None => *p == path,
                    }
            }) else {
                return (axum::http::StatusCode::NOT_FOUND, "no route").into_response();
            };
            let host = match target {
                Target::Lambda(host) => host,
                Target::Http(base) => {
                    return forward(base, &method, &path, &query, &headers, body).await
                }
            };
            let header_refs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let body = (!body.is_empty()).then(|| String::from_utf8_lossy(&body).to_string());
            let event = http_api_event(&method, &path, &query, &header_refs, body.as_deref());
            match host.invoke(&event).await {
                Outcome::Response(r) => http_response(&r),
                // API Gateway answers 500 when the function fails.
                Outcome::Error(_) => (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error",
                )
                    .into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

use axum::response::IntoResponse;

/// An HTTP proxy integration: the request as it came, its answer as it went.
async fn forward(
    base: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: bytes::Bytes,
) -> axum::response::Response {
    let url = match query {
        "" => format!("{base}{path}"),
        q => format!("{base}{path}?{q}"),
    };
    let mut request = reqwest::Client::new()
        .request(method.parse().unwrap(), url)
        .body(body);
    for (k, v) in headers {
        if !matches!(k.as_str(), "host" | "content-length") {
            request = request.header(k, v);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = axum::http::StatusCode::from_u16(answer.status().as_u16()).unwrap();
            let mut headers = axum::http::HeaderMap::new();
            let hop_by_hop = ["connection", "keep-alive", "transfer-encoding"];
            for (k, v) in answer.headers() {
                if hop_by_hop.contains(&k.as_str()) {
                    continue;
                }
                if let (Ok(k), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(k.as_str().as_bytes()),
                    axum::http::HeaderValue::from_bytes(v.as_bytes()),
                ) {
                    headers.insert(k, v);
                }
            }
            (status, headers, answer.bytes().await.unwrap_or_default()).into_response()
        }
        // API Gateway answers 503 when the integration cannot be reached.
        Err(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

fn http_response(r: &Value) -> axum::response::Response {
    let status =
        axum::http::StatusCode::from_u16(r["statusCode"].as_u64().unwrap_or(200) as u16).unwrap();
    let body = r["body"].as_str().unwrap_or("").to_string();
    let body = if r["isBase64Encoded"].as_bool() == Some(true) {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    } else {
        body.into_bytes()
    };
    let mut response = (status, body).into_response();
    if let Some(headers) = r["headers"].as_object() {
        for (k, v) in headers {
            if let (Ok(k), Some(Ok(v))) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(axum::http::HeaderValue::from_str),
            ) {
                response.headers_mut().insert(k, v);
            }
        }
    }
    for cookie in r["cookies"].as_array().into_iter().flatten() {
        if let Some(c) = cookie.as_str() {
            response.headers_mut().append(
                axum::http::header::SET_COOKIE,
                axum::http::HeaderValue::from_str(c).unwrap(),
            );
        }
    }
    response
}

/// What Lambda's SQS event source mapping did for one batch.
#[derive(Debug, Default)]
struct Polled {
    records: usize,
    reported: Vec<String>,
}

/// The SQS event source mapping: receives up to 10 records, invokes the function with them, deletes
/// those it did not report as failed (`ReportBatchItemFailures`); reported ones come back when
/// their visibility timeout ends, and the queue's redrive policy moves a record received too often.
async fn poll_once(sqs: &aws_sdk_sqs::Client, stack: &Stack, import: &LambdaHost) -> Polled {
    let got = sqs
        .receive_message()
        .queue_url(&stack.queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let messages = got.messages.unwrap_or_default();
    if messages.is_empty() {
        return Polled::default();
    }
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_string(), Value::String(v)))
                .collect();
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": stack.queue_arn,
                "awsRegion": REGION
            })
        })
        .collect();
    let outcome = import.invoke(&json!({ "Records": records })).await;
    let reported: Vec<String> = match &outcome {
        Outcome::Response(r) => r["batchItemFailures"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["itemIdentifier"].as_str().map(String::from))
            .collect(),
        // A failed invocation: the whole batch comes back.
        Outcome::Error(_) => messages
            .iter()
            .filter_map(|m| m.message_id.clone())
            .collect(),
    };
    for m in &messages {
        if !reported.contains(m.message_id.as_ref().unwrap()) {
            sqs.delete_message()
                .queue_url(&stack.queue_url)
                .receipt_handle(m.receipt_handle.as_ref().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    Polled {
        records: messages.len(),
        reported,
    }
}

/// How many messages a queue holds, visible or not.
async fn waiting(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    attributes
        .values()
        .map(|v| v.parse::<usize>().unwrap())
        .sum()
}

/// Polls until the queue has nothing visible for a few empty receives, or the deadline passes.
async fn drain(sqs: &aws_sdk_sqs::Client, stack: &Stack, import: &LambdaHost) -> Vec<Polled> {
    let mut batches = Vec::new();
    let mut empty = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while empty < 2 && tokio::time::Instant::now() < deadline {
        let p = poll_once(sqs, stack, import).await;
        if p.records == 0 {
            empty += 1;
        } else {
            empty = 0;
            batches.push(p);
        }
    }
    batches
}

/// Where a function runs.
#[derive(PartialEq, Clone, Copy)]
enum On {
    /// The function, under its Runtime API (the import's fed by the event source mapping).
    Lambda,
    /// Its WebAssembly component under a `wasi:http` host (jco), with the function's role and
    /// variables: the webhook behind an HTTP proxy integration, the import polling the queue.
    Component,
}

/// The deployment, up to a mailbox connected (its subscription validated by the webhook).
struct Deployed {
    stack: Stack,
    hosts: BTreeMap<String, Arc<LambdaHost>>,
    api_url: String,
    /// The test's, as an administrator.
    config: aws_config::SdkConfig,
    sqs: aws_sdk_sqs::Client,
    /// The event source mapping's, with the import function's role.
    esm: aws_sdk_sqs::Client,
    sim: m365_sim::Sim,
    demo: m365_sim::Demo,
    mailbox_id: String,
    component: Option<ComponentHost>,
    /// The import component, polling the queue in the function's place.
    import_component: Option<ComponentHost>,
    _enforced: Enforced,
    _alone: tokio::sync::MutexGuard<'static, ()>,
}

/// One deployment at a time: moto's IAM enforcement is global.
static MOTO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn deploy(webhook_on: On, import_on: On) -> Deployed {
    let alone = MOTO.lock().await;
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL must point at a moto server: run scripts/test.sh"
    );
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let t = template_yaml::parse();
    let stack = create_stack(&aws_config::load_from_env().await, &t).await;

    // Every function, under its own Runtime API, with the template's timeout.
    let component_port = mailbridge_tests::free_port();
    let component_url = format!("http://127.0.0.1:{component_port}");
    let mut hosts: BTreeMap<String, Arc<LambdaHost>> = BTreeMap::new();
    let mut routes = Vec::new();
    let resources = t["Resources"].as_mapping().unwrap();
    for (_, r) in resources {
        let Some(binary_name) = r["Metadata"]["BuildProperties"]["Binary"].as_str() else {
            continue;
        };
        let timeout = r["Properties"]["Timeout"].as_u64().unwrap_or(3);
        let host = Arc::new(LambdaHost::start(binary_name, Duration::from_secs(timeout)).await);
        let target = match (binary_name, &webhook_on) {
            ("mailbridge-webhook", On::Component) => Target::Http(component_url.clone()),
            _ => Target::Lambda(host.clone()),
        };
        for (_, e) in r["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if e["Type"].as_str() == Some("HttpApi") {
                routes.push((
                    e["Properties"]["Method"].as_str().unwrap().to_string(),
                    e["Properties"]["Path"].as_str().unwrap().to_string(),
                    target.clone(),
                ));
            }
        }
        hosts.insert(binary_name.to_string(), host);
    }
    assert_eq!(hosts.len(), 5);
    let api_url = api_gateway(routes).await;

    // From here on moto enforces IAM: each function runs with a session of its own role, as the
    // template writes it, so that a call its role does not allow fails here as on AWS. The test
    // itself acts as an administrator; the event source mapping, as on AWS, with the import
    // function's role.
    let mut sessions = BTreeMap::new();
    for name in hosts.keys() {
        sessions.insert(
            name.clone(),
            role_session(&endpoint, &t, &stack, name).await,
        );
    }
    let administrator = administrator(&endpoint).await;
    let _enforced = Enforced::start(&endpoint);
    let config = aws_config::load_from_env()
        .await
        .to_builder()
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            administrator,
        ))
        .build();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let session = &sessions["mailbridge-import"];
    let esm = aws_sdk_sqs::Client::new(
        &config
            .to_builder()
            .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
                aws_sdk_sqs::config::Credentials::new(
                    &session[0].1,
                    &session[1].1,
                    Some(session[2].1.clone()),
                    None,
                    "import-role",
                ),
            ))
            .build(),
    );

    // Microsoft: the simulator, whose demo app redirects to this deployment's callback.
    let sim = m365_sim::Sim::start("127.0.0.1:0").await.unwrap();
    let demo = sim.seed_demo(&format!("{api_url}/oauth/callback"));
    let sim_host = sim
        .base_url()
        .trim_start_matches("http://")
        .trim_end_matches('/');

    // Deployed with the simulator allowed as a custom cloud, and a 1 MB message limit (12 MB for
    // the import component, whose test streams a message of several parts).
    let max_mb = if import_on == On::Component {
        "12"
    } else {
        "1"
    };
    let overrides: BTreeMap<&str, String> = [
        ("CustomCloudHosts", sim_host.to_string()),
        ("MaxMessageMb", max_mb.to_string()),
    ]
    .into();
    let (mut component, mut import_component) = (None, None);
    for (name, host) in &hosts {
        let mut env: Vec<(String, String)> = template_yaml::variables(&t, name)
            .into_iter()
            .map(|(k, v)| {
                let value = resolve(&t, &stack, &api_url, &overrides, &v);
                (k, value)
            })
            .collect();
        for (k, v) in [
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("RUST_LOG", "info"),
        ] {
            env.push((k.into(), v.into()));
        }
        env.extend(sessions[name].iter().cloned());
        if name == "mailbridge-import" && import_on == On::Component {
            import_component = Some(
                ComponentHost::run(
                    &wasi_host::WasiHost::Jco,
                    &wasi_host::component("mailbridge-import-component"),
                    &env,
                )
                .await
                .unwrap(),
            );
            continue;
        }
        if name == "mailbridge-webhook" && webhook_on == On::Component {
            component = Some(
                ComponentHost::serve(
                    &wasi_host::component("mailbridge-webhook-component"),
                    component_port,
                    &env,
                )
                .await
                .unwrap(),
            );
            continue;
        }
        host.spawn(&binary(name), &env);
        host.initialised().await.unwrap();
    }

    // The profile's client secret, where the deployment's prefix says, and the profile through
    // the admin API with the stack's admin token.
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    sm.create_secret()
        .name("mailbridge/profiles/demo/client-secret")
        .secret_string(&demo.client_secret)
        .send()
        .await
        .ok();
    sm.put_secret_value()
        .secret_id("mailbridge/profiles/demo/client-secret")
        .secret_string(&demo.client_secret)
        .send()
        .await
        .unwrap();
    let admin_token = sm
        .get_secret_value()
        .secret_id(&stack.secrets["AdminTokenSecret"])
        .send()
        .await
        .unwrap()
        .secret_string
        .unwrap();
    let http = reqwest::Client::new();
    let profile = json!({
        "id": "demo", "name": "Simulated tenant",
        "cloud": {"name": "custom", "login": sim.base_url(), "graph": sim.base_url(), "resource": "https://graph.microsoft.com"},
        "auth": "delegated", "tenant": demo.tenant_id, "client_id": demo.client_id,
        "client_secret_ref": "mailbridge/profiles/demo/client-secret",
        "is_default": true, "approval_required": false, "backfill_days": 0
    });
    let put = http
        .put(format!("{api_url}/admin/profiles/demo"))
        .bearer_auth(&admin_token)
        .json(&profile)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());

    // Connect: the oauth function, through API Gateway, against the simulator.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (status, page) = mailbridge_local::follow_sign_in(&browser, format!("{api_url}/connect"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{page}");
    let mailboxes: Value = http
        .get(format!("{api_url}/admin/mailboxes"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mailbox_id = mailboxes[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        sim.subscription_ids().len(),
        1,
        "the webhook answered Graph's validation"
    );
    Deployed {
        stack,
        hosts,
        api_url,
        config,
        sqs,
        esm,
        sim,
        demo,
        mailbox_id,
        component,
        import_component,
        _enforced,
        _alone: alone,
    }
}

/// Every key the import stored under `messages/`, the `.eml` among them (the only one so far),
/// and its bytes.
async fn stored_eml(
    config: &aws_config::SdkConfig,
    stack: &Stack,
) -> (Vec<String>, String, bytes::Bytes) {
    let s3 = s3_client(config);
    let listed = s3
        .list_objects_v2()
        .bucket(&stack.bucket)
        .prefix("messages/")
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect();
    let eml = keys
        .iter()
        .find(|k| k.ends_with(".eml"))
        .unwrap_or_else(|| panic!("no .eml stored: {keys:?}"))
        .clone();
    let stored = s3
        .get_object()
        .bucket(&stack.bucket)
        .key(&eml)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    (keys, eml, stored)
}

/// Whether the ledger says the message is imported.
async fn imported(repos: &Repos, mailbox_id: &str, message_id: &str) -> bool {
    matches!(
        repos
            .imports
            .of(mailbox_id)
            .get(message_id)
            .await
            .unwrap()
            .map(|s| s.value),
        Some(mailbridge_core::model::ImportState::Imported { .. })
    )
}

/// Notifications lost: Graph says so with a `missed` lifecycle event, sent to the webhook's
/// lifecycle route (wherever it is served); the sweep it queues finds the message.
async fn missed_is_swept(
    sim: &m365_sim::Sim,
    demo: &m365_sim::Demo,
    config: &aws_config::SdkConfig,
    stack: &Stack,
    esm: &aws_sdk_sqs::Client,
    import: Option<&LambdaHost>,
    mailbox_id: &str,
) {
    sim.set_faults(|f| f.drop_notifications = true);
    let missed = m365_sim::control::generate_mime(
        "a@fabrikam.example",
        &demo.user_upn,
        "Notified to nobody",
        2_000,
    );
    let missed_id = sim.deliver(&demo.user_upn, "inbox", missed).unwrap();
    sim.set_faults(|f| f.drop_notifications = false);
    assert!(sim.lifecycle(&sim.subscription_ids()[0], "missed"));
    let repos = Repos::new(Arc::new(DynamoStateStore::new(
        aws_sdk_dynamodb::Client::new(config),
        &stack.table,
    )));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match import {
            Some(import) => {
                let batches = drain(esm, stack, import).await;
                assert!(batches.iter().all(|b| b.reported.is_empty()), "{batches:?}");
            }
            // The import component polls the queue itself.
            None => tokio::time::sleep(Duration::from_millis(500)).await,
        }
        if imported(&repos, mailbox_id, &missed_id).await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the missed message was not swept in"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_deployed_shape_runs_end_to_end() {
    let Deployed {
        stack,
        hosts,
        config,
        sqs,
        esm,
        sim,
        demo,
        mailbox_id,
        ..
    } = deploy(On::Lambda, On::Lambda).await;

    // A message arrives: Graph notifies the webhook, which queues; the event source mapping
    // feeds the import function, which stores the .eml byte for byte and its metadata.
    let (_, mime) = mailbridge_local::sample_messages().remove(2);
    let first_id = sim.deliver(&demo.user_upn, "inbox", mime.clone()).unwrap();
    let import = hosts["mailbridge-import"].clone();
    let mut batches = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while batches.is_empty() && tokio::time::Instant::now() < deadline {
        batches = drain(&esm, &stack, &import).await;
    }
    assert!(batches.iter().all(|b| b.reported.is_empty()), "{batches:?}");
    let (keys, eml, stored) = stored_eml(&config, &stack).await;
    let eml = &eml;
    assert_eq!(stored.as_ref(), mime.as_slice(), "the .eml is byte-exact");
    assert!(keys.iter().any(|k| k.ends_with(".json")), "{keys:?}");

    // The import's event, delivered through the rule to the consuming application's queue, at
    // least once: consumers drop an event id they have seen, as here.
    let mut seen = std::collections::HashSet::new();
    let events: Vec<Value> = delivered_events(&sqs, &stack)
        .await
        .into_iter()
        .filter(|e| seen.insert(e["detail"]["eventId"].to_string()))
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["source"], "mailbridge", "{event}");
    assert_eq!(event["detail-type"], "MessageImported");
    assert_eq!(event["detail"]["messageId"], first_id.as_str(), "{event}");
    assert_eq!(event["detail"]["mailboxId"], mailbox_id.as_str());
    assert_eq!(event["detail"]["emlKey"], eml.as_str());
    assert_eq!(event["detail"]["size"], mime.len());
    assert_eq!(
        event["detail"]["emlLocation"],
        format!("s3://{}/{eml}", stack.bucket)
    );

    missed_is_swept(
        &sim,
        &demo,
        &config,
        &stack,
        &esm,
        Some(&import),
        &mailbox_id,
    )
    .await;
    let store = Arc::new(DynamoStateStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        &stack.table,
    ));
    let repos = Repos::new(store);

    // A failure inside a batch brings back only its record: two messages, the first `$value`
    // answered 429 with Retry-After (the import hands it back with a visibility change).
    sim.set_faults(|f| f.hold_notifications = true);
    let ids: Vec<String> = mailbridge_local::sample_messages()
        .into_iter()
        .take(2)
        .map(|(_, m)| sim.deliver(&demo.user_upn, "inbox", m).unwrap())
        .collect();
    sim.flush_notifications();
    sim.set_faults(|f| {
        f.hold_notifications = false;
        f.graph_errors = 1;
        f.graph_error_status = 429;
    });
    let first = poll_once(&esm, &stack, &import).await;
    assert_eq!(first.records, 2, "{first:?}");
    assert_eq!(
        first.reported.len(),
        1,
        "only the throttled record: {first:?}"
    );
    // Its visibility was changed to Graph's Retry-After (1 s), not left at the queue's 30 minutes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // It comes back (with, after it, the sweep that follows a throttling spell).
    let again = drain(&esm, &stack, &import).await;
    assert!(again.iter().all(|b| b.reported.is_empty()), "{again:?}");
    for id in &ids {
        let state = repos.imports.of(&mailbox_id).get(id).await.unwrap();
        assert!(
            matches!(
                state.map(|s| s.value),
                Some(mailbridge_core::model::ImportState::Imported { .. })
            ),
            "{id}"
        );
    }

    // Too large (the deployment's limit is 1 MB): refused, and no multipart upload left behind.
    let big = m365_sim::control::generate_mime(
        "a@fabrikam.example",
        &demo.user_upn,
        "Too large",
        3 << 20,
    );
    let big_id = sim.deliver(&demo.user_upn, "inbox", big).unwrap();
    drain(&esm, &stack, &import).await;
    let state = repos.imports.of(&mailbox_id).get(&big_id).await.unwrap();
    assert!(
        matches!(
            state.map(|s| s.value),
            Some(mailbridge_core::model::ImportState::Refused { .. })
        ),
        "the big message is refused"
    );
    let uploads = s3_client(&config)
        .list_multipart_uploads()
        .bucket(&stack.bucket)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{:?}", uploads.uploads());

    // Maintenance on its schedule renews a subscription near its end: the round queues the
    // mailbox's upkeep, the import function renews it with Graph.
    let sub_id = sim.subscription_ids()[0].clone();
    let ending = chrono::Utc::now() + chrono::Duration::hours(2);
    repos
        .subscriptions
        .update(&sub_id, |s| {
            let mut s: SubscriptionRecord = s?;
            s.expires_at = ending;
            Some(s)
        })
        .await
        .unwrap();
    let scheduled = json!({
        "version": "0", "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event", "source": "aws.scheduler",
        "account": "123456789012", "time": chrono::Utc::now().to_rfc3339(),
        "region": REGION, "resources": [], "detail": "{}"
    });
    let report = match hosts["mailbridge-maintenance"].invoke(&scheduled).await {
        Outcome::Response(r) => r,
        Outcome::Error(e) => panic!("maintenance failed: {e}"),
    };
    assert_eq!(report["subscriptions_due"], 1, "{report}");
    drain(&esm, &stack, &import).await;
    let renewed = repos.subscriptions.get(&sub_id).await.unwrap().unwrap();
    assert!(renewed.value.expires_at > ending + chrono::Duration::days(1));

    // Nothing went to the dead-letter queue so far, and each imported message was announced.
    assert_eq!(waiting(&sqs, &stack.dlq_url).await, 0);
    let announced: Vec<Value> = delivered_events(&sqs, &stack)
        .await
        .into_iter()
        .map(|e| e["detail"]["messageId"].clone())
        .collect();
    for id in &ids {
        assert!(announced.contains(&json!(id)), "{id}: {announced:?}");
    }

    // A job that keeps failing (Graph throttles the mailbox without end): the event source
    // mapping gets it back after each Retry-After, the queue's redrive policy moves it to the
    // dead-letter queue after maxReceiveCount receives, and nothing else is lost. The operator's
    // redrive (README, "Operate it") then brings it home.
    sim.set_faults(|f| {
        f.graph_errors = 10_000;
        f.graph_error_status = 429;
    });
    let stuck_id = sim
        .deliver(
            &demo.user_upn,
            "inbox",
            mailbridge_local::sample_messages().remove(0).1,
        )
        .unwrap();
    let mut receives = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while waiting(&sqs, &stack.dlq_url).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{receives} receives"
        );
        let p = poll_once(&esm, &stack, &import).await;
        assert_eq!(p.reported.len(), p.records, "{p:?}");
        receives += p.records;
    }
    assert_eq!(receives, stack.max_receives as usize);
    sim.set_faults(|f| f.graph_errors = 0);
    let dead = sqs
        .receive_message()
        .queue_url(&stack.dlq_url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(dead.len(), 1);
    let job: Value = serde_json::from_str(dead[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(job["message_id"], stuck_id.as_str(), "{job}");
    sqs.send_message()
        .queue_url(&stack.queue_url)
        .message_body(dead[0].body.clone().unwrap())
        .send()
        .await
        .unwrap();
    sqs.delete_message()
        .queue_url(&stack.dlq_url)
        .receipt_handle(dead[0].receipt_handle.clone().unwrap())
        .send()
        .await
        .unwrap();
    drain(&esm, &stack, &import).await;
    let state = repos.imports.of(&mailbox_id).get(&stuck_id).await.unwrap();
    assert!(
        matches!(
            state.map(|s| s.value),
            Some(mailbridge_core::model::ImportState::Imported { .. })
        ),
        "the redriven job imported its message"
    );
    assert_eq!(waiting(&sqs, &stack.dlq_url).await, 0);

    // Graph's throttling raised an alert and the imports that got through cleared it: both went
    // out as MailboxAlert events, through the alerts rule, with the mailbox and the sentence.
    // At least once: a change two concurrent jobs both sent comes twice, with one id; consumers
    // drop what they have seen, as here.
    let mut seen = std::collections::HashSet::new();
    let alerts: Vec<Value> = drain_events(&sqs, &stack.alerts_queue_url)
        .await
        .into_iter()
        .filter(|e| seen.insert(e["detail"]["eventId"].as_str().unwrap().to_string()))
        .collect();
    let throttled: Vec<&str> = alerts
        .iter()
        .filter(|e| e["detail"]["kind"] == "throttled")
        .map(|e| e["detail"]["state"].as_str().unwrap())
        .collect();
    assert!(throttled.starts_with(&["raised", "cleared"]), "{alerts:#?}");
    let raised = alerts
        .iter()
        .find(|e| e["detail"]["kind"] == "throttled")
        .unwrap();
    assert_eq!(raised["detail-type"], "MailboxAlert");
    assert_eq!(raised["detail"]["mailboxId"], mailbox_id.as_str());
    assert!(raised["detail"]["message"]
        .as_str()
        .unwrap()
        .contains("throttling"));
    for host in hosts.values() {
        host.stop().await;
    }
}

/// The webhook as a WebAssembly component (issue 15): served by a `wasi:http` host (`jco serve`)
/// with the webhook function's variables and its role's credentials while moto enforces IAM,
/// behind API Gateway's webhook routes. Graph's handshake is answered, a notification is queued
/// in SQS and imported by the import function, a wrong clientState queues nothing, and a `missed`
/// lifecycle event brings the sweep that finds a message whose notification was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_webhook_component_serves_graph() {
    let d = deploy(On::Component, On::Lambda).await;
    let component = d.component.as_ref().unwrap();
    let (stack, sim, demo) = (&d.stack, &d.sim, &d.demo);
    let import = d.hosts["mailbridge-import"].clone();
    let http = reqwest::Client::new();

    // Graph's handshake, through API Gateway: the token echoed, as text.
    let token = "Validation: Testing client application reachability for subscription Request-Id: 25b4c6a1-a3e6";
    let answer = http
        .post(format!("{}/notifications", d.api_url))
        .query(&[("validationToken", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(answer.text().await.unwrap(), token);

    // A notification with the wrong clientState: accepted (Graph must not retry it) and dropped.
    let subscription = sim.subscription_ids()[0].clone();
    let forged = json!({"value": [{
        "subscriptionId": subscription, "clientState": "not the one mailbridge gave",
        "changeType": "created", "resource": "Users/u/Messages/forged",
        "resourceData": {"id": "forged"}
    }]});
    let answer = http
        .post(format!("{}/notifications", component.url))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    assert_eq!(waiting(&d.sqs, &stack.queue_url).await, 0, "nothing queued");
    // Not a notification collection, not JSON, another route: refused, nothing queued.
    for (path, content_type, body, status) in [
        ("/notifications", "application/json", "{\"value\": 3}", 400),
        ("/notifications", "text/plain", "{}", 415),
        ("/elsewhere", "application/json", "{}", 404),
    ] {
        let answer = http
            .post(format!("{}{path}", component.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{path} {content_type} {body}");
    }
    assert_eq!(waiting(&d.sqs, &stack.queue_url).await, 0, "nothing queued");

    // A message arrives: Graph notifies the component, which queues it in SQS; the import
    // function stores it byte for byte.
    let (_, mime) = mailbridge_local::sample_messages().remove(1);
    let id = sim.deliver(&demo.user_upn, "inbox", mime.clone()).unwrap();
    let store = Arc::new(DynamoStateStore::new(
        aws_sdk_dynamodb::Client::new(&d.config),
        &stack.table,
    ));
    let repos = Repos::new(store);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !imported(&repos, &d.mailbox_id, &id).await {
        assert!(tokio::time::Instant::now() < deadline, "not imported");
        let batches = drain(&d.esm, stack, &import).await;
        assert!(batches.iter().all(|b| b.reported.is_empty()), "{batches:?}");
    }
    let (_, _, stored) = stored_eml(&d.config, stack).await;
    assert_eq!(stored.as_ref(), mime.as_slice(), "the .eml is byte-exact");

    // Notifications lost: the `missed` lifecycle event goes to the component's lifecycle route.
    missed_is_swept(
        sim,
        demo,
        &d.config,
        stack,
        &d.esm,
        Some(&import),
        &d.mailbox_id,
    )
    .await;
    assert_eq!(waiting(&d.sqs, &stack.dlq_url).await, 0);
    for host in d.hosts.values() {
        host.stop().await;
    }
}

/// The import worker as a WebAssembly component (`jco run`), polling the queue in the import
/// function's place with its role and variables: a message notified through the webhook is
/// fetched through the host's `wasi:http` and stored byte for byte in S3, 6 MB of it, so streamed
/// from Graph's `$value` into a multipart upload; a `missed` lifecycle event's sweep finds a
/// message whose notification was lost; nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_import_component_stores_messages() {
    let d = deploy(On::Lambda, On::Component).await;
    assert!(d.import_component.is_some());
    let (stack, sim, demo) = (&d.stack, &d.sim, &d.demo);
    let repos = Repos::new(Arc::new(DynamoStateStore::new(
        aws_sdk_dynamodb::Client::new(&d.config),
        &stack.table,
    )));
    let mime = m365_sim::control::generate_mime(
        "Élodie Dupré <elodie@fabrikam.example>",
        &demo.user_upn,
        "Plans du chantier, 6 Mo",
        6 * 1024 * 1024,
    );
    let id = sim.deliver(&demo.user_upn, "inbox", mime.clone()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !imported(&repos, &d.mailbox_id, &id).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not imported by the component"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, _, stored) = stored_eml(&d.config, stack).await;
    assert_eq!(stored.len(), mime.len());
    assert!(stored.as_ref() == mime.as_slice(), "the .eml is byte-exact");

    missed_is_swept(sim, demo, &d.config, stack, &d.esm, None, &d.mailbox_id).await;
    assert_eq!(waiting(&d.sqs, &stack.dlq_url).await, 0);
    for host in d.hosts.values() {
        host.stop().await;
    }
}

//! The AWS adapters against moto (an AWS emulator): DynamoDB conditional writes, S3 objects
//! written whole or in multipart pieces, SQS as the job queue and source, EventBridge events,
//! Secrets Manager. Needs `AWS_ENDPOINT_URL` (and dummy credentials) pointing at a moto server;
//! `scripts/test.sh` starts one and runs these with `--features moto`.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use bytes::Bytes;
use mailbridge_aws::Port;
use mailbridge_aws::{
    DynamoStateStore, EventBridgeEvents, S3BlobStore, SecretsManagerStore, SqsQueue,
};
use mailbridge_core::crypto::random_token;
use mailbridge_core::model::{Job, MessageImported, Origin};
use mailbridge_core::ports::*;
use mailbridge_core::Error;
use std::time::Duration;

async fn config() -> aws_config::SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL must point at a moto server: run scripts/test.sh"
    );
    aws_config::load_from_env().await
}

fn name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        random_token(6).to_lowercase().replace(['_', '-'], "x")
    )
}

#[tokio::test]
async fn dynamodb_conditional_writes() {
    let config = config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = name("state");
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .unwrap();
    let store = DynamoStateStore::new(client.clone(), &table);
    let k = Key::new("import#m1", "msg-1");
    assert_eq!(
        store.put(&k, "1".into(), Cond::Absent, None).await.unwrap(),
        1
    );
    assert!(matches!(
        store.put(&k, "x".into(), Cond::Absent, None).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        store.put(&k, "x".into(), Cond::Version(7), None).await,
        Err(Error::Conflict(_))
    ));
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    assert_eq!(
        store
            .put(&k, "2".into(), Cond::Version(1), Some(expires))
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.get(&k).await.unwrap().unwrap().body, "2");
    store
        .put(&Key::new("import#m1", "msg-2"), "3".into(), Cond::Any, None)
        .await
        .unwrap();
    store
        .put(&Key::new("import#m2", "msg-1"), "4".into(), Cond::Any, None)
        .await
        .unwrap();
    let listed: Vec<String> = store
        .list("import#m1")
        .await
        .unwrap()
        .into_iter()
        .map(|(sort, _)| sort)
        .collect();
    assert_eq!(listed, ["msg-1", "msg-2"]);
    assert_eq!(store.take(&k).await.unwrap().unwrap().body, "2");
    assert!(store.get(&k).await.unwrap().is_none());

    // The webhook's store: reads subscriptions, and nothing else, before IAM is even asked.
    let sub = Key::new("subscription", "sub-1");
    store.put(&sub, "s".into(), Cond::Any, None).await.unwrap();
    let webhook =
        DynamoStateStore::limited(client.clone(), &table, Port::SubscriptionLookup.grant());
    assert_eq!(webhook.get(&sub).await.unwrap().unwrap().body, "s");
    let other = Key::new("import#m1", "msg-2");
    for refused in [
        webhook.get(&other).await.map(drop),
        webhook
            .put(&sub, "x".into(), Cond::Any, None)
            .await
            .map(drop),
        webhook.take(&sub).await.map(drop),
        webhook.list("subscription").await.map(drop),
    ] {
        assert!(matches!(refused, Err(Error::Config { .. })), "{refused:?}");
    }
    assert_eq!(store.get(&sub).await.unwrap().unwrap().body, "s");

    // The maintenance round's store: queries its partitions whole, and does nothing else.
    let round = DynamoStateStore::limited(client, &table, Port::StateScan.grant());
    assert_eq!(round.list("subscription").await.unwrap().len(), 1);
    for refused in [
        round.get(&sub).await.map(drop),
        round.put(&sub, "x".into(), Cond::Any, None).await.map(drop),
        round.list("import#m1").await.map(drop),
    ] {
        assert!(matches!(refused, Err(Error::Config { .. })), "{refused:?}");
    }
}

async fn bucket(config: &aws_config::SdkConfig) -> (aws_sdk_s3::Client, String) {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    );
    let bucket = name("messages");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    (s3, bucket)
}

#[tokio::test]
async fn s3_objects_whole_and_in_multipart_pieces() {
    let config = config().await;
    let (s3, bucket) = bucket(&config).await;
    let store = S3BlobStore::new(s3.clone(), &bucket);
    store
        .put(
            "messages/m/a.json",
            Bytes::from_static(b"{}"),
            "application/json",
        )
        .await
        .unwrap();
    assert_eq!(
        &store.get("messages/m/a.json").await.unwrap().unwrap()[..],
        b"{}"
    );
    assert!(store.get("messages/m/none").await.unwrap().is_none());

    // 12 MB in 64 KB pieces: three parts of a multipart upload.
    let body: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut w = store
        .create("messages/m/big.eml", "message/rfc822")
        .await
        .unwrap();
    for piece in body.chunks(64 * 1024) {
        w.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    assert!(
        store.get("messages/m/big.eml").await.unwrap().is_none(),
        "nothing visible before the commit"
    );
    w.commit().await.unwrap();
    let stored = store.get("messages/m/big.eml").await.unwrap().unwrap();
    assert!(stored[..] == body[..], "the object is not byte-identical");
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("messages/m/big.eml")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("message/rfc822"));

    // An aborted writer leaves neither an object nor an upload.
    let mut w = store
        .create("messages/m/cut.eml", "message/rfc822")
        .await
        .unwrap();
    for piece in body.chunks(1024 * 1024).take(6) {
        w.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    w.abort().await;
    assert!(store.get("messages/m/cut.eml").await.unwrap().is_none());
    let uploads = s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{:?}", uploads.uploads());
}

async fn queue(config: &aws_config::SdkConfig) -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(config);
    let url = sqs
        .create_queue()
        .queue_name(name("jobs"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (sqs, url)
}

#[tokio::test]
async fn sqs_sends_receives_delays_and_acknowledges_jobs() {
    let config = config().await;
    let (sqs, url) = queue(&config).await;
    let q = SqsQueue::new(sqs, &url);
    let jobs: Vec<Job> = (0..13)
        .map(|i| Job::Import {
            mailbox_id: "m1".into(),
            message_id: format!("msg-{i}"),
            origin: Origin::Notification,
            queued_at: None,
        })
        .collect();
    // More than SQS's batch of 10 in one call.
    q.send(&jobs).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        got.extend(q.receive(10, Duration::from_secs(30)).await.unwrap());
        if got.len() == 13 {
            break;
        }
    }
    assert_eq!(got.len(), 13);
    assert!(got.iter().all(|d| d.receive_count == 1));
    let mut bodies: Vec<Job> = got
        .iter()
        .map(|d| serde_json::from_str(&d.job_body).unwrap())
        .collect();
    bodies.sort_by_key(|j| format!("{j:?}"));
    let mut sent = jobs.clone();
    sent.sort_by_key(|j| format!("{j:?}"));
    assert_eq!(bodies, sent);
    // One comes back at once (a zero Retry-After), the rest are acknowledged.
    q.retry_later(&got[0].receipt, Duration::ZERO)
        .await
        .unwrap();
    for d in &got[1..] {
        q.ack(&d.receipt).await.unwrap();
    }
    let again = q.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].job_body, got[0].job_body);
    assert_eq!(again[0].receive_count, 2);
    q.ack(&again[0].receipt).await.unwrap();
    assert!(q
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn eventbridge_carries_the_import_event_to_a_rule_target() {
    let config = config().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let bus = name("bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let (sqs, url) = queue(&config).await;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    events
        .put_rule()
        .name("imported")
        .event_bus_name(&bus)
        .event_pattern(r#"{"source":["mailbridge"],"detail-type":["MessageImported"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("imported")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("consumer")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let event = MessageImported {
        event_id: "e1".into(),
        mailbox_id: "m1".into(),
        mailbox_address: "adele@contoso.example".into(),
        message_id: "AAMk-1".into(),
        internet_message_id: Some("abc@example.com".into()),
        eml_key: "messages/m1/x.eml".into(),
        metadata_key: "messages/m1/x.json".into(),
        eml_location: "s3://b/messages/m1/x.eml".into(),
        metadata_location: "s3://b/messages/m1/x.json".into(),
        size: 42,
        sha256: "00".repeat(32),
        imported_at: chrono::Utc::now(),
    };
    EventBridgeEvents::new(events, &bus)
        .publish(&event)
        .await
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap();
    let msg = &received.messages()[0];
    let envelope: serde_json::Value = serde_json::from_str(msg.body().unwrap()).unwrap();
    assert_eq!(envelope["source"], "mailbridge");
    assert_eq!(envelope["detail-type"], "MessageImported");
    let detail: MessageImported = serde_json::from_value(envelope["detail"].clone()).unwrap();
    assert_eq!(detail, event);
}

#[tokio::test]
async fn secrets_manager_gives_the_secret_and_says_when_there_is_none() {
    let config = config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let secret = name("mailbridge/profiles/p/client-secret");
    client
        .create_secret()
        .name(&secret)
        .secret_string("s3cr3t~value")
        .send()
        .await
        .unwrap();
    let store = SecretsManagerStore::new(client);
    assert_eq!(store.get(&secret).await.unwrap().expose(), "s3cr3t~value");
    assert!(store.get("mailbridge/none").await.is_err());
}

/// An organisation-wide profile whose certificate key is in KMS (made by `mailbridge-certificate`):
/// the client assertion is signed by
/// KMS `Sign` (the key never leaves it) and the simulated Entra ID, which verifies it against the
/// certificate registered on the app, issues the token; a KMS key whose certificate is not the
/// app's gets Entra's AADSTS700027.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_held_certificate_key_signs_the_client_assertion() {
    use mailbridge_core::model::{AuthType, CertificateCredential, Cloud, KeyRef, ServerProfile};
    let config = config().await;
    let kms = aws_sdk_kms::Client::new(&config);
    // A key in KMS with an alias under alias/mailbridge/, and a certificate over it signed by
    // KMS: what `mailbridge-certificate` makes.
    let make_key = || async {
        let alias = format!("alias/mailbridge/{}", name("org"));
        let cert = mailbridge_certificate::certificate(&kms, &alias, "Contoso mailbridge", 365)
            .await
            .unwrap();
        (alias, cert)
    };
    let (alias, cert) = make_key().await;

    let sim = m365_sim::Sim::start("127.0.0.1:0").await.unwrap();
    let demo = sim.seed_demo("http://127.0.0.1/oauth/callback");
    assert!(sim.add_certificate(&demo.client_id, &cert));
    assert!(sim.admin_consent(&demo.tenant_id, &demo.client_id));
    let sim_host = sim.base_url().trim_start_matches("http://").to_string();
    let settings = mailbridge_core::services::Settings::new("https://mailbridge.example")
        .with_custom_cloud_hosts(&[sim_host]);
    let secrets = std::sync::Arc::new(mailbridge_core::fakes::InMemorySecrets::default());
    secrets.set(
        &settings.token_key_name,
        mailbridge_core::crypto::SealingKey::generate_base64(),
    );
    let (identity, graph) = mailbridge_graph::microsoft_over(reqwest::Client::new());
    let store = std::sync::Arc::new(mailbridge_core::fakes::InMemoryStateStore::default());
    let services = mailbridge_core::services::MailServices::new(
        mailbridge_core::services::MailPorts {
            store: store.clone(),
            pace_store: store,
            secrets,
            identity,
            signer: std::sync::Arc::new(mailbridge_aws::KmsKeys::new(kms.clone())),
            graph,
            queue: std::sync::Arc::new(mailbridge_core::fakes::InMemoryQueue::default()),
            events: std::sync::Arc::new(mailbridge_core::fakes::InMemoryEvents::default()),
            clock: std::sync::Arc::new(SystemClock),
            metrics: std::sync::Arc::new(NoMetrics),
        },
        settings,
    )
    .unwrap();
    let mut profile = ServerProfile {
        id: "org".into(),
        name: "Contoso".into(),
        cloud: Cloud::Custom {
            login: sim.base_url().into(),
            graph: sim.base_url().into(),
            resource: "https://graph.microsoft.com".into(),
        },
        auth: AuthType::Application,
        tenant: demo.tenant_id.clone(),
        client_id: demo.client_id.clone(),
        client_secret_ref: String::new(),
        client_secret_expires_at: None,
        is_default: false,
        approval_required: false,
        backfill_days: 0,
        outlook_category: None,
        certificate: Some(CertificateCredential {
            certificate_pem: cert,
            key: KeyRef::Kms { key_id: alias },
        }),
    };
    let tokens = &services.tokens;
    let token = tokens
        .app_token(&tokens.usable(profile.clone()).unwrap())
        .await;
    assert!(token.is_ok(), "{token:?}");
    assert!(profile.credential_expires_at().is_some());

    // Another KMS key, whose certificate the app does not have: Entra's error, as a
    // configuration error naming its code.
    let (other_alias, other_cert) = make_key().await;
    profile.id = "org2".into();
    profile.certificate = Some(CertificateCredential {
        certificate_pem: other_cert,
        key: KeyRef::Kms {
            key_id: other_alias,
        },
    });
    let refused = tokens.app_token(&profile).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Config { code, reason } if code == "AADSTS700027" && reason.contains("not registered on application")),
        "{refused:?}"
    );
    // A key KMS does not have: a configuration error, not a retry.
    profile.id = "org3".into();
    profile.certificate.as_mut().unwrap().key = KeyRef::Kms {
        key_id: "alias/mailbridge/nowhere".into(),
    };
    let missing = tokens.app_token(&profile).await.unwrap_err();
    assert!(
        matches!(&missing, Error::Config { code, .. } if code == "certificate-key"),
        "{missing:?}"
    );
}

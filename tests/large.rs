//! Large messages: streamed to storage byte-exact, and over the size limit refused with an alert.

use mailbridge_core::model::{AlertKind, ImportState};
use mailbridge_core::ports::BlobReader;
use mailbridge_core::services::import::StoredMetadata;
use mailbridge_tests::{connected, settle, wait_imported};
use std::time::Duration;

fn big_message(size: usize) -> Vec<u8> {
    m365_sim::control::generate_mime(
        "Sender <sender@fabrikam.example>",
        "adele@contoso.example",
        "Plans (large)",
        size,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_message_is_streamed_to_storage_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |_| {}).await;
    let mailbox = mailbox.id;
    let requested = 12 * 1024 * 1024;
    let mime = big_message(requested);
    let id = r
        .sim
        .deliver(&r.demo.user_upn, "inbox", mime.clone())
        .unwrap();
    let states = wait_imported(&r, &mailbox, std::slice::from_ref(&id)).await;
    let Some(ImportState::Imported {
        eml_key,
        metadata_key,
        size,
        ..
    }) = &states[0]
    else {
        panic!("not imported: {:?}", states[0]);
    };
    assert_eq!(*size, mime.len() as u64);
    let stored = r.services.blobs.get(eml_key).await.unwrap().unwrap();
    assert!(stored[..] == mime[..], "the .eml is not byte-identical");
    let meta: StoredMetadata =
        serde_json::from_slice(&r.services.blobs.get(metadata_key).await.unwrap().unwrap())
            .unwrap();
    assert_eq!(meta.message.subject.as_deref(), Some("Plans (large)"));
    let padding = &meta.message.attachments[0];
    assert_eq!(padding.name.as_deref(), Some("padding.bin"));
    // generate_mime fills the room left after the headers with base64 for three quarters of it.
    let decoded = requested as u64 / 4 * 3;
    assert!(
        (decoded - 1024..decoded).contains(&padding.size),
        "{padding:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_is_refused_with_an_alert_and_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |o| o.max_message_mb = 1).await;
    let mailbox = mailbox.id;
    let small = r
        .sim
        .deliver(&r.demo.user_upn, "inbox", big_message(512 * 1024))
        .unwrap();
    let large = r
        .sim
        .deliver(&r.demo.user_upn, "inbox", big_message(2 * 1024 * 1024))
        .unwrap();
    let states = wait_imported(&r, &mailbox, std::slice::from_ref(&small)).await;
    assert!(matches!(states[0], Some(ImportState::Imported { .. })));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let state = r
            .services
            .repos
            .imports
            .of(&mailbox)
            .get(&large)
            .await
            .unwrap();
        match state.map(|v| v.value) {
            Some(ImportState::Refused { reason, .. }) => break reason,
            other if tokio::time::Instant::now() > deadline => panic!("not refused: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert!(refused.contains("over the 1048576 byte limit"), "{refused}");
    settle(&r).await;
    let health = r
        .services
        .repos
        .health
        .get(&mailbox)
        .await
        .unwrap()
        .unwrap();
    let alert = health
        .value
        .alerts
        .iter()
        .find(|a| a.kind == AlertKind::MessageTooLarge)
        .expect("an alert for the refused message");
    assert_eq!(alert.message(), refused);
    let (eml_key, _) = mailbridge_core::services::import::object_keys(&mailbox, &large);
    assert!(r.services.blobs.get(&eml_key).await.unwrap().is_none());
    assert_eq!(r.sim.counter("mime"), 2, "each message fetched once");
}

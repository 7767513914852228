//! The moto test harness itself: the server starts, enforces KMS encryption contexts as AWS does,
//! records requests, stores S3 objects, and can be stopped to simulate an outage.
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::common;

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_s3::primitives::ByteStream;
use common::moto::{self, Moto};
use das_archiver::envelope::ResourceId;

const CLUSTER: &str = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY1";

/// Decrypt without a KeyId (the blob names its key), as the archiver does.
async fn decrypt(
    cfg: &SdkConfig,
    blob: &[u8],
    context: Option<(&str, &str)>,
) -> Result<Vec<u8>, SdkError<DecryptError>> {
    let mut request = aws_sdk_kms::Client::new(cfg).decrypt().ciphertext_blob(Blob::new(blob));
    if let Some((key, value)) = context {
        request = request.encryption_context(key, value);
    }
    let out = request.send().await?;
    Ok(out.plaintext.expect("Decrypt returns Plaintext").into_inner())
}

/// The service error code of a Decrypt that must have been refused by KMS (not failed on the way).
fn refusal_code(result: Result<Vec<u8>, SdkError<DecryptError>>) -> String {
    match result {
        Ok(_) => panic!("Decrypt succeeded with the wrong encryption context"),
        Err(SdkError::ServiceError(e)) => e.err().code().expect("a KMS error has a code").to_owned(),
        Err(e) => panic!("Decrypt failed without a KMS answer: {}", DisplayErrorContext(&e)),
    }
}

#[tokio::test]
async fn a_data_key_generated_with_the_das_cluster_context_decrypts_only_with_that_same_context() {
    let started = Instant::now();
    let moto = Moto::start();
    eprintln!("Moto::start took {:?}", started.elapsed());
    let cfg = moto.sdk_config().await;
    let key_id = moto::create_kms_key(&cfg).await;
    let cluster = ResourceId::Cluster(CLUSTER.to_owned());
    let (plaintext, blob) = moto::generate_das_data_key(&cfg, &key_id, &cluster).await;
    assert_ne!(blob.as_slice(), plaintext.as_slice());

    let same = decrypt(&cfg, &blob, Some(cluster.encryption_context())).await;
    assert_eq!(
        same.map_err(|e| DisplayErrorContext(e).to_string()).unwrap(),
        *plaintext
    );

    let other_cluster = decrypt(
        &cfg,
        &blob,
        Some(("aws:rds:dbc-id", "cluster-ZZZZZZZZZZZZZZZZZZZZZZZZZ2")),
    )
    .await;
    let instance_key = decrypt(&cfg, &blob, Some(("aws:rds:db-id", CLUSTER))).await;
    let no_context = decrypt(&cfg, &blob, None).await;
    for (case, result) in [
        ("another cluster id", other_cluster),
        ("the db-id context key", instance_key),
        ("no context", no_context),
    ] {
        let code = refusal_code(result);
        eprintln!("Decrypt with {case}: {code}");
        assert_eq!(code, "InvalidCiphertextException", "Decrypt with {case}");
    }
}

#[tokio::test]
async fn the_recorder_counts_kms_decrypt_calls() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let key_id = moto::create_kms_key(&cfg).await;
    let resource = ResourceId::Instance("db-ABCDEFGHIJKLMNOPQRSTUVWXY1".to_owned());

    moto.start_recording();
    let (plaintext, blob) = moto::generate_das_data_key(&cfg, &key_id, &resource).await;
    for _ in 0..3 {
        let got = decrypt(&cfg, &blob, Some(resource.encryption_context())).await.unwrap();
        assert_eq!(got, *plaintext);
    }
    assert_eq!(moto.count_kms_calls("Decrypt"), 3);
    assert_eq!(moto.count_kms_calls("GenerateDataKey"), 1);
    assert_eq!(moto.count_kms_calls("CreateKey"), 0, "created before recording started");

    moto.reset_recording();
    assert_eq!(moto.count_kms_calls("Decrypt"), 0);
    decrypt(&cfg, &blob, Some(resource.encryption_context())).await.unwrap();
    assert_eq!(moto.count_kms_calls("Decrypt"), 1, "recording goes on after a reset");
    // S3 requests are recorded too, but are never counted as KMS calls.
    moto::create_bucket(&cfg, "recorded-bucket").await;
    assert_eq!(moto.count_kms_calls("Decrypt"), 1);
    assert_eq!(moto.recorded_requests().len(), 2);
}

#[tokio::test]
async fn objects_written_to_s3_read_back_by_prefix() {
    let moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let s3 = moto::s3_client(&cfg);
    moto::create_bucket(&cfg, "das-archive").await;
    let binary: Vec<u8> = (0..=255u8).chain([0x1f, 0x8b, 0x08, 0x00]).collect();
    let objects: [(&str, &[u8]); 6] = [
        ("run-1/cluster-A/date=2024-05-01/part-0000.json.gz", &binary),
        (
            "run-1/cluster-A/date=2024-05-01/part-0001.json",
            b"{\"type\":\"record\"}\n",
        ),
        ("run-1/cluster-B/empty", b""),
        ("run-1/with space+plus%percent", b"odd key"),
        ("run-10/not-run-1", b"x"),
        ("other/y", b"y"),
    ];
    for (key, body) in objects {
        s3.put_object()
            .bucket("das-archive")
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObject {key}: {}", DisplayErrorContext(&e)));
    }

    let want: Vec<(String, Vec<u8>)> = objects
        .iter()
        .filter(|(key, _)| key.starts_with("run-1/"))
        .map(|(key, body)| ((*key).to_owned(), body.to_vec()))
        .collect();
    let got = moto::read_objects(&cfg, "das-archive", "run-1/").await;
    assert_eq!(got.into_iter().collect::<Vec<_>>(), want);
    let paged = moto::read_objects_paged(&cfg, "das-archive", "run-1/", Some(2)).await;
    assert_eq!(paged.into_iter().collect::<Vec<_>>(), want, "listing 2 keys per page");
    assert_eq!(moto::read_objects(&cfg, "das-archive", "").await.len(), objects.len());
    assert!(moto::read_objects(&cfg, "das-archive", "nothing/").await.is_empty());
}

#[tokio::test]
async fn after_stop_a_kms_call_fails_quickly_with_a_connection_error() {
    let mut moto = Moto::start();
    let cfg = moto.sdk_config().await;
    let kms = aws_sdk_kms::Client::new(&cfg);
    kms.list_keys().send().await.expect("ListKeys while the server runs");

    moto.stop();
    moto.stop(); // idempotent
    let started = Instant::now();
    let result = kms.list_keys().send().await;
    let elapsed = started.elapsed();
    eprintln!("a KMS call to a stopped server failed after {elapsed:?} (default timeouts and retries)");
    match result {
        Err(SdkError::DispatchFailure(e)) => assert!(e.is_io(), "not a connection error: {e:?}"),
        Err(e) => panic!("expected a dispatch failure, got {}", DisplayErrorContext(&e)),
        Ok(_) => panic!("a stopped server answered"),
    }
    // Standard retries: 3 attempts, jittered exponential backoff from 1 s, so at most ~3 s.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
fn several_servers_run_side_by_side_without_sharing_state() {
    let started = Instant::now();
    let servers: Vec<Moto> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..3).map(|_| scope.spawn(Moto::start)).collect();
        starting.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    eprintln!("3 Moto::start in parallel took {:?}", started.elapsed());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let first = servers[0].sdk_config().await;
        servers[0].start_recording();
        moto::create_kms_key(&first).await;
        for (i, server) in servers.iter().enumerate() {
            assert_ne!(server.endpoint, servers[(i + 1) % servers.len()].endpoint);
            let cfg = server.sdk_config().await;
            let keys = aws_sdk_kms::Client::new(&cfg).list_keys().send().await.unwrap();
            assert_eq!(
                keys.keys().len(),
                usize::from(i == 0),
                "server {i} sees only its own keys"
            );
        }
        assert_eq!(servers[0].count_kms_calls("ListKeys"), 1);
        servers[1].start_recording();
        assert_eq!(servers[1].count_kms_calls("ListKeys"), 0, "recordings are per server");
    });
}

//! What a deployment records at first use and checks afterwards, and the
//! Lua library's upkeep: a different partition count or a newer layout is
//! refused, and a server that lost the library gets it back at the next
//! call. Each test under its own key prefix; skipped (loudly) without
//! `FF_TEST_REDIS_URL`.

use ff_backend_valkey::{ThrowawayPrefix, ValkeyBackend, ValkeyConfig, SCHEMA_VERSION};
use ff_core::{ErrorKind, ExecutionOps, JsonText, ReadOps, SubmitRequest};

fn url() -> Option<String> {
    ff_testkit::harness::server_url("FF_TEST_REDIS_URL")
}

async fn command<T: redis::FromRedisValue>(url: &str, cmd: &redis::Cmd) -> T {
    let client = redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    cmd.query_async(&mut conn).await.expect("command")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_partition_count_is_fixed_at_first_use() {
    let Some(url) = url() else { return };
    let prefix = ThrowawayPrefix::new(&url);
    let config = ValkeyConfig::new(&url).prefix(prefix.name());
    let first = ValkeyBackend::connect(config.clone().partitions(4))
        .await
        .expect("first use records 4");
    assert_eq!(first.partitions(), 4);
    let later = ValkeyBackend::connect(config.clone())
        .await
        .expect("a later process may leave the count out");
    assert_eq!(later.partitions(), 4);
    let err = ValkeyBackend::connect(config.partitions(2))
        .await
        .expect_err("another count is refused");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("4 partitions"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_layout_is_refused() {
    let Some(url) = url() else { return };
    let prefix = ThrowawayPrefix::new(&url);
    let meta = format!("{}:meta", prefix.name());
    let _: () = command(
        &url,
        redis::cmd("HSET")
            .arg(&meta)
            .arg("partitions")
            .arg(1)
            .arg("schema_version")
            .arg(SCHEMA_VERSION + 1),
    )
    .await;
    let err = ValkeyBackend::connect(ValkeyConfig::new(&url).prefix(prefix.name()))
        .await
        .expect_err("a newer schema is refused");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_library_is_loaded_again() {
    let Some(url) = url() else { return };
    let prefix = ThrowawayPrefix::new(&url);
    let backend = ValkeyBackend::connect(ValkeyConfig::new(&url).prefix(prefix.name()))
        .await
        .expect("connect");
    // As after a restart without persistence, or a failover to a node that
    // never had it. Other tests on this server reload it the same way.
    let _: () = command(
        &url,
        redis::cmd("FUNCTION").arg("DELETE").arg("flowfabric_v2"),
    )
    .await;
    let id = backend
        .submit(SubmitRequest::new("lib", "job", JsonText::null()))
        .await
        .expect("submit reloads the library")
        .id;
    assert_eq!(backend.get_execution(id).await.expect("get").id, id);
}

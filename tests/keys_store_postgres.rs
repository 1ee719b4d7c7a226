//! The managed keys' store (`sluice::ledger::keys`) against a real PostgreSQL server started
//! by the test (`common::postgres`), next to the SQLite store on the same steps: create,
//! refuse a duplicate, list, get, rotate, revoke, replace a revoked key; a rotation racing a
//! revocation loses neither; a version 2 ledger migrated in place; errors without the URL.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use common::postgres::{Pg, PASSWORD};
use sluice::config::UsageStore;
use sluice::core::secret::Secret;
use sluice::ledger::keys::{open_keys, KeyStore, KeyStoreError, StoredKey};
use sluice::ledger::postgres::Postgres;
use sluice::ledger::store::Store;
use sluice::ledger::UsageRecord;

fn key(name: &str, digest: u8, now: u64) -> StoredKey {
    StoredKey {
        name: name.into(),
        sha256: [digest; 32],
        prefix: format!("test-{digest:02x}"),
        created_ms: now,
        expires_ms: Some(now + 1_000_000),
        revoked_ms: None,
        models: vec!["gpt-*".into()],
        limits: Some(r#"{"requests_per_minute":10}"#.into()),
        guardrails: Some(vec![]),
        metadata: BTreeMap::from([("team".into(), "search".into())]),
        previous_sha256: None,
        previous_until_ms: None,
        updated_ms: now,
    }
}

fn pg_store(server: &Pg) -> UsageStore {
    UsageStore::Postgres {
        url: Secret::new(server.url()),
    }
}

/// The same steps on any store; returns what it listed at the end.
fn exercise(keys: &mut dyn KeyStore) -> Vec<StoredKey> {
    let ci = key("ci", 1, 100);
    keys.create(&ci).unwrap();
    let mut plain = key("Batch", 2, 110);
    (plain.expires_ms, plain.limits, plain.guardrails) = (None, None, None);
    (plain.models, plain.metadata) = (vec![], BTreeMap::new());
    keys.create(&plain).unwrap();
    let err = keys.create(&key("ci", 3, 120)).unwrap_err();
    assert_eq!(err, KeyStoreError::Exists("ci".into()));
    assert_eq!(keys.get("ci").unwrap(), Some(ci.clone()));
    assert_eq!(keys.get("nope").unwrap(), None);
    let names: Vec<String> = keys.list().unwrap().into_iter().map(|k| k.name).collect();
    assert_eq!(names, ["Batch", "ci"], "byte order");
    assert_eq!(keys.get("Batch").unwrap(), Some(plain));

    let r = keys.rotate("ci", [4; 32], "test-04", 500, 200).unwrap();
    assert_eq!((r.sha256, r.prefix.as_str()), ([4; 32], "test-04"));
    assert_eq!(
        (r.previous_sha256, r.previous_until_ms, r.updated_ms),
        (Some([1; 32]), Some(500), 200)
    );
    assert_eq!(keys.get("ci").unwrap(), Some(r));
    let r = keys.rotate("ci", [5; 32], "test-05", 250, 300).unwrap();
    assert_eq!((r.previous_sha256, r.previous_until_ms), (None, None));

    let r = keys.revoke("ci", 400).unwrap();
    assert_eq!(
        (r.revoked_ms, r.updated_ms, r.sha256),
        (Some(400), 400, [5; 32])
    );
    for e in [
        keys.revoke("ci", 401).unwrap_err(),
        keys.revoke("nope", 401).unwrap_err(),
        keys.rotate("ci", [6; 32], "test-06", 900, 402).unwrap_err(),
    ] {
        assert!(matches!(e, KeyStoreError::NotFound(_)), "{e}");
    }
    assert_eq!(keys.list().unwrap().len(), 2);
    let again = key("ci", 7, 500);
    keys.create(&again).unwrap();
    assert_eq!(keys.get("ci").unwrap(), Some(again));
    keys.list().unwrap()
}

#[test]
fn the_key_store_behaves_as_the_sqlite_one_does() {
    let Some(server) = Pg::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let lite = UsageStore::Sqlite {
        path: dir.path().join("usage.db"),
    };
    let from_lite = exercise(open_keys(&lite).unwrap().as_mut());
    let from_pg = exercise(open_keys(&pg_store(&server)).unwrap().as_mut());
    assert_eq!(from_pg, from_lite);
    // A second connection sees the same keys.
    let mut other = open_keys(&pg_store(&server)).unwrap();
    assert_eq!(other.list().unwrap(), from_pg);
}

#[test]
fn a_rotation_racing_a_revocation_loses_neither() {
    let Some(server) = Pg::start() else { return };
    let store = pg_store(&server);
    for round in 0..10u8 {
        let name = format!("race-{round}");
        open_keys(&store)
            .unwrap()
            .create(&key(&name, 1, 10))
            .unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let mut rotator = open_keys(&store).unwrap();
        let mut revoker = open_keys(&store).unwrap();
        let (b1, b2, n1, n2) = (barrier.clone(), barrier, name.clone(), name.clone());
        let rotated = std::thread::spawn(move || {
            b1.wait();
            rotator.rotate(&n1, [2; 32], "test-02", 1_000, 20)
        });
        let revoked = std::thread::spawn(move || {
            b2.wait();
            revoker.revoke(&n2, 30)
        });
        let (rotated, revoked) = (rotated.join().unwrap(), revoked.join().unwrap());
        revoked.unwrap();
        let last = open_keys(&store).unwrap().get(&name).unwrap().unwrap();
        assert_eq!(last.revoked_ms, Some(30));
        assert_eq!(
            last.previous_sha256, None,
            "a revoked key keeps no old secret"
        );
        match rotated {
            Ok(r) => assert_eq!((r.sha256, last.sha256), ([2; 32], [2; 32])),
            Err(e) => {
                assert_eq!(e, KeyStoreError::NotFound(name.clone()));
                assert_eq!(last.sha256, [1; 32]);
            }
        }
    }
}

#[test]
fn a_version_2_ledger_is_migrated_in_place() {
    let Some(mut server) = Pg::start() else {
        return;
    };
    let url = Secret::new(server.url());
    let old = UsageRecord {
        id: 1,
        ts_ms: 5,
        request_id: "r1".into(),
        key: Some("old".into()),
        api: "openai".into(),
        ..UsageRecord::default()
    };
    let mut usage = Postgres::open(&url).unwrap();
    usage.insert(std::slice::from_ref(&old)).unwrap();
    drop(usage);
    // Back to version 2: what this build added, removed.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute(
            "ALTER TABLE sluice_usage DROP COLUMN team; DROP TABLE sluice_keys; \
             UPDATE sluice_schema SET version = 2",
        )
        .await
        .unwrap();
    });
    let mut keys = open_keys(&pg_store(&server)).unwrap();
    keys.create(&key("ci", 1, 100)).unwrap();
    let mut usage = Postgres::open(&url).unwrap();
    let new = UsageRecord {
        id: 2,
        ts_ms: 6,
        team: Some("search".into()),
        request_id: "r2".into(),
        api: "openai".into(),
        ..UsageRecord::default()
    };
    usage.insert(std::slice::from_ref(&new)).unwrap();
    assert_eq!(usage.recent(0, 10, false).unwrap(), [new, old]);
    let version: i32 = rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let row = c.query_one("SELECT version FROM sluice_schema", &[]).await;
        row.unwrap().get(0)
    });
    assert_eq!(version, 4);

    // A database that went away: an error that names no URL and no password.
    server.stop();
    let err = keys.list().unwrap_err();
    assert!(matches!(err, KeyStoreError::Backend(_)), "{err}");
    let text = err.to_string();
    assert!(
        !text.contains(PASSWORD) && !text.contains("postgres://"),
        "{text}"
    );
    let err = open_keys(&pg_store(&server)).err().unwrap();
    assert!(
        !err.contains(PASSWORD) && !err.contains("postgres://"),
        "{err}"
    );
}

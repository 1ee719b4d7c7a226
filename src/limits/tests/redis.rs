//! The Redis backend against a real `redis-server`, started by each test on its own loopback
//! port. Without the binary the tests are skipped, unless `SLUICE_REQUIRE_REDIS=1` (CI), which
//! turns a missing binary into a failure.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::*;

struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts a server, or returns `None` (skip) when `redis-server` is not installed.
    fn start(test: &str) -> Option<RedisServer> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            if std::env::var("SLUICE_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("{test}: redis-server is not installed and SLUICE_REQUIRE_REDIS=1");
            }
            eprintln!("SKIPPED {test}: redis-server is not installed (set SLUICE_REQUIRE_REDIS=1 to fail instead)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = RedisServer { child: None, port };
        s.spawn();
        Some(s)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn config(&self, keys: &[(&str, LimitSet)], models: &[(&str, LimitSet)]) -> LimitsConfig {
        let mut c = config(keys, models);
        c.backend = BackendKind::Redis;
        c.redis_url = Some(crate::core::secret::Secret::new(self.url()));
        c.redis_timeout = Duration::from_millis(200);
        // A long window: nothing refills noticeably while a test runs, so counts are exact.
        c.window = Duration::from_secs(3600);
        c
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_one_request_limit_exactly() {
    let Some(redis) = RedisServer::start("two_instances_share_one_request_limit_exactly") else {
        return;
    };
    let cfg = redis.config(&[("a", set(40, 0, 0))], &[]);
    let hosts = [Limiter::new(&cfg).unwrap(), Limiter::new(&cfg).unwrap()];
    let mut tasks = Vec::new();
    for i in 0..50 {
        let l = hosts[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..2 {
                match l.admit(&adm("a", "m", 0)).await {
                    Ok(p) => {
                        assert_eq!(p.headers().count(), 3, "limited, not failed open");
                        ok += 1;
                    }
                    Err(r) => assert_eq!(r.kind(), LimitKind::Requests),
                }
            }
            ok
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += t.await.unwrap();
    }
    assert_eq!(admitted, 40);
    for h in &hosts {
        assert_eq!(h.counters().backend_errors(), 0);
    }
    let r = hosts[0].admit(&adm("a", "m", 0)).await.unwrap_err();
    // 3600s window, 40 per window: one request drains in 90s.
    let wait = r.retry_after().as_secs_f64();
    assert!((89.0..=90.0).contains(&wait), "{wait}");
}

#[tokio::test]
async fn tokens_settle_and_model_limits_across_instances() {
    let Some(redis) = RedisServer::start("tokens_settle_and_model_limits_across_instances") else {
        return;
    };
    let cfg = redis.config(
        &[("a", set(0, 1000, 0)), ("b", LimitSet::default())],
        &[("m", set(0, 0, 0))],
    );
    let (h1, h2) = (Limiter::new(&cfg).unwrap(), Limiter::new(&cfg).unwrap());
    let p1 = h1.admit(&adm("a", "m", 600)).await.unwrap();
    assert_eq!(
        header(p1.headers(), "x-ratelimit-remaining-tokens").as_deref(),
        Some("400")
    );
    let r = h2.admit(&adm("a", "m", 500)).await.unwrap_err();
    assert_eq!(r.kind(), LimitKind::Tokens);
    p1.settle(Some(Usage {
        prompt: 100,
        cached: 0,
        completion: 100,
    }))
    .await;
    let p2 = h2.admit(&adm("a", "m", 500)).await.unwrap();
    assert_eq!(
        header(p2.headers(), "x-ratelimit-remaining-tokens").as_deref(),
        Some("300")
    );
    // Debt: 3000 actual against 500 estimated, of which the bucket's limit (1000) counts.
    p2.settle(Some(Usage {
        prompt: 2000,
        cached: 0,
        completion: 1000,
    }))
    .await;
    let r = h1.admit(&adm("a", "m", 0)).await.unwrap_err();
    assert_eq!(r.kind(), LimitKind::Tokens);
    // Level 1200 of 1000 in a 3600s window: 200 tokens drain in 720s.
    let wait = r.retry_after().as_secs_f64();
    assert!((710.0..=720.0).contains(&wait), "{wait}");

    // A model limit is shared by keys on different instances.
    let cfg = redis.config(&[], &[("shared", set(3, 0, 0))]);
    let (h1, h2) = (Limiter::new(&cfg).unwrap(), Limiter::new(&cfg).unwrap());
    let _ = h1.admit(&adm("a", "shared", 0)).await.unwrap();
    let _ = h2.admit(&adm("b", "shared", 0)).await.unwrap();
    let _ = h1.admit(&adm("c", "shared", 0)).await.unwrap();
    let r = h2.admit(&adm("a", "shared", 0)).await.unwrap_err();
    assert_eq!(
        (r.kind(), r.scope()),
        (LimitKind::Requests, Some(Scope::Model))
    );
}

#[tokio::test]
async fn huge_estimates_and_odd_names_are_stored_safely() {
    let Some(redis) = RedisServer::start("huge_estimates_and_odd_names_are_stored_safely") else {
        return;
    };
    let cfg = redis.config(&[("a:b{c}%", set(0, 1000, 0))], &[]);
    let l = Limiter::new(&cfg).unwrap();
    let p = l.admit(&adm("a:b{c}%", "m", u64::MAX)).await.unwrap();
    assert_eq!(p.headers().count(), 3);
    drop(p);
    let r = l.admit(&adm("a:b{c}%", "m", 1)).await.unwrap_err();
    assert_eq!(
        r.kind(),
        LimitKind::Tokens,
        "refused by the bucket, not a script error"
    );
    assert_eq!(l.counters().backend_errors(), 0);
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("sluice:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, vec!["sluice:tpm:k:a%3Ab%7Bc%7D%25".to_string()]);
    let ttl: i64 = ::redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 2_592_000_000, "{ttl}");
}

/// Polls `f` until it is true or `secs` have passed.
async fn eventually(secs: u64, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_across_instances_and_a_refusal_charges_nothing() {
    let Some(redis) = RedisServer::start("concurrency_across_instances") else {
        return;
    };
    let cfg = redis.config(&[("a", set(100, 0, 3))], &[("m", set(0, 50, 0))]);
    let (h1, h2) = (Limiter::new(&cfg).unwrap(), Limiter::new(&cfg).unwrap());
    let p1 = h1.admit(&adm("a", "m", 10)).await.unwrap();
    let p2 = h1.admit(&adm("a", "m", 10)).await.unwrap();
    // Refused by the model's tokens: neither the key's slot nor its request is charged.
    let r = h2.admit(&adm("a", "m", 40)).await.unwrap_err();
    assert_eq!(
        (r.kind(), r.scope()),
        (LimitKind::Tokens, Some(Scope::Model))
    );
    let p3 = h2.admit(&adm("a", "m", 10)).await.unwrap();
    assert_eq!(
        header(p3.headers(), "x-ratelimit-remaining-requests").as_deref(),
        Some("97")
    );
    let r = h2.admit(&adm("a", "m", 0)).await.unwrap_err();
    assert_eq!(r.kind(), LimitKind::Concurrency);
    // Dropping a permit releases its slot from a spawned task.
    drop(p1);
    // The probe's own permit is settled (released before the next step), not dropped: a
    // dropped one would free its slot from a task that may still be pending below.
    assert!(
        eventually(2, async || match h2.admit(&adm("a", "m", 0)).await {
            Ok(p) => {
                p.settle(None).await;
                true
            }
            Err(_) => false,
        })
        .await
    );
    // settle() releases too.
    p2.settle(None).await;
    let p4 = h2.admit(&adm("a", "m", 0)).await.unwrap();
    let p5 = h1.admit(&adm("a", "m", 0)).await.unwrap();
    assert_eq!(
        h1.admit(&adm("a", "m", 0)).await.unwrap_err().kind(),
        LimitKind::Concurrency
    );
    drop((p3, p4, p5));
}

#[test]
fn a_crashed_instance_slots_expire_with_their_lease() {
    let Some(redis) = RedisServer::start("a_crashed_instance_slots_expire_with_their_lease") else {
        return;
    };
    let mut cfg = redis.config(&[("a", set(0, 0, 1))], &[]);
    cfg.lease = Duration::from_millis(600);
    // The "crashed" host: its runtime (and the lease renewal task) goes away with the permit
    // never released.
    {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let l = Limiter::new(&cfg).unwrap();
        let p = rt.block_on(l.admit(&adm("a", "m", 0))).unwrap();
        // Renewals keep the slot past its first lease while the host lives.
        std::thread::sleep(Duration::from_millis(900));
        let other = Limiter::new(&cfg).unwrap();
        assert!(rt.block_on(other.admit(&adm("a", "m", 0))).is_err());
        std::mem::forget(p);
        rt.shutdown_background();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let l = Limiter::new(&cfg).unwrap();
    assert!(rt.block_on(l.admit(&adm("a", "m", 0))).is_err());
    let start = Instant::now();
    let ok = rt.block_on(eventually(3, async || {
        l.admit(&adm("a", "m", 0)).await.is_ok()
    }));
    assert!(ok, "the lease did not expire");
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn budgets_survive_a_restart() {
    let Some(redis) = RedisServer::start("budgets_survive_a_restart") else {
        return;
    };
    let a = budget(Some(1.0), None);
    let mut cfg = redis.config(&[("a", a)], &[]);
    cfg.pricing.insert(
        "m".into(),
        Price {
            input: 1.0,
            output: 2.0,
            cached_input: None,
        },
    );
    {
        let l = Limiter::new(&cfg).unwrap();
        let p = l.admit(&adm("a", "m", 0)).await.unwrap();
        p.settle(Some(Usage {
            prompt: 600_000,
            cached: 0,
            completion: 100_000,
        }))
        .await;
        assert!(
            l.admit(&adm("a", "m", 0)).await.is_ok(),
            "$0.80 of $1 spent"
        );
        let p = l.admit(&adm("a", "m", 0)).await.unwrap();
        p.settle(Some(Usage {
            prompt: 200_000,
            cached: 0,
            completion: 0,
        }))
        .await;
    }
    // A new limiter (sluice restarted) sees the day's spend.
    let l = Limiter::new(&cfg).unwrap();
    let r = l.admit(&adm("a", "m", 0)).await.unwrap_err();
    assert_eq!(r.kind(), LimitKind::Budget);
    assert_eq!(r.code(), "budget_exceeded");
    let until_midnight = 86_400 - (time::unix_now_us() / 1_000_000) % 86_400;
    assert!(
        r.retry_after().as_secs().abs_diff(until_midnight) <= 2,
        "{:?}",
        r.retry_after()
    );
    // The day key expires after the day is over.
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("sluice:budget:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for k in keys {
        let ttl: i64 = ::redis::cmd("TTL")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 86_400, "{k}: {ttl}");
        let spent: f64 = ::redis::cmd("GET")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((spent - 1.0).abs() < 1e-9, "{k}: {spent}");
    }
}

async fn outage(mode: OnBackendError) {
    let Some(mut redis) = RedisServer::start(&format!("outage ({mode:?})")) else {
        return;
    };
    let mut cfg = redis.config(&[("a", set(2, 0, 0))], &[]);
    cfg.on_backend_error = mode;
    cfg.redis_timeout = Duration::from_millis(100);
    let l = Limiter::new(&cfg).unwrap();
    let p = l.admit(&adm("a", "m", 0)).await.unwrap();
    assert_eq!(p.headers().count(), 3);
    redis.kill();
    for _ in 0..5 {
        let start = Instant::now();
        let res = l.admit(&adm("a", "m", 0)).await;
        assert!(
            start.elapsed() < Duration::from_millis(400),
            "{:?}",
            start.elapsed()
        );
        match mode {
            OnBackendError::FailOpen => {
                assert_eq!(res.unwrap().headers().count(), 0, "admitted unlimited")
            }
            OnBackendError::FailClosed => {
                let r = res.unwrap_err();
                assert_eq!(r.kind(), LimitKind::Backend);
                assert_eq!(r.code(), "rate_limit_backend_unavailable");
                assert_eq!(r.status(), 503);
                assert_eq!(r.retry_after(), Duration::from_secs(1));
                assert!(!r.message().contains("127.0.0.1"), "{}", r.message());
            }
        }
    }
    assert!(l.counters().backend_errors() >= 5);
    match mode {
        OnBackendError::FailOpen => assert_eq!(l.counters().fail_open_admits(), 5),
        OnBackendError::FailClosed => {
            assert_eq!(l.counters().rejections(LimitKind::Backend, None), 5)
        }
    }
    // Redis comes back (empty): limiting resumes by itself.
    redis.spawn();
    let recovered = eventually(10, async || match l.admit(&adm("a", "m", 0)).await {
        Ok(p) => p.headers().count() == 3,
        Err(r) => r.kind() != LimitKind::Backend,
    })
    .await;
    assert!(recovered, "no recovery after Redis came back");
    let _ = l.admit(&adm("a", "m", 0)).await.unwrap();
    let r = l.admit(&adm("a", "m", 0)).await.unwrap_err();
    assert_eq!(r.kind(), LimitKind::Requests);
    drop(p);
}

#[tokio::test]
async fn outage_fail_open_admits_and_recovers() {
    outage(OnBackendError::FailOpen).await;
}

#[tokio::test]
async fn outage_fail_closed_refuses_and_recovers() {
    outage(OnBackendError::FailClosed).await;
}

#[tokio::test]
async fn redis_down_at_startup_fails_fast() {
    let Some(mut redis) = RedisServer::start("redis_down_at_startup_fails_fast") else {
        return;
    };
    redis.kill();
    let mut cfg = redis.config(&[("a", set(1, 0, 0))], &[]);
    cfg.on_backend_error = OnBackendError::FailClosed;
    cfg.redis_timeout = Duration::from_millis(100);
    let l = Limiter::new(&cfg).unwrap();
    let start = Instant::now();
    let r = l.admit(&adm("a", "m", 0)).await.unwrap_err();
    assert_eq!(r.kind(), LimitKind::Backend);
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    redis.spawn();
    assert!(eventually(5, async || l.admit(&adm("a", "m", 0)).await.is_ok()).await);
    assert_eq!(
        l.admit(&adm("a", "m", 0)).await.unwrap_err().kind(),
        LimitKind::Requests
    );
}

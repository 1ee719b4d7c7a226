//! Builds the Pingora server: the client-facing proxy service and the admin service, each on
//! its own listener, with worker threads, graceful shutdown and the upgrade socket from config.

pub mod access;
pub mod admin;
pub mod conns;
pub mod drain;
pub mod proxy;
pub mod ui;

use std::sync::Arc;

use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::listening::Service;

use crate::config::Config;
use crate::control::signal::ReloadOnHangup;
use crate::control::sync::KeySync;
use crate::control::Control;
use crate::ledger::{Ledger, LedgerWriter};
use crate::limits::Limiter;
use crate::pipeline::gateway::Gateway;
use crate::pipeline::gateway::InFlight;
use crate::pipeline::gateway::Live;
use crate::routing::Router;
use crate::server::admin::Admin;
use crate::server::conns::{ClientConns, MemoryTrim};
use crate::server::drain::Drain;
use crate::server::proxy::ClientProxy;
use crate::telemetry::Metrics;
use crate::trace::{TraceExporter, Tracer};
use crate::upstream::health::HealthChecks;
use crate::upstream::Resolver;
use pingora::apps::HttpServerOptions;
use pingora::connectors::ConnectorOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::services::background::background_service;

/// Read buffer per client connection: none. Pingora's default (64 KiB) is held by every
/// open connection, idle ones included, and would only double-buffer: the HTTP/1 session
/// reads the header into a buffer of its own and the body into the body reader's.
const CLIENT_READ_BUFFER: usize = 0;

/// Process-level flags passed through to Pingora.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunFlags {
    /// Take over the listening sockets of a running instance (zero-downtime upgrade).
    pub upgrade: bool,
    /// Detach and run in the background.
    pub daemon: bool,
}

/// Fails fast when a listener address cannot be bound (Pingora would retry for 30 seconds
/// before giving up). Skipped for `--upgrade`, where the running instance holds the sockets.
fn check_addresses(cfg: &Config) -> Result<(), String> {
    for (key, addr) in [("listen", cfg.listen), ("admin.listen", cfg.admin.listen)] {
        if let Err(e) = std::net::TcpListener::bind(addr) {
            return Err(format!("{key}: cannot listen on {addr}: {e}"));
        }
    }
    Ok(())
}

/// Builds the server, ready to `run_forever`. `path` is the config file `cfg` came from,
/// re-read on reload.
pub fn build(cfg: Config, path: &std::path::Path, flags: RunFlags) -> Result<Server, String> {
    if !flags.upgrade {
        check_addresses(&cfg)?;
    }
    match conns::raise_open_file_limit() {
        Some((before, now)) if before < now => {
            log::info!("open-file limit raised from {before} to {now} (the hard limit)")
        }
        Some((_, now)) => log::info!("open-file limit {now}"),
        None => log::warn!("cannot read the open-file limit"),
    }
    let cfg = Arc::new(cfg);
    let conf = ServerConf {
        threads: cfg.server.threads,
        pid_file: cfg.server.pid_file.clone(),
        upgrade_sock: cfg.server.upgrade_sock.clone(),
        grace_period_seconds: Some(cfg.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(cfg.server.graceful_shutdown_timeout.as_secs()),
        upstream_keepalive_pool_size: cfg.upstream.keepalive_pool_size,
        ca_file: cfg.upstream.ca_file.clone(),
        daemon: flags.daemon,
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: flags.upgrade,
        daemon: flags.daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let router = Arc::new(Router::new(&cfg));
    let in_flight = Arc::new(InFlight::default());
    let metrics = Arc::new(Metrics::new());
    let limiter = Limiter::new(&cfg.rate_limits).map_err(|e| format!("limits: {e}"))?;
    metrics.register(Box::new(limiter.collector()));
    for c in crate::guardrails::metrics::collectors()
        .into_iter()
        .chain(crate::telemetry::access::collectors())
    {
        metrics.register(c);
    }
    let models: Vec<String> = cfg.models.keys().cloned().collect();
    let unpriced = if cfg.usage.is_some() {
        cfg.rate_limits.without_price(&models)
    } else {
        cfg.rate_limits.unpriced_models(&models)
    };
    if !unpriced.is_empty() {
        log::warn!(
            "these models have no price and cost 0 in budgets and the usage ledger: {}",
            unpriced.join(", ")
        );
    }
    let resolver = Arc::new(Resolver::new(&cfg));
    let gateway = Gateway::new(
        cfg.clone(),
        router.clone(),
        in_flight.clone(),
        metrics.clone(),
        limiter,
        resolver.clone(),
        &server.configuration,
    );
    let ledger = match &cfg.usage {
        Some(u) => {
            let l = Ledger::open(u)?;
            for c in l.stats.collectors() {
                metrics.register(c);
            }
            Some(Arc::new(l))
        }
        None => None,
    };
    let tracer = cfg.tracing.as_ref().map(|t| {
        let tracer = Arc::new(Tracer::new(t));
        for c in tracer.stats.collectors() {
            metrics.register(c);
        }
        tracer
    });
    let mut gateway = gateway;
    gateway.ledger = ledger.clone();
    gateway.tracer = tracer.clone();
    let live = Live::new(gateway);
    let control = Control::new(live.clone(), path.to_path_buf());
    for c in control.stats.collectors() {
        metrics.register(c);
    }
    initial_keys(&control);
    let mut proxy =
        pingora::proxy::http_proxy(&server.configuration, ClientProxy { live: live.clone() });
    let mut options = HttpServerOptions::default();
    options.h2_idle_timeout = Some(cfg.timeouts.client_idle);
    proxy.server_options = Some(options);
    let conns = ClientConns::new(
        proxy,
        live.clone(),
        cfg.server.max_connections,
        cfg.timeouts.request_header,
        cfg.timeouts.client_idle,
        metrics.clone(),
    );
    let mut proxy = Service::new("sluice".to_string(), conns);
    let mut listener =
        ListenerConfig::tcp(cfg.listen.to_string()).l4_buffer(L4BufferSettings::new(
            CLIENT_READ_BUFFER,
            pingora::listeners::DEFAULT_L4_WRITE_BUFFER_SIZE,
        ));
    if let Some(tls) = &cfg.tls {
        let mut settings = TlsSettings::intermediate(&tls.cert, &tls.key)
            .map_err(|e| format!("tls: cannot load certificate or key: {e}"))?;
        if tls.http2 {
            settings.enable_h2();
        }
        listener = listener.tls(settings);
    }
    proxy.add_listener(listener);

    let mut admin = Service::new(
        "sluice admin".to_string(),
        Admin {
            cfg: cfg.clone(),
            control: control.clone(),
            metrics: metrics.clone(),
            ledger: ledger.clone(),
        },
    );
    admin.add_tcp(&cfg.admin.listen.to_string());

    server.add_service(background_service(
        "health checks",
        HealthChecks {
            routing: control.routers(),
            resolver,
            opts: ConnectorOptions::from_server_conf(&server.configuration),
        },
    ));
    server.add_service(background_service(
        "config reload",
        ReloadOnHangup(control.clone()),
    ));
    server.add_service(background_service("managed keys", KeySync(control)));
    if let Some(l) = &ledger {
        server.add_service(background_service("usage ledger", LedgerWriter(l.clone())));
    }
    if let Some(t) = tracer {
        server.add_service(background_service("trace export", TraceExporter(t)));
    }
    server.add_service(background_service("drain", Drain { in_flight, ledger }));
    server.add_service(background_service("memory trim", MemoryTrim { metrics }));
    server.add_service(proxy);
    server.add_service(admin);
    Ok(server)
}

/// Puts the store's managed keys in force before the listeners open, so that they work from
/// the first request (the key sync keeps them current after).
fn initial_keys(control: &Arc<Control>) {
    if !control.has_store() {
        return;
    }
    let control = control.clone();
    let synced = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(control.sync_keys())
    })
    .join();
    match synced {
        Ok(Ok(n)) => log::info!("managed keys: {n} in force"),
        Ok(Err(e)) => log::warn!("managed keys: cannot read the store yet ({e}); retrying"),
        Err(_) => log::error!("managed keys: reading the store failed"),
    }
}

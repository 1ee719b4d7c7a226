//! nginx `proxy_pass` in front of the same mock: the practical limit of a reverse proxy on this
//! machine, measured in the same run as sluice. nginx does no JSON work; it sets the bar for
//! what a proxy costs per request and holds per open stream.
//!
//! The bench writes nginx's config itself (a temp prefix directory, no access log, keep-alive
//! to the upstream, no response buffering so streams pass chunk by chunk as through sluice)
//! and starts `nginx` from `PATH` (Debian's `nginx-light` or `nginx`). Without it the run is
//! skipped with a note in the report.

use std::path::PathBuf;
use std::time::Duration;

use crate::tempfile_dir::Dir;

/// A running nginx (master and workers); stopped on drop.
pub struct Nginx {
    child: tokio::process::Child,
    pub port: u16,
    _dir: Dir,
}

/// The config: `workers` worker processes (sluice's thread count, so both get the same
/// cores), a listener on `port`, everything proxied to the mock on `upstream`.
fn config(dir: &std::path::Path, port: u16, upstream: u16, workers: usize) -> String {
    let d = dir.display();
    format!(
        "worker_processes {workers};\n\
         worker_rlimit_nofile 200000;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log error;\n\
         events {{ worker_connections 40000; multi_accept on; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 client_body_temp_path {d}/body;\n\
         \x20 proxy_temp_path {d}/proxy;\n\
         \x20 fastcgi_temp_path {d}/fastcgi;\n\
         \x20 uwsgi_temp_path {d}/uwsgi;\n\
         \x20 scgi_temp_path {d}/scgi;\n\
         \x20 keepalive_requests 1000000;\n\
         \x20 keepalive_timeout 300s;\n\
         \x20 upstream mock {{ server 127.0.0.1:{upstream}; keepalive 20000; keepalive_requests 1000000; }}\n\
         \x20 server {{\n\
         \x20   listen 127.0.0.1:{port} backlog=16384;\n\
         \x20   location / {{\n\
         \x20     proxy_pass http://mock;\n\
         \x20     proxy_http_version 1.1;\n\
         \x20     proxy_set_header Connection \"\";\n\
         \x20     proxy_buffering off;\n\
         \x20     proxy_request_buffering off;\n\
         \x20     proxy_read_timeout 300s;\n\
         \x20   }}\n\
         \x20 }}\n\
         }}\n"
    )
}

impl Nginx {
    /// Starts `bin` (normally `nginx`) in front of the mock on `upstream`. The error says why
    /// it could not run, for the report.
    pub async fn start(bin: &str, upstream: u16) -> Result<Nginx, String> {
        let dir = std::env::temp_dir().join(format!(
            "sluice-bench-nginx-{}-{}",
            std::process::id(),
            crate::free_port()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let dir = Dir(dir);
        let port = crate::free_port();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let conf: PathBuf = dir.0.join("nginx.conf");
        std::fs::write(&conf, config(&dir.0, port, upstream, workers))
            .map_err(|e| e.to_string())?;
        let child = crate::process::spawn_server(
            bin,
            tokio::process::Command::new(bin)
                .arg("-p")
                .arg(&dir.0)
                .arg("-e")
                .arg(dir.0.join("error.log"))
                .arg("-c")
                .arg(&conf)
                .args(["-g", "daemon off;"])
                // A group of its own, so that its workers can be stopped with it (see `Drop`).
                .process_group(0),
        )?;
        let mut nginx = Nginx {
            child,
            port,
            _dir: dir,
        };
        if let Err(e) = crate::wait_for_port(port).await {
            let log = std::fs::read_to_string(nginx._dir.0.join("error.log")).unwrap_or_default();
            nginx.stop().await;
            return Err(format!("{bin} did not start: {e} {}", log.trim()));
        }
        // The master listens before its workers have started: let them settle so the
        // baseline RSS is theirs at rest, not mid-start.
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(nginx)
    }

    /// The master's pid (its workers are its children).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops nginx (fast shutdown of the master and its workers) and waits for it.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM: nginx's fast shutdown; the workers exit with the master.
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

impl Drop for Nginx {
    /// An nginx not [`Nginx::stop`]ped (the bench stopped by a signal, or failing): its
    /// master and workers are killed as a group; killing the master alone would leave the
    /// workers serving.
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is
            // involved.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_config_proxies_everything_unbuffered_without_an_access_log() {
        let c = super::config(std::path::Path::new("/tmp/x"), 8080, 9090, 2);
        assert!(c.contains("worker_processes 2;"));
        assert!(c.contains("listen 127.0.0.1:8080"));
        assert!(c.contains("server 127.0.0.1:9090;"));
        assert!(c.contains("proxy_buffering off;"));
        assert!(c.contains("access_log off;"));
        assert!(c.contains("pid /tmp/x/nginx.pid;"));
    }
}

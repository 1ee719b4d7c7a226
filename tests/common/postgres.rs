//! A real PostgreSQL server for tests: `initdb` into a temporary directory, `postgres` on a
//! free loopback port, stopped and started again mid-test on the same port and data, killed
//! on drop. The binaries come from Debian's `postgresql` package (installed by the README's
//! setup command); without them a test is skipped, or fails when
//! `SLUICE_REQUIRE_POSTGRES=1`. PostgreSQL refuses to run as root: as root, the server runs
//! as the `postgres` system user.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password in [`Pg::url`].
pub const PASSWORD: &str = "pg-test-password-dddd";

/// A running (or stopped) PostgreSQL server.
pub struct Pg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    /// Whether the server runs as the `postgres` user (the tests run as root).
    as_postgres: bool,
    /// More `postgres` arguments (TLS settings).
    args: Vec<String>,
}

/// The newest `/usr/lib/postgresql/<version>/bin` with the server binaries.
fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            ["initdb", "pg_ctl", "postgres", "pg_isready"]
                .iter()
                .all(|b| bin.join(b).exists())
                .then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pg {
    /// Initialises and starts a server; `None` (the test is skipped) when PostgreSQL is not
    /// installed and `SLUICE_REQUIRE_POSTGRES` is not `1`.
    pub fn start() -> Option<Pg> {
        Self::start_with(&[], &[])
    }

    /// Like [`Pg::start`], with `files` written into the data directory (readable by the
    /// server only) and more server arguments.
    pub fn start_with(files: &[(&str, &str)], args: &[&str]) -> Option<Pg> {
        let Some(bin) = bin_dir() else {
            assert!(
                std::env::var("SLUICE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "PostgreSQL is not installed (/usr/lib/postgresql/*/bin) and \
                 SLUICE_REQUIRE_POSTGRES=1"
            );
            eprintln!("skipped: no postgresql");
            return None;
        };
        let mut pg = Pg {
            bin,
            dir: tempfile::tempdir().unwrap(),
            port: super::free_port(),
            child: None,
            as_postgres: is_root(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        pg.init(files);
        pg.restart();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command for a server binary, as the `postgres` user when the tests run as root.
    fn command(&self, name: &str) -> Command {
        let exe = self.bin.join(name);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn init(&self, files: &[(&str, &str)]) {
        use std::os::unix::fs::PermissionsExt;
        let data = self.data();
        std::fs::create_dir(&data).unwrap();
        if self.as_postgres {
            // The server's user must reach its directory through ours.
            let open = std::fs::Permissions::from_mode(0o755);
            std::fs::set_permissions(self.dir.path(), open).unwrap();
            let mut chown = Command::new("chown");
            chown.args(["postgres:postgres"]).arg(&data);
            run(chown, "chown the data directory");
        }
        let mut initdb = self.command("initdb");
        initdb.arg("-D").arg(&data);
        initdb.args(["-A", "trust", "-U", "sluice", "-E", "UTF8", "--no-sync"]);
        run(initdb, "initdb");
        for (name, text) in files {
            let path = data.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            if self.as_postgres {
                let mut chown = Command::new("chown");
                chown.args(["postgres:postgres"]).arg(&path);
                run(chown, "chown a server file");
            }
        }
    }

    /// A URL for the `postgres` database as the `sluice` superuser, with a password (which
    /// the server does not ask for) that must never show in a log.
    pub fn url(&self) -> String {
        format!(
            "postgres://sluice:{PASSWORD}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// Starts the server (again, after [`Pg::stop`]) and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("postgres.log"))
            .unwrap();
        let data = self.data();
        let mut cmd = self.command("postgres");
        cmd.arg("-D").arg(&data).arg("-k").arg(&data);
        cmd.args([
            "-p",
            &self.port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
        ]);
        cmd.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        cmd.args(&self.args);
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("start postgres"));
        let end = Instant::now() + Duration::from_secs(30);
        while !self.ready() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("postgres exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < end,
                "postgres did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Stops the server (fast: open connections are cut) and waits until it is gone.
    pub fn stop(&mut self) {
        self.pg_ctl_stop("fast");
    }

    fn pg_ctl_stop(&mut self, mode: &str) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", mode, "-w", "stop"]);
        let stopped = stop.output().is_ok_and(|o| o.status.success());
        if !stopped {
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// The data directory's parent, for files the test wants next to the server's.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.pg_ctl_stop("immediate");
    }
}

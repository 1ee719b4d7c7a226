//! A PostgreSQL server for the `ledger: postgres` run: `initdb` into a temporary directory,
//! `postgres` on a free loopback port with its default durability settings, stopped with
//! `pg_ctl` afterwards. The binaries come from Debian's `postgresql` package; as root the
//! server runs as the `postgres` system user (PostgreSQL refuses to run as root).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres: bool,
    pub port: u16,
}

/// The newest `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, b)| b)
}

impl Postgres {
    /// Starts a server; the error says why it could not, for the report.
    pub fn start() -> Result<Postgres, String> {
        let bin = bin_dir().ok_or("postgresql not found (/usr/lib/postgresql/*/bin)")?;
        let as_postgres = is_root();
        let pg = Postgres {
            bin,
            dir: tempfile::tempdir().map_err(|e| e.to_string())?,
            as_postgres,
            port: free_port(),
        };
        pg.init()?;
        pg.spawn()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

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

    fn init(&self) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let data = self.data();
        std::fs::create_dir(&data).map_err(|e| e.to_string())?;
        if self.as_postgres {
            std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
            run(Command::new("chown").args(["postgres:postgres"]).arg(&data))?;
        }
        run(self
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "sluice", "-E", "UTF8"]))
    }

    fn spawn(self) -> Result<Postgres, String> {
        let data = self.data();
        self.command("postgres")
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&data)
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start postgres: {e}"))?;
        let end = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > end {
                return Err("postgres did not start in 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Accepting connections is not yet accepting queries; give startup a moment.
        std::thread::sleep(Duration::from_millis(500));
        Ok(self)
    }

    pub fn url(&self) -> String {
        format!("postgres://sluice@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

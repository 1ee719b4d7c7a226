//! Samples a process's resident memory and CPU time from /proc while a load runs, and raises
//! this process's open-file limit so thousands of connections fit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the sampled process used.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub rss_baseline_kib: u64,
    pub rss_peak_kib: u64,
    pub cpu_seconds: f64,
    /// Open descriptors before the load and at most during it (sampled every 500 ms).
    pub fds_baseline: u64,
    pub fds_peak: u64,
}

/// Descriptors open in `pid` now.
pub fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// Resident memory of `pid` now, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time (user + system) `pid` has used, in seconds.
#[allow(unsafe_code)]
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks.max(1.0))
}

/// The processes whose parent is `pid` (nginx's workers under its master).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| parent(child) == Some(pid))
        .collect()
}

fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `pid` and, for a tree, its children now.
fn group(pid: u32, tree: bool) -> Vec<u32> {
    let mut pids = vec![pid];
    if tree {
        pids.extend(children(pid));
    }
    pids
}

fn sum<T: std::iter::Sum>(pids: &[u32], f: impl Fn(u32) -> Option<T>) -> Option<T> {
    let mut any = false;
    let total = pids
        .iter()
        .filter_map(|&p| f(p))
        .inspect(|_| any = true)
        .sum();
    any.then_some(total)
}

pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Usage>,
}

impl Sampler {
    /// Waits (up to a second) until `pid`'s open descriptors hold still for two readings
    /// 50 ms apart, so that a baseline taken next counts no descriptor of its start-up (the
    /// readiness probe's connection, a background service's first dial).
    pub async fn settled(pid: u32) {
        let mut last = open_fds(pid);
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = open_fds(pid);
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// Starts sampling `pid` every 100 ms.
    pub fn start(pid: u32) -> Sampler {
        Sampler::sample(pid, false)
    }

    /// Starts sampling `pid` and its children (a master and its workers) every 100 ms: RSS
    /// and CPU time are their sums; the children are looked up at every sample.
    pub fn start_tree(pid: u32) -> Sampler {
        Sampler::sample(pid, true)
    }

    fn sample(pid: u32, tree: bool) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let pids = group(pid, tree);
            let baseline = sum(&pids, rss_kib).unwrap_or(0);
            let cpu0 = sum(&pids, cpu_seconds).unwrap_or(0.0);
            let fds0 = sum(&pids, open_fds).unwrap_or(0);
            let (mut peak, mut fds_peak) = (baseline, fds0);
            let mut tick = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let pids = group(pid, tree);
                if let Some(r) = sum(&pids, rss_kib) {
                    peak = peak.max(r);
                }
                // Listing tens of thousands of descriptors costs more than reading RSS.
                if tick.is_multiple_of(5) {
                    if let Some(n) = sum(&pids, open_fds) {
                        fds_peak = fds_peak.max(n);
                    }
                }
                tick += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Usage {
                rss_baseline_kib: baseline,
                rss_peak_kib: peak,
                cpu_seconds: sum(&group(pid, tree), cpu_seconds).unwrap_or(cpu0) - cpu0,
                fds_baseline: fds0,
                fds_peak,
            }
        });
        Sampler { stop, task }
    }

    pub async fn stop(self) -> Usage {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

/// Raises the soft open-file limit to the hard limit; returns the limit now in force.
#[allow(unsafe_code)]
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write to / read from the struct passed, which lives here.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                lim = wanted;
            }
        }
    }
    lim.rlim_cur
}

/// Spawns a server the bench runs beside sluice (redis-server, postgres, nginx): output
/// discarded, killed when dropped; the error says why `bin` could not run, for the report.
pub fn spawn_server(
    bin: &str,
    cmd: &mut tokio::process::Command,
) -> Result<tokio::process::Child, String> {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{bin} not found"),
            _ => format!("cannot start {bin}: {e}"),
        })
}

//! The bench stopped by a signal mid-run leaves no server it started behind: not the mock,
//! not sluice, not nginx's workers (which are not its children but nginx's).

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every process below `root` (children, theirs, …), with its command name.
fn descendants(root: u32) -> HashMap<u32, String> {
    let mut parent_of = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: the name may hold spaces and parentheses.
        let Some((name, rest)) = stat.split_once('(').and_then(|(_, r)| r.rsplit_once(')')) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let Some(ppid) = fields.next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if state != "Z" {
            parent_of.insert(pid, (ppid, name.to_string()));
        }
    }
    let mut found = HashMap::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (pid, (ppid, name)) in &parent_of {
            if *ppid == p && found.insert(*pid, name.clone()).is_none() {
                frontier.push(*pid);
            }
        }
    }
    found
}

/// Whether `pid` is gone (or a zombie: killed, not yet reaped by whoever inherited it).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn a_bench_stopped_by_sigterm_stops_the_servers_it_started() {
    let out = tempfile::tempdir().unwrap();
    let mut bench = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args(["small", "--scale", "0.05", "--out"])
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = bench.id();
    // Waits for nginx's workers (the baseline's phase) or, without nginx on this machine,
    // for sluice (the last phase); everything running then is remembered.
    let start = Instant::now();
    let mut seen = HashMap::new();
    while start.elapsed() < Duration::from_secs(120) {
        seen = descendants(pid);
        let names: HashSet<&str> = seen.values().map(String::as_str).collect();
        if names.contains("sluice") || seen.len() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        seen.values().any(|n| n == "sluice-mock"),
        "the bench started its mock provider: {seen:?}"
    );
    // SAFETY: kill(2) on the bench's pid, a child of this test that has not been waited for.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let status = bench.wait().unwrap();
    assert!(!status.success(), "a stopped run is not a success");
    let stderr = std::io::read_to_string(bench.stderr.take().unwrap()).unwrap();
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !seen.keys().all(|p| gone(*p)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<_> = seen.iter().filter(|(p, _)| !gone(**p)).collect();
    assert!(
        left.is_empty(),
        "still running after the bench: {left:?} (of {seen:?})"
    );
}

//! What the process and the machine look like: RSS and CPU time from `/proc`, the file
//! descriptor limit, and a description of the machine for the report.

use std::time::Duration;

/// Resident set size now and its high-water mark, in bytes (`VmRSS`, `VmHWM`).
pub fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU time of a process (`self` when `pid` is `None`), from `/proc/<pid>/stat`
/// (clock ticks of 1/100 s, the fixed `USER_HZ` of Linux's `/proc` interface).
pub fn cpu_time(pid: Option<u32>) -> Duration {
    let path = pid.map_or_else(|| "/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Raises the soft open-file limit to the hard limit (10,000 connections need as many
/// descriptors on each side). Returns the limit now in force.
pub fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// The source measured: the commit checked out in `repo` and whether the working tree
/// differed from it (a dirty tree's figures are not the commit's). Read once, before the
/// benchmarks run.
pub fn source(repo: &std::path::Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let Some(commit) = git(&["rev-parse", "HEAD"]) else {
        return "Source: unknown (not a git checkout, or git is not installed)".into();
    };
    let tree = match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) if s.trim().is_empty() => "working tree clean".to_owned(),
        Some(s) => format!("working tree DIRTY: {} tracked files changed", s.lines().count()),
        None => "working tree state unknown".to_owned(),
    };
    format!("Source: commit {} ({tree})", commit.trim())
}

/// One line per fact: CPU model and count, memory, kernel, toolchain.
pub fn machine() -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim()))
        .unwrap_or("unknown CPU")
        .to_owned();
    let cpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let mhz = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("cpu MHz").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim()))
        .unwrap_or("?")
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "rustc (unknown)".into());
    vec![
        format!("CPU: {model}, {cpus} logical CPUs at {mhz} MHz (from /proc/cpuinfo)"),
        format!("Memory: {:.1} GiB (MemTotal in /proc/meminfo)", mem_kb as f64 / 1024.0 / 1024.0),
        format!("Kernel: Linux {kernel}"),
        format!("Toolchain: {rustc}; release profile (opt-level 3, debug = 1)"),
    ]
}

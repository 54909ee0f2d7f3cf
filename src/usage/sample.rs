//! One sample of every unit's process tree from /proc (through `sysinfo`): resident
//! memory summed over the tree, CPU time accumulated from per-pid deltas between samples.

use super::{UnitUsage, UsageTable};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

/// Where a unit's processes start: its own pid and, for podman units, the container
/// (found through its `conmon`, the parent of the container's processes).
#[derive(Debug, Clone, PartialEq)]
pub struct Root {
    pub unit: String,
    pub pid: Option<u32>,
    pub container: Option<String>,
}

/// Keeps what deltas need between samples.
pub struct Sampler {
    sys: System,
    /// CPU milliseconds each pid had consumed at the last sample.
    last_cpu: HashMap<u32, u64>,
    /// CPU seconds per unit since the daemon started (a counter: never decreases).
    totals: HashMap<String, f64>,
    last_at: Option<Instant>,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    /// An empty sampler; the first sample has no CPU percentage yet.
    pub fn new() -> Self {
        // sysinfo keeps every /proc/PID/stat open by default: the daemon's descriptors are
        // better spent on connections.
        sysinfo::set_open_files_limit(0);
        Sampler {
            sys: System::new(),
            last_cpu: HashMap::new(),
            totals: HashMap::new(),
            last_at: None,
        }
    }

    /// Reads /proc (blocking: call it off the async workers) and returns every root's usage.
    pub fn sample(&mut self, roots: &[Root]) -> UsageTable {
        let kind = ProcessRefreshKind::nothing()
            .with_cpu()
            .with_memory()
            .with_cmd(UpdateKind::OnlyIfNotSet)
            .without_tasks();
        self.sys
            .refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
        let now = Instant::now();
        let wall = self.last_at.map(|t| now.duration_since(t).as_secs_f64());
        let children = children_of(&self.sys);
        let mut seen_cpu = HashMap::new();
        let mut table = BTreeMap::new();
        for root in roots {
            let starts = start_pids(&self.sys, root);
            if starts.is_empty() {
                continue;
            }
            let (mut memory, mut delta_ms) = (0u64, 0u64);
            for pid in tree(&children, &starts) {
                let Some(p) = self.sys.process(Pid::from_u32(pid)) else {
                    continue;
                };
                memory += p.memory();
                let cpu = p.accumulated_cpu_time();
                // A pid not seen before started after the last sample: all its time is new.
                delta_ms += cpu.saturating_sub(self.last_cpu.get(&pid).copied().unwrap_or(0));
                seen_cpu.insert(pid, cpu);
            }
            let delta = delta_ms as f64 / 1000.0;
            let total = self.totals.entry(root.unit.clone()).or_default();
            *total += delta;
            table.insert(
                root.unit.clone(),
                UnitUsage {
                    cpu_percent: wall.filter(|w| *w > 0.0).map(|w| delta / w * 100.0),
                    cpu_seconds: *total,
                    memory_bytes: Some(memory),
                },
            );
        }
        // Units not running now keep their counter (Prometheus counters never go back).
        for (unit, total) in &self.totals {
            table.entry(unit.clone()).or_insert(UnitUsage {
                cpu_percent: None,
                cpu_seconds: *total,
                memory_bytes: None,
            });
        }
        self.last_cpu = seen_cpu;
        self.last_at = Some(now);
        table
    }
}

/// Parent pid → child pids, processes only (threads share their process's memory).
fn children_of(sys: &System) -> HashMap<u32, Vec<u32>> {
    let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, p) in sys.processes() {
        if p.thread_kind().is_some() {
            continue;
        }
        if let Some(parent) = p.parent() {
            map.entry(parent.as_u32()).or_default().push(pid.as_u32());
        }
    }
    map
}

/// The unit's pid (when alive) and the conmon of its container.
fn start_pids(sys: &System, root: &Root) -> Vec<u32> {
    let mut out: Vec<u32> = root
        .pid
        .filter(|p| sys.process(Pid::from_u32(*p)).is_some())
        .into_iter()
        .collect();
    if let Some(name) = &root.container {
        for (pid, p) in sys.processes() {
            if p.name() == "conmon" && names_container(p.cmd(), name) {
                out.push(pid.as_u32());
            }
        }
    }
    out
}

/// True when conmon's command line names the container `name` (`-n NAME`, `--name NAME`
/// or `--name=NAME`).
fn names_container(cmd: &[std::ffi::OsString], name: &str) -> bool {
    cmd.windows(2)
        .any(|w| (w[0] == "-n" || w[0] == "--name") && w[1] == name)
        || cmd.iter().any(|a| a == format!("--name={name}").as_str())
}

/// Every pid under `starts` (included), each once.
fn tree(children: &HashMap<u32, Vec<u32>>, starts: &[u32]) -> Vec<u32> {
    let mut seen: HashSet<u32> = HashSet::new();
    let mut todo: Vec<u32> = starts.to_vec();
    let mut out = Vec::new();
    while let Some(pid) = todo.pop() {
        if !seen.insert(pid) {
            continue;
        }
        out.push(pid);
        todo.extend(children.get(&pid).into_iter().flatten().copied());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_walks_descendants_once() {
        let children = HashMap::from([(1, vec![2, 3]), (2, vec![4]), (4, vec![2]), (9, vec![10])]);
        let mut t = tree(&children, &[1, 2]);
        t.sort();
        assert_eq!(t, vec![1, 2, 3, 4]);
    }

    #[test]
    fn conmon_command_line_names_the_container() {
        let cmd = |s: &str| -> Vec<std::ffi::OsString> { s.split(' ').map(Into::into).collect() };
        assert!(names_container(
            &cmd("conmon -c abc -n t-db --exit-dir /x"),
            "t-db"
        ));
        assert!(names_container(&cmd("conmon --name=t-db"), "t-db"));
        assert!(!names_container(&cmd("conmon -n t-db2"), "t-db"));
        assert!(!names_container(&cmd("conmon -c t-db"), "t-db"));
    }

    #[test]
    fn samples_a_child_tree_with_memory_and_growing_cpu() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let roots = [Root {
            unit: "busy".into(),
            pid: Some(child.id()),
            container: None,
        }];
        let mut s = Sampler::new();
        let first = s.sample(&roots)["busy"].clone();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let second = s.sample(&roots)["busy"].clone();
        let _ = child.kill();
        let _ = child.wait();
        assert!(first.memory_bytes.unwrap() > 0);
        assert!(first.cpu_percent.is_none());
        assert!(
            second.cpu_seconds > first.cpu_seconds,
            "{first:?} {second:?}"
        );
        assert!(second.cpu_percent.unwrap() > 0.0);
        // Gone: the counter stays, memory and percent go.
        let third = s.sample(&roots)["busy"].clone();
        assert_eq!(third.memory_bytes, None);
        assert_eq!(third.cpu_seconds, second.cpu_seconds);
    }
}

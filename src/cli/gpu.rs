//! `prometheus-stack gpu [--json]`: GPU memory per card and per unit, from the daemon.
//! Without a daemon it reads NVML itself (cards only: units need the daemon's pids).

use super::units::{block_on, socket};
use super::Ctx;
use crate::control::{Client, ClientError};
use crate::gpu::{human_bytes, Availability, GpuSnapshot, GpuSource, NvmlSource};
use std::fmt::Write;
use std::process::ExitCode;

/// `gpu [--json]`.
pub fn gpu(ctx: &Ctx, json: bool) -> anyhow::Result<ExitCode> {
    let client = Client::new(socket(ctx)?);
    let snap = match block_on(client.get_json("/v1/gpu"))? {
        Ok(v) => serde_json::from_value::<GpuSnapshot>(v).map_err(|e| {
            anyhow::anyhow!("the daemon's /v1/gpu answer is not a GPU snapshot: {e}")
        })?,
        Err(e @ ClientError::NoDaemon(_)) => {
            eprintln!("{e}\nreading the GPUs directly: no per-unit figures without the daemon");
            local_reading()
        }
        Err(e) => {
            eprintln!("prometheus-stack: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&snap)?);
    } else {
        print!("{}", render_table(&snap));
    }
    Ok(ExitCode::SUCCESS)
}

/// One NVML reading taken by this process.
fn local_reading() -> GpuSnapshot {
    let reading = NvmlSource::open().and_then(|mut s| s.read());
    match reading {
        Ok(r) => {
            let mut s = GpuSnapshot {
                availability: Availability::Available,
                gpus: r.gpus,
                warnings: r.problems,
                ..Default::default()
            };
            for g in &s.gpus {
                for e in &g.errors {
                    s.warnings.push(format!("GPU {}: {e}", g.index));
                }
            }
            s
        }
        Err(e) => GpuSnapshot::with_availability(Availability::Unavailable(e.to_string())),
    }
}

/// Lines `status` prints under its table: each unit's GPU memory and the GPU warnings.
pub fn status_footer(s: &GpuSnapshot) -> String {
    let mut out = String::new();
    if let Some(line) = s.unavailable_line() {
        let _ = writeln!(out, "\n{line}");
        return out;
    }
    if !s.is_available() {
        return out;
    }
    let units: Vec<String> = s
        .units
        .iter()
        .map(|u| match u.max_used {
            Some(m) => format!(
                "{} {} (max_used {})",
                u.unit,
                human_bytes(u.used_bytes),
                human_bytes(m)
            ),
            None => format!("{} {}", u.unit, human_bytes(u.used_bytes)),
        })
        .collect();
    out.push('\n');
    if units.is_empty() {
        out.push_str("GPU memory by unit: none\n");
    } else {
        let _ = writeln!(out, "GPU memory by unit: {}", units.join(", "));
    }
    for w in &s.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// The table `prometheus-stack gpu` prints.
pub fn render_table(s: &GpuSnapshot) -> String {
    let mut out = String::new();
    match &s.availability {
        Availability::Disabled => {
            out.push_str("GPU monitoring off ([gpu].enabled = \"off\")\n");
            return out;
        }
        Availability::Starting => {
            out.push_str("GPU monitoring starting: no reading yet\n");
            return out;
        }
        Availability::Unavailable(why) => {
            let _ = writeln!(out, "GPU monitoring unavailable: {why}");
            return out;
        }
        Availability::Available => {}
    }
    out.push_str(&card_table(s));
    if !s.units.is_empty() {
        out.push('\n');
        out.push_str(&unit_table(s));
    }
    let strays = strays(s);
    if !strays.is_empty() {
        out.push_str("\nGPU processes of no unit:\n");
        for l in strays {
            out.push_str(&l);
            out.push('\n');
        }
    }
    if !s.warnings.is_empty() {
        out.push('\n');
        for w in &s.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
    }
    out
}

/// One row per card.
fn card_table(s: &GpuSnapshot) -> String {
    let opt = |v: Option<u32>, unit: &str| v.map_or("-".into(), |v| format!("{v}{unit}"));
    let header = [
        "GPU", "NAME", "USED", "TOTAL", "FREE", "RESERVED", "UTIL", "TEMP", "POWER", "UUID",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    for g in &s.gpus {
        rows.push(vec![
            g.index.to_string(),
            g.name.clone(),
            format!("{} ({:.0}%)", human_bytes(g.memory_used), g.used_percent()),
            human_bytes(g.memory_total),
            human_bytes(g.memory_free),
            human_bytes(g.memory_reserved),
            opt(g.utilization_gpu, "%"),
            opt(g.temperature_c, "C"),
            g.power_mw
                .map_or("-".into(), |mw| format!("{:.1}W", f64::from(mw) / 1000.0)),
            g.uuid.clone(),
        ]);
    }
    columns(&rows)
}

/// One row per unit with GPU memory or a GPU policy.
fn unit_table(s: &GpuSnapshot) -> String {
    let header = [
        "UNIT",
        "GPU MEMORY",
        "PER GPU",
        "PIDS",
        "MIN FREE",
        "MAX USED",
        "POLICY RESTARTS",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "-".to_string()
        } else {
            items.join(",")
        }
    };
    let dash = |v: Option<u64>| v.map_or("-".into(), human_bytes);
    for u in &s.units {
        let per_gpu = u
            .per_gpu
            .iter()
            .map(|(i, b)| format!("{i}:{}", human_bytes(*b)));
        rows.push(vec![
            u.unit.clone(),
            human_bytes(u.used_bytes),
            list(per_gpu.collect()),
            list(u.pids.iter().map(u32::to_string).collect()),
            dash(u.min_free),
            dash(u.max_used),
            u.policy_restarts.to_string(),
        ]);
    }
    columns(&rows)
}

/// GPU processes that belong to no unit, one line each.
fn strays(s: &GpuSnapshot) -> Vec<String> {
    s.gpus
        .iter()
        .flat_map(|g| {
            g.processes.iter().filter(|p| p.unit.is_none()).map(|p| {
                format!(
                    "  GPU {} pid {} {}",
                    g.index,
                    p.pid,
                    p.used_bytes.map_or("(size unknown)".into(), human_bytes)
                )
            })
        })
        .collect()
}

/// Left-aligned columns, two spaces apart.
fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{GpuProcess, GpuReading, UnitGpu};

    #[test]
    fn table_shows_cards_units_strays_and_warnings() {
        let s = GpuSnapshot {
            availability: Availability::Available,
            taken_at_ms: 1,
            gpus: vec![GpuReading {
                index: 0,
                name: "NVIDIA H100".into(),
                uuid: "GPU-1".into(),
                memory_total: 80 << 30,
                memory_used: 20 << 30,
                memory_free: 60 << 30,
                memory_reserved: 256 << 20,
                utilization_gpu: Some(37),
                utilization_memory: Some(3),
                temperature_c: None,
                power_mw: Some(123_456),
                processes: vec![
                    GpuProcess {
                        pid: 10,
                        used_bytes: Some(12 << 30),
                        unit: Some("ollama".into()),
                    },
                    GpuProcess {
                        pid: 11,
                        used_bytes: Some(1 << 30),
                        unit: None,
                    },
                ],
                errors: vec![],
            }],
            units: vec![UnitGpu {
                unit: "ollama".into(),
                used_bytes: 12 << 30,
                per_gpu: vec![(0, 12 << 30)],
                pids: vec![10],
                max_used: Some(60 << 30),
                min_free: None,
                policy_restarts: 2,
            }],
            warnings: vec!["GPU 0: hot".into()],
        };
        let t = render_table(&s);
        assert!(t.contains("0    NVIDIA H100  20 GiB (25%)  80 GiB  60 GiB  256 MiB   37%   -     123.5W  GPU-1"), "{t}");
        assert!(
            t.contains("ollama  12 GiB      0:12 GiB  10    -         60 GiB    2"),
            "{t}"
        );
        assert!(t.contains("  GPU 0 pid 11 1 GiB"), "{t}");
        assert!(t.contains("warning: GPU 0: hot"), "{t}");
    }
}

//! NVML through nvml-wrapper, opened at run time: the binary starts and works on machines
//! without `libnvidia-ml.so.1`. `GpuSource` is the seam the poller reads through.

use super::snapshot::{GpuProcess, GpuReading};
use super::GpuError;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;
use std::ffi::OsStr;

/// Library names tried in order: the versioned name every driver install ships, then the
/// unversioned one that only the dev package provides.
const LIB_NAMES: [&str; 2] = ["libnvidia-ml.so.1", "libnvidia-ml.so"];

/// One pass over every GPU.
#[derive(Debug, Clone, Default)]
pub struct SourceReading {
    pub gpus: Vec<GpuReading>,
    /// GPUs that could not be read at all (lost, fell off the bus), one line each.
    pub problems: Vec<String>,
}

/// Something that reads GPUs; NVML in production. Called only from the poller's own thread.
pub trait GpuSource: Send {
    /// Reads every GPU once; Err when nothing can be read (the driver went away).
    fn read(&mut self) -> Result<SourceReading, GpuError>;
    /// One line naming the source, for the startup log ("NVML, driver 550.54.15").
    fn describe(&self) -> String;
}

/// The real NVML library.
pub struct NvmlSource {
    nvml: Nvml,
    driver: Option<String>,
}

impl NvmlSource {
    /// Loads the system's library and initializes NVML; the error is the operator's one line.
    pub fn open() -> Result<Self, GpuError> {
        Self::open_first(LIB_NAMES.iter().map(OsStr::new))
    }

    /// Loads NVML from this file (tests load a fake library this way).
    pub fn open_path(path: &std::path::Path) -> Result<Self, GpuError> {
        Self::open_first(std::iter::once(path.as_os_str()))
    }

    fn open_first<'a>(names: impl Iterator<Item = &'a OsStr>) -> Result<Self, GpuError> {
        let mut first_err = None;
        for name in names {
            match Nvml::builder().lib_path(name).init() {
                Ok(nvml) => {
                    let driver = nvml.sys_driver_version().ok();
                    return Ok(NvmlSource { nvml, driver });
                }
                // Only a missing file is worth trying the next name for.
                Err(NvmlError::LibloadingError(e)) => {
                    first_err.get_or_insert_with(|| GpuError::Library(e.to_string()));
                }
                Err(e) => return Err(init_error(e)),
            }
        }
        Err(first_err.unwrap_or_else(|| GpuError::Library("no NVML library".into())))
    }
}

fn init_error(e: NvmlError) -> GpuError {
    match e {
        NvmlError::DriverNotLoaded => {
            GpuError::Driver("the NVIDIA kernel driver is not loaded".into())
        }
        NvmlError::NoPermission => GpuError::Driver(
            "no permission to talk to the NVIDIA driver (check /dev/nvidia* access)".into(),
        ),
        other => GpuError::Driver(format!("NVML init failed: {other}")),
    }
}

impl GpuSource for NvmlSource {
    fn read(&mut self) -> Result<SourceReading, GpuError> {
        let count = self
            .nvml
            .device_count()
            .map_err(|e| GpuError::Driver(format!("cannot count GPUs: {e}")))?;
        if count == 0 {
            return Err(GpuError::NoGpu);
        }
        let mut out = SourceReading::default();
        for i in 0..count {
            match read_device(&self.nvml, i) {
                Ok(g) => out.gpus.push(g),
                Err(e) => out.problems.push(format!("GPU {i} cannot be read: {e}")),
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        match &self.driver {
            Some(v) => format!("NVML, driver {v}"),
            None => "NVML".into(),
        }
    }
}

fn read_device(nvml: &Nvml, i: u32) -> Result<GpuReading, NvmlError> {
    let dev = nvml.device_by_index(i)?;
    let mem = dev.memory_info()?;
    let mut errors = Vec::new();
    let index = optional(&mut errors, "index", dev.index()).unwrap_or(i);
    let util = optional(&mut errors, "utilization", dev.utilization_rates());
    let temperature_c = optional(
        &mut errors,
        "temperature",
        dev.temperature(TemperatureSensor::Gpu),
    );
    let power_mw = optional(&mut errors, "power", dev.power_usage());
    let name = dev.name().unwrap_or_else(|e| {
        errors.push(format!("name: {e}"));
        format!("GPU {index}")
    });
    let uuid = dev.uuid().unwrap_or_else(|e| {
        errors.push(format!("uuid: {e}"));
        format!("GPU-index-{index}")
    });
    let processes = match dev.running_compute_processes() {
        Ok(list) => list
            .into_iter()
            .map(|p| GpuProcess {
                pid: p.pid,
                used_bytes: match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => Some(b),
                    UsedGpuMemory::Unavailable => None,
                },
                unit: None,
            })
            .collect(),
        Err(NvmlError::NotSupported) => Vec::new(),
        Err(e) => {
            errors.push(format!("process list: {e}"));
            Vec::new()
        }
    };
    Ok(GpuReading {
        index,
        name,
        uuid,
        memory_total: mem.total,
        memory_used: mem.used,
        memory_free: mem.free,
        memory_reserved: mem.reserved,
        utilization_gpu: util.as_ref().map(|u| u.gpu),
        utilization_memory: util.as_ref().map(|u| u.memory),
        temperature_c,
        power_mw,
        processes,
        errors,
    })
}

/// A reading the card may not support: unsupported is silent, other errors are noted.
fn optional<T>(errors: &mut Vec<String>, what: &str, r: Result<T, NvmlError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(NvmlError::NotSupported) | Err(NvmlError::FailedToLoadSymbol(_)) => None,
        Err(e) => {
            errors.push(format!("{what}: {e}"));
            None
        }
    }
}

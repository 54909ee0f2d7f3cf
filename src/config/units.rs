//! Human-readable durations ("100ms", "2s", "10m") and sizes ("100MiB", "8GiB") used in stack.toml.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The longest duration the config accepts (365 days).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86400);

/// The largest size the config accepts (1 PiB): sizes are added and multiplied later.
pub const MAX_SIZE: u64 = 1 << 50;

/// A duration written as a number and a unit: `ms`, `s`, `m`, `h` (e.g. "250ms", "10s", "2m").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// Shorthand for whole seconds.
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    /// Shorthand for milliseconds.
    pub const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
}

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || {
            format!(
                "invalid duration {s:?}: write a number followed by ms, s, m or h (e.g. \"10s\")"
            )
        };
        let n: f64 = num.parse().map_err(|_| bad())?;
        if !n.is_finite() || n < 0.0 {
            return Err(bad());
        }
        let secs = match unit.trim() {
            "ms" => n / 1000.0,
            "s" => n,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            "d" => n * 86400.0,
            _ => return Err(bad()),
        };
        // Timers add durations to `Instant::now()`, which panics on overflow: a bound far
        // below that keeps every later sum safe, and no timeout of ours needs more.
        if secs > MAX_DURATION.as_secs_f64() {
            return Err(format!(
                "duration {s:?} is too long: at most {} (365 days)",
                Dur(MAX_DURATION)
            ));
        }
        Ok(Dur(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            write!(f, "0s")
        } else if ms % 3_600_000 == 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms % 60_000 == 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A byte size: a plain integer, or a number with B, KB, MB, GB, KiB, MiB, GiB, TiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || {
            format!("invalid size {s:?}: write a number followed by B, KiB, MiB, GiB (or KB, MB, GB), e.g. \"100MiB\"")
        };
        let n: f64 = num.parse().map_err(|_| bad())?;
        if !n.is_finite() || n < 0.0 {
            return Err(bad());
        }
        let mult: f64 = match unit.trim() {
            "" | "B" => 1.0,
            "K" | "KB" | "kB" => 1e3,
            "M" | "MB" => 1e6,
            "G" | "GB" => 1e9,
            "T" | "TB" => 1e12,
            "KiB" | "k" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            "TiB" => 1024.0f64.powi(4),
            _ => return Err(bad()),
        };
        let bytes = (n * mult).round();
        if bytes > MAX_SIZE as f64 {
            return Err(too_large(s));
        }
        Ok(ByteSize(bytes as u64))
    }
}

fn too_large(s: &str) -> String {
    format!("size {s:?} is too large: at most {}", ByteSize(MAX_SIZE))
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (name, size) in UNITS {
            if self.0 >= size && self.0 % size == 0 {
                return write!(f, "{}{name}", self.0 / size);
            }
        }
        for (name, size) in UNITS {
            if self.0 >= size {
                return write!(f, "{:.1}{name}", self.0 as f64 / size as f64);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) if n > MAX_SIZE => Err(serde::de::Error::custom(too_large(&n.to_string()))),
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!("100ms".parse::<Dur>().unwrap(), Dur::millis(100));
        assert_eq!("0s".parse::<Dur>().unwrap(), Dur::secs(0));
        assert_eq!("2m".parse::<Dur>().unwrap(), Dur::secs(120));
        assert_eq!(Dur::secs(120).to_string(), "2m");
        assert!("10x".parse::<Dur>().is_err());
        assert!("s".parse::<Dur>().is_err());
        assert!("10".parse::<Dur>().is_err());
        assert_eq!("365d".parse::<Dur>().unwrap(), Dur(MAX_DURATION));
        let err = "100000000000000000000s".parse::<Dur>().unwrap_err();
        assert!(err.contains("too long: at most 8760h"), "{err}");
        assert!("1e400s".parse::<Dur>().is_err());
    }

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!("100MiB".parse::<ByteSize>().unwrap().0, 100 << 20);
        assert_eq!("1GB".parse::<ByteSize>().unwrap().0, 1_000_000_000);
        assert_eq!(ByteSize(8 << 30).to_string(), "8GiB");
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert_eq!("1024TiB".parse::<ByteSize>().unwrap().0, MAX_SIZE);
        let err = "1025TiB".parse::<ByteSize>().unwrap_err();
        assert!(err.contains("too large: at most 1024TiB"), "{err}");
    }
}

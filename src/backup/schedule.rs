//! `[backup].schedule`: `"daily HH:MM"` (local time), `"hourly"` or `"off"`, and when the
//! next scheduled backup is due.

use crate::config::model::BackupSection;
use crate::config::Issue;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A parsed schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    Off,
    Hourly,
    /// Every day at this local hour and minute.
    Daily {
        hour: u8,
        minute: u8,
    },
}

/// Parses `[backup].schedule`; the error says what is accepted.
pub fn parse(s: &str) -> Result<Schedule, String> {
    let s = s.trim();
    match s {
        "off" => return Ok(Schedule::Off),
        "hourly" => return Ok(Schedule::Hourly),
        _ => {}
    }
    let bad = || {
        format!("{s:?} is not a schedule; write \"daily HH:MM\" (local time, e.g. \"daily 03:30\"), \"hourly\" or \"off\"")
    };
    let hm = s.strip_prefix("daily ").ok_or_else(bad)?.trim();
    let (h, m) = hm.split_once(':').ok_or_else(bad)?;
    let hour: u8 = h.parse().map_err(|_| bad())?;
    let minute: u8 = m.parse().map_err(|_| bad())?;
    if hour > 23 || minute > 59 || m.len() != 2 {
        return Err(bad());
    }
    Ok(Schedule::Daily { hour, minute })
}

/// Config issues of `[backup]`, keyed like the file.
pub fn check(b: &BackupSection, issues: &mut Vec<Issue>) {
    if let Err(e) = parse(&b.schedule) {
        issues.push(Issue::new("backup.schedule", e));
    }
    if b.keep == 0 {
        issues.push(Issue::new(
            "backup.keep",
            "must be at least 1 (the newest backup is always kept)",
        ));
    }
    if let Some(d) = &b.dir {
        if !d.is_absolute() {
            issues.push(Issue::new(
                "backup.dir",
                "must be an absolute path (backups outlive the working directory)",
            ));
        }
    }
}

/// The first due time strictly after `now`; None when off.
pub fn next_after(s: Schedule, now: SystemTime) -> Option<SystemTime> {
    let secs = now.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
    match s {
        Schedule::Off => None,
        Schedule::Hourly => {
            Some(UNIX_EPOCH + Duration::from_secs(((secs / 3600 + 1) * 3600) as u64))
        }
        Schedule::Daily { hour, minute } => {
            let today = local_at(secs, hour, minute, 0)?;
            let t = if today > secs {
                today
            } else {
                local_at(secs, hour, minute, 1)?
            };
            Some(UNIX_EPOCH + Duration::from_secs(t as u64))
        }
    }
}

/// Unix time of HH:MM local time on the day of `secs` plus `days` (mktime: DST-aware).
fn local_at(secs: i64, hour: u8, minute: u8, days: i32) -> Option<i64> {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: tm is plain data; localtime_r writes it fully or returns null (checked).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals of the right types.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return None;
    }
    tm.tm_hour = hour as i32;
    tm.tm_min = minute as i32;
    tm.tm_sec = 0;
    tm.tm_mday += days;
    tm.tm_isdst = -1;
    // SAFETY: tm is a valid, initialized struct tm; mktime normalizes it in place.
    let r = unsafe { libc::mktime(&mut tm) };
    (r != -1).then_some(r as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_or_say_what_is_accepted() {
        assert_eq!(parse("off"), Ok(Schedule::Off));
        assert_eq!(parse("hourly"), Ok(Schedule::Hourly));
        assert_eq!(
            parse("daily 03:30"),
            Ok(Schedule::Daily {
                hour: 3,
                minute: 30
            })
        );
        for bad in ["daily 24:00", "daily 3:5", "weekly", "daily 03:60", ""] {
            assert!(parse(bad).unwrap_err().contains("daily HH:MM"), "{bad}");
        }
    }

    #[test]
    fn next_due_is_strictly_later_and_within_a_period() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_123);
        let h = next_after(Schedule::Hourly, now).unwrap();
        assert!(h > now && h.duration_since(now).unwrap() <= Duration::from_secs(3600));
        assert_eq!(h.duration_since(UNIX_EPOCH).unwrap().as_secs() % 3600, 0);
        let d = next_after(
            Schedule::Daily {
                hour: 3,
                minute: 30,
            },
            now,
        )
        .unwrap();
        let gap = d.duration_since(now).unwrap();
        assert!(
            gap > Duration::ZERO && gap <= Duration::from_secs(25 * 3600),
            "{gap:?}"
        );
        assert_eq!(next_after(Schedule::Off, now), None);
    }
}

//! Timestamps for humans: local time with its UTC offset (each timestamp
//! in the offset its own date had, so a message from the other side of a
//! daylight-saving change shows its own), or UTC with `--utc`.

use std::sync::OnceLock;

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The zone timestamps are shown in; set once at start by [`show_in_utc`].
static ZONE: OnceLock<TimeZone> = OnceLock::new();

/// Shows timestamps in UTC (`--utc`) rather than the system's time zone
/// (`TZ`, else `/etc/localtime`). Only the first call counts.
pub fn show_in_utc(utc: bool) {
    let _ = ZONE.set(if utc { TimeZone::UTC } else { system_zone() });
}

/// The system's time zone; UTC when it cannot be read.
fn system_zone() -> TimeZone {
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS +HH:MM` in the chosen zone;
/// `never` for 0.
pub fn format_ms(ms: u64) -> String {
    format_ms_in(ms, ZONE.get_or_init(system_zone))
}

/// [`format_ms`] in `zone`.
pub fn format_ms_in(ms: u64, zone: &TimeZone) -> String {
    if ms == 0 {
        return "never".to_string();
    }
    let Some(at) = i64::try_from(ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
    else {
        return format!("{ms} ms after 1970");
    };
    at.to_zoned(zone.clone())
        .strftime("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// A duration in milliseconds, compactly: `850ms`, `12s`, `5m3s`, `2h7m`, `3d4h`.
pub fn format_uptime(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0 => format!("{ms}ms"),
        1..60 => format!("{secs}s"),
        60..3600 => format!("{}m{}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d{}h", secs / 86_400, secs / 3600 % 24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let utc = TimeZone::UTC;
        assert_eq!(format_ms_in(0, &utc), "never");
        assert_eq!(format_ms_in(1, &utc), "1970-01-01 00:00:00 +00:00");
        assert_eq!(
            format_ms_in(951_782_400_000, &utc),
            "2000-02-29 00:00:00 +00:00"
        );
        assert_eq!(
            format_ms_in(1_795_423_932_000, &utc),
            "2026-11-23 08:52:12 +00:00"
        );
        assert_eq!(
            format_ms_in(u64::MAX, &utc),
            format!("{} ms after 1970", u64::MAX)
        );
    }

    #[test]
    fn each_date_in_its_own_offset() {
        // Central European time as a POSIX rule: no tz database needed.
        let berlin = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("a valid rule");
        // Winter and summer time on either side of a change.
        assert_eq!(
            format_ms_in(1_795_423_932_000, &berlin),
            "2026-11-23 09:52:12 +01:00"
        );
        assert_eq!(
            format_ms_in(1_784_800_000_000, &berlin),
            "2026-07-23 11:46:40 +02:00"
        );
    }

    #[test]
    fn uptimes() {
        assert_eq!(format_uptime(850), "850ms");
        assert_eq!(format_uptime(12_000), "12s");
        assert_eq!(format_uptime(303_000), "5m3s");
        assert_eq!(format_uptime(7_620_000), "2h7m");
        assert_eq!(format_uptime(273_600_000), "3d4h");
    }
}

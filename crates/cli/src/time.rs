//! Timestamps for humans, in UTC, without pulling in a date crate.

use raftchat_client::calendar::civil_from_days;

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` (UTC); `never` for 0.
pub fn format_ms(ms: u64) -> String {
    if ms == 0 {
        return "never".to_string();
    }
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
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
        assert_eq!(format_ms(0), "never");
        assert_eq!(format_ms(1), "1970-01-01 00:00:00");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(format_ms(1_795_423_932_000), "2026-11-23 08:52:12");
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

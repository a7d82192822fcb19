//! Timestamps for humans, in UTC, without pulling in a date crate.

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

/// Days since 1970-01-01 to a (year, month, day) date in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

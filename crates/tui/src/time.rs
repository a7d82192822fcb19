//! Wall-clock formatting without a time-zone database: the UTC offset is
//! measured once at start-up (and fixed in tests) and passed in.

use raftchat_client::calendar::civil_from_days;

const MS_PER_DAY: i64 = 86_400_000;

/// A calendar day, for day separators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    /// 0 = Monday.
    pub weekday: u32,
}

fn local_ms(unix_ms: u64, utc_offset_secs: i64) -> i64 {
    i64::try_from(unix_ms)
        .unwrap_or(i64::MAX)
        .saturating_add(utc_offset_secs.saturating_mul(1000))
}

/// The local calendar day of `unix_ms`.
pub fn day_of(unix_ms: u64, utc_offset_secs: i64) -> Day {
    let days = local_ms(unix_ms, utc_offset_secs).div_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (3 with Monday = 0).
    let weekday = u32::try_from((days + 3).rem_euclid(7)).unwrap_or(0);
    Day {
        year,
        month,
        day,
        weekday,
    }
}

/// `HH:MM`, local time.
pub fn clock(unix_ms: u64, utc_offset_secs: i64) -> String {
    let ms_of_day = local_ms(unix_ms, utc_offset_secs).rem_euclid(MS_PER_DAY);
    let minutes = ms_of_day / 60_000;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// `Mon 23 Nov 2026`.
pub fn day_label(day: Day) -> String {
    const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = WEEKDAYS.get(day.weekday as usize).unwrap_or(&"?");
    let month = MONTHS
        .get((day.month as usize).saturating_sub(1))
        .unwrap_or(&"?");
    format!("{weekday} {} {month} {}", day.day, day.year)
}

/// "just now", "5 min ago", "3 h ago", "2 d ago": for last-seen times.
pub fn ago(then_ms: u64, now_ms: u64) -> String {
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    match secs {
        0..=59 => "just now".to_string(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_known_instant() {
        // 2026-11-23T09:05:00Z, a Monday.
        let ms = 1_795_424_700_000;
        assert_eq!(clock(ms, 0), "09:05");
        assert_eq!(day_label(day_of(ms, 0)), "Mon 23 Nov 2026");
        assert_eq!(clock(ms, 3600), "10:05");
    }

    #[test]
    fn epoch_is_a_thursday() {
        assert_eq!(day_label(day_of(0, 0)), "Thu 1 Jan 1970");
        assert_eq!(day_label(day_of(0, -3600)), "Wed 31 Dec 1969");
    }
}

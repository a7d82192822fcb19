//! Wall-clock formatting in the user's time zone (jiff): each timestamp in
//! the offset its own date had, so a message from before a daylight-saving
//! change shows the hour it was written, and a long-running client follows
//! the change.

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// A calendar day, for day separators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    /// 0 = Monday.
    pub weekday: u32,
}

/// `unix_ms` in `zone` as (day, hour, minute); the epoch for a timestamp
/// jiff cannot represent.
fn local(unix_ms: u64, zone: &TimeZone) -> (Day, u32, u32) {
    let at = i64::try_from(unix_ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(zone.clone());
    let day = Day {
        year: i64::from(at.year()),
        month: u32::try_from(at.month()).unwrap_or(1),
        day: u32::try_from(at.day()).unwrap_or(1),
        weekday: u32::try_from(at.weekday().to_monday_zero_offset()).unwrap_or(0),
    };
    let hour = u32::try_from(at.hour()).unwrap_or(0);
    let minute = u32::try_from(at.minute()).unwrap_or(0);
    (day, hour, minute)
}

/// The local calendar day of `unix_ms`.
pub fn day_of(unix_ms: u64, zone: &TimeZone) -> Day {
    local(unix_ms, zone).0
}

/// `HH:MM`, local time.
pub fn clock(unix_ms: u64, zone: &TimeZone) -> String {
    let (_, hour, minute) = local(unix_ms, zone);
    format!("{hour:02}:{minute:02}")
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The month's short name (`Nov`).
fn month_name(day: Day) -> &'static str {
    MONTHS
        .get((day.month as usize).saturating_sub(1))
        .unwrap_or(&"?")
}

/// `Mon 23 Nov 2026`.
pub fn day_label(day: Day) -> String {
    const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let weekday = WEEKDAYS.get(day.weekday as usize).unwrap_or(&"?");
    format!("{weekday} {} {} {}", day.day, month_name(day), day.year)
}

/// `23 Nov 09:05`, local time, the day padded (` 3 Dec 23:27`) so that
/// a list of them lines up: for lists that span days.
pub fn date_time(unix_ms: u64, zone: &TimeZone) -> String {
    let (day, hour, minute) = local(unix_ms, zone);
    format!("{:>2} {} {hour:02}:{minute:02}", day.day, month_name(day))
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
        assert_eq!(clock(ms, &TimeZone::UTC), "09:05");
        assert_eq!(day_label(day_of(ms, &TimeZone::UTC)), "Mon 23 Nov 2026");
        assert_eq!(clock(ms, &TimeZone::fixed(jiff::tz::offset(1))), "10:05");
        assert_eq!(date_time(ms, &TimeZone::UTC), "23 Nov 09:05");
        assert_eq!(date_time(0, &TimeZone::UTC), " 1 Jan 00:00");
    }

    #[test]
    fn epoch_is_a_thursday() {
        assert_eq!(day_label(day_of(0, &TimeZone::UTC)), "Thu 1 Jan 1970");
        let west = TimeZone::fixed(jiff::tz::offset(-1));
        assert_eq!(day_label(day_of(0, &west)), "Wed 31 Dec 1969");
    }

    #[test]
    fn each_time_in_its_own_dates_offset() {
        // Central European time as a POSIX rule: no tz database needed.
        let cet = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("a valid rule");
        // 09:05 UTC in November is 10:05 there; 09:46 UTC in July, 11:46.
        assert_eq!(clock(1_795_424_700_000, &cet), "10:05");
        assert_eq!(clock(1_784_800_000_000, &cet), "11:46");
    }
}

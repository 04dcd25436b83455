//! Calendar arithmetic for timestamps (UTC, proleptic Gregorian), without a clock.

/// The civil date (proleptic Gregorian) of a count of days since 1970-01-01, counting eras of
/// 400 years from 0000-03-01.
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The UTC year of Unix seconds.
pub fn year_of(unix_s: u64) -> u64 {
    civil_from_days(unix_s / 86_400).0
}

/// `YYYY-MM-DDTHH:MM:SS`, a fraction and a zone: at most 20 digits of year and 23 more bytes.
pub type DateTimeText = crate::stack_text::StackText<48>;

/// Appends `value` as exactly `width` decimal digits (the lowest ones).
fn push_digits(text: &mut DateTimeText, value: u64, width: u32) {
    let mut divisor = 10u64.pow(width - 1);
    while divisor > 0 {
        text.push(b'0' + (value / divisor % 10) as u8);
        divisor /= 10;
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of Unix seconds, appended (years past 9999 keep their digits).
fn push_date_time(text: &mut DateTimeText, unix_s: u64) {
    let (year, month, day) = civil_from_days(unix_s / 86_400);
    let second_of_day = unix_s % 86_400;
    if year > 9_999 {
        text.push_str(itoa::Buffer::new().format(year));
    } else {
        push_digits(text, year, 4);
    }
    text.push(b'-');
    push_digits(text, month, 2);
    text.push(b'-');
    push_digits(text, day, 2);
    text.push(b'T');
    push_digits(text, second_of_day / 3_600, 2);
    text.push(b':');
    push_digits(text, second_of_day % 3_600 / 60, 2);
    text.push(b':');
    push_digits(text, second_of_day % 60, 2);
}

/// RFC 3339 UTC time of a ledger timestamp (nanoseconds since the Unix epoch), to the
/// microsecond.
pub fn rfc3339(timestamp_nanos: u64) -> String {
    let mut text = DateTimeText::new();
    push_date_time(&mut text, timestamp_nanos / 1_000_000_000);
    text.push(b'.');
    push_digits(&mut text, (timestamp_nanos % 1_000_000_000) / 1_000, 6);
    text.push(b'Z');
    text.as_str().to_owned()
}

/// RFC 3339 UTC time of Unix seconds.
pub fn rfc3339_seconds(unix_s: u64) -> String {
    rfc3339_seconds_text(unix_s).as_str().to_owned()
}

/// The same on the stack, for answers that only serialize it.
pub fn rfc3339_seconds_text(unix_s: u64) -> DateTimeText {
    let mut text = DateTimeText::new();
    // Unix seconds past what nanoseconds in a u64 hold are clamped there, as before.
    push_date_time(&mut text, unix_s.min(u64::MAX / 1_000_000_000));
    text.push(b'Z');
    text
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_shifted = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_shifted + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Parses `YYYY-MM-DD` into the Unix second its day starts at (UTC).
pub fn parse_date(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let part = &text[range];
        part.bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 {
        return None;
    }
    let start = days_from_civil(year, month, day) * 86_400;
    // Reject 2026-02-30 and the like: the date must print back as itself.
    (rfc3339_seconds(start)[..10] == *text).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(rfc3339_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_date("2026-11-22"), Some(1_795_305_600));
        assert_eq!(rfc3339_seconds(1_795_305_600), "2026-11-22T00:00:00Z");
        assert_eq!(
            parse_date("2024-02-29").map(rfc3339_seconds).unwrap(),
            "2024-02-29T00:00:00Z"
        );
        assert_eq!(parse_date("2026-02-29"), None);
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("26-11-22"), None);
    }

    #[test]
    fn times_are_written_digit_by_digit() {
        assert_eq!(rfc3339_seconds(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_seconds(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_seconds(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(rfc3339(5_000), "1970-01-01T00:00:00.000005Z");
        assert_eq!(year_of(1_704_067_199), 2023);
        assert_eq!(year_of(1_704_067_200), 2024);
        // Every day of four centuries round-trips through the civil date.
        for days in (0..146_097u64).step_by(7) {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
    }
}

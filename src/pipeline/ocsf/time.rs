//! DAS `logTime` / `startTime` / `endTime` text to epoch milliseconds, for OCSF's `time`.
//!
//! The engines write `2019-10-30 00:39:49.990579+00` (PostgreSQL, MySQL), `2021-01-15
//! 00:15:36.233787` without a zone (Oracle, taken as UTC) and `2022-10-06 21:24:59.9422268+00`
//! (SQL Server, seven fractional digits); `T` instead of the space, `Z`, and `+hh:mm` / `+hhmm`
//! offsets are accepted too. Never reads the clock, never panics.

/// A parsed DAS time: milliseconds since the Unix epoch (UTC) and the offset it was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedTime {
    /// Milliseconds since 1970-01-01T00:00:00Z; fractions below a millisecond are cut off.
    pub epoch_ms: i64,
    /// The offset the text was written in, in minutes east of UTC (0 when it had none).
    pub offset_minutes: i64,
}

/// Parses a DAS time, or `None` if it is not one of the shapes above.
pub fn parse(text: &str) -> Option<ParsedTime> {
    let text = text.trim();
    let (date, rest) = (text.get(..10)?, text.get(10..)?);
    let rest = rest.strip_prefix([' ', 'T'])?;
    let (year, month, day) = (
        number(date.get(..4)?)?,
        number(date.get(5..7)?)?,
        number(date.get(8..10)?)?,
    );
    if date.as_bytes().get(4) != Some(&b'-') || date.as_bytes().get(7) != Some(&b'-') {
        return None;
    }
    let (clock, zone) = split_zone(rest);
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut parts = hms.split(':');
    let (hour, minute, second) = (number(parts.next()?)?, number(parts.next()?)?, number(parts.next()?)?);
    if parts.next().is_some() || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let millis = if fraction.is_empty() {
        0
    } else {
        let digits = fraction.get(..fraction.len().min(3))?;
        number(digits)? * 10_i64.pow(3 - u32::try_from(digits.len()).ok()?)
    };
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let offset_minutes = offset(zone)?;
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(ParsedTime {
        epoch_ms: (seconds - offset_minutes * 60) * 1_000 + millis,
        offset_minutes,
    })
}

/// Splits `hh:mm:ss.ffff+00` into the clock and the zone (`+00`, `Z`, or empty).
fn split_zone(rest: &str) -> (&str, &str) {
    match rest.find(['+', '-', 'Z', 'z']) {
        Some(at) => (rest.get(..at).unwrap_or(rest), rest.get(at..).unwrap_or("")),
        None => (rest, ""),
    }
}

/// `+hh`, `+hhmm`, `+hh:mm`, `-…`, `Z` or nothing, in minutes east of UTC.
fn offset(zone: &str) -> Option<i64> {
    if zone.is_empty() || zone.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let digits: String = zone.get(1..)?.chars().filter(|c| *c != ':').collect();
    let (hours, minutes) = match digits.len() {
        2 => (number(&digits)?, 0),
        4 => (number(digits.get(..2)?)?, number(digits.get(2..)?)?),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 60 + minutes))
}

fn number(digits: &str) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`, the
/// inverse of `utc::UtcDateTime::from_unix_micros`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::utc::UtcDateTime;

    fn ms(text: &str) -> Option<i64> {
        parse(text).map(|t| t.epoch_ms)
    }

    #[test]
    fn every_engines_log_time_parses_to_epoch_milliseconds() {
        assert_eq!(ms("2019-10-30 00:39:49.990579+00"), Some(1_572_395_989_990));
        assert_eq!(ms("2021-01-15 00:15:36.233787"), Some(1_610_669_736_233));
        assert_eq!(ms("2022-10-06 21:24:59.9422268+00"), Some(1_665_091_499_942));
        assert_eq!(ms("2022-10-06T21:24:59Z"), Some(1_665_091_499_000));
        assert_eq!(ms("1970-01-01 00:00:00.5"), Some(500));
    }

    #[test]
    fn offsets_are_subtracted_and_remembered() {
        let t = parse("2019-10-30 02:39:49.990+02:00").unwrap();
        assert_eq!((t.epoch_ms, t.offset_minutes), (1_572_395_989_990, 120));
        assert_eq!(ms("2019-10-29 19:09:49.990-0530"), Some(1_572_395_989_990));
        assert_eq!(parse("2019-10-30 00:39:49+00").unwrap().offset_minutes, 0);
    }

    #[test]
    fn anything_else_is_not_a_time() {
        for bad in [
            "",
            "yesterday",
            "2019-10-30",
            "2019-13-01 00:00:00",
            "2019-02-29 00:00:00",
            "2019-10-30 24:00:00",
            "2019-10-30 00:00:00.12x",
            "2019-10-30 00:00:00+5",
            "2019/10/30 00:00:00",
            "hmac-sha256:0123456789",
            "2019-10-30 00:00",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_from_civil_inverts_the_archive_calendar() {
        for micros in [
            0_i64,
            951_782_400_000_000,
            1_795_314_600_123_456,
            -86_400_000_000,
            4_102_444_800_000_000,
        ] {
            let t = UtcDateTime::from_unix_micros(micros);
            let days = days_from_civil(t.year, i64::from(t.month), i64::from(t.day));
            assert_eq!(days, micros.div_euclid(86_400_000_000), "{t:?}");
        }
    }
}

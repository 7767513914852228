//! UTC calendar arithmetic for Unix timestamps: enough to name archive partitions and format log
//! times. No time zones, no clock reads.

/// A UTC calendar date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UtcDateTime {
    /// Year, e.g. 2026.
    pub year: i64,
    /// Month, 1–12.
    pub month: u32,
    /// Day of the month, 1–31.
    pub day: u32,
    /// Hour, 0–23.
    pub hour: u32,
    /// Minute, 0–59.
    pub minute: u32,
    /// Second, 0–59.
    pub second: u32,
    /// Microseconds, 0–999,999.
    pub micros: u32,
}

impl UtcDateTime {
    /// The UTC date and time of a Unix time in microseconds (negative values are before 1970).
    pub fn from_unix_micros(micros: i64) -> Self {
        let secs = micros.div_euclid(1_000_000);
        let sub = micros.rem_euclid(1_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self {
            year,
            month,
            day,
            hour: rem / 3_600,
            minute: rem % 3_600 / 60,
            second: rem % 60,
            micros: sub,
        }
    }

    /// The UTC date and time of a Unix time in (fractional) seconds, as Kinesis reports arrival times.
    pub fn from_unix_seconds(seconds: f64) -> Self {
        // Saturating float-to-int conversion: NaN gives 0, out-of-range values clamp.
        Self::from_unix_micros((seconds * 1e6).round() as i64)
    }

    /// `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `HH:MM:SS`.
    pub fn time(&self) -> String {
        format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_known_instants() {
        let t = UtcDateTime::from_unix_micros(1_795_314_600_123_456);
        assert_eq!(
            (t.date(), t.time(), t.micros),
            ("2026-11-22".into(), "02:30:00".into(), 123_456)
        );
        assert_eq!(UtcDateTime::from_unix_micros(0).date(), "1970-01-01");
        assert_eq!(UtcDateTime::from_unix_micros(951_782_400_000_000).date(), "2000-02-29");
        assert_eq!(UtcDateTime::from_unix_micros(-1).time(), "23:59:59");
    }

    #[test]
    fn kinesis_fractional_seconds_round_to_microseconds() {
        let t = UtcDateTime::from_unix_seconds(1_545_084_650.987);
        assert_eq!(
            (t.date(), t.time(), t.micros),
            ("2018-12-17".into(), "22:10:50".into(), 987_000)
        );
        assert_eq!(UtcDateTime::from_unix_seconds(f64::NAN).date(), "1970-01-01");
    }
}

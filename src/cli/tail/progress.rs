//! What `das tail` tells the person watching: a progress line on stderr (at most once a second, only
//! on a terminal), the closing summary, and the exit code (1 when any record failed). It never
//! writes to stdout, which carries the events.

use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Counts for the progress line and the exit code.
pub(super) struct Progress {
    /// Records read.
    pub(super) records: u64,
    /// Events printed.
    pub(super) events: u64,
    /// Records that could not be decoded.
    pub(super) failed: u64,
    /// How far the last read was behind the stream's tip.
    pub(super) lag_millis: i64,
    interactive: bool,
    /// When the last progress line was drawn, and the record and event counts then.
    last_report: (Instant, u64, u64),
}

impl Progress {
    /// Zero counts; the progress line is drawn only when `interactive`.
    pub(super) fn new(interactive: bool) -> Self {
        Self {
            records: 0,
            events: 0,
            failed: 0,
            lag_millis: 0,
            interactive,
            last_report: (Instant::now(), 0, 0),
        }
    }

    /// How many more events may be printed under `limit`.
    pub(super) fn remaining(&self, limit: Option<u64>) -> u64 {
        limit.map_or(u64::MAX, |l| l.saturating_sub(self.events))
    }

    /// Redraws the progress line if a second has passed since the last one.
    pub(super) fn report(&mut self) {
        let elapsed = self.last_report.0.elapsed();
        if !self.interactive || elapsed < Duration::from_secs(1) {
            return;
        }
        eprint!("\r\x1b[2K{}", self.rates(elapsed.as_secs_f64()));
        self.last_report = (Instant::now(), self.records, self.events);
    }

    fn rates(&self, seconds: f64) -> String {
        format!(
            "{:.0} records/s, {:.0} events/s, {:.1} s behind the tip ",
            (self.records - self.last_report.1) as f64 / seconds,
            (self.events - self.last_report.2) as f64 / seconds,
            self.lag_millis as f64 / 1000.0
        )
    }

    /// Ends the progress line, prints the summary and gives the exit code.
    pub(super) fn finish(&self) -> ExitCode {
        if self.interactive {
            eprintln!();
        }
        eprintln!("{}", self.summary());
        self.exit_code()
    }

    fn summary(&self) -> String {
        format!(
            "das tail: {} records, {} events printed, {} records failed",
            self.records, self.events, self.failed
        )
    }

    fn exit_code(&self) -> ExitCode {
        if self.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_exits_1_when_any_record_failed_and_0_otherwise() {
        let mut progress = Progress::new(false);
        progress.records = 5;
        assert_eq!(progress.exit_code(), ExitCode::SUCCESS);
        progress.failed = 1;
        assert_eq!(progress.exit_code(), ExitCode::from(1));
        assert_eq!(
            progress.summary(),
            "das tail: 5 records, 0 events printed, 1 records failed"
        );
    }

    #[test]
    fn the_limit_counts_down_with_the_events_printed() {
        let mut progress = Progress::new(false);
        assert_eq!(progress.remaining(None), u64::MAX);
        progress.events = 3;
        assert_eq!(progress.remaining(Some(5)), 2);
        assert_eq!(progress.remaining(Some(2)), 0);
    }

    #[test]
    fn the_progress_line_shows_rates_since_the_last_one_and_the_lag() {
        let mut progress = Progress::new(false);
        (progress.records, progress.events, progress.lag_millis) = (20, 60, 1500);
        assert_eq!(progress.rates(2.0), "10 records/s, 30 events/s, 1.5 s behind the tip ");
    }
}

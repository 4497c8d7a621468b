//! UTC timestamps in RD-Agent's log-dir format (`%Y-%m-%d_%H-%M-%S-%f`) and ISO 8601, from `SystemTime`,
//! without a date crate. Never reads the local time zone: RD-Agent names its log dirs in UTC.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC instant split into calendar fields.
/// Fields in order of significance, so the derived order is chronological.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
}

impl Utc {
    pub fn from_system(t: SystemTime) -> Utc {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Utc::from_unix(d.as_secs() as i64, d.subsec_micros())
    }

    pub fn now() -> Utc {
        Utc::from_system(SystemTime::now())
    }

    pub fn from_unix(secs: i64, micros: u32) -> Utc {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Utc {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            micros,
        }
    }

    /// `2026-01-14_16-14-52-886218`, the name RD-Agent gives a log dir.
    pub fn log_dir_name(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}_{:02}-{:02}-{:02}-{:06}",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )
    }

    /// The instant a log-dir name starts with (`log_dir_name`'s format; anything may follow, as RD-Agent's
    /// names sometimes carry a suffix). `None` for a name that does not start with that format.
    pub fn parse_log_dir_name(name: &str) -> Option<Utc> {
        let b = name.as_bytes();
        if b.len() < 26 {
            return None;
        }
        let seps = [
            (4, b'-'),
            (7, b'-'),
            (10, b'_'),
            (13, b'-'),
            (16, b'-'),
            (19, b'-'),
        ];
        if seps.iter().any(|(i, c)| b[*i] != *c) {
            return None;
        }
        let field = |from: usize, to: usize| -> Option<u32> {
            let s = name.get(from..to)?;
            s.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| s.parse().ok())?
        };
        Some(Utc {
            year: i64::from(field(0, 4)?),
            month: field(5, 7)?,
            day: field(8, 10)?,
            hour: field(11, 13)?,
            minute: field(14, 16)?,
            second: field(17, 19)?,
            micros: field(20, 26)?,
        })
    }

    /// The instant `iso` wrote (`2026-01-14T16:14:52.886218Z`).
    pub fn parse_iso(text: &str) -> Option<Utc> {
        let b = text.as_bytes();
        if b.len() != 27
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[19] != b'.'
            || b[26] != b'Z'
        {
            return None;
        }
        let name: String = text[..26]
            .chars()
            .map(|c| match c {
                'T' => '_',
                ':' | '.' => '-',
                other => other,
            })
            .collect();
        Utc::parse_log_dir_name(&name)
    }

    /// `2026-01-14T16:14:52.886218Z`.
    pub fn iso(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )
    }
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields of the instant a log-dir name starts with.
    fn run_timestamp(name: &str) -> Option<[u32; 7]> {
        Utc::parse_log_dir_name(name).map(|u| {
            [
                u.year as u32,
                u.month,
                u.day,
                u.hour,
                u.minute,
                u.second,
                u.micros,
            ]
        })
    }

    #[test]
    fn parses_run_timestamps() {
        assert_eq!(
            run_timestamp("2026-01-14_16-14-52-886218"),
            Some([2026, 1, 14, 16, 14, 52, 886218])
        );
        assert_eq!(
            run_timestamp("2026-01-14_16-14-52-886218-extra"),
            Some([2026, 1, 14, 16, 14, 52, 886218])
        );
        assert_eq!(run_timestamp("2026-01-14 16-14-52-886218"), None);
        assert_eq!(run_timestamp("2026-01-14_16-14-52"), None);
        assert_eq!(run_timestamp("my-run"), None);
        assert_eq!(run_timestamp("2026-0a-14_16-14-52-886218"), None);
        assert_eq!(run_timestamp("2026-01-14_16-14-52-88621\u{e9}"), None);
    }

    #[test]
    fn a_written_log_dir_name_parses_back() {
        let t = Utc::from_unix(1_768_407_292, 886_218);
        assert_eq!(Utc::parse_log_dir_name(&t.log_dir_name()), Some(t));
        assert!(Utc::from_unix(1, 0) > Utc::from_unix(0, 999_999));
    }

    #[test]
    fn formats_known_instants() {
        // 2026-01-14 16:14:52.886218 UTC, the example log dir of run_factor_then_model_with_log.sh's design.
        let t = Utc::from_unix(1_768_407_292, 886_218);
        assert_eq!(t.log_dir_name(), "2026-01-14_16-14-52-886218");
        assert_eq!(t.iso(), "2026-01-14T16:14:52.886218Z");
        assert_eq!(
            Utc::from_unix(0, 0).log_dir_name(),
            "1970-01-01_00-00-00-000000"
        );
        // Leap day and end of a leap year.
        assert_eq!(
            Utc::from_unix(951_782_400, 7).iso(),
            "2000-02-29T00:00:00.000007Z"
        );
        assert_eq!(
            Utc::from_unix(1_735_689_599, 0).iso(),
            "2024-12-31T23:59:59.000000Z"
        );
    }

    #[test]
    fn names_sort_in_time_order() {
        let a = Utc::from_unix(1_768_407_292, 999_999).log_dir_name();
        let b = Utc::from_unix(1_768_407_293, 0).log_dir_name();
        assert!(a < b);
    }
}

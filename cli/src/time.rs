//! UTC timestamps: Unix seconds to RFC 3339 and calendar days, and the
//! timestamps a person types on the command line back to Unix seconds.
//!
//! Events carry whole seconds since the Unix epoch, always UTC. The
//! conversions here are the proleptic Gregorian calendar's, done by hand
//! (days from the civil date and back), so the tool needs no date crate.

use std::fmt;

/// Seconds in a day.
const DAY: u64 = 86_400;

/// A calendar date in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// The year, 1970 or later.
    pub year: u64,
    /// The month, 1 to 12.
    pub month: u64,
    /// The day of the month, 1 to 31.
    pub day: u64,
}

impl Date {
    /// The UTC date of `ts`, in Unix seconds.
    pub fn of(ts: u64) -> Date {
        civil_from_days(ts / DAY)
    }
}

impl fmt::Display for Date {
    /// `YYYY-MM-DD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// `ts`, in Unix seconds, as an RFC 3339 UTC timestamp:
/// `2026-12-01T10:00:00Z`.
pub fn rfc3339(ts: u64) -> String {
    let secs = ts % DAY;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        Date::of(ts),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses a timestamp given on the command line into Unix seconds.
///
/// Accepted: Unix seconds (`1764547200`); an RFC 3339 date
/// (`2026-12-01`, midnight UTC); an RFC 3339 date-time in UTC
/// (`2026-12-01T10:00:00Z`), where `T` may be a space, the seconds may
/// be left out or carry a fraction, and the zone may be `Z`, `+00:00` or
/// left out. Events have whole seconds, so a fraction rounds up: the
/// first whole second at or after the instant.
///
/// # Errors
///
/// A message saying what is wrong, for clap to show: not a timestamp, a
/// date or time out of range, a zone other than UTC, a time before 1970.
pub fn parse_timestamp(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("{text:?} is too large for Unix seconds"));
    }
    parse_rfc3339(text).map_err(|why| {
        format!(
            "{text:?} is not a timestamp ({why}); give Unix seconds, a date (2026-12-01) or a \
             UTC date-time (2026-12-01T10:00:00Z)"
        )
    })
}

/// [`parse_timestamp`] for the RFC 3339 forms.
fn parse_rfc3339(text: &str) -> Result<u64, String> {
    let mut cursor = Cursor(text.as_bytes());
    let year = cursor.digits(4, "a four-digit year")?;
    cursor.expect(b'-')?;
    let month = cursor.digits(2, "a two-digit month")?;
    cursor.expect(b'-')?;
    let day = cursor.digits(2, "a two-digit day")?;
    if year < 1970 {
        return Err("events have no timestamps before 1970".to_owned());
    }
    if !(1..=12).contains(&month) {
        return Err(format!("there is no month {month}"));
    }
    if !(1..=days_in_month(year, month)).contains(&day) {
        return Err(format!("{year:04}-{month:02} has no day {day}"));
    }
    let date = days_from_civil(Date { year, month, day }) * DAY;
    if cursor.is_empty() {
        return Ok(date);
    }
    if !matches!(cursor.next(), Some(b'T' | b't' | b' ')) {
        return Err("the date must be followed by T and a time, or nothing".to_owned());
    }
    let hour = cursor.digits(2, "a two-digit hour")?;
    cursor.expect(b':')?;
    let minute = cursor.digits(2, "two-digit minutes")?;
    let mut second = 0;
    let mut fraction = false;
    if cursor.peek() == Some(b':') {
        cursor.next();
        second = cursor.digits(2, "two-digit seconds")?;
        if cursor.peek() == Some(b'.') {
            cursor.next();
            let digits = cursor.take_while(|b| b.is_ascii_digit());
            if digits.is_empty() {
                return Err("a decimal point must be followed by digits".to_owned());
            }
            fraction = digits.iter().any(|&b| b != b'0');
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!(
            "there is no time {hour:02}:{minute:02}:{second:02}"
        ));
    }
    match cursor.0 {
        b"" | b"Z" | b"z" | b"+00:00" | b"-00:00" => {}
        _ => {
            return Err(
                "only UTC is accepted: end the time with Z (or nothing), not another zone"
                    .to_owned(),
            );
        }
    }
    Ok(date + hour * 3600 + minute * 60 + second + u64::from(fraction))
}

/// The bytes of a timestamp still to parse.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    /// Whether everything was parsed.
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The next byte, left in place.
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next byte, taken.
    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    /// The bytes up to the first that `keep` refuses, taken.
    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &[u8] {
        let n = self.0.iter().take_while(|&&b| keep(b)).count();
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        taken
    }

    /// Exactly `n` ASCII digits, as a number; `what` names them in the
    /// error.
    fn digits(&mut self, n: usize, what: &str) -> Result<u64, String> {
        match self.0.get(..n) {
            Some(digits) if digits.iter().all(u8::is_ascii_digit) => {
                self.0 = &self.0[n..];
                Ok(digits
                    .iter()
                    .fold(0, |acc, &d| acc * 10 + u64::from(d - b'0')))
            }
            _ => Err(format!("expected {what}")),
        }
    }

    /// Takes the next byte, which must be `byte`.
    fn expect(&mut self, byte: u8) -> Result<(), String> {
        match self.next() {
            Some(b) if b == byte => Ok(()),
            _ => Err(format!("expected {:?}", char::from(byte))),
        }
    }
}

/// Whether `year` has a 29 February.
fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

/// How many days `month` of `year` has.
fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date from 1970 on (Howard Hinnant's
/// `days_from_civil`, for non-negative results).
fn days_from_civil(date: Date) -> u64 {
    // Years start in March, so that the leap day is the year's last.
    let year = if date.month <= 2 {
        date.year - 1
    } else {
        date.year
    };
    let era = year / 400;
    let year_of_era = year % 400;
    let month_from_march = (date.month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + date.day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> Date {
    let days = days + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    Date { year, month, day }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_764_586_800), "2025-12-01T11:00:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn days_round_trip() {
        for days in (0..200_000).step_by(7) {
            assert_eq!(days_from_civil(civil_from_days(days)), days);
        }
    }

    #[test]
    fn parses_every_accepted_form() {
        let at = 1_764_586_800; // 2025-12-01T11:00:00Z
        for text in [
            "1764586800",
            "2025-12-01T11:00:00Z",
            "2025-12-01t11:00:00z",
            "2025-12-01 11:00:00",
            "2025-12-01T11:00",
            "2025-12-01T11:00:00+00:00",
            "2025-12-01T11:00:00.000Z",
        ] {
            assert_eq!(parse_timestamp(text), Ok(at), "{text}");
        }
        assert_eq!(parse_timestamp("2025-12-01"), Ok(at - 11 * 3600));
        assert_eq!(parse_timestamp("2025-12-01T10:59:59.5Z"), Ok(at));
    }

    #[test]
    fn refuses_what_is_not_a_utc_timestamp() {
        for text in [
            "",
            "yesterday",
            "2025-13-01",
            "2025-02-29",
            "1969-12-31",
            "2025-12-01T24:00:00Z",
            "2025-12-01T10:00:00+01:00",
            "2025-12-01X10:00",
            "2025-12-01T10:00:00.Z",
            "99999999999999999999999",
        ] {
            assert!(parse_timestamp(text).is_err(), "{text}");
        }
        assert_eq!(parse_timestamp("2024-02-29"), Ok(1_709_164_800));
    }
}

//! Japan-time calendar: strict dates, civil date-times in UTC+9, ages and the Japanese era (和暦) form.
//!
//! Written by hand instead of pulling in a date crate because the domain needs very little (proleptic
//! Gregorian dates, one fixed offset, five eras) and every rule here decides whether a certificate is issued,
//! so it must be small enough to read and test completely.

use std::fmt;

use thiserror::Error;

pub use crate::record::Date;

/// Why a date or date-time text was refused. Never carries the text itself (it may be a birth date).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DateError {
    #[error("not in the form YYYY-MM-DD")]
    Format,
    #[error("not a calendar date")]
    Calendar,
    #[error("not an RFC 3339 date-time")]
    DateTimeFormat,
    #[error("time of day out of range")]
    Time,
    #[error("UTC offset out of range")]
    Offset,
}

/// Japan is UTC+9 all year (no daylight saving since 1951).
pub const JST_OFFSET_SECONDS: i64 = 9 * 3600;

pub fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

fn parse_digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
}

impl Date {
    /// A validated date; `None` if the month or day does not exist (e.g. 2023-02-29).
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        ((1..=9999).contains(&year) && (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month))
            .then_some(Date { year, month, day })
    }

    /// Strict `YYYY-MM-DD`: exactly ten ASCII characters, zero-padded, a real calendar date in years 1..=9999.
    pub fn parse(s: &str) -> Result<Date, DateError> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(DateError::Format);
        }
        let (Some(y), Some(m), Some(d)) = (parse_digits(&b[0..4]), parse_digits(&b[5..7]), parse_digits(&b[8..10]))
        else {
            return Err(DateError::Format);
        };
        Date::from_ymd(y as i32, m, d).ok_or(DateError::Calendar)
    }

    /// Days since 1970-01-01 (negative before). Proleptic Gregorian, via the era-of-400-years decomposition.
    pub fn to_days(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// Inverse of [`Date::to_days`].
    pub fn from_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    pub fn add_days(self, n: i64) -> Date {
        Date::from_days(self.to_days() + n)
    }

    /// Age in completed years on `on`. Japanese law (年齢計算ニ関スル法律) adds a year at the end of the day
    /// before the birthday, so on the birthday itself the new age holds; someone born on 29 February is a
    /// year older from 1 March in common years (the end of 28 February).
    pub fn age_on(self, on: Date) -> i32 {
        let mut age = on.year - self.year;
        if (on.month, on.day) < (self.month, self.day) {
            age -= 1;
        }
        age
    }

    /// The Japanese era form, e.g. 令和8年4月1日; `None` before Meiji 1868-10-23 (Gregorian).
    pub fn wareki(self) -> Option<Wareki> {
        let era = *ERAS.iter().rev().find(|e| self >= e.start())?;
        Some(Wareki { era, year: (self.year - era.start().year + 1) as u32, month: self.month, day: self.day })
    }

    /// [`Date::wareki`] as text (元年 for the first year), or the Western form `1868年1月1日` before Meiji.
    pub fn format_wareki(self) -> String {
        match self.wareki() {
            Some(w) => w.to_string(),
            None => format!("{}年{}月{}日", self.year, self.month, self.day),
        }
    }
}

impl fmt::Display for Date {
    /// ISO form `YYYY-MM-DD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The modern eras. A new era starts on its first day; the day before is the last day of the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Era {
    Meiji,
    Taisho,
    Showa,
    Heisei,
    Reiwa,
}

const ERAS: [Era; 5] = [Era::Meiji, Era::Taisho, Era::Showa, Era::Heisei, Era::Reiwa];

impl Era {
    pub fn name(self) -> &'static str {
        match self {
            Era::Meiji => "明治",
            Era::Taisho => "大正",
            Era::Showa => "昭和",
            Era::Heisei => "平成",
            Era::Reiwa => "令和",
        }
    }

    /// First day of the era (Gregorian). Meiji's start is the proclamation date; dates before it are not
    /// expressed in an era here.
    pub fn start(self) -> Date {
        let (year, month, day) = match self {
            Era::Meiji => (1868, 10, 23),
            Era::Taisho => (1912, 7, 30),
            Era::Showa => (1926, 12, 25),
            Era::Heisei => (1989, 1, 8),
            Era::Reiwa => (2019, 5, 1),
        };
        Date { year, month, day }
    }
}

/// A date in the Japanese era form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wareki {
    pub era: Era,
    /// 1 for 元年.
    pub year: u32,
    pub month: u32,
    pub day: u32,
}

impl fmt::Display for Wareki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.era.name())?;
        if self.year == 1 {
            f.write_str("元")?;
        } else {
            write!(f, "{}", self.year)?;
        }
        write!(f, "年{}月{}日", self.month, self.day)
    }
}

/// A civil date-time on the Japan-time wall clock (UTC+9). The engine's clock and every recorded
/// `issued_at` are of this type, so service hours and "today" are decided in Japan time whatever offset a
/// client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JstDateTime {
    pub date: Date,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl JstDateTime {
    /// Parses RFC 3339 (`2026-04-01T10:00:00+09:00`, `...Z`, any offset, optional fraction which is
    /// truncated) and converts it to Japan time. Leap seconds (`:60`) are refused.
    pub fn parse_rfc3339(s: &str) -> Result<JstDateTime, DateError> {
        let b = s.as_bytes();
        if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
            return Err(DateError::DateTimeFormat);
        }
        let date = Date::parse(&s[..10]).map_err(|e| if e == DateError::Format { DateError::DateTimeFormat } else { e })?;
        let (Some(hour), Some(minute), Some(second)) =
            (parse_digits(&b[11..13]), parse_digits(&b[14..16]), parse_digits(&b[17..19]))
        else {
            return Err(DateError::DateTimeFormat);
        };
        if hour > 23 || minute > 59 || second > 59 {
            return Err(DateError::Time);
        }
        let mut rest = &b[19..];
        if rest.first() == Some(&b'.') {
            let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return Err(DateError::DateTimeFormat);
            }
            rest = &rest[1 + digits..];
        }
        let offset = match rest {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let (Some(oh), Some(om)) = (parse_digits(&[*h1, *h2]), parse_digits(&[*m1, *m2])) else {
                    return Err(DateError::DateTimeFormat);
                };
                if oh > 23 || om > 59 {
                    return Err(DateError::Offset);
                }
                let secs = i64::from(oh * 3600 + om * 60);
                if *sign == b'-' { -secs } else { secs }
            }
            _ => return Err(DateError::DateTimeFormat),
        };
        let local = date.to_days() * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
        Ok(JstDateTime::from_unix_seconds(local - offset))
    }

    /// From seconds since 1970-01-01T00:00:00Z.
    pub fn from_unix_seconds(utc: i64) -> JstDateTime {
        let jst = utc + JST_OFFSET_SECONDS;
        let secs = jst.rem_euclid(86_400) as u32;
        JstDateTime {
            date: Date::from_days(jst.div_euclid(86_400)),
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }

    pub fn to_unix_seconds(self) -> i64 {
        self.date.to_days() * 86_400 + i64::from(self.hour * 3600 + self.minute * 60 + self.second)
            - JST_OFFSET_SECONDS
    }

    /// Minutes since local midnight, for comparing with service hours.
    pub fn minute_of_day(self) -> u32 {
        self.hour * 60 + self.minute
    }

    /// RFC 3339 with the Japan offset, e.g. `2026-04-01T10:00:00+09:00`.
    pub fn to_rfc3339(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for JstDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}T{:02}:{:02}:{:02}+09:00", self.date, self.hour, self.minute, self.second)
    }
}

/// `HH:MM` (24-hour) as minutes since midnight; `24:00` is allowed as an end of day.
pub fn parse_hh_mm(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    let (h, m) = (parse_digits(&b[0..2])?, parse_digits(&b[3..5])?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    #[test]
    fn strict_date_parsing() {
        assert_eq!(d("2024-02-29"), Date { year: 2024, month: 2, day: 29 });
        assert_eq!(Date::parse("2023-02-29"), Err(DateError::Calendar));
        assert_eq!(Date::parse("1900-02-29"), Err(DateError::Calendar));
        assert!(Date::parse("2000-02-29").is_ok());
        assert_eq!(Date::parse("2026-04-31"), Err(DateError::Calendar));
        assert_eq!(Date::parse("2026-13-01"), Err(DateError::Calendar));
        assert_eq!(Date::parse("0000-01-01"), Err(DateError::Calendar));
        for bad in ["2026-4-01", "2026/04/01", "20260401", "2026-04-01 ", "+026-04-01", "２０２６-04-01", ""] {
            assert_eq!(Date::parse(bad), Err(DateError::Format), "{bad:?}");
        }
    }

    #[test]
    fn day_numbers_round_trip_and_agree_with_known_points() {
        assert_eq!(d("1970-01-01").to_days(), 0);
        assert_eq!(d("2000-03-01").to_days(), 11_017);
        assert_eq!(d("1969-12-31").to_days(), -1);
        for n in (-719_162..2_900_000).step_by(997) {
            let date = Date::from_days(n);
            assert_eq!(date.to_days(), n);
            assert_eq!(Date::from_ymd(date.year, date.month, date.day), Some(date));
            assert!(date.add_days(1) > date);
        }
    }

    #[test]
    fn ages_count_completed_years() {
        let born = d("2011-04-02");
        assert_eq!(born.age_on(d("2026-04-01")), 14);
        assert_eq!(born.age_on(d("2026-04-02")), 15);
        let leap = d("2008-02-29");
        assert_eq!(leap.age_on(d("2023-02-28")), 14);
        assert_eq!(leap.age_on(d("2023-03-01")), 15);
        assert_eq!(leap.age_on(d("2024-02-29")), 16);
    }

    #[test]
    fn era_boundaries() {
        let cases = [
            ("1868-10-23", "明治元年10月23日"),
            ("1912-07-29", "明治45年7月29日"),
            ("1912-07-30", "大正元年7月30日"),
            ("1926-12-24", "大正15年12月24日"),
            ("1926-12-25", "昭和元年12月25日"),
            ("1989-01-07", "昭和64年1月7日"),
            ("1989-01-08", "平成元年1月8日"),
            ("2019-04-30", "平成31年4月30日"),
            ("2019-05-01", "令和元年5月1日"),
            ("2020-01-01", "令和2年1月1日"),
            ("2026-04-01", "令和8年4月1日"),
        ];
        for (iso, expected) in cases {
            assert_eq!(d(iso).format_wareki(), expected, "{iso}");
        }
        assert_eq!(d("1868-10-22").wareki(), None);
        assert_eq!(d("1868-10-22").format_wareki(), "1868年10月22日");
    }

    #[test]
    fn rfc3339_is_converted_to_japan_time() {
        let a = JstDateTime::parse_rfc3339("2026-04-01T10:00:00+09:00").unwrap();
        assert_eq!((a.date, a.hour, a.minute, a.second), (d("2026-04-01"), 10, 0, 0));
        assert_eq!(a.to_rfc3339(), "2026-04-01T10:00:00+09:00");
        // 15:30 UTC on New Year's Eve is already 00:30 on 1 January in Japan.
        let b = JstDateTime::parse_rfc3339("2025-12-31T15:30:00Z").unwrap();
        assert_eq!(b.to_rfc3339(), "2026-01-01T00:30:00+09:00");
        let c = JstDateTime::parse_rfc3339("2026-03-01T00:00:00.123456-05:30").unwrap();
        assert_eq!(c.to_rfc3339(), "2026-03-01T14:30:00+09:00");
        assert_eq!(JstDateTime::parse_rfc3339(&a.to_rfc3339()), Ok(a));
        assert_eq!(JstDateTime::from_unix_seconds(a.to_unix_seconds()), a);
        for bad in [
            "2026-04-01T10:00:00",
            "2026-04-01T10:00+09:00",
            "2026-04-01T24:00:00Z",
            "2026-04-01T10:00:60Z",
            "2026-02-30T10:00:00Z",
            "2026-04-01T10:00:00.Z",
            "2026-04-01T10:00:00+0900",
            "2026-04-01T10:00:00+24:00",
        ] {
            assert!(JstDateTime::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn service_hour_text() {
        assert_eq!(parse_hh_mm("06:30"), Some(390));
        assert_eq!(parse_hh_mm("23:00"), Some(1380));
        assert_eq!(parse_hh_mm("24:00"), Some(1440));
        assert_eq!(parse_hh_mm("24:01"), None);
        assert_eq!(parse_hh_mm("6:30"), None);
        assert_eq!(parse_hh_mm("06:60"), None);
    }
}

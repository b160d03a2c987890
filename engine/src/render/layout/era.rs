//! Dates in the Japanese era form printed on certificates (令和8年4月1日, 平成元年1月8日).
//!
//! Only dates from 1873-01-01 are accepted: that is when Japan adopted the Gregorian calendar
//! (明治6年), so earlier dates have no unambiguous era rendering from a Gregorian `Date`.

use bcl_projections::record::Date;

use crate::render::RenderError;

/// (first day, era name, Gregorian year of the era's first year), newest first.
const ERAS: [((i32, u32, u32), &str, i32); 5] = [
    ((2019, 5, 1), "令和", 2019),
    ((1989, 1, 8), "平成", 1989),
    ((1926, 12, 25), "昭和", 1926),
    ((1912, 7, 30), "大正", 1912),
    ((1873, 1, 1), "明治", 1868),
];

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// Formats `date` as 元号N年M月D日 (the first year of an era is 元年). `field` names the record
/// field for the error.
pub fn era_date(date: Date, field: &str) -> Result<String, RenderError> {
    let out_of_range = || RenderError::DateOutOfRange { field: field.to_string() };
    if !(1..=12).contains(&date.month) || date.day == 0 || date.day > days_in_month(date.year, date.month) {
        return Err(out_of_range());
    }
    let key = (date.year, date.month, date.day);
    let (_, name, first_year) = ERAS.iter().find(|(start, _, _)| key >= *start).ok_or_else(out_of_range)?;
    let n = date.year - first_year + 1;
    let year = if n == 1 { "元".to_string() } else { n.to_string() };
    Ok(format!("{name}{year}年{}月{}日", date.month, date.day))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(year: i32, month: u32, day: u32) -> Date {
        Date { year, month, day }
    }

    #[test]
    fn era_boundaries() {
        assert_eq!(era_date(d(2026, 4, 1), "f").unwrap(), "令和8年4月1日");
        assert_eq!(era_date(d(2019, 5, 1), "f").unwrap(), "令和元年5月1日");
        assert_eq!(era_date(d(2019, 4, 30), "f").unwrap(), "平成31年4月30日");
        assert_eq!(era_date(d(1989, 1, 7), "f").unwrap(), "昭和64年1月7日");
        assert_eq!(era_date(d(1989, 1, 8), "f").unwrap(), "平成元年1月8日");
        assert_eq!(era_date(d(1926, 12, 24), "f").unwrap(), "大正15年12月24日");
        assert_eq!(era_date(d(1926, 12, 25), "f").unwrap(), "昭和元年12月25日");
        assert_eq!(era_date(d(1912, 7, 29), "f").unwrap(), "明治45年7月29日");
    }

    #[test]
    fn invalid_or_too_early_dates_name_the_field() {
        for bad in [d(1872, 12, 31), d(2023, 2, 29), d(2024, 13, 1), d(2024, 4, 0)] {
            match era_date(bad, "persons[0].birth_date") {
                Err(RenderError::DateOutOfRange { field }) => assert_eq!(field, "persons[0].birth_date"),
                other => panic!("expected DateOutOfRange, got {other:?}"),
            }
        }
        assert_eq!(era_date(d(2024, 2, 29), "f").unwrap(), "令和6年2月29日");
    }
}

//! Due dates said in a sentence ("tomorrow", "by Friday", "within 24 hours", "December
//! 3rd", "3/12"), resolved against the moment the sentence was said (UTC).

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeDelta, Utc, Weekday};
use serde::{Deserialize, Serialize};

use super::numbers::{cardinal_at, day_of_month_at};

/// How a numeric date such as "3/12" is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateOrder {
    /// 3/12 is March 12th (United States).
    #[default]
    MonthFirst,
    /// 3/12 is December 3rd (most of the rest of the world).
    DayFirst,
}

/// How precise a due date is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuePrecision {
    /// A deadline to the hour ("within 24 hours"): `at` is set.
    Time,
    /// A day ("tomorrow", "by Friday", "December 3rd").
    Day,
    /// A week ("next week"): `date` is that week's Friday, the last working day.
    Week,
    /// A month ("by the end of the month"): `date` is the month's last day.
    Month,
}

/// A deadline said in the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueDate {
    /// The day the action is due (UTC calendar).
    pub date: NaiveDate,
    /// The exact moment, for deadlines counted in hours or minutes.
    pub at: Option<DateTime<Utc>>,
    pub precision: DuePrecision,
    /// The words that said it, as normalised tokens ("by friday", "within 24 hours").
    pub phrase: String,
}

/// Tokens for date parsing: lower-cased, punctuation trimmed from the ends, '/' kept inside
/// ("3/12") and the typographic apostrophe folded.
pub(crate) fn due_tokens(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.replace('’', "'")
                .trim_matches(|c: char| !(c.is_alphanumeric() || c == '/'))
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

const WEEKDAYS: &[(&str, Weekday)] = &[
    ("monday", Weekday::Mon),
    ("tuesday", Weekday::Tue),
    ("wednesday", Weekday::Wed),
    ("thursday", Weekday::Thu),
    ("friday", Weekday::Fri),
    ("saturday", Weekday::Sat),
    ("sunday", Weekday::Sun),
];

const MONTHS: &[(&str, u32)] = &[
    ("january", 1),
    ("jan", 1),
    ("february", 2),
    ("feb", 2),
    ("march", 3),
    ("mar", 3),
    ("april", 4),
    ("apr", 4),
    ("may", 5),
    ("june", 6),
    ("jun", 6),
    ("july", 7),
    ("jul", 7),
    ("august", 8),
    ("aug", 8),
    ("september", 9),
    ("sept", 9),
    ("sep", 9),
    ("october", 10),
    ("oct", 10),
    ("november", 11),
    ("nov", 11),
    ("december", 12),
    ("dec", 12),
];

fn weekday(word: &str) -> Option<Weekday> {
    WEEKDAYS.iter().find(|(w, _)| *w == word).map(|&(_, d)| d)
}

fn month(word: &str) -> Option<u32> {
    MONTHS.iter().find(|(w, _)| *w == word).map(|&(_, m)| m)
}

fn add_days(date: NaiveDate, days: u64) -> Option<NaiveDate> {
    date.checked_add_days(Days::new(days))
}

/// The Monday of the week `date` is in.
fn monday_of(date: NaiveDate) -> Option<NaiveDate> {
    date.checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday())))
}

fn last_day_of_month(date: NaiveDate) -> Option<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?;
    first.checked_add_months(Months::new(1))?.pred_opt()
}

/// `n` working days after `date`, skipping Saturdays and Sundays.
fn add_business_days(date: NaiveDate, n: u32) -> Option<NaiveDate> {
    let mut d = date;
    let mut left = n.min(3_700);
    while left > 0 {
        d = d.succ_opt()?;
        if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            left -= 1;
        }
    }
    Some(d)
}

/// A date without a year: this year's if it has not passed, else next year's.
fn upcoming(today: NaiveDate, month: u32, day: u32, year: Option<i32>) -> Option<NaiveDate> {
    if let Some(y) = year {
        return NaiveDate::from_ymd_opt(y, month, day);
    }
    let this_year = NaiveDate::from_ymd_opt(today.year(), month, day)?;
    if this_year >= today {
        Some(this_year)
    } else {
        NaiveDate::from_ymd_opt(today.year() + 1, month, day)
    }
}

fn parse_year(word: &str) -> Option<i32> {
    if !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match word.len() {
        4 => word.parse().ok(),
        2 => word.parse::<i32>().ok().map(|y| 2000 + y),
        _ => None,
    }
}

/// The first due date in `tokens` (see [`due_tokens`]), resolved against `said_at`.
pub(crate) fn find_due(
    tokens: &[String],
    said_at: DateTime<Utc>,
    order: DateOrder,
) -> Option<DueDate> {
    (0..tokens.len()).find_map(|i| due_at(tokens, i, said_at, order))
}

fn tok(tokens: &[String], i: usize) -> &str {
    tokens.get(i).map_or("", String::as_str)
}

fn day_due(date: Option<NaiveDate>, precision: DuePrecision, phrase: String) -> Option<DueDate> {
    Some(DueDate {
        date: date?,
        at: None,
        precision,
        phrase,
    })
}

fn phrase(tokens: &[String], from: usize, to: usize) -> String {
    tokens
        .get(from..to.min(tokens.len()))
        .map(|t| t.join(" "))
        .unwrap_or_default()
}

fn due_at(
    tokens: &[String],
    i: usize,
    said_at: DateTime<Utc>,
    order: DateOrder,
) -> Option<DueDate> {
    let today = said_at.date_naive();
    let w = tok(tokens, i);
    let prev = i.checked_sub(1).map_or("", |p| tok(tokens, p));
    // "the end of the day", "end of day", "end of this week", "end of the month".
    if w == "end" && tok(tokens, i + 1) == "of" {
        let mut j = i + 2;
        if matches!(tok(tokens, j), "the" | "this") {
            j += 1;
        }
        let start = if prev == "the" { i - 1 } else { i };
        return match tok(tokens, j) {
            "day" | "today" => {
                day_due(Some(today), DuePrecision::Day, phrase(tokens, start, j + 1))
            }
            "week" => day_due(
                end_of_week(today, 0),
                DuePrecision::Week,
                phrase(tokens, start, j + 1),
            ),
            "month" => day_due(
                last_day_of_month(today),
                DuePrecision::Month,
                phrase(tokens, start, j + 1),
            ),
            _ => None,
        };
    }
    match w {
        "today" | "tonight" | "eod" | "cob" => {
            return day_due(Some(today), DuePrecision::Day, w.to_string());
        }
        "close" if tok(tokens, i + 1) == "of" && tok(tokens, i + 2) == "business" => {
            return day_due(Some(today), DuePrecision::Day, phrase(tokens, i, i + 3));
        }
        "day" if tok(tokens, i + 1) == "after" && tok(tokens, i + 2) == "tomorrow" => {
            let start = if prev == "the" { i - 1 } else { i };
            return day_due(
                add_days(today, 2),
                DuePrecision::Day,
                phrase(tokens, start, i + 3),
            );
        }
        "tomorrow" if prev != "after" => {
            return day_due(add_days(today, 1), DuePrecision::Day, w.to_string());
        }
        "this" | "next" => {
            let next = tok(tokens, i + 1);
            let weeks_ahead = u64::from(w == "next");
            if next == "week" {
                return day_due(
                    end_of_week(today, weeks_ahead),
                    DuePrecision::Week,
                    phrase(tokens, i, i + 2),
                );
            }
            if next == "month" {
                let date = if w == "next" {
                    today
                        .with_day(1)
                        .and_then(|d| d.checked_add_months(Months::new(1)))
                        .and_then(last_day_of_month)
                } else {
                    last_day_of_month(today)
                };
                return day_due(date, DuePrecision::Month, phrase(tokens, i, i + 2));
            }
            if let Some(day) = weekday(next) {
                let date = if w == "next" {
                    // "next Friday": the Friday of next week (weeks start on Monday).
                    monday_of(today)
                        .and_then(|m| add_days(m, 7 + u64::from(day.num_days_from_monday())))
                } else {
                    weekday_on_or_after(today, day, true)
                };
                return day_due(date, DuePrecision::Day, phrase(tokens, i, i + 2));
            }
        }
        "in" | "within" => return duration_due(tokens, i, said_at),
        _ => {}
    }
    if let Some(day) = weekday(w) {
        if prev == "next" || prev == "this" {
            return None; // handled at the "next"/"this" token
        }
        // "by Friday" said on a Friday is today; "on Friday" said on a Friday is next week's.
        let include_today = matches!(prev, "by" | "until" | "before" | "till");
        let start = if matches!(prev, "by" | "on" | "until" | "before" | "till") {
            i - 1
        } else {
            i
        };
        return day_due(
            weekday_on_or_after(today, day, include_today),
            DuePrecision::Day,
            phrase(tokens, start, i + 1),
        );
    }
    if let Some(m) = month(w) {
        // "December 3rd", "December the 3rd", "Dec 3 2027"; "may" needs a day after it.
        let mut j = i + 1;
        if tok(tokens, j) == "the" {
            j += 1;
        }
        let (day, used) = day_of_month_at(tokens, j)?;
        let year = parse_year(tok(tokens, j + used));
        let end = j + used + usize::from(year.is_some());
        return day_due(
            upcoming(today, m, day, year),
            DuePrecision::Day,
            phrase(tokens, i, end),
        );
    }
    if let Some((day, used)) = day_of_month_at(tokens, i) {
        // "3rd of December", "the 3rd of December".
        if let Some(m) = (tok(tokens, i + used) == "of")
            .then(|| month(tok(tokens, i + used + 1)))
            .flatten()
        {
            let year = parse_year(tok(tokens, i + used + 2));
            let end = i + used + 2 + usize::from(year.is_some());
            let start = if prev == "the" { i - 1 } else { i };
            return day_due(
                upcoming(today, m, day, year),
                DuePrecision::Day,
                phrase(tokens, start, end),
            );
        }
    }
    numeric_date(w, today, order)
}

/// "3/12", "3/12/2027", "03/12/27".
fn numeric_date(word: &str, today: NaiveDate, order: DateOrder) -> Option<DueDate> {
    let parts: Vec<&str> = word.split('/').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let number = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let a = number(parts.first()?)?;
    let b = number(parts.get(1)?)?;
    let year = match parts.get(2) {
        Some(y) => Some(parse_year(y)?),
        None => None,
    };
    let (m, d) = match order {
        DateOrder::MonthFirst => (a, b),
        DateOrder::DayFirst => (b, a),
    };
    day_due(
        upcoming(today, m, d, year),
        DuePrecision::Day,
        word.to_string(),
    )
}

/// The Friday of this week (`weeks_ahead` = 0) or of a later week; never before today.
fn end_of_week(today: NaiveDate, weeks_ahead: u64) -> Option<NaiveDate> {
    let friday = add_days(monday_of(today)?, 4 + 7 * weeks_ahead)?;
    Some(friday.max(today))
}

fn weekday_on_or_after(today: NaiveDate, day: Weekday, include_today: bool) -> Option<NaiveDate> {
    let from = today.weekday().num_days_from_monday();
    let to = day.num_days_from_monday();
    let mut ahead = (7 + to - from) % 7;
    if ahead == 0 && !include_today {
        ahead = 7;
    }
    add_days(today, u64::from(ahead))
}

/// "in two days", "within 24 hours", "within the next 3 business days", "within the hour".
fn duration_due(tokens: &[String], i: usize, said_at: DateTime<Utc>) -> Option<DueDate> {
    let mut j = i + 1;
    if tok(tokens, j) == "the" {
        j += 1;
        if tok(tokens, j) == "hour" {
            return time_due(said_at, TimeDelta::hours(1), phrase(tokens, i, j + 1));
        }
    }
    if tok(tokens, j) == "next" {
        j += 1;
    }
    let (n, used) = cardinal_at(tokens, j)?;
    let mut k = j + used;
    let business = matches!(tok(tokens, k), "business" | "working");
    if business {
        k += 1;
    }
    let today = said_at.date_naive();
    let unit = tok(tokens, k);
    let text = phrase(tokens, i, k + 1);
    match unit {
        "minute" | "minutes" | "mins" => time_due(said_at, TimeDelta::minutes(i64::from(n)), text),
        "hour" | "hours" | "hrs" => time_due(said_at, TimeDelta::hours(i64::from(n)), text),
        "day" | "days" if business => day_due(add_business_days(today, n), DuePrecision::Day, text),
        "day" | "days" => day_due(add_days(today, u64::from(n)), DuePrecision::Day, text),
        "week" | "weeks" => day_due(add_days(today, 7 * u64::from(n)), DuePrecision::Day, text),
        _ => None,
    }
}

fn time_due(said_at: DateTime<Utc>, delta: TimeDelta, phrase: String) -> Option<DueDate> {
    let at = said_at.checked_add_signed(delta)?;
    Some(DueDate {
        date: at.date_naive(),
        at: Some(at),
        precision: DuePrecision::Time,
        phrase,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Wednesday 2026-11-18, 14:30 UTC.
    fn wednesday() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 18, 14, 30, 0)
            .single()
            .unwrap()
    }

    fn due(text: &str) -> Option<DueDate> {
        find_due(&due_tokens(text), wednesday(), DateOrder::MonthFirst)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn today_and_end_of_day() {
        let d = due("I'll send it today.").unwrap();
        assert_eq!(
            (d.date, d.precision),
            (date(2026, 11, 18), DuePrecision::Day)
        );
        let d = due("I'll send it by the end of the day").unwrap();
        assert_eq!(d.date, date(2026, 11, 18));
        assert_eq!(d.phrase, "the end of the day");
        assert_eq!(
            due("by close of business").unwrap().date,
            date(2026, 11, 18)
        );
    }

    #[test]
    fn tomorrow_and_day_after() {
        assert_eq!(
            due("we'll call you back tomorrow").unwrap().date,
            date(2026, 11, 19)
        );
        let d = due("the day after tomorrow").unwrap();
        assert_eq!(d.date, date(2026, 11, 20));
        assert_eq!(d.phrase, "the day after tomorrow");
    }

    #[test]
    fn weekdays() {
        let d = due("get back to you by Friday").unwrap();
        assert_eq!(
            (d.date, d.phrase.as_str()),
            (date(2026, 11, 20), "by friday")
        );
        // Said on a Wednesday: "by Wednesday" is today, "on Wednesday" is a week later.
        assert_eq!(due("by Wednesday").unwrap().date, date(2026, 11, 18));
        assert_eq!(due("on Wednesday").unwrap().date, date(2026, 11, 25));
        assert_eq!(due("on Monday").unwrap().date, date(2026, 11, 23));
        assert_eq!(due("next Friday").unwrap().date, date(2026, 11, 27));
        assert_eq!(due("this Friday").unwrap().date, date(2026, 11, 20));
    }

    #[test]
    fn weeks_and_months() {
        let d = due("sometime next week").unwrap();
        assert_eq!(
            (d.date, d.precision),
            (date(2026, 11, 27), DuePrecision::Week)
        );
        assert_eq!(
            due("by the end of the week").unwrap().date,
            date(2026, 11, 20)
        );
        let d = due("by the end of the month").unwrap();
        assert_eq!(
            (d.date, d.precision),
            (date(2026, 11, 30), DuePrecision::Month)
        );
        assert_eq!(due("next month").unwrap().date, date(2026, 12, 31));
    }

    #[test]
    fn durations() {
        let d = due("within 24 hours").unwrap();
        assert_eq!(d.precision, DuePrecision::Time);
        assert_eq!(
            d.at,
            Some(
                Utc.with_ymd_and_hms(2026, 11, 19, 14, 30, 0)
                    .single()
                    .unwrap()
            )
        );
        assert_eq!(d.phrase, "within 24 hours");
        let d = due("within the next twenty four hours").unwrap();
        assert_eq!(d.date, date(2026, 11, 19));
        assert_eq!(due("in two days").unwrap().date, date(2026, 11, 20));
        assert_eq!(due("in a couple of days").unwrap().date, date(2026, 11, 20));
        // Three working days from a Wednesday skip the weekend.
        assert_eq!(
            due("within 3 business days").unwrap().date,
            date(2026, 11, 23)
        );
        assert_eq!(due("in two weeks").unwrap().date, date(2026, 12, 2));
        let d = due("within the hour").unwrap();
        assert_eq!(d.at.unwrap().to_rfc3339(), "2026-11-18T15:30:00+00:00");
        assert_eq!(
            due("in a minute or two").unwrap().precision,
            DuePrecision::Time
        );
    }

    #[test]
    fn explicit_dates() {
        assert_eq!(due("by December 3rd").unwrap().date, date(2026, 12, 3));
        assert_eq!(
            due("on the 3rd of December").unwrap().date,
            date(2026, 12, 3)
        );
        assert_eq!(due("December the third").unwrap().date, date(2026, 12, 3));
        // Already past this year: next year's.
        assert_eq!(due("on March 1st").unwrap().date, date(2027, 3, 1));
        assert_eq!(due("by Jan 5 2028").unwrap().date, date(2028, 1, 5));
        assert_eq!(due("by 12/3").unwrap().date, date(2026, 12, 3));
        assert_eq!(due("by 3/12").unwrap().date, date(2027, 3, 12));
        let day_first = find_due(&due_tokens("by 3/12"), wednesday(), DateOrder::DayFirst);
        assert_eq!(day_first.unwrap().date, date(2026, 12, 3));
        assert_eq!(due("on 12/03/2026").unwrap().date, date(2026, 12, 3));
    }

    #[test]
    fn no_due_date() {
        assert_eq!(due("I'll send you the form"), None);
        assert_eq!(
            due("I may call you"),
            None,
            "the modal 'may' is not a month"
        );
        assert_eq!(due("in the system"), None);
        assert_eq!(due("by 13/45"), None);
        assert_eq!(due("February 30th"), None);
        assert_eq!(due(""), None);
    }
}

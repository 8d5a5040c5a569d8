//! Date functions over unix seconds, in UTC (`year()`, `day_of_week()`, ...).

/// The kernel of a date function: unix seconds -> calendar field.
pub fn function(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "year" => |v| civil(v).0 as f64,
        "month" => |v| civil(v).1 as f64,
        "day_of_month" => |v| civil(v).2 as f64,
        "day_of_year" => |v| {
            let (y, m, d) = civil(v);
            (days_from_civil(y, m, d) - days_from_civil(y, 1, 1) + 1) as f64
        },
        "day_of_week" => |v| (days(v) + 4).rem_euclid(7) as f64,
        "days_in_month" => |v| {
            let (y, m, _) = civil(v);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)) as f64
        },
        "hour" => |v| secs(v).rem_euclid(86_400).div_euclid(3600) as f64,
        "minute" => |v| secs(v).rem_euclid(3600).div_euclid(60) as f64,
        _ => return None,
    })
}

/// Go's `int64(f)` on amd64: truncation, and the minimum for NaN or out of range.
fn secs(v: f64) -> i64 {
    if v.is_nan() || v >= 9.223_372_036_854_775_807e18 || v < -9.223_372_036_854_775_808e18 {
        i64::MIN
    } else {
        v as i64
    }
}

fn days(v: f64) -> i64 {
    secs(v).div_euclid(86_400)
}

/// (year, month, day) of unix seconds.
fn civil(v: f64) -> (i64, i64, i64) {
    // Howard Hinnant's civil_from_days.
    let z = days(v) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::function;

    #[test]
    fn promql_dates_match_known_calendar_days() {
        let f = |n: &str, v: f64| function(n).unwrap()(v);
        assert_eq!(f("year", 1136239445.0), 2006.0);
        assert_eq!(f("day_of_month", 1136239445.0), 2.0);
        assert_eq!(f("day_of_week", 1136239445.0), 1.0);
        assert_eq!(f("hour", 1136239445.0), 22.0);
        assert_eq!(f("minute", 1136239445.0), 4.0);
        assert_eq!(f("month", 1456790399.0) + f("day_of_month", 1456790399.0) / 100.0, 2.29);
        assert_eq!(f("day_of_year", 1483191420.0), 366.0);
        assert_eq!(f("days_in_month", 1454284800.0), 29.0);
        assert_eq!(f("year", 0.0), 1970.0);
        assert_eq!(f("day_of_week", 0.0), 4.0);
    }
}

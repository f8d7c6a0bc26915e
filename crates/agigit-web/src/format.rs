//! Numbers, sizes, times and ids as the pages print them.

/// `1.5 MiB`, `812 B`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    #[allow(clippy::cast_precision_loss, reason = "a size for people to read")]
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A share in `[0, 1]` as a percentage with a precision that shows small values.
pub(crate) fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p == 0.0 {
        "0%".into()
    } else if p < 0.01 {
        "<0.01%".into()
    } else if p < 10.0 {
        format!("{p:.2}%")
    } else {
        format!("{p:.1}%")
    }
}

/// A relative change (‖Δ‖/‖W‖), infinite when the old tensor was zero.
pub(crate) fn ratio(r: f64) -> String {
    if r.is_infinite() {
        "∞".into()
    } else if r == 0.0 {
        "0".into()
    } else if r < 1e-3 {
        format!("{r:.2e}")
    } else {
        format!("{r:.4}")
    }
}

/// Unix seconds as `2026-12-05 10:00 UTC` (proleptic Gregorian calendar).
pub(crate) fn time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rest / 3600,
        (rest % 3600) / 60
    )
}

/// Year, month and day of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The first `n` hex digits of an id.
pub(crate) fn short(id: &impl std::fmt::Display, n: usize) -> String {
    let mut s = id.to_string();
    s.truncate(n);
    s
}

/// `1 segment`, `3 segments`.
pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A message's first line.
pub(crate) fn subject(message: &str) -> &str {
    message.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
        assert_eq!(bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn dates_match_the_calendar() {
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
        // 2000-02-29 (a leap day of a century divisible by 400) and the day after.
        assert_eq!(time(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(time(951_868_800 + 3_600 + 120), "2000-03-01 01:02 UTC");
        assert_eq!(time(-86_400), "1969-12-31 00:00 UTC");
        assert_eq!(time(1_796_464_800), "2026-12-05 10:00 UTC");
    }

    #[test]
    fn shares_keep_small_values_visible() {
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.000_01), "<0.01%");
        assert_eq!(percent(0.0125), "1.25%");
        assert_eq!(percent(0.5), "50.0%");
        assert_eq!(ratio(f64::INFINITY), "∞");
        assert_eq!(ratio(0.000_12), "1.20e-4");
    }
}

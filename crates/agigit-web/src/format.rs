//! Numbers, sizes, times and ids as the pages print them.

pub(crate) use agigit::display::{bytes, utc_date as time};

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
    fn shares_keep_small_values_visible() {
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.000_01), "<0.01%");
        assert_eq!(percent(0.0125), "1.25%");
        assert_eq!(percent(0.5), "50.0%");
        assert_eq!(ratio(f64::INFINITY), "∞");
        assert_eq!(ratio(0.000_12), "1.20e-4");
    }
}

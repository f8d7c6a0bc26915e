//! Horizontal bar charts drawn as inline SVG: one row per item, the bar's length
//! proportional to its value over the largest, the value printed beside it.

use maud::{Markup, html};

/// One bar.
pub(crate) struct Bar {
    /// What it measures (a tensor's name, say).
    pub(crate) label: String,
    /// Its value (not negative; infinite values are drawn full length).
    pub(crate) value: f64,
    /// The value as printed.
    pub(crate) text: String,
}

/// Width of a full bar, in pixels.
const FULL: f64 = 240.0;

/// A chart titled `title`; nothing when there are no bars.
pub(crate) fn bars(title: &str, id: &str, bars: &[Bar]) -> Markup {
    if bars.is_empty() {
        return html! {};
    }
    let max = bars
        .iter()
        .map(|b| b.value)
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let length = |v: f64| -> f64 {
        if !v.is_finite() {
            FULL
        } else if max > 0.0 {
            (v / max * FULL).max(if v > 0.0 { 1.0 } else { 0.0 })
        } else {
            0.0
        }
    };
    html! {
        figure.chart id=(id) {
            figcaption { (title) }
            @for b in bars {
                div.bar-row {
                    span.bar-label title=(b.label) { (b.label) }
                    svg.bar width=(FULL) height="12" viewBox={ "0 0 " (FULL) " 12" } role="img" aria-label=(format!("{}: {}", b.label, b.text)) {
                        rect x="0" y="1" width=(format!("{:.1}", length(b.value))) height="10" {}
                    }
                    span.bar-value { (b.text) }
                }
            }
        }
    }
}

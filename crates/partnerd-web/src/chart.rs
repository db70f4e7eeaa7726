//! The report's daily chart as server-rendered SVG (R-REP-2): clicks and
//! unique visitors as bars on the left axis, sign-ups as a line with dots on
//! the right axis, a few date labels, value ticks and a `<title>` tooltip per
//! day. Pure: a list of days in, markup out. Colours come from CSS classes
//! (`app.css`, section "Charts"), never from inline styles, so the CSP holds
//! and the program's brand colours flow through.

use std::fmt::Write as _;

use partnerd_app::report::ReportDay;

/// The drawing's coordinate system; the SVG scales to its container.
pub const WIDTH: f64 = 800.0;
pub const HEIGHT: f64 = 260.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 36.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;
/// At most this many date labels under the bars.
const MAX_DATE_LABELS: usize = 7;
/// Value ticks aimed for on the left axis (besides 0).
const TARGET_TICKS: i64 = 4;

pub const PLOT_HEIGHT: f64 = HEIGHT - TOP - BOTTOM;
const PLOT_WIDTH: f64 = WIDTH - LEFT - RIGHT;

/// `&`, `<`, `>`, `"` and `'` as entities, for text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A "nice" step (1, 2 or 5 × 10ⁿ, at least 1) so that `max` fits in about
/// `ticks` steps.
fn nice_step(max: i64, ticks: i64) -> i64 {
    let raw = (max.max(1) as f64) / (ticks.max(1) as f64);
    let magnitude = 10f64.powf(raw.log10().floor());
    let residual = raw / magnitude;
    let factor = if residual <= 1.0 {
        1.0
    } else if residual <= 2.0 {
        2.0
    } else if residual <= 5.0 {
        5.0
    } else {
        10.0
    };
    ((factor * magnitude).round() as i64).max(1)
}

/// The left axis: its step and number of divisions, so `step × divisions ≥ max`.
fn axis(max: i64) -> (i64, i64) {
    if max <= 0 {
        return (1, TARGET_TICKS);
    }
    let step = nice_step(max, TARGET_TICKS);
    let divisions = (max + step - 1) / step;
    (step, divisions.max(1))
}

/// The right axis shares the left one's gridlines: same number of divisions,
/// its own nice step.
fn secondary_step(max: i64, divisions: i64) -> i64 {
    if max <= 0 {
        return 1;
    }
    let mut step = nice_step(max, divisions);
    while step * divisions < max {
        step = nice_step(step * divisions + 1, divisions);
    }
    step
}

/// `2026-01-05` → `Jan 5`; anything else is shown as it is.
pub fn short_date(date: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = date.split('-');
    let (Some(_), Some(month), Some(day)) = (parts.next(), parts.next(), parts.next()) else {
        return date.to_owned();
    };
    match (month.parse::<usize>(), day.parse::<u32>()) {
        (Ok(m @ 1..=12), Ok(d)) => format!("{} {d}", MONTHS[m - 1]),
        _ => date.to_owned(),
    }
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One sentence for screen readers: the range, the totals and the busiest day.
pub fn summary(days: &[ReportDay]) -> String {
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return "Daily chart: no days in the range.".into();
    };
    let clicks: i64 = days.iter().map(|d| d.clicks).sum();
    let visitors: i64 = days.iter().map(|d| d.unique_visitors).sum();
    let signups: i64 = days.iter().map(|d| d.signups).sum();
    let mut text = format!(
        "Daily clicks, unique visitors and sign-ups from {} to {}: {}, {}, {}.",
        first.date,
        last.date,
        plural(clicks, "click", "clicks"),
        plural(visitors, "unique visitor", "unique visitors"),
        plural(signups, "sign-up", "sign-ups"),
    );
    if let Some(best) = days
        .iter()
        .filter(|d| d.clicks > 0)
        .max_by_key(|d| d.clicks)
    {
        let _ = write!(
            text,
            " Busiest day: {} with {}.",
            best.date,
            plural(best.clicks, "click", "clicks")
        );
    }
    text
}

fn num(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{}", rounded as i64)
    } else {
        format!("{rounded:.1}")
    }
}

/// The chart for `days`, or an empty-state paragraph when there are none.
pub fn daily_chart(days: &[ReportDay]) -> String {
    if days.is_empty() {
        return "<p class=\"chart-empty\">No days to show in this range.</p>".into();
    }
    let n = days.len();
    let max_bar = days
        .iter()
        .map(|d| d.clicks.max(d.unique_visitors))
        .max()
        .unwrap_or(0);
    let max_signups = days.iter().map(|d| d.signups).max().unwrap_or(0);
    let (step, divisions) = axis(max_bar);
    let axis_max = (step * divisions) as f64;
    let signup_step = secondary_step(max_signups, divisions);
    let signup_max = (signup_step * divisions) as f64;
    let baseline = TOP + PLOT_HEIGHT;
    let slot = PLOT_WIDTH / n as f64;
    let bar_width = (slot * 0.72).max(1.0);
    let inner_width = (bar_width * 0.55).max(1.0);
    let y_of = |value: i64, max: f64| baseline - (value as f64 / max) * PLOT_HEIGHT;
    let x_center = |i: usize| LEFT + slot * (i as f64 + 0.5);

    let mut svg = String::with_capacity(600 + n * 420);
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{label}\" \
         xmlns=\"http://www.w3.org/2000/svg\" focusable=\"false\">",
        w = num(WIDTH),
        h = num(HEIGHT),
        label = escape(&summary(days)),
    );

    // Gridlines and value ticks: clicks on the left, sign-ups on the right.
    svg.push_str("<g class=\"chart-grid\">");
    for i in 0..=divisions {
        let y = baseline - PLOT_HEIGHT * i as f64 / divisions as f64;
        let _ = write!(
            svg,
            "<line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\"{class}/>",
            x1 = num(LEFT),
            x2 = num(LEFT + PLOT_WIDTH),
            y = num(y),
            class = if i == 0 {
                " class=\"chart-baseline\""
            } else {
                ""
            },
        );
    }
    svg.push_str("</g><g class=\"chart-axis chart-axis-left\">");
    for i in 0..=divisions {
        let y = baseline - PLOT_HEIGHT * i as f64 / divisions as f64;
        let _ = write!(
            svg,
            "<text x=\"{x}\" y=\"{y}\" text-anchor=\"end\">{v}</text>",
            x = num(LEFT - 8.0),
            y = num(y + 4.0),
            v = step * i
        );
    }
    svg.push_str("</g><g class=\"chart-axis chart-axis-right\">");
    for i in 0..=divisions {
        let y = baseline - PLOT_HEIGHT * i as f64 / divisions as f64;
        let _ = write!(
            svg,
            "<text x=\"{x}\" y=\"{y}\" text-anchor=\"start\">{v}</text>",
            x = num(LEFT + PLOT_WIDTH + 8.0),
            y = num(y + 4.0),
            v = signup_step * i
        );
    }
    svg.push_str("</g>");

    // One group per day: a full-height hover target with the tooltip, then the bars.
    svg.push_str("<g class=\"chart-days\">");
    for (i, day) in days.iter().enumerate() {
        let x = x_center(i);
        let clicks_y = y_of(day.clicks, axis_max);
        let visitors_y = y_of(day.unique_visitors, axis_max);
        let _ = write!(
            svg,
            "<g class=\"chart-day\"><title>{title}</title>\
             <rect class=\"chart-hit\" x=\"{hx}\" y=\"{top}\" width=\"{hw}\" height=\"{ph}\"/>\
             <rect class=\"chart-bar chart-bar-clicks\" x=\"{bx}\" y=\"{cy}\" width=\"{bw}\" height=\"{ch}\"/>\
             <rect class=\"chart-bar chart-bar-visitors\" x=\"{ix}\" y=\"{vy}\" width=\"{iw}\" height=\"{vh}\"/></g>",
            title = escape(&format!(
                "{}: {}, {}, {}",
                day.date,
                plural(day.clicks, "click", "clicks"),
                plural(day.unique_visitors, "unique visitor", "unique visitors"),
                plural(day.signups, "sign-up", "sign-ups"),
            )),
            hx = num(x - slot / 2.0),
            top = num(TOP),
            hw = num(slot),
            ph = num(PLOT_HEIGHT),
            bx = num(x - bar_width / 2.0),
            cy = num(clicks_y),
            bw = num(bar_width),
            ch = num(baseline - clicks_y),
            ix = num(x - inner_width / 2.0),
            vy = num(visitors_y),
            iw = num(inner_width),
            vh = num(baseline - visitors_y),
        );
    }
    svg.push_str("</g>");

    // Sign-ups: a line through every day (none when there are none), with a dot
    // on each day that had some.
    if max_signups > 0 {
        let points: Vec<String> = days
            .iter()
            .enumerate()
            .map(|(i, d)| format!("{},{}", num(x_center(i)), num(y_of(d.signups, signup_max))))
            .collect();
        let _ = write!(
            svg,
            "<polyline class=\"chart-line-signups\" points=\"{}\"/>",
            points.join(" ")
        );
        svg.push_str("<g class=\"chart-dots-signups\">");
        for (i, d) in days.iter().enumerate().filter(|(_, d)| d.signups > 0) {
            let _ = write!(
                svg,
                "<circle cx=\"{}\" cy=\"{}\" r=\"{}\"/>",
                num(x_center(i)),
                num(y_of(d.signups, signup_max)),
                if n <= 62 { "3.5" } else { "2.5" }
            );
        }
        svg.push_str("</g>");
    }

    // A few date labels: the first day, the last, and evenly spaced ones between.
    svg.push_str("<g class=\"chart-axis chart-axis-dates\">");
    let every = n.div_ceil(MAX_DATE_LABELS).max(1);
    for (i, day) in days.iter().enumerate() {
        let last = i == n - 1;
        // The last label replaces a regular one that would sit too close to it.
        let regular = i % every == 0 && (n - 1 - i > every / 2 || n <= MAX_DATE_LABELS);
        if !(regular || last) {
            continue;
        }
        let anchor = if n == 1 {
            "middle"
        } else if i == 0 {
            "start"
        } else if last {
            "end"
        } else {
            "middle"
        };
        let x = match anchor {
            "start" => x_center(i) - bar_width / 2.0,
            "end" => x_center(i) + bar_width / 2.0,
            _ => x_center(i),
        };
        let _ = write!(
            svg,
            "<text x=\"{x}\" y=\"{y}\" text-anchor=\"{anchor}\">{label}</text>",
            x = num(x),
            y = num(baseline + 19.0),
            label = escape(&short_date(&day.date)),
        );
    }
    svg.push_str("</g>");

    if max_bar == 0 && max_signups == 0 {
        let _ = write!(
            svg,
            "<text class=\"chart-note\" x=\"{x}\" y=\"{y}\" text-anchor=\"middle\">No clicks in this period yet</text>",
            x = num(LEFT + PLOT_WIDTH / 2.0),
            y = num(TOP + PLOT_HEIGHT / 2.0),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(date: &str, clicks: i64, unique_visitors: i64, signups: i64) -> ReportDay {
        ReportDay {
            date: date.into(),
            clicks,
            unique_visitors,
            signups,
            revenue: 0,
            commission: 0,
        }
    }

    fn month(values: &[i64]) -> Vec<ReportDay> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| day(&format!("2026-01-{:02}", i + 1), *v, v / 2, v / 5))
            .collect()
    }

    /// The `height` of every `<rect class="chart-bar chart-bar-clicks">`.
    fn click_bar_heights(svg: &str) -> Vec<f64> {
        svg.split("<rect class=\"chart-bar chart-bar-clicks\"")
            .skip(1)
            .map(|rest| {
                let at = rest.find("height=\"").expect("a height") + "height=\"".len();
                rest[at..].split('"').next().unwrap().parse().unwrap()
            })
            .collect()
    }

    #[test]
    fn one_bar_per_day() {
        for n in [1, 7, 30, 90, 400] {
            let days = month(&vec![3; n]);
            let svg = daily_chart(&days);
            assert_eq!(svg.matches("chart-bar-clicks").count(), n, "{n} days");
            assert_eq!(svg.matches("chart-bar-visitors").count(), n, "{n} days");
            assert_eq!(svg.matches("<title>").count(), n, "a tooltip per day");
        }
    }

    #[test]
    fn values_scale_to_the_plot_height() {
        let svg = daily_chart(&month(&[0, 5, 10]));
        let heights = click_bar_heights(&svg);
        assert_eq!(heights.len(), 3);
        assert_eq!(heights[0], 0.0);
        assert!((heights[1] - PLOT_HEIGHT / 2.0).abs() < 0.11, "{heights:?}");
        assert!((heights[2] - PLOT_HEIGHT).abs() < 0.11, "{heights:?}");
        // A maximum that is not a nice number stays below the top of the axis.
        let heights = click_bar_heights(&daily_chart(&month(&[7, 0])));
        assert!(
            heights[0] <= PLOT_HEIGHT && heights[0] > PLOT_HEIGHT / 2.0,
            "{heights:?}"
        );
    }

    #[test]
    fn axes_use_nice_steps() {
        assert_eq!(axis(10), (5, 2));
        assert_eq!(axis(3), (1, 3));
        assert_eq!(axis(0), (1, 4));
        assert_eq!(axis(1234), (500, 3));
        assert!(secondary_step(7, 2) * 2 >= 7);
        assert_eq!(secondary_step(0, 4), 1);
        let svg = daily_chart(&month(&[0, 5, 10]));
        for tick in [">0</text>", ">5</text>", ">10</text>"] {
            assert!(svg.contains(tick), "{tick} in {svg}");
        }
    }

    #[test]
    fn an_empty_series_renders_an_empty_state() {
        let html = daily_chart(&[]);
        assert!(!html.contains("<svg"));
        assert!(html.contains("chart-empty") && html.contains("No days"));
        let quiet = daily_chart(&month(&[0, 0, 0]));
        assert!(quiet.contains("No clicks in this period"), "{quiet}");
    }

    #[test]
    fn labels_and_tooltips_are_escaped() {
        let days = vec![day("<script>&\"'", 1, 1, 0), day("2026-02-03", 2, 1, 1)];
        let svg = daily_chart(&days);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;&amp;&quot;&#39;"), "{svg}");
        assert!(svg.contains(">Feb 3</text>"));
    }

    #[test]
    fn accessible_summary_and_no_inline_styles() {
        let svg = daily_chart(&[day("2026-01-01", 4, 3, 1), day("2026-01-02", 9, 6, 0)]);
        assert!(svg.starts_with("<svg class=\"chart\""));
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains(
            "aria-label=\"Daily clicks, unique visitors and sign-ups from 2026-01-01 to 2026-01-02: \
             13 clicks, 9 unique visitors, 1 sign-up. Busiest day: 2026-01-02 with 9 clicks.\""
        ));
        assert!(!svg.contains("style="));
        assert!(!svg.contains("fill=\"#"));
    }

    #[test]
    fn sign_ups_are_a_line_with_dots_on_the_days_that_had_some() {
        let svg = daily_chart(&[
            day("2026-01-01", 4, 3, 0),
            day("2026-01-02", 9, 6, 2),
            day("2026-01-03", 1, 1, 1),
        ]);
        assert_eq!(
            svg.matches("<polyline class=\"chart-line-signups\"")
                .count(),
            1
        );
        assert_eq!(svg.matches("<circle").count(), 2);
        let none = daily_chart(&month(&[1, 2, 3]));
        assert!(!none.contains("chart-line-signups") && !none.contains("<circle"));
    }

    #[test]
    fn date_labels_are_few_and_include_both_ends() {
        let days = month(&[1; 30]);
        let svg = daily_chart(&days);
        let labels = svg
            .split("chart-axis-dates")
            .nth(1)
            .unwrap()
            .matches("<text")
            .count();
        assert!((2..=MAX_DATE_LABELS + 1).contains(&labels), "{labels}");
        assert!(svg.contains(">Jan 1</text>") && svg.contains(">Jan 30</text>"));
        assert_eq!(short_date("2026-12-25"), "Dec 25");
        assert_eq!(short_date("junk"), "junk");
    }
}

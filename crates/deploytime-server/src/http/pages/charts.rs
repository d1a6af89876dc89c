//! The dashboard's charts, drawn on the server as SVG by plotters, with an
//! embedded font for measuring labels. Colours are fixed mid-tones that read on
//! light and dark backgrounds and with colour blindness (Okabe-Ito); axes and
//! labels follow the page's theme through CSS. Every chart has its numbers in a
//! table beside it, for screen readers and for reading without the chart.

use std::sync::Once;

use chrono::NaiveDate;
use plotters::prelude::*;

const BLUE: RGBColor = RGBColor(0x00, 0x72, 0xb2);
const ORANGE: RGBColor = RGBColor(0xe6, 0x9f, 0x00);
const VERMILION: RGBColor = RGBColor(0xd5, 0x5e, 0x00);
const GREEN: RGBColor = RGBColor(0x00, 0x9e, 0x73);

static FONT: Once = Once::new();

/// Registers the embedded font once; plotters measures labels with it.
fn font() {
    FONT.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_err()
        {
            tracing::error!("the embedded chart font could not be loaded");
        }
    });
}

type Drawn = Result<String, Box<dyn std::error::Error>>;

/// What is shown instead of a chart that could not be drawn (the table beside
/// it still has the numbers).
fn or_note(drawn: Drawn, what: &str) -> String {
    drawn.unwrap_or_else(|e| {
        tracing::warn!(error = %e, chart = what, "a chart could not be drawn");
        String::from("<p class=\"muted\">(chart unavailable: the table has the numbers)</p>")
    })
}

/// Seconds as an axis label: `45s`, `12m`, `3h`.
fn seconds_label(seconds: &f64) -> String {
    let s = *seconds;
    if s < 120.0 {
        format!("{s:.0}s")
    } else if s < 7_200.0 {
        format!("{:.0}m", s / 60.0)
    } else {
        format!("{:.1}h", s / 3_600.0)
    }
}

fn day_label(days: &[NaiveDate], index: &usize) -> String {
    days.get(*index)
        .map(|d| d.format("%m-%d").to_string())
        .unwrap_or_default()
}

/// A line of values over days, without axes: the overview's sparkline of
/// median durations. Days without a value leave a gap.
pub(crate) fn sparkline(values: &[Option<f64>]) -> String {
    if values.iter().all(Option::is_none) {
        return String::new();
    }
    let drawn = (|| -> Drawn {
        let top = values
            .iter()
            .flatten()
            .copied()
            .fold(0.0_f64, f64::max)
            .max(1.0);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (120, 28)).into_drawing_area();
            let mut chart = ChartBuilder::on(&root)
                .margin(2)
                .build_cartesian_2d(0..values.len().max(2) - 1, 0.0..top)?;
            // Each run of days with a value is a line; a lone day is a dot.
            let mut runs: Vec<Vec<(usize, f64)>> = vec![Vec::new()];
            for (i, value) in values.iter().enumerate() {
                match value {
                    Some(v) => runs
                        .last_mut()
                        .into_iter()
                        .for_each(|run| run.push((i, *v))),
                    None => runs.push(Vec::new()),
                }
            }
            for run in runs.into_iter().filter(|run| !run.is_empty()) {
                if let [point] = run.as_slice() {
                    chart.draw_series(std::iter::once(Circle::new(*point, 2, BLUE.filled())))?;
                } else {
                    chart.draw_series(LineSeries::new(run, &BLUE))?;
                }
            }
            root.present()?;
        }
        Ok(svg)
    })();
    or_note(drawn, "sparkline")
}

/// Median, p90 and p95 duration per day: the duration-over-time chart.
pub(crate) fn percentiles(days: &[NaiveDate], series: [&[Option<f64>]; 3]) -> String {
    font();
    let drawn = (|| -> Drawn {
        let top = series
            .iter()
            .flat_map(|s| s.iter().flatten())
            .copied()
            .fold(0.0_f64, f64::max)
            .max(1.0)
            * 1.1;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (900, 300)).into_drawing_area();
            let mut chart = ChartBuilder::on(&root)
                .margin(12)
                .x_label_area_size(28)
                .y_label_area_size(52)
                .build_cartesian_2d(0..days.len().max(2) - 1, 0.0..top)?;
            chart
                .configure_mesh()
                .x_labels(8)
                .x_label_formatter(&|i| day_label(days, i))
                .y_label_formatter(&seconds_label)
                .y_desc("duration")
                .draw()?;
            for ((name, values), colour) in ["p50", "p90", "p95"]
                .iter()
                .zip(series)
                .zip([BLUE, ORANGE, VERMILION])
            {
                let points: Vec<(usize, f64)> = values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (i, v)))
                    .collect();
                chart
                    .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                    .label(*name)
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .border_style(BLACK.mix(0.3))
                .background_style(WHITE.mix(0.0))
                .draw()?;
            root.present()?;
        }
        Ok(svg)
    })();
    or_note(drawn, "percentiles")
}

/// Deployments per day, stacked by outcome: succeeded, failed, cancelled.
pub(crate) fn outcomes(days: &[NaiveDate], counts: &[[usize; 3]]) -> String {
    font();
    let drawn = (|| -> Drawn {
        let top = counts
            .iter()
            .map(|c| c.iter().sum::<usize>())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (900, 260)).into_drawing_area();
            let mut chart = ChartBuilder::on(&root)
                .margin(12)
                .x_label_area_size(28)
                .y_label_area_size(40)
                .build_cartesian_2d(0..days.len().max(1), 0..top + top / 10 + 1)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(8)
                .x_label_formatter(&|i| day_label(days, i))
                .y_desc("deployments")
                .draw()?;
            for (layer, (name, colour)) in [
                ("succeeded", GREEN),
                ("failed", VERMILION),
                ("cancelled", ORANGE),
            ]
            .into_iter()
            .enumerate()
            {
                chart
                    .draw_series(counts.iter().enumerate().filter_map(|(i, c)| {
                        let below: usize = c[..layer].iter().sum();
                        (c[layer] > 0).then(|| {
                            Rectangle::new([(i, below), (i + 1, below + c[layer])], colour.filled())
                        })
                    }))?
                    .label(name)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .border_style(BLACK.mix(0.3))
                .background_style(WHITE.mix(0.0))
                .draw()?;
            root.present()?;
        }
        Ok(svg)
    })();
    or_note(drawn, "outcomes")
}

/// How many deployments took how long: buckets doubling from one second.
pub(crate) fn histogram(buckets: &[(f64, usize)]) -> String {
    if buckets.is_empty() {
        return String::new();
    }
    font();
    let drawn = (|| -> Drawn {
        let top = buckets.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
        let labels: Vec<String> = buckets
            .iter()
            .map(|(lower, _)| seconds_label(lower))
            .collect();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (900, 240)).into_drawing_area();
            let mut chart = ChartBuilder::on(&root)
                .margin(12)
                .x_label_area_size(28)
                .y_label_area_size(40)
                .build_cartesian_2d(0..buckets.len(), 0..top + top / 10 + 1)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(buckets.len().min(16))
                .x_label_formatter(&|i| labels.get(*i).cloned().unwrap_or_default())
                .x_desc("at least")
                .y_desc("deployments")
                .draw()?;
            chart.draw_series(
                buckets
                    .iter()
                    .enumerate()
                    .map(|(i, (_, n))| Rectangle::new([(i, 0), (i + 1, *n)], BLUE.filled())),
            )?;
            root.present()?;
        }
        Ok(svg)
    })();
    or_note(drawn, "histogram")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: i64) -> Vec<NaiveDate> {
        let first = NaiveDate::from_ymd_opt(2026, 3, 28).unwrap();
        (0..n).map(|i| first + chrono::Duration::days(i)).collect()
    }

    #[test]
    fn charts_are_svg_with_their_labels() {
        let svg = percentiles(
            &days(3),
            [
                &[Some(60.0), None, Some(90.0)],
                &[Some(80.0), None, Some(120.0)],
                &[Some(95.0), None, Some(130.0)],
            ],
        );
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(
            svg.contains("p95") && svg.contains("03-28"),
            "legend and dates"
        );
        let svg = outcomes(&days(2), &[[3, 1, 0], [0, 0, 2]]);
        assert!(svg.contains("<rect"), "bars: {svg}");
        assert!(histogram(&[(0.0, 1), (1.0, 4)]).starts_with("<svg"));
    }

    #[test]
    fn nothing_to_draw_draws_nothing_and_one_point_is_a_dot() {
        assert_eq!(sparkline(&[None, None]), "");
        assert_eq!(histogram(&[]), "");
        let dot = sparkline(&[None, Some(3.0), None]);
        assert!(dot.contains("<circle"), "{dot}");
        // An empty window still draws its axes.
        assert!(percentiles(&[], [&[], &[], &[]]).starts_with("<svg"));
        assert!(outcomes(&[], &[]).starts_with("<svg"));
    }
}

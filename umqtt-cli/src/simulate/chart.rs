//! The SVG chart (plotters, SVG backend): attempts over time for every policy, and energy
//! against p99 delivery delay for the focus device.

use plotters::prelude::*;

use super::report::Report;

/// The chart as an SVG document.
pub fn svg(report: &Report) -> Result<String, String> {
    let mut buffer = String::new();
    draw(report, &mut buffer).map_err(|e| format!("cannot draw the chart: {e}"))?;
    Ok(buffer)
}

fn draw(report: &Report, buffer: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(buffer, (1100, 1300)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(620);

    // Attempts over time: cumulative, all devices together, one line per policy (not nudged).
    let mut policies: Vec<(String, Vec<u64>)> = Vec::new();
    for row in report.rows.iter().filter(|r| !r.nudge) {
        let bins = &row.tally.attempts_over_time;
        match policies.iter_mut().find(|(p, _)| *p == row.policy) {
            Some((_, sum)) => {
                for (s, n) in sum.iter_mut().zip(bins) {
                    *s += n;
                }
            }
            None => policies.push((row.policy.clone(), bins.clone())),
        }
    }
    let bins = policies.first().map_or(1, |(_, b)| b.len()).max(1);
    let hours = bins as f64 * report.bin_hours;
    let max = policies
        .iter()
        .map(|(_, b)| b.iter().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(10) as f64;
    let mut chart = ChartBuilder::on(&top)
        .caption(
            "Connection attempts over time (cumulative, all devices, no nudge)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..hours, (1f64..max * 1.5).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("virtual time, hours")
        .y_desc("attempts so far")
        .draw()?;
    for (i, (policy, bins)) in policies.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut sum = 0u64;
        let points: Vec<(f64, f64)> = bins
            .iter()
            .enumerate()
            .map(|(b, n)| {
                sum += n;
                ((b + 1) as f64 * report.bin_hours, sum.max(1) as f64)
            })
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(policy.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    // Energy against p99 delay, the focus device, every policy with and without a nudge.
    let frontier = report.frontier();
    let max_energy = frontier
        .iter()
        .map(|(r, _)| r.energy_j)
        .fold(1.0f64, f64::max);
    let min_energy = frontier
        .iter()
        .map(|(r, _)| r.energy_j)
        .fold(max_energy, f64::min)
        .max(0.001);
    let delay_s = |ms: u64| (ms as f64 / 1000.0).max(0.01);
    let max_delay = frontier
        .iter()
        .map(|(r, _)| delay_s(r.p99()))
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(&bottom)
        .caption(
            format!(
                "Energy against p99 delivery delay after the network returns ({} device; * = Pareto frontier)",
                report.focus
            ),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (min_energy / 1.5..max_energy * 1.5).log_scale(),
            (0.005f64..max_delay * 3.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("energy, J (log)")
        .y_desc("p99 delay, s (log; 0 drawn at 0.01)")
        .draw()?;
    for (i, (row, on)) in frontier.iter().enumerate() {
        let color = Palette99::pick(i / 2).to_rgba();
        let point = (row.energy_j.max(min_energy), delay_s(row.p99()));
        let label = format!("{}{}", if *on { "* " } else { "" }, row.label());
        let style = if row.nudge {
            color.stroke_width(2)
        } else {
            color.filled()
        };
        chart.draw_series(std::iter::once(Circle::new(point, 6, style)))?;
        chart.draw_series(std::iter::once(Text::new(
            label,
            point,
            ("sans-serif", 13).into_font().color(&BLACK),
        )))?;
    }
    root.present()?;
    Ok(())
}

//! The chart: one panel per scenario, a bar per server (median, min–max whisker), the
//! machine limit as a red line. SVG, drawn with `plotters`.

use std::path::Path;

use plotters::prelude::*;

use crate::Res;
use crate::report::Series;

/// One panel's content.
pub(crate) struct Panel<'a> {
    /// Panel title.
    pub(crate) title: String,
    /// Unit of the bars.
    pub(crate) unit: &'a str,
    /// Bars, in order.
    pub(crate) bars: Vec<&'a Series>,
    /// The limit line, if any.
    pub(crate) limit: Option<(String, f64)>,
}

/// Draws `panels` into an SVG at `path`, two panels per row.
pub(crate) fn draw(path: &Path, panels: &[Panel<'_>]) -> Res<()> {
    let rows = panels.len().div_ceil(2).max(1);
    let root = SVGBackend::new(path, (1300, 330 * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((rows, 2));
    for (area, panel) in areas.iter().zip(panels) {
        let bars: Vec<&Series> = panel.bars.iter().copied().filter(|s| s.median.is_finite()).collect();
        if bars.is_empty() {
            continue;
        }
        let top = bars.iter().map(|s| s.max).chain(panel.limit.as_ref().map(|l| l.1)).fold(0.0, f64::max) * 1.2;
        let names: Vec<String> = bars.iter().map(|s| s.server.clone()).collect();
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d((0..bars.len()).into_segmented(), 0.0..top.max(1e-9))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(panel.unit)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()?;
        for (i, s) in bars.iter().enumerate() {
            let color = if s.is_ours { RGBColor(31, 119, 180) } else { RGBColor(160, 160, 160) };
            chart.draw_series(std::iter::once(
                Rectangle::new([(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), s.median)], color.filled())
                    .into_dyn(),
            ))?;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(SegmentValue::CenterOf(i), s.min), (SegmentValue::CenterOf(i), s.max)],
                BLACK.stroke_width(2),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{:.0}", s.median),
                (SegmentValue::CenterOf(i), s.max + top * 0.02),
                ("sans-serif", 13),
            )))?;
        }
        if let Some((name, value)) = &panel.limit {
            let line = vec![(SegmentValue::Exact(0), *value), (SegmentValue::Exact(bars.len()), *value)];
            chart.draw_series(std::iter::once(PathElement::new(line, RED.stroke_width(2))))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("limit: {name} {value:.0}"),
                (SegmentValue::Exact(0), *value + top * 0.06),
                ("sans-serif", 13).into_font().color(&RED),
            )))?;
        }
    }
    root.present()?;
    Ok(())
}

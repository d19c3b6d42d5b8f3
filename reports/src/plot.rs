//! Drawing [`Chart`]s with plotters, to SVG text or PNG bytes.
//!
//! Fonts come from the `dejavu` crate, registered once; without a registered font plotters
//! fails (even for SVG, which needs the metrics), so that failure is an error here.

use crate::charts::{Chart, PALETTE, XAxis, nines_label};
use crate::error::ReportError;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use std::sync::OnceLock;

/// Chart size in pixels.
pub(crate) const SIZE: (u32, u32) = (960, 360);

type DrawResult<E> = Result<(), DrawingAreaErrorKind<E>>;

/// Registers DejaVu Sans as `sans-serif` (regular and bold), once per process.
pub(crate) fn fonts() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(ReportError::Chart {
            chart: "*".into(),
            message: "the embedded DejaVu Sans font could not be registered".into(),
        })
    }
}

fn chart_error(chart: &Chart, e: impl std::fmt::Display) -> ReportError {
    ReportError::Chart { chart: chart.id.clone(), message: e.to_string() }
}

/// The chart as an SVG document.
pub(crate) fn svg(chart: &Chart) -> Result<String, ReportError> {
    fonts()?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(&root, chart).map_err(|e| chart_error(chart, e))?;
        root.present().map_err(|e| chart_error(chart, e))?;
    }
    Ok(out)
}

/// The chart as a PNG image (8-bit RGB).
pub(crate) fn png(chart: &Chart) -> Result<Vec<u8>, ReportError> {
    fonts()?;
    let (w, h) = SIZE;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        draw(&root, chart).map_err(|e| chart_error(chart, e))?;
        root.present().map_err(|e| chart_error(chart, e))?;
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut wr| wr.write_image_data(&rgb))
        .map_err(|e| chart_error(chart, e))?;
    Ok(out)
}

pub(crate) fn color(i: usize) -> RGBColor {
    let hex = PALETTE[i % PALETTE.len()];
    let v = u32::from_str_radix(&hex[1..], 16).unwrap_or(0);
    RGBColor((v >> 16) as u8, (v >> 8) as u8, v as u8)
}

/// Time axis unit: seconds, minutes or hours, by the run's length.
fn time_unit(end_s: f64) -> (f64, &'static str) {
    if end_s <= 600.0 {
        (1.0, "time (s)")
    } else if end_s <= 6.0 * 3600.0 {
        (60.0, "time (min)")
    } else {
        (3600.0, "time (h)")
    }
}

/// A log-axis label for 10^k milliseconds: `0.1 ms`, `10 ms`, `1 s`, `100 s`.
fn decade_ms(k: i32) -> String {
    if k < 3 {
        format!("{} ms", crate::num::float(10f64.powi(k), 3))
    } else {
        format!("{} s", crate::num::float(10f64.powi(k - 3), 0))
    }
}

/// Tick labels: `950`, `1.5k`, `2M`, `0.25`.
pub(crate) fn tick(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    };
    if a >= 1e6 {
        format!("{}M", trim(format!("{:.2}", v / 1e6)))
    } else if a >= 1e3 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else if a >= 10.0 || a == 0.0 {
        trim(format!("{v:.1}"))
    } else {
        trim(format!("{v:.3}"))
    }
}

/// Pixels between the top of the image and the plot: title row plus legend rows.
fn header_height<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> i32 {
    legend_layout(root, chart).last().map_or(34, |(_, y, _)| y + 22)
}

/// Where each legend entry goes: `(x, y, series index)`, wrapping at the right edge.
fn legend_layout<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
) -> Vec<(i32, i32, usize)> {
    let font: TextStyle = ("sans-serif", 13).into();
    let width = root.dim_in_pixel().0 as i32;
    let (mut x, mut y) = (LEFT + 8, 32);
    let mut out = Vec::new();
    for (i, s) in chart.series.iter().enumerate() {
        let w = root.estimate_text_size(&s.label, &font).map_or(8 * s.label.len() as u32, |d| d.0)
            as i32;
        if x + 26 + w > width - 12 && x > LEFT + 8 {
            x = LEFT + 8;
            y += 18;
        }
        out.push((x, y, i));
        x += 26 + w + 22;
    }
    out
}

/// The y-axis label area width.
const LEFT: i32 = 64;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
) -> DrawResult<DB::ErrorType> {
    root.fill(&WHITE)?;
    let title = ("sans-serif", 17).into_font().style(FontStyle::Bold).color(&RGBColor(31, 41, 51));
    root.draw(&Text::new(chart.title.clone(), (LEFT + 8, 8), title))?;
    for (x, y, i) in legend_layout(root, chart) {
        let c = color(chart.series[i].color);
        root.draw(&PathElement::new(vec![(x, y + 8), (x + 20, y + 8)], c.stroke_width(3)))?;
        let font = ("sans-serif", 13).into_font().color(&RGBColor(60, 70, 80));
        root.draw(&Text::new(chart.series[i].label.clone(), (x + 26, y), font))?;
    }
    let (x_max, scale, x_desc) = match chart.x {
        XAxis::Time { end_s } => {
            let (unit, desc) = time_unit(end_s);
            ((end_s / unit).max(1e-9), unit, desc)
        }
        XAxis::Nines { max } => (f64::from(max), 1.0, "percentile"),
    };
    let ys = chart.series.iter().flat_map(|s| &s.points).map(|p| p.1).filter(|y| y.is_finite());
    let (y_min, y_max, ty): (f64, f64, fn(f64) -> f64) = if chart.log_y {
        let lo = ys.clone().filter(|y| *y > 0.0).fold(f64::INFINITY, f64::min);
        let hi = ys.fold(0.0, f64::max);
        let lo = if lo.is_finite() { lo.log10().floor() } else { 0.0 };
        let hi = if hi > 0.0 { hi.log10().ceil().max(lo + 1.0) } else { lo + 1.0 };
        (lo, hi, |y| y.max(1e-9).log10())
    } else {
        let top = ys.fold(0.0, f64::max);
        (0.0, if top > 0.0 { top * 1.12 } else { 1.0 }, |y| y)
    };
    let mut cc = ChartBuilder::on(root)
        .margin_top(header_height(root, chart))
        .margin_right(30)
        .margin_left(8)
        .margin_bottom(6)
        .x_label_area_size(40)
        .y_label_area_size(LEFT as u32)
        .build_cartesian_2d(0f64..x_max, y_min..y_max)?;
    let nines_axis = matches!(chart.x, XAxis::Nines { .. });
    let x_fmt = |x: &f64| {
        if nines_axis { nines_label(*x) } else { tick(*x) }
    };
    let log_y = chart.log_y;
    let y_fmt = |y: &f64| {
        if !log_y {
            tick(*y)
        } else if (y - y.round()).abs() < 1e-6 {
            decade_ms(y.round() as i32)
        } else {
            String::new()
        }
    };
    cc.configure_mesh()
        .x_desc(x_desc)
        .y_desc(chart.y_label.as_str())
        .x_labels(if nines_axis { x_max as usize + 1 } else { 12 })
        .y_labels(if log_y { (y_max - y_min) as usize + 1 } else { 6 })
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style(("sans-serif", 12).into_font().color(&RGBColor(80, 90, 100)))
        .axis_desc_style(("sans-serif", 13).into_font().color(&RGBColor(80, 90, 100)))
        .axis_style(RGBColor(150, 155, 160))
        .bold_line_style(RGBColor(225, 228, 232))
        .light_line_style(RGBColor(246, 247, 248))
        .draw()?;
    shade_windows(&mut cc, chart, scale, x_max, (y_min, y_max))?;
    for s in &chart.series {
        let style = color(s.color).stroke_width(2);
        let points: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (x, ty(y))).collect();
        let segments = segments(&points, scale, x_max * 0.003);
        cc.draw_series(segments.into_iter().map(move |seg| PathElement::new(seg, style)))?;
    }
    Ok(())
}

type Cartesian<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Shades each window and labels it at the top, stacking labels that would collide.
fn shade_windows<DB: DrawingBackend>(
    cc: &mut Cartesian<'_, DB>,
    chart: &Chart,
    scale: f64,
    x_max: f64,
    (y_min, y_max): (f64, f64),
) -> DrawResult<DB::ErrorType> {
    let fill = RGBColor(214, 39, 40).mix(0.10);
    let edge = RGBColor(214, 39, 40).mix(0.35);
    let px_per_x = f64::from(cc.plotting_area().dim_in_pixel().0) / x_max;
    let mut placed: Vec<(f64, f64, i32)> = Vec::new();
    for s in &chart.shades {
        let a = (s.from / scale).min(x_max);
        let b = (s.to / scale).clamp(a + x_max * 0.002, x_max);
        cc.draw_series(std::iter::once(Rectangle::new([(a, y_min), (b, y_max)], fill.filled())))?;
        cc.draw_series(std::iter::once(PathElement::new(vec![(a, y_min), (a, y_max)], edge)))?;
        let start = a * px_per_x;
        let end = start + 7.0 * s.label.chars().count() as f64 + 8.0;
        let level = (0..)
            .find(|l| !placed.iter().any(|(s0, e0, l0)| l0 == l && start < *e0 && *s0 < end))
            .unwrap_or(0);
        placed.push((start, end, level));
        let font = ("sans-serif", 12).into_font().color(&RGBColor(160, 30, 30));
        cc.draw_series(std::iter::once(
            EmptyElement::at((a, y_max)) + Text::new(s.label.clone(), (4, 4 + 15 * level), font),
        ))?;
    }
    Ok(())
}

/// Splits a line at NaN y values and scales x; a lone point becomes a tiny horizontal tick so
/// it stays visible.
fn segments(points: &[(f64, f64)], scale: f64, tick: f64) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur = Vec::new();
    for &(x, y) in points.iter().chain(std::iter::once(&(0.0, f64::NAN))) {
        if y.is_finite() {
            cur.push((x / scale, y));
        } else if !cur.is_empty() {
            if let &[(x, y)] = cur.as_slice() {
                cur = vec![(x - tick, y), (x + tick, y)];
            }
            out.push(std::mem::take(&mut cur));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(decade_ms(-1), "0.1 ms");
        assert_eq!(decade_ms(2), "100 ms");
        assert_eq!(decade_ms(5), "100 s");
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(950.0), "950");
        assert_eq!(tick(1_500.0), "1.5k");
        assert_eq!(tick(15_000.0), "15k");
        assert_eq!(tick(2_500_000.0), "2.5M");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(12.5), "12.5");
    }

    #[test]
    fn segments_break_at_nan() {
        let s = segments(&[(0.0, 1.0), (1.0, f64::NAN), (2.0, 2.0), (3.0, 3.0)], 1.0, 0.5);
        assert_eq!(s, vec![vec![(-0.5, 1.0), (0.5, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]);
    }
}

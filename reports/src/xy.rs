//! Charts of a metric against a setting (sweeps and capacity searches): x is a varied key's
//! value (numeric, or one slot per value when the values are names), lines join the points of
//! one series, and marks flag special points (the knee, the answer).
//!
//! Drawn with plotters in the same style as the run charts (fonts, palette, ticks).

use crate::error::ReportError;
use crate::plot::{color, fonts, tick};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// Chart size in pixels (as the run charts).
const SIZE: (u32, u32) = (960, 360);
const LEFT: i32 = 72;

/// A chart of a metric against a setting.
#[derive(Clone, Debug, PartialEq)]
pub struct XyChart {
    /// File stem, e.g. `p99-consumer.instances`.
    pub id: String,
    /// Caption.
    pub title: String,
    /// The x axis: the varied key.
    pub x_label: String,
    /// Named x slots `(x, label)` when the values are not numbers; empty for a numeric axis.
    pub x_names: Vec<(f64, String)>,
    /// The y axis, with its unit.
    pub y_label: String,
    /// One line per series.
    pub series: Vec<XySeries>,
    /// Highlighted points.
    pub marks: Vec<Mark>,
    /// Horizontal reference lines `(y, label)` (thresholds).
    pub hlines: Vec<(f64, String)>,
    /// Logarithmic y axis (values spanning more than two decades).
    pub log_y: bool,
}

/// One line of points.
#[derive(Clone, Debug, PartialEq)]
pub struct XySeries {
    /// Legend text.
    pub label: String,
    /// Index into the palette.
    pub color: usize,
    /// `(x, y)`; a NaN y is left out.
    pub points: Vec<(f64, f64)>,
    /// Points drawn hollow (e.g. settings that fail an expectation), by index into `points`.
    pub hollow: Vec<usize>,
}

/// A labelled point.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    /// Where.
    pub x: f64,
    /// Where.
    pub y: f64,
    /// Text next to it.
    pub label: String,
    /// Palette index.
    pub color: usize,
}

fn err(chart: &XyChart, e: impl std::fmt::Display) -> ReportError {
    ReportError::Chart { chart: chart.id.clone(), message: e.to_string() }
}

/// The chart as an SVG document.
pub fn svg(chart: &XyChart) -> Result<String, ReportError> {
    fonts()?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(&root, chart).map_err(|e| err(chart, e))?;
        root.present().map_err(|e| err(chart, e))?;
    }
    Ok(out)
}

/// The chart as a PNG image (8-bit RGB).
pub fn png(chart: &XyChart) -> Result<Vec<u8>, ReportError> {
    fonts()?;
    let (w, h) = SIZE;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        draw(&root, chart).map_err(|e| err(chart, e))?;
        root.present().map_err(|e| err(chart, e))?;
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().and_then(|mut wr| wr.write_image_data(&rgb)).map_err(|e| err(chart, e))?;
    Ok(out)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &XyChart,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let title = ("sans-serif", 17).into_font().style(FontStyle::Bold).color(&RGBColor(31, 41, 51));
    root.draw(&Text::new(chart.title.clone(), (LEFT + 8, 8), title))?;
    // Legend, wrapping at the right edge.
    let font: TextStyle = ("sans-serif", 13).into();
    let width = root.dim_in_pixel().0 as i32;
    let (mut lx, mut ly) = (LEFT + 8, 32);
    for s in &chart.series {
        let w = root.estimate_text_size(&s.label, &font).map_or(8 * s.label.len() as u32, |d| d.0)
            as i32;
        if lx + 26 + w > width - 12 && lx > LEFT + 8 {
            lx = LEFT + 8;
            ly += 18;
        }
        let c = color(s.color);
        root.draw(&PathElement::new(vec![(lx, ly + 8), (lx + 20, ly + 8)], c.stroke_width(3)))?;
        root.draw(&Circle::new((lx + 10, ly + 8), 3, c.filled()))?;
        let f = ("sans-serif", 13).into_font().color(&RGBColor(60, 70, 80));
        root.draw(&Text::new(s.label.clone(), (lx + 26, ly), f))?;
        lx += 26 + w + 22;
    }
    let xs = chart
        .series
        .iter()
        .flat_map(|s| &s.points)
        .map(|p| p.0)
        .chain(chart.marks.iter().map(|m| m.x));
    let (mut x_lo, mut x_hi) =
        xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    if !x_lo.is_finite() {
        (x_lo, x_hi) = (0.0, 1.0);
    }
    let pad = if x_hi > x_lo { (x_hi - x_lo) * 0.05 } else { 0.5 };
    let (x_lo, x_hi) = (x_lo - pad, x_hi + pad);
    let ys: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|s| &s.points)
        .map(|p| p.1)
        .chain(chart.hlines.iter().map(|h| h.0))
        .filter(|y| y.is_finite())
        .collect();
    let log_y = chart.log_y;
    let ty = move |y: f64| if log_y { y.max(1e-6).log10() } else { y };
    let (y_lo, y_hi) = if log_y {
        let lo = ys.iter().copied().filter(|y| *y > 0.0).fold(f64::INFINITY, f64::min);
        let hi = ys.iter().copied().fold(0.0, f64::max);
        let lo = if lo.is_finite() { lo.log10().floor() } else { 0.0 };
        let hi = if hi > 0.0 { hi.log10().ceil().max(lo + 1.0) } else { lo + 1.0 };
        (lo, hi)
    } else {
        let top = ys.iter().copied().fold(0.0, f64::max);
        (0.0, if top > 0.0 { top * 1.15 } else { 1.0 })
    };
    let mut cc = ChartBuilder::on(root)
        .margin_top(ly + 22)
        .margin_right(30)
        .margin_left(8)
        .margin_bottom(6)
        .x_label_area_size(40)
        .y_label_area_size(LEFT as u32)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)?;
    let names = chart.x_names.clone();
    let x_fmt = move |x: &f64| {
        if names.is_empty() {
            tick(*x)
        } else {
            names
                .iter()
                .find(|(v, _)| (v - x).abs() < 1e-6)
                .map(|(_, l)| l.clone())
                .unwrap_or_default()
        }
    };
    let x_labels = if chart.x_names.is_empty() {
        10
    } else {
        // one label per slot: ask for enough ticks to land on every integer
        ((x_hi - x_lo).ceil() as usize + 1) * 4
    };
    cc.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_labels(x_labels)
        .y_labels(if log_y { (y_hi - y_lo) as usize + 1 } else { 6 })
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&|y| {
            if !log_y {
                tick(*y)
            } else if (y - y.round()).abs() < 1e-6 {
                tick(10f64.powi(y.round() as i32))
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 12).into_font().color(&RGBColor(80, 90, 100)))
        .axis_desc_style(("sans-serif", 13).into_font().color(&RGBColor(80, 90, 100)))
        .axis_style(RGBColor(150, 155, 160))
        .bold_line_style(RGBColor(225, 228, 232))
        .light_line_style(RGBColor(246, 247, 248))
        .draw()?;
    for (y, label) in &chart.hlines {
        let red = RGBColor(168, 35, 27);
        let y = &ty(*y);
        cc.draw_series(std::iter::once(PathElement::new(
            vec![(x_lo, *y), (x_hi, *y)],
            red.mix(0.7).stroke_width(1),
        )))?;
        let f = ("sans-serif", 12).into_font().color(&red);
        cc.draw_series(std::iter::once(
            EmptyElement::at((x_lo, *y)) + Text::new(label.clone(), (6, -16), f),
        ))?;
    }
    for s in &chart.series {
        let c = color(s.color);
        let pts: Vec<(f64, f64)> =
            s.points.iter().filter(|p| p.1.is_finite()).map(|p| (p.0, ty(p.1))).collect();
        cc.draw_series(std::iter::once(PathElement::new(pts.clone(), c.stroke_width(2))))?;
        for (i, p) in s.points.iter().enumerate() {
            if !p.1.is_finite() {
                continue;
            }
            let p = &(p.0, ty(p.1));
            if s.hollow.contains(&i) {
                cc.draw_series(std::iter::once(Circle::new(*p, 5, WHITE.filled())))?;
                cc.draw_series(std::iter::once(Circle::new(*p, 5, c.stroke_width(2))))?;
            } else {
                cc.draw_series(std::iter::once(Circle::new(*p, 4, c.filled())))?;
            }
        }
    }
    let x_mid = (x_lo + x_hi) / 2.0;
    for (k, m) in chart.marks.iter().enumerate() {
        let c = color(m.color);
        let at = (m.x, ty(m.y));
        cc.draw_series(std::iter::once(PathElement::new(
            vec![(m.x, y_lo), (m.x, y_hi)],
            c.mix(0.5).stroke_width(1),
        )))?;
        cc.draw_series(std::iter::once(Circle::new(at, 8, c.stroke_width(2))))?;
        let f = ("sans-serif", 13).into_font().style(FontStyle::Bold).color(&c);
        // Labels left of marks in the right half, stacked when several share a place.
        let w = 7 * m.label.chars().count() as i32 + 12;
        let dx = if m.x > x_mid { -w } else { 12 };
        cc.draw_series(std::iter::once(
            EmptyElement::at((m.x, y_hi)) + Text::new(m.label.clone(), (dx, 6 + 16 * k as i32), f),
        ))?;
    }
    Ok(())
}

/// Values as x positions: the numbers themselves when every value is a number, else slots
/// 0, 1, 2, ... with the values as tick labels (the second element).
pub fn x_positions(values: &[String]) -> (Vec<f64>, Vec<(f64, String)>) {
    let nums: Option<Vec<f64>> = values.iter().map(|v| v.trim().parse::<f64>().ok()).collect();
    match nums {
        Some(n) if n.iter().all(|x| x.is_finite()) => (n, Vec::new()),
        _ => {
            let xs: Vec<f64> = (0..values.len()).map(|i| i as f64).collect();
            let names = values.iter().enumerate().map(|(i, v)| (i as f64, v.clone())).collect();
            (xs, names)
        }
    }
}

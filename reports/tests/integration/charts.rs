use crate::{TestResult, fixture};
use reports::charts::{self, Chart, XAxis, nines};

fn chart<'a>(charts: &'a [Chart], id: &str) -> &'a Chart {
    charts.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no chart {id}"))
}

fn ys(c: &Chart, label: &str) -> Vec<f64> {
    let s = c.series.iter().find(|s| s.label == label).unwrap_or_else(|| panic!("no {label}"));
    s.points.iter().map(|p| p.1).collect()
}

#[test]
fn time_charts_show_the_timeseries() {
    let r = fixture::report();
    let cs = charts::run_charts(&r);
    let ids: Vec<&str> = cs.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "latency-spectrum",
            "latency-over-time",
            "throughput",
            "backlog",
            "failures",
            "instances",
            "cost"
        ]
    );
    let rows = &r.timeseries;
    let col = |f: &dyn Fn(&reports::TimeseriesRow) -> f64| rows.iter().map(f).collect::<Vec<_>>();
    assert_eq!(ys(chart(&cs, "backlog"), "backlog (waiting)"), col(&|r| r.backlog as f64));
    assert_eq!(ys(chart(&cs, "backlog"), "in progress"), col(&|r| r.in_progress as f64));
    assert_eq!(ys(chart(&cs, "instances"), "instances"), col(&|r| f64::from(r.instances)));
    assert_eq!(ys(chart(&cs, "cost"), "cost"), col(&|r| r.cost_usd));
    assert_eq!(ys(chart(&cs, "failures"), "dead-lettered"), col(&|r| r.dead_lettered as f64));
    assert_eq!(ys(chart(&cs, "failures"), "failed executions"), col(&|r| r.failed as f64));
    assert_eq!(ys(chart(&cs, "failures"), "rejected"), col(&|r| r.rejected as f64));
    // Rates: per-second values times each interval's length give the CSV's counts back.
    let completed = ys(chart(&cs, "throughput"), "completed");
    let mut prev = 0.0;
    for (row, rate) in rows.iter().zip(completed) {
        assert!((rate * (row.t_s - prev) - row.completed as f64).abs() < 1e-6);
        prev = row.t_s;
    }
    // Latency over time: the CSV's values, with gaps where nothing completed.
    let p99 = ys(chart(&cs, "latency-over-time"), "p99");
    for (row, y) in rows.iter().zip(p99) {
        if row.completed == 0 {
            assert!(y.is_nan());
        } else {
            assert_eq!(y, row.latency_p99_ms);
        }
    }
    // x values are the interval ends, and the axis spans the run.
    let xs: Vec<f64> = chart(&cs, "backlog").series[0].points.iter().map(|p| p.0).collect();
    assert_eq!(xs, col(&|r| r.t_s));
    assert_eq!(chart(&cs, "backlog").x, XAxis::Time { end_s: 640.0 });
}

#[test]
fn every_time_chart_shades_the_faults() {
    let r = fixture::report();
    for c in charts::run_charts(&r).iter().filter(|c| matches!(c.x, XAxis::Time { .. })) {
        let got: Vec<(f64, f64, &str)> =
            c.shades.iter().map(|s| (s.from, s.to, s.label.as_str())).collect();
        assert_eq!(
            got,
            [
                (180.0, 240.0, "payments outage"),
                (360.0, 420.0, "consumer crash"),
                (480.0, 540.0, "payments latency")
            ],
            "{}",
            c.id
        );
    }
}

#[test]
fn spectrum_matches_the_histograms_and_summary() {
    let r = fixture::report();
    let cs = charts::run_charts(&r);
    let spec = chart(&cs, "latency-spectrum");
    let labels: Vec<&str> = spec.series.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["end_to_end", "queue_wait", "handler", "accept"]);
    for s in &spec.series {
        let rows = r.histograms[&s.label].percentiles_ms();
        let expected: Vec<(f64, f64)> = rows
            .iter()
            .filter(|p| p.quantile < 1.0)
            .map(|p| (nines(p.quantile), p.value_ms))
            .collect();
        assert_eq!(s.points, expected);
        // The summary's p50/p99 sit between the spectrum points around x = log10(2) and 2.
        let sum = &r.summary.latency[&s.label];
        for (x, q) in [(2f64.log10(), sum.p50_ms), (2.0, sum.p99_ms)] {
            let below = s.points.iter().rfind(|p| p.0 <= x + 1e-9).unwrap().1;
            let above = s.points.iter().find(|p| p.0 >= x - 1e-9).unwrap().1;
            assert!(
                below <= q + 1e-3 && q <= above + 1e-3,
                "{}: {below} <= {q} <= {above}",
                s.label
            );
        }
        assert!(s.points.last().unwrap().1 <= sum.max_ms + 1e-3);
    }
    assert!(matches!(spec.x, XAxis::Nines { max } if max >= 3));
}

#[test]
fn svg_and_png_are_deterministic_and_show_text() -> TestResult {
    let r = fixture::report();
    let cs = charts::run_charts(&r);
    let started = std::time::Instant::now();
    for c in &cs {
        let (a, b) = (charts::svg(c)?, charts::svg(c)?);
        assert_eq!(a, b, "{} svg", c.id);
        assert!(a.contains(&c.title), "{} svg lacks its title", c.id);
        let (pa, pb) = (charts::png(c)?, charts::png(c)?);
        assert_eq!(pa, pb, "{} png", c.id);
        assert_eq!(&pa[1..4], b"PNG");
        // Not blank: the encoded image of a white canvas is tiny.
        assert!(pa.len() > 8_000, "{} png only {} bytes", c.id, pa.len());
    }
    eprintln!("rendered {} charts twice as SVG and PNG in {:?}", cs.len(), started.elapsed());
    let backlog = charts::svg(chart(&cs, "backlog"))?;
    for label in ["payments outage", "consumer crash", "payments latency", "backlog (waiting)"] {
        assert!(backlog.contains(label), "backlog svg lacks {label}");
    }
    let spectrum = charts::svg(chart(&cs, "latency-spectrum"))?;
    for label in ["90%", "99%", "99.9%"] {
        assert!(spectrum.contains(&format!("\n{label}\n")), "spectrum svg lacks {label}");
    }
    Ok(())
}

#[test]
fn pattern_state_columns_get_charts_grouped_by_kind() {
    let mut r = fixture::report();
    r.state_columns = ["breaker.open", "fan_out.billing.pending", "fan_out.audit.pending"]
        .map(String::from)
        .to_vec();
    for (i, row) in r.timeseries.iter_mut().enumerate() {
        row.state = vec![(i % 2) as f64, i as f64, 2.0 * i as f64];
    }
    let cs = charts::run_charts(&r);
    let ids: Vec<&str> = cs.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(&ids[ids.len() - 2..], ["state-breaker-open", "state-fan_out-pending"]);
    let n = r.timeseries.len();
    assert_eq!(ys(chart(&cs, "state-breaker-open"), "breaker.open").len(), n);
    let pending = chart(&cs, "state-fan_out-pending");
    assert_eq!(pending.title, "Pattern state: fan_out.*.pending");
    assert_eq!(ys(pending, "audit"), (0..n).map(|i| 2.0 * i as f64).collect::<Vec<_>>());
    assert_eq!(ys(pending, "billing"), (0..n).map(|i| i as f64).collect::<Vec<_>>());
}

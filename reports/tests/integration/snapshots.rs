use crate::fixture;
use std::path::Path;

/// Compares `actual` with `tests/data/<name>`, or rewrites it when `SNAP_UPDATE=1`.
fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    if std::env::var("SNAP_UPDATE").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}; run with SNAP_UPDATE=1", path.display()));
    if expected == actual {
        return;
    }
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let i = e.iter().zip(&a).position(|(x, y)| x != y).unwrap_or(e.len().min(a.len()));
    panic!(
        "{name} differs from the golden file at line {}:\n  expected: {:?}\n  actual:   {:?}\n\
         (SNAP_UPDATE=1 rewrites tests/data/{name})",
        i + 1,
        e.get(i),
        a.get(i)
    );
}

#[test]
fn summary_json() {
    let r = fixture::report();
    snapshot("summary.json", std::str::from_utf8(&r.summary.to_json()).unwrap());
}

#[test]
fn summary_has_design_fields_and_evaluated_expectations() {
    let v = fixture::report().summary.to_value();
    for path in [
        "schema",
        "seed",
        "sim_time_s",
        "drained",
        "messages.produced",
        "messages.rejected",
        "messages.completed",
        "messages.dead_lettered",
        "messages.expired",
        "messages.lost",
        "messages.in_flight",
        "messages.deliveries",
        "messages.duplicates",
        "throughput.completed_per_s",
        "backlog.peak",
        "backlog.mean",
        "little.arrival_rate_per_s",
        "little.mean_in_system",
        "little.mean_sojourn_s",
        "services.payments.calls",
        "services.payments.errors",
        "queue.operations",
        "extra.retry.attempts_max",
    ] {
        reports::expect::check_metric(&v, path).unwrap();
    }
    for name in ["end_to_end", "queue_wait", "handler", "accept"] {
        for f in ["count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"] {
            reports::expect::check_metric(&v, &format!("latency.{name}.{f}")).unwrap();
        }
    }
    assert_eq!(v["schema"], 1);
    let ex = v["expectations"].as_array().unwrap();
    assert_eq!(ex.len(), 4);
    assert_eq!(ex[0]["pass"], true);
    assert_eq!(ex[2]["pass"], false);
    assert_eq!(ex[2]["actual"], 12.0);
    assert!(ex[3]["error"].as_str().unwrap().contains("did you mean `latency.end_to_end.p99_ms`"));
    // Little: L / (λW), consistent with the fields it is made of.
    let l = &v["little"];
    let lw = l["arrival_rate_per_s"].as_f64().unwrap() * l["mean_sojourn_s"].as_f64().unwrap();
    assert!((l["lambda_w"].as_f64().unwrap() - lw).abs() < 1e-3);
}

#[test]
fn timeseries_csv() {
    let mut buf = Vec::new();
    reports::timeseries::write_csv(&fixture::report().timeseries, &[], &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(text.starts_with(
        "t_s,arrivals,completed,failed,dead_lettered,backlog,in_flight,instances,expired,rejected,\
         latency_p50_ms,latency_p99_ms,cost_usd,web_latency_ms,in_progress\n"
    ));
    snapshot("timeseries.csv", &text);
}

#[test]
fn report_md() {
    snapshot("report.md", &reports::markdown::report(&fixture::report()));
}

#[test]
fn text_summary() {
    let text = reports::text::summary(&fixture::report());
    snapshot("summary.txt", &text);
    assert!(text.contains("FAIL  messages.dead_lettered <= 5"));
    assert!(text.contains("replay      sluice run"));
}

#[test]
fn hgrm() {
    let r = fixture::report();
    snapshot("end_to_end.hgrm", &reports::hist::to_hgrm(&r.histograms["end_to_end"]));
}

#[test]
fn skeleton_validates_expect_paths_before_a_run() {
    let v = reports::Summary::skeleton(&fixture::scenario(), &["end_to_end", "handler"], &[])
        .to_value();
    assert!(reports::expect::check_metric(&v, "latency.handler.p99_ms").is_ok());
    assert!(reports::expect::check_metric(&v, "services.payments.errors").is_ok());
    let err = reports::expect::check_metric(&v, "services.payment.errors").unwrap_err();
    assert!(err.to_string().contains("did you mean `services.payments.errors`"), "{err}");
    assert_eq!(v["scenario"], "orders-outage");
}

#[test]
fn formats_parse_from_the_command_line() {
    use reports::Formats;
    assert_eq!(
        "html,md".parse::<Formats>().unwrap(),
        Formats { html: true, md: true, png: false, svg: false }
    );
    assert_eq!("all".parse::<Formats>().unwrap(), Formats::all());
    assert_eq!("".parse::<Formats>().unwrap(), Formats::data_only());
    assert!("pdf".parse::<Formats>().unwrap_err().contains("unknown report format `pdf`"));
}

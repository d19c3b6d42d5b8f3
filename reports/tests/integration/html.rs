use crate::{TestResult, fixture, scratch};
use reports::{Formats, write_run_dir};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn page_is_self_contained_and_complete() -> TestResult {
    let r = fixture::report();
    let page = reports::html::report(&r)?;
    let lower = page.to_lowercase();
    for banned in ["<script", "src=", "href=", "url(", "@import", "<link"] {
        assert!(!lower.contains(banned), "report.html contains {banned}");
    }
    // The only URL is the SVG namespace, which is never fetched.
    let urls = lower.matches("http").count();
    assert_eq!(urls, lower.matches("http://www.w3.org/2000/svg").count());
    assert_eq!(page.matches("<svg").count(), reports::charts::run_charts(&r).len());
    for needle in [
        "orders-outage",
        "sluice run scenarios/chaos/orders-outage.toml --seed 42",
        "seed <b>42</b>",
        "Orders flow through a Service Bus queue",
        "<pre class=\"toml\">name = &quot;orders-outage&quot;",
        "FAIL 2/4",
        "<code>messages.dead_lettered</code>",
        "did you mean <code>latency.end_to_end.p99_ms</code>?",
        "Message ledger",
        "drain time</div><div class=\"v\">32.5 s<",
        "every produced message is accounted for",
        "Fault timeline",
        "2 instances, restart after 1m",
        "commit <code>0123abc</code>",
    ] {
        assert!(page.contains(needle), "report.html lacks {needle:?}");
    }
    assert_eq!(page, reports::html::report(&r)?, "not deterministic");
    Ok(())
}

/// Decodes a PNG and returns (width, height, distinct colours among sampled pixels, share of
/// the most common colour).
fn png_stats(path: &Path) -> (u32, u32, usize, f64) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bpp = info.line_size / info.width as usize;
    let mut counts = std::collections::BTreeMap::new();
    let mut n = 0usize;
    for px in buf[..info.buffer_size()].chunks(bpp).step_by(7) {
        *counts.entry(px[..3.min(bpp)].to_vec()).or_insert(0usize) += 1;
        n += 1;
    }
    let top = counts.values().max().copied().unwrap_or(0);
    (info.width, info.height, counts.len(), top as f64 / n as f64)
}

/// Screenshots `html` with headless Chromium into `png`; false when it did not finish.
fn screenshot(html: &Path, png: &Path, height: u32) -> bool {
    let profile = html.parent().unwrap().join("chromium-profile");
    let mut child = Command::new("/usr/bin/chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size=1280,{height}"))
        .arg(format!("file://{}", html.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return png.is_file();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

#[test]
fn chromium_renders_the_report() -> TestResult {
    if !Path::new("/usr/bin/chromium").exists() {
        println!("note: /usr/bin/chromium not found; skipping the screenshot check");
        return Ok(());
    }
    let dir = scratch("html-chromium");
    write_run_dir(&dir, &fixture::report(), &Formats { png: false, svg: false, ..Formats::all() })?;
    let shot = dir.join("screenshot.png");
    assert!(screenshot(&dir.join("report.html"), &shot, 3000), "chromium made no screenshot");
    let (w, h, colours, top) = png_stats(&shot);
    assert_eq!((w, h), (1280, 3000));
    assert!(std::fs::metadata(&shot)?.len() > 50_000, "screenshot suspiciously small");
    assert!(colours > 50, "only {colours} colours: the page looks blank");
    assert!(top < 0.9, "one colour covers {:.0}% of the page", top * 100.0);
    Ok(())
}

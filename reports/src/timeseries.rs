//! `timeseries.csv`: one row per interval.
//!
//! `sluice run` streams the file while the run goes ([`CsvStream`], fed by the simulator's
//! [`sim::model::series::SeriesSink`]), so it holds every interval whatever the run's length;
//! a [`crate::RunReport`] keeps only the bounded downsample the charts need
//! ([`sim::model::series`] says how rows are merged). [`write_csv`] writes a report's rows in
//! the same format, and [`read_csv`] reads a file back into that same downsample.

use crate::model::TimeseriesRow;
use sim::model::series::{Downsampled, Merge};
use std::io;

/// The CSV header, design.md's columns first.
pub const COLUMNS: [&str; 15] = [
    "t_s",
    "arrivals",
    "completed",
    "failed",
    "dead_lettered",
    "backlog",
    "in_flight",
    "instances",
    "expired",
    "rejected",
    "latency_p50_ms",
    "latency_p99_ms",
    "cost_usd",
    "web_latency_ms",
    "in_progress",
];

/// Writes `timeseries.csv` one row at a time: the header on creation, then each row as it
/// comes. The bytes are those the `csv` crate writes for [`TimeseriesRow`] through serde (the
/// same `itoa` and `ryu` formatting; numbers never need quotes), without its per-field
/// scanning: a run at a 1 ms interval writes millions of rows.
pub struct CsvStream<W: io::Write> {
    out: W,
    buf: Vec<u8>,
    /// The header has not been written yet: it is, with the pattern-state columns, before
    /// the first row (or when the stream is flushed).
    header_pending: bool,
    state_columns: Vec<String>,
}

impl<W: io::Write> CsvStream<W> {
    const FLUSH_AT: usize = 1 << 16;

    /// Starts the file. Its header is written with the first row: [`COLUMNS`], then the
    /// pattern-state columns ([`CsvStream::state_columns`], or those of the first interval
    /// streamed).
    pub fn new(out: W) -> Result<CsvStream<W>, csv::Error> {
        let buf = Vec::with_capacity(Self::FLUSH_AT + 512);
        Ok(CsvStream { out, buf, header_pending: true, state_columns: Vec::new() })
    }

    /// Names the pattern-state columns (before the first row).
    pub fn state_columns(mut self, columns: &[String]) -> Self {
        self.state_columns = columns.to_vec();
        self
    }

    fn header(&mut self) {
        if !self.header_pending {
            return;
        }
        self.header_pending = false;
        self.buf.extend_from_slice(COLUMNS.join(",").as_bytes());
        for c in &self.state_columns {
            self.buf.push(b',');
            self.buf.extend_from_slice(c.as_bytes());
        }
        self.buf.push(b'\n');
    }

    /// Writes one row.
    pub fn row(&mut self, r: &TimeseriesRow) -> Result<(), csv::Error> {
        self.header();
        let mut ints = itoa::Buffer::new();
        let mut floats = ryu::Buffer::new();
        let b = &mut self.buf;
        b.extend_from_slice(floats.format(r.t_s).as_bytes());
        for n in [r.arrivals, r.completed, r.failed, r.dead_lettered, r.backlog, r.in_flight] {
            b.push(b',');
            b.extend_from_slice(ints.format(n).as_bytes());
        }
        b.push(b',');
        b.extend_from_slice(ints.format(r.instances).as_bytes());
        for n in [r.expired, r.rejected] {
            b.push(b',');
            b.extend_from_slice(ints.format(n).as_bytes());
        }
        for x in [r.latency_p50_ms, r.latency_p99_ms, r.cost_usd, r.web_latency_ms] {
            b.push(b',');
            b.extend_from_slice(floats.format(x).as_bytes());
        }
        b.push(b',');
        b.extend_from_slice(ints.format(r.in_progress).as_bytes());
        for x in &r.state {
            b.push(b',');
            b.extend_from_slice(floats.format(*x).as_bytes());
        }
        b.push(b'\n');
        if b.len() >= Self::FLUSH_AT {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes one interval of the simulator's time series.
    pub fn interval(&mut self, row: &sim::results::IntervalRow) -> Result<(), csv::Error> {
        if self.header_pending && self.state_columns.is_empty() {
            self.state_columns = row.state_columns.to_vec();
        }
        self.row(&TimeseriesRow::from(row))
    }

    /// Hands every row written so far to the underlying writer, and flushes it.
    pub fn flush(&mut self) -> Result<(), csv::Error> {
        self.header();
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.flush()?;
        Ok(())
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> Result<W, csv::Error> {
        self.flush()?;
        Ok(self.out)
    }
}

/// Writes the rows as CSV with a header (also when there are no rows); `state_columns` names
/// the rows' pattern-state values.
pub fn write_csv<W: io::Write>(
    rows: &[TimeseriesRow],
    state_columns: &[String],
    out: W,
) -> Result<(), csv::Error> {
    let mut w = CsvStream::new(out)?.state_columns(state_columns);
    for r in rows {
        w.row(r)?;
    }
    w.finish()?;
    Ok(())
}

/// Reads rows written by [`write_csv`] or [`CsvStream`], downsampled as the simulator
/// downsamples them (at most [`Downsampled::DEFAULT_CAP`] rows; a file with fewer rows is
/// read exactly). Memory stays bounded whatever the file's length.
///
/// Columns after [`COLUMNS`] are the pattern's state (gauges); they are returned, in file
/// order, with the rows.
///
/// Files written before the `in_progress` column existed used `in_flight` for what is now
/// `in_progress` (messages held, not waiting); they are read in today's meaning
/// (`in_flight = backlog + in_progress`).
pub fn read_csv<R: io::Read>(input: R) -> Result<(Vec<TimeseriesRow>, Vec<String>), csv::Error> {
    let mut d = Downsampled::new(Downsampled::<TimeseriesRow>::DEFAULT_CAP);
    let mut reader = csv::Reader::from_reader(input);
    let headers = reader.headers()?.clone();
    let old = !headers.iter().any(|h| h == "in_progress");
    let state: Vec<(usize, String)> = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| !COLUMNS.contains(h))
        .map(|(i, h)| (i, h.to_string()))
        .collect();
    for record in reader.records() {
        let record = record?;
        let mut row: TimeseriesRow = record.deserialize(Some(&headers))?;
        if old {
            row.in_progress = row.in_flight;
            row.in_flight = row.backlog + row.in_progress;
        }
        row.state = state
            .iter()
            .map(|(i, _)| record.get(*i).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN))
            .collect();
        d.push(row);
    }
    d.finish();
    Ok((d.to_vec(), state.into_iter().map(|(_, c)| c).collect()))
}

/// The same merge as [`sim::results::IntervalRow`]'s, on rounded values (every merge there is
/// a sum, a max or the later value, and all commute with the rounding).
impl Merge for TimeseriesRow {
    fn merge(&mut self, b: &TimeseriesRow) {
        self.t_s = b.t_s;
        self.arrivals += b.arrivals;
        self.completed += b.completed;
        self.failed += b.failed;
        self.dead_lettered += b.dead_lettered;
        self.expired += b.expired;
        self.rejected += b.rejected;
        self.backlog = self.backlog.max(b.backlog);
        self.in_flight = self.in_flight.max(b.in_flight);
        self.in_progress = self.in_progress.max(b.in_progress);
        self.instances = self.instances.max(b.instances);
        self.cost_usd = b.cost_usd;
        self.web_latency_ms = self.web_latency_ms.max(b.web_latency_ms);
        self.latency_p50_ms = self.latency_p50_ms.max(b.latency_p50_ms);
        self.latency_p99_ms = self.latency_p99_ms.max(b.latency_p99_ms);
        sim::model::series::merge_state(&mut self.state, &b.state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_struct_fields_and_round_trips() {
        let rows = vec![TimeseriesRow {
            t_s: 10.0,
            arrivals: 100,
            completed: 98,
            latency_p50_ms: 12.345,
            ..TimeseriesRow::default()
        }];
        let mut buf = Vec::new();
        write_csv(&rows, &[], &mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert_eq!(text.lines().next().unwrap(), COLUMNS.join(","));
        assert_eq!(text.lines().nth(1).unwrap(), "10.0,100,98,0,0,0,0,0,0,0,12.345,0.0,0.0,0.0,0");
        // serde's field names are the columns.
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(&rows[0]).unwrap();
        let by_serde = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(by_serde.lines().next().unwrap(), COLUMNS.join(","));
        assert_eq!(read_csv(buf.as_slice()).unwrap(), (rows, vec![]));
        let mut empty = Vec::new();
        write_csv(&[], &[], &mut empty).unwrap();
        assert_eq!(read_csv(empty.as_slice()).unwrap(), (vec![], vec![]));
    }

    #[test]
    fn pattern_state_columns_follow_the_fixed_ones_and_read_back() {
        let columns = vec!["stream.lag".to_string(), "stream.paused".to_string()];
        let rows: Vec<TimeseriesRow> = (1..=3)
            .map(|i| TimeseriesRow {
                t_s: 10.0 * i as f64,
                state: vec![100.0 * i as f64, (i % 2) as f64],
                ..TimeseriesRow::default()
            })
            .collect();
        let mut buf = Vec::new();
        write_csv(&rows, &columns, &mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            format!("{},stream.lag,stream.paused", COLUMNS.join(","))
        );
        assert!(text.lines().nth(2).unwrap().ends_with(",200.0,0.0"), "{text}");
        assert_eq!(read_csv(buf.as_slice()).unwrap(), (rows, columns));
    }

    #[test]
    fn files_from_before_in_progress_are_read_in_todays_meaning() {
        let old = "t_s,arrivals,completed,failed,dead_lettered,backlog,in_flight,instances,\
                   expired,rejected,latency_p50_ms,latency_p99_ms,cost_usd,web_latency_ms\n\
                   10.0,100,98,0,0,3,5,1,0,0,1.0,2.0,0.0,0.0\n";
        let (rows, _) = read_csv(old.as_bytes()).unwrap();
        assert_eq!((rows[0].backlog, rows[0].in_progress, rows[0].in_flight), (3, 5, 8));
    }

    fn interval(i: u64) -> sim::results::IntervalRow {
        sim::results::IntervalRow {
            t: (i + 1) * 10_000_000_000,
            arrivals: 7 * i % 13,
            completed: 3 * i % 11,
            backlog: i * 37 % 101,
            in_flight: i % 3,
            in_progress: i % 2,
            instances: (i % 4) as u32,
            cost_usd: i as f64 * 0.001_234_567,
            web_latency_ns: i * 1_234_567 % 9_999_999,
            latency_p50_ns: i * 7_654_321 % 99_999_999,
            latency_p99_ns: i * 17_654_321 % 999_999_999,
            ..Default::default()
        }
    }

    /// What the `csv` crate writes through serde: the format `timeseries.csv` has always had.
    fn by_csv_crate(rows: &[TimeseriesRow]) -> Vec<u8> {
        let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
        w.write_record(COLUMNS).unwrap();
        for r in rows {
            w.serialize(r).unwrap();
        }
        w.into_inner().unwrap()
    }

    #[test]
    fn the_fast_writer_writes_the_csv_crates_bytes() {
        let mut rows: Vec<TimeseriesRow> =
            (0..3000).map(|i| TimeseriesRow::from(&interval(i))).collect();
        rows.push(TimeseriesRow {
            t_s: 1e17,
            arrivals: u64::MAX,
            instances: u32::MAX,
            latency_p50_ms: 0.001,
            latency_p99_ms: 123_456_789.123,
            cost_usd: 1e-6,
            web_latency_ms: f64::MAX,
            ..TimeseriesRow::default()
        });
        let mut fast = Vec::new();
        write_csv(&rows, &[], &mut fast).unwrap();
        assert_eq!(
            String::from_utf8(fast).unwrap(),
            String::from_utf8(by_csv_crate(&rows)).unwrap()
        );
    }

    #[test]
    fn streaming_writes_the_bytes_of_write_csv() {
        let raw: Vec<_> = (0..50).map(interval).collect();
        let rows: Vec<TimeseriesRow> = raw.iter().map(TimeseriesRow::from).collect();
        let mut at_once = Vec::new();
        write_csv(&rows, &[], &mut at_once).unwrap();
        let mut s = CsvStream::new(Vec::new()).unwrap();
        for r in &raw {
            s.interval(r).unwrap();
        }
        assert_eq!(s.finish().unwrap(), at_once);
    }

    #[test]
    fn reading_a_long_file_gives_the_simulators_downsample() {
        // 3 x the cap plus a partial group: the simulator's merge of the raw rows and the
        // reader's merge of the rounded rows must agree exactly.
        let n = 3 * Downsampled::<TimeseriesRow>::DEFAULT_CAP as u64 + 5;
        let raw: Vec<_> = (0..n).map(interval).collect();
        let mut file = CsvStream::new(Vec::new()).unwrap();
        for r in &raw {
            file.interval(r).unwrap();
        }
        let file = file.finish().unwrap();
        let sim_side = sim::model::series::Series::from_rows(
            raw.iter().cloned(),
            Downsampled::<TimeseriesRow>::DEFAULT_CAP,
        );
        let expected: Vec<TimeseriesRow> = sim_side.iter().map(TimeseriesRow::from).collect();
        let (read, _) = read_csv(file.as_slice()).unwrap();
        assert!(read.len() <= Downsampled::<TimeseriesRow>::DEFAULT_CAP);
        assert!(sim_side.step() > 1);
        assert_eq!(read, expected);
    }
}

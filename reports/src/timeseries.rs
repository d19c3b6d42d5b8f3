//! `timeseries.csv`: one row per interval.

use crate::model::TimeseriesRow;
use std::io;

/// The CSV header, design.md's columns first.
pub const COLUMNS: [&str; 14] = [
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
];

/// Writes the rows as CSV with a header (also when there are no rows).
pub fn write_csv<W: io::Write>(rows: &[TimeseriesRow], out: W) -> Result<(), csv::Error> {
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(out);
    w.write_record(COLUMNS)?;
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(())
}

/// Reads rows written by [`write_csv`].
pub fn read_csv<R: io::Read>(input: R) -> Result<Vec<TimeseriesRow>, csv::Error> {
    csv::Reader::from_reader(input).deserialize().collect()
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
        write_csv(&rows, &mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert_eq!(text.lines().next().unwrap(), COLUMNS.join(","));
        assert_eq!(text.lines().nth(1).unwrap(), "10.0,100,98,0,0,0,0,0,0,0,12.345,0.0,0.0,0.0");
        // serde's field names are the columns.
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(&rows[0]).unwrap();
        let by_serde = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(by_serde.lines().next().unwrap(), COLUMNS.join(","));
        assert_eq!(read_csv(buf.as_slice()).unwrap(), rows);
        let mut empty = Vec::new();
        write_csv(&[], &mut empty).unwrap();
        assert_eq!(read_csv(empty.as_slice()).unwrap(), vec![]);
    }
}

//! SQLite (rusqlite, bundled, FTS5 compiled in): the same table in WAL mode
//! with `synchronous=FULL`, the same B-tree indexes, an external-content FTS5
//! table kept by a trigger, and the query kinds as SQL.

use std::path::Path;

use chrono::{DateTime, Utc};
use evlog::index::Query;
use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::{Connection, ToSql, params_from_iter};

use super::sql::{self, Answer, COLUMNS, Dialect, Param, Row, Stats};
use crate::common::sqlite::open_durable;

/// The table (times as µs since the epoch; files and metadata as JSON text).
pub const TABLE: &str = "
CREATE TABLE events (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  ts INTEGER NOT NULL,
  event_type TEXT NOT NULL,
  user_id TEXT NOT NULL,
  action_description TEXT NOT NULL,
  status TEXT NOT NULL,
  level TEXT NOT NULL,
  files_changed TEXT NOT NULL,
  comments TEXT,
  metadata TEXT,
  request_id TEXT,
  source_ip TEXT,
  duration_ms REAL
);
CREATE VIRTUAL TABLE events_fts USING fts5(
  action_description, comments, files_changed, metadata, content='events', content_rowid='seq'
);";

/// The secondary indexes, the same as PostgreSQL's (FTS5 in place of GIN).
pub const INDEXES: &str = "
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_user_ts ON events (user_id, ts);
CREATE INDEX events_type_ts ON events (event_type, ts);
CREATE INDEX events_request_id ON events (request_id);";

/// Keeps the FTS5 table in step with inserts.
pub const TRIGGER: &str = "
CREATE TRIGGER events_ai AFTER INSERT ON events BEGIN
  INSERT INTO events_fts (rowid, action_description, comments, files_changed, metadata)
  VALUES (new.seq, new.action_description, new.comments, new.files_changed, new.metadata);
END;";

/// Opens a connection: WAL, `synchronous=FULL`, a 60 s busy timeout, a
/// 256 MiB page cache, memory-mapped reads, and `percentile_disc`.
pub fn open(path: &Path) -> Connection {
    let c = open_durable(path);
    c.execute_batch("PRAGMA cache_size=-262144; PRAGMA mmap_size=17179869184")
        .expect("pragmas");
    c.create_aggregate_function(
        "percentile_disc",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        PercentileDisc,
    )
    .expect("percentile_disc");
    c
}

/// Creates the table; with `indexes`, also the indexes and the FTS trigger.
pub fn create(c: &Connection, indexes: bool) {
    c.execute_batch(TABLE).expect("create table");
    if indexes {
        c.execute_batch(INDEXES).expect("indexes");
        c.execute_batch(TRIGGER).expect("trigger");
    }
}

/// Builds the indexes and the full-text index of rows loaded without them.
pub fn index_after_load(c: &Connection) {
    c.execute_batch(INDEXES).expect("indexes");
    c.execute_batch("INSERT INTO events_fts (events_fts) VALUES ('rebuild')")
        .expect("fts rebuild");
    c.execute_batch(TRIGGER).expect("trigger");
    c.execute_batch("ANALYZE").expect("analyze");
}

/// The row count.
pub fn count(c: &Connection) -> u64 {
    c.query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0))
        .expect("count") as u64
}

/// Inserts `r` (its `seq` when it has one, else the next rowid).
pub fn insert(c: &Connection, r: &Row) {
    let mut st = c
        .prepare_cached(&format!(
            "INSERT INTO events ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ))
        .expect("prepare insert");
    st.execute(rusqlite::params![
        r.seq,
        r.id.to_string(),
        r.ts.timestamp_micros(),
        r.event_type,
        r.user_id,
        r.action_description,
        r.status,
        r.level,
        serde_json::to_string(&r.files_changed).expect("json"),
        r.comments,
        r.metadata.as_ref().map(|m| m.to_string()),
        r.request_id,
        r.source_ip,
        r.duration_ms,
    ])
    .expect("insert");
}

fn bind(params: &[Param]) -> Vec<Box<dyn ToSql>> {
    params
        .iter()
        .map(|p| -> Box<dyn ToSql> {
            match p {
                Param::Ts(t) => Box::new(t.timestamp_micros()),
                Param::Text(s) => Box::new(s.clone()),
            }
        })
        .collect()
}

/// The total and the 100 newest matches (every column read).
pub fn page(c: &Connection, q: &Query, now: DateTime<Utc>) -> Answer {
    let w = sql::where_clause(q, Dialect::Sqlite, now);
    let p = bind(&w.params);
    let total: i64 = c
        .prepare_cached(&format!("SELECT count(*) FROM events WHERE {}", w.sql))
        .expect("prepare count")
        .query_row(params_from_iter(p.iter()), |r| r.get(0))
        .expect("count");
    let mut st = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM events WHERE {} ORDER BY ts DESC, seq DESC LIMIT {}",
            w.sql,
            q.limit()
        ))
        .expect("prepare page");
    let ids = st
        .query_map(params_from_iter(p.iter()), |r| {
            let _: (i64, i64, String, String, String, String, String) = (
                r.get(0)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            );
            let _: (String, Option<String>, Option<String>) = (r.get(8)?, r.get(9)?, r.get(10)?);
            let _: (Option<String>, Option<String>, Option<f64>) =
                (r.get(11)?, r.get(12)?, r.get(13)?);
            r.get::<_, String>(1)
        })
        .expect("page")
        .collect::<Result<Vec<String>, _>>()
        .expect("page rows");
    Answer::Page {
        total: total as u64,
        ids,
    }
}

/// The statistics: one grouped scan for the counts, buckets and mean; one
/// for distinct users and the duration percentiles.
pub fn stats(c: &Connection, q: &Query, now: DateTime<Utc>) -> Answer {
    let w = sql::where_clause(q, Dialect::Sqlite, now);
    let p = bind(&w.params);
    let iv = sql::histogram_interval(q, now);
    let mut s = Stats::default();
    let (mut sum, mut n_dur) = (0f64, 0i64);
    let mut st = c
        .prepare_cached(&format!(
            "SELECT event_type, status, level, ts / {iv} * {iv}, count(*), sum(duration_ms), \
             count(duration_ms) FROM events WHERE {} GROUP BY 1, 2, 3, 4",
            w.sql
        ))
        .expect("prepare stats");
    let mut rows = st.query(params_from_iter(p.iter())).expect("stats");
    while let Some(r) = rows.next().expect("stats row") {
        let n = r.get::<_, i64>(4).expect("count") as u64;
        s.total += n;
        *s.by_type.entry(r.get(0).expect("type")).or_default() += n;
        *s.by_status.entry(r.get(1).expect("status")).or_default() += n;
        *s.by_level.entry(r.get(2).expect("level")).or_default() += n;
        *s.histogram.entry(r.get(3).expect("bucket")).or_default() += n;
        sum += r.get::<_, Option<f64>>(5).expect("sum").unwrap_or(0.0);
        n_dur += r.get::<_, i64>(6).expect("count");
    }
    s.avg_duration_ms = (n_dur > 0).then(|| sum / n_dur as f64);
    let (users, p50, p95, p99): (i64, Option<f64>, Option<f64>, Option<f64>) = c
        .prepare_cached(&format!(
            "SELECT count(DISTINCT user_id), percentile_disc(duration_ms, 0.5), \
             percentile_disc(duration_ms, 0.95), percentile_disc(duration_ms, 0.99) \
             FROM events WHERE {}",
            w.sql
        ))
        .expect("prepare users")
        .query_row(params_from_iter(p.iter()), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .expect("users");
    s.unique_users = users as u64;
    s.percentiles = match (p50, p95, p99) {
        (Some(a), Some(b), Some(c)) => Some([a, b, c]),
        _ => None,
    };
    Answer::Stats(Box::new(s))
}

/// `percentile_disc(x, p)`: the nearest-rank `p` (0..1) quantile of the
/// non-null `x`, like PostgreSQL's and SQLite's own percentile extension
/// (which the bundled build does not compile in).
struct PercentileDisc;

impl Aggregate<(Vec<f64>, f64), Option<f64>> for PercentileDisc {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<(Vec<f64>, f64)> {
        Ok((Vec::new(), 0.5))
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut (Vec<f64>, f64)) -> rusqlite::Result<()> {
        if let Some(x) = ctx.get::<Option<f64>>(0)? {
            acc.0.push(x);
        }
        acc.1 = ctx.get(1)?;
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut Context<'_>,
        acc: Option<(Vec<f64>, f64)>,
    ) -> rusqlite::Result<Option<f64>> {
        let Some((mut v, p)) = acc else {
            return Ok(None);
        };
        if v.is_empty() {
            return Ok(None);
        }
        let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
        let (_, x, _) = v.select_nth_unstable_by(rank - 1, f64::total_cmp);
        Ok(Some(*x))
    }
}

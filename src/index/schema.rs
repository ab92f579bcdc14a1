//! The tantivy schema of the event index and the mapping of a stored line to
//! a document.
//!
//! | field | kind | why |
//! |---|---|---|
//! | `timestamp` | date (µs), fast | range filters (via [`super::timeline`]), newest-first order, histograms |
//! | `seq` | u64, fast | tie-break of the order, cursors, `after_seq` (live tail) |
//! | `day` | u64 (days since 1970-01-01), indexed | the day file a document came from (retention deletes by it) |
//! | `id`, `request_id`, `source` | exact string | lookups, filters |
//! | `event_type`, `status`, `level`, `user_id` | exact string + fast | filters and terms aggregations |
//! | `tenant` | exact string, on every document | the tenant filter; the default tenant as [`DEFAULT_TENANT`](crate::event::DEFAULT_TENANT) (`_`, no tenant's name) |
//! | `text` | text | `q`: description, comments, files and every metadata string value |
//! | `runs` | runs of tokens | per word of `text` with several tokens, the run of up to [`MAX_RUN`] tokens from each token: `lib.rs` is a lookup of the terms starting `lib␟rs` |
//! | `metadata` | JSON, text-indexed (no positions) | `metadata.key` terms |
//! | `target` | exact string + fast | on `event_resolved` / `event_reopened` documents, the id they name (see [`super::resolved`]) |
//! | `duration_ms` | f64 fast | avg / percentiles |
//! | `line` | stored bytes | the stored line, returned as is |
//!
//! Tokenizer `evlog`: split on anything not alphanumeric, lowercase, no
//! stemming, tokens longer than 100 bytes dropped.

use chrono::NaiveDate;
use serde_json::Value;
use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Field, INDEXED, IndexRecordOption, JsonObjectOptions,
    STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, Token, TokenStream, Tokenizer,
};
use tantivy::{DateTime, Index, TantivyDocument};

use crate::store::Record;

/// Name of the tokenizer of `text` and `metadata`.
pub const TOKENIZER: &str = "evlog";
/// Name of the tokenizer of `runs`.
pub const RUNS_TOKENIZER: &str = "evlog_runs";

/// Handles to the fields of the schema.
#[derive(Debug, Clone)]
pub struct Fields {
    /// The schema itself.
    pub schema: Schema,
    /// Event time.
    pub timestamp: Field,
    /// Chain position.
    pub seq: Field,
    /// Day file (days since the epoch).
    pub day: Field,
    /// Event id.
    pub id: Field,
    /// Event type.
    pub event_type: Field,
    /// Status.
    pub status: Field,
    /// Level.
    pub level: Field,
    /// User id.
    pub user_id: Field,
    /// Request id.
    pub request_id: Field,
    /// Emitting service.
    pub source: Field,
    /// Tenant ([`crate::event::DEFAULT_TENANT`] for the default tenant).
    pub tenant: Field,
    /// Full text.
    pub text: Field,
    /// Token runs within one word of the text (see [`run_term`]).
    pub runs: Field,
    /// Metadata object.
    pub metadata: Field,
    /// The event a resolution names.
    pub target: Field,
    /// Duration.
    pub duration_ms: Field,
    /// The stored line.
    pub line: Field,
}

impl Fields {
    /// Builds the schema.
    pub fn new() -> Fields {
        let mut b = Schema::builder();
        // `timestamp` and `seq` are unique per document: in the inverted
        // index they would cost a term each, and every query on them (time
        // ranges, `after_seq`) reads the columns instead.
        let timestamp = b.add_date_field(
            "timestamp",
            DateOptions::default()
                .set_fast()
                .set_precision(DateTimePrecision::Microseconds),
        );
        let seq = b.add_u64_field("seq", FAST);
        let day = b.add_u64_field("day", INDEXED);
        let id = b.add_text_field("id", STRING);
        let event_type = b.add_text_field("event_type", STRING | FAST);
        let status = b.add_text_field("status", STRING | FAST);
        let level = b.add_text_field("level", STRING | FAST);
        let user_id = b.add_text_field("user_id", STRING | FAST);
        let request_id = b.add_text_field("request_id", STRING);
        let source = b.add_text_field("source", STRING);
        let tenant = b.add_text_field("tenant", STRING);
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let text = b.add_text_field(
            "text",
            TextOptions::default().set_indexing_options(indexing.clone()),
        );
        let runs = b.add_text_field(
            "runs",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(RUNS_TOKENIZER)
                    .set_index_option(IndexRecordOption::Basic),
            ),
        );
        // `metadata.key:value` terms, without positions (no API asks for a
        // phrase inside one metadata value; `q` phrases use `text`).
        let metadata = b.add_json_field(
            "metadata",
            JsonObjectOptions::default()
                .set_indexing_options(indexing.set_index_option(IndexRecordOption::Basic)),
        );
        let target = b.add_text_field("target", STRING | FAST);
        let duration_ms = b.add_f64_field("duration_ms", FAST);
        let line = b.add_bytes_field("line", STORED);
        Fields {
            schema: b.build(),
            timestamp,
            seq,
            day,
            id,
            event_type,
            status,
            level,
            user_id,
            request_id,
            source,
            tenant,
            text,
            runs,
            metadata,
            target,
            duration_ms,
            line,
        }
    }

    /// Loads the field handles of an existing index, checking its schema.
    pub fn of(index: &Index) -> Result<Fields, String> {
        let expected = Fields::new();
        if index.schema() != expected.schema {
            return Err("the index was built with another schema; run `evlog reindex`".into());
        }
        Ok(expected)
    }

    /// The document of one stored line.
    pub fn document(&self, rec: &Record, day: NaiveDate, line: &[u8]) -> TantivyDocument {
        let e = &rec.event;
        let mut doc = TantivyDocument::new();
        if let Some(ts) = e.timestamp {
            doc.add_date(self.timestamp, to_tantivy(ts));
        }
        doc.add_u64(self.seq, rec.seq);
        doc.add_u64(self.day, day_number(day));
        if let Some(id) = e.id {
            doc.add_text(self.id, id.to_string());
        }
        doc.add_text(self.event_type, e.event_type.as_str());
        doc.add_text(self.status, e.status.as_str());
        doc.add_text(self.level, e.level.as_str());
        doc.add_text(self.user_id, &e.user_id);
        if let Some(r) = &e.request_id {
            doc.add_text(self.request_id, r);
        }
        if let Some(s) = &e.source {
            doc.add_text(self.source, s);
        }
        doc.add_text(self.tenant, e.tenant_or_default());
        let mut texts: Vec<&str> = vec![&e.action_description];
        texts.extend(e.comments.as_deref());
        texts.extend(e.files_changed.iter().map(String::as_str));
        if let Some(meta) = &e.metadata {
            collect_strings(meta, &mut texts);
        }
        for t in &texts {
            doc.add_text(self.text, t);
            // Only a word of several tokens has runs.
            if t.split_whitespace().any(punctuated) {
                doc.add_text(self.runs, t);
            }
        }
        if let Some(Value::Object(map)) = &e.metadata {
            doc.add_object(
                self.metadata,
                map.iter()
                    .map(|(k, v)| (k.clone(), v.clone().into()))
                    .collect(),
            );
        }
        if let Some((_, target)) = crate::resolution::target_of(e) {
            doc.add_text(self.target, target.to_string());
        }
        if let Some(d) = e.duration_ms {
            doc.add_f64(self.duration_ms, d);
        }
        doc.add_bytes(self.line, line);
        doc
    }
}

impl Default for Fields {
    fn default() -> Self {
        Fields::new()
    }
}

fn collect_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

/// The longest run of tokens of one word indexed as a single `runs` term; a
/// longer `q` piece is searched as a phrase of `text`.
pub const MAX_RUN: usize = 6;

/// The tokens of one word (no whitespace in it), as the `evlog` analyzer
/// makes them, into `out`.
pub fn word_tokens(analyzer: &mut TextAnalyzer, word: &str, out: &mut Vec<String>) {
    out.clear();
    let mut stream = analyzer.token_stream(word);
    while let Some(t) = stream.next() {
        out.push(t.text.clone());
    }
}

/// Whether a word (no whitespace in it) may hold several tokens: only then
/// has it runs.
fn punctuated(word: &str) -> bool {
    word.chars().any(|c| !c.is_alphanumeric())
}

/// Joins the tokens of a run.
const RUN_JOIN: char = '\u{1f}';

/// The `runs` term of consecutive tokens.
pub fn run_term(tokens: &[String]) -> String {
    tokens.join(&RUN_JOIN.to_string())
}

/// The `runs` terms that begin with the run `tokens`: `[run, run + ' ')`
/// holds the run itself and every longer run (`run` + [`RUN_JOIN`] + ...),
/// since tokens never hold a character below `' '`.
pub fn run_range(tokens: &[String]) -> (String, String) {
    let lo = run_term(tokens);
    let hi = format!("{lo} ");
    (lo, hi)
}

/// Registers the `evlog` and `evlog_runs` tokenizers on an index.
pub fn register_tokenizer(index: &Index) {
    index.tokenizers().register(TOKENIZER, analyzer());
    index
        .tokenizers()
        .register(RUNS_TOKENIZER, TextAnalyzer::from(RunsTokenizer::default()));
}

/// The `evlog_runs` tokenizer: for each whitespace-separated word of a
/// text with several tokens (as the `evlog` analyzer makes them), the run
/// of up to [`MAX_RUN`] tokens starting at each of its tokens but the last,
/// joined by [`run_term`]. Any run of 2 to [`MAX_RUN`] consecutive tokens of
/// the word is then the prefix of one of these terms (see [`run_range`]).
/// Its buffers are reused from one text to the next.
#[derive(Clone)]
pub struct RunsTokenizer {
    analyzer: TextAnalyzer,
    words: Vec<String>,
    out: Vec<Token>,
}

impl Default for RunsTokenizer {
    fn default() -> Self {
        RunsTokenizer {
            analyzer: analyzer(),
            words: Vec::new(),
            out: Vec::new(),
        }
    }
}

/// The tokens of a [`RunsTokenizer`].
pub struct RunsStream<'a> {
    tokens: &'a mut [Token],
    next: usize,
}

impl Tokenizer for RunsTokenizer {
    type TokenStream<'a> = RunsStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> RunsStream<'a> {
        let mut n = 0;
        for word in text.split_whitespace() {
            if !punctuated(word) {
                continue;
            }
            word_tokens(&mut self.analyzer, word, &mut self.words);
            let m = self.words.len();
            for i in 0..m.saturating_sub(1) {
                let run = &self.words[i..(i + MAX_RUN).min(m)];
                {
                    if n == self.out.len() {
                        self.out.push(Token::default());
                    }
                    let t = &mut self.out[n];
                    t.text.clear();
                    for (i, w) in run.iter().enumerate() {
                        if i > 0 {
                            t.text.push(RUN_JOIN);
                        }
                        t.text.push_str(w);
                    }
                    t.position = n;
                    t.position_length = 1;
                    n += 1;
                }
            }
        }
        RunsStream {
            tokens: &mut self.out[..n],
            next: 0,
        }
    }
}

impl TokenStream for RunsStream<'_> {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

/// The `evlog` analyzer: alphanumeric runs, lowercased.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(100))
        .filter(LowerCaser)
        .build()
}

/// chrono → tantivy time (microseconds). Tantivy keeps nanoseconds in an
/// `i64`; a time outside [`MIN_TIMESTAMP`](crate::event::MIN_TIMESTAMP) ..=
/// [`MAX_TIMESTAMP`](crate::event::MAX_TIMESTAMP) (refused at append, but a
/// day file may come from elsewhere) is clamped to that range rather than
/// overflowing.
pub fn to_tantivy(ts: chrono::DateTime<chrono::Utc>) -> DateTime {
    let ts = ts.clamp(crate::event::MIN_TIMESTAMP, crate::event::MAX_TIMESTAMP);
    DateTime::from_timestamp_micros(ts.timestamp_micros())
}

/// Days since 1970-01-01.
pub fn day_number(day: NaiveDate) -> u64 {
    (day - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid"))
        .num_days()
        .max(0) as u64
}

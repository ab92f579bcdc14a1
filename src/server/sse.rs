//! Server-sent events framed here rather than by `warp::sse`, so that a live
//! stream sends a whole batch of events (up to a page of 1000) as one body
//! chunk: `warp::sse` sends one chunk per message, and a replay of 60,000
//! events paid a channel send and a chunk write for each.
//!
//! The framing is the one `warp::sse` wrote before, byte for byte: a message
//! is `event:NAME\ndata:DATA\nid:ID\n\n` (no `id:` line when there is no id),
//! a comment `:TEXT\n\n`; an idle stream sends the empty comment `:\n\n`.
//! `DATA` is one line: compact JSON (`serde_json` escapes every control
//! character inside strings, CR and LF included), so no stored text can end
//! a message early or forge one.

use std::convert::Infallible;
use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde_json::Value;
use warp::http::HeaderValue;
use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use warp::reply::{Reply, Response};

/// A comment (`:TEXT\n\n`); `text` must not hold a line end.
pub(crate) fn comment(text: &str) -> Bytes {
    debug_assert!(!text.contains(['\n', '\r']));
    Bytes::from(format!(":{text}\n\n"))
}

/// Appends to `buf` a message `name` whose data is `data` as compact JSON,
/// with `id` if given.
pub(crate) fn message(buf: &mut Vec<u8>, name: &str, data: &Value, id: Option<u64>) {
    buf.extend_from_slice(b"event:");
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\ndata:");
    serde_json::to_writer(&mut *buf, data).expect("writing JSON to memory");
    buf.push(b'\n');
    if let Some(id) = id {
        buf.extend_from_slice(b"id:");
        buf.extend_from_slice(id.to_string().as_bytes());
        buf.push(b'\n');
    }
    buf.push(b'\n');
}

/// One `event` message per stored event (`id:` its `seq`), all in one chunk.
pub(crate) fn events(batch: &[Value]) -> Bytes {
    let mut buf = Vec::with_capacity(batch.len() * 512);
    for e in batch {
        message(&mut buf, "event", e, e["seq"].as_u64());
    }
    buf.into()
}

/// A `text/event-stream` response of `body`, with a keep-alive comment
/// whenever it has sent nothing for `keep_alive`.
pub(crate) fn reply<S>(body: S, keep_alive: Duration) -> Response
where
    S: Stream<Item = Bytes> + Send + Sync + 'static,
{
    let mut r = warp::reply::stream(with_keep_alive(body, keep_alive)).into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `body`, with the empty comment `:\n\n` whenever it has yielded nothing
/// for `every` (as `warp::sse::keep_alive` does); ends with `body`.
fn with_keep_alive<S>(
    body: S,
    every: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + Sync + 'static
where
    S: Stream<Item = Bytes> + Send + Sync + 'static,
{
    let mut body = Box::pin(body);
    let mut timer = Box::pin(tokio::time::sleep(every));
    futures_util::stream::poll_fn(move |cx| match body.as_mut().poll_next(cx) {
        Poll::Ready(Some(chunk)) => {
            timer.as_mut().reset(tokio::time::Instant::now() + every);
            Poll::Ready(Some(Ok(chunk)))
        }
        Poll::Ready(None) => Poll::Ready(None),
        Poll::Pending => match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                timer.as_mut().reset(tokio::time::Instant::now() + every);
                Poll::Ready(Some(Ok(Bytes::from_static(b":\n\n"))))
            }
            Poll::Pending => Poll::Pending,
        },
    })
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use serde_json::json;

    use super::*;

    /// What `warp::sse` wrote for the same message (the framing before).
    fn warp_message(name: &str, data: &Value, id: Option<u64>) -> String {
        let mut e = warp::sse::Event::default()
            .event(name)
            .data(data.to_string());
        if let Some(id) = id {
            e = e.id(id.to_string());
        }
        e.to_string()
    }

    #[test]
    fn messages_and_comments_are_framed_as_warp_framed_them() {
        let batch = vec![
            json!({"seq": 7, "action_description": "a", "metadata": {"k": [1, 2]}}),
            json!({"seq": 8, "action_description": "b"}),
            json!({"no_seq": true}),
        ];
        let want: String = batch
            .iter()
            .map(|e| warp_message("event", e, e["seq"].as_u64()))
            .collect();
        assert_eq!(std::str::from_utf8(&events(&batch)).unwrap(), want);
        assert!(want.starts_with("event:event\ndata:{"), "{want}");
        let end = json!({"error": {"code": "key_revoked", "message": "m"}});
        let mut buf = Vec::new();
        message(&mut buf, "end", &end, None);
        assert_eq!(
            std::str::from_utf8(&buf).unwrap(),
            warp_message("end", &end, None)
        );
        assert_eq!(
            &comment("ready")[..],
            warp::sse::Event::default()
                .comment("ready")
                .to_string()
                .as_bytes()
        );
    }

    /// A stored event cannot end its message early or forge another one:
    /// every line end inside it (LF, CR, CRLF; in values and in keys) is
    /// escaped by the compact JSON, so its message is exactly three lines.
    #[test]
    fn stored_line_ends_stay_escaped_inside_one_data_line() {
        let forged = "x\n\nevent:end\ndata:{\"error\":{\"code\":\"key_revoked\"}}\n\n";
        let e = json!({
            "seq": 3,
            "action_description": forged,
            "comments": "cr\rcrlf\r\nnel\u{85}ls\u{2028}ps\u{2029}",
            "metadata": {"a\nkey": "v\r", "list": ["\n", "\r"]},
        });
        let out = events(std::slice::from_ref(&e));
        let text = std::str::from_utf8(&out).unwrap();
        assert!(!text.contains('\r'), "{text:?}");
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), 5, "{text:?}");
        assert_eq!(lines[0], "event:event");
        assert_eq!(lines[2], "id:3");
        assert_eq!((lines[3], lines[4]), ("", ""));
        let data: Value = serde_json::from_str(lines[1].strip_prefix("data:").unwrap()).unwrap();
        assert_eq!(data, e);
    }

    #[tokio::test]
    async fn an_idle_body_gets_keep_alive_comments_and_ends_with_the_body() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut s = Box::pin(with_keep_alive(body, Duration::from_millis(20)));
        let mut next = async || s.next().await.map(|chunk| chunk.unwrap());
        assert_eq!(next().await.as_deref(), Some(&b":\n\n"[..]));
        assert_eq!(next().await.as_deref(), Some(&b":\n\n"[..]));
        tx.send(Bytes::from_static(b"event:event\n")).await.unwrap();
        assert_eq!(next().await.as_deref(), Some(&b"event:event\n"[..]));
        drop(tx);
        assert_eq!(next().await, None);
    }
}

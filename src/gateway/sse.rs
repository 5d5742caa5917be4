//! Server-sent events from the provider, re-framed for the client: the provider's byte stream
//! is cut into events, and each is sent on as an axum SSE [`Event`].

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Display;

use axum::response::sse::Event;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::error::ApiError;

/// Longest event (or line) accepted from the provider, in bytes.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One server-sent event: its name (`event:`) and its data (the `data:` lines, joined).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The event's name, if it has one.
    pub event: Option<String>,
    /// The event's data.
    pub data: String,
}

impl From<SseEvent> for Event {
    fn from(sse: SseEvent) -> Event {
        let event = Event::default();
        match sse.event {
            Some(name) => event.event(name),
            None => event,
        }
        .data(sse.data)
    }
}

/// An incremental parser of the `text/event-stream` format (lines end with LF, CRLF or CR;
/// `id:`, `retry:` and comments are dropped).
#[derive(Debug, Default)]
pub struct Decoder {
    line: Vec<u8>,
    /// The last byte seen was a CR: an LF right after it ends no further line.
    after_cr: bool,
    pending: SseEvent,
    has_data: bool,
    ready: VecDeque<SseEvent>,
}

/// An event or line longer than [`MAX_EVENT_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLong;

impl Decoder {
    /// Feeds the next bytes of the stream.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), EventTooLong> {
        let mut rest = bytes;
        if std::mem::take(&mut self.after_cr) {
            rest = rest.strip_prefix(b"\n").unwrap_or(rest);
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..end]);
            self.check_size()?;
            let line = std::mem::take(&mut self.line);
            self.field(&line);
            let cr = rest[end] == b'\r';
            rest = &rest[end + 1..];
            if cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
        }
        self.line.extend_from_slice(rest);
        self.check_size()
    }

    fn check_size(&self) -> Result<(), EventTooLong> {
        if self.line.len() + self.pending.data.len() > MAX_EVENT_BYTES {
            return Err(EventTooLong);
        }
        Ok(())
    }

    /// The end of the stream: an unterminated last line and event still count.
    pub fn finish(&mut self) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.field(&line);
        }
        self.field(b"");
    }

    /// The next complete event, if any.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }

    /// One line, without its end.
    fn field(&mut self, line: &[u8]) {
        if line.is_empty() {
            let event = std::mem::take(&mut self.pending);
            if std::mem::take(&mut self.has_data) {
                self.ready.push_back(event);
            }
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "event" => self.pending.event = Some(value.to_owned()),
            "data" => {
                if std::mem::replace(&mut self.has_data, true) {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
            }
            _ => {} // `id`, `retry`, comments (empty name), unknown fields
        }
    }
}

/// The provider's SSE byte stream as events for the client. If the provider's stream breaks
/// off or carries an oversized event, the client gets a last `error` event with an OpenAI error
/// body, and the stream ends.
pub fn relay<S, E>(upstream: S) -> impl Stream<Item = Result<Event, Infallible>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Display,
{
    let state = (Box::pin(upstream), Decoder::default(), false);
    futures_util::stream::unfold(state, |(mut upstream, mut decoder, mut done)| async move {
        loop {
            if let Some(event) = decoder.next_event() {
                return Some((Ok(event.into()), (upstream, decoder, done)));
            }
            if done {
                return None;
            }
            let failure = match upstream.next().await {
                Some(Ok(bytes)) => match decoder.push(&bytes) {
                    Ok(()) => continue,
                    Err(EventTooLong) => String::from("provider sent an oversized event"),
                },
                Some(Err(e)) => format!("provider stream broken off: {e}"),
                None => {
                    decoder.finish();
                    done = true;
                    continue;
                }
            };
            // The status is sent already: the client learns of the failure from an `error`
            // event, and the request ends as an `error` (the stream is its current request).
            perf_runtime::current::fail();
            let error = ApiError::bad_gateway(failure);
            let data = serde_json::to_string(&error.body()).unwrap_or_default();
            let event = Event::default().event("error").data(data);
            return Some((Ok(event), (upstream, Decoder::default(), true)));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&str]) -> Vec<SseEvent> {
        let mut decoder = Decoder::default();
        let mut events = Vec::new();
        for chunk in chunks {
            decoder.push(chunk.as_bytes()).expect("short events");
            events.extend(std::iter::from_fn(|| decoder.next_event()));
        }
        decoder.finish();
        events.extend(std::iter::from_fn(|| decoder.next_event()));
        events
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn splits_events_across_chunks() {
        let events = decode(&[
            "data: {\"a\"",
            ":1}\n\nevent: x\r\ndata:b\r\n",
            "data: c\r\n\r\n: hi\n\ndata: [DONE]",
        ]);
        assert_eq!(
            events,
            [
                ev(None, "{\"a\":1}"),
                ev(Some("x"), "b\nc"),
                ev(None, "[DONE]")
            ]
        );
    }

    #[test]
    fn any_line_end_ends_a_line() {
        let events = decode(&["event: a\rdata: 1\r", "\n\r", "\ndata: 2\r\r", "data: 3\n"]);
        assert_eq!(events, [ev(Some("a"), "1"), ev(None, "2"), ev(None, "3")]);
    }

    #[test]
    fn refuses_endless_lines() {
        let mut decoder = Decoder::default();
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert_eq!(decoder.push(&big), Err(EventTooLong));
    }

    #[tokio::test]
    async fn relay_reports_a_broken_stream() {
        let chunks: Vec<Result<Bytes, &str>> = vec![Ok(Bytes::from("data: 1\n\n")), Err("reset")];
        let events: Vec<_> = relay(futures_util::stream::iter(chunks)).collect().await;
        assert_eq!(events.len(), 2);
    }
}

//! Server-sent events from the provider, re-framed for the client: the provider's byte stream
//! is cut into events, each is told apart ([`classify`]: content, usage, other) and sent on as
//! an axum SSE [`Event`].

use std::collections::VecDeque;

use super::events::{classify, Chunk, EventInfo, NotJson};
use super::upstream::ProviderFailure;
use axum::response::sse::Event;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

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

/// One event of the provider, re-framed for the client, and what it is.
#[derive(Debug)]
pub struct Relayed {
    event: Event,
    info: EventInfo,
}

impl Relayed {
    /// What the event is to the metrics: what `#[perf_stream(chunks = Relayed::chunk)]` reads.
    pub fn chunk(&self) -> Chunk {
        self.info.chunk
    }

    /// The event for the client: `None` for a usage-only chunk the client did not ask for
    /// (`usage_asked` false: the gateway asked the provider for it, for the metrics).
    pub fn for_client(self, usage_asked: bool) -> Option<Event> {
        (usage_asked || !self.info.usage_only).then_some(self.event)
    }
}

/// The provider's SSE byte stream as events for the client, each with what it is. Each event's
/// data must be JSON (or `[DONE]`). If the provider's stream fails (broken off, late), carries
/// an oversized event or one whose data is not JSON, the failure is
/// [reported](ProviderFailure::report), the request is marked failed, the client gets a last
/// `error` event with an OpenAI error body, and the stream ends (dropping the provider's).
pub fn relay<S>(upstream: S) -> impl Stream<Item = Relayed> + Send
where
    S: Stream<Item = Result<Bytes, ProviderFailure>> + Send + 'static,
{
    let state = (Some(Box::pin(upstream)), Decoder::default(), false);
    futures_util::stream::unfold(state, |(mut upstream, mut decoder, mut done)| async move {
        loop {
            let failure = if let Some(event) = decoder.next_event() {
                match classify(&event.data) {
                    Ok(info) => {
                        let event = Relayed {
                            event: event.into(),
                            info,
                        };
                        return Some((event, (upstream, decoder, done)));
                    }
                    Err(NotJson) => not_json(&event.data),
                }
            } else if done {
                return None;
            } else {
                match upstream.as_mut()?.next().await {
                    Some(Ok(bytes)) => match decoder.push(&bytes) {
                        Ok(()) => continue,
                        Err(EventTooLong) => {
                            ProviderFailure::protocol("provider sent an oversized event")
                        }
                    },
                    Some(Err(failure)) => failure,
                    None => {
                        decoder.finish();
                        done = true;
                        continue;
                    }
                }
            };
            // The status is sent already: the client learns of the failure from an `error`
            // event, and the request ends as an `error` (the stream is its current request).
            let error = failure.report();
            perf_runtime::current::fail();
            let data = serde_json::to_string(&error.body()).unwrap_or_default();
            let event = Relayed {
                event: Event::default().event("error").data(data),
                info: EventInfo::default(),
            };
            return Some((event, (None, Decoder::default(), true)));
        }
    })
}

/// The failure of an event whose data is neither JSON nor `[DONE]`.
fn not_json(data: &str) -> ProviderFailure {
    let mut start = data.chars().take(80).collect::<String>();
    if start.len() < data.len() {
        start.push('…');
    }
    ProviderFailure::protocol(format!(
        "provider sent an event whose data is not JSON: {start:?}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

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

    /// The events of `relay` over `chunks`, as the client reads them.
    async fn relayed(chunks: Vec<Result<Bytes, ProviderFailure>>) -> Vec<SseEvent> {
        relayed_for(chunks, true).await
    }

    /// The same, for a client that asked for usage or not.
    async fn relayed_for(
        chunks: Vec<Result<Bytes, ProviderFailure>>,
        usage_asked: bool,
    ) -> Vec<SseEvent> {
        use axum::response::IntoResponse;
        let events = relay(futures_util::stream::iter(chunks)).filter_map(move |relayed| {
            std::future::ready(relayed.for_client(usage_asked).map(Ok::<_, Infallible>))
        });
        let sse = axum::response::sse::Sse::new(events);
        let body = axum::body::to_bytes(sse.into_response().into_body(), usize::MAX)
            .await
            .expect("the whole body");
        let mut decoder = Decoder::default();
        decoder.push(&body).expect("short events");
        decoder.finish();
        std::iter::from_fn(|| decoder.next_event()).collect()
    }

    #[tokio::test]
    async fn relay_reports_a_broken_stream() {
        let chunks = vec![
            Ok(Bytes::from("data: 1\n\n")),
            Err(ProviderFailure::protocol("reset")),
            Ok(Bytes::from("data: 2\n\n")),
        ];
        let events = relayed(chunks).await;
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0], ev(None, "1"));
        assert_eq!(events[1].event.as_deref(), Some("error"));
        assert!(events[1].data.contains("reset"), "{events:?}");
    }

    #[tokio::test]
    async fn relay_ends_at_an_event_that_is_not_json() {
        let chunks = vec![Ok(Bytes::from(
            "data: {\"a\":1}\n\ndata: {oops\n\ndata: [DONE]\n\n",
        ))];
        let events = relayed(chunks).await;
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[1].event.as_deref(), Some("error"));
        assert!(events[1].data.contains("not JSON"), "{events:?}");
        let done = relayed(vec![Ok(Bytes::from("data: {}\n\ndata: [DONE]\n\n"))]).await;
        assert_eq!(done, [ev(None, "{}"), ev(None, "[DONE]")]);
    }

    #[tokio::test]
    async fn the_usage_chunk_reaches_only_a_client_that_asked() {
        let usage = r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
        let stream = format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"a\"}}}}]}}\n\n: keep-alive\n\ndata: {usage}\n\ndata: [DONE]\n\n"
        );
        let chunks = || vec![Ok(Bytes::from(stream.clone()))];
        let asked = relayed_for(chunks(), true).await;
        assert_eq!(asked.len(), 3, "{asked:?}");
        assert_eq!(asked[1], ev(None, usage));
        let not_asked = relayed_for(chunks(), false).await;
        assert_eq!(not_asked.len(), 2, "{not_asked:?}");
        assert_eq!(not_asked[1], ev(None, "[DONE]"));
    }

    #[tokio::test]
    async fn relayed_events_say_what_they_are() {
        let stream = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
                      data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n\
                      data: [DONE]\n\n";
        let chunks: Vec<Chunk> = relay(futures_util::stream::iter([Ok(Bytes::from(stream))]))
            .map(|relayed| relayed.chunk())
            .collect()
            .await;
        assert_eq!(chunks, [Chunk::OTHER, Chunk::CONTENT, Chunk::OTHER]);
    }
}

//! Server-sent events, decoded from bytes as they arrive: both providers stream their answers
//! in this format.
//!
//! The decoder splits on bytes, not characters, so a network chunk that ends inside a UTF-8
//! character costs nothing: only complete lines are turned into text. Lines end with `\n` or
//! `\r\n`; the `id` and `retry` fields mean nothing to a model call and are skipped.

/// One event: its name (the `event:` field, if any) and its data lines joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SseEvent {
    pub(super) event: Option<String>,
    pub(super) data: String,
}

/// Buffers bytes until they make complete events.
#[derive(Debug, Default)]
pub(super) struct SseDecoder {
    /// Bytes of a line not yet ended.
    pending: Vec<u8>,
    /// The `event:` field of the event being read.
    event: Option<String>,
    /// The `data:` lines of the event being read, each followed by `\n`.
    data: String,
}

impl SseDecoder {
    /// Takes the next bytes of the stream and returns the events they completed, in order.
    ///
    /// Only the new bytes are searched for a line's end: the pending ones hold none, and
    /// searching them again for every chunk would make a long line cost its length squared.
    pub(super) fn decode(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut search_from = self.pending.len();
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(end) = self.pending[search_from..].iter().position(|&b| b == b'\n').map(|at| search_from + at) {
            let line = self.pending[start..end].strip_suffix(b"\r").unwrap_or(&self.pending[start..end]);
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            search_from = start;
            if let Some(event) = self.read_line(&line) {
                events.push(event);
            }
        }
        self.pending.drain(..start);
        events
    }

    /// The event the stream's last lines made when it closed without the blank line that ends
    /// an event (servers that close right after `data: [DONE]` do). A last line that did not
    /// end is dropped: it may have been cut.
    pub(super) fn finish(&mut self) -> Option<SseEvent> {
        self.pending.clear();
        self.read_line("")
    }

    /// Applies one line; a blank line ends the event, which is returned when it carried data.
    fn read_line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take();
            if self.data.is_empty() {
                return None;
            }
            let mut data = std::mem::take(&mut self.data);
            data.pop();
            return Some(SseEvent { event, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent { event: event.map(str::to_owned), data: data.to_owned() }
    }

    #[test]
    fn events_are_separated_by_blank_lines() {
        let mut decoder = SseDecoder::default();
        let events = decoder.decode(b"event: ping\ndata: {}\n\ndata: one\n\ndata: two\n");
        assert_eq!(events, vec![event(Some("ping"), "{}"), event(None, "one")]);
        assert_eq!(decoder.decode(b"\n"), vec![event(None, "two")]);
    }

    #[test]
    fn crlf_line_ends_are_tolerated() {
        let mut decoder = SseDecoder::default();
        let events = decoder.decode(b"event: message_stop\r\ndata: {\"a\":1}\r\n\r\ndata: b\r\n\r\n");
        assert_eq!(events, vec![event(Some("message_stop"), "{\"a\":1}"), event(None, "b")]);
    }

    #[test]
    fn a_crlf_split_across_chunks_still_ends_the_line() {
        let mut decoder = SseDecoder::default();
        assert!(decoder.decode(b"data: x\r").is_empty());
        assert!(decoder.decode(b"\n\r").is_empty());
        assert_eq!(decoder.decode(b"\n"), vec![event(None, "x")]);
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        let mut decoder = SseDecoder::default();
        let events = decoder.decode(b": keep-alive\n\nid: 7\nretry: 100\ndata: x\nfoo: bar\n\n");
        assert_eq!(events, vec![event(None, "x")]);
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let mut decoder = SseDecoder::default();
        let events = decoder.decode(b"data: first\ndata:second\ndata\ndata:  indented\n\n");
        assert_eq!(events, vec![event(None, "first\nsecond\n\n indented")]);
    }

    #[test]
    fn a_stream_closed_without_a_blank_line_ends_its_last_event() {
        let mut decoder = SseDecoder::default();
        assert_eq!(decoder.decode(b"event: message_stop\ndata: {}\ndata: [DO"), []);
        assert_eq!(decoder.finish(), Some(event(Some("message_stop"), "{}")), "the cut line is dropped");
        assert_eq!(decoder.finish(), None);
        let mut decoder = SseDecoder::default();
        assert_eq!(decoder.decode(b"data: [DONE]\n\n"), [event(None, "[DONE]")]);
        assert_eq!(decoder.finish(), None, "an event ended by its blank line is not given twice");
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        let mut decoder = SseDecoder::default();
        assert!(decoder.decode(b"event: empty\n\n").is_empty());
        assert_eq!(decoder.decode(b"data: x\n\n"), vec![event(None, "x")], "the name does not carry over");
    }

    #[test]
    fn a_character_split_across_chunks_decodes_whole() {
        let bytes = "data: café 👋\n\n".as_bytes();
        for split in 0..bytes.len() {
            let mut decoder = SseDecoder::default();
            let mut events = decoder.decode(&bytes[..split]);
            events.extend(decoder.decode(&bytes[split..]));
            assert_eq!(events, vec![event(None, "café 👋")], "split at {split}");
        }
    }

    #[test]
    fn byte_at_a_time_gives_the_same_events() {
        let bytes = b"event: a\r\ndata: 1\r\n\r\n: note\ndata: 2\ndata: 3\n\n";
        let mut decoder = SseDecoder::default();
        let events: Vec<SseEvent> = bytes.iter().flat_map(|byte| decoder.decode(&[*byte])).collect();
        assert_eq!(events, vec![event(Some("a"), "1"), event(None, "2\n3")]);
    }

    #[test]
    fn a_long_line_in_many_pieces_decodes_whole() {
        let data = "x".repeat(1 << 20);
        let bytes = format!("data: {data}\n\ndata: after\n\n");
        let mut decoder = SseDecoder::default();
        let events: Vec<SseEvent> = bytes.as_bytes().chunks(1000).flat_map(|piece| decoder.decode(piece)).collect();
        assert_eq!(events, vec![event(None, &data), event(None, "after")]);
    }
}

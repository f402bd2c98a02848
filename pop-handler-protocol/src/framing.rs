//! Splitting a byte stream into lines with a bound on their length, without IO: a runtime reads
//! chunks from a pipe or a log stream and pushes them here, so a line longer than the bound is never
//! held whole.

/// What the framer cut out of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole line, without its `\n` (and without a `\r` before it); invalid UTF-8 is replaced.
    Line(String),
    /// A line went over the bound: its first bytes (at most the bound). The rest of it, up to the next
    /// newline, is skipped without being kept.
    TooLong(Vec<u8>),
}

/// Cuts a byte stream into [`Frame`]s of at most `max_line_bytes` bytes.
///
/// ```
/// use pop_handler_protocol::framing::{Frame, LineFramer};
/// let mut framer = LineFramer::new(8);
/// let mut frames = Vec::new();
/// framer.push(b"short\r\nmuch too lo", &mut frames);
/// framer.push(b"ng\nla", &mut frames);
/// framer.push(b"st", &mut frames);
/// framer.finish(&mut frames);
/// assert_eq!(frames, [Frame::Line("short".into()), Frame::TooLong(b"much too".to_vec()), Frame::Line("last".into())]);
/// ```
#[derive(Debug, Clone)]
pub struct LineFramer {
    max: usize,
    buf: Vec<u8>,
    skipping: bool,
}

impl LineFramer {
    /// A framer for lines of at most `max_line_bytes` bytes (at least 1).
    pub fn new(max_line_bytes: usize) -> Self {
        Self { max: max_line_bytes.max(1), buf: Vec::new(), skipping: false }
    }

    /// The bound.
    pub fn max_line_bytes(&self) -> usize {
        self.max
    }

    /// Feeds the next bytes of the stream; complete frames are appended to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Frame>) {
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|b| *b == b'\n');
            if self.skipping {
                match newline {
                    Some(i) => {
                        self.skipping = false;
                        bytes = &bytes[i + 1..];
                    }
                    None => return,
                }
                continue;
            }
            let take = newline.unwrap_or(bytes.len());
            if self.buf.len() + take > self.max {
                let room = self.max - self.buf.len();
                self.buf.extend_from_slice(&bytes[..room]);
                out.push(Frame::TooLong(std::mem::take(&mut self.buf)));
                match newline {
                    Some(i) => bytes = &bytes[i + 1..],
                    None => {
                        self.skipping = true;
                        return;
                    }
                }
                continue;
            }
            self.buf.extend_from_slice(&bytes[..take]);
            match newline {
                Some(i) => {
                    if self.buf.last() == Some(&b'\r') {
                        self.buf.pop();
                    }
                    out.push(Frame::Line(self.take_line()));
                    bytes = &bytes[i + 1..];
                }
                None => return,
            }
        }
    }

    /// The stream ended: a last line without a newline becomes a frame.
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
        if !self.skipping && !self.buf.is_empty() {
            out.push(Frame::Line(self.take_line()));
        }
        self.skipping = false;
        self.buf = Vec::new();
    }

    fn take_line(&mut self) -> String {
        let line = match String::from_utf8(std::mem::take(&mut self.buf)) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        // Keep a moderate buffer for the next line; give back what a long one took.
        if line.len() <= 64 * 1024 {
            self.buf.reserve(line.len());
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(data: &[u8], chunk: usize, max: usize) -> Vec<Frame> {
        let mut f = LineFramer::new(max);
        let mut out = Vec::new();
        for c in data.chunks(chunk) {
            f.push(c, &mut out);
        }
        f.finish(&mut out);
        out
    }

    #[test]
    fn bounded_lines_in_any_chunking() {
        let data = b"short\r\nexactly_10\nthis one is too long\nafter\nlast";
        for chunk in 1..=data.len() {
            let got = frames(data, chunk, 10);
            assert_eq!(
                got,
                [
                    Frame::Line("short".into()),
                    Frame::Line("exactly_10".into()),
                    Frame::TooLong(b"this one i".to_vec()),
                    Frame::Line("after".into()),
                    Frame::Line("last".into()),
                ],
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn edge_cases() {
        assert_eq!(frames(b"", 4, 10), []);
        assert_eq!(frames(b"\n\n", 4, 10), [Frame::Line(String::new()), Frame::Line(String::new())]);
        assert_eq!(frames(b"0123456789abc", 4, 10), [Frame::TooLong(b"0123456789".to_vec())]);
        assert_eq!(frames(b"\xff\xfeok\n", 4, 10), [Frame::Line("\u{fffd}\u{fffd}ok".into())]);
        // The newline itself does not count; a \r does.
        assert_eq!(frames(b"0123456789\r\n", 3, 10), [Frame::TooLong(b"0123456789".to_vec())]);
        assert_eq!(frames(b"012345678\r\n", 3, 10), [Frame::Line("012345678".into())]);
    }
}

//! Reading output lines with a bound on their length.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What one bounded read produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LineRead {
    /// A line is in the buffer (without its newline); the last line may lack one.
    Line,
    /// The line exceeded the bound: the buffer holds its first `max` bytes at most and the rest is
    /// still unread (call [`skip_line`]).
    TooLong,
    /// End of stream, nothing buffered.
    Eof,
}

/// Appends the next line to `buf` (cleared by the caller), holding at most `max` bytes.
pub(crate) async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() { LineRead::Eof } else { LineRead::Line });
        }
        match available.iter().position(|b| *b == b'\n') {
            Some(i) => {
                if buf.len() + i > max {
                    return Ok(LineRead::TooLong);
                }
                buf.extend_from_slice(&available[..i]);
                reader.consume(i + 1);
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                return Ok(LineRead::Line);
            }
            None => {
                let n = available.len();
                if buf.len() + n > max {
                    return Ok(LineRead::TooLong);
                }
                buf.extend_from_slice(available);
                reader.consume(n);
            }
        }
    }
}

/// Discards input up to and including the next newline (or to the end).
pub(crate) async fn skip_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<()> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(());
        }
        match available.iter().position(|b| *b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    #[tokio::test]
    async fn bounded_lines() {
        let data = b"short\r\nexactly_10\nthis one is too long\nafter\nlast".to_vec();
        let mut r = BufReader::with_capacity(4, data.as_slice());
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            buf.clear();
            match read_line_bounded(&mut r, &mut buf, 10).await.unwrap() {
                LineRead::Eof => break,
                LineRead::Line => got.push(String::from_utf8(buf.clone()).unwrap()),
                LineRead::TooLong => {
                    assert!(buf.len() <= 10);
                    got.push("<too long>".into());
                    skip_line(&mut r).await.unwrap();
                }
            }
        }
        assert_eq!(got, vec!["short", "exactly_10", "<too long>", "after", "last"]);
    }
}

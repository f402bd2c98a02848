//! Reading a handler's stdout and stderr: cut into bounded lines by the protocol's
//! [`LineFramer`], classified by its [`OutputParser`] (shared by both pipes, so the log's tail and the
//! first broken rule are the operation's), reported as events. An over-long line or a read error is
//! told to the supervisor, which stops the handler.

use pop_core::runtime::{LogStream, RuntimeEvent};
use pop_handler_protocol::OutputParser;
use pop_handler_protocol::framing::{Frame, LineFramer};
use pop_handler_protocol::output::stream_name;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

/// What a reader tells the supervisor.
#[derive(Debug)]
pub(crate) enum Notice {
    /// A line went over the bound: the handler must be stopped.
    TooLong(LogStream),
    /// Reading the pipe failed (`reading stdout: ...`).
    ReadError(String),
}

/// The parser both readers of one operation share.
pub(crate) type SharedParser = Arc<Mutex<OutputParser>>;

/// Locks the parser; a reader that panicked while holding it left it consistent (one line at a time).
pub(crate) fn lock(parser: &SharedParser) -> MutexGuard<'_, OutputParser> {
    parser.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads one pipe of one operation.
pub(crate) struct PipeReader {
    pub(crate) events: mpsc::Sender<RuntimeEvent>,
    pub(crate) notices: mpsc::UnboundedSender<Notice>,
    pub(crate) parser: SharedParser,
    pub(crate) operation: String,
}

impl PipeReader {
    /// Reads `pipe` to its end.
    pub(crate) async fn read<R: AsyncRead + Unpin>(self, mut pipe: R, stream: LogStream) {
        let max = lock(&self.parser).limits().max_line_bytes;
        let mut framer = LineFramer::new(max);
        let mut buf = vec![0u8; 64 * 1024];
        let mut frames = Vec::new();
        loop {
            let ended = match pipe.read(&mut buf).await {
                Ok(0) => {
                    framer.finish(&mut frames);
                    true
                }
                Ok(n) => {
                    framer.push(&buf[..n], &mut frames);
                    false
                }
                Err(e) => {
                    let _ = self.notices.send(Notice::ReadError(format!("reading {}: {e}", stream_name(stream))));
                    true
                }
            };
            for frame in frames.drain(..) {
                self.frame(stream, frame).await;
            }
            if ended {
                return;
            }
        }
    }

    async fn frame(&self, stream: LogStream, frame: Frame) {
        let event = match frame {
            Frame::Line(line) => {
                let parsed = lock(&self.parser).line(stream, line);
                if let Some(warning) = parsed.warning {
                    tracing::warn!(operation = %self.operation, "ignored a {warning}");
                }
                parsed.event
            }
            Frame::TooLong(start) => {
                let note = lock(&self.parser).too_long(stream, &start);
                let _ = self.notices.send(Notice::TooLong(stream));
                RuntimeEvent::Log(stream, note)
            }
        };
        // The consumer may have dropped the stream: keep draining the pipe anyway.
        let _ = self.events.send(event).await;
    }
}

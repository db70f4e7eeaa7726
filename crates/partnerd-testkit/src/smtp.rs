//! A real, minimal SMTP receiver for tests.
//!
//! partnerd sends mail (invitations, password resets, payout notices) through
//! `lettre` over plain SMTP. Mocking the transport would not catch a wrong
//! envelope, a broken `DATA` phase or a retry loop that never retries, so the
//! tests talk to this receiver over a real TCP socket instead.
//!
//! The receiver binds `127.0.0.1:0` (a fresh port per test, so tests can run
//! in parallel), serves every connection in a background task and keeps each
//! accepted message in memory. It speaks just enough of RFC 5321 for
//! `lettre::AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(p)`:
//! `EHLO`/`HELO`, `MAIL FROM`, `RCPT TO`, `DATA` (with dot-stuffing undone),
//! `RSET`, `NOOP` and `QUIT`. It offers no TLS and no AUTH, and it does not
//! advertise `PIPELINING`, so clients wait for each reply: that keeps the
//! conversation deterministic.
//!
//! [`SmtpReceiver::fail_next`] makes the next `DATA` commands answer with a
//! transient `451`, so tests can check that a sender retries.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use partnerd_testkit::SmtpReceiver;
//!
//! let smtp = SmtpReceiver::start().await?;
//! // Point the mailer under test at `smtp.addr()`, send, then:
//! // let mails = smtp.wait_for(1, std::time::Duration::from_secs(5)).await;
//! // assert!(mails[0].body_contains("https://partners.example.com/invite/"));
//! assert!(smtp.messages().is_empty());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Largest message accepted, advertised as `SIZE` in the `EHLO` reply. Large
/// enough for any mail partnerd sends, small enough that a runaway client
/// cannot eat the test machine's memory.
pub const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

/// RFC 5321 §4.5.3.1.4 allows 512 octets per command line; we accept more so
/// that a slightly sloppy client gets a reply rather than a dropped line, but
/// still bound it so a client that never sends `\n` cannot grow a buffer forever.
const MAX_COMMAND_LINE: usize = 4096;

/// Lines of message content are read in chunks of at most this size; longer
/// lines are still accepted (RFC 5321 says 1000, but lettre does not enforce it).
const MAX_DATA_CHUNK: usize = 64 * 1024;

/// Name the receiver gives itself in its greeting and `EHLO` reply.
const HOSTNAME: &str = "localhost";

/// One message accepted by the [`SmtpReceiver`]: the envelope and the raw
/// content as sent after `DATA`, dot-stuffing undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// Envelope sender from `MAIL FROM:<...>`, without the angle brackets;
    /// empty for the null reverse-path `<>` (bounces).
    pub from: String,
    /// Envelope recipients from each `RCPT TO:<...>`, in the order given.
    pub to: Vec<String>,
    /// The message (headers, blank line, body) exactly as transferred, with
    /// CRLF line endings, dot-stuffing undone and the final `.` line removed.
    /// Invalid UTF-8 is replaced with U+FFFD.
    pub data: String,
}

impl ReceivedMail {
    /// The value of the first header called `name` (case-insensitive), with
    /// folded lines joined and RFC 2047 encoded words (`=?utf-8?b?...?=`,
    /// which lettre uses for non-ASCII subjects) decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = split_head_body(&self.data);
        parse_headers(head)
            .into_iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| decode_encoded_words(&value))
    }

    /// The decoded `Subject:` header, if the message has one.
    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }

    /// The text of the body with transfer encodings undone: quoted-printable
    /// (soft line breaks `=\r\n` and `=XX` escapes) and base64 are decoded,
    /// the parts of a `multipart/*` message are concatenated (each on its own
    /// lines), and line endings are normalised to `\n`. Charsets are assumed to
    /// be UTF-8, which is what lettre sends.
    pub fn decoded_body(&self) -> String {
        let mut out = String::new();
        collect_text(&self.data, &mut out, 0);
        out
    }

    /// Whether the decoded body (see [`ReceivedMail::decoded_body`]) contains
    /// `needle`. Searching the raw `data` would miss text that the encoder
    /// wrapped with a soft line break or escaped (an `=` in a URL becomes `=3D`).
    /// A `\r\n` in `needle` matches a line break like `\n` does.
    pub fn body_contains(&self, needle: &str) -> bool {
        self.decoded_body().contains(&needle.replace("\r\n", "\n"))
    }
}

/// State shared between the handle and the connection tasks.
struct Shared {
    /// Accepted messages. A `watch` channel rather than a plain mutex so that
    /// [`SmtpReceiver::wait_for`] can sleep until a message arrives.
    messages: watch::Sender<Vec<ReceivedMail>>,
    /// How many of the coming `DATA` commands must be refused with `451`.
    fail_next: AtomicUsize,
    /// Numbers the queue ids in the final `250` reply, for readable logs.
    next_id: AtomicUsize,
}

/// A minimal SMTP server on `127.0.0.1` that records what it is sent.
///
/// Dropping it stops the server and closes its open connections.
pub struct SmtpReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl fmt::Debug for SmtpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpReceiver")
            .field("addr", &self.addr)
            .field("messages", &self.shared.messages.borrow().len())
            .finish()
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        // The accept task owns the `JoinSet` of connections, so aborting it
        // also aborts every connection and frees the port.
        self.accept_task.abort();
    }
}

impl SmtpReceiver {
    /// Binds `127.0.0.1` on a free port and starts serving in a background
    /// task on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// Returns the error from binding the listening socket.
    pub async fn start() -> io::Result<SmtpReceiver> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            messages: watch::Sender::new(Vec::new()),
            fail_next: AtomicUsize::new(0),
            next_id: AtomicUsize::new(1),
        });
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(SmtpReceiver {
            addr,
            shared,
            accept_task,
        })
    }

    /// The address the receiver listens on; give its IP and port to the mailer.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of the messages accepted so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.shared.messages.borrow().clone()
    }

    /// Waits until at least `n` messages have been accepted and returns all
    /// of them, oldest first.
    ///
    /// # Panics
    ///
    /// Panics if fewer than `n` messages arrived within `timeout`: this is a
    /// test helper, and the panic message says what did arrive.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let mut rx = self.shared.messages.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            // The sender lives in `self.shared`, so the channel cannot close
            // while we borrow `self`; `ok()` only satisfies the type.
            rx.wait_for(|messages| messages.len() >= n)
                .await
                .ok()
                .map(|messages| messages.clone())
        })
        .await;
        match waited {
            Ok(Some(messages)) => messages,
            _ => {
                let got = self.messages();
                let subjects: Vec<Option<String>> = got.iter().map(ReceivedMail::subject).collect();
                panic!(
                    "SmtpReceiver::wait_for: expected at least {n} message(s) within {timeout:?}, \
                     but {} arrived (subjects: {subjects:?})",
                    got.len()
                );
            }
        }
    }

    /// Makes the next `n` `DATA` commands (on any connection) answer
    /// `451 4.3.0 try again later`, so tests can check that the sender
    /// retries. Replaces any count set earlier; `fail_next(0)` cancels it.
    pub fn fail_next(&self, n: usize) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                // Accept errors are transient (e.g. too many open files);
                // pause briefly so they cannot turn into a busy loop.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            // Reap finished connections so the set does not grow over a long
            // test; their I/O errors only mean the client went away.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The envelope of the mail transaction in progress.
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    to: Vec<String>,
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    // Replies are small and each one waits for the client: send them at once.
    stream.set_nodelay(true)?;
    let (read_half, mut writer) = stream.into_split();
    let mut reader = BufReader::new(read_half);
    serve(&mut reader, &mut writer, &shared).await
}

/// Runs one SMTP session until `QUIT` or end of input.
async fn serve<R, W>(reader: &mut R, writer: &mut W, shared: &Shared) -> io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    reply(
        writer,
        &format!("220 {HOSTNAME} partnerd-testkit ESMTP ready"),
    )
    .await?;
    let mut greeted = false;
    let mut txn = Transaction::default();

    loop {
        let line = match read_command(reader).await? {
            Command::Eof => return Ok(()),
            Command::TooLong => {
                reply(writer, "500 5.5.6 line too long").await?;
                continue;
            }
            Command::Line(line) => line,
        };
        let (verb, arg) = match line.split_once(' ') {
            Some((verb, arg)) => (verb.to_ascii_uppercase(), arg.trim()),
            None => (line.to_ascii_uppercase(), ""),
        };

        match verb.as_str() {
            "EHLO" | "HELO" if arg.is_empty() => {
                reply(writer, &format!("501 5.5.4 syntax: {verb} hostname")).await?;
            }
            "EHLO" => {
                // A new greeting starts over (RFC 5321 §4.1.4).
                greeted = true;
                txn = Transaction::default();
                reply(
                    writer,
                    &format!(
                        "250-{HOSTNAME} greets {arg}\r\n\
                         250-SIZE {MAX_MESSAGE_BYTES}\r\n\
                         250-SMTPUTF8\r\n\
                         250 8BITMIME"
                    ),
                )
                .await?;
            }
            "HELO" => {
                greeted = true;
                txn = Transaction::default();
                reply(writer, &format!("250 {HOSTNAME}")).await?;
            }
            "MAIL" => {
                let response = if !greeted {
                    "503 5.5.1 send EHLO or HELO first".to_owned()
                } else if txn.from.is_some() {
                    "503 5.5.1 nested MAIL command".to_owned()
                } else {
                    match parse_path(arg, "FROM:") {
                        None => "501 5.5.4 syntax: MAIL FROM:<address>".to_owned(),
                        Some((_, params)) if declared_size(params) > Some(MAX_MESSAGE_BYTES) => {
                            format!("552 5.3.4 message size exceeds {MAX_MESSAGE_BYTES} bytes")
                        }
                        Some((from, _)) => {
                            txn.from = Some(from);
                            "250 2.1.0 OK".to_owned()
                        }
                    }
                };
                reply(writer, &response).await?;
            }
            "RCPT" => {
                let response = if txn.from.is_none() {
                    "503 5.5.1 need MAIL before RCPT"
                } else {
                    match parse_path(arg, "TO:") {
                        Some((to, _)) if !to.is_empty() => {
                            txn.to.push(to);
                            "250 2.1.5 OK"
                        }
                        _ => "501 5.5.4 syntax: RCPT TO:<address>",
                    }
                };
                reply(writer, response).await?;
            }
            "DATA" => {
                if !arg.is_empty() {
                    reply(writer, "501 5.5.4 DATA takes no argument").await?;
                } else if txn.from.is_none() {
                    reply(writer, "503 5.5.1 need MAIL before DATA").await?;
                } else if txn.to.is_empty() {
                    reply(writer, "503 5.5.1 need RCPT before DATA").await?;
                } else if take_failure(shared) {
                    // The transaction is over: the client must start again
                    // with MAIL FROM, as a real server would expect.
                    txn = Transaction::default();
                    reply(writer, "451 4.3.0 try again later").await?;
                } else {
                    reply(writer, "354 end data with <CR><LF>.<CR><LF>").await?;
                    let content = read_data(reader).await?;
                    let finished = std::mem::take(&mut txn);
                    match content {
                        None => {
                            reply(
                                writer,
                                &format!(
                                    "552 5.3.4 message size exceeds {MAX_MESSAGE_BYTES} bytes"
                                ),
                            )
                            .await?;
                        }
                        Some(data) => {
                            let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
                            shared.messages.send_modify(|messages| {
                                messages.push(ReceivedMail {
                                    from: finished.from.unwrap_or_default(),
                                    to: finished.to,
                                    data: String::from_utf8_lossy(&data).into_owned(),
                                });
                            });
                            reply(writer, &format!("250 2.0.0 OK queued as {id}")).await?;
                        }
                    }
                }
            }
            "RSET" => {
                txn = Transaction::default();
                reply(writer, "250 2.0.0 OK").await?;
            }
            "NOOP" => reply(writer, "250 2.0.0 OK").await?,
            "QUIT" => {
                reply(writer, "221 2.0.0 bye").await?;
                return Ok(());
            }
            "" => reply(writer, "500 5.5.2 empty command").await?,
            _ => reply(writer, "502 5.5.2 command not recognized").await?,
        }
    }
}

/// Consumes one injected failure, if any are left.
fn take_failure(shared: &Shared) -> bool {
    shared
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok()
}

/// Writes one reply (which may hold several CRLF-separated lines) and its
/// final CRLF in a single write: two small writes would hit Nagle's algorithm
/// and the peer's delayed ACK, costing ~40 ms per reply.
async fn reply<W: AsyncWrite + Unpin>(writer: &mut W, text: &str) -> io::Result<()> {
    let mut line = String::with_capacity(text.len() + 2);
    line.push_str(text);
    line.push_str("\r\n");
    writer.write_all(line.as_bytes()).await?;
    writer.flush().await
}

enum Command {
    Line(String),
    TooLong,
    Eof,
}

/// Reads one command line, without its line ending.
async fn read_command<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Command> {
    let mut line = Vec::new();
    let read = (&mut *reader)
        .take(MAX_COMMAND_LINE as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if read == 0 {
        return Ok(Command::Eof);
    }
    if !line.ends_with(b"\n") {
        if read < MAX_COMMAND_LINE {
            // The client closed the connection in the middle of a line.
            return Ok(Command::Eof);
        }
        // Skip the rest of the oversized line so the next read starts on a
        // fresh command instead of answering each fragment.
        loop {
            line.clear();
            let read = (&mut *reader)
                .take(MAX_COMMAND_LINE as u64)
                .read_until(b'\n', &mut line)
                .await?;
            if read == 0 {
                return Ok(Command::Eof);
            }
            if line.ends_with(b"\n") {
                return Ok(Command::TooLong);
            }
        }
    }
    let text = String::from_utf8_lossy(&line);
    Ok(Command::Line(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// Reads message content up to the `.` line, undoing dot-stuffing
/// (RFC 5321 §4.5.2). Returns `None` if the message was larger than
/// [`MAX_MESSAGE_BYTES`]; the rest is still read so the session stays in step.
async fn read_data<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut too_big = false;
    // A line longer than one chunk arrives in pieces; only the first piece of
    // a line may be the terminator or carry a stuffed dot.
    let mut at_line_start = true;
    loop {
        let mut chunk = Vec::new();
        let read = (&mut *reader)
            .take(MAX_DATA_CHUNK as u64)
            .read_until(b'\n', &mut chunk)
            .await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "client closed the connection during DATA",
            ));
        }
        // A bare-LF terminator is accepted too: strictness would only turn a
        // client bug into a hung test instead of a readable failure.
        if at_line_start && (chunk == b".\r\n" || chunk == b".\n") {
            break;
        }
        let content = if at_line_start && chunk.starts_with(b".") {
            &chunk[1..]
        } else {
            &chunk[..]
        };
        if data.len() + content.len() > MAX_MESSAGE_BYTES {
            too_big = true;
        }
        if !too_big {
            data.extend_from_slice(content);
        }
        at_line_start = chunk.ends_with(b"\n");
    }
    Ok(if too_big { None } else { Some(data) })
}

/// Parses `FROM:<addr> PARAMS` or `TO:<addr> PARAMS` (keyword matched
/// case-insensitively, a space after the colon tolerated) into the address
/// and the parameter text. Brackets are optional because some clients omit
/// them.
fn parse_path<'a>(arg: &'a str, keyword: &str) -> Option<(String, &'a str)> {
    let prefix = arg.get(..keyword.len())?;
    if !prefix.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        Some((inner[..end].to_owned(), inner[end + 1..].trim()))
    } else {
        let (address, params) = rest.split_once(' ').unwrap_or((rest, ""));
        if address.is_empty() {
            return None;
        }
        Some((address.to_owned(), params.trim()))
    }
}

/// The `SIZE=n` parameter of `MAIL FROM`, if given (RFC 1870).
fn declared_size(params: &str) -> Option<usize> {
    params.split_whitespace().find_map(|param| {
        let (key, value) = param.split_once('=')?;
        if key.eq_ignore_ascii_case("SIZE") {
            value.parse().ok()
        } else {
            None
        }
    })
}

// ---------------------------------------------------------------------------
// Reading what was received: just enough MIME to find text in the mails that
// lettre builds (single-part or multipart, 7bit, quoted-printable or base64).
// ---------------------------------------------------------------------------

/// Splits a message or MIME part at the first empty line.
fn split_head_body(part: &str) -> (&str, &str) {
    if let Some(body) = part
        .strip_prefix("\r\n")
        .or_else(|| part.strip_prefix('\n'))
    {
        return ("", body);
    }
    let crlf = part.find("\r\n\r\n").map(|at| (at, 4));
    let lf = part.find("\n\n").map(|at| (at, 2));
    let split = match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    };
    match split {
        Some((at, len)) => (&part[..at], &part[at + len..]),
        None => (part, ""),
    }
}

/// Header fields in order, with folded continuation lines joined.
fn parse_headers(head: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            headers.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    headers
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// A parameter of a structured header such as `Content-Type`, unquoted.
fn header_param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (key, val) = param.split_once('=')?;
        if key.trim().eq_ignore_ascii_case(name) {
            let val = val.trim();
            Some(
                val.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(val)
                    .to_owned(),
            )
        } else {
            None
        }
    })
}

/// Appends the decoded text of a part (recursing into multiparts) to `out`.
fn collect_text(part: &str, out: &mut String, depth: usize) {
    let (head, body) = split_head_body(part);
    let headers = parse_headers(head);
    let content_type = find_header(&headers, "Content-Type").unwrap_or("text/plain");
    let mime_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();

    // The depth bound only guards against a pathological message.
    if depth < 16
        && mime_type.starts_with("multipart/")
        && let Some(boundary) = header_param(content_type, "boundary")
    {
        for sub in split_multipart(body, &boundary) {
            collect_text(sub, out, depth + 1);
        }
        return;
    }

    let encoding = find_header(&headers, "Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase();
    let decoded = match encoding.as_str() {
        "quoted-printable" => decode_quoted_printable(body.as_bytes()),
        "base64" => decode_base64(body.as_bytes()).unwrap_or_else(|| body.as_bytes().to_vec()),
        _ => body.as_bytes().to_vec(),
    };
    let text = String::from_utf8_lossy(&decoded).replace("\r\n", "\n");
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&text);
}

/// The parts of a multipart body between `--boundary` lines (RFC 2046 §5.1.1).
fn split_multipart<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    let close = format!("--{boundary}--");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    for line in body.split_inclusive('\n') {
        // Trailing whitespace after a delimiter is allowed ("transport padding").
        let trimmed = line.trim_end();
        if trimmed == delimiter || trimmed == close {
            if let Some(begin) = start {
                // The line break before a delimiter belongs to the delimiter.
                let part = &body[begin..pos];
                let part = part
                    .strip_suffix("\r\n")
                    .or_else(|| part.strip_suffix('\n'))
                    .unwrap_or(part);
                parts.push(part);
            }
            if trimmed == close {
                return parts;
            }
            start = Some(pos + line.len());
        }
        pos += line.len();
    }
    if let Some(begin) = start {
        parts.push(&body[begin..]);
    }
    parts
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Decodes quoted-printable (RFC 2045 §6.7): `=XX` escapes become bytes and
/// soft line breaks (`=` before the line ending, possibly with trailing
/// whitespace) are removed. A stray `=` is kept as is.
fn decode_quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] != b'=' {
            out.push(input[i]);
            i += 1;
            continue;
        }
        let rest = &input[i + 1..];
        let spaces = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        let after = &rest[spaces..];
        if after.starts_with(b"\r\n") {
            i += 1 + spaces + 2;
        } else if after.starts_with(b"\n") {
            i += 1 + spaces + 1;
        } else if let [high, low, ..] = rest
            && let (Some(high), Some(low)) = (hex_value(*high), hex_value(*low))
        {
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(b'=');
            i += 1;
        }
    }
    out
}

/// Decodes base64, standard or URL-safe alphabet, ignoring line breaks and
/// stopping at padding. Returns `None` on any other character, so callers can
/// fall back to the raw text.
fn decode_base64(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in input {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Decodes RFC 2047 encoded words in a header value. Whitespace between two
/// adjacent encoded words is dropped, as the RFC requires, because encoders
/// (lettre included) split long subjects into several words.
fn decode_encoded_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut after_encoded_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        if let Some((decoded, len)) = parse_encoded_word(&rest[start..]) {
            if !(after_encoded_word && before.chars().all(char::is_whitespace)) {
                out.push_str(before);
            }
            out.push_str(&decoded);
            rest = &rest[start + len..];
            after_encoded_word = true;
        } else {
            out.push_str(&rest[..start + 2]);
            rest = &rest[start + 2..];
            after_encoded_word = false;
        }
    }
    out.push_str(rest);
    out
}

/// Parses one `=?charset?B|Q?text?=` word at the start of `word`, returning
/// the decoded text and the number of bytes it spans.
fn parse_encoded_word(word: &str) -> Option<(String, usize)> {
    let inner = word.strip_prefix("=?")?;
    let (charset, inner) = inner.split_once('?')?;
    let (encoding, inner) = inner.split_once('?')?;
    let end = inner.find("?=")?;
    let text = &inner[..end];
    if text.contains([' ', '\t']) || charset.is_empty() {
        return None;
    }
    let len = 2 + charset.len() + 1 + encoding.len() + 1 + end + 2;
    let bytes = match encoding {
        "B" | "b" => decode_base64(text.as_bytes())?,
        "Q" | "q" => {
            let underscores_as_spaces = text.replace('_', " ");
            decode_quoted_printable(underscores_as_spaces.as_bytes())
        }
        _ => return None,
    };
    // Drop an RFC 2231 language suffix such as `utf-8*en`.
    let charset = charset
        .split('*')
        .next()
        .unwrap_or(charset)
        .to_ascii_lowercase();
    let decoded = match charset.as_str() {
        "iso-8859-1" | "latin1" | "us-ascii" => bytes.iter().map(|&b| char::from(b)).collect(),
        _ => String::from_utf8_lossy(&bytes).into_owned(),
    };
    Some((decoded, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(data: &str) -> ReceivedMail {
        ReceivedMail {
            from: "a@example.com".into(),
            to: vec!["b@example.com".into()],
            data: data.into(),
        }
    }

    #[test]
    fn quoted_printable_soft_breaks_and_escapes_are_decoded() {
        let decoded = decode_quoted_printable(
            b"https://x.example/reset?token=3Dab=\r\ncd and caf=C3=A9 =\n!",
        );
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "https://x.example/reset?token=abcd and café !"
        );
        assert_eq!(decode_quoted_printable(b"a = b =zz"), b"a = b =zz");
        assert_eq!(decode_quoted_printable(b"soft=  \r\nbreak"), b"softbreak");
    }

    #[test]
    fn base64_is_decoded_across_lines() {
        assert_eq!(
            decode_base64(b"aGVsbG8g\r\nd29ybGQ=\r\n").unwrap(),
            b"hello world"
        );
        assert!(decode_base64(b"not*base64").is_none());
    }

    #[test]
    fn subject_is_unfolded_and_encoded_words_decoded() {
        let m = mail(
            "From: a@example.com\r\nSubject: =?utf-8?b?Q2Fmw6k=?=\r\n =?utf-8?q?_au_lait?=\r\n\r\nbody\r\n",
        );
        assert_eq!(m.subject().as_deref(), Some("Café au lait"));
        let m = mail("Subject: Welcome\r\n to partnerd\r\n\r\nbody\r\n");
        assert_eq!(m.subject().as_deref(), Some("Welcome to partnerd"));
        assert_eq!(mail("\r\nno headers").subject(), None);
    }

    #[test]
    fn body_search_decodes_quoted_printable() {
        let m = mail(
            "Subject: Reset\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
             Open https://partners.example.com/reset?token=3Dabcdefghijklmnopqrstuvwxyz012345=\r\n\
             6789 within an hour.\r\n",
        );
        assert!(m.body_contains("token=abcdefghijklmnopqrstuvwxyz0123456789"));
        assert!(!m.body_contains("Subject"));
    }

    #[test]
    fn body_search_decodes_base64_and_multipart() {
        let m = mail(
            "MIME-Version: 1.0\r\n\
             Content-Type: multipart/alternative;\r\n boundary=\"XyZ\"\r\n\r\n\
             --XyZ\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n\
             aGVsbG8gd29ybGQ=\r\n\
             --XyZ\r\n\
             Content-Type: text/html; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n\
             <a href=3D\"https://x.example/\">li=\r\nnk</a>\r\n\
             --XyZ--\r\n",
        );
        assert!(m.body_contains("hello world"));
        assert!(m.body_contains("<a href=\"https://x.example/\">link</a>"));
        assert!(m.body_contains("world\r\n<a"));
        assert!(!m.body_contains("XyZ"));
    }

    #[test]
    fn paths_and_sizes_are_parsed() {
        assert_eq!(
            parse_path("FROM:<a@b.c> BODY=8BITMIME", "FROM:"),
            Some(("a@b.c".into(), "BODY=8BITMIME"))
        );
        assert_eq!(parse_path("from: <>", "FROM:"), Some((String::new(), "")));
        assert_eq!(parse_path("to:x@y.z", "TO:"), Some(("x@y.z".into(), "")));
        assert_eq!(parse_path("TO <x@y.z>", "TO:"), None);
        assert_eq!(declared_size("BODY=8BITMIME SIZE=1234"), Some(1234));
        assert_eq!(declared_size("BODY=8BITMIME"), None);
    }
}

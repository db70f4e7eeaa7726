//! Drives the SMTP receiver with raw SMTP over a `TcpStream`, so these tests
//! check the wire protocol itself rather than one client's view of it.

use std::net::SocketAddr;
use std::time::Duration;

use partnerd_testkit::SmtpReceiver;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Generous, because CI machines are slow; only a hung receiver reaches it.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A hand-written SMTP client: one command, one reply, nothing hidden.
struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// A reply: its code and the text of each line after the code.
#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Client {
    /// Connects and checks the `220` greeting.
    async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect to receiver");
        // The client writes content and the "." line separately; without
        // this, Nagle's algorithm would delay each message by ~40 ms.
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        let (read_half, writer) = stream.into_split();
        let mut client = Client {
            reader: BufReader::new(read_half),
            writer,
        };
        let greeting = client.read_reply().await;
        assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
        client
    }

    /// Connects and says `EHLO`.
    async fn connect_ehlo(addr: SocketAddr) -> Client {
        let mut client = Client::connect(addr).await;
        client.expect("EHLO client.example", 250).await;
        client
    }

    async fn read_reply(&mut self) -> Reply {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(TIMEOUT, self.reader.read_line(&mut line))
                .await
                .expect("reply within timeout")
                .expect("read reply");
            assert!(
                read > 0,
                "connection closed while waiting for a reply; got {lines:?}"
            );
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let line = line.trim_end_matches("\r\n");
            assert!(line.len() >= 4, "short reply line: {line:?}");
            let code: u16 = line[..3].parse().expect("numeric reply code");
            lines.push(line[4..].to_owned());
            match &line[3..4] {
                " " => return Reply { code, lines },
                "-" => continue,
                other => panic!("bad separator {other:?} in {line:?}"),
            }
        }
    }

    async fn send_raw(&mut self, bytes: &str) {
        self.writer
            .write_all(bytes.as_bytes())
            .await
            .expect("write to receiver");
    }

    async fn command(&mut self, line: &str) -> Reply {
        self.send_raw(&format!("{line}\r\n")).await;
        self.read_reply().await
    }

    async fn expect(&mut self, line: &str, code: u16) -> Reply {
        let reply = self.command(line).await;
        assert_eq!(reply.code, code, "{line:?} got {reply:?}");
        reply
    }

    /// A complete transaction; `content` is sent as is (already dot-stuffed,
    /// CRLF line endings) and followed by the `.` line.
    async fn send_mail(&mut self, from: &str, to: &[&str], content: &str) {
        self.expect(&format!("MAIL FROM:<{from}>"), 250).await;
        for rcpt in to {
            self.expect(&format!("RCPT TO:<{rcpt}>"), 250).await;
        }
        self.expect("DATA", 354).await;
        self.send_raw(content).await;
        let reply = self.command(".").await;
        assert_eq!(reply.code, 250, "end of data: {reply:?}");
    }

    async fn quit(mut self) {
        self.expect("QUIT", 221).await;
        let mut rest = String::new();
        let read = tokio::time::timeout(TIMEOUT, self.reader.read_line(&mut rest))
            .await
            .expect("close within timeout")
            .expect("read after QUIT");
        assert_eq!(
            read, 0,
            "receiver kept the connection open after QUIT: {rest:?}"
        );
    }
}

#[tokio::test]
async fn receives_one_message() {
    let smtp = SmtpReceiver::start().await.unwrap();
    assert!(smtp.addr().ip().is_loopback());
    let mut client = Client::connect(smtp.addr()).await;

    let ehlo = client.expect("EHLO client.example", 250).await;
    assert!(ehlo.lines[0].starts_with("localhost"), "{ehlo:?}");
    assert!(
        ehlo.lines.iter().any(|l| l.starts_with("SIZE ")),
        "{ehlo:?}"
    );
    assert_eq!(ehlo.lines.last().map(String::as_str), Some("8BITMIME"));
    // Without PIPELINING a client must wait for each reply.
    assert!(
        !ehlo.lines.iter().any(|l| l.contains("PIPELINING")),
        "{ehlo:?}"
    );

    let content = "From: Partner Team <team@partnerd.example>\r\n\
                   To: ann@example.com\r\n\
                   Subject: Welcome aboard\r\n\
                   \r\n\
                   Hello Ann,\r\n\
                   your partner account is ready.\r\n";
    client
        .send_mail(
            "team@partnerd.example",
            &["ann@example.com", "bob@example.com"],
            content,
        )
        .await;
    client.quit().await;

    let mails = smtp.wait_for(1, TIMEOUT).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.from, "team@partnerd.example");
    assert_eq!(mail.to, ["ann@example.com", "bob@example.com"]);
    assert_eq!(mail.data, content);
    assert_eq!(mail.subject().as_deref(), Some("Welcome aboard"));
    assert_eq!(mail.header("to").as_deref(), Some("ann@example.com"));
    assert!(mail.body_contains("your partner account is ready."));
    assert!(
        !mail.body_contains("Welcome aboard"),
        "headers are not body"
    );
    assert_eq!(smtp.messages(), mails);
}

#[tokio::test]
async fn receives_two_messages_on_one_connection() {
    let smtp = SmtpReceiver::start().await.unwrap();
    let mut client = Client::connect_ehlo(smtp.addr()).await;

    client
        .send_mail(
            "a@partnerd.example",
            &["one@example.com"],
            "Subject: first\r\n\r\nbody one\r\n",
        )
        .await;
    // A client may reset between transactions; the envelope must not leak.
    client.expect("RSET", 250).await;
    client.expect("NOOP", 250).await;
    client
        .send_mail(
            "b@partnerd.example",
            &["two@example.com"],
            "Subject: second\r\n\r\nbody two\r\n",
        )
        .await;
    client.quit().await;

    let mails = smtp.wait_for(2, TIMEOUT).await;
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[0].from, "a@partnerd.example");
    assert_eq!(mails[0].to, ["one@example.com"]);
    assert_eq!(mails[0].subject().as_deref(), Some("first"));
    assert_eq!(mails[1].from, "b@partnerd.example");
    assert_eq!(mails[1].to, ["two@example.com"]);
    assert_eq!(mails[1].subject().as_deref(), Some("second"));
    assert!(mails[1].body_contains("body two"));
}

#[tokio::test]
async fn undoes_dot_stuffing() {
    let smtp = SmtpReceiver::start().await.unwrap();
    let mut client = Client::connect_ehlo(smtp.addr()).await;

    // On the wire every line that starts with "." gets one more; the lone
    // "." line (sent by `send_mail`) ends the message.
    let stuffed = "Subject: dots\r\n\r\n..\r\n..leading dot\r\n...two dots\r\nmid.dle .\r\n";
    client
        .send_mail("a@partnerd.example", &["b@example.com"], stuffed)
        .await;
    client.quit().await;

    let mails = smtp.wait_for(1, TIMEOUT).await;
    assert_eq!(
        mails[0].data,
        "Subject: dots\r\n\r\n.\r\n.leading dot\r\n..two dots\r\nmid.dle .\r\n"
    );
    assert!(mails[0].body_contains("\n.leading dot\n..two dots\n"));
}

#[tokio::test]
async fn fail_next_refuses_data_then_recovers() {
    let smtp = SmtpReceiver::start().await.unwrap();
    smtp.fail_next(2);
    let mut client = Client::connect_ehlo(smtp.addr()).await;

    for attempt in 1..=2 {
        client.expect("MAIL FROM:<a@partnerd.example>", 250).await;
        client.expect("RCPT TO:<b@example.com>", 250).await;
        let reply = client.command("DATA").await;
        assert_eq!(reply.code, 451, "attempt {attempt}: {reply:?}");
        assert_eq!(reply.lines, ["4.3.0 try again later"]);
        // The refused DATA ended the transaction: a new MAIL is accepted
        // without RSET, as after any failed transaction.
    }

    client
        .send_mail(
            "a@partnerd.example",
            &["b@example.com"],
            "Subject: third time lucky\r\n\r\nok\r\n",
        )
        .await;
    client.quit().await;

    let mails = smtp.wait_for(1, TIMEOUT).await;
    assert_eq!(mails.len(), 1, "refused attempts must not be recorded");
    assert_eq!(mails[0].subject().as_deref(), Some("third time lucky"));
}

#[tokio::test]
async fn fail_next_counts_across_connections_and_can_be_cancelled() {
    let smtp = SmtpReceiver::start().await.unwrap();
    smtp.fail_next(1);

    let mut first = Client::connect_ehlo(smtp.addr()).await;
    first.expect("MAIL FROM:<a@partnerd.example>", 250).await;
    first.expect("RCPT TO:<b@example.com>", 250).await;
    first.expect("DATA", 451).await;
    first.quit().await;

    smtp.fail_next(5);
    smtp.fail_next(0);
    let mut second = Client::connect_ehlo(smtp.addr()).await;
    second
        .send_mail(
            "a@partnerd.example",
            &["b@example.com"],
            "Subject: retry\r\n\r\nok\r\n",
        )
        .await;
    second.quit().await;

    assert_eq!(smtp.wait_for(1, TIMEOUT).await.len(), 1);
}

#[tokio::test]
async fn enforces_command_order_and_syntax() {
    let smtp = SmtpReceiver::start().await.unwrap();
    let mut client = Client::connect(smtp.addr()).await;

    client.expect("MAIL FROM:<a@partnerd.example>", 503).await;
    client.expect("EHLO", 501).await;
    client.expect("HELO client.example", 250).await;
    client.expect("RCPT TO:<b@example.com>", 503).await;
    client.expect("DATA", 503).await;
    client.expect("MAIL FROM a@partnerd.example", 501).await;
    client
        .expect("mail from:<a@partnerd.example> BODY=8BITMIME", 250)
        .await;
    client
        .expect("MAIL FROM:<again@partnerd.example>", 503)
        .await;
    client.expect("DATA", 503).await;
    client.expect("RCPT TO:<>", 501).await;
    client.expect("VRFY ann", 502).await;
    client.expect("STARTTLS", 502).await;
    client.expect("AUTH PLAIN AGFubgBzZWNyZXQ=", 502).await;
    client.expect("RSET", 250).await;
    client.expect("RCPT TO:<b@example.com>", 503).await;
    let size = partnerd_testkit::smtp::MAX_MESSAGE_BYTES + 1;
    client
        .expect(&format!("MAIL FROM:<a@partnerd.example> SIZE={size}"), 552)
        .await;
    client
        .expect(&format!("NOOP {}", "x".repeat(10_000)), 500)
        .await;
    // The session is still in step after the oversized line.
    client.expect("NOOP", 250).await;
    client.quit().await;

    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn accepts_the_null_sender_and_serves_connections_concurrently() {
    let smtp = SmtpReceiver::start().await.unwrap();
    let mut first = Client::connect_ehlo(smtp.addr()).await;
    let mut second = Client::connect_ehlo(smtp.addr()).await;

    // Interleave the two sessions: each connection has its own state.
    first.expect("MAIL FROM:<>", 250).await;
    second.expect("MAIL FROM:<b@partnerd.example>", 250).await;
    first.expect("RCPT TO:<bounce@example.com>", 250).await;
    second.expect("RCPT TO:<c@example.com>", 250).await;
    first.expect("DATA", 354).await;
    second.expect("DATA", 354).await;
    second
        .send_raw("Subject: from second\r\n\r\nx\r\n.\r\n")
        .await;
    assert_eq!(second.read_reply().await.code, 250);
    first
        .send_raw("Subject: from first\r\n\r\ny\r\n.\r\n")
        .await;
    assert_eq!(first.read_reply().await.code, 250);
    first.quit().await;
    second.quit().await;

    let mails = smtp.wait_for(2, TIMEOUT).await;
    assert_eq!(mails[0].subject().as_deref(), Some("from second"));
    assert_eq!(mails[1].from, "");
    assert_eq!(mails[1].to, ["bounce@example.com"]);
}

#[tokio::test]
async fn decodes_quoted_printable_bodies_as_lettre_sends_them() {
    let smtp = SmtpReceiver::start().await.unwrap();
    let mut client = Client::connect_ehlo(smtp.addr()).await;
    let content = "Subject: =?utf-8?b?UsOpaW5pdGlhbGlzZXI=?=\r\n\
                   Content-Type: text/plain; charset=utf-8\r\n\
                   Content-Transfer-Encoding: quoted-printable\r\n\
                   \r\n\
                   R=C3=A9initialisez via https://partners.example.com/reset?token=3Dabc=\r\n\
                   def123\r\n";
    client
        .send_mail("a@partnerd.example", &["b@example.com"], content)
        .await;
    client.quit().await;

    let mail = &smtp.wait_for(1, TIMEOUT).await[0];
    assert_eq!(mail.subject().as_deref(), Some("Réinitialiser"));
    assert!(
        mail.body_contains("Réinitialisez via https://partners.example.com/reset?token=abcdef123")
    );
}

#[tokio::test]
#[should_panic(expected = "expected at least 1 message(s)")]
async fn wait_for_panics_on_timeout() {
    let smtp = SmtpReceiver::start().await.unwrap();
    smtp.wait_for(1, Duration::from_millis(50)).await;
}

#[tokio::test]
async fn dropping_the_receiver_closes_connections() {
    let smtp = SmtpReceiver::start().await.unwrap();
    let mut client = Client::connect_ehlo(smtp.addr()).await;
    drop(smtp);

    // The connection task is aborted, so the client sees end of stream.
    let mut rest = String::new();
    let read = tokio::time::timeout(TIMEOUT, client.reader.read_line(&mut rest))
        .await
        .expect("connection closed within timeout")
        .unwrap_or(0);
    assert_eq!(read, 0, "unexpected data after drop: {rest:?}");
}

//! A real SMTP server for the tests: mail the server under test sends arrives
//! here over TCP, through the same client code and protocol as at a real relay.
//!
//! Built on `mailin-embedded`, which serves on blocking threads of its own, so
//! a sink works under any test runtime. It has no way to stop: a sink listens
//! until the test binary exits.

// Test support: a failure here is a failed test, said as plainly as possible.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mailin_embedded::{Handler, Response, Server, response};
use mailparse::{MailHeaderMap, ParsedMail};
use tokio::sync::watch;

/// One message, as the sink received it.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`), in order.
    pub to: Vec<String>,
    /// The raw message after `DATA`: headers and body, still transfer-encoded.
    pub data: String,
}

impl Mail {
    /// The first header of that name, RFC 2047 encoded words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.parsed().headers.get_first_value(name)
    }

    /// The decoded `Subject`; panics if there is none.
    /// The token of the approval link in the mail's body.
    pub fn approval_token(&self) -> String {
        let body = self.body_text();
        let marker = "/approval?token=";
        let start = body
            .find(marker)
            .unwrap_or_else(|| panic!("no approval link in the mail:\n{body}"))
            + marker.len();
        body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    }

    pub fn subject(&self) -> String {
        self.header("Subject")
            .unwrap_or_else(|| panic!("the mail has no Subject:\n{}", self.data))
    }

    /// The first `text/plain` part, with its transfer encoding (quoted-printable,
    /// base64) and charset decoded, and SMTP's CRLF line ends as `\n`; panics
    /// if there is none. A part naming no charset is not read as UTF-8 (the
    /// default is US-ASCII, as for a mail client), so a missing
    /// `charset=utf-8` shows here as mojibake.
    pub fn body_text(&self) -> String {
        let parsed = self.parsed();
        let part = text_part(&parsed)
            .unwrap_or_else(|| panic!("the mail has no text/plain part:\n{}", self.data));
        part.get_body()
            .expect("the text part decodes")
            .replace("\r\n", "\n")
    }

    fn parsed(&self) -> ParsedMail<'_> {
        mailparse::parse_mail(self.data.as_bytes()).expect("the sink received a parseable message")
    }
}

/// Depth first, so a `multipart/alternative` yields its plain text version.
fn text_part<'m, 'd>(mail: &'m ParsedMail<'d>) -> Option<&'m ParsedMail<'d>> {
    if mail.subparts.is_empty() {
        (mail.ctype.mimetype == "text/plain").then_some(mail)
    } else {
        mail.subparts.iter().find_map(text_part)
    }
}

/// What the SMTP threads and the test share.
struct Shared {
    /// A watch channel rather than a mutex, so waiting needs no polling.
    mails: watch::Sender<Vec<Mail>>,
    refusing: AtomicBool,
}

/// A running SMTP server on 127.0.0.1, plain (no STARTTLS, no AUTH).
pub struct MailSink {
    port: u16,
    shared: Arc<Shared>,
}

/// A port kept for a sink that is not listening yet: a mail server that is down.
pub struct PendingSink {
    port: u16,
}

impl MailSink {
    /// A sink on a free port, accepting mail.
    pub fn start() -> MailSink {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port for the mail sink");
        Self::serve(listener)
    }

    /// A free port with nothing listening on it yet, and the sink that will.
    ///
    /// The port is found by binding port 0 and letting go of it, so until
    /// [`PendingSink::start`] another socket could in principle take it.
    pub fn reserve() -> (u16, PendingSink) {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port for the mail sink");
        let port = listener.local_addr().expect("a bound address").port();
        (port, PendingSink { port })
    }

    /// The lettre connection URL: plain SMTP, no TLS.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The mails received so far, in order of arrival.
    pub fn mails(&self) -> Vec<Mail> {
        self.shared.mails.borrow().clone()
    }

    /// Waits until at least `count` mails have arrived and returns them all;
    /// panics, listing what did arrive, when `timeout` runs out first.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Mail> {
        let mut mails = self.shared.mails.subscribe();
        match tokio::time::timeout(timeout, mails.wait_for(|m| m.len() >= count)).await {
            Ok(Ok(arrived)) => arrived.clone(),
            _ => {
                let arrived: Vec<String> = self
                    .mails()
                    .iter()
                    .map(|m| format!("  {} -> {:?}: {:?}", m.from, m.to, m.header("Subject")))
                    .collect();
                panic!(
                    "expected at least {count} mail(s) at {} within {timeout:?}, {} arrived:\n{}",
                    self.url(),
                    arrived.len(),
                    arrived.join("\n")
                )
            }
        }
    }

    /// [`MailSink::wait_for`] for tests outside an async runtime.
    pub fn wait_for_blocking(&self, count: usize, timeout: Duration) -> Vec<Mail> {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime to wait in")
            .block_on(self.wait_for(count, timeout))
    }

    /// While on, the sink answers `MAIL FROM` (and the end of `DATA`) with
    /// 451, a transient failure a sender should retry, and records nothing.
    pub fn refuse_with_451(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    fn serve(listener: TcpListener) -> MailSink {
        let port = listener.local_addr().expect("a bound address").port();
        let shared = Arc::new(Shared {
            mails: watch::channel(Vec::new()).0,
            refusing: AtomicBool::new(false),
        });
        let mut server = Server::new(Recorder {
            shared: Arc::clone(&shared),
            current: None,
        });
        // Threads bound the concurrent sessions: room for a sender's pooled
        // connections plus the test's own.
        server
            .with_name("mail-sink.test")
            .with_num_threads(8)
            .with_tcp_listener(listener);
        // The listener is bound already: connections made before this thread
        // accepts wait in the backlog rather than being refused.
        std::thread::Builder::new()
            .name(format!("mail-sink-{port}"))
            .spawn(move || {
                if let Err(err) = server.serve() {
                    eprintln!("mail sink on port {port} stopped: {err}");
                }
            })
            .expect("the mail sink thread starts");
        MailSink { port, shared }
    }
}

impl PendingSink {
    /// Starts listening on the reserved port: the mail server comes back up.
    pub fn start(self) -> MailSink {
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind((Ipv4Addr::LOCALHOST, self.port)) {
                Ok(listener) => break listener,
                // Something briefly on the port (another test's socket): retry.
                Err(err) if err.kind() == io::ErrorKind::AddrInUse && attempts < 20 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(err) => panic!("the mail sink cannot listen on port {}: {err}", self.port),
            }
        };
        MailSink::serve(listener)
    }
}

/// The per-connection SMTP handler: mailin clones it for each session.
#[derive(Clone)]
struct Recorder {
    shared: Arc<Shared>,
    /// The message of the transaction under way; its data as bytes until the end.
    current: Option<(Mail, Vec<u8>)>,
}

impl Recorder {
    fn refusing(&self) -> bool {
        self.shared.refusing.load(Ordering::SeqCst)
    }
}

fn refusal() -> Response {
    Response::custom(
        451,
        "4.3.0 Mail sink refusing mail for this test".to_owned(),
    )
}

impl Handler for Recorder {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, _from: &str) -> Response {
        if self.refusing() {
            refusal()
        } else {
            response::OK
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        let mail = Mail {
            from: from.to_owned(),
            to: to.to_vec(),
            data: String::new(),
        };
        self.current = Some((mail, Vec::new()));
        response::OK
    }

    /// Called per line, dot-unstuffed, with its CRLF.
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some((_, data)) = &mut self.current {
            data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let Some((mut mail, data)) = self.current.take() else {
            return response::OK;
        };
        if self.refusing() {
            return refusal();
        }
        mail.data = String::from_utf8_lossy(&data).into_owned();
        self.shared.mails.send_modify(|mails| mails.push(mail));
        response::OK
    }
}

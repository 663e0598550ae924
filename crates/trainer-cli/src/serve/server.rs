//! `cnn serve`'s HTTP: a `std::net` listener, [`WORKERS`] threads each
//! taking one connection at a time, every request read within its limits
//! ([`MAX_HEADER`], [`MAX_BODY`], [`TIMEOUT`]) before a route answers it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use super::routes::{Handler, Reply, Request};
use super::state::Shared;

/// Threads answering requests.
pub(crate) const WORKERS: usize = 4;
/// Largest request header, in bytes.
pub(crate) const MAX_HEADER: usize = 16 << 10;
/// Largest request body, in bytes: a `MAX_SIDE`-square drawing as JSON fits.
pub(crate) const MAX_BODY: usize = 2 << 20;
/// The longest a request may take to arrive, and a reply to be taken.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// Set by Ctrl-C: the workers stop taking connections.
static STOP: AtomicBool = AtomicBool::new(false);

/// Listens on `addr`, prints the address and serves until Ctrl-C.
pub(crate) fn serve(addr: &str, model: &Path, shared: &Shared) -> Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    let mut wake = addr;
    if wake.ip().is_unspecified() {
        wake.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    stop_on_ctrl_c(wake)?;
    let who = if addr.ip().is_loopback() {
        "only this machine can connect; --addr 0.0.0.0:PORT opens it to the network".to_string()
    } else {
        format!(
            "listening on {}: anyone who can reach it can use it",
            addr.ip()
        )
    };
    println!("serving {} on http://{wake}/ ({who})", model.display());
    println!("press Ctrl-C to stop");
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| s.spawn(|| worker(&listener, shared)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().map_err(|_| anyhow!("a worker thread panicked"))?)
            .collect::<Result<Vec<()>>>()
    })?;
    println!("stopped");
    Ok(())
}

/// The first Ctrl-C lets the requests under way finish, then stops the
/// workers (waking them with connections to `wake`); a second quits at once.
fn stop_on_ctrl_c(wake: SocketAddr) -> Result<()> {
    ctrlc::set_handler(move || {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: stopping once the requests under way are answered");
        // A connection to ourselves wakes each worker waiting in accept().
        for _ in 0..WORKERS {
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        }
    })
    .context("installing the Ctrl-C handler")
}

/// Takes connections one at a time until Ctrl-C.
fn worker(listener: &TcpListener, shared: &Shared) -> Result<()> {
    let mut handler = Handler::new(shared)?;
    while !STOP.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok(_) if STOP.load(Ordering::SeqCst) => break,
            Ok((stream, _)) => {
                if let Err(e) = serve_connection(stream, &mut handler, shared) {
                    tracing::debug!("connection: {e}");
                }
            }
            Err(e) => {
                // E.g. out of file descriptors: wait a little rather than spin.
                tracing::warn!("accepting a connection: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    Ok(())
}

/// Reads one request, writes its reply, and closes the connection.
fn serve_connection(
    mut stream: TcpStream,
    handler: &mut Handler,
    shared: &Shared,
) -> io::Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    let reply = match read_request(&mut stream, deadline) {
        Ok(req) => handler.route(&req, shared),
        Err(reply) => reply,
    };
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len()
    )?;
    stream.write_all(&reply.body)?;
    // Closing a socket that still holds unread bytes resets the connection,
    // and the client may lose the reply: read what is left first, a little
    // and briefly (a request refused before its body was read).
    stream.shutdown(Shutdown::Write)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    io::copy(&mut (&stream).take(64 << 10), &mut io::sink())?;
    Ok(())
}

/// Reads bytes into `buf` (at most `chunk` more), failing with 408 after `deadline`.
fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    chunk: usize,
    deadline: Instant,
) -> Result<usize, Reply> {
    let too_slow = || Reply::error(408, "the request took too long to arrive");
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(too_slow)?;
    stream
        .set_read_timeout(Some(left))
        .map_err(|e| Reply::error(400, format!("socket: {e}")))?;
    let start = buf.len();
    buf.resize(start + chunk, 0);
    let read = stream.read(&mut buf[start..]);
    buf.truncate(start + *read.as_ref().unwrap_or(&0));
    match read {
        Ok(n) => Ok(n),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(too_slow())
        }
        Err(e) => Err(Reply::error(400, format!("reading the request: {e}"))),
    }
}

/// A request's header, parsed.
struct Head {
    method: String,
    path: String,
    /// Bytes of the header, up to the body.
    len: usize,
    /// What Content-Length announced.
    body_len: Option<usize>,
}

/// Reads one request: the header (at most [`MAX_HEADER`] bytes), then the
/// body its Content-Length announces (at most [`MAX_BODY`]).
fn read_request(stream: &mut TcpStream, deadline: Instant) -> Result<Request, Reply> {
    let mut buf = Vec::new();
    let head = loop {
        if read_more(stream, &mut buf, 4096, deadline)? == 0 {
            return Err(Reply::error(400, "the request header ended early"));
        }
        if let Some(head) = parse_head(&buf)? {
            break head;
        }
    };
    let body_len = match head.body_len {
        Some(n) => n,
        None if head.method == "POST" => {
            return Err(Reply::error(411, "send the body with a Content-Length"))
        }
        None => 0,
    };
    if body_len > MAX_BODY {
        return Err(Reply::error(
            413,
            format!("the body is {body_len} bytes; at most {MAX_BODY} are accepted"),
        ));
    }
    let body = buf.split_off(head.len.min(buf.len()));
    let body = read_body(stream, body, body_len, deadline)?;
    Ok(Request {
        method: head.method,
        path: head.path,
        body,
    })
}

/// The header in `buf`, once it is complete (`None` while it is not).
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Reply> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let body_len = content_length(req.headers)?;
            let method = req.method.unwrap_or_default().to_string();
            let path = req.path.unwrap_or_default();
            let path = path.split('?').next().unwrap_or_default().to_string();
            Ok(Some(Head {
                method,
                path,
                len,
                body_len,
            }))
        }
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEADER => Err(Reply::error(
            431,
            format!("the request header is over {MAX_HEADER} bytes"),
        )),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            Err(Reply::error(431, "more than 32 header fields"))
        }
        Err(e) => Err(Reply::error(400, format!("malformed request: {e}"))),
    }
}

/// The Content-Length header's number, if there is one; a chunked body is refused.
fn content_length(headers: &[httparse::Header<'_>]) -> Result<Option<usize>, Reply> {
    let mut body_len = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Reply::error(411, "send the body with a Content-Length"));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| Reply::error(400, "Content-Length is not a number"))?;
            body_len = Some(n);
        }
    }
    Ok(body_len)
}

/// Reads the rest of a `body_len`-byte body after the part already in `body`.
fn read_body(
    stream: &mut TcpStream,
    mut body: Vec<u8>,
    body_len: usize,
    deadline: Instant,
) -> Result<Vec<u8>, Reply> {
    while body.len() < body_len {
        let missing = body_len - body.len();
        if read_more(stream, &mut body, missing, deadline)? == 0 {
            return Err(Reply::error(
                400,
                format!(
                    "the body ended after {} of the {body_len} bytes its Content-Length announced",
                    body.len()
                ),
            ));
        }
    }
    body.truncate(body_len);
    Ok(body)
}

/// The reason phrase of a status.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

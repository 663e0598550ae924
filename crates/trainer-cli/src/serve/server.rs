//! `cnn serve`'s HTTP: hyper's HTTP/1.1 on a tokio runtime, one task per
//! connection, so that an idle or slow client costs a socket and a little
//! memory and delays nobody. Every request is read within its limits
//! ([`MAX_HEADER`], [`MAX_HEADERS`], [`MAX_BODY`], [`TIMEOUT`]) before a
//! route answers it, on one of [`WORKERS`] networks.

use std::convert::Infallible;
use std::path::Path;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::reply::Reply;
use super::routes::{Handler, Request};
use super::state::Shared;

/// Networks answering requests at once (each its own copy).
pub(crate) const WORKERS: usize = 4;
/// Largest request header, in bytes (hyper's read buffer; over it: 431).
pub(crate) const MAX_HEADER: usize = 16 << 10;
/// Most header fields in a request (over it: 431).
pub(crate) const MAX_HEADERS: usize = 32;
/// Largest request body, in bytes: a drawing [`trainer::prepare::MAX_DRAWING_SIDE`] a side, as JSON, fits.
pub(crate) const MAX_BODY: usize = 2 << 20;
/// The longest a request's header may take to arrive (an idle connection is
/// closed after it), and its body after it.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a connection is kept: then it is closed once the request
/// under way, if any, is answered (within [`TIMEOUT`]).
pub(crate) const CONNECTION_LIFE: Duration = Duration::from_secs(60);
/// After Ctrl-C, the longest the requests under way have to finish: the
/// whole stop takes well under a second.
pub(crate) const STOP_WITHIN: Duration = Duration::from_millis(500);

/// What every connection shares: the model, and the networks not in use.
struct Server {
    shared: Shared,
    /// The networks free to answer a request.
    handlers: Mutex<Vec<Handler>>,
    /// One permit per network.
    workers: Semaphore,
}

/// Listens on `addr`, prints the address and serves until Ctrl-C.
pub(crate) fn serve(addr: &str, model: &Path, shared: Shared) -> Result<()> {
    let handlers = (0..WORKERS)
        .map(|_| Handler::new(&shared))
        .collect::<Result<Vec<_>>>()?;
    let server = Arc::new(Server {
        shared,
        handlers: Mutex::new(handlers),
        workers: Semaphore::new(WORKERS),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("starting the tokio runtime")?;
    let served = runtime.block_on(listen(addr, model, server));
    // A network still computing is not waited for: the process ends.
    runtime.shutdown_background();
    served?;
    println!("stopped");
    Ok(())
}

/// Accepts connections, each served by a task of its own, until Ctrl-C;
/// then gives the requests under way [`STOP_WITHIN`] to finish.
async fn listen(addr: &str, model: &Path, server: Arc<Server>) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    // Polled once, so that Ctrl-C is caught from before the address is printed.
    let mut ctrl_c = pin!(tokio::signal::ctrl_c());
    tokio::select! {
        biased;
        caught = &mut ctrl_c => return caught.context("catching Ctrl-C"),
        () = std::future::ready(()) => {}
    }
    announce(addr, model);
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            caught = &mut ctrl_c => break caught.context("catching Ctrl-C")?,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, server.clone(), stopping.clone()));
                }
                Err(e) => {
                    // E.g. out of file descriptors: wait a little rather than spin.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    eprintln!("\nCtrl-C: stopping (the requests under way have half a second to finish)");
    drop(listener);
    let _ = stop.send(true);
    let all_closed = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(STOP_WITHIN, all_closed).await;
    Ok(())
}

/// Prints where the server listens, and who can reach it.
fn announce(addr: std::net::SocketAddr, model: &Path) {
    let mut shown = addr;
    if shown.ip().is_unspecified() {
        shown.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let who = if addr.ip().is_loopback() {
        "only this machine can connect; --addr 0.0.0.0:PORT opens it to the network".to_string()
    } else {
        format!(
            "listening on {}: anyone who can reach it can use it",
            addr.ip()
        )
    };
    println!("serving {} on http://{shown}/ ({who})", model.display());
    println!("press Ctrl-C to stop");
}

/// Serves one connection's requests (keep-alive) until the client closes it,
/// it is idle for [`TIMEOUT`], it has lived [`CONNECTION_LIFE`], or Ctrl-C.
async fn connection(stream: TcpStream, server: Arc<Server>, mut stopping: watch::Receiver<bool>) {
    let service = service_fn(move |req| {
        let server = server.clone();
        async move { Ok::<_, Infallible>(answer(req, server).await) }
    });
    let mut conn = pin!(http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(TIMEOUT)
        .max_buf_size(MAX_HEADER)
        .max_headers(MAX_HEADERS)
        // A client may send its request and close its side at once.
        .half_close(true)
        .serve_connection(TokioIo::new(stream), service));
    tokio::select! {
        done = conn.as_mut() => {
            if let Err(e) = done {
                tracing::debug!("connection: {e}");
            }
            return;
        }
        _ = stopping.wait_for(|stop| *stop) => {}
        () = tokio::time::sleep(CONNECTION_LIFE) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(TIMEOUT, conn).await;
}

/// The reply to one request, as hyper's response.
async fn answer(req: hyper::Request<Incoming>, server: Arc<Server>) -> Response<Full<Bytes>> {
    let reply = match read_request(req).await {
        Ok(req) => route(req, server).await,
        Err(reply) => reply,
    };
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Runs the route on a free network, on a thread that may block.
async fn route(req: Request, server: Arc<Server>) -> Reply {
    let Ok(_permit) = server.workers.acquire().await else {
        return Reply::error(500, "the server is stopping");
    };
    let worker = server.clone();
    let answered = tokio::task::spawn_blocking(move || {
        let server = worker;
        let free = server.handlers.lock().map(|mut h| h.pop()).ok().flatten();
        // A network lost to a panic is made anew.
        let mut handler = match free {
            Some(handler) => handler,
            None => Handler::new(&server.shared)?,
        };
        let reply = handler.route(&req, &server.shared);
        if let Ok(mut free) = server.handlers.lock() {
            free.push(handler);
        }
        Ok::<_, anyhow::Error>(reply)
    })
    .await;
    match answered {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => Reply::error(500, format!("building a network: {e:#}")),
        Err(_) => Reply::error(500, "the network failed on this request"),
    }
}

/// The method, path and body of a request whose header hyper has read
/// (refusing a malformed or conflicting Content-Length with 400): the body
/// only when Content-Length announces it, and at most [`MAX_BODY`] bytes.
async fn read_request(req: hyper::Request<Incoming>) -> Result<Request, Reply> {
    let (head, body) = req.into_parts();
    let length_required = || Reply::error(411, "send the body with a Content-Length");
    if head.headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(length_required());
    }
    let announced = match head.headers.get(header::CONTENT_LENGTH) {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or_else(|| Reply::error(400, "Content-Length is not a number"))?,
        None if head.method == hyper::Method::POST => return Err(length_required()),
        None => 0,
    };
    if announced > MAX_BODY {
        return Err(Reply::error(
            413,
            format!("the body is {announced} bytes; at most {MAX_BODY} are accepted"),
        ));
    }
    let body = tokio::time::timeout(TIMEOUT, read_body(body, announced))
        .await
        .map_err(|_| Reply::error(408, "the request took too long to arrive"))??;
    Ok(Request {
        method: head.method.as_str().to_string(),
        path: head.uri.path().to_string(),
        body,
    })
}

/// Reads a body of `announced` bytes (at most [`MAX_BODY`]).
async fn read_body(body: Incoming, announced: usize) -> Result<Vec<u8>, Reply> {
    let mut body = Limited::new(body, MAX_BODY);
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Err(e) if e.is::<LengthLimitError>() => {
                return Err(Reply::error(
                    413,
                    format!("the body is over {MAX_BODY} bytes, the most accepted"),
                ))
            }
            Err(_) => {
                return Err(Reply::error(
                    400,
                    format!(
                    "the body ended after {} of the {announced} bytes its Content-Length announced",
                    bytes.len()
                ),
                ))
            }
        }
    }
    Ok(bytes)
}

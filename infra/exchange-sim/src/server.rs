//! The accept loop. `axum::serve` hides the socket, so connections are served
//! here with hyper directly: each gets a [`ConnControl`] in its requests'
//! extensions, and a handler that calls [`ConnControl::reset`] makes this loop
//! drop the connection with `SO_LINGER` set to zero, which sends a TCP RST
//! instead of a response (the client sees "connection reset").

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

/// Most connections served at once; further ones wait to be accepted.
pub const MAX_CONNECTIONS: usize = 1_024;

/// Lets a handler reset the connection its request came on.
#[derive(Debug, Clone, Default)]
pub struct ConnControl {
    inner: Arc<ConnInner>,
}

#[derive(Debug, Default)]
struct ConnInner {
    reset: AtomicBool,
    notify: Notify,
}

impl ConnControl {
    /// Asks the server to reset this connection now.
    pub fn reset(&self) {
        self.inner.reset.store(true, Ordering::SeqCst);
        self.inner.notify.notify_one();
    }
}

/// A TCP stream that, when dropped after a reset request, closes with RST.
struct ResettableStream {
    stream: TcpStream,
    ctl: ConnControl,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.ctl.inner.reset.load(Ordering::SeqCst) {
            // Linger zero: close() discards unsent data and sends RST. (It does
            // not block, unlike a positive linger.)
            let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
            () = &mut shutdown => return Ok(()),
        };
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Usually EMFILE or a connection aborted before accept:
                    // keep serving the others.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let ctl = ConnControl::default();
        let conn_ctl = ctl.clone();
        let svc = router
            .clone()
            .map_request(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(conn_ctl.clone());
                req
            });
        let io = TokioIo::new(ResettableStream {
            stream,
            ctl: ctl.clone(),
        });
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, TowerToHyperService::new(svc));
            tokio::select! {
                r = conn => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                // Dropping `conn` drops the stream, which resets it.
                () = ctl.inner.notify.notified() => {}
            }
            drop(permit);
        });
    }
}

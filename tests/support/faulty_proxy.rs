//! A TCP proxy in front of a service whose behaviour a test switches at run time:
//! pass requests through, refuse them (the call never happens), or let them
//! take effect and lose the answer (the caller cannot know it happened).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Pass = 0,
    /// Close the connection before forwarding anything: nothing happens.
    Refuse = 1,
    /// Forward the request, wait for the answer, then drop the connection.
    LoseResponse = 2,
}

#[derive(Clone)]
pub struct FaultyProxy {
    pub address: SocketAddr,
    mode: Arc<AtomicU8>,
}

impl FaultyProxy {
    pub async fn spawn(upstream: SocketAddr) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        let mode = Arc::new(AtomicU8::new(Mode::Pass as u8));
        let shared = mode.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mode = match shared.load(Ordering::SeqCst) {
                    1 => Mode::Refuse,
                    2 => Mode::LoseResponse,
                    _ => Mode::Pass,
                };
                tokio::spawn(handle(client, upstream, mode));
            }
        });
        FaultyProxy { address, mode }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Applies to connections opened from now on.
    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

async fn handle(mut client: TcpStream, upstream: SocketAddr, mode: Mode) {
    if mode == Mode::Refuse {
        return; // dropped: the client sees the connection closed, nothing was sent on
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    if mode == Mode::Pass {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        return;
    }
    let (mut from_client, _to_client) = client.split();
    let (mut from_server, mut to_server) = server.split();
    let mut request = [0u8; 8192];
    let mut response = [0u8; 1];
    loop {
        tokio::select! {
            read = from_client.read(&mut request) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if to_server.write_all(&request[..n]).await.is_err() { return },
            },
            // The server answered: the request took effect. Drop both sides.
            _ = from_server.read(&mut response) => return,
        }
    }
}
